"""kill -9 from Python: a child process writes through the binding and
acknowledges each write on stdout; the parent kills it at a random moment
and checks that every acknowledged write is there, every batch whole, and
no acknowledged delete undone. Three rounds on one store, so recovery runs
on a store that crashed before. Set QUIVER_CRASH_SEED to replay a run."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import quiver

DIM = 8
BATCH = 4

CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    import quiver

    path, first, durability = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    store = quiver.open(path, {dim}, durability=durability)
    print("open", flush=True)
    next_id = first
    while True:
        ids = np.arange(next_id, next_id + {batch}, dtype=np.uint64)
        vectors = (ids[:, None] + np.arange({dim})[None, :]).astype(np.float32)
        store.store_batch(ids, vectors)
        print("batch", next_id, flush=True)
        if next_id % 3 == 0:
            store.delete(next_id)
            print("delete", next_id, flush=True)
        next_id += {batch}
    """
).format(dim=DIM, batch=BATCH)


def expected(i: int) -> list[float]:
    return [float(i + j) for j in range(DIM)]


def run_and_kill(path, first: int, durability: str, rng: random.Random) -> tuple[list[int], list[int]]:
    """Starts a writer, kills it with SIGKILL after a random number of
    acknowledgements, and returns the acknowledged batches and deletes."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(first), durability],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "open", child.stderr.read() if child.stderr else ""
    kill_after = rng.randint(20, 400)
    batches: list[int] = []
    deletes: list[int] = []
    deadline = time.monotonic() + 60
    while len(batches) < kill_after and time.monotonic() < deadline:
        raw = child.stdout.readline()
        if not raw.endswith("\n"):
            break  # the child died on its own: the assertions below say why
        line = raw.split()
        if line[0] == "batch":
            batches.append(int(line[1]))
        elif line[0] == "delete":
            deletes.append(int(line[1]))
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    # Acknowledgements printed before the kill but not yet read still count;
    # only whole lines (a kill can cut the last one short).
    for rest in child.stdout.read().split("\n")[:-1]:
        kind, _, value = rest.partition(" ")
        if kind == "batch":
            batches.append(int(value))
        elif kind == "delete":
            deletes.append(int(value))
    return batches, deletes


def test_every_acknowledged_write_survives_kill_9(tmp_path):
    """After each SIGKILL, every acknowledged batch and delete is there, and
    any unacknowledged batch is wholly present or wholly absent."""
    seed = int(os.environ.get("QUIVER_CRASH_SEED", random.randrange(2**32)))
    print(f"QUIVER_CRASH_SEED={seed}")
    rng = random.Random(seed)
    path = tmp_path / "store"
    quiver.open(path, DIM).close()
    first = 0
    acked_batches: list[int] = []
    acked_deletes: set[int] = set()
    for round_ in range(3):
        durability = ["buffered", "sync", "buffered"][round_]
        batches, deletes = run_and_kill(path, first, durability, rng)
        assert batches, "the child acknowledged nothing"
        acked_batches += batches
        acked_deletes |= set(deletes)
        # The child deletes a batch's first id after acknowledging the
        # batch; a kill between that delete and its acknowledgement leaves
        # the id either way. Read which, then hold the store to it.
        last = batches[-1]
        maybe_deleted = last % 3 == 0 and last not in acked_deletes
        if maybe_deleted:
            with quiver.open(path, DIM) as store:
                if last not in store:
                    acked_deletes.add(last)
        got = None
        with quiver.open(path, DIM) as store:
            for start in acked_batches:
                for i in range(start, start + BATCH):
                    if i in acked_deletes:
                        assert store.get(i) is None, f"deleted id {i} came back (seed {seed})"
                    else:
                        got = store.get(i)
                        assert got is not None, f"acknowledged id {i} lost (seed {seed})"
                        assert got.tolist() == expected(i)
            # The batch after the last acknowledged one: all or nothing.
            unacked = batches[-1] + BATCH
            present = [i in store for i in range(unacked + 1, unacked + BATCH)]
            assert all(present) or not any(present), f"torn batch at {unacked} (seed {seed})"
            if any(present):
                acked_batches.append(unacked)
                if unacked % 3 == 0 and unacked not in store:
                    acked_deletes.add(unacked)
            first = max(acked_batches) + BATCH
            # A view from get() keeps the directory locked (it holds a
            # snapshot); drop it so the next child can open the store.
            got = None
