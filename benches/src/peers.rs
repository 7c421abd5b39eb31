//! The engines Quiver is compared with, each loaded the way its own
//! documentation recommends for a durable bulk import, and the physical
//! baseline (a plain file written sequentially and fsynced).
//!
//! Every `import` returns the time from after the engine is opened to when
//! the whole data set is durable; opening and closing are not timed.
//!
//! - Quiver (in [`crate::baselines`]): `reserve_capacity`, `store_batch`
//!   of 1000, one `flush`.
//! - heed (LMDB): one write transaction, keys big-endian in ascending
//!   order with `MDB_APPEND`, commit (LMDB's commit syncs by default).
//! - redb: one write transaction, `insert` per vector, commit
//!   (`Durability::Immediate`, redb's default).
//! - velesdb-core's `MmapStorage` (the seed): `reserve_capacity`,
//!   `store_batch` of 1000, `flush` (msync of the map + fsync of the WAL,
//!   its default `DurabilityMode::Fsync`).

use std::path::Path;
use std::time::Duration;

use heed::byteorder::BigEndian;
use heed::types::{Bytes, U64};
use velesdb_core::storage::{MmapStorage, VectorSliceGuard, VectorStorage};

use crate::{Dataset, time};

// The Quiver and raw-file imports these peers are compared with live in
// `crate::baselines`, so benches without peers need no peer engine.

/// heed's typed handle of LMDB's unnamed database: big-endian `u64` keys
/// (so ascending ids are ascending keys, as `MDB_APPEND` needs), raw bytes.
pub type HeedDb<'e> = heed::Database<'e, U64<BigEndian>, Bytes>;

/// LMDB through heed.
pub struct Heed {
    env: heed::Env,
}

impl Heed {
    /// Creates an environment in the directory `path` with a map large
    /// enough for `ds` (LMDB puts each 3 KiB value on its own overflow
    /// page, so about 4 KiB per vector).
    pub fn create(path: &Path, ds: &Dataset) -> Self {
        std::fs::create_dir_all(path).expect("heed dir");
        let per_vector = (ds.vector_bytes() + 16).div_ceil(4096) * 4096 + 64;
        let map_bytes = (ds.count as usize * per_vector * 11 / 10 + (64 << 20)).next_multiple_of(4096);
        // SAFETY: LMDB requires that no other handle in this process opens
        // the same environment and that nobody truncates its files while it
        // is open; the directory is fresh and private to this bench.
        let env = unsafe { heed::EnvOpenOptions::new().map_size(map_bytes).max_dbs(1).open(path) }.expect("open heed");
        Self { env }
    }

    /// The unnamed database (it always exists; opening it is cheap, so it
    /// is opened per import or read pass rather than stored, since heed
    /// ties a database handle to a borrow of its environment).
    pub fn db(&self) -> HeedDb<'_> {
        let rtxn = self.env.read_txn().expect("txn");
        self.env
            .open_databases_and_commit(rtxn, |opener, rtxn| -> heed::Result<_> {
                Ok(heed::CommitOrAbort::<_, ()>::Commit(opener.open_database::<U64<BigEndian>, Bytes>(rtxn, None)?))
            })
            .expect("open the unnamed database")
            .unwrap_commit()
            .expect("the unnamed database always exists")
    }

    /// One write transaction appending every vector in key order, committed
    /// (and so synced).
    pub fn import(&self, ds: &Dataset) -> Duration {
        let db = self.db();
        let (t, ()) = time(|| {
            let mut wtxn = self.env.write_txn().expect("txn");
            for batch in ds.batches() {
                for (id, v) in batch {
                    db.put_with_flags(&mut wtxn, heed::PutFlags::APPEND, &id, bytemuck::cast_slice(v)).expect("put");
                }
            }
            wtxn.commit().expect("commit");
        });
        t
    }

    /// A read transaction (hold one for a whole pass of reads, as an LMDB
    /// user would).
    pub fn read_txn(&self) -> heed::RoTxn<'_, heed::WithTls> {
        self.env.read_txn().expect("read txn")
    }
}

const REDB_TABLE: redb::TableDefinition<'static, u64, &'static [u8]> = redb::TableDefinition::new("vectors");

/// redb.
pub struct Redb {
    db: redb::Database,
}

impl Redb {
    /// Creates a database file at `path`; `cache_bytes` overrides redb's
    /// default 1 GiB page cache.
    pub fn create(path: &Path, cache_bytes: Option<usize>) -> Self {
        let mut builder = redb::Builder::new();
        if let Some(c) = cache_bytes {
            builder.set_cache_size(c);
        }
        Self { db: builder.create(path).expect("open redb") }
    }

    /// One write transaction inserting every vector, committed durably.
    pub fn import(&self, ds: &Dataset) -> Duration {
        let (t, ()) = time(|| {
            let txn = self.db.begin_write().expect("txn");
            {
                let mut table = txn.open_table(REDB_TABLE).expect("table");
                for batch in ds.batches() {
                    for (id, v) in batch {
                        table.insert(id, bytemuck::cast_slice::<f32, u8>(v)).expect("insert");
                    }
                }
            }
            txn.commit().expect("commit");
        });
        t
    }

    /// The table, in a read transaction it keeps alive (open one per pass).
    pub fn read_table(&self) -> redb::ReadOnlyTable<u64, &'static [u8]> {
        use redb::ReadableDatabase;
        self.db.begin_read().expect("read txn").open_table(REDB_TABLE).expect("table")
    }
}

/// velesdb-core's `MmapStorage`, the seed.
pub struct Veles {
    /// The storage.
    pub storage: MmapStorage,
}

impl Veles {
    /// Creates a storage in the directory `path` (default durability,
    /// `Fsync`).
    pub fn create(path: &Path, ds: &Dataset) -> Self {
        Self { storage: MmapStorage::new(path, ds.dim).expect("open velesdb") }
    }

    /// `reserve_capacity`, `store_batch` of 1000, `flush`.
    pub fn import(&mut self, ds: &Dataset) -> Duration {
        let (t, ()) = time(|| {
            self.storage.reserve_capacity(ds.count as usize).expect("reserve");
            for batch in ds.batches() {
                self.storage.store_batch(&batch).expect("store_batch");
            }
            self.storage.flush().expect("flush");
        });
        assert_eq!(self.storage.len() as u64, ds.count);
        t
    }

    /// The zero-copy guard of `id` (`retrieve_ref`).
    #[inline]
    pub fn get(&self, id: u64) -> Option<VectorSliceGuard<'_>> {
        self.storage.retrieve_ref(id).expect("velesdb retrieve_ref")
    }
}
