//! # Quiver
//!
//! An embedded, mmap-backed vector store with write-ahead-log durability.
//! Keep the raw vectors of an HNSW or IVF index, a RAG service or a
//! recommender in Quiver; read them zero-copy through slice guards; bulk-load
//! millions with [`VectorStore::reserve_capacity`]; and trust that an
//! acknowledged write survives a crash.
//!
//! ```
//! use quiver::{Durability, Error, StoreOptions, VectorGuard, VectorStore};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("vectors");
//! let store: VectorStore<f32> = VectorStore::open(&path, 4)?; // create or open
//! store.reserve_capacity(1_000)?;                             // room for 1,000 more
//! store.store(42, &[0.1, 0.2, 0.3, 0.4])?;                    // insert or replace
//! let stored = store.store_batch(&[(1, &[1.0; 4][..]), (2, &[2.0; 4][..])])?;
//! assert_eq!(stored, 2);
//!
//! let g: VectorGuard<'_, f32> = store.get(42).expect("present"); // zero-copy
//! assert_eq!(g.iter().sum::<f32>(), 1.0);
//! drop(g); // a guard pins what it reads; drop it before closing the store
//! assert_eq!(store.retrieve(1), Some(vec![1.0; 4]));          // copying read
//! assert!(store.delete(2)?);
//! assert_eq!((store.len(), store.contains(2)), (2, false));
//!
//! store.flush()?;      // every acknowledged write durable against power loss
//! store.checkpoint()?; // snapshot the index, trim the WAL
//! store.close()?;      // flush + checkpoint
//!
//! // Reopening with the wrong dimension is an error and changes nothing.
//! let wrong = VectorStore::<f32>::open(&path, 8);
//! assert!(matches!(wrong, Err(Error::DimensionMismatch { expected: 4, actual: 8 })));
//!
//! let sync: VectorStore<f32> = StoreOptions::new(4).durability(Durability::Sync).open(&path)?;
//! assert_eq!(sync.retrieve(42), Some(vec![0.1, 0.2, 0.3, 0.4]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Guarantees
//!
//! | level | a write is durable against | cost |
//! |---|---|---|
//! | [`Durability::Sync`] | power loss, when the call returns | one shared `fdatasync` per group of commits |
//! | [`Durability::Buffered`] (default) | a process crash when the call returns; power loss after [`VectorStore::flush`] | `write` syscalls |
//! | [`Durability::Deferred`] | only after `flush`, `checkpoint` or `close` | user-space buffering |
//!
//! At every level, after any crash each batch is entirely present or
//! entirely absent, nothing deleted comes back and no vector is torn. A
//! failed sync poisons the store ([`Error::Poisoned`]) until it is reopened.
//!
//! ## Guards borrow the store
//!
//! A [`VectorGuard`] cannot outlive the store it came from (E0597, "does not
//! live long enough"; each example is pinned to its error code so that one
//! failing for another reason, a typo say, does not pass):
//!
//! ```compile_fail,E0597
//! use quiver::VectorStore;
//! let dir = tempfile::tempdir().unwrap();
//! let guard = {
//!     let store: VectorStore<f32> = VectorStore::open(dir.path().join("v"), 2).unwrap();
//!     store.store(1, &[1.0, 2.0]).unwrap();
//!     store.get(1).unwrap()
//! };
//! println!("{}", guard[0]);
//! ```
//!
//! Nor can the store be closed (moved) while a guard is alive (E0505,
//! "cannot move out of it because it is borrowed"):
//!
//! ```compile_fail,E0505
//! use quiver::VectorStore;
//! let dir = tempfile::tempdir().unwrap();
//! let store: VectorStore<f32> = VectorStore::open(dir.path().join("v"), 2).unwrap();
//! store.store(1, &[1.0, 2.0]).unwrap();
//! let guard = store.get(1).unwrap();
//! store.close().unwrap();
//! println!("{}", guard[0]);
//! ```
//!
//! ## Snapshots are owned
//!
//! An index that must hold its vectors (an HNSW graph, an IVF list) holds a
//! [`Snapshot`] instead: owned, `'static`, cheap to clone, readable without
//! locks, and unchanged by later writes and compactions. Its slices borrow
//! the snapshot, not the store:
//!
//! ```
//! use quiver::{Snapshot, VectorStore};
//! struct Index {
//!     vectors: Snapshot<f32>,
//! }
//! let dir = tempfile::tempdir()?;
//! let store: VectorStore<f32> = VectorStore::open(dir.path().join("v"), 2)?;
//! store.store(1, &[1.0, 2.0])?;
//! let index = Index { vectors: store.snapshot() };
//! store.close()?;
//! assert_eq!(index.vectors.get(1), Some(&[1.0, 2.0][..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Exact search
//!
//! [`Search`] (from `quiver-search`) scores every vector of a snapshot
//! against a query — inner product, cosine or squared L2 — and returns the
//! best `k`, with filters, threads and batches of queries:
//!
//! ```
//! use quiver::{Metric, Search, VectorStore};
//! let dir = tempfile::tempdir()?;
//! let store: VectorStore<f32> = VectorStore::open(dir.path().join("v"), 2)?;
//! store.store_batch(&[(1, &[1.0, 0.0][..]), (2, &[0.6, 0.8][..])])?;
//! let hits = store.snapshot().search(&[0.0, 1.0], 1, Metric::Cosine)?;
//! assert_eq!(hits[0].id, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Quiver targets 64-bit Linux; files are little-endian. See `docs/` in the
//! repository for the architecture, the byte format and the durability
//! contract.
#![forbid(unsafe_code)]

pub use half::{bf16, f16};
pub use quiver_compaction::{
    BackgroundCompactor, BackgroundPolicy, CompactionOptions, CompactionStats, ProgressFn, Run, compact, compact_with,
};
pub use quiver_guard::VectorGuard;
pub use quiver_search::{Hit, InstructionSet, Metric, Search, SearchElement, SearchError, SearchOptions};
pub use quiver_storage::{
    AccessPattern, Change, ChangeFeed, Changes, Compaction, Durability, Element, ElementType, Error, GrowthPolicy,
    Headroom, LatencySummary, Metrics, Problem, RecoveryReport, RefreshOutcome, Result, Snapshot, SnapshotIter,
    SnapshotOutcome, SnapshotRange, StoreInfo, StoreOptions, SwitchOutcome, TornTail, VectorReader, VectorStore,
    VerifyReport, inspect, limits,
};
