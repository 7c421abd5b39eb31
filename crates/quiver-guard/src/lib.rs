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
//!    handed to the user, when no guard can exist. So a committed record's
//!    bytes are never written again while the mapping exists.
//! 3. **The mapping lives.** A region is unmapped only when it is dropped, and
//!    the storage engine keeps every region it ever created for as long as a
//!    borrow into it can exist: [`VectorGuard`] borrows the store, so the
//!    compiler enforces that no guard outlives it.
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
//! ```compile_fail
//! use quiver_guard::VectorGuard;
//! let guard: VectorGuard<'_, f32> = {
//!     let owned = vec![1.0_f32, 2.0];
//!     VectorGuard::new(&owned[..])
//! };
//! assert_eq!(guard.len(), 2);
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

use std::fmt;
use std::fs::File;
use std::io;
use std::marker::PhantomData;
use std::ops::Deref;

use memmap2::{Mmap, MmapOptions};

pub use memmap2::Advice;

/// The alignment, in bytes, that the storage engine guarantees for every
/// vector payload in a data file: a cache line, and enough for any SIMD
/// register up to AVX-512.
pub const PAYLOAD_ALIGN_BYTES: usize = 64;

const _: () = assert!(PAYLOAD_ALIGN_BYTES.is_power_of_two());

/// A read-only shared mapping of a window of a file, `[file_offset,
/// file_offset + len_bytes)`, which may extend past the file's current end.
///
/// Pages past the end of the file must never be touched; the methods that
/// hand out borrows are `unsafe` for that reason and for the immutability
/// rule described in the crate documentation.
pub struct MappedRegion {
    map: Mmap,
    file_offset: u64,
}

impl MappedRegion {
    /// Maps `len_bytes` of `file` starting at `file_offset` (which must be a
    /// multiple of the page size) read-only and shared.
    ///
    /// The file may be shorter than the window; it can grow into it later.
    ///
    /// # Safety
    ///
    /// The caller must uphold, for the whole life of the returned region, the
    /// rules of the crate documentation: only bytes below the file's length
    /// are read, and a byte that has been read is never written again while
    /// the region exists.
    pub unsafe fn map_read_only(file: &File, file_offset: u64, len_bytes: usize) -> io::Result<Self> {
        if len_bytes == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a mapped region cannot be empty"));
        }
        // SAFETY: forwarded to the caller, who promises the immutability and
        // in-bounds rules for every byte later read through the mapping.
        let map = unsafe { MmapOptions::new().offset(file_offset).len(len_bytes).map(file)? };
        Ok(Self { map, file_offset })
    }

    /// The file offset of the first mapped byte.
    pub fn file_offset(&self) -> u64 {
        self.file_offset
    }

    /// The length of the mapped window in bytes.
    pub fn len_bytes(&self) -> usize {
        self.map.len()
    }

    /// The file offset one past the last mapped byte.
    pub fn end_offset(&self) -> u64 {
        self.file_offset + self.map.len() as u64
    }

    /// Whether `[file_offset, file_offset + len_bytes)` lies entirely inside
    /// this window.
    pub fn covers(&self, file_offset: u64, len_bytes: u64) -> bool {
        file_offset >= self.file_offset
            && file_offset.checked_add(len_bytes).is_some_and(|end| end <= self.end_offset())
    }

    /// Tells the kernel how the window will be read (random for point reads,
    /// sequential for scans). Advice is a hint; errors are returned but
    /// harmless.
    pub fn advise(&self, advice: Advice) -> io::Result<()> {
        self.map.advise(advice)
    }

    /// Borrows `count` elements of type `T` starting at `file_offset`.
    ///
    /// # Panics
    ///
    /// Panics if the range is not inside the window or the first element is
    /// not aligned for `T`; both are bugs in the caller, never data-dependent.
    ///
    /// # Safety
    ///
    /// Every byte of the range must lie below the file's current length and
    /// must not be written again while the returned borrow (or the region)
    /// lives; see the crate documentation.
    #[inline]
    pub unsafe fn slice<T: bytemuck::Pod>(&self, file_offset: u64, count: usize) -> &[T] {
        let len_bytes = count.checked_mul(size_of::<T>()).expect("a slice length that overflows usize is a caller bug");
        assert!(
            self.covers(file_offset, len_bytes as u64),
            "slice [{file_offset}, +{len_bytes}) outside the mapped window [{}, {})",
            self.file_offset,
            self.end_offset()
        );
        let start = (file_offset - self.file_offset) as usize;
        // SAFETY: `start + len_bytes <= self.map.len()` was asserted above, so
        // the pointer stays inside the mapping.
        let ptr = unsafe { self.map.as_ptr().add(start) };
        assert!(
            (ptr as usize).is_multiple_of(align_of::<T>()),
            "payload at file offset {file_offset} is not aligned for the element type"
        );
        // SAFETY: the range is inside the mapping (asserted above) and aligned
        // for `T` (asserted above); `T: Pod` accepts any bit pattern; the
        // caller promises the bytes exist in the file and stay unchanged while
        // the borrow, which cannot outlive `self`, lives.
        unsafe { std::slice::from_raw_parts(ptr.cast::<T>(), count) }
    }
}

impl fmt::Debug for MappedRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MappedRegion")
            .field("file_offset", &self.file_offset)
            .field("len_bytes", &self.map.len())
            .finish()
    }
}

/// A zero-copy view of one stored vector, valid for as long as the store it
/// came from is borrowed.
///
/// A guard never blocks a writer and never changes while it is held: an
/// overwrite or delete of the same id appends a new record and leaves the
/// bytes this guard points at untouched.
///
/// ```
/// use quiver_guard::VectorGuard;
/// let backing = [1.0_f32, 2.0, 3.0];
/// let guard = VectorGuard::new(&backing[..]);
/// assert_eq!(guard.iter().sum::<f32>(), 6.0);
/// assert_eq!(&*guard, &[1.0, 2.0, 3.0]);
/// ```
pub struct VectorGuard<'a, T> {
    slice: &'a [T],
    // A guard must not be sent across the lifetime boundary of its store by
    // cloning; it is deliberately not `Clone`, so one `get` is one guard.
    _not_clone: PhantomData<&'a ()>,
}

impl<'a, T> VectorGuard<'a, T> {
    /// Wraps a borrowed slice. The storage engine builds guards from slices
    /// of a [`MappedRegion`]; anyone may build one from ordinary memory.
    #[inline]
    pub fn new(slice: &'a [T]) -> Self {
        Self { slice, _not_clone: PhantomData }
    }

    /// The vector as a slice with the guard's full lifetime.
    #[inline]
    pub fn as_slice(&self) -> &'a [T] {
        self.slice
    }
}

impl<T> Deref for VectorGuard<'_, T> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        self.slice
    }
}

impl<T> AsRef<[T]> for VectorGuard<'_, T> {
    fn as_ref(&self) -> &[T] {
        self.slice
    }
}

impl<T: fmt::Debug> fmt::Debug for VectorGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.slice.iter()).finish()
    }
}

impl<T: PartialEq> PartialEq<[T]> for VectorGuard<'_, T> {
    fn eq(&self, other: &[T]) -> bool {
        self.slice == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    // Proves that a window larger than the file maps, that bytes appended
    // after mapping are visible through it, and that `covers` bounds checks.
    #[test]
    fn window_larger_than_file_sees_appended_bytes() {
        let mut file = tempfile::tempfile().expect("temp file");
        file.write_all(&[0u8; 4096]).expect("write");
        // SAFETY: the test reads only bytes it wrote and never rewrites them.
        let region = unsafe { MappedRegion::map_read_only(&file, 0, 1 << 30) }.expect("map");
        assert!(region.covers(0, 1 << 30));
        assert!(!region.covers(1, 1 << 30));
        assert!(!region.covers(u64::MAX, 2));
        let values = [1.5_f32, -2.0, 3.25, 4.0];
        file.write_all_at(bytemuck::cast_slice(&values), 4096).expect("append");
        // SAFETY: bytes 4096..4112 were just written and are never rewritten.
        let seen: &[f32] = unsafe { region.slice(4096, 4) };
        assert_eq!(seen, &values);
    }

    // Proves that a misaligned request panics instead of producing an
    // unaligned reference.
    #[test]
    #[should_panic(expected = "not aligned")]
    fn misaligned_slice_panics() {
        let file = tempfile::tempfile().expect("temp file");
        file.write_all_at(&[0u8; 64], 0).expect("write");
        // SAFETY: the test reads only bytes it wrote and never rewrites them.
        let region = unsafe { MappedRegion::map_read_only(&file, 0, 4096) }.expect("map");
        // SAFETY: in bounds and never rewritten; the call must panic anyway.
        let _ = unsafe { region.slice::<f32>(2, 1) };
    }
}
