"""The follower and the one-writer rule across processes."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import quiver


def test_reader_follows_the_writer(path):
    """A reader sees what the writer acknowledged as of its last refresh,
    including deletes, and its views outlive later refreshes."""
    store = quiver.open(path, 3)
    store.store_batch([1, 2], np.ones((2, 3), dtype=np.float32))
    reader = quiver.open_reader(path, 3)
    assert len(reader) == 2 and 1 in reader
    old = reader.get(1)
    store.store(1, np.full(3, 5, dtype=np.float32))
    store.delete(2)
    store.store(3, np.full(3, 3, dtype=np.float32))
    assert reader.get(1).tolist() == [1, 1, 1]  # not refreshed yet
    outcome = reader.refresh()
    assert outcome["batches_applied"] >= 3 and outcome["reloaded"] is False
    assert reader.get(1).tolist() == [5, 5, 5] and reader.get(2) is None
    assert sorted(reader.ids().tolist()) == [1, 3]
    assert old.tolist() == [1, 1, 1]
    store.checkpoint()
    store.compact()
    store.store(4, np.zeros(3, dtype=np.float32))
    reader.refresh()
    assert sorted(reader.snapshot().ids().tolist()) == [1, 3, 4]
    assert reader.get_many([4, 2])[1] is None
    assert "quiver.Reader(" in repr(reader) and reader.dim == 3 and reader.dtype == "float32"
    reader.close()
    with pytest.raises(quiver.Closed):
        len(reader)
    store.close()


def test_reader_of_a_missing_or_mismatched_store(path):
    """A follower of no store, or with the wrong shape, raises."""
    with pytest.raises(quiver.NotAStore):
        quiver.open_reader(path, 3)
    quiver.open(path, 3).close()
    with pytest.raises(quiver.DimensionMismatch):
        quiver.open_reader(path, 4)
    with pytest.raises(quiver.ElementTypeMismatch):
        quiver.open_reader(path, 3, dtype="uint8")
    with quiver.open_reader(path, 3) as reader:
        assert len(reader) == 0


def test_second_writer_in_another_process_gets_locked(path):
    """While this process holds the store, a writer in another process gets
    quiver.Locked; a reader there works; after close the other process can write."""
    store = quiver.open(path, 2)
    store.store(1, np.ones(2, dtype=np.float32))
    script = textwrap.dedent(
        f"""
        import sys, quiver
        try:
            quiver.open({str(path)!r}, 2)
        except quiver.Locked as e:
            print("locked:", e)
        with quiver.open_reader({str(path)!r}, 2) as r:
            print("reader sees", len(r))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "locked: the store at" in out.stdout and "reader sees 1" in out.stdout
    store.close()
    write = f"import quiver, numpy as np\nwith quiver.open({str(path)!r}, 2) as s: s.store(2, np.ones(2))"
    subprocess.run([sys.executable, "-c", write], check=True, timeout=60)
    with quiver.open(path, 2) as store:
        assert len(store) == 2
