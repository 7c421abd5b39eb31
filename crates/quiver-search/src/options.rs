//! What a search is asked for beyond the query: `k`, the metric, a filter,
//! threads and an instruction-set cap.

use std::fmt;

use crate::{InstructionSet, Metric};

/// The options of [`crate::Search::search_with`] and
/// [`crate::Search::search_batch_with`], built in the usual way:
///
/// ```
/// use quiver_search::{Metric, SearchOptions};
/// let allowed = [3, 1, 4];
/// let options = SearchOptions::new(10, Metric::Cosine)
///     .filter(|id| id % 2 == 1) // score only odd ids...
///     .ids(&allowed) // ...among these
///     .threads(2);
/// # let _ = options;
/// ```
pub struct SearchOptions<'a> {
    pub(crate) k: usize,
    pub(crate) metric: Metric,
    pub(crate) predicate: Option<Box<dyn Fn(u64) -> bool + Sync + 'a>>,
    pub(crate) ids: Option<&'a [u64]>,
    pub(crate) threads: usize,
    pub(crate) instruction_set: InstructionSet,
}

impl<'a> SearchOptions<'a> {
    /// The best `k` by `metric`, over every vector, on one thread, with the
    /// widest instruction set the CPU has. `k = 0` returns no hit; a `k`
    /// past the number of candidates returns them all.
    pub fn new(k: usize, metric: Metric) -> Self {
        Self { k, metric, predicate: None, ids: None, threads: 1, instruction_set: InstructionSet::Avx512 }
    }

    /// Scores only the vectors whose id `keep` accepts. The vectors turned
    /// away are not read at all. `keep` is called once per candidate, from
    /// the search's threads.
    pub fn filter(mut self, keep: impl Fn(u64) -> bool + Sync + 'a) -> Self {
        self.predicate = Some(Box::new(keep));
        self
    }

    /// Scores only the vectors with these ids (in any order; duplicates and
    /// ids not in the snapshot are ignored), looked up one by one instead of
    /// scanning the store — the fast way when the set is a small part of
    /// it. With [`filter`](Self::filter) as well, a candidate must pass
    /// both.
    pub fn ids(mut self, ids: &'a [u64]) -> Self {
        self.ids = Some(ids);
        self
    }

    /// Splits the scan over `threads` threads (`0`: one per available
    /// core). Results are identical for any number of threads. A small
    /// search uses fewer threads than asked — each gets at least 2^18
    /// element products (candidates × dimension × queries; about 340
    /// vectors of 768 for one query), about 50 µs of work — as starting a thread costs
    /// more than it saves below that.
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Caps the instruction set the kernels may use (default: the widest
    /// the CPU has). Scores are the same bit for bit under every cap; only
    /// the speed changes — the cap exists to measure that, and to check it.
    pub fn instruction_set(mut self, cap: InstructionSet) -> Self {
        self.instruction_set = cap;
        self
    }

    /// The number of threads a scan of `candidates` vectors of `dim`
    /// elements for `queries` queries will use.
    pub(crate) fn threads_for(&self, candidates: usize, dim: usize, queries: usize) -> usize {
        let asked = match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let work = candidates.saturating_mul(dim).saturating_mul(queries);
        asked.min(work / MIN_WORK_PER_THREAD).max(1)
    }
}

/// The fewest element products worth a thread of their own.
pub(crate) const MIN_WORK_PER_THREAD: usize = 1 << 18;

impl fmt::Debug for SearchOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SearchOptions")
            .field("k", &self.k)
            .field("metric", &self.metric)
            .field("filter", &self.predicate.as_ref().map(|_| "predicate"))
            .field("ids", &self.ids.map(<[u64]>::len))
            .field("threads", &self.threads)
            .field("instruction_set", &self.instruction_set)
            .finish()
    }
}
