//! The mapped region and the zero-copy slice guards of Quiver.
//!
//! This crate owns the memory-safety argument for every zero-copy read Quiver
//! serves. It never writes to a file and never decides what is committed: the
//! storage engine tells it which byte ranges are immutable, and this crate
//! turns those ranges into `&[T]` borrows.
//!
//! # The soundness argument
//!
//! A [`MappedRegion`] is a read-only (`PROT_READ`), shared (`MAP_SHARED`)
//! mapping of a data file, created **once** over a virtual range that may be
//! much larger than the file, so the file can grow underneath it without the
//! mapping moving. A `&[T]` into that mapping is sound only if, for as long as
//! the borrow lives:
//!
//! 1. **The bytes exist.** Every byte of the slice lies below the file's
//!    length. Touching a mapped page past the end of the file raises `SIGBUS`.
//!    The storage engine only asks for records below its *committed end*, and
//!    no Quiver process ever shrinks a data file below its committed end
//!    (`docs/FORMAT.md`, "Data file"); space past the end is reserved with
//!    `fallocate`, never left sparse, so a full disk cannot turn a read into a
//!    fault either.
//! 2. **The bytes do not change.** Records are append-only within a
//!    generation: an overwrite or a delete appends a new record and leaves the
//!    old bytes alone, and one exclusive lock file admits a single writer
//!    process per directory. Recovery rewrites records only before a store is
//!    handed to the user, when no guard can exist: a guard borrows its
//!    store, and an owned read view of a store holds the directory's lock,
//!    so no second open (whose recovery could rewrite records) can start
//!    while either lives. So a committed record's bytes are never written
//!    again while the mapping exists. (A read-only follower in another
//!    process holds no lock; what it may see while a writer recovers is in
//!    the storage engine's docs/DURABILITY.md, "What a follower sees".)
//! 3. **The mapping lives.** A region is unmapped only when it is dropped.
//!    Its data file's regions live in one *generation*, held by a
//!    [`GenerationCell`]; every [`VectorGuard`] the store hands out holds a
//!    pin on the generation it points into, and a generation replaced by
//!    compaction is dropped (unmapped, its file closed) only when its last
//!    pin is released. A guard also borrows the store, so the compiler
//!    enforces that no guard outlives the cell. An owned read view (the
//!    storage engine's `Snapshot`) holds the data file itself, reference
//!    counted, with its regions; its slices borrow the view, so they cannot
//!    outlive it, and the regions are unmapped only when the generation and
//!    every view of it are gone.
//! 4. **The cast is valid.** `T` is [`bytemuck::Pod`], every bit pattern is a
//!    valid `T`, and [`MappedRegion::slice`] checks the alignment of the first
//!    element (the storage engine aligns payloads to 64 bytes; see
//!    [`PAYLOAD_ALIGN_BYTES`]).
//!
//! What this crate cannot defend against is another program writing to or
//! truncating the data file behind Quiver's back; like every memory-mapped
//! database (LMDB, memmap2's own `Mmap`), Quiver requires that its files are
//! changed only by Quiver.
//!
//! # A guard cannot outlive its source
//!
//! (The example must fail with E0597, "does not live long enough", so a
//! typo that fails to compile for another reason cannot pass it.)
//!
//! ```compile_fail,E0597
//! use quiver_guard::VectorGuard;
//! let guard: VectorGuard<'_, f32> = {
//!     let owned = vec![1.0_f32, 2.0];
//!     VectorGuard::new(&owned[..])
//! };
//! assert_eq!(guard.len(), 2);
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

mod generation;
mod guard;
mod region;

pub use generation::{GenerationCell, PIN_SHARDS, Pinned};
pub use guard::VectorGuard;
pub use memmap2::Advice;
pub use region::MappedRegion;

/// The alignment, in bytes, that the storage engine guarantees for every
/// vector payload in a data file: a cache line, and enough for any SIMD
/// register up to AVX-512.
pub const PAYLOAD_ALIGN_BYTES: usize = 64;

const _: () = assert!(PAYLOAD_ALIGN_BYTES.is_power_of_two());
