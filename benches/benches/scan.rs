//! Exact scan: the dot product of a query with every stored vector (768 ×
//! `f32`) through `get()`, ids in slot (file) order, against the same dot
//! products over an equal in-RAM `Vec<f32>` (BRIEF §4: the first scan after
//! open >= 60% of the Vec's bandwidth, repeated scans >= 90%).
//!
//! "First scan after open" is measured two ways, each run:
//! - cold: the store is dropped, its data file is evicted from the page
//!   cache (`fdatasync` + `posix_fadvise(DONTNEED)`, which drops only this
//!   file's pages and leaves other users of the machine their caches), the
//!   store is reopened and scanned;
//! - warm cache: dropped and reopened without eviction, so the scan pays for
//!   the mapping's page faults but reads no disk.
//!
//! For context the table also gives, against the same Vec baseline, a cold
//! sequential `read` of the data file (1 MiB reads: what the disk allows)
//! and the same scan through the bench's own read-only mapping of the data
//! file (payloads at the same offsets, no index), cold and warm, once with
//! the kernel's default advice (readahead on) and once with
//! `MADV_RANDOM`, the advice Quiver gives its mapping: these rows separate
//! the cost of the advice from the cost of `get()`. The Vec baseline is
//! timed next to each scan.
//!
//! `cargo bench -p quiver-benches --bench scan` (QUIVER_BENCH_VECTORS,
//! default 100000; QUIVER_BENCH_RUNS, default 5; QUIVER_BENCH_DIR). Full
//! size: `QUIVER_BENCH_VECTORS=1000000 cargo bench -p quiver-benches --bench scan`.

use std::hint::black_box;
use std::io::Read;
use std::path::{Path, PathBuf};

use quiver_benches::baselines::quiver_import;
use quiver_benches::{Dataset, bench_dir, dot, env_or, evict_from_page_cache, print_ratio, print_table_header, time};
use quiver_storage::VectorStore;
use quiver_storage::format::{DATA_HEADER_BYTES, RECORD_HEADER_BYTES};

const DIM: usize = 768;

fn data_files(store_dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(store_dir)
        .expect("list store")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "qvd"))
        .collect()
}

fn quiver_scan(store: &VectorStore<f32>, ids: &[u64], query: &[f32]) -> f32 {
    let mut total = 0.0f32;
    for &id in ids {
        total += dot(&store.get(id).expect("present"), query);
    }
    black_box(total)
}

/// The same scan through `for_each`: one pin, file order.
fn quiver_for_each(store: &VectorStore<f32>, query: &[f32]) -> f32 {
    let mut total = 0.0f32;
    store.for_each(|_, v| total += dot(v, query));
    black_box(total)
}

fn vec_scan(all: &[f32], query: &[f32]) -> f32 {
    black_box(all.chunks_exact(DIM).map(|v| dot(v, query)).sum::<f32>())
}

/// The same scan through a private mapping of the data file, with
/// `random` advice or the default. Maps, scans, unmaps; only the scan is
/// timed.
fn mapped_scan(path: &Path, slots: &[u64], record_bytes: u64, query: &[f32], random: bool) -> std::time::Duration {
    let f = std::fs::File::open(path).expect("open data file");
    // SAFETY: the store that wrote this file is closed; nothing writes or
    // truncates it while this private read-only mapping lives.
    let map = unsafe { memmap2::Mmap::map(&f) }.expect("map");
    if random {
        map.advise(memmap2::Advice::Random).expect("madvise");
    }
    let (t, _) = time(|| {
        let mut total = 0.0f32;
        for &slot in slots {
            let at = (DATA_HEADER_BYTES + slot * record_bytes + u64::from(RECORD_HEADER_BYTES)) as usize;
            let v: &[f32] = bytemuck::cast_slice(&map[at..at + DIM * 4]);
            total += dot(v, query);
        }
        black_box(total)
    });
    t
}

fn cold_read(path: &Path) -> u64 {
    let mut f = std::fs::File::open(path).expect("open data file");
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            return total;
        }
        total += n as u64;
    }
}

fn main() {
    let count = env_or("QUIVER_BENCH_VECTORS", 100_000);
    let runs = env_or("QUIVER_BENCH_RUNS", 5) as usize;
    let dir = bench_dir();
    let path = dir.path().join("store");
    let ds = Dataset::new(count, DIM);
    let (_, store) = quiver_import(&path, &ds);
    // Ids in slot order (the file order a scan should follow): one import
    // of ids 0..count, batch after batch in id order, into an empty store
    // puts id `i` at slot `i`.
    let slot_order: Vec<u64> = (0..count).collect();
    let slots: Vec<u64> = slot_order.clone();
    let record_bytes = store.metrics().live_bytes / count;
    let hash_order = store.ids();
    store.close().expect("close");
    let files = data_files(&path);
    assert_eq!(files.len(), 1, "one data file: {files:?}");
    let data_file = &files[0];
    let file_bytes = std::fs::metadata(data_file).expect("stat").len();
    let mut all = Vec::with_capacity(count as usize * DIM);
    for id in 0..count {
        all.extend_from_slice(ds.vector(id));
    }
    let query = quiver_benches::vector(u64::MAX, DIM);
    let payload_bytes = count as f64 * DIM as f64 * 4.0;
    vec_scan(&all, &query);

    let (mut cold, mut warm_first, mut repeated, mut hash, mut disk) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut repeated_get = Vec::new();
    // [random advice][cold, warm first]
    let mut mapped = [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]];
    let mut evicted_ok = true;
    let (mut get_ns, mut vec_ns) = (Vec::new(), Vec::new());
    for run in 0..runs {
        // Cold first scan.
        if let Err(e) = evict_from_page_cache(data_file) {
            evicted_ok = false;
            eprintln!("evicting {} failed: {e}; the cold row is a warm-cache scan", data_file.display());
        }
        let store: VectorStore<f32> = VectorStore::open(&path, DIM).expect("open");
        let (v0, _) = time(|| vec_scan(&all, &query));
        let (c, _) = time(|| quiver_for_each(&store, &query));
        cold.push(v0.as_secs_f64() / c.as_secs_f64());
        drop(store);

        // First scan after open, warm page cache.
        let store: VectorStore<f32> = VectorStore::open(&path, DIM).expect("open");
        let (v1, _) = time(|| vec_scan(&all, &query));
        let (w, _) = time(|| quiver_for_each(&store, &query));
        warm_first.push(v1.as_secs_f64() / w.as_secs_f64());

        // Repeated scans in the same open store.
        let (v2, _) = time(|| vec_scan(&all, &query));
        let (r, _) = time(|| quiver_for_each(&store, &query));
        repeated.push(v2.as_secs_f64() / r.as_secs_f64());
        let (v2b, _) = time(|| vec_scan(&all, &query));
        let (rg, _) = time(|| quiver_scan(&store, &slot_order, &query));
        repeated_get.push(v2b.as_secs_f64() / rg.as_secs_f64());
        // The cost of get() alone, per vector (first element only).
        let (g, _) = time(|| {
            let mut t = 0.0f32;
            for &id in &slot_order {
                t += store.get(id).expect("present")[0];
            }
            black_box(t)
        });
        get_ns.push(g.as_secs_f64() * 1e9 / count as f64);
        vec_ns.push(v2.as_secs_f64() * 1e9 / count as f64);
        let (v3, _) = time(|| vec_scan(&all, &query));
        let (h, _) = time(|| quiver_scan(&store, &hash_order, &query));
        hash.push(v3.as_secs_f64() / h.as_secs_f64());
        drop(store);

        // What the disk allows: a cold sequential read of the data file.
        let _ = evict_from_page_cache(data_file);
        let (v4, _) = time(|| vec_scan(&all, &query));
        let (d, n) = time(|| cold_read(data_file));
        assert_eq!(n, file_bytes);
        disk.push(v4.as_secs_f64() / d.as_secs_f64() * file_bytes as f64 / (count as f64 * DIM as f64 * 4.0));

        // The bench's own mapping: default advice, then MADV_RANDOM.
        let mut mapped_gb_s = [[0.0; 2]; 2];
        for (random, rows) in mapped.iter_mut().enumerate() {
            let _ = evict_from_page_cache(data_file);
            let (v, _) = time(|| vec_scan(&all, &query));
            let c = mapped_scan(data_file, &slots, record_bytes, &query, random == 1);
            let (v2, _) = time(|| vec_scan(&all, &query));
            let w = mapped_scan(data_file, &slots, record_bytes, &query, random == 1);
            rows[0].push(v.as_secs_f64() / c.as_secs_f64());
            rows[1].push(v2.as_secs_f64() / w.as_secs_f64());
            mapped_gb_s[random] = [payload_bytes / c.as_secs_f64() / 1e9, payload_bytes / w.as_secs_f64() / 1e9];
        }
        eprintln!(
            "run {run}: own mapping GB/s: default advice cold {:.2} warm first {:.2}; MADV_RANDOM cold {:.2} warm first {:.2}",
            mapped_gb_s[0][0], mapped_gb_s[0][1], mapped_gb_s[1][0], mapped_gb_s[1][1]
        );
        let gb_s = |secs: f64| count as f64 * DIM as f64 * 4.0 / secs / 1e9;
        eprintln!(
            "run {run}: GB/s of payload: Vec {:.2}, cold first scan {:.2}, warm first scan {:.2}, repeated {:.2}, ids() order {:.2}, cold read of the file {:.2}",
            gb_s(v0.as_secs_f64()),
            gb_s(c.as_secs_f64()),
            gb_s(w.as_secs_f64()),
            gb_s(r.as_secs_f64()),
            gb_s(h.as_secs_f64()),
            file_bytes as f64 / d.as_secs_f64() / 1e9
        );
    }
    print_table_header(&format!(
        "exact scan (dot product), {count} x {DIM} f32 ({} MB), ids in slot order, {runs} interleaved runs (bandwidth / Vec<f32> bandwidth)",
        count * DIM as u64 * 4 / 1_000_000
    ));
    let cold_label = if evicted_ok {
        "for_each scan after open, cold (file evicted)"
    } else {
        "first scan after open (eviction FAILED: warm)"
    };
    print_ratio(cold_label, &cold, ">= 0.60");
    print_ratio("for_each scan after open, warm page cache", &warm_first, ">= 0.60");
    print_ratio("repeated for_each scan", &repeated, ">= 0.90");
    print_ratio("repeated scan through get() in slot order (context)", &repeated_get, "-");
    print_ratio("repeated scan, ids() (hash) order (context)", &hash, "-");
    print_ratio("cold sequential read(2) of the data file (context: the disk)", &disk, "-");
    print_ratio("own mapping, default advice, cold first scan (context)", &mapped[0][0], "-");
    print_ratio("own mapping, default advice, warm first scan (context)", &mapped[0][1], "-");
    print_ratio("own mapping, MADV_RANDOM, cold first scan (context)", &mapped[1][0], "-");
    print_ratio("own mapping, MADV_RANDOM, warm first scan (context)", &mapped[1][1], "-");
    let (g, _, _) = quiver_benches::median_spread(&get_ns);
    let (v, _, _) = quiver_benches::median_spread(&vec_ns);
    println!(
        "(per vector: get() alone, first element only, {g:.0} ns; dot over the Vec {v:.0} ns; absolute figures are noise here)"
    );
}
