//! A read-only shared mapping of a window of a file.
//!
//! The region never writes and never decides which bytes may be read; its
//! borrowing methods are `unsafe` and their callers carry the proof (see the
//! crate docs).

use std::fmt;
use std::fs::File;
use std::io;

use memmap2::{Advice, Mmap, MmapOptions};

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
