//! The one module of quiver-storage with `unsafe` code: the read-only
//! mappings of a data file and the only code that writes record bytes.
//!
//! Keeping the writer and the reader of record bytes side by side makes the
//! soundness argument local (see the `quiver_guard` crate docs for the whole
//! of it). The rule this module enforces is:
//!
//! * `committed_slots` only grows, and is raised only after every record
//!   below it has been written ([`RecordMap::publish`]);
//! * [`RecordMap::write_records`] refuses (panics on) any write that starts
//!   below `committed_slots`, so a published record is never written again;
//! * [`RecordMap::payload`] hands out borrows only below `committed_slots`,
//!   which are below the file's length because they were written, and the
//!   file is never shrunk below them (growth trims only above, see
//!   `DataFile::allocate`);
//! * regions are never unmapped before the map is dropped, and every borrow
//!   is tied to `&self`.
//!
//! It also holds the one cache-prefetch hint (`prefetch`), whose intrinsic
//! is `unsafe` to call though it has no effect on memory.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};

use quiver_guard::{Advice, MappedRegion};

use crate::format::DATA_HEADER_BYTES;
use crate::ids::Slot;
use crate::io::Io;
use crate::options::AccessPattern;

/// Most mapped windows one data file may use.
pub(super) const MAX_REGIONS: usize = 1024;

/// The mapped windows of one data file and its committed end.
#[derive(Debug)]
pub(crate) struct RecordMap {
    regions: Box<[OnceLock<MappedRegion>]>,
    region_count: AtomicUsize,
    window_bytes: usize,
    record_size_bytes: u64,
    committed_slots: AtomicU64,
    /// The access pattern told to the kernel for every window, also for
    /// those mapped later (an `AccessPattern` code).
    access: AtomicU8,
}

impl RecordMap {
    /// Maps the first window (at file offset 0). Nothing is readable until
    /// [`RecordMap::publish`] is called.
    pub(super) fn new(file: &File, window_bytes: usize, record_size_bytes: u64) -> io::Result<Self> {
        let page = rustix::param::page_size();
        let window_bytes = window_bytes.next_multiple_of(page);
        if (window_bytes as u64) < DATA_HEADER_BYTES + 2 * record_size_bytes + page as u64 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "the map window is smaller than two records"));
        }
        let regions: Box<[OnceLock<MappedRegion>]> = (0..MAX_REGIONS).map(|_| OnceLock::new()).collect();
        let map = Self {
            regions,
            region_count: AtomicUsize::new(0),
            window_bytes,
            record_size_bytes,
            committed_slots: AtomicU64::new(0),
            access: AtomicU8::new(AccessPattern::Normal as u8),
        };
        map.add_region(file, 0)?;
        Ok(map)
    }

    fn add_region(&self, file: &File, file_offset: u64) -> io::Result<()> {
        let n = self.region_count.load(Ordering::Acquire);
        if n == MAX_REGIONS {
            return Err(io::Error::new(io::ErrorKind::FileTooLarge, "the data file outgrew every mapped window"));
        }
        // SAFETY: this map only ever lends out bytes below `committed_slots`,
        // which were written before being published and are never written
        // again (`write_records` asserts it); the file is never shrunk below
        // them. The region lives until `self` is dropped.
        let region = unsafe { MappedRegion::map_read_only(file, file_offset, self.window_bytes)? };
        // `Normal` unless told otherwise: the kernel's default readahead is
        // what makes a scan after open fast (docs/BENCHMARKS.md measured a
        // cold scan 7-10x slower with `MADV_RANDOM`), and hot point reads
        // never fault anyway. Advice is a hint: a kernel that refuses it
        // reads the same bytes.
        let _ = region.advise(AccessPattern::from_code(self.access.load(Ordering::Acquire)).advice());
        self.regions[n].set(region).expect("region slots are filled in order by the single writer");
        self.region_count.store(n + 1, Ordering::Release);
        Ok(())
    }

    fn record_offset(&self, slot: Slot) -> u64 {
        DATA_HEADER_BYTES + slot.get() * self.record_size_bytes
    }

    fn region_for(&self, offset: u64, len: u64) -> Option<&MappedRegion> {
        let n = self.region_count.load(Ordering::Acquire);
        self.regions[..n].iter().filter_map(OnceLock::get).find(|r| r.covers(offset, len))
    }

    /// Makes sure every record below `end_slot` lies inside some window,
    /// mapping further windows as needed. Called by the writer before it
    /// publishes records.
    pub(super) fn ensure_mapped(&self, file: &File, end_slot: Slot) -> io::Result<()> {
        let page = rustix::param::page_size() as u64;
        loop {
            let n = self.region_count.load(Ordering::Acquire);
            let last = self.regions[n - 1].get().expect("published regions are set");
            let covered_end = last.end_offset();
            if end_slot == Slot::ZERO || self.record_offset(end_slot) <= covered_end {
                return Ok(());
            }
            // The first record that does not fit in the last window starts
            // the next one, at the page holding it.
            let first_out = Slot::from((covered_end - DATA_HEADER_BYTES) / self.record_size_bytes);
            let start = self.record_offset(first_out) / page * page;
            self.add_region(file, start)?;
        }
    }

    /// Tells the kernel how every window, now and later, will be read.
    pub(super) fn advise(&self, pattern: AccessPattern) -> io::Result<()> {
        self.access.store(pattern as u8, Ordering::Release);
        self.mapped().try_for_each(|r| r.advise(pattern.advice()))
    }

    /// Asks the kernel to read `[0, end_bytes)` of the file into memory:
    /// started in the background (`wait == false`, `MADV_WILLNEED`), or
    /// before returning (`MADV_POPULATE_READ`, falling back to
    /// `MADV_WILLNEED` on kernels before 5.14). Reads no byte itself.
    pub(super) fn will_need(&self, end_bytes: u64, wait: bool) -> io::Result<()> {
        for r in self.mapped() {
            let len = end_bytes.saturating_sub(r.file_offset());
            let populated = wait && r.advise_range(Advice::PopulateRead, r.file_offset(), len).is_ok();
            if !populated {
                r.advise_range(Advice::WillNeed, r.file_offset(), len)?;
            }
        }
        Ok(())
    }

    /// Bytes of `[0, end_bytes)` of the file in memory (page cache), by
    /// `mincore` over the windows; a byte two windows share counts once.
    pub(super) fn resident_bytes(&self, end_bytes: u64) -> io::Result<u64> {
        let mut counted_to = 0;
        let mut total = 0;
        for r in self.mapped() {
            let from = counted_to.max(r.file_offset());
            let to = end_bytes.min(r.end_offset());
            if from < to {
                total += r.resident_bytes(from, to - from)?;
                counted_to = to;
            }
        }
        Ok(total)
    }

    /// Bytes of address space the windows take.
    pub(super) fn mapped_bytes(&self) -> u64 {
        self.mapped().map(|r| r.len_bytes() as u64).sum()
    }

    fn mapped(&self) -> impl Iterator<Item = &MappedRegion> {
        let n = self.region_count.load(Ordering::Acquire);
        self.regions[..n].iter().filter_map(OnceLock::get)
    }

    /// The end of the slots readable through this map.
    pub(super) fn committed_slots(&self) -> Slot {
        Slot::from(self.committed_slots.load(Ordering::Acquire))
    }

    /// Declares every record below `end_slot` written and immutable.
    ///
    /// # Panics
    /// If `end_slot` would lower the committed end.
    pub(super) fn publish(&self, end_slot: Slot) {
        let previous = self.committed_slots();
        assert!(end_slot >= previous, "the committed end only grows ({previous} -> {end_slot})");
        self.committed_slots.store(end_slot.get(), Ordering::Release);
    }

    /// Writes whole records starting at `first_slot`. Only the writer calls
    /// this.
    ///
    /// # Panics
    /// If `first_slot` is below the committed end: a published record must
    /// never change.
    pub(super) fn write_records(
        &self,
        io: &Io,
        file: &File,
        path: &Path,
        first_slot: Slot,
        bytes: &[u8],
    ) -> io::Result<()> {
        assert!(first_slot >= self.committed_slots(), "a write at slot {first_slot} would change a published record");
        debug_assert!((bytes.len() as u64).is_multiple_of(self.record_size_bytes));
        io.write_at(file, path, bytes, self.record_offset(first_slot))
    }

    /// The payload of a published record: `count` elements of `T` at
    /// `payload_offset` bytes into the record. `None` for an unpublished slot.
    #[inline]
    pub(super) fn payload<T: bytemuck::Pod>(&self, slot: Slot, payload_offset: u64, count: usize) -> Option<&[T]> {
        if slot >= self.committed_slots() {
            return None;
        }
        let offset = self.record_offset(slot) + payload_offset;
        let len = (count * size_of::<T>()) as u64;
        let region = self.region_for(offset, len)?;
        // SAFETY: `slot` is below `committed_slots`, so its bytes were written
        // before `publish` (they exist in the file, which never shrinks below
        // them) and `write_records` will never write them again; the borrow
        // is tied to `&self`, which owns the region.
        Some(unsafe { region.slice::<T>(offset, count) })
    }
    /// The bytes from the payload of slot 0 to the end of the payload of
    /// slot `end_slot - 1`: every record's payload, `record_size_bytes`
    /// apart, as one borrow. `None` if `end_slot` is zero, past the
    /// committed end, or the records span more than one window.
    pub(super) fn payload_span(&self, end_slot: Slot, payload_offset: u64, payload_bytes: u64) -> Option<&[u8]> {
        if end_slot == Slot::ZERO || end_slot > self.committed_slots() {
            return None;
        }
        let offset = self.record_offset(Slot::ZERO) + payload_offset;
        let len = (end_slot.get() - 1).checked_mul(self.record_size_bytes)?.checked_add(payload_bytes)?;
        let region = self.region_for(offset, len)?;
        // SAFETY: every slot below `end_slot` is below `committed_slots`, so
        // the whole span was written before `publish` (the file never
        // shrinks below it) and `write_records` never writes it again; the
        // borrow is tied to `&self`, which owns the region.
        Some(unsafe { region.slice::<u8>(offset, usize::try_from(len).ok()?) })
    }
}

/// Bytes of `file`'s first `len_bytes` in the page cache, for a caller
/// that has no store open (`quiver info`): the file is mapped read-only
/// for the call and asked with `mincore`.
pub(crate) fn resident_bytes_of_file(file: &File, len_bytes: u64) -> io::Result<u64> {
    let Ok(len) = usize::try_from(len_bytes) else { return Ok(0) };
    if len == 0 {
        return Ok(0);
    }
    // SAFETY: no byte is ever read through this mapping (mincore asks the
    // page cache, it does not touch the pages), and it is unmapped before
    // this returns; so neither the in-bounds nor the immutability rule can
    // be broken, whatever another process does to the file meanwhile.
    let region = unsafe { MappedRegion::map_read_only(file, 0, len)? };
    region.resident_bytes(0, len_bytes)
}

/// A whole file mapped read-only, for files that are never written again
/// once they have their name: the index snapshots (written to a temporary
/// name, synced, then renamed; a named snapshot is only ever unlinked, and
/// an unlinked file's pages stay mapped until the mapping is dropped).
#[derive(Debug)]
pub(crate) struct ImmutableFile {
    region: MappedRegion,
}

impl ImmutableFile {
    /// Maps the first `len_bytes` (> 0, at most the file's length, which
    /// the caller read from the open file) of `file`.
    pub(crate) fn map(file: &File, len_bytes: usize) -> io::Result<Self> {
        if len_bytes == 0 || (len_bytes as u64) > file.metadata()?.len() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "an empty or shorter file cannot be mapped"));
        }
        // SAFETY: the bytes below `len_bytes` exist (checked just above,
        // and Quiver never truncates a named snapshot), and no process of
        // Quiver's writes a file once it has its final name, so the bytes
        // never change while mapped: the immutability rule of the
        // `quiver_guard` crate docs holds for the life of the mapping.
        let region = unsafe { MappedRegion::map_read_only(file, 0, len_bytes)? };
        // Probes jump around the table: read ahead nothing.
        let _ = region.advise(Advice::Random);
        Ok(Self { region })
    }

    /// The mapped bytes.
    #[inline]
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: the whole region is below the file's length and never
        // written again (see `map`); the borrow is tied to `self`, which
        // owns the mapping.
        unsafe { self.region.slice::<u8>(0, self.region.len_bytes()) }
    }
}

/// Asks the CPU to start loading `bytes` (a slice this map lent out): its
/// first cache line and the first line of every further page it reaches,
/// without waiting for them. The loads of many vectors then overlap instead
/// of taking one miss after another, and each page's translation is looked
/// up early; within a page the hardware prefetcher streams the rest once
/// the vector is read. (Requesting every line measured slower: the requests
/// overflow the core's miss buffers.) A hint only; on targets without a
/// prefetch instruction it does nothing.
#[inline]
pub(crate) fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        const PAGE: usize = 4096;
        let start = bytes.as_ptr() as usize;
        // The first byte, then the first byte of each later page.
        let mut at = 0;
        while at < bytes.len() {
            // SAFETY: `_mm_prefetch` needs SSE, which every x86_64 CPU has
            // (it is in the target's baseline); a prefetch neither reads
            // nor writes memory as far as the program can tell and never
            // faults, and the pointer is inside a live slice anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(bytes[at..].as_ptr().cast::<i8>()) };
            at += PAGE - (start + at) % PAGE;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}
