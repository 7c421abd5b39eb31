//! Fuzzes the write path, checkpoints and recovery under injected I/O
//! faults, against a `BTreeMap` model.
//!
//! The input chooses store options (location-only batches, tiny checkpoint
//! threshold), a fault plan (which durability steps, counted from the first
//! operation, fail with EIO or ENOSPC or are cut short) and a sequence of
//! operations: store, store_batch, delete, checkpoint, flush,
//! reserve_capacity and reopen (still under faults). The store runs at
//! `Durability::Buffered`, and a reopen models a process crash: the page
//! cache keeps every completed write.
//!
//! Properties:
//! - nothing panics;
//! - an operation that returned `Ok` is visible at once (delete's answer
//!   matches the model), and one that returned an error changed nothing
//!   visible;
//! - after a failed `fdatasync` or a failed `flush`, the store is poisoned:
//!   every later write says `Poisoned` until reopened;
//! - every successful open shows exactly the model: all acknowledged writes,
//!   no failed one, except that the one write whose failure poisoned the
//!   store may be there, wholly or not at all;
//! - a final open without faults succeeds, `verify` is clean and the store
//!   takes writes and checkpoints again.
#![no_main]

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use quiver_fuzz::{DIM, scratch_dir, small_options, vector};
use quiver_storage::io::{FaultAction, FaultInjector, IoStep};
use quiver_storage::{Durability, Error, StoreOptions, VectorStore};

const EIO: i32 = 5;
const ENOSPC: i32 = 28;
/// Ids are taken modulo this, so operations collide.
const IDS: u8 = 16;

#[derive(Arbitrary, Debug)]
struct Input {
    location_batches: bool,
    small_checkpoints: bool,
    faults: Vec<Fault>,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
struct Fault {
    /// Index of the first failing step (modulo 512).
    step: u16,
    /// How many more steps after it fail too (modulo 4).
    repeat: u8,
    kind: FaultKind,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum FaultKind {
    Eio,
    NoSpace,
    /// A write puts this many bytes (modulo its length + 1) on disk, then
    /// fails with EIO; any other step just fails.
    Short(u16),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Store { id: u8, seed: u8 },
    Batch(Vec<(u8, u8)>),
    Delete(u8),
    Checkpoint,
    Flush,
    Reserve(u8),
    Reopen,
}

/// Fails the planned steps once armed; remembers whether it failed an
/// `fdatasync` (which must poison the store).
#[derive(Debug, Default)]
struct Injector {
    state: Mutex<InjectorState>,
}

#[derive(Debug, Default)]
struct InjectorState {
    armed: bool,
    next_step: u64,
    plan: BTreeMap<u64, FaultKind>,
    failed_sync_data: bool,
}

impl FaultInjector for Injector {
    fn before(&self, step: IoStep<'_>) -> FaultAction {
        let mut s = self.state.lock().expect("injector lock");
        if !s.armed {
            return FaultAction::Proceed;
        }
        let n = s.next_step;
        s.next_step += 1;
        let Some(&kind) = s.plan.get(&n) else { return FaultAction::Proceed };
        if matches!(step, IoStep::SyncData { .. }) {
            s.failed_sync_data = true;
        }
        match (kind, step) {
            (FaultKind::Eio, _) => FaultAction::Fail(io::Error::from_raw_os_error(EIO)),
            (FaultKind::NoSpace, _) => FaultAction::Fail(io::Error::from_raw_os_error(ENOSPC)),
            (FaultKind::Short(k), IoStep::Write { len, .. }) => {
                FaultAction::Short(usize::from(k) % (len + 1), io::Error::from_raw_os_error(EIO))
            }
            (FaultKind::Short(_), _) => FaultAction::Fail(io::Error::from_raw_os_error(EIO)),
        }
    }
}

impl Injector {
    fn take_failed_sync_data(&self) -> bool {
        std::mem::take(&mut self.state.lock().expect("injector lock").failed_sync_data)
    }
}

type Bits = [u32; DIM];
type Model = BTreeMap<u64, Bits>;
/// What a write does to the model if it takes effect: id -> new vector, or
/// `None` for a delete.
type Changes = Vec<(u64, Option<Bits>)>;

fn bits(v: &[f32]) -> Bits {
    let mut out = [0u32; DIM];
    for (o, x) in out.iter_mut().zip(v) {
        *o = x.to_bits();
    }
    out
}

fn contents(store: &VectorStore<f32>) -> Model {
    let mut out = Model::new();
    for id in store.ids() {
        let v = store.retrieve(id).unwrap_or_else(|| panic!("id {id} is listed but get returns nothing"));
        assert_eq!(v.len(), DIM);
        out.insert(id, bits(&v));
    }
    assert_eq!(out.len(), store.len());
    out
}

/// Whether the store refuses writes as poisoned (an empty batch checks
/// writability and changes nothing).
fn is_poisoned(store: &VectorStore<f32>) -> bool {
    matches!(store.store_batch(&[]), Err(Error::Poisoned { .. }))
}

/// Checks a freshly opened store against the model, settling the one write
/// whose outcome a poisoning failure left open.
fn check_reopened(store: &VectorStore<f32>, model: &mut Model, open_write: &mut Option<Changes>) {
    let actual = contents(store);
    if let Some(changes) = open_write.take() {
        let mut applied = model.clone();
        for (id, v) in changes {
            match v {
                Some(v) => applied.insert(id, v),
                None => applied.remove(&id),
            };
        }
        if actual == applied {
            *model = applied;
        }
    }
    assert_eq!(&actual, model, "after reopening, the store differs from the acknowledged writes");
}

fn options(input: &Input) -> StoreOptions {
    let mut o = small_options().durability(Durability::Buffered);
    if input.location_batches {
        o = o.inline_batch_max_bytes(0);
    }
    if input.small_checkpoints {
        o = o.checkpoint_wal_bytes(1024);
    }
    o
}

fn open(options: &StoreOptions, dir: &Path) -> Option<VectorStore<f32>> {
    options.open::<f32>(dir).ok()
}

fuzz_target!(|input: Input| {
    if input.ops.len() > 48 || input.faults.len() > 6 {
        return;
    }
    let injector = Arc::new(Injector::default());
    {
        let mut s = injector.state.lock().expect("injector lock");
        for f in &input.faults {
            let first = u64::from(f.step % 512);
            for n in first..=first + u64::from(f.repeat % 4) {
                s.plan.insert(n, f.kind);
            }
        }
    }
    let faulty = options(&input).fault_injector(injector.clone());
    let scratch = scratch_dir();
    let dir = scratch.path().join("store");
    let mut store = Some(faulty.open::<f32>(&dir).expect("creating the store without faults"));
    injector.state.lock().expect("injector lock").armed = true;

    let mut model = Model::new();
    // The changes of the write whose failure poisoned the store, if any.
    let mut open_write: Option<Changes> = None;

    for op in &input.ops {
        if let Op::Reopen = op {
            drop(store.take());
            injector.take_failed_sync_data();
            store = open(&faulty, &dir);
            if let Some(s) = &store {
                check_reopened(s, &mut model, &mut open_write);
            }
            continue;
        }
        let Some(s) = &store else { continue };
        injector.take_failed_sync_data();
        // The changes this op makes if it succeeds, and its result.
        let (changes, result): (Changes, Result<(), Error>) = match op {
            Op::Store { id, seed } => {
                let id = u64::from(id % IDS);
                let v = vector(id, *seed);
                (vec![(id, Some(bits(&v)))], s.store(id, &v))
            }
            Op::Batch(items) => {
                let items: Vec<(u64, [f32; DIM])> = items
                    .iter()
                    .take(8)
                    .map(|&(id, seed)| (u64::from(id % IDS), vector(u64::from(id % IDS), seed)))
                    .collect();
                let batch: Vec<(u64, &[f32])> = items.iter().map(|(id, v)| (*id, &v[..])).collect();
                let mut last = BTreeMap::new();
                for (id, v) in &items {
                    last.insert(*id, bits(v));
                }
                let result = s.store_batch(&batch).map(|n| {
                    assert_eq!(n, last.len(), "store_batch counts distinct ids");
                });
                (last.into_iter().map(|(id, v)| (id, Some(v))).collect(), result)
            }
            Op::Delete(id) => {
                let id = u64::from(id % IDS);
                let result = s.delete(id).map(|existed| {
                    assert_eq!(existed, model.contains_key(&id), "delete reports whether id {id} was present");
                });
                (vec![(id, None)], result)
            }
            Op::Checkpoint => (Vec::new(), s.checkpoint()),
            Op::Flush => {
                let result = s.flush();
                if let Err(e) = &result {
                    assert!(is_poisoned(s), "a failed flush ({e}) leaves the store writable");
                }
                (Vec::new(), result)
            }
            Op::Reserve(n) => (Vec::new(), s.reserve_capacity(usize::from(*n))),
            Op::Reopen => unreachable!("handled above"),
        };
        match result {
            Ok(()) => {
                for (id, v) in changes {
                    match v {
                        Some(v) => model.insert(id, v),
                        None => model.remove(&id),
                    };
                }
            }
            Err(Error::Poisoned { .. }) => {}
            Err(_) if !changes.is_empty() && is_poisoned(s) => {
                assert!(open_write.is_none(), "a second write failed after the store was poisoned");
                open_write = Some(changes);
            }
            Err(_) => {}
        }
        if injector.take_failed_sync_data() {
            assert!(is_poisoned(s), "an fdatasync failed during {op:?} and the store is still writable");
        }
        // What readers see is the model: acknowledged writes, nothing else.
        assert_eq!(contents(s), model, "after {op:?}, readers see something other than the acknowledged writes");
    }

    // A process crash, then an open with no faults: everything acknowledged
    // is back, and the store works again.
    drop(store.take());
    let clean = options(&input);
    let store = clean.open::<f32>(&dir).unwrap_or_else(|e| panic!("reopening without faults fails: {e}"));
    check_reopened(&store, &mut model, &mut open_write);
    let report = store.verify().unwrap_or_else(|e| panic!("verify fails after recovery: {e}"));
    assert!(report.is_clean(), "verify finds problems after recovery: {:?}", report.problems);
    store.store(u64::from(IDS), &vector(u64::from(IDS), 0)).expect("a write after recovery");
    store.checkpoint().expect("a checkpoint after recovery");
});
