//! Integration tests of `quiver-search`: one binary, a module per scenario
//! (each extra test binary costs a link on a 2-core machine).

mod common;
mod search_edges;
mod search_options;
mod search_reference;
