//! Proves the durability contract against real process crashes: a child
//! process writes to a store and is killed with SIGKILL at a random moment,
//! many times over on the same directory, so kills land in writes, in
//! location batches, in growth, in automatic and explicit checkpoints, and in
//! the recovery of the previous kill. After every kill the parent opens the
//! store and checks it against a model of the child's operations, and
//! catches an index it keeps beside the store up through the change feed,
//! which must then hold exactly what the store holds.
//!
//! The machinery (workload, child loop, kill cycles, prefix matching, the
//! one-generation checks after every reopen, `verify()` after every tenth)
//! is in `crash_kill/engine.rs`, which quiver-compaction's kill test
//! includes too; this module plugs in what is particular to the storage
//! engine: the child test's name and its maintenance call, an explicit
//! `checkpoint` (4 calls in a thousand).
//!
//! `QUIVER_KILL_CYCLES` sets the number of cycles of the `Buffered` test
//! (default 200); the `Sync` test runs a third as many, the `Deferred` test
//! half. `QUIVER_TEST_SEED` repeats a run's operation sequences and kill
//! delays.

mod engine;

use engine::{Harness, Maintenance, crash_cycles, cycles_from_env};
use quiver_storage::{Durability, VectorStore};

const HARNESS: Harness = Harness {
    child_test: "crash_kill::child_workload",
    maintenance: &[Maintenance {
        name: "checkpoint",
        per_mille: 4,
        run: VectorStore::<f32>::checkpoint,
        switches_generation: false,
    }],
    // The data file is never compacted here and grows to tens of MiB, so a
    // verify() every reopen would double the test's time.
    verify_every_cycles: 10,
};

// The child side of the crash tests (proves nothing by itself): when the
// parent's environment variables are set, opens the store and writes until
// it is killed, acknowledging every returned call on stdout. Ignored so it
// never runs on its own; without the variables it returns at once.
#[test]
#[ignore = "child process of the crash_kill tests; they run it with --include-ignored"]
fn child_workload() {
    engine::child_workload(&HARNESS);
}

// Proves that at the default level (Buffered) every acknowledged write
// survives SIGKILL at random moments, including kills during recovery,
// checkpoints and growth: every batch all or nothing, no deleted id back,
// no torn vector, at most the in-flight call extra, and one generation with
// a clean verify() after every reopen.
#[test]
fn kill9_buffered_keeps_every_acknowledged_write() {
    crash_cycles(&HARNESS, "kill9_buffered", Durability::Buffered, cycles_from_env(200));
}

// Proves the same at Durability::Sync (a third of the cycles: every call
// fsyncs).
#[test]
fn kill9_sync_keeps_every_acknowledged_write() {
    crash_cycles(&HARNESS, "kill9_sync", Durability::Sync, cycles_from_env(200) / 3);
}

// Proves that at Durability::Deferred a SIGKILL loses at most the calls
// acknowledged after the last acknowledged flush() or checkpoint(), and only
// from the end: what survives is always a prefix of the calls, with every
// batch whole.
#[test]
fn kill9_deferred_keeps_every_flushed_write() {
    crash_cycles(&HARNESS, "kill9_deferred", Durability::Deferred, cycles_from_env(200) / 2);
}
