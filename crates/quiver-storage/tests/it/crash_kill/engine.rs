//! The engine of the process-kill crash tests, shared by two test binaries:
//! quiver-storage's `crash_kill` (whose maintenance call is `checkpoint`)
//! and quiver-compaction's `crash_kill` (which compacts), each of which
//! includes this file with `#[path]`. It owns the seeded workload, the
//! child's loop, the parent's kill-reopen-check cycles and the prefix
//! matching. It must depend on nothing of the including binary but the
//! [`Harness`] it is given, and it never calls a compaction itself.
//!
//! How: the parent re-executes the test binary (`/proc/self/exe`, else
//! `current_exe`) running only the including module's ignored child test
//! ([`Harness::child_test`], which calls [`child_workload`]), passing the
//! store directory, a seed, the first operation number and the durability
//! level in environment variables. The child opens the store, then loops
//! over a seeded mix of `store`, `store_batch` (1..50 vectors, some with
//! duplicate ids, some past the inline limit so they log locations),
//! `delete`, overwrites, maintenance calls ([`Harness::maintenance`]) and
//! (at `Deferred`) `flush`, and prints `@ack <i>` after call `i` returns,
//! with `@<name>-start <i>` and `@<name>-end <i>` around a maintenance call
//! so the parent knows which kills landed inside one. Every vector encodes
//! its id, the global number of the operation that wrote it and its
//! position in the batch, so the parent can tell exactly which write a
//! stored vector came from; the parent regenerates the same operations from
//! the seed.
//!
//! The check: the child is single-threaded and every operation is one batch,
//! so the store after a crash must equal the model after some prefix
//! `ops[..k]` of the cycle's operations, with `required <= k <= acked + 1`
//! (`acked` calls returned; the one after them was in flight). At `Buffered`
//! and `Sync`, `required = acked`: every acknowledged write is present.
//! At `Deferred`, `required` is the index of the last acknowledged `flush()`
//! or maintenance call: only writes acknowledged before it are promised, and
//! writes after it may be lost, but only from the end. Matching a prefix
//! implies every rule of the contract at once: every acknowledged write is
//! reflected (by its own value or the in-flight op's), no deleted id comes
//! back, every batch is all or nothing (including which duplicate won), and
//! no vector is torn (each stored vector must equal, exactly, the value of
//! the write its contents name). The model after a cycle is what was found
//! on disk, carried into the next cycle. A kill also never forces a rebuild
//! of the index: the snapshot is renamed into place before the manifest
//! names it, so open must always load it.
//!
//! After every reopen the directory must also hold exactly one generation:
//! one `data-*.qvd`, at most one snapshot, no `*.tmp` (open removes what a
//! kill left), `verify()` must find no problem (every
//! [`Harness::verify_every_cycles`] reopens), and the generation must have
//! advanced by exactly the acknowledged generation switches of the cycle,
//! plus one if the call in flight was a switch that reached its commit
//! point: an acknowledged switch is never undone, and nothing else switches.
//!
//! Most kills come 5..80 ms after the spawn; a quarter are aimed at the
//! child's start-up and open, since open takes only a few milliseconds.
//! The parent alternates `close()` (the next child loads a snapshot) and a
//! plain drop (the next child replays the WAL).
//!
//! Random choices print their seed; set `QUIVER_TEST_SEED` to repeat the
//! operation sequences and kill delays (the timing of the kill itself is the
//! OS's). `QUIVER_KILL_CYCLES` scales the number of cycles
//! ([`cycles_from_env`]).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use quiver_storage::format::{TEMP_SUFFIX, WAL_DIR};
use quiver_storage::{Durability, Error, SnapshotOutcome, StoreOptions, VectorStore};

const DIM: usize = 16;
/// Ids are drawn from `0..SMALL_IDS` and from the top `BIG_IDS` of `u64`.
const SMALL_IDS: u64 = 256;
const BIG_IDS: u64 = 16;
/// Batches whose payload passes this many bytes log locations, not vectors
/// (16 vectors of 16 `f32`).
const INLINE_MAX_BYTES: usize = 1024;
/// Operations per thousand that are `flush` at `Deferred` (plain stores at
/// the other levels), drawn right after the maintenance calls.
const FLUSH_PER_MILLE: u64 = 30;
/// The operations per thousand below this are single stores of any id; the
/// maintenance and flush shares are taken from them.
const STORES_END_PER_MILLE: u64 = 480;

const ENV_DIR: &str = "QUIVER_KILL_CHILD_DIR";
const ENV_SEED: &str = "QUIVER_KILL_CHILD_SEED";
const ENV_BASE: &str = "QUIVER_KILL_CHILD_BASE";
const ENV_LEVEL: &str = "QUIVER_KILL_CHILD_LEVEL";
/// A child that is never killed stops by itself after this long, so a lost
/// parent cannot leave it running.
const CHILD_MAX_RUN: Duration = Duration::from_secs(30);

/// A maintenance call the child makes between writes.
pub(super) struct Maintenance {
    /// Its name in the child's `@<name>-start` / `@<name>-end` lines and in
    /// the totals.
    pub name: &'static str,
    /// Operations per thousand that are this call.
    pub per_mille: u64,
    /// The call. It must not change the store's contents, and on return
    /// every write acknowledged before it must be durable (the `Deferred`
    /// test relies on this, as on `flush`).
    pub run: fn(&VectorStore<f32>) -> quiver_storage::Result<()>,
    /// Whether a returned call has switched the store to the next generation
    /// (a new data file), which no later crash may undo.
    pub switches_generation: bool,
}

/// What differs between the test binaries that include this engine.
pub(super) struct Harness {
    /// The including module's ignored child test, as libtest names it
    /// (`crash_kill::child_workload`). It must call [`child_workload`].
    pub child_test: &'static str,
    /// The maintenance calls.
    pub maintenance: &'static [Maintenance],
    /// `verify()` runs after every this many reopens, and after the last.
    /// It reads the whole data file, which in a store that is never
    /// compacted grows by megabytes a cycle.
    pub verify_every_cycles: u64,
}

impl Harness {
    /// Operations per thousand that are maintenance calls.
    fn maintenance_per_mille(&self) -> u64 {
        self.maintenance.iter().map(|m| m.per_mille).sum()
    }

    /// The maintenance call drawn as `r`, for `r` below
    /// [`Self::maintenance_per_mille`].
    fn maintenance_at(&self, mut r: u64) -> usize {
        for (k, m) in self.maintenance.iter().enumerate() {
            if r < m.per_mille {
                return k;
            }
            r -= m.per_mille;
        }
        unreachable!("r is below the maintenance share")
    }
}

/// xorshift64*: tiny, seedable, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // splitmix64 once, so nearby seeds give unrelated streams.
        Self(splitmix(seed) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The seed of a test: `QUIVER_TEST_SEED` if set, else the clock; printed.
fn test_seed(test: &str) -> u64 {
    let seed = std::env::var("QUIVER_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    println!("{test}: seed {seed} (set QUIVER_TEST_SEED={seed} to repeat)");
    seed
}

/// Which write a stored vector came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tag {
    /// Global operation number.
    op: u64,
    /// Position in the batch (0 for single stores).
    pos: u32,
}

/// The vector written for `id` by operation `op` at batch position `pos`:
/// 16-bit pieces of id and op number, the position, then values derived
/// from all three. Every element is an integer below 2^24, exact in `f32`.
fn value(id: u64, tag: Tag) -> Vec<f32> {
    let mut v = vec![0f32; DIM];
    for j in 0..4 {
        v[j] = ((id >> (16 * j)) & 0xFFFF) as f32;
        v[4 + j] = ((tag.op >> (16 * j)) & 0xFFFF) as f32;
    }
    v[8] = tag.pos as f32;
    let mut h = id ^ tag.op.rotate_left(17) ^ u64::from(tag.pos).rotate_left(41);
    for x in &mut v[9..] {
        h = splitmix(h);
        *x = (h >> 40) as f32;
    }
    v
}

/// Reads back the id and tag a vector names, if it is exactly the value
/// that write stored (anything else is a torn or foreign vector).
fn decode(v: &[f32]) -> Option<(u64, Tag)> {
    if v.len() != DIM || v.iter().any(|x| !(0.0..16_777_216.0).contains(x)) {
        return None;
    }
    let (mut id, mut op) = (0u64, 0u64);
    for j in 0..4 {
        id |= (v[j] as u64) << (16 * j);
        op |= (v[4 + j] as u64) << (16 * j);
    }
    let tag = Tag { op, pos: v[8] as u32 };
    (value(id, tag) == v).then_some((id, tag))
}

/// One call the child makes.
#[derive(Clone, Debug)]
enum Op {
    Store(u64),
    Batch(Vec<u64>),
    Delete(u64),
    /// `Harness::maintenance[i]`.
    Maintain(usize),
    Flush,
}

fn pick_id(rng: &mut Rng) -> u64 {
    if rng.below(10) == 0 { u64::MAX - rng.below(BIG_IDS) } else { rng.below(SMALL_IDS) }
}

/// The next operation of a seeded sequence. It depends only on the rng, not
/// on the store's contents, so the parent can regenerate it.
fn gen_op(rng: &mut Rng, level: Durability, harness: &Harness) -> Op {
    let maintenance_end = harness.maintenance_per_mille();
    match rng.below(1000) {
        r if r < maintenance_end => Op::Maintain(harness.maintenance_at(r)),
        r if r < maintenance_end + FLUSH_PER_MILLE => {
            if level == Durability::Deferred {
                Op::Flush
            } else {
                Op::Store(pick_id(rng))
            }
        }
        0..STORES_END_PER_MILLE => Op::Store(pick_id(rng)),
        // Overwrites of a small hot set, almost always present.
        STORES_END_PER_MILLE..580 => Op::Store(rng.below(8)),
        580..720 => Op::Delete(pick_id(rng)),
        _ => {
            let len = 1 + rng.below(50) as usize;
            let ids = if rng.below(4) == 0 {
                // Few distinct ids: duplicates, whose last occurrence wins.
                let base = rng.below(SMALL_IDS - 8);
                (0..len).map(|_| base + rng.below(1 + len as u64 / 3)).collect()
            } else {
                (0..len).map(|_| pick_id(rng)).collect()
            };
            Op::Batch(ids)
        }
    }
}

/// The child's and the parent's options: small files and steps, so growth
/// happens often.
fn options(level: Durability) -> StoreOptions {
    StoreOptions::new(DIM)
        .initial_file_bytes(64 << 10)
        .growth_step_bytes(64 << 10, 1 << 20)
        .durability(level)
        .checkpoint_wal_bytes(64 << 10)
        .inline_batch_max_bytes(INLINE_MAX_BYTES)
        .map_window_bytes(4 << 20)
}

fn level_name(level: Durability) -> &'static str {
    match level {
        Durability::Sync => "sync",
        Durability::Buffered => "buffered",
        _ => "deferred",
    }
}

fn level_from_name(name: &str) -> Durability {
    match name {
        "sync" => Durability::Sync,
        "buffered" => Durability::Buffered,
        "deferred" => Durability::Deferred,
        other => panic!("unknown durability level {other:?}"),
    }
}

/// Writes one line to the parent; false once the parent is gone (stdout
/// closed), which tells the child to stop.
fn tell(out: &mut impl Write, line: std::fmt::Arguments<'_>) -> bool {
    writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
}

/// The body of the child test: when the parent's environment variables are
/// set, opens the store and writes until it is killed, acknowledging every
/// returned call on stdout. Without the variables it returns at once.
pub(super) fn child_workload(harness: &Harness) {
    let Ok(dir) = std::env::var(ENV_DIR) else { return };
    let seed: u64 = std::env::var(ENV_SEED).expect("seed").parse().expect("numeric seed");
    let base: u64 = std::env::var(ENV_BASE).expect("base").parse().expect("numeric base");
    let level = level_from_name(&std::env::var(ENV_LEVEL).expect("level"));
    let mut out = std::io::stdout().lock();
    let store = open_when_unlocked(&options(level), Path::new(&dir)).expect("child open");
    // A leading newline keeps the marker at the start of a line whatever
    // the test harness printed before it.
    if !tell(&mut out, format_args!("\n@open")) {
        return;
    }
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    for i in 0u64.. {
        if started.elapsed() > CHILD_MAX_RUN {
            return;
        }
        let op_number = base + i;
        match gen_op(&mut rng, level, harness) {
            Op::Store(id) => store.store(id, &value(id, Tag { op: op_number, pos: 0 })).expect("store"),
            Op::Batch(ids) => {
                let values: Vec<(u64, Vec<f32>)> = ids
                    .iter()
                    .enumerate()
                    .map(|(pos, &id)| (id, value(id, Tag { op: op_number, pos: pos as u32 })))
                    .collect();
                let refs: Vec<(u64, &[f32])> = values.iter().map(|(id, v)| (*id, &v[..])).collect();
                store.store_batch(&refs).expect("store_batch");
            }
            Op::Delete(id) => {
                store.delete(id).expect("delete");
            }
            Op::Maintain(k) => {
                let m = &harness.maintenance[k];
                if !tell(&mut out, format_args!("@{}-start {i}", m.name)) {
                    return;
                }
                (m.run)(&store).unwrap_or_else(|e| panic!("{}: {e}", m.name));
                if !tell(&mut out, format_args!("@{}-end {i}", m.name)) {
                    return;
                }
            }
            Op::Flush => store.flush().expect("flush"),
        }
        if !tell(&mut out, format_args!("@ack {i}")) {
            return;
        }
    }
}

/// Opens the store, retrying for a while if it is locked.
///
/// Under `cargo test` the crash tests run as threads of one process, and a
/// thread that spawns its child forks a copy of every open descriptor,
/// including another test's lock file. The copy is close-on-exec, but until
/// the exec completes it shares the `flock`, so the owner's next open can
/// find its own store locked for a moment after closing it. Waiting is the
/// only cure; a lock that outlives the wait is a real failure.
fn open_when_unlocked(opts: &StoreOptions, path: &Path) -> Result<VectorStore<f32>, Error> {
    let started = Instant::now();
    loop {
        match opts.open(path) {
            Err(Error::Locked { .. }) if started.elapsed() < Duration::from_secs(5) => {
                std::thread::sleep(Duration::from_millis(1));
            }
            result => return result,
        }
    }
}

/// What the parent learned from one child.
struct ChildRun {
    /// When the child printed `@open`, counted from its spawn; `None` if
    /// the kill landed before open returned.
    opened: Option<Duration>,
    /// Calls acknowledged (`@ack 0..acked`).
    acked: u64,
    /// The maintenance call the kill landed in (started, not ended).
    killed_in: Option<String>,
}

/// What the child's stdout said, line by line.
#[derive(Default)]
struct ChildLines {
    opened: Option<Duration>,
    acked: u64,
    in_maintenance: Option<String>,
    /// The last lines that were not markers, for a failure message.
    tail: Vec<String>,
}

impl ChildLines {
    fn read(&mut self, line: &str, started: Instant) {
        if line.contains("@open") {
            self.opened = Some(started.elapsed());
            return;
        }
        let marker = line.trim().strip_prefix('@').and_then(|s| s.split_once(' '));
        let Some((what, i)) = marker.and_then(|(what, i)| Some((what, i.parse::<u64>().ok()?))) else {
            self.tail.push(line.to_owned());
            if self.tail.len() > 50 {
                self.tail.remove(0);
            }
            return;
        };
        assert_eq!(i, self.acked, "markers name the call after the last acknowledged one: {line:?}");
        if what == "ack" {
            assert!(self.in_maintenance.is_none(), "call {i} acknowledged inside {:?}", self.in_maintenance);
            self.acked = i + 1;
        } else if let Some(name) = what.strip_suffix("-start") {
            assert!(self.in_maintenance.is_none(), "{line:?} inside {:?}", self.in_maintenance);
            self.in_maintenance = Some(name.to_owned());
        } else if let Some(name) = what.strip_suffix("-end") {
            assert_eq!(self.in_maintenance.take().as_deref(), Some(name), "{line:?} ends what did not start");
        } else {
            panic!("unknown marker {line:?}");
        }
    }
}

fn run_child(
    harness: &Harness,
    exe: &Path,
    dir: &Path,
    level: Durability,
    seed: u64,
    base: u64,
    kill_after: Duration,
) -> ChildRun {
    let mut child = Command::new(exe)
        .args([harness.child_test, "--exact", "--nocapture", "--include-ignored"])
        .env(ENV_DIR, dir)
        .env(ENV_SEED, seed.to_string())
        .env(ENV_BASE, base.to_string())
        .env(ENV_LEVEL, level_name(level))
        .env_remove("QUIVER_TEST_SEED")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child test binary");
    let started = Instant::now();
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut lines = ChildLines::default();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            lines.read(&line, started);
        }
        lines
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    std::thread::sleep(kill_after.saturating_sub(started.elapsed()));
    let early_exit = child.try_wait().expect("poll the child");
    // `kill` sends SIGKILL.
    child.kill().expect("kill the child");
    let status = child.wait().expect("reap the child");
    let lines = reader.join().expect("stdout reader");
    let stderr = err_reader.join().expect("stderr reader");
    assert!(
        early_exit.is_none() && status.signal() == Some(9),
        "the child must still be running when killed, but it ended with {status:?}\nstdout: {}\nstderr: {stderr}",
        lines.tail.join("\n")
    );
    ChildRun { opened: lines.opened, acked: lines.acked, killed_in: lines.in_maintenance }
}

/// The store's contents, id -> the write each vector came from.
type State = BTreeMap<u64, Tag>;

/// Applies operation `i` of a cycle (numbered from `base`) to `state`;
/// returns the ids it touched.
fn apply(state: &mut State, op: &Op, op_number: u64) -> Vec<u64> {
    match op {
        Op::Store(id) => {
            state.insert(*id, Tag { op: op_number, pos: 0 });
            vec![*id]
        }
        Op::Batch(ids) => {
            for (pos, &id) in ids.iter().enumerate() {
                state.insert(id, Tag { op: op_number, pos: pos as u32 });
            }
            ids.clone()
        }
        Op::Delete(id) => {
            state.remove(id);
            vec![*id]
        }
        Op::Maintain(_) | Op::Flush => Vec::new(),
    }
}

/// Reads every vector of `store`, checking each is exactly some write's.
fn read_state(store: &VectorStore<f32>) -> Result<State, String> {
    let ids = store.ids();
    if ids.len() != store.len() {
        return Err(format!("ids() lists {} ids but len() is {}", ids.len(), store.len()));
    }
    let mut state = State::new();
    for id in ids {
        let v = store.retrieve(id).ok_or_else(|| format!("id {id} is listed but not readable"))?;
        match decode(&v) {
            Some((named, tag)) if named == id => {
                state.insert(id, tag);
            }
            Some((named, tag)) => return Err(format!("id {id} holds the vector written for id {named} by {tag:?}")),
            None => return Err(format!("id {id} holds a torn or foreign vector: {v:?}")),
        }
    }
    Ok(state)
}

/// Finds the prefix length `k` in `required..=ops.len()` for which the model
/// equals what is on disk.
fn matching_prefix(before: &State, disk: &State, ops: &[Op], base: u64, required: usize) -> Option<usize> {
    let mut model = before.clone();
    for (i, op) in ops[..required].iter().enumerate() {
        apply(&mut model, op, base + i as u64);
    }
    let mut differing: BTreeSet<u64> =
        model.keys().chain(disk.keys()).filter(|id| model.get(id) != disk.get(id)).copied().collect();
    if differing.is_empty() {
        return Some(required);
    }
    for (i, op) in ops.iter().enumerate().skip(required) {
        for id in apply(&mut model, op, base + i as u64) {
            if model.get(&id) == disk.get(&id) {
                differing.remove(&id);
            } else {
                differing.insert(id);
            }
        }
        if differing.is_empty() {
            return Some(i + 1);
        }
    }
    None
}

/// A readable account of how `disk` differs from the model after the
/// required prefix, for a failure message.
fn explain(before: &State, disk: &State, ops: &[Op], base: u64, required: usize) -> String {
    let mut model = before.clone();
    for (i, op) in ops[..required].iter().enumerate() {
        apply(&mut model, op, base + i as u64);
    }
    let mut lines: Vec<String> = model
        .keys()
        .chain(disk.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|id| model.get(id) != disk.get(id))
        .take(12)
        .map(|id| format!("  id {id}: expected {:?}, found {:?}", model.get(id), disk.get(id)))
        .collect();
    lines.push(format!("  ops after the required prefix: {:?}", &ops[required..]));
    lines.join("\n")
}

/// Checks that the reopened store at `path` holds exactly one generation
/// and, if `verify`, that `verify()` finds nothing wrong; returns the
/// generation.
fn check_one_generation(path: &Path, store: &VectorStore<f32>, verify: bool) -> Result<u32, String> {
    let mut names = Vec::new();
    for dir in [path.to_path_buf(), path.join(WAL_DIR)] {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("listing {}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("listing {}: {e}", dir.display()))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    let data: Vec<&String> = names.iter().filter(|n| n.starts_with("data-") && n.ends_with(".qvd")).collect();
    let snapshots = names.iter().filter(|n| n.starts_with("snapshot-") && n.ends_with(".qvs")).count();
    if data.len() != 1 || snapshots > 1 || names.iter().any(|n| n.ends_with(TEMP_SUFFIX)) {
        return Err(format!(
            "after open the store must hold one data file, at most one snapshot and no temp file: {names:?}"
        ));
    }
    let generation = data[0]
        .strip_prefix("data-")
        .and_then(|n| n.strip_suffix(".qvd"))
        .and_then(|n| n.parse::<u32>().ok())
        .ok_or_else(|| format!("unexpected data file name {}", data[0]))?;
    if verify {
        let report = store.verify().map_err(|e| format!("verify: {e}"))?;
        if !report.is_clean() {
            return Err(format!("verify found problems: {:?}", report.problems));
        }
    }
    Ok(generation)
}

/// Totals of one crash test, printed at its end.
#[derive(Debug, Default)]
pub(super) struct Totals {
    pub cycles: u64,
    pub acked_ops: u64,
    pub kills_during_open: u64,
    /// Kills that left a checkpoint's temp file behind (snapshot or manifest
    /// being written), which open then removed.
    pub kills_mid_checkpoint: u64,
    /// Acknowledged maintenance calls, by name.
    pub maintenance_acked: BTreeMap<String, u64>,
    /// Kills that landed inside a maintenance call, by name.
    pub kills_during_maintenance: BTreeMap<String, u64>,
    /// Opens that removed the data file of a generation the manifest does
    /// not name (a kill inside a generation switch).
    pub other_generation_removed: u64,
    /// The generation after the last reopen.
    pub generation: u32,
    /// Reopens checked with `verify()`.
    pub verified: u64,
    open_times: Vec<Duration>,
    in_flight_present: u64,
    deferred_lost: u64,
    torn_tails: u64,
    /// Changes an index kept beside the store caught up through the feed.
    pub feed_changes: u64,
    /// Times that index was rebuilt because a compaction dropped the
    /// history after its LSN.
    pub feed_rebuilds: u64,
}

/// An index kept beside the store by the parent across every kill, as an
/// application would keep one: the state it holds and the LSN it applied.
/// After each reopen it follows `changes_since(lsn)`; when a compaction
/// dropped that history it rebuilds from a snapshot. Returns the changes
/// applied, or `None` for a rebuild.
fn catch_up(index: &mut State, lsn: &mut u64, store: &VectorStore<f32>) -> Result<Option<u64>, String> {
    let feed = match store.changes_since(*lsn) {
        Ok(feed) => feed,
        Err(Error::ChangesCompacted { .. }) => {
            let snapshot = store.snapshot();
            *index = State::new();
            for (id, v) in snapshot.iter() {
                let (_, tag) = decode(v).ok_or_else(|| format!("id {id} holds a torn vector in the snapshot"))?;
                index.insert(id, tag);
            }
            *lsn = snapshot.lsn();
            return Ok(None);
        }
        Err(e) => return Err(format!("changes_since({lsn}) after the kill: {e}")),
    };
    let mut applied = 0;
    for change in &feed {
        match change.map_err(|e| format!("the change feed after LSN {lsn}: {e}"))? {
            quiver_storage::Change::Put { id, vector, .. } => {
                let (named, tag) = decode(vector).ok_or_else(|| format!("the feed's put of id {id} is torn"))?;
                if named != id {
                    return Err(format!("the feed's put of id {id} holds the vector of id {named}"));
                }
                index.insert(id, tag);
            }
            quiver_storage::Change::Delete { id, .. } => {
                index.remove(&id);
            }
        }
        applied += 1;
    }
    *lsn = feed.lsn();
    Ok(Some(applied))
}

/// Runs `cycles` kill-and-check cycles at `level` on one directory, prints
/// the totals and returns them.
pub(super) fn crash_cycles(harness: &Harness, name: &str, level: Durability, cycles: u64) -> Totals {
    assert!(harness.maintenance_per_mille() + FLUSH_PER_MILLE <= STORES_END_PER_MILLE, "too many maintenance calls");
    let seed = test_seed(name);
    let mut rng = Rng::new(seed);
    let exe = this_binary();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    let opts = options(level);
    let mut before = State::new();
    let (mut feed_index, mut feed_lsn) = (State::new(), 0u64);
    let mut totals = Totals { generation: 1, ..Totals::default() };
    let mut last_open_time = Duration::from_millis(4);
    let started = Instant::now();
    for cycle in 0..cycles {
        let child_seed = rng.next();
        let base = (cycle + 1) << 32;
        // Most kills come 5..80 ms after the spawn, in the write loop. A
        // quarter are aimed at start-up and open: anywhere up to twice the
        // last observed spawn-to-open time (open takes a few ms here).
        let kill_after = if rng.below(4) == 0 {
            Duration::from_micros(rng.below(2 * last_open_time.as_micros() as u64 + 1))
        } else {
            Duration::from_millis(5 + rng.below(76))
        };
        let run = run_child(harness, &exe, &path, level, child_seed, base, kill_after);
        let context = format!(
            "{name} seed {seed}, cycle {cycle} (child seed {child_seed}, killed after {kill_after:?}, {} acked{})",
            run.acked,
            run.killed_in.as_ref().map(|m| format!(", inside {m}")).unwrap_or_default()
        );

        // Regenerate the child's calls: the acknowledged ones and the one in
        // flight.
        let mut op_rng = Rng::new(child_seed);
        let ops: Vec<Op> = (0..=run.acked).map(|_| gen_op(&mut op_rng, level, harness)).collect();
        let acked = run.acked as usize;
        let required = if level == Durability::Deferred {
            ops[..acked].iter().rposition(|op| matches!(op, Op::Flush | Op::Maintain(_))).unwrap_or(0)
        } else {
            acked
        };
        let maintenance_of = |op: &Op| match op {
            Op::Maintain(k) => Some(&harness.maintenance[*k]),
            _ => None,
        };
        if let Some(m) = &run.killed_in {
            assert_eq!(maintenance_of(&ops[acked]).map(|m| m.name), Some(m.as_str()), "{context}: the child's markers");
        }

        let store = open_when_unlocked(&opts, &path).unwrap_or_else(|e| panic!("{context}: open after the kill: {e}"));
        let report = store.recovery_report().clone();
        assert!(
            !matches!(report.snapshot, SnapshotOutcome::Rebuilt { .. }),
            "{context}: a kill never damages the snapshot, yet open rebuilt: {:?}",
            report.snapshot
        );
        let disk = read_state(&store).unwrap_or_else(|e| panic!("{context}: {e}"));
        let Some(k) = matching_prefix(&before, &disk, &ops, base, required) else {
            panic!(
                "{context}: the store matches no prefix of the calls from {required} to {} \
                 (required {required} by {level:?}):\n{}",
                ops.len(),
                explain(&before, &disk, &ops, base, required)
            );
        };

        // One generation, and exactly the switches that were acknowledged,
        // plus the one in flight if it reached its commit point.
        let verify = (cycle + 1) % harness.verify_every_cycles.max(1) == 0 || cycle + 1 == cycles;
        let generation = check_one_generation(&path, &store, verify).unwrap_or_else(|e| panic!("{context}: {e}"));
        totals.verified += u64::from(verify);
        let switches = |ops: &[Op]| {
            ops.iter().filter(|op| maintenance_of(op).is_some_and(|m| m.switches_generation)).count() as u32
        };
        let lowest = totals.generation + switches(&ops[..acked]);
        let highest = totals.generation + switches(&ops);
        assert!(
            (lowest..=highest).contains(&generation),
            "{context}: generation {} before the cycle, {} acknowledged switches and {} in flight, \
             yet the store reopened in generation {generation}",
            totals.generation,
            lowest - totals.generation,
            highest - lowest
        );

        totals.cycles += 1;
        totals.acked_ops += run.acked;
        totals.kills_during_open += u64::from(run.opened.is_none());
        totals.open_times.extend(run.opened);
        last_open_time = run.opened.unwrap_or(last_open_time);
        totals.in_flight_present += u64::from(k > acked);
        totals.deferred_lost += acked.saturating_sub(k) as u64;
        totals.torn_tails += u64::from(report.torn_tail.is_some());
        let removed = |ext: &str| report.files_removed.iter().any(|p| p.extension().is_some_and(|e| e == ext));
        totals.kills_mid_checkpoint += u64::from(removed("tmp"));
        totals.other_generation_removed += u64::from(removed("qvd"));
        for m in ops[..acked].iter().filter_map(maintenance_of) {
            *totals.maintenance_acked.entry(m.name.to_owned()).or_default() += 1;
        }
        if let Some(m) = run.killed_in {
            *totals.kills_during_maintenance.entry(m).or_default() += 1;
        }
        // The index beside the store, caught up through the change feed,
        // holds exactly what the reopened store holds.
        match catch_up(&mut feed_index, &mut feed_lsn, &store).unwrap_or_else(|e| panic!("{context}: {e}")) {
            Some(applied) => totals.feed_changes += applied,
            None => totals.feed_rebuilds += 1,
        }
        assert!(feed_index == disk, "{context}: the index caught up through the change feed differs from the store");

        totals.generation = generation;
        before = disk;

        // Alternate clean closes (the next child loads a snapshot) with
        // drops (the next child replays the WAL).
        if rng.below(2) == 0 {
            store.close().unwrap_or_else(|e| panic!("{context}: close: {e}"));
        } else {
            drop(store);
        }
    }
    totals.open_times.sort();
    println!(
        "{name}: {} cycles, {} acknowledged ops, {} kills during open (median spawn-to-open {:.1?}), \
         maintenance calls acknowledged {:?}, kills during maintenance {:?}, \
         {} kills mid-checkpoint (a temp file left), {} opens removed another generation's data file, \
         generation {} at the end, {} reopens verified, {} in-flight ops found applied, \
         {} acked ops lost after the last flush (Deferred only), \
         {} torn tails cut, {} changes followed by an index beside the store ({} rebuilds after compaction), \
         {} ids live, {} KiB on disk, {:.1?}",
        totals.cycles,
        totals.acked_ops,
        totals.kills_during_open,
        totals.open_times.get(totals.open_times.len() / 2).copied().unwrap_or_default(),
        totals.maintenance_acked,
        totals.kills_during_maintenance,
        totals.kills_mid_checkpoint,
        totals.other_generation_removed,
        totals.generation,
        totals.verified,
        totals.in_flight_present,
        totals.deferred_lost,
        totals.torn_tails,
        totals.feed_changes,
        totals.feed_rebuilds,
        before.len(),
        dir_bytes(&path) >> 10,
        started.elapsed()
    );
    assert!(totals.acked_ops > 0, "{name}: the children acknowledged nothing; the test tested nothing");
    totals
}

/// Bytes of every file under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => dir_bytes(&e.path()),
                    _ => e.metadata().map_or(0, |m| m.len()),
                })
                .sum()
        })
        .unwrap_or(0)
}

/// The running test binary, to re-execute as the child. On Linux this is
/// `/proc/self/exe`, which names the running binary's inode even after a
/// concurrent `cargo build` replaces or deletes the file at
/// `current_exe()`: the child must run exactly the parent's code, or a
/// newer build's child could write what this parent cannot read.
fn this_binary() -> PathBuf {
    let proc_exe = Path::new("/proc/self/exe");
    if proc_exe.exists() { proc_exe.to_path_buf() } else { std::env::current_exe().expect("the test binary's path") }
}

/// `QUIVER_KILL_CYCLES` if set, else `default`: the cycles of a test's
/// base case, which the other tests of a binary scale down.
pub(super) fn cycles_from_env(default: u64) -> u64 {
    std::env::var("QUIVER_KILL_CYCLES").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}
