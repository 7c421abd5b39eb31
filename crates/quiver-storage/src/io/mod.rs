//! The durability seam: every write and durability step Quiver takes
//! (pwrite, write, fsync, fdatasync, fallocate, set_len, rename, unlink,
//! directory creation and directory fsync) goes through [`Io`].
//!
//! Production calls the operating system directly. Tests (with the
//! `testing` feature, which makes this module public) install a
//! [`FaultInjector`] that sees every step before it happens and may fail it,
//! which is how poisoning, ENOSPC handling and short writes are proven. This
//! module must never buffer or reorder steps: what the caller asks for is
//! what the kernel gets, in that order.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use rustix::fs::FallocateFlags;

#[cfg(feature = "testing")]
pub mod sim;

/// One durability-relevant step, as seen by a [`FaultInjector`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoStep<'a> {
    /// A positioned write of `len` bytes at `offset`.
    Write {
        /// The file written.
        path: &'a Path,
        /// Byte offset.
        offset: u64,
        /// Bytes to write.
        len: usize,
        /// The bytes themselves (a crash simulator keeps them to rebuild
        /// what a power cut would leave on disk).
        data: &'a [u8],
    },
    /// `fdatasync` of a file.
    SyncData {
        /// The file synced.
        path: &'a Path,
    },
    /// `fsync` of a file.
    SyncAll {
        /// The file synced.
        path: &'a Path,
    },
    /// `fallocate` reserving `[offset, offset + len)`.
    Allocate {
        /// The file grown.
        path: &'a Path,
        /// Start of the range.
        offset: u64,
        /// Length of the range.
        len: u64,
    },
    /// `ftruncate` to `len`.
    SetLen {
        /// The file truncated or extended.
        path: &'a Path,
        /// The new length.
        len: u64,
    },
    /// `rename(from, to)`.
    Rename {
        /// Old name.
        from: &'a Path,
        /// New name.
        to: &'a Path,
    },
    /// `unlink` of a file or `rmdir` of an empty directory.
    Remove {
        /// The path removed.
        path: &'a Path,
    },
    /// Creation of an empty file.
    Create {
        /// The path created.
        path: &'a Path,
    },
    /// Creation of a directory.
    CreateDir {
        /// The path created.
        path: &'a Path,
    },
    /// `fsync` of a directory, making entries in it durable.
    SyncDir {
        /// The directory.
        path: &'a Path,
    },
}

/// What a [`FaultInjector`] decides for a step.
#[derive(Debug)]
// Without the `testing` feature no injector can be installed, so nothing
// constructs these; the seam keeps one shape in both builds.
#[cfg_attr(not(feature = "testing"), allow(dead_code))]
pub enum FaultAction {
    /// Perform the step normally.
    Proceed,
    /// Fail the step with this error, without performing it.
    Fail(io::Error),
    /// For a write: write only this many bytes, then report the error.
    Short(usize, io::Error),
}

/// A test hook that sees every durability step before it happens.
pub trait FaultInjector: Send + Sync + fmt::Debug {
    /// Decides what happens to `step`.
    fn before(&self, step: IoStep<'_>) -> FaultAction;
}

/// The seam itself: cheap to clone, carries the optional fault injector.
#[derive(Clone, Debug, Default)]
pub struct Io {
    faults: Option<Arc<dyn FaultInjector>>,
}

impl Io {
    /// The real operating system, optionally with a fault injector.
    pub fn new(faults: Option<Arc<dyn FaultInjector>>) -> Self {
        Self { faults }
    }

    fn check(&self, step: IoStep<'_>) -> io::Result<()> {
        match self.faults.as_ref().map(|f| f.before(step)) {
            None | Some(FaultAction::Proceed) => Ok(()),
            Some(FaultAction::Fail(e)) => Err(e),
            // The short length rides inside the error so `write_at` can
            // perform the partial write; other steps just fail.
            Some(FaultAction::Short(n, e)) => Err(io::Error::new(e.kind(), ShortWrite(n, e.to_string()))),
        }
    }

    /// Writes all of `buf` at `offset`. A short write (injected or real) is
    /// an error; the caller owns cutting back.
    pub fn write_at(&self, file: &File, path: &Path, buf: &[u8], offset: u64) -> io::Result<()> {
        if let Err(e) = self.check(IoStep::Write { path, offset, len: buf.len(), data: buf }) {
            if let Some(ShortWrite(n, _)) = e.get_ref().and_then(|r| r.downcast_ref::<ShortWrite>()) {
                let n = (*n).min(buf.len());
                file.write_all_at(&buf[..n], offset)?;
            }
            return Err(e);
        }
        file.write_all_at(buf, offset)
    }

    /// `fdatasync`.
    pub fn sync_data(&self, file: &File, path: &Path) -> io::Result<()> {
        self.check(IoStep::SyncData { path })?;
        file.sync_data()
    }

    /// `fsync`.
    pub fn sync_all(&self, file: &File, path: &Path) -> io::Result<()> {
        self.check(IoStep::SyncAll { path })?;
        file.sync_all()
    }

    /// `fallocate(mode 0)`: reserves real blocks for the range, extending the
    /// file if the range passes its end.
    pub fn allocate(&self, file: &File, path: &Path, offset: u64, len: u64) -> io::Result<()> {
        self.check(IoStep::Allocate { path, offset, len })?;
        rustix::fs::fallocate(file, FallocateFlags::empty(), offset, len).map_err(io::Error::from)
    }

    /// `ftruncate`.
    pub fn set_len(&self, file: &File, path: &Path, len: u64) -> io::Result<()> {
        self.check(IoStep::SetLen { path, len })?;
        file.set_len(len)
    }

    /// `rename`.
    pub fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(IoStep::Rename { from, to })?;
        fs::rename(from, to)
    }

    /// `unlink` of a file.
    pub fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.check(IoStep::Remove { path })?;
        fs::remove_file(path)
    }

    /// Recursive removal of a directory Quiver built and never published.
    pub fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.check(IoStep::Remove { path })?;
        fs::remove_dir_all(path)
    }

    /// `mkdir`.
    pub fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.check(IoStep::CreateDir { path })?;
        fs::create_dir(path)
    }

    /// Creates a new file (failing if it exists), opened for read and write.
    pub fn create_file(&self, path: &Path) -> io::Result<File> {
        self.check(IoStep::Create { path })?;
        OpenOptions::new().read(true).write(true).create_new(true).open(path)
    }

    /// Opens (creating if missing) a file for read and write. Used only for
    /// the lock file, whose existence no guarantee depends on.
    pub fn open_or_create(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)
    }

    /// `fsync` of a directory.
    pub fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.check(IoStep::SyncDir { path })?;
        File::open(path)?.sync_all()
    }

    /// Writes `bytes` to `path` through a temporary sibling: create temp,
    /// write, fsync, rename over `path`, fsync the directory.
    pub fn replace_file_atomically(&self, dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
        let tmp = dir.join(format!("{name}{}", crate::format::TEMP_SUFFIX));
        if tmp.exists() {
            self.remove_file(&tmp)?;
        }
        let file = self.create_file(&tmp)?;
        let written = self.write_at(&file, &tmp, bytes, 0).and_then(|()| self.sync_all(&file, &tmp));
        drop(file);
        if let Err(e) = written {
            let _ = self.remove_file(&tmp);
            return Err(e);
        }
        if let Err(e) = self.rename(&tmp, &dir.join(name)) {
            let _ = self.remove_file(&tmp);
            return Err(e);
        }
        self.sync_dir(dir)
    }
}

/// Carries an injected short write's length through an `io::Error`.
#[derive(Debug)]
struct ShortWrite(usize, String);

impl fmt::Display for ShortWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "short write of {} bytes: {}", self.0, self.1)
    }
}

impl std::error::Error for ShortWrite {}
