//! Durable bulk import of N × 768 `f32` (BRIEF §4): Quiver
//! (`reserve_capacity`, `store_batch` of 1000, one `flush`) against raw
//! sequential `write` + `fsync` of the same payload bytes to a plain file
//! (target >= 0.6), and against heed (LMDB, `MDB_APPEND` in one write
//! transaction, commit; target: Quiver >= 1.3× as fast), redb (one write
//! transaction; >= 3×) and velesdb-core's `MmapStorage` (the seed; >= 3×).
//! Each run imports into fresh directories, every engine once, in an order
//! that rotates from run to run; opening and closing are not timed.
//!
//! `cargo bench -p quiver-benches --bench import` (QUIVER_BENCH_VECTORS,
//! default 100000; QUIVER_BENCH_RUNS, default 5; QUIVER_BENCH_DIR). Full
//! size: `QUIVER_BENCH_VECTORS=1000000 cargo bench -p quiver-benches --bench import`.

use quiver_benches::baselines::{quiver_import, raw_import};
use quiver_benches::peers::{Heed, Redb, Veles};
use quiver_benches::{Dataset, bench_dir, env_or, print_ratio, print_table_header};

const DIM: usize = 768;
const ENGINES: [&str; 5] = ["raw", "quiver", "heed", "redb", "velesdb"];

fn main() {
    let count = env_or("QUIVER_BENCH_VECTORS", 100_000);
    let runs = env_or("QUIVER_BENCH_RUNS", 5) as usize;
    let ds = Dataset::new(count, DIM);
    let dir = bench_dir();
    // seconds[engine][run]
    let mut seconds = vec![Vec::new(); ENGINES.len()];
    for run in 0..runs {
        for k in 0..ENGINES.len() {
            let e = (run + k) % ENGINES.len();
            let path = dir.path().join(format!("{}-{run}", ENGINES[e]));
            let t = match ENGINES[e] {
                "raw" => raw_import(&path, &ds),
                "quiver" => {
                    let (t, store) = quiver_import(&path, &ds);
                    store.close().expect("close");
                    t
                }
                "heed" => Heed::create(&path, &ds).import(&ds),
                "redb" => Redb::create(&path, None).import(&ds),
                "velesdb" => Veles::create(&path, &ds).import(&ds),
                _ => unreachable!(),
            };
            seconds[e].push(t.as_secs_f64());
            remove(&path);
        }
        let mb_s = |e: usize| ds.total_bytes() as f64 / seconds[e][run] / 1e6;
        eprintln!(
            "run {run}: MB/s raw {:.0}, quiver {:.0}, heed {:.0}, redb {:.0}, velesdb {:.0}",
            mb_s(0),
            mb_s(1),
            mb_s(2),
            mb_s(3),
            mb_s(4)
        );
    }
    // A ratio > 1 means Quiver is faster; "speed" is bytes per second.
    let ratio = |num: usize, den: usize| -> Vec<f64> { (0..runs).map(|r| seconds[num][r] / seconds[den][r]).collect() };
    print_table_header(&format!(
        "durable bulk import of {count} x {DIM} f32 ({} MB of payload), batches of 1000, {runs} interleaved runs",
        ds.total_bytes() / 1_000_000
    ));
    print_ratio("quiver speed / raw write + fsync speed", &ratio(0, 1), ">= 0.60");
    print_ratio("quiver speed / velesdb MmapStorage speed", &ratio(4, 1), ">= 3.00");
    print_ratio("quiver speed / redb speed", &ratio(3, 1), ">= 3.00");
    print_ratio("quiver speed / heed (MDB_APPEND) speed", &ratio(2, 1), ">= 1.30");
    print_ratio("heed speed / raw speed (context)", &ratio(0, 2), "(~0.40 measured before)");
    let (raw_mb, lo, hi) = quiver_benches::median_spread(
        &seconds[0].iter().map(|s| ds.total_bytes() as f64 / s / 1e6).collect::<Vec<_>>(),
    );
    println!("(raw write + fsync ran at {raw_mb:.0} MB/s, spread {lo:.0}..{hi:.0}; absolute figures are noise here)");
}

fn remove(path: &std::path::Path) {
    let r = if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
    r.expect("remove a bench store");
}
