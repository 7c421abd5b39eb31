//! Helpers shared by Quiver's fuzz targets and the seed-corpus generator:
//! where scratch stores live, the small store shape every target uses, and
//! the vectors written into it.
//!
//! Nothing here links libFuzzer, so the corpus generator (an example) can
//! use it from an ordinary build.

use std::path::PathBuf;

use quiver_storage::StoreOptions;

/// Elements per vector in every store the targets build.
pub const DIM: usize = 4;

/// Options for a tiny store: small first file and growth steps so growth
/// happens within a few writes, one-MiB map windows.
pub fn small_options() -> StoreOptions {
    StoreOptions::new(DIM).initial_file_bytes(8192).growth_step_bytes(4096, 65_536).map_window_bytes(1 << 20)
}

/// A fresh scratch directory for one input. Prefers `QUIVER_FUZZ_TMP`, then
/// `/dev/shm` (tmpfs makes the many fsyncs of recovery cheap), then the
/// system temp directory. Removed when dropped.
pub fn scratch_dir() -> tempfile::TempDir {
    let base = std::env::var_os("QUIVER_FUZZ_TMP").map(PathBuf::from).unwrap_or_else(|| {
        let shm = PathBuf::from("/dev/shm");
        if shm.is_dir() { shm } else { std::env::temp_dir() }
    });
    tempfile::Builder::new().prefix("quiver-fuzz-").tempdir_in(base).expect("a scratch directory can be created")
}

/// The vector stored under `id` by a write tagged `seed`: distinct per
/// (id, seed), so a stale or misplaced vector is told apart.
pub fn vector(id: u64, seed: u8) -> [f32; DIM] {
    [id as f32, f32::from(seed), -(f32::from(seed)), 0.5 + id as f32 * 0.25]
}

/// The little-endian bytes of [`vector`], as a record payload holds them.
pub fn vector_bytes(id: u64, seed: u8) -> Vec<u8> {
    vector(id, seed).iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A half-open byte range `(start, end)` of an encoded header.
pub type ByteRange = (usize, usize);

/// Checks that `encoded` (a decoded value encoded again) matches the
/// `original` bytes. The `unchecked` ranges are documented as zero but not
/// checked by the decoder: when they are zero in `original`, every byte
/// must match; when not (a checksum-valid header with non-zero reserved
/// bytes, which the decoders accept), the bytes outside them and outside
/// the checksum at `crc_at` must.
pub fn assert_round_trip(encoded: &[u8], original: &[u8], unchecked: &[ByteRange], crc_at: ByteRange) {
    assert_eq!(encoded.len(), original.len());
    let within = |i: usize, (start, end): ByteRange| (start..end).contains(&i);
    let reserved_zero = unchecked.iter().all(|&(start, end)| original[start..end].iter().all(|&b| b == 0));
    for (i, (a, b)) in encoded.iter().zip(original).enumerate() {
        let skip = !reserved_zero && (within(i, crc_at) || unchecked.iter().any(|&r| within(i, r)));
        if !skip {
            assert_eq!(a, b, "byte {i} differs after a decode/encode round trip");
        }
    }
}
