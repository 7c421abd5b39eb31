//! Integration tests of quiver-compaction: one binary, a module per scenario.

mod crash_kill;
mod crash_steps;
mod model;
mod online;
