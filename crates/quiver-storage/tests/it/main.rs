//! Integration tests of quiver-storage: one binary, a module per scenario.

mod behaviour;
mod change_feed;
mod checkpoint_backoff;
mod common;
mod crash_kill;
mod damage_matrix;
mod enospc_real;
mod follower;
mod format_doc;
mod fuzz_regressions;
mod memory;
mod model_proptest;
mod power_loss;
mod smoke;
mod snapshot;
mod snapshot_rebuild;
mod wal_damage;
