//! Writer stalls and reader latency caused by data-file growth (BRIEF §4:
//! the worst writer stall caused by growth < 1 ms; no reader ever blocked by
//! it).
//!
//! An import of N × 768 `f32` in batches of 1000, without
//! `reserve_capacity`, so the file grows as it fills, under three growth
//! policies: the default (16 MiB, doubling in steps of 64 MiB..1 GiB),
//! fixed 4 MiB steps (growth every few batches) and fixed 1 GiB steps (the
//! largest default step). Every `store_batch` is timed, and sorted by
//! whether it grew the file (the store's `growth_events` counter moved).
//! The store's own growth histogram (`metrics().growth_latency`) gives the
//! time spent growing inside the writer's critical section. Meanwhile one
//! reader thread does `get` + sum on random ids already stored, timing
//! every call; its slow calls are matched against the time windows of the
//! batches that grew.
//!
//! These are absolute latencies, not ratios: the target is absolute. On a
//! shared 2-core machine the maxima include preemption by other processes;
//! compare the rows for growing and non-growing batches.
//!
//! `cargo bench -p quiver-benches --bench growth` (QUIVER_BENCH_VECTORS,
//! default 100000; QUIVER_BENCH_RUNS, default 5; QUIVER_BENCH_DIR). Full
//! size: `QUIVER_BENCH_VECTORS=1000000 cargo bench -p quiver-benches --bench growth`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use quiver_benches::{Dataset, Latencies, bench_dir, env_or, median_spread, sum};
use quiver_storage::{StoreOptions, VectorStore};

const DIM: usize = 768;
/// Reader calls slower than this are kept, with their start time.
const SLOW: Duration = Duration::from_micros(20);
/// The reader's histogram resolution and range (slower calls are kept
/// whole in the slow list).
const BUCKET_NS: u64 = 64;
const BUCKETS: usize = 1 << 16;

struct Outcome {
    grew: Latencies,
    plain: Latencies,
    growth_max_us: f64,
    growth_events: u64,
    reader_p999_us: f64,
    reader_max_us: f64,
    reader_max_in_growth_us: f64,
    reader_max_outside_growth_us: f64,
    reader_gets: u64,
    growth_p50_us: f64,
    /// The same reader alone on the finished store for as long as the
    /// import took: the machine's noise floor.
    alone_p999_us: f64,
    alone_max_us: f64,
}

/// The reader's latencies: a fine histogram plus every slow call.
struct ReaderLog {
    buckets: Vec<u64>,
    slow: Vec<(Instant, Duration)>,
    max: Duration,
}

impl ReaderLog {
    fn percentile_us(&self, p: f64) -> f64 {
        let total: u64 = self.buckets.iter().sum::<u64>() + self.slow.iter().filter(|s| s.1 >= over()).count() as u64;
        let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, &c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return ((b as u64 + 1) * BUCKET_NS) as f64 / 1e3;
            }
        }
        let mut rest: Vec<u64> = self.slow.iter().filter(|s| s.1 >= over()).map(|s| s.1.as_nanos() as u64).collect();
        rest.sort_unstable();
        rest.get((rank - seen).saturating_sub(1) as usize).map_or(self.max.as_secs_f64() * 1e6, |&ns| ns as f64 / 1e3)
    }
}

/// Calls this slow or slower fall outside the histogram.
fn over() -> Duration {
    Duration::from_nanos(BUCKET_NS * BUCKETS as u64)
}

fn import(path: &std::path::Path, options: &StoreOptions, ds: &Dataset) -> Outcome {
    let store: VectorStore<f32> = options.open(path).expect("open");
    let published = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let mut grew = Latencies::default();
    let mut plain = Latencies::default();
    let mut windows: Vec<(Instant, Instant)> = Vec::new();
    let import_started = Instant::now();
    let (log, gets) = std::thread::scope(|s| {
        let reader = s.spawn(|| read_until(&store, &published, &done));
        for batch in ds.batches() {
            let before = store.metrics().growth_events;
            let started = Instant::now();
            store.store_batch(&batch).expect("store_batch");
            let took = started.elapsed();
            if store.metrics().growth_events > before {
                grew.record(took);
                windows.push((started, started + took));
            } else {
                plain.record(took);
            }
            published.store(batch.last().expect("non-empty").0 + 1, Ordering::Release);
        }
        done.store(true, Ordering::Release);
        reader.join().expect("reader")
    });
    let import_took = import_started.elapsed();
    let m = store.metrics();
    // The noise floor: the same reader, alone, for as long.
    done.store(false, Ordering::Release);
    let (alone, _) = std::thread::scope(|s| {
        let reader = s.spawn(|| read_until(&store, &published, &done));
        std::thread::sleep(import_took);
        done.store(true, Ordering::Release);
        reader.join().expect("reader")
    });
    store.close().expect("close");
    let overlaps = |(start, took): &(Instant, Duration)| windows.iter().any(|&(a, b)| *start < b && *start + *took > a);
    let in_growth = log.slow.iter().filter(|s| overlaps(s)).map(|s| s.1).max().unwrap_or(Duration::ZERO);
    let outside = log.slow.iter().filter(|s| !overlaps(s)).map(|s| s.1).max().unwrap_or(Duration::ZERO);
    Outcome {
        grew,
        plain,
        growth_max_us: m.growth_latency.max.as_secs_f64() * 1e6,
        growth_events: m.growth_events,
        reader_p999_us: log.percentile_us(99.9),
        reader_max_us: log.max.as_secs_f64() * 1e6,
        reader_max_in_growth_us: in_growth.as_secs_f64() * 1e6,
        reader_max_outside_growth_us: outside.as_secs_f64() * 1e6,
        reader_gets: gets,
        growth_p50_us: m.growth_latency.p50.as_secs_f64() * 1e6,
        alone_p999_us: alone.percentile_us(99.9),
        alone_max_us: alone.max.as_secs_f64() * 1e6,
    }
}

/// `get` + sum of random ids below `published` until `done`, timing each.
fn read_until(store: &VectorStore<f32>, published: &AtomicU64, done: &AtomicBool) -> (ReaderLog, u64) {
    let mut log = ReaderLog { buckets: vec![0; BUCKETS], slow: Vec::new(), max: Duration::ZERO };
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut gets = 0u64;
    let mut total = 0.0f32;
    while !done.load(Ordering::Acquire) {
        let n = published.load(Ordering::Acquire);
        if n == 0 {
            std::hint::spin_loop();
            continue;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let started = Instant::now();
        total += sum(&store.get(x % n).expect("stored"));
        let took = started.elapsed();
        gets += 1;
        log.max = log.max.max(took);
        if took >= SLOW {
            log.slow.push((started, took));
        }
        if took < over() {
            log.buckets[(took.as_nanos() as u64 / BUCKET_NS) as usize] += 1;
        }
    }
    std::hint::black_box(total);
    (log, gets)
}

fn row(what: &str, values: &[f64], target: &str) {
    let (m, lo, hi) = median_spread(values);
    println!("| {what} | {m:.0} | {lo:.0}..{hi:.0} | {} | {target} |", values.len());
}

fn main() {
    let count = env_or("QUIVER_BENCH_VECTORS", 100_000);
    let runs = env_or("QUIVER_BENCH_RUNS", 5) as usize;
    let ds = Dataset::new(count, DIM);
    let dir = bench_dir();
    let scenarios: [(&str, StoreOptions); 3] = [
        ("default policy", StoreOptions::new(DIM)),
        ("4 MiB steps", StoreOptions::new(DIM).initial_file_bytes(4 << 20).growth_step_bytes(4 << 20, 4 << 20)),
        ("1 GiB steps", StoreOptions::new(DIM).initial_file_bytes(16 << 20).growth_step_bytes(1 << 30, 1 << 30)),
    ];
    let mut outcomes: Vec<Vec<Outcome>> = scenarios.iter().map(|_| Vec::new()).collect();
    for run in 0..runs {
        for k in 0..scenarios.len() {
            let i = (run + k) % scenarios.len();
            let path = dir.path().join(format!("s{i}-{run}"));
            let o = import(&path, &scenarios[i].1, &ds);
            std::fs::remove_dir_all(&path).expect("rm");
            eprintln!(
                "run {run}, {}: {} growths, growing batches max {:.0} us, other batches p50 {:.0} us max {:.0} us, growth itself max {:.0} us; reader {} gets, p99.9 {:.1} us, max {:.0} us, max during growth {:.0} us; reader alone p99.9 {:.1} us, max {:.0} us",
                scenarios[i].0,
                o.growth_events,
                o.grew.max_us(),
                o.plain.percentile_us(50.0),
                o.plain.max_us(),
                o.growth_max_us,
                o.reader_gets,
                o.reader_p999_us,
                o.reader_max_us,
                o.reader_max_in_growth_us,
                o.alone_p999_us,
                o.alone_max_us
            );
            outcomes[i].push(o);
        }
    }
    println!(
        "growth during an import of {count} x {DIM} f32 in batches of 1000 without reserve_capacity, Buffered, one reader thread, {runs} interleaved runs; microseconds, median over runs of each run's figure"
    );
    println!("| what (us) | median | spread | runs | target |");
    println!("|---|---|---|---|---|");
    for (i, (name, _)) in scenarios.iter().enumerate() {
        let os = &outcomes[i];
        let f = |g: &dyn Fn(&Outcome) -> f64| -> Vec<f64> { os.iter().map(g).collect() };
        row(&format!("{name}: growth steps per import"), &f(&|o| o.growth_events as f64), "-");
        row(&format!("{name}: time growing, inside the writer (metrics max)"), &f(&|o| o.growth_max_us), "< 1000");
        row(&format!("{name}: time growing (metrics p50)"), &f(&|o| o.growth_p50_us), "< 1000");
        row(&format!("{name}: store_batch that grew, max"), &f(&|o| o.grew.max_us()), "-");
        row(&format!("{name}: store_batch that grew, p50"), &f(&|o| o.grew.percentile_us(50.0)), "-");
        row(&format!("{name}: store_batch that did not grow, p50"), &f(&|o| o.plain.percentile_us(50.0)), "-");
        row(&format!("{name}: store_batch that did not grow, p99.9"), &f(&|o| o.plain.percentile_us(99.9)), "-");
        row(&format!("{name}: store_batch that did not grow, max"), &f(&|o| o.plain.max_us()), "-");
        row(&format!("{name}: reader get+sum p99.9"), &f(&|o| o.reader_p999_us), "-");
        row(&format!("{name}: reader get+sum max"), &f(&|o| o.reader_max_us), "-");
        row(
            &format!("{name}: reader get+sum max while a batch grew"),
            &f(&|o| o.reader_max_in_growth_us),
            "not blocked",
        );
        row(&format!("{name}: reader get+sum max while no batch grew"), &f(&|o| o.reader_max_outside_growth_us), "-");
        row(&format!("{name}: reader alone (no writer) p99.9, noise floor"), &f(&|o| o.alone_p999_us), "-");
        row(&format!("{name}: reader alone (no writer) max, noise floor"), &f(&|o| o.alone_max_us), "-");
    }
}
