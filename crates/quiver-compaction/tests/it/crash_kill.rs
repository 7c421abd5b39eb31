//! Compaction against real process crashes: a child process loops over
//! writes, deletes, overwrites, compactions and checkpoints and is killed
//! with SIGKILL at random moments, many times over on the same directory, so
//! kills land inside compactions (copy, catch-up, the durable switch, the
//! unlink of the old generation) and inside the recovery that follows one.
//! After every kill the parent reopens the store and checks that every
//! acknowledged write is present, no acknowledged delete is undone, every
//! batch is whole, no vector is torn, and exactly one generation is left:
//! one data file, at most one snapshot, no temp file, a clean `verify()`,
//! and the generation advanced by exactly the acknowledged compactions (the
//! one in flight may or may not have reached its commit point).
//!
//! The machinery is quiver-storage's crash-kill engine, included from its
//! test directory (this crate's tests cannot depend on quiver-storage's test
//! binary, and the engine must not depend on compaction); its docs describe
//! the child, the kills and the prefix check. What this module plugs in: the
//! child test's name and the maintenance calls: a compaction about every 40
//! operations, a checkpoint about every 100. The workload overwrites a few hundred ids
//! over and over, so each compaction drops most of the data file and copies
//! the live rest.
//!
//! `QUIVER_KILL_CYCLES` scales the cycles as for quiver-storage's `Buffered`
//! test (default 200; this test runs half), and `QUIVER_TEST_SEED` repeats a
//! run's operation sequences and kill delays.

#[path = "../../../quiver-storage/tests/it/crash_kill/engine.rs"]
mod engine;

use engine::{Harness, Maintenance, crash_cycles, cycles_from_env};
use quiver_storage::{Durability, VectorStore};

const HARNESS: Harness = Harness {
    child_test: "crash_kill::child_workload",
    maintenance: &[
        Maintenance { name: "compact", per_mille: 25, run: compact, switches_generation: true },
        Maintenance {
            name: "checkpoint",
            per_mille: 10,
            run: VectorStore::<f32>::checkpoint,
            switches_generation: false,
        },
    ],
    // Compaction keeps the data file small, so every reopen is verified.
    verify_every_cycles: 1,
};

fn compact(store: &VectorStore<f32>) -> quiver_storage::Result<()> {
    quiver_compaction::compact(store).map(drop)
}

// The child side of the test (proves nothing by itself): when the parent's
// environment variables are set, opens the store and writes and compacts
// until it is killed, acknowledging every returned call on stdout. Ignored
// so it never runs on its own; without the variables it returns at once.
#[test]
#[ignore = "child process of the crash_kill test; it runs it with --include-ignored"]
fn child_workload() {
    engine::child_workload(&HARNESS);
}

// Proves that SIGKILL at random moments, many of them inside a compaction,
// never loses an acknowledged write or brings back an acknowledged delete,
// never undoes an acknowledged compaction, and always reopens into exactly
// one generation (one data file, at most one snapshot, no temp file, a
// clean verify()), at the default level (Buffered).
#[test]
fn kill9_during_compaction_keeps_every_acknowledged_write() {
    let totals = crash_cycles(&HARNESS, "kill9_during_compaction", Durability::Buffered, cycles_from_env(200) / 2);
    let compactions = totals.maintenance_acked.get("compact").copied().unwrap_or(0);
    println!(
        "kill9_during_compaction: {} cycles, {} acknowledged ops, {compactions} acknowledged compactions, \
         {} kills during a compaction, {} during a checkpoint",
        totals.cycles,
        totals.acked_ops,
        totals.kills_during_maintenance.get("compact").copied().unwrap_or(0),
        totals.kills_during_maintenance.get("checkpoint").copied().unwrap_or(0),
    );
    // A compaction is drawn about once in 40 operations: a thousand
    // acknowledged operations without one would mean the workload is broken.
    assert!(
        totals.acked_ops < 1000 || compactions > 0,
        "{} acknowledged operations, yet no compaction: the test tested nothing",
        totals.acked_ops
    );
}
