//! An approximate nearest-neighbour index kept beside a Quiver store, the
//! way a user would build one: an HNSW graph from the `hnsw_rs` crate whose
//! points are *slots* of a [`Snapshot`], not copies of the vectors. Every
//! distance the graph computes reads both vectors in place, through the
//! snapshot, with one address computation each; the store keeps the only
//! copy.
//!
//! The index stays current through the store's change feed: it remembers
//! the LSN it has applied, [`SlotIndex::catch_up`] applies
//! `changes_since(lsn)` (a put inserts the new slot into the graph; an
//! overwrite or delete retires the old slot, which stays in the graph as a
//! route but is filtered out of every answer), and [`SlotIndex::save`]
//! persists the graph with that LSN atomically, so after a restart, or a
//! `kill -9`, [`SlotIndex::load`] plus a catch-up gives an index holding
//! exactly what the store holds.
//!
//! When the store compacts, slots are renumbered (a new generation) and the
//! graph's points no longer name the right records: the catch-up rebuilds
//! the graph from a new snapshot. (`Snapshot::relabel_from` maps old slots to
//! new ones for an index whose points can be relabelled; `hnsw_rs` keeps
//! its points immutable.)
//!
//! Why `hnsw_rs`: it inserts into a built graph and filters at search time,
//! which a change feed needs; `instant-distance` only builds once. The
//! measured comparison is in `docs/BENCHMARKS.md` ("ANN on top").
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anndists::dist::Distance;
use arc_swap::ArcSwap;
use hnsw_rs::api::AnnT;
use hnsw_rs::hnsw::Hnsw;
use hnsw_rs::hnswio::HnswIo;
use quiver::{Change, Error, Snapshot, VectorStore};
use serde::{Deserialize, Serialize};

/// What the graph stores per point: a slot of the snapshot the index
/// reads, or (only while a query runs, never stored) the query itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Key {
    /// A slot of the index's snapshot.
    Slot(u64),
    /// A query vector.
    #[serde(skip)]
    Query(Arc<[f32]>),
}

/// Squared Euclidean distance between two keys, each resolved in place:
/// a slot through the current snapshot, a query from itself. It matches
/// `quiver::Metric::L2`'s score.
pub struct SlotL2 {
    view: Arc<ArcSwap<Snapshot<f32>>>,
}

fn resolve<'a>(view: &'a Snapshot<f32>, key: &'a Key) -> &'a [f32] {
    match key {
        // A slot the graph holds was below the slot count of the snapshot
        // it was inserted under, and later snapshots of the generation keep
        // every slot: the lookup cannot fail.
        Key::Slot(slot) => view.vector_at(*slot).expect("the graph's slots are in the index's snapshot"),
        Key::Query(query) => query,
    }
}

impl Distance<Key> for SlotL2 {
    fn eval(&self, a: &[Key], b: &[Key]) -> f32 {
        let view = self.view.load();
        let (a, b) = (resolve(&view, &a[0]), resolve(&view, &b[0]));
        a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
    }
}

/// The graph's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Neighbours kept per point and layer (`M`).
    pub max_connections: usize,
    /// Candidates explored per insertion.
    pub ef_construction: usize,
    /// Candidates explored per query (at least `k`).
    pub ef_search: usize,
}

impl Default for Params {
    fn default() -> Self {
        Self { max_connections: 16, ef_construction: 200, ef_search: 64 }
    }
}

/// What [`SlotIndex::catch_up`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CatchUp {
    /// Changes applied from the feed.
    pub changes: u64,
    /// Whether the graph was rebuilt instead (the store compacted).
    pub rebuilt: bool,
}

/// An HNSW graph over the slots of a store's snapshot, with the LSN it is
/// current at.
pub struct SlotIndex {
    graph: Hnsw<'static, Key, SlotL2>,
    /// The snapshot the distance reads, replaced (same generation) by each
    /// catch-up before new slots are inserted.
    view: Arc<ArcSwap<Snapshot<f32>>>,
    /// Each id the index holds, and the slot of its vector.
    live: HashMap<u64, u64>,
    /// The inverse, for the search filter: a slot not in it is retired.
    ids_by_slot: HashMap<u64, u64>,
    generation: u32,
    lsn: u64,
    params: Params,
}

/// Layers of the graph (`hnsw_rs` caps it at 16).
const MAX_LAYERS: usize = 16;

impl SlotIndex {
    /// Builds the index over every vector of `snapshot`, current at its LSN.
    pub fn build(snapshot: &Snapshot<f32>, params: Params) -> Self {
        let view = Arc::new(ArcSwap::from_pointee(snapshot.clone()));
        let graph = Hnsw::new(
            params.max_connections,
            snapshot.len().max(1),
            MAX_LAYERS,
            params.ef_construction,
            SlotL2 { view: Arc::clone(&view) },
        );
        let mut index = Self {
            graph,
            view,
            live: HashMap::with_capacity(snapshot.len()),
            ids_by_slot: HashMap::with_capacity(snapshot.len()),
            generation: snapshot.generation(),
            lsn: snapshot.lsn(),
            params,
        };
        let slots: Vec<u64> =
            snapshot.ids().map(|id| snapshot.slot_of(id).expect("an id of the view has a slot")).collect();
        for (&slot, id) in slots.iter().zip(snapshot.ids()) {
            index.live.insert(id, slot);
            index.ids_by_slot.insert(slot, id);
        }
        index.insert_slots(&slots);
        index
    }

    fn insert_slots(&self, slots: &[u64]) {
        let keys: Vec<[Key; 1]> = slots.iter().map(|&s| [Key::Slot(s)]).collect();
        let batch: Vec<(&[Key], usize)> = keys.iter().zip(slots).map(|(k, &s)| (&k[..], s as usize)).collect();
        self.graph.parallel_insert_slice(&batch);
    }

    /// The LSN the index is current at: every change up to it is applied.
    pub fn lsn(&self) -> u64 {
        self.lsn
    }

    /// The number of vectors the index answers from.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether the index answers from no vector.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Each id the index holds and its vector, read through its snapshot.
    pub fn contents(&self) -> Vec<(u64, Vec<f32>)> {
        let view = self.view.load();
        let mut all: Vec<(u64, Vec<f32>)> = self
            .live
            .iter()
            .map(|(&id, &slot)| (id, view.vector_at(slot).expect("a live slot is in the snapshot").to_vec()))
            .collect();
        all.sort_by_key(|&(id, _)| id);
        all
    }

    /// Applies every change the store committed after [`lsn`](Self::lsn),
    /// or rebuilds from a new snapshot when the store compacted since.
    pub fn catch_up(&mut self, store: &VectorStore<f32>) -> Result<CatchUp, Error> {
        let feed = match store.changes_since(self.lsn) {
            Ok(feed) if feed.snapshot().generation() == self.generation => feed,
            Ok(_) | Err(Error::ChangesCompacted { .. }) => {
                *self = Self::build(&store.snapshot(), self.params);
                return Ok(CatchUp { changes: 0, rebuilt: true });
            }
            Err(e) => return Err(e),
        };
        // The new snapshot first: the slots about to be inserted are in it.
        self.view.store(Arc::new(feed.snapshot().clone()));
        let mut inserted = Vec::new();
        let mut changes = 0;
        for change in &feed {
            changes += 1;
            match change? {
                Change::Put { id, slot, .. } => {
                    if let Some(old) = self.live.insert(id, slot) {
                        self.ids_by_slot.remove(&old);
                    }
                    self.ids_by_slot.insert(slot, id);
                    inserted.push(slot);
                }
                Change::Delete { id, .. } => {
                    if let Some(old) = self.live.remove(&id) {
                        self.ids_by_slot.remove(&old);
                    }
                }
            }
        }
        // A slot overwritten later in the same feed need not enter the graph.
        inserted.retain(|slot| self.ids_by_slot.contains_key(slot));
        self.insert_slots(&inserted);
        self.lsn = feed.lsn();
        Ok(CatchUp { changes, rebuilt: false })
    }

    /// The `k` nearest ids to `query` with their squared distances, nearest
    /// first (approximate: an HNSW search with `ef_search` candidates).
    pub fn search(&self, query: &[f32], k: usize) -> Vec<(u64, f32)> {
        let key = [Key::Query(query.into())];
        let live = |slot: &usize| self.ids_by_slot.contains_key(&(*slot as u64));
        let found = self.graph.search_filter(&key, k, self.params.ef_search.max(k), Some(&live));
        found.iter().filter_map(|n| Some((*self.ids_by_slot.get(&(n.d_id as u64))?, n.distance))).collect()
    }

    /// Persists the index under `dir` (created if needed) so that a crash at
    /// any moment leaves the previous save or this one, whole: the graph
    /// and a metadata file go to a new directory named by the generation
    /// and LSN, which is synced and then renamed into place, and a
    /// `CURRENT` file naming it replaces the old one by rename; older saves
    /// are removed after. A save is never removed or rewritten while
    /// `CURRENT` may name it: saving twice at one generation and LSN keeps
    /// the first (the two hold the same vectors).
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)?;
        let name = format!("index-{:08}-{:020}", self.generation, self.lsn);
        let target = dir.join(&name);
        // A directory of that name is complete: it is renamed into place
        // only after everything in it is synced.
        if !target.exists() {
            let staging = dir.join(format!("{name}.tmp"));
            if staging.exists() {
                fs::remove_dir_all(&staging)?;
            }
            fs::create_dir(&staging)?;
            let basename = self.graph.file_dump(&staging, "graph").map_err(io::Error::other)?;
            let meta = Meta {
                basename,
                generation: self.generation,
                lsn: self.lsn,
                params: self.params,
                live: self.live.iter().map(|(&id, &slot)| (id, slot)).collect(),
            };
            write_synced(&staging.join("meta"), &meta_file::encode(&meta))?;
            for entry in fs::read_dir(&staging)? {
                File::open(entry?.path())?.sync_all()?;
            }
            File::open(&staging)?.sync_all()?;
            fs::rename(&staging, &target)?;
        }
        write_synced(&dir.join("CURRENT.tmp"), name.as_bytes())?;
        fs::rename(dir.join("CURRENT.tmp"), dir.join("CURRENT"))?;
        File::open(dir)?.sync_all()?;
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            if file_name.starts_with("index-") && file_name != name {
                fs::remove_dir_all(&path)?;
            }
        }
        Ok(())
    }

    /// Loads the index [`save`](Self::save) last completed under `dir` and
    /// catches it up with `store`; without a save, or when the store has
    /// compacted since, builds it from a snapshot instead.
    pub fn load(dir: &Path, store: &VectorStore<f32>, params: Params) -> Result<(Self, CatchUp), LoadError> {
        let Some(saved) = read_current(dir)? else {
            return Ok((Self::build(&store.snapshot(), params), CatchUp { changes: 0, rebuilt: true }));
        };
        let meta: Meta =
            meta_file::decode(&fs::read(saved.join("meta"))?).ok_or_else(|| LoadError::Damaged(saved.join("meta")))?;
        let snapshot = store.snapshot();
        if meta.generation != snapshot.generation() || meta.lsn > snapshot.lsn() {
            // Another generation's slots (or an LSN the store never reached):
            // the saved graph cannot be read against this store.
            return Ok((Self::build(&snapshot, params), CatchUp { changes: 0, rebuilt: true }));
        }
        let view = Arc::new(ArcSwap::from_pointee(snapshot));
        // `hnsw_rs` ties a loaded graph to its loader's lifetime (for its
        // memory-mapped mode, unused here); the loader is a few paths,
        // leaked once per load so the graph can be owned.
        let loader: &'static HnswIo = Box::leak(Box::new(HnswIo::new(&saved, &meta.basename)));
        let graph = loader
            .load_hnsw_with_dist::<Key, SlotL2>(SlotL2 { view: Arc::clone(&view) })
            .map_err(|e| LoadError::Graph(e.to_string()))?;
        let live: HashMap<u64, u64> = meta.live.iter().copied().collect();
        let ids_by_slot = live.iter().map(|(&id, &slot)| (slot, id)).collect();
        let mut index =
            Self { graph, view, live, ids_by_slot, generation: meta.generation, lsn: meta.lsn, params: meta.params };
        let caught_up = index.catch_up(store)?;
        Ok((index, caught_up))
    }
}

/// Why [`SlotIndex::load`] failed.
#[derive(Debug)]
pub enum LoadError {
    /// Reading the saved files failed.
    Io(io::Error),
    /// A saved file does not decode.
    Damaged(PathBuf),
    /// `hnsw_rs` could not load the graph.
    Graph(String),
    /// The catch-up failed.
    Store(Error),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Io(e) => write!(f, "reading the saved index failed: {e}"),
            LoadError::Damaged(p) => write!(f, "the saved index file {} is damaged", p.display()),
            LoadError::Graph(e) => write!(f, "loading the saved graph failed: {e}"),
            LoadError::Store(e) => write!(f, "catching the index up failed: {e}"),
        }
    }
}

impl std::error::Error for LoadError {}

impl From<io::Error> for LoadError {
    fn from(e: io::Error) -> Self {
        LoadError::Io(e)
    }
}

impl From<Error> for LoadError {
    fn from(e: Error) -> Self {
        LoadError::Store(e)
    }
}

/// What a save records beside the graph.
#[derive(Debug, PartialEq)]
struct Meta {
    basename: String,
    generation: u32,
    lsn: u64,
    params: Params,
    live: Vec<(u64, u64)>,
}

fn read_current(dir: &Path) -> io::Result<Option<PathBuf>> {
    let mut name = String::new();
    match File::open(dir.join("CURRENT")) {
        Ok(mut f) => f.read_to_string(&mut name)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(Some(dir.join(name.trim())))
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// The metadata file: one line of header fields, then one `id slot` line
/// per live vector. Plain text keeps the example free of a JSON crate.
mod meta_file {
    use super::{Meta, Params};

    pub(super) fn encode(meta: &Meta) -> Vec<u8> {
        let p = meta.params;
        let mut out = format!(
            "{} {} {} {} {} {} {}\n",
            meta.basename,
            meta.generation,
            meta.lsn,
            p.max_connections,
            p.ef_construction,
            p.ef_search,
            meta.live.len()
        );
        for (id, slot) in &meta.live {
            out.push_str(&format!("{id} {slot}\n"));
        }
        out.into_bytes()
    }

    pub(super) fn decode(bytes: &[u8]) -> Option<Meta> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines = text.lines();
        let head: Vec<&str> = lines.next()?.split(' ').collect();
        let [basename, generation, lsn, m, efc, efs, count] = head[..] else { return None };
        let live: Vec<(u64, u64)> = lines
            .map(|l| {
                let (id, slot) = l.split_once(' ')?;
                Some((id.parse().ok()?, slot.parse().ok()?))
            })
            .collect::<Option<_>>()?;
        (live.len() == count.parse::<usize>().ok()?).then_some(Meta {
            basename: basename.to_owned(),
            generation: generation.parse().ok()?,
            lsn: lsn.parse().ok()?,
            params: Params {
                max_connections: m.parse().ok()?,
                ef_construction: efc.parse().ok()?,
                ef_search: efs.parse().ok()?,
            },
            live,
        })
    }
}
