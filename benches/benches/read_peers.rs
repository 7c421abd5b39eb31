//! Zero-copy `get` + sum of every element, random ids, hot, one thread:
//! Quiver against velesdb-core's `MmapStorage::retrieve_ref` (the seed),
//! heed (LMDB) `get` and redb `get` (BRIEF §4: Quiver faster than each, at
//! 10^4..10^6 vectors), interleaved run by run.
//!
//! heed and redb hand out `&[u8]`; it is summed in place when 4-aligned
//! (`bytemuck::try_cast_slice`) and copied into a scratch `Vec<f32>` first
//! when not. The table says how many reads needed the copy. heed reads in
//! one read transaction per pass, redb in one read transaction (and table)
//! per pass, with its page cache sized to hold the whole data set.
//!
//! `cargo bench -p quiver-benches --bench read_peers` (QUIVER_BENCH_SIZES,
//! default `10000,100000`; QUIVER_BENCH_READS, default 500000;
//! QUIVER_BENCH_RUNS, default 5; QUIVER_BENCH_DIR). Full size:
//! `QUIVER_BENCH_SIZES=10000,100000,1000000 cargo bench -p quiver-benches --bench read_peers`
//! (needs about 14 GB of disk and page cache).

use std::hint::black_box;
use std::time::Duration;

use quiver_benches::baselines::quiver_import;
use quiver_benches::peers::{Heed, Redb, Veles};
use quiver_benches::{Dataset, bench_dir, env_list_or, env_or, print_ratio, print_table_header, random_ids, sum, time};
use quiver_storage::VectorStore;

const DIM: usize = 768;
const ENGINES: [&str; 4] = ["quiver", "velesdb", "heed", "redb"];

struct Engines {
    quiver: VectorStore<f32>,
    veles: Veles,
    heed: Heed,
    redb: Redb,
}

/// One pass of reads through engine `e`; returns the time and how many
/// reads had to copy unaligned bytes.
fn pass(en: &Engines, e: usize, order: &[u64], touch_only: bool) -> (Duration, u64) {
    // With `touch_only`, each read adds its first element only: the cost of
    // the lookup and guard without the memory traffic of the sum.
    let sum = |v: &[f32]| if touch_only { v[0] } else { sum(v) };
    let mut unaligned = 0u64;
    let mut scratch = Vec::new();
    let (t, total) = time(|| {
        let mut total = 0.0f32;
        match ENGINES[e] {
            "quiver" => {
                for &id in order {
                    total += sum(&en.quiver.get(id).expect("present"));
                }
            }
            "velesdb" => {
                for &id in order {
                    let g = en.veles.get(id).expect("present");
                    total += sum(g.as_slice().expect("no remap during reads"));
                }
            }
            "heed" => {
                let db = en.heed.db();
                let txn = en.heed.read_txn();
                for &id in order {
                    let bytes = db.get(&txn, &id).expect("heed get").expect("present");
                    let (s, copied) = if touch_only {
                        (f32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")), false)
                    } else {
                        quiver_benches::sum_bytes(bytes, &mut scratch)
                    };
                    total += s;
                    unaligned += u64::from(copied);
                }
            }
            "redb" => {
                let table = en.redb.read_table();
                for &id in order {
                    let guard = table.get(id).expect("redb get").expect("present");
                    let bytes = guard.value();
                    let (s, copied) = if touch_only {
                        (f32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")), false)
                    } else {
                        quiver_benches::sum_bytes(bytes, &mut scratch)
                    };
                    total += s;
                    unaligned += u64::from(copied);
                }
            }
            _ => unreachable!(),
        }
        black_box(total)
    });
    // Every engine holds the same vectors, so every pass sums the same.
    black_box(total);
    (t, unaligned)
}

fn main() {
    let sizes = env_list_or("QUIVER_BENCH_SIZES", &[10_000, 100_000]);
    let reads = env_or("QUIVER_BENCH_READS", 500_000);
    let runs = env_or("QUIVER_BENCH_RUNS", 5) as usize;
    let mut rows = Vec::new();
    let mut context = Vec::new();
    for &count in &sizes {
        let dir = bench_dir();
        let ds = Dataset::new(count, DIM);
        let (_, quiver) = quiver_import(&dir.path().join("quiver"), &ds);
        let mut veles = Veles::create(&dir.path().join("velesdb"), &ds);
        veles.import(&ds);
        let heed = Heed::create(&dir.path().join("heed"), &ds);
        heed.import(&ds);
        let cache = (ds.total_bytes() as usize * 3 / 2).max(1 << 30);
        let redb = Redb::create(&dir.path().join("redb"), Some(cache));
        redb.import(&ds);
        let en = Engines { quiver, veles, heed, redb };
        let order = random_ids(count, reads, 42);
        // Warm every engine (page cache, redb's cache) with a full pass.
        let unaligned: Vec<u64> = (0..ENGINES.len()).map(|e| pass(&en, e, &order, false).1).collect();
        let mut seconds = vec![Vec::new(); ENGINES.len()];
        let mut touch = vec![Vec::new(); ENGINES.len()];
        for run in 0..runs {
            for k in 0..ENGINES.len() {
                let e = (run + k) % ENGINES.len();
                seconds[e].push(pass(&en, e, &order, false).0.as_secs_f64());
                touch[e].push(pass(&en, e, &order, true).0.as_secs_f64());
            }
            let ns = |s: &[Vec<f64>], e: usize| s[e][run] * 1e9 / reads as f64;
            eprintln!(
                "{count} vectors, run {run}: ns per get+sum (get alone): quiver {:.0} ({:.0}), velesdb {:.0} ({:.0}), heed {:.0} ({:.0}), redb {:.0} ({:.0})",
                ns(&seconds, 0),
                ns(&touch, 0),
                ns(&seconds, 1),
                ns(&touch, 1),
                ns(&seconds, 2),
                ns(&touch, 2),
                ns(&seconds, 3),
                ns(&touch, 3)
            );
        }
        for (e, name) in ENGINES.iter().enumerate().skip(1) {
            let r: Vec<f64> = (0..runs).map(|i| seconds[e][i] / seconds[0][i]).collect();
            let note = match (*name, unaligned[e]) {
                ("velesdb", _) => String::new(),
                (_, 0) => " (every read 4-aligned, zero-copy)".to_string(),
                (_, n) => format!(" ({n} of {reads} reads unaligned, copied)"),
            };
            rows.push((format!("{count}: {name} time / quiver time{note}"), r));
        }
        for (e, name) in ENGINES.iter().enumerate().skip(1) {
            let r: Vec<f64> = (0..runs).map(|i| touch[e][i] / touch[0][i]).collect();
            context.push((format!("{count}: {name} / quiver, get + first element only (context)"), r));
        }
        drop(en);
    }
    print_table_header(&format!(
        "zero-copy get + sum, 768 f32, random ids, hot, 1 thread, {reads} reads per pass, {runs} interleaved runs (ratio > 1: Quiver faster)"
    ));
    for (what, r) in &rows {
        print_ratio(what, r, "> 1.00");
    }
    for (what, r) in &context {
        print_ratio(what, r, "-");
    }
}
