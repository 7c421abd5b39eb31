//! Integration tests of quiver-storage: one binary, a module per scenario.

mod common;
mod smoke;
