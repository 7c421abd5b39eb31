//! `VectorGuard`: a zero-copy view of one vector that keeps the generation
//! it points into alive.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

/// Releases one pin; implemented by a generation slot.
pub(crate) trait PinRelease: Sync {
    fn release(&self, shard: usize);
}

/// A zero-copy view of one stored vector.
///
/// A guard never blocks a writer, never changes while it is held (an
/// overwrite or delete of the same id appends a new record elsewhere), and
/// keeps the generation it points into mapped even if compaction switches
/// the store to a new one meanwhile. It borrows the store, so it cannot
/// outlive it.
///
/// ```
/// use quiver_guard::VectorGuard;
/// let backing = [1.0_f32, 2.0, 3.0];
/// let guard = VectorGuard::new(&backing[..]);
/// assert_eq!(guard.iter().sum::<f32>(), 6.0);
/// assert_eq!(&*guard, &[1.0, 2.0, 3.0]);
/// ```
pub struct VectorGuard<'a, T> {
    ptr: *const T,
    len: usize,
    pin: Option<(&'a dyn PinRelease, usize)>,
    _borrow: PhantomData<&'a [T]>,
}

// SAFETY: a guard is a shared borrow of `[T]` plus a pin whose release is an
// atomic decrement that any thread may perform; it is as thread-safe as
// `&[T]`.
unsafe impl<T: Sync> Send for VectorGuard<'_, T> {}
// SAFETY: as above; `&VectorGuard` only hands out `&[T]`.
unsafe impl<T: Sync> Sync for VectorGuard<'_, T> {}

impl<'a, T> VectorGuard<'a, T> {
    /// Wraps a borrowed slice (no pin). The storage engine builds pinned
    /// guards from mapped generations; anyone may build one from memory.
    #[inline]
    pub fn new(slice: &'a [T]) -> Self {
        Self { ptr: slice.as_ptr(), len: slice.len(), pin: None, _borrow: PhantomData }
    }

    /// # Safety
    /// `[ptr, ptr + len)` must be a valid, immutable `[T]` for as long as the
    /// pin (released on drop through `release`) is held.
    #[inline]
    pub(crate) unsafe fn from_pinned(ptr: *const T, len: usize, release: &'a dyn PinRelease, shard: usize) -> Self {
        Self { ptr, len, pin: Some((release, shard)), _borrow: PhantomData }
    }
}

impl<T> Deref for VectorGuard<'_, T> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: built from a valid slice that stays valid and unchanged
        // while this guard (and the pin it owns, if any) lives.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl<T> Drop for VectorGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if let Some((release, shard)) = self.pin.take() {
            release.release(shard);
        }
    }
}

impl<T> AsRef<[T]> for VectorGuard<'_, T> {
    fn as_ref(&self) -> &[T] {
        self
    }
}

impl<T: fmt::Debug> fmt::Debug for VectorGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: PartialEq> PartialEq<[T]> for VectorGuard<'_, T> {
    fn eq(&self, other: &[T]) -> bool {
        **self == *other
    }
}
