//! `--json` output: every command's machine-readable result is a
//! `#[derive(Serialize)]` struct printed by [`print`], so the shape scripts
//! rely on is the struct's and is documented once, in docs/CLI.md (which a
//! test checks against the real output).

use anyhow::{Context, Result};
use serde::Serialize;

/// Prints `value` as one pretty-printed JSON object on stdout.
pub(crate) fn print<T: Serialize>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).context("writing the JSON output")?;
    println!("{text}");
    Ok(())
}

/// A float as JSON: a number, or `null` when it is not finite (JSON has no
/// NaN or infinity).
pub(crate) fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}
