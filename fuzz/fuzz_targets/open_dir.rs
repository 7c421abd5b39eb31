//! Fuzzes `open` on damaged store directories.
//!
//! Three small valid stores are built once per process: one checkpointed,
//! with a snapshot and WAL frames from two sessions, one location batch
//! among inline ones; one never checkpointed; one compacted into generation
//! 2 and written to since. Each input picks one, applies a list of
//! mutations to its files (truncate, flip, overwrite, zero, append, remove,
//! add a file, or write a well-formed manifest, snapshot, WAL frame, record
//! or header with chosen fields, so the fuzzer gets past the checksums),
//! writes the result to a fresh directory and opens it.
//!
//! Properties: `open` returns `Ok` or `Err`, never panics. If it opens:
//! `len` agrees with `ids`, every id's vector has the store's dimension,
//! `verify` returns; a new write is visible, a checkpoint returns, and the
//! store reopens with the same vectors plus that write.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use quiver_fuzz::{DIM, scratch_dir, small_options, vector, vector_bytes};
use quiver_storage::format::header::{DataFileHeader, FormatHeader, StoreShape};
use quiver_storage::format::manifest::Manifest;
use quiver_storage::format::record::{RecordHeader, RecordKind};
use quiver_storage::format::snapshot::{EMPTY_SLOT, TableImage};
use quiver_storage::format::wal_frame::{
    BatchEntry, FrameRead, SegmentHeader, decode_batch, encode_batch_into, next_frame,
};
use quiver_storage::format::{
    DATA_HEADER_BYTES, HEADER_FILE, MANIFEST_FILE, MAX_DIMENSION, WAL_DIR, data_file_name, record_size_bytes,
    snapshot_file_name, wal_segment_name,
};
use quiver_storage::{ElementType, VectorStore};

/// A store directory in memory: relative path -> bytes, and whether `wal/`
/// exists (it may be removed while files in it are not).
#[derive(Clone, Debug)]
struct Tree {
    files: BTreeMap<String, Vec<u8>>,
    wal_dir: bool,
}

/// Records are never written past this slot, so a mutation cannot make a
/// file large.
const MAX_MUTATED_SLOT: u64 = 4096;
/// Id of the write made after a successful open.
const PROBE_ID: u64 = 1_000_000;

#[derive(Arbitrary, Debug)]
struct Input {
    /// Bit 0 set: never checkpointed; else bit 1 set: compacted; else
    /// checkpointed. (Bit 0 alone decides between the first two, as when
    /// this was a `bool`, so older inputs keep their meaning.)
    template: u8,
    mutations: Vec<Mutation>,
}

#[derive(Clone, Copy)]
enum Template {
    Checkpointed,
    NeverCheckpointed,
    Compacted,
}

impl Template {
    fn from_byte(b: u8) -> Self {
        match (b & 1, b & 2) {
            (1, _) => Template::NeverCheckpointed,
            (_, 2) => Template::Compacted,
            _ => Template::Checkpointed,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Name {
    Header,
    Manifest,
    ManifestTemp,
    Lock,
    Data(u8),
    DataTemp(u8),
    Snapshot(u8, u8),
    Segment(u8),
    SegmentTemp(u8),
    Stray(u8),
}

impl Name {
    fn path(&self) -> String {
        match *self {
            Name::Header => HEADER_FILE.into(),
            Name::Manifest => MANIFEST_FILE.into(),
            Name::ManifestTemp => format!("{MANIFEST_FILE}.tmp"),
            Name::Lock => "LOCK".into(),
            Name::Data(g) => data_file_name(u32::from(g)),
            Name::DataTemp(g) => format!("{}.tmp", data_file_name(u32::from(g))),
            Name::Snapshot(g, lsn) => snapshot_file_name(u32::from(g), u64::from(lsn)),
            Name::Segment(s) => format!("{WAL_DIR}/{}", wal_segment_name(u64::from(s))),
            Name::SegmentTemp(s) => format!("{WAL_DIR}/{}.tmp", wal_segment_name(u64::from(s))),
            Name::Stray(n) => format!("stray-{n}"),
        }
    }
}

/// One change to the tree. `file` picks an existing file modulo their
/// number; offsets are taken modulo the file's length; deltas are relative
/// to what the tree currently says (manifest, last WAL frame).
#[derive(Arbitrary, Debug)]
enum Mutation {
    Truncate { file: u8, keep: u16 },
    CutTail { file: u8, bytes: u8 },
    FlipBit { file: u8, at: u16, bit: u8 },
    Overwrite { file: u8, at: u16, bytes: Vec<u8> },
    Zero { file: u8, at: u16, len: u8 },
    Append { file: u8, bytes: Vec<u8> },
    Remove { file: u8 },
    Add { name: Name, bytes: Vec<u8> },
    RemoveWalDir,
    Manifest { generation: i8, lsn: i8, end_slot: i16, has_snapshot: bool, segment: i8 },
    Snapshot { generation: i8, lsn: i8, end_slot: i16, entries: Vec<(u8, i16)> },
    Frame { segment: u8, lsn: i8, generation: i8, slot: i8, inline: bool, records: bool, entries: Vec<FrameEntry> },
    Record { slot: i16, put: bool, id: u8, lsn: i8, seed: u8 },
    FormatHeader { dimension: u32, element: u8 },
    DataHeader { dimension: u32, element: u8, generation: u8 },
}

#[derive(Arbitrary, Debug)]
struct FrameEntry {
    id: u8,
    put: bool,
    good_crc: bool,
    seed: u8,
}

fn template(t: Template) -> &'static Tree {
    static TEMPLATES: OnceLock<[Tree; 3]> = OnceLock::new();
    let all = TEMPLATES.get_or_init(|| {
        [
            build_template(Template::Checkpointed),
            build_template(Template::NeverCheckpointed),
            build_template(Template::Compacted),
        ]
    });
    &all[t as usize]
}

/// Builds a small valid store and reads it into memory. Stores are dropped,
/// not closed, so WAL frames after the last checkpoint stay to be replayed.
fn build_template(kind: Template) -> Tree {
    let checkpointed = !matches!(kind, Template::NeverCheckpointed);
    let scratch = scratch_dir();
    let dir = scratch.path().join("store");
    {
        let s: VectorStore<f32> = small_options().open(&dir).expect("creating the template store");
        for id in 1..=5u64 {
            s.store(id, &vector(id, 1)).expect("template write");
        }
        let (v6, v7, v8) = (vector(6, 1), vector(7, 1), vector(8, 1));
        s.store_batch(&[(6, &v6[..]), (7, &v7[..]), (8, &v8[..])]).expect("template batch");
        s.delete(2).expect("template delete");
        if checkpointed {
            s.checkpoint().expect("template checkpoint");
            s.store(9, &vector(9, 1)).expect("template write");
            s.delete(3).expect("template delete");
        }
    }
    if checkpointed {
        // A second session, logging locations only, in a second segment.
        let s: VectorStore<f32> =
            small_options().inline_batch_max_bytes(0).open(&dir).expect("reopening the template store");
        let (v10, v11) = (vector(10, 1), vector(11, 1));
        s.store_batch(&[(10, &v10[..]), (11, &v11[..])]).expect("template batch");
        s.store(1, &vector(1, 2)).expect("template overwrite");
        if matches!(kind, Template::Compacted) {
            quiver_compaction::compact(&s).expect("compacting the template");
            s.store(12, &vector(12, 1)).expect("template write");
            s.delete(4).expect("template delete");
        }
    }
    let mut files = BTreeMap::new();
    for sub in ["", WAL_DIR] {
        for entry in std::fs::read_dir(dir.join(sub)).expect("listing the template") {
            let entry = entry.expect("listing the template");
            if entry.file_type().expect("file type").is_file() {
                let name = entry.file_name().into_string().expect("UTF-8 names");
                let rel = if sub.is_empty() { name } else { format!("{sub}/{name}") };
                files.insert(rel, std::fs::read(entry.path()).expect("reading the template"));
            }
        }
    }
    Tree { files, wal_dir: true }
}

fn record_bytes() -> u64 {
    u64::from(record_size_bytes(DIM as u32, 4))
}

/// A shape for a well-formed header. The dimension is kept within
/// `MAX_DIMENSION`: the encoders compute the record size from it and, like
/// every caller in the library, rely on the shape having been validated.
fn shape(dimension: u32, element: u8) -> Option<StoreShape> {
    let dimension = dimension % (MAX_DIMENSION + 1);
    Some(StoreShape { dimension, element: ElementType::from_code(u32::from(element))? })
}

impl Tree {
    fn pick(&mut self, file: u8) -> Option<&mut Vec<u8>> {
        let n = self.files.len();
        if n == 0 {
            return None;
        }
        self.files.values_mut().nth(usize::from(file) % n)
    }

    fn manifest(&self) -> Manifest {
        self.files.get(MANIFEST_FILE).and_then(|b| Manifest::decode_from(b).ok()).unwrap_or(Manifest {
            generation: 1,
            checkpoint_lsn: 0,
            checkpoint_end_slot: 0,
            has_snapshot: false,
            wal_segment: 1,
        })
    }

    fn data_path(&self) -> String {
        data_file_name(self.manifest().generation)
    }

    /// Writes a valid record at `slot` of the current data file.
    fn put_record(&mut self, slot: u64, kind: RecordKind, id: u64, lsn: u64, seed: u8) -> RecordHeader {
        let v = vector_bytes(id, seed);
        let payload: &[u8] = match kind {
            RecordKind::Put => &v,
            RecordKind::Tombstone => &[],
        };
        let h = RecordHeader::new(kind, id, lsn, payload);
        if slot < MAX_MUTATED_SLOT {
            let path = self.data_path();
            let file = self.files.entry(path).or_default();
            let at = (DATA_HEADER_BYTES + slot * record_bytes()) as usize;
            let end = at + record_bytes() as usize;
            if file.len() < end {
                file.resize(end, 0);
            }
            let mut head = [0u8; RecordHeader::ENCODED_LEN];
            h.encode_into(&mut head);
            file[at..at + head.len()].copy_from_slice(&head);
            file[at + head.len()..end].fill(0);
            file[at + head.len()..at + head.len() + payload.len()].copy_from_slice(payload);
        }
        h
    }

    fn apply(&mut self, m: &Mutation) {
        match m {
            Mutation::Truncate { file, keep } => {
                if let Some(f) = self.pick(*file) {
                    f.truncate(usize::from(*keep) % (f.len() + 1));
                }
            }
            Mutation::CutTail { file, bytes } => {
                if let Some(f) = self.pick(*file) {
                    f.truncate(f.len().saturating_sub(usize::from(*bytes)));
                }
            }
            Mutation::FlipBit { file, at, bit } => {
                if let Some(f) = self.pick(*file)
                    && !f.is_empty()
                {
                    let i = usize::from(*at) % f.len();
                    f[i] ^= 1 << (bit % 8);
                }
            }
            Mutation::Overwrite { file, at, bytes } => {
                if let Some(f) = self.pick(*file) {
                    let at = usize::from(*at) % (f.len() + 1);
                    let end = at + bytes.len();
                    if f.len() < end {
                        f.resize(end, 0);
                    }
                    f[at..end].copy_from_slice(bytes);
                }
            }
            Mutation::Zero { file, at, len } => {
                if let Some(f) = self.pick(*file)
                    && !f.is_empty()
                {
                    let at = usize::from(*at) % f.len();
                    let end = (at + usize::from(*len)).min(f.len());
                    f[at..end].fill(0);
                }
            }
            Mutation::Append { file, bytes } => {
                if let Some(f) = self.pick(*file) {
                    f.extend_from_slice(bytes);
                }
            }
            Mutation::Remove { file } => {
                let n = self.files.len();
                if n > 0 {
                    let key = self.files.keys().nth(usize::from(*file) % n).cloned().expect("in range");
                    self.files.remove(&key);
                }
            }
            Mutation::Add { name, bytes } => {
                self.files.insert(name.path(), bytes.clone());
            }
            Mutation::RemoveWalDir => {
                self.files.retain(|k, _| !k.starts_with(&format!("{WAL_DIR}/")));
                self.wal_dir = false;
            }
            Mutation::Manifest { generation, lsn, end_slot, has_snapshot, segment } => {
                let b = self.manifest();
                let m = Manifest {
                    generation: b.generation.wrapping_add_signed(i32::from(*generation)),
                    checkpoint_lsn: b.checkpoint_lsn.wrapping_add_signed(i64::from(*lsn)),
                    checkpoint_end_slot: b.checkpoint_end_slot.wrapping_add_signed(i64::from(*end_slot)),
                    has_snapshot: *has_snapshot,
                    wal_segment: b.wal_segment.wrapping_add_signed(i64::from(*segment)),
                };
                let mut buf = [0u8; Manifest::ENCODED_LEN];
                m.encode_into(&mut buf);
                self.files.insert(MANIFEST_FILE.into(), buf.to_vec());
            }
            Mutation::Snapshot { generation, lsn, end_slot, entries } => {
                let m = self.manifest();
                // A table of the chosen entries (an id listed again replaces
                // its entry), with slots around the checkpoint's end: those
                // past the header's end fail their block's check when read.
                let mut pairs: Vec<(u64, u64)> = Vec::new();
                for &(id, slot) in entries {
                    let slot = m.checkpoint_end_slot.wrapping_add_signed(i64::from(slot));
                    let id = u64::from(id % 16);
                    if slot != EMPTY_SLOT {
                        pairs.retain(|&(held, _)| held != id);
                        pairs.push((id, slot));
                    }
                }
                let table = TableImage::from_entries(&pairs).expect("distinct ids");
                let bytes = table.encode_file(
                    m.generation.wrapping_add_signed(i32::from(*generation)),
                    m.checkpoint_lsn.wrapping_add_signed(i64::from(*lsn)),
                    m.checkpoint_end_slot.wrapping_add_signed(i64::from(*end_slot)),
                );
                self.files.insert(snapshot_file_name(m.generation, m.checkpoint_lsn), bytes);
            }
            Mutation::Frame { segment, lsn, generation, slot, inline, records, entries } => {
                self.append_frame(*segment, *lsn, *generation, *slot, *inline, *records, entries);
            }
            Mutation::Record { slot, put, id, lsn, seed } => {
                let m = self.manifest();
                let slot = m.checkpoint_end_slot.wrapping_add_signed(i64::from(*slot));
                let kind = if *put { RecordKind::Put } else { RecordKind::Tombstone };
                let lsn = m.checkpoint_lsn.wrapping_add_signed(i64::from(*lsn));
                self.put_record(slot, kind, u64::from(id % 16), lsn, *seed);
            }
            Mutation::FormatHeader { dimension, element } => {
                if let Some(shape) = shape(*dimension, *element) {
                    let mut buf = [0u8; FormatHeader::ENCODED_LEN];
                    FormatHeader { shape }.encode_into(&mut buf);
                    self.files.insert(HEADER_FILE.into(), buf.to_vec());
                }
            }
            Mutation::DataHeader { dimension, element, generation } => {
                if let Some(shape) = shape(*dimension, *element) {
                    let mut buf = [0u8; DataFileHeader::ENCODED_LEN];
                    DataFileHeader { shape, generation: u32::from(*generation), changes_after_lsn: 0 }
                        .encode_into(&mut buf);
                    let file = self.files.entry(self.data_path()).or_default();
                    if file.len() < buf.len() {
                        file.resize(buf.len(), 0);
                    }
                    file[..buf.len()].copy_from_slice(&buf);
                }
            }
        }
    }

    /// Appends a chained, checksum-valid frame after the last valid frame of
    /// an existing segment (cutting whatever follows it), with fields
    /// relative to that frame. With `records`, also writes the records a
    /// location batch points to.
    #[allow(clippy::too_many_arguments)]
    fn append_frame(
        &mut self,
        segment: u8,
        lsn: i8,
        generation: i8,
        slot: i8,
        inline: bool,
        records: bool,
        entries: &[FrameEntry],
    ) {
        let m = self.manifest();
        let segments: Vec<String> =
            self.files.keys().filter(|k| k.starts_with(&format!("{WAL_DIR}/"))).cloned().collect();
        if segments.is_empty() {
            return;
        }
        let key = segments[usize::from(segment) % segments.len()].clone();
        let bytes = &self.files[&key];
        let Ok((_, seed)) = SegmentHeader::decode_from(bytes) else { return };
        let (mut offset, mut crc) = (SegmentHeader::ENCODED_LEN, seed);
        let (mut next_lsn, mut next_slot, mut gen_) = (m.checkpoint_lsn + 1, m.checkpoint_end_slot, m.generation);
        while let FrameRead::Frame { payload, crc: c, next_offset } = next_frame(bytes, offset, crc) {
            if let Ok(b) = decode_batch(payload, DIM * 4) {
                next_lsn = b.lsn.wrapping_add(1);
                next_slot = b.first_slot.wrapping_add(b.entries.len() as u64);
                gen_ = b.generation;
            }
            offset = next_offset;
            crc = c;
        }
        let lsn = next_lsn.wrapping_add_signed(i64::from(lsn));
        let first_slot = next_slot.wrapping_add_signed(i64::from(slot));
        let generation = gen_.wrapping_add_signed(i32::from(generation));
        let mut batch = Vec::new();
        let mut payloads = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let id = u64::from(e.id % 16);
            let kind = if e.put { RecordKind::Put } else { RecordKind::Tombstone };
            let v = vector_bytes(id, e.seed);
            let payload: &[u8] = if e.put { &v } else { &[] };
            payloads.extend_from_slice(payload);
            let mut record_crc = RecordHeader::new(kind, id, lsn, payload).crc;
            if records {
                record_crc = self.put_record(first_slot.wrapping_add(i as u64), kind, id, lsn, e.seed).crc;
            }
            if !e.good_crc {
                record_crc ^= 1;
            }
            batch.push(BatchEntry { id, kind, record_crc });
        }
        let segment_bytes = self.files.get_mut(&key).expect("picked above");
        segment_bytes.truncate(offset);
        encode_batch_into(segment_bytes, crc, lsn, generation, first_slot, &batch, inline.then_some(&payloads[..]));
    }

    fn write_to(&self, dir: &Path) {
        std::fs::create_dir(dir).expect("creating the store directory");
        if self.wal_dir {
            std::fs::create_dir(dir.join(WAL_DIR)).expect("creating wal/");
        }
        for (rel, bytes) in &self.files {
            let path = dir.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("creating a parent directory");
            }
            std::fs::write(path, bytes).expect("writing a store file");
        }
    }
}

fuzz_target!(|input: Input| {
    if input.mutations.len() > 16 {
        return;
    }
    let mut tree = template(Template::from_byte(input.template)).clone();
    for m in &input.mutations {
        tree.apply(m);
    }
    let scratch = scratch_dir();
    let dir = scratch.path().join("store");
    tree.write_to(&dir);

    let Ok(store) = small_options().open::<f32>(&dir) else { return };
    let _ = format!("{:?}", store.recovery_report());
    let ids = store.ids();
    assert_eq!(ids.len(), store.len(), "len agrees with ids");
    let mut before = BTreeMap::new();
    for &id in &ids {
        let v = store.retrieve(id).unwrap_or_else(|| panic!("id {id} is listed but get returns nothing"));
        assert_eq!(v.len(), DIM, "id {id} has a vector of the wrong length");
        before.insert(id, v.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
    }
    let _ = store.verify();

    let probe = vector(PROBE_ID, 7);
    let wrote = store.store(PROBE_ID, &probe).is_ok();
    if wrote {
        assert_eq!(store.retrieve(PROBE_ID).as_deref(), Some(&probe[..]), "an acknowledged write is visible");
        before.insert(PROBE_ID, probe.iter().map(|x| x.to_bits()).collect());
    }
    let _ = store.checkpoint();
    drop(store);

    let store = match small_options().open::<f32>(&dir) {
        Ok(s) => s,
        Err(e) => panic!("a store that opened does not reopen: {e}"),
    };
    let mut after = BTreeMap::new();
    for id in store.ids() {
        let v = store.retrieve(id).unwrap_or_else(|| panic!("id {id} is listed but get returns nothing"));
        after.insert(id, v.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
    }
    if !wrote {
        after.remove(&PROBE_ID);
    }
    assert_eq!(before, after, "reopening changed the store's contents");
});
