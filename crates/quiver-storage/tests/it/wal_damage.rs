//! Proves recovery from a damaged WAL tail: truncated at every byte of its
//! last frames, garbage or zeros appended, a bit flipped, a valid-looking
//! frame placed after a torn one. Each case opens, holds exactly the batches
//! whose frames come before the damage (whole batches, nothing after a bad
//! frame, nothing resurrected), reports the cut in
//! `recovery_report().torn_tail`, and takes writes that survive the next
//! reopen.
//!
//! Also proves the data-file side of replay: a location batch (one whose
//! vectors are only in the data file) whose records fail their checksums is
//! the torn end, and an inline batch's damaged records are rewritten from
//! the WAL.
//!
//! One store is written once (a handful of batches, dropped without close so
//! the WAL holds them); every case works on its own copy of the directory.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;
use quiver_storage::format::wal_frame::{FrameRead, SegmentHeader, decode_batch, next_frame};
use quiver_storage::format::{DATA_HEADER_BYTES, data_file_name, record_size_bytes};
use quiver_storage::{StoreOptions, VectorStore};

const DIM: usize = 4;

/// One logged operation; each is exactly one WAL frame.
#[derive(Clone, Debug)]
enum Op {
    /// `store_batch` of `(id, version)` pairs.
    Batch(Vec<(u64, u64)>),
    /// `delete` of an id that is present.
    Delete(u64),
}

/// The written sequence. The last three frames (ops 5, 6, 7) overwrite,
/// delete and overwrite again, so every prefix is a different state; op 0's
/// values are all overwritten or deleted later, so replaying its frame out
/// of place would show.
fn ops() -> Vec<Op> {
    vec![
        Op::Batch(vec![(1, 0), (2, 0), (3, 0)]),
        Op::Batch(vec![(4, 0), (5, 0)]),
        Op::Batch(vec![(1, 1), (6, 0)]),
        Op::Delete(2),
        Op::Batch(vec![(7, 0)]),
        Op::Batch(vec![(3, 1), (8, 0)]),
        Op::Delete(4),
        Op::Batch(vec![(1, 2)]),
    ]
}

/// Ops for the data-file cases, with the inline limit at two vectors:
/// ops 1 and 3 are location batches, the others inline.
fn location_ops() -> Vec<Op> {
    vec![
        Op::Batch(vec![(1, 0), (2, 0)]),
        Op::Batch(vec![(3, 0), (4, 0), (5, 0), (1, 1)]),
        Op::Delete(2),
        Op::Batch(vec![(6, 0), (7, 0), (3, 1)]),
        Op::Batch(vec![(8, 0)]),
    ]
}

fn location_options() -> StoreOptions {
    small(DIM).inline_batch_max_bytes(2 * DIM * 4)
}

/// The store's contents after the first `n` of `ops`.
fn model_after(ops: &[Op], n: usize) -> BTreeMap<u64, Vec<f32>> {
    let mut m = BTreeMap::new();
    for op in &ops[..n] {
        match op {
            Op::Batch(pairs) => {
                for &(id, version) in pairs {
                    m.insert(id, vector(id, version, DIM));
                }
            }
            Op::Delete(id) => {
                m.remove(id);
            }
        }
    }
    m
}

fn assert_holds(s: &VectorStore<f32>, model: &BTreeMap<u64, Vec<f32>>, context: &str) {
    let mut ids = s.ids();
    ids.sort_unstable();
    assert_eq!(ids, model.keys().copied().collect::<Vec<_>>(), "{context}: ids");
    for (id, v) in model {
        assert_eq!(s.retrieve(*id).as_ref(), Some(v), "{context}: id {id}");
    }
}

/// A written store (dropped, not closed) and where its frames are.
struct Pristine {
    _dir: tempfile::TempDir,
    path: PathBuf,
    ops: Vec<Op>,
    opts: StoreOptions,
    /// The segment holding the frames, relative to the store directory.
    segment: PathBuf,
    /// The segment's bytes.
    bytes: Vec<u8>,
    /// Frame boundaries: `bounds[i]` is where frame `i` starts; the last
    /// entry is the end of the last frame.
    bounds: Vec<usize>,
}

/// Frame boundaries of a segment, walking the checksum chain.
fn frame_bounds(bytes: &[u8]) -> Vec<usize> {
    let (_, mut crc) = SegmentHeader::decode_from(bytes).expect("a valid segment header");
    let mut offset = SegmentHeader::ENCODED_LEN;
    let mut bounds = vec![offset];
    loop {
        match next_frame(bytes, offset, crc) {
            FrameRead::Frame { crc: c, next_offset, .. } => {
                crc = c;
                offset = next_offset;
                bounds.push(offset);
            }
            FrameRead::End => return bounds,
            FrameRead::Invalid(e) => panic!("the pristine segment has a bad frame at {offset}: {e:?}"),
        }
    }
}

fn write_pristine() -> Pristine {
    write_store(ops(), small(DIM))
}

fn write_store(ops: Vec<Op>, opts: StoreOptions) -> Pristine {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = store_path(&dir);
    {
        let s = open(&path, &opts);
        for op in ops.clone() {
            match op {
                Op::Batch(pairs) => {
                    let vs: Vec<(u64, Vec<f32>)> = pairs.iter().map(|&(id, ver)| (id, vector(id, ver, DIM))).collect();
                    let refs: Vec<(u64, &[f32])> = vs.iter().map(|(i, v)| (*i, &v[..])).collect();
                    assert_eq!(s.store_batch(&refs).expect("store_batch"), pairs.len());
                }
                Op::Delete(id) => assert!(s.delete(id).expect("delete"), "id {id} was present"),
            }
        }
        // Dropped without close: Drop does not checkpoint, the WAL keeps
        // every frame.
    }
    let wal = path.join("wal");
    let mut segments: Vec<PathBuf> = fs::read_dir(&wal)
        .expect("list wal/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "qwal"))
        .collect();
    segments.sort();
    // The newest segment that holds frames.
    let (segment, bytes, bounds) = segments
        .iter()
        .rev()
        .find_map(|p| {
            let bytes = fs::read(p).expect("read a segment");
            let bounds = frame_bounds(&bytes);
            (bounds.len() > 1).then(|| (p.clone(), bytes, bounds))
        })
        .expect("a segment with frames");
    assert_eq!(bounds.len() - 1, ops.len(), "one frame per batch");
    assert_eq!(*bounds.last().expect("bounds"), bytes.len(), "the segment ends with its last frame");
    let segment = segment.strip_prefix(&path).expect("inside the store").to_path_buf();
    Pristine { _dir: dir, path, ops, opts, segment, bytes, bounds }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir(to).expect("create the copy");
    for e in fs::read_dir(from).expect("list") {
        let e = e.expect("dir entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            fs::copy(e.path(), &target).expect("copy a file");
        }
    }
}

/// What a case must find at open.
struct Expect {
    /// Ops whose frames come before the damage.
    whole_ops: usize,
    /// Where the valid prefix ends if a torn tail must be reported.
    torn_at: Option<u64>,
}

/// Copies the pristine store, replaces its segment with `damaged`, opens and
/// checks `expect`; then writes, drops, reopens and checks the write.
fn check_case(p: &Pristine, name: &str, damaged: &[u8], expect: Expect) {
    check_damage(p, name, &|segment: &Path| fs::write(segment, damaged).expect("write the damaged segment"), expect);
}

/// Like [`check_case`], with `damage` given the copy's segment path to
/// damage whatever it likes in the copied store.
fn check_damage(p: &Pristine, name: &str, damage: &dyn Fn(&Path), expect: Expect) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    copy_dir(&p.path, &path);
    let segment = path.join(&p.segment);
    damage(&segment);
    let damaged_len = fs::metadata(&segment).expect("segment length").len();
    let mut model = model_after(&p.ops, expect.whole_ops);
    {
        let s = open(&path, &p.opts);
        let report = s.recovery_report();
        match (&report.torn_tail, expect.torn_at) {
            (None, None) => {}
            (Some(t), Some(at)) => {
                assert_eq!(t.path, segment, "{name}: torn tail path");
                assert_eq!(t.offset, at, "{name}: torn tail offset ({})", t.reason);
                assert_eq!(t.bytes_cut, damaged_len - at, "{name}: bytes cut");
            }
            (got, want) => panic!("{name}: torn tail {got:?}, expected one at {want:?}"),
        }
        assert_eq!(report.batches_replayed, expect.whole_ops as u64, "{name}: batches replayed");
        assert_holds(&s, &model, name);
        s.store(100, &vector(100, 9, DIM)).expect("write after recovery");
        model.insert(100, vector(100, 9, DIM));
        // Overwrite an id the damaged batches touched, so a stale frame
        // replayed later would show.
        s.store(1, &vector(1, 7, DIM)).expect("overwrite after recovery");
        model.insert(1, vector(1, 7, DIM));
    }
    let s = open(&path, &p.opts);
    assert!(s.recovery_report().torn_tail.is_none(), "{name}: the second open finds a clean WAL");
    assert_holds(&s, &model, &format!("{name}, after a write and another reopen"));
}

fn seed() -> u64 {
    let seed = std::env::var("QUIVER_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    println!("wal_damage seed: {seed} (set QUIVER_TEST_SEED to repeat)");
    seed | 1
}

fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

// Proves that truncating the WAL at every byte offset within its last three
// frames loses exactly the frames cut, reports a torn tail exactly when the
// cut is mid-frame, and leaves a store whose next writes survive a reopen.
#[test]
fn truncation_at_every_byte_of_the_last_frames() {
    let p = write_pristine();
    let n = p.bounds.len() - 1;
    let lengths: Vec<usize> = (p.bounds[n - 3]..p.bounds[n]).collect();
    // Each case waits mostly on fsync; a few threads overlap the waits.
    const THREADS: usize = 4;
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (p, lengths) = (&p, &lengths);
            scope.spawn(move || {
                for &len in lengths.iter().skip(t).step_by(THREADS) {
                    let whole_ops = p.bounds[1..].iter().filter(|&&b| b <= len).count();
                    let at_boundary = p.bounds.contains(&len);
                    let expect = Expect { whole_ops, torn_at: (!at_boundary).then_some(p.bounds[whole_ops] as u64) };
                    check_case(p, &format!("truncated to {len}"), &p.bytes[..len], expect);
                }
            });
        }
    });
    assert!(lengths.len() > 3 * 56, "every byte of three frames was cut: {}", lengths.len());
}

// Proves random bytes appended after the last frame are cut off as a torn
// tail and every batch is kept.
#[test]
fn garbage_tail_keeps_every_batch() {
    let p = write_pristine();
    let seed = seed();
    for (i, n) in [1usize, 7, 8, 100, 5000].into_iter().enumerate() {
        let mut bytes = p.bytes.clone();
        bytes.extend(random_bytes(seed.wrapping_add(i as u64), n));
        let expect = Expect { whole_ops: p.ops.len(), torn_at: Some(p.bytes.len() as u64) };
        check_case(&p, &format!("{n} garbage bytes appended, seed {seed}"), &bytes, expect);
    }
}

// Proves a zeroed tail (as a file extended without its data written leaves)
// is cut off and every batch is kept.
#[test]
fn zeroed_tail_keeps_every_batch() {
    let p = write_pristine();
    for n in [4usize, 8, 4096] {
        let mut bytes = p.bytes.clone();
        bytes.extend(std::iter::repeat_n(0u8, n));
        let expect = Expect { whole_ops: p.ops.len(), torn_at: Some(p.bytes.len() as u64) };
        check_case(&p, &format!("{n} zero bytes appended"), &bytes, expect);
    }
}

// Proves a single bit flipped in the middle of the last frame (length,
// checksum or payload) drops that batch, whole, and keeps the others.
#[test]
fn bit_flip_in_the_last_frame_drops_only_it() {
    let p = write_pristine();
    let n = p.bounds.len() - 1;
    let (start, end) = (p.bounds[n - 1], p.bounds[n]);
    for at in [start, start + 4, (start + end) / 2, end - 1] {
        for bit in [0u8, 5] {
            let mut bytes = p.bytes.clone();
            bytes[at] ^= 1 << bit;
            let expect = Expect { whole_ops: n - 1, torn_at: Some(start as u64) };
            check_case(&p, &format!("bit {bit} of byte {at} flipped"), &bytes, expect);
        }
    }
}

// Proves a bit flipped in an earlier frame stops replay there: the batches
// before it are kept and none after it is applied, even though their frames
// are intact (a batch is never applied after a missing one).
#[test]
fn bit_flip_in_an_earlier_frame_keeps_the_prefix_before_it() {
    let p = write_pristine();
    let (start, end) = (p.bounds[2], p.bounds[3]);
    let mut bytes = p.bytes.clone();
    bytes[(start + end) / 2] ^= 0x02;
    check_case(&p, "bit flipped in frame 2", &bytes, Expect { whole_ops: 2, torn_at: Some(start as u64) });
}

// Proves a checksum-valid frame placed after a torn one is never replayed:
// the last frame is cut mid-way, garbage follows, then a copy of frame 0
// (whose values were all overwritten or deleted later). Also proves a copy
// of frame 0 appended after the last whole frame is rejected by the chained
// checksum, so it resurrects nothing.
#[test]
fn valid_frame_after_a_torn_one_is_not_replayed() {
    let p = write_pristine();
    let n = p.bounds.len() - 1;
    let seed = seed();
    let frame0 = &p.bytes[p.bounds[0]..p.bounds[1]];
    let last_start = p.bounds[n - 1];

    let mut torn_then_valid = p.bytes[..last_start + 5].to_vec();
    torn_then_valid.extend(random_bytes(seed, 37));
    torn_then_valid.extend_from_slice(frame0);
    let expect = Expect { whole_ops: n - 1, torn_at: Some(last_start as u64) };
    check_case(&p, &format!("torn frame, garbage, copy of frame 0 (seed {seed})"), &torn_then_valid, expect);

    let mut stale_after_end = p.bytes.clone();
    stale_after_end.extend_from_slice(frame0);
    let expect = Expect { whole_ops: n, torn_at: Some(p.bytes.len() as u64) };
    check_case(&p, "copy of frame 0 after the last frame", &stale_after_end, expect);
}

/// The slots of frame `frame`'s records and whether the frame is inline.
fn frame_slots(p: &Pristine, frame: usize) -> (std::ops::Range<u64>, bool) {
    let start = p.bounds[frame];
    let payload = &p.bytes[start + 8..p.bounds[frame + 1]];
    let batch = decode_batch(payload, DIM * 4).expect("a valid frame decodes");
    (batch.first_slot..batch.first_slot + batch.entries.len() as u64, batch.payloads.is_some())
}

/// Applies `f` to the bytes of record `slot` in the copy's data file.
fn damage_record(segment: &Path, slot: u64, f: impl Fn(&mut [u8])) {
    let store = segment.parent().and_then(Path::parent).expect("segment is in <store>/wal");
    let data = store.join(data_file_name(1));
    let mut bytes = fs::read(&data).expect("read the data file");
    let size = record_size_bytes(DIM as u32, 4) as usize;
    let at = DATA_HEADER_BYTES as usize + slot as usize * size;
    f(&mut bytes[at..at + size]);
    fs::write(&data, bytes).expect("write the damaged data file");
}

// Proves a location batch whose records in the data file fail their
// checksums (a payload bit flipped, or the record never written) is the torn
// end of the WAL: it and every later batch are dropped, whole, the batches
// before it are kept, and the store takes writes again.
#[test]
fn location_batch_with_damaged_records_is_the_torn_end() {
    let p = write_store(location_ops(), location_options());
    for frame in [1usize, 3] {
        let (slots, inline) = frame_slots(&p, frame);
        assert!(!inline, "op {frame} is a location batch");
        let middle = slots.start + 1;
        let expect = || Expect { whole_ops: frame, torn_at: Some(p.bounds[frame] as u64) };
        let flip = |segment: &Path| damage_record(segment, middle, |r| r[64 + 3] ^= 0x08);
        check_damage(&p, &format!("payload bit flipped in slot {middle} of op {frame}"), &flip, expect());
        let zero = |segment: &Path| damage_record(segment, middle, |r| r.fill(0));
        check_damage(&p, &format!("slot {middle} of op {frame} zeroed"), &zero, expect());
    }
}

// Proves the records of an inline batch (whose vectors travel in the WAL
// frame) are rewritten from the WAL when the data file lost or damaged them:
// every batch is kept, no tail is cut, and the vectors read back exactly.
#[test]
fn inline_batch_records_are_rewritten_from_the_wal() {
    let p = write_store(location_ops(), location_options());
    let n = p.ops.len();
    let (slots, inline) = frame_slots(&p, n - 1);
    assert!(inline, "the last op is inline");
    let zero = |segment: &Path| {
        for slot in slots.clone() {
            damage_record(segment, slot, |r| r.fill(0));
        }
    };
    check_damage(&p, "the last inline batch's records zeroed", &zero, Expect { whole_ops: n, torn_at: None });
    let flip = |segment: &Path| damage_record(segment, slots.start, |r| r[64] ^= 0x01);
    check_damage(&p, "a payload bit of the last inline batch flipped", &flip, Expect { whole_ops: n, torn_at: None });
}
