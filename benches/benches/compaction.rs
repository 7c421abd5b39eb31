//! Compaction throughput as a ratio to a raw copy of the same live bytes
//! (sequential read + write + fdatasync of one file holding exactly them),
//! interleaved run by run (BRIEF §4: ">= 50% of a raw copy of the live
//! bytes"), and the writers' pause at the switch in units of one 4 KiB
//! write + `fdatasync` measured beside it (the pause holds a few syncs: the
//! WAL's, the new file's, the snapshot's, the manifest's and directory
//! syncs; it should not grow with the store).
//!
//! `cargo bench -p quiver-benches --bench compaction` (QUIVER_BENCH_VECTORS,
//! QUIVER_BENCH_RUNS to change the size and the number of runs).

use std::fs::File;
use std::io::{Read, Write};

use quiver_benches::{env_or, print_ratio, time, vector};
use quiver_storage::VectorStore;

const DIM: usize = 768;

fn main() {
    let count = env_or("QUIVER_BENCH_VECTORS", 100_000);
    let runs = env_or("QUIVER_BENCH_RUNS", 5) as usize;
    let dir = tempfile::tempdir_in(std::env::var("QUIVER_BENCH_DIR").unwrap_or_else(|_| ".".into())).expect("tempdir");
    let store: VectorStore<f32> = VectorStore::open(dir.path().join("store"), DIM).expect("open");
    store.reserve_capacity(count as usize).expect("reserve");
    let vectors: Vec<Vec<f32>> = (0..1000).map(|i| vector(i, DIM)).collect();
    for chunk in (0..count).collect::<Vec<_>>().chunks(1000) {
        let batch: Vec<(u64, &[f32])> = chunk.iter().map(|&id| (id, &vectors[(id % 1000) as usize][..])).collect();
        store.store_batch(&batch).expect("import");
    }
    let record = store.metrics().live_bytes / count;
    let mut ratios = Vec::new();
    let mut throughput = Vec::new();
    let (mut pauses, mut pause_in_syncs) = (Vec::new(), Vec::new());
    for run in 0..runs {
        // Garbage: overwrite every other id, so half the file is dead.
        for chunk in (0..count).filter(|id| id % 2 == run as u64 % 2).collect::<Vec<_>>().chunks(1000) {
            let batch: Vec<(u64, &[f32])> =
                chunk.iter().map(|&id| (id, &vectors[((id + 1) % 1000) as usize][..])).collect();
            store.store_batch(&batch).expect("overwrite");
        }
        store.flush().expect("flush");
        let live_bytes = store.len() as u64 * record;
        // Baseline: a file holding exactly the live bytes, copied.
        let src = dir.path().join("raw-src");
        {
            let mut f = File::create(&src).expect("raw src");
            let block = vec![7u8; 1 << 20];
            let mut left = live_bytes;
            while left > 0 {
                let n = left.min(block.len() as u64) as usize;
                f.write_all(&block[..n]).expect("write");
                left -= n as u64;
            }
            f.sync_all().expect("sync");
        }
        let (raw, ()) = time(|| {
            let mut from = File::open(&src).expect("open src");
            let mut to = File::create(dir.path().join("raw-dst")).expect("create dst");
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = from.read(&mut buf).expect("read");
                if n == 0 {
                    break;
                }
                to.write_all(&buf[..n]).expect("write");
            }
            to.sync_data().expect("sync");
        });
        let sync = one_small_sync(dir.path());
        let (compaction, stats) = time(|| quiver_compaction::compact(&store).expect("compact"));
        pauses.push(stats.writer_pause.as_secs_f64() * 1e3);
        pause_in_syncs.push(stats.writer_pause.as_secs_f64() / sync.as_secs_f64());
        ratios.push(raw.as_secs_f64() / compaction.as_secs_f64());
        throughput.push(stats.bytes_copied as f64 / compaction.as_secs_f64() / 1e6);
        std::fs::remove_file(dir.path().join("raw-dst")).expect("rm");
        std::fs::remove_file(&src).expect("rm");
        eprintln!(
            "run {run}: live {} MB, raw copy {:.1} ms, compaction {:.1} ms (writer pause {:.2} ms)",
            live_bytes / 1_000_000,
            raw.as_secs_f64() * 1e3,
            compaction.as_secs_f64() * 1e3,
            stats.writer_pause.as_secs_f64() * 1e3
        );
    }
    println!("compaction of {count} x {DIM} f32 with 50% garbage, {runs} interleaved runs");
    println!("| what | median | spread | runs | target |");
    println!("|---|---|---|---|---|");
    print_ratio("compaction speed / raw copy of the live bytes", &ratios, ">= 0.50");
    print_ratio("writer pause at the switch / one 4 KiB write + fdatasync", &pause_in_syncs, "independent of size");
    let (m, lo, hi) = quiver_benches::median_spread(&pauses);
    println!("(writer pause {m:.2} ms, spread {lo:.2}..{hi:.2})");
    let (m, lo, hi) = quiver_benches::median_spread(&throughput);
    println!("(compaction copied {m:.0} MB/s, spread {lo:.0}..{hi:.0}; absolute figures are noise here)");
}

/// The median of 9 writes of 4 KiB, each followed by `fdatasync`, to a fresh
/// file in `dir`: the unit the pause is counted in.
fn one_small_sync(dir: &std::path::Path) -> std::time::Duration {
    let path = dir.join("sync-probe");
    let mut f = File::create(&path).expect("create probe");
    let block = [1u8; 4096];
    let mut samples: Vec<std::time::Duration> = (0..9)
        .map(|_| {
            time(|| {
                f.write_all(&block).expect("write");
                f.sync_data().expect("sync");
            })
            .0
        })
        .collect();
    std::fs::remove_file(&path).expect("rm probe");
    samples.sort();
    samples[samples.len() / 2]
}
