//! Exact top-k search over a Quiver [`Snapshot`]: every live vector scored
//! against the query by inner product, cosine similarity or squared L2
//! distance, the best `k` returned best first.
//!
//! ```
//! use quiver_search::{Hit, Metric, Search, SearchOptions};
//! use quiver_storage::VectorStore;
//!
//! let dir = tempfile::tempdir()?;
//! let store: VectorStore<f32> = VectorStore::open(dir.path().join("v"), 3)?;
//! store.store_batch(&[(1, &[1.0, 0.0, 0.0][..]), (2, &[0.0, 1.0, 0.0][..]), (3, &[0.9, 0.1, 0.0][..])])?;
//! let snapshot = store.snapshot();
//!
//! let hits = snapshot.search(&[1.0, 0.0, 0.0], 2, Metric::Dot)?;
//! assert_eq!(hits, [Hit { id: 1, score: 1.0 }, Hit { id: 3, score: 0.9 }]);
//!
//! // Two queries at once, row after row; odd ids only, on two threads.
//! let queries = [0.0, 1.0, 0.0, /* second query: */ 1.0, 0.1, 0.0];
//! let options = SearchOptions::new(1, Metric::L2).filter(|id| id % 2 == 1).threads(2);
//! let per_query = snapshot.search_batch_with(&queries, &options)?;
//! assert_eq!(per_query[0][0].id, 3);
//! assert_eq!(per_query[1][0].id, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What a search promises
//!
//! - **Exact.** Every candidate is scored; nothing is approximated.
//! - **Deterministic.** Hits are sorted best first, equal scores by smaller
//!   id first, and the same call gives the same hits and the same score
//!   bits for any number of threads, under any instruction set, and whether
//!   the query comes alone or in a batch.
//! - **Isolated.** A snapshot is immutable: a search sees the vectors as of
//!   the snapshot, whatever is written, deleted or compacted meanwhile.
//! - **No copy of the store.** `f32` vectors are scored in place; other
//!   element types are widened to `f32` a vector or a block at a time
//!   inside the kernel (see [`SearchElement`]). Queries are `f32` for every
//!   element type.
//! - **Bad queries are errors.** A query of the wrong length, or one holding
//!   NaN or an infinity, is refused with a [`SearchError`] before anything
//!   is scored. `k = 0` gives no hit; a `k` past the number of candidates
//!   gives them all.
//!
//! # Speed
//!
//! The kernels are plain Rust in 16 lanes, compiled for AVX-512, AVX2 and
//! the baseline and chosen at run time (with `pulp`), so no
//! `-C target-cpu` is needed. A single query is bound by memory bandwidth.
//! A batch ([`Search::search_batch`]) scores tiles of queries × vectors in
//! registers, so each vector read from memory serves every query: prefer it
//! whenever queries come in groups. `docs/BENCHMARKS.md` ("Exact search")
//! has the measured figures. Batches are passed flat, row after row
//! (`n × dim` values), which is what NumPy, faiss and most embedding
//! pipelines hand over — no slice of slices to build.
#![forbid(unsafe_code)]

mod element;
mod error;
mod isa;
mod kernel;
mod metric;
mod options;
mod scan;
mod topk;

pub use element::SearchElement;
pub use error::SearchError;
pub use isa::InstructionSet;
pub use metric::Metric;
pub use options::SearchOptions;
use quiver_storage::Snapshot;

/// One result: a vector's id and its score under the search's [`Metric`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    /// The vector's id.
    pub id: u64,
    /// Its score: see [`Metric`] for what it means and which way is better.
    pub score: f32,
}

/// Exact top-k search, implemented for [`Snapshot<T>`] of every element
/// type. Bring it into scope (`use quiver_search::Search`) and call it on a
/// snapshot; see the [crate docs](crate) for what every search promises.
pub trait Search {
    /// The best `k` vectors for `query` by `metric`, best first.
    ///
    /// # Errors
    ///
    /// [`SearchError::QueryLength`] if `query` is not of the store's
    /// dimension, [`SearchError::NonFiniteQuery`] if it holds NaN or an
    /// infinity.
    fn search(&self, query: &[f32], k: usize, metric: Metric) -> Result<Vec<Hit>, SearchError> {
        self.search_with(query, &SearchOptions::new(k, metric))
    }

    /// [`search`](Self::search) with a filter, threads or an instruction-set
    /// cap.
    ///
    /// # Errors
    ///
    /// As [`search`](Self::search).
    fn search_with(&self, query: &[f32], options: &SearchOptions<'_>) -> Result<Vec<Hit>, SearchError>;

    /// The best `k` for each of several queries, given flat and row after
    /// row (`queries.len()` is a multiple of the dimension): the result's
    /// `i`-th list is exactly what [`search`](Self::search) returns for
    /// query `i`, found in one pass over the store.
    ///
    /// # Errors
    ///
    /// [`SearchError::BatchLength`] if `queries.len()` is not a multiple of
    /// the store's dimension, [`SearchError::NonFiniteQuery`] (naming the
    /// query) if any holds NaN or an infinity.
    fn search_batch(&self, queries: &[f32], k: usize, metric: Metric) -> Result<Vec<Vec<Hit>>, SearchError> {
        self.search_batch_with(queries, &SearchOptions::new(k, metric))
    }

    /// [`search_batch`](Self::search_batch) with a filter, threads or an
    /// instruction-set cap.
    ///
    /// # Errors
    ///
    /// As [`search_batch`](Self::search_batch).
    fn search_batch_with(&self, queries: &[f32], options: &SearchOptions<'_>) -> Result<Vec<Vec<Hit>>, SearchError>;
}

impl<T: SearchElement> Search for Snapshot<T> {
    fn search_with(&self, query: &[f32], options: &SearchOptions<'_>) -> Result<Vec<Hit>, SearchError> {
        let dim = self.dim();
        if query.len() != dim {
            return Err(SearchError::QueryLength { expected: dim, actual: query.len() });
        }
        let mut hits = self.search_batch_with(query, options)?;
        Ok(hits.pop().unwrap_or_default())
    }

    fn search_batch_with(&self, queries: &[f32], options: &SearchOptions<'_>) -> Result<Vec<Vec<Hit>>, SearchError> {
        let dim = self.dim();
        if dim == 0 || !queries.len().is_multiple_of(dim) {
            return Err(SearchError::BatchLength { dimension: dim, actual: queries.len() });
        }
        if let Some(at) = queries.iter().position(|x| !x.is_finite()) {
            return Err(SearchError::NonFiniteQuery { query: at / dim, element: at % dim, value: queries[at] });
        }
        let n = queries.len() / dim;
        if n == 0 || options.k == 0 || self.is_empty() {
            return Ok(vec![Vec::new(); n]);
        }
        Ok(scan::run(self, queries, n, options))
    }
}
