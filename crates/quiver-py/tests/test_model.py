"""A model test: random operation sequences against a dict, across
reopens, compactions and checkpoints (hypothesis prints the failing
sequence and its seed; `--hypothesis-seed=N` replays one)."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import quiver

DIM = 3
ids = st.integers(min_value=0, max_value=20) | st.sampled_from([2**64 - 1, 2**40])
vectors = st.lists(st.floats(-1e6, 1e6, width=32), min_size=DIM, max_size=DIM)
ops = st.one_of(
    st.tuples(st.just("store"), ids, vectors),
    st.tuples(st.just("batch"), st.lists(st.tuples(ids, vectors), max_size=6)),
    st.tuples(st.just("delete"), ids),
    st.tuples(st.just("reopen")),
    st.tuples(st.just("compact")),
    st.tuples(st.just("checkpoint")),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(ops, max_size=30), st.sampled_from(["buffered", "sync", "deferred"]))
def test_store_matches_a_dict_model(tmp_path_factory, sequence, durability):
    """After every operation the store holds exactly what a dict holds."""
    path = tmp_path_factory.mktemp("model") / "store"
    model: dict[int, list[float]] = {}
    store = quiver.open(path, DIM, durability=durability)
    try:
        for op in sequence:
            if op[0] == "store":
                store.store(op[1], np.array(op[2], dtype=np.float32))
                model[op[1]] = op[2]
            elif op[0] == "batch":
                pairs = op[1]
                store.store_batch(
                    np.array([i for i, _ in pairs], dtype=np.uint64),
                    np.array([v for _, v in pairs], dtype=np.float32).reshape(len(pairs), DIM),
                )
                model.update(pairs)  # a later duplicate wins, as in a dict
            elif op[0] == "delete":
                assert store.delete(op[1]) == (op[1] in model)
                model.pop(op[1], None)
            elif op[0] == "reopen":
                store.close()
                store = quiver.open(path, DIM, durability=durability)
            elif op[0] == "compact":
                store.compact()
            else:
                store.checkpoint()
            assert len(store) == len(model)
            assert sorted(store.ids().tolist()) == sorted(model)
            for i, v in model.items():
                assert store.get(i).tolist() == np.array(v, dtype=np.float32).tolist()
        snap = store.snapshot()
        slots, live = snap.live_slots()
        assert sorted(live.tolist()) == sorted(model)
        for i, row in zip(live.tolist(), snap.vectors()[slots], strict=True):
            assert row.tolist() == np.array(model[i], dtype=np.float32).tolist()
    finally:
        store.close()
