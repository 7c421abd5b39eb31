//! `Durability::Sync` commits (BRIEF §4):
//!
//! - one thread doing single 768-d `store`s against a loop of 3 KiB
//!   `write` and `fdatasync` appended to a plain file (target >= 0.8× its
//!   rate). Both append, so both pay for the file's size change at every
//!   sync, as a WAL does;
//! - 8 writer threads against 1 thread, same number of stores in total
//!   (target >= 4× the throughput: group commit shares one `fdatasync`
//!   among the batches that arrive while the previous one runs).
//!
//! Each run uses fresh files and stores, in an order that rotates from run
//! to run; opening and closing are not timed.
//!
//! `cargo bench -p quiver-benches --bench sync` (QUIVER_BENCH_STORES, stores
//! per configuration and run, default 1000; QUIVER_BENCH_THREADS, default 8;
//! QUIVER_BENCH_RUNS, default 5; QUIVER_BENCH_DIR). Fuller:
//! `QUIVER_BENCH_STORES=10000 cargo bench -p quiver-benches --bench sync`.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use quiver_benches::{bench_dir, env_or, print_ratio, print_table_header, time, vector};
use quiver_storage::{Durability, StoreOptions, VectorStore};

const DIM: usize = 768;

fn open_sync(path: &Path) -> VectorStore<f32> {
    StoreOptions::new(DIM).durability(Durability::Sync).open(path).expect("open")
}

fn main() {
    let stores = env_or("QUIVER_BENCH_STORES", 1000);
    let threads = env_or("QUIVER_BENCH_THREADS", 8);
    let runs = env_or("QUIVER_BENCH_RUNS", 5) as usize;
    let per_thread = stores / threads;
    let dir = bench_dir();
    let v = vector(1, DIM);
    let block = vec![0x5au8; DIM * 4];
    let (mut raw, mut one, mut many) = (Vec::new(), Vec::new(), Vec::new());
    let mut stores_per_sync = Vec::new();
    // Mean time of one shared fdatasync, from the store's own histogram.
    let (mut sync_us_one, mut sync_us_many) = (Vec::new(), Vec::new());
    for run in 0..runs {
        for k in 0..3 {
            match (run + k) % 3 {
                0 => {
                    let path = dir.path().join(format!("raw-{run}"));
                    let mut f = OpenOptions::new().create_new(true).append(true).open(&path).expect("raw file");
                    let (t, ()) = time(|| {
                        for _ in 0..stores {
                            f.write_all(&block).expect("write");
                            f.sync_data().expect("fdatasync");
                        }
                    });
                    raw.push(t.as_secs_f64() / stores as f64);
                    std::fs::remove_file(&path).expect("rm");
                }
                1 => {
                    let path = dir.path().join(format!("one-{run}"));
                    let store = open_sync(&path);
                    let (t, ()) = time(|| {
                        for id in 0..stores {
                            store.store(id, &v).expect("store");
                        }
                    });
                    one.push(t.as_secs_f64() / stores as f64);
                    sync_us_one.push(store.metrics().sync_latency.mean.as_secs_f64() * 1e6);
                    store.close().expect("close");
                    std::fs::remove_dir_all(&path).expect("rm");
                }
                _ => {
                    let path = dir.path().join(format!("many-{run}"));
                    let store = open_sync(&path);
                    let (t, ()) = time(|| {
                        std::thread::scope(|s| {
                            for t in 0..threads {
                                let (store, v) = (&store, &v);
                                s.spawn(move || {
                                    for i in 0..per_thread {
                                        store.store(t * per_thread + i, v).expect("store");
                                    }
                                });
                            }
                        })
                    });
                    let m = store.metrics();
                    many.push(t.as_secs_f64() / (per_thread * threads) as f64);
                    stores_per_sync.push(m.batches_committed as f64 / m.wal_syncs.max(1) as f64);
                    sync_us_many.push(m.sync_latency.mean.as_secs_f64() * 1e6);
                    store.close().expect("close");
                    std::fs::remove_dir_all(&path).expect("rm");
                }
            }
        }
        eprintln!(
            "run {run}: us per commit: write+fdatasync {:.0}, quiver 1 thread {:.0} (fdatasync mean {:.0}), quiver {threads} threads {:.0} ({:.1} commits per fdatasync, fdatasync mean {:.0})",
            raw[run] * 1e6,
            one[run] * 1e6,
            sync_us_one[run],
            many[run] * 1e6,
            stores_per_sync[run],
            sync_us_many[run]
        );
    }
    let ratio = |a: &[f64], b: &[f64]| -> Vec<f64> { a.iter().zip(b).map(|(x, y)| x / y).collect() };
    print_table_header(&format!(
        "Durability::Sync, single 768 x f32 stores, {stores} per configuration, {runs} interleaved runs (ratios of commit rates)"
    ));
    print_ratio("quiver 1 thread / 3 KiB write + fdatasync loop", &ratio(&raw, &one), ">= 0.80");
    print_ratio(&format!("quiver {threads} threads / quiver 1 thread"), &ratio(&one, &many), ">= 4.00");
    let (m, lo, hi) = quiver_benches::median_spread(&stores_per_sync);
    println!("({threads} threads shared one fdatasync among {m:.1} commits, spread {lo:.1}..{hi:.1})");
    let (a, _, _) = quiver_benches::median_spread(&sync_us_one);
    let (b, _, _) = quiver_benches::median_spread(&sync_us_many);
    println!(
        "(mean time of one fdatasync inside the store: {a:.0} us with 1 thread, {b:.0} us with {threads}; absolute figures are noise here)"
    );
}
