//! Shared helpers for Quiver's benchmark binaries: interleaved runs, medians
//! with spread, and ratio tables. Absolute times on shared machines are
//! noise; every figure these benches print is a ratio against a baseline
//! measured in the same run.

use std::time::{Duration, Instant};

/// Times `f` once.
pub fn time<R>(f: impl FnOnce() -> R) -> (Duration, R) {
    let started = Instant::now();
    let r = f();
    (started.elapsed(), r)
}

/// Median and (min, max) of `samples`.
pub fn median_spread(samples: &[f64]) -> (f64, f64, f64) {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 };
    (median, s[0], s[n - 1])
}

/// Prints one table row: a ratio's median and spread over interleaved runs.
pub fn print_ratio(what: &str, ratios: &[f64], target: &str) {
    let (m, lo, hi) = median_spread(ratios);
    println!("| {what} | {m:.2} | {lo:.2}..{hi:.2} | {} | {target} |", ratios.len());
}

/// An environment variable parsed as a number, or a default.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A deterministic vector.
pub fn vector(id: u64, dim: usize) -> Vec<f32> {
    let mut x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..dim)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}
