//! A read-only shared mapping of a window of a file.
//!
//! The region never writes and never decides which bytes may be read; its
//! borrowing methods are `unsafe` and their callers carry the proof (see the
//! crate docs).

use std::fmt;
use std::fs::File;
use std::io;

use memmap2::{Advice, Mmap, MmapOptions};

/// The system's page size (mappings start on one).
fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions; _SC_PAGESIZE is always valid.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

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

    /// [`advise`](Self::advise) for the part of the window in
    /// `[file_offset, file_offset + len_bytes)` (clipped to the window; the
    /// start is rounded down to a page). `WillNeed` starts reading it in;
    /// `PopulateRead` (Linux 5.14+) reads it in before returning.
    pub fn advise_range(&self, advice: Advice, file_offset: u64, len_bytes: u64) -> io::Result<()> {
        let Some((start, len)) = self.clip(file_offset, len_bytes) else { return Ok(()) };
        self.map.advise_range(advice, start, len)
    }

    /// How many bytes of `[file_offset, file_offset + len_bytes)` (clipped
    /// to the window, whole pages) are in memory: `mincore`, which asks
    /// the page cache and never reads or faults a page, so it may be asked
    /// about pages past the file's end (they are not resident).
    pub fn resident_bytes(&self, file_offset: u64, len_bytes: u64) -> io::Result<u64> {
        let Some((start, len)) = self.clip(file_offset, len_bytes) else { return Ok(0) };
        let page = page_size();
        // Bounded memory for any window: a vector byte per page, 64 Ki pages
        // (256 MiB of file with 4 KiB pages) per call.
        const CHUNK_PAGES: usize = 1 << 16;
        let mut status = vec![0u8; CHUNK_PAGES.min(len.div_ceil(page))];
        let mut resident_pages = 0u64;
        let mut at = start;
        while at < start + len {
            let chunk = (start + len - at).min(CHUNK_PAGES * page);
            let pages = chunk.div_ceil(page);
            // SAFETY: `[at, at + chunk)` is inside this region's mapping
            // (`clip` keeps it within `self.map`, and `at` is page-aligned
            // because the mapping starts on a page and `start` and every
            // step are whole pages), and `status` holds one byte for each of
            // its `pages` pages, which is what mincore writes. mincore reads
            // no mapped byte, so the immutability rule is untouched.
            let rc = unsafe { libc::mincore(self.map.as_ptr().add(at).cast_mut().cast(), chunk, status.as_mut_ptr()) };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            resident_pages += status[..pages].iter().filter(|&&s| s & 1 == 1).count() as u64;
            at += chunk;
        }
        Ok(resident_pages * page as u64)
    }

    /// `[file_offset, +len_bytes)` as a page-aligned `(start, len)` inside
    /// the mapping, or `None` if it does not meet the window.
    fn clip(&self, file_offset: u64, len_bytes: u64) -> Option<(usize, usize)> {
        let page = page_size() as u64;
        let from = file_offset.max(self.file_offset);
        let to = file_offset.saturating_add(len_bytes).min(self.end_offset());
        if from >= to {
            return None;
        }
        let start = (from - self.file_offset) / page * page;
        Some((start as usize, (to - self.file_offset - start) as usize))
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

    // Proves that mincore counts the written pages of a window (a file
    // just written is in the page cache), no page past the file's end, and
    // clips a range to the window; and that advice over a range past the
    // end is accepted.
    #[test]
    fn resident_bytes_counts_written_pages_only() {
        let page = page_size();
        let file = tempfile::tempfile().expect("temp file");
        file.write_all_at(&vec![7u8; 3 * page], 0).expect("write three pages");
        // SAFETY: the test reads no byte through the mapping.
        let region = unsafe { MappedRegion::map_read_only(&file, 0, 16 * page) }.expect("map");
        let page = page as u64;
        assert_eq!(region.resident_bytes(0, 16 * page).expect("mincore"), 3 * page);
        assert_eq!(region.resident_bytes(page + 1, page).expect("mincore"), 2 * page, "rounded to whole pages");
        assert_eq!(region.resident_bytes(3 * page, 13 * page).expect("mincore"), 0, "past the end");
        assert_eq!(region.resident_bytes(64 * page, page).expect("mincore"), 0, "outside the window");
        region.advise_range(Advice::WillNeed, 0, 16 * page).expect("advice");
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
