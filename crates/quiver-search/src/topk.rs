//! Keeping the best `k` of many scored candidates.
//!
//! Candidates go into a buffer of up to `2k`; when it fills, a linear-time
//! selection keeps the best `k` and the worst of those becomes the
//! threshold. Once the buffer has filled once, a candidate no better than
//! the threshold — nearly all of them, over a large store — costs one
//! integer compare. The order is total (rank key, then id), so the `k`
//! kept are the same however the candidates were split or ordered.

use crate::{Hit, Metric};

/// A candidate: its rank key (see [`Metric::rank_key`]), its id and score.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Candidate {
    key: i64,
    id: u64,
    score: f32,
}

impl Candidate {
    #[inline(always)]
    fn order(&self) -> (i64, u64) {
        (self.key, self.id)
    }
}

/// The best `k` candidates seen so far.
#[derive(Debug)]
pub(crate) struct TopK {
    metric: Metric,
    k: usize,
    buf: Vec<Candidate>,
    /// The worst kept candidate once the buffer has been cut to `k`; a
    /// candidate must order before it to enter. Keys are `i32`s widened, so
    /// the starting threshold, `i64::MAX`, admits every candidate.
    threshold: (i64, u64),
}

impl TopK {
    /// Room for the best `k` (`k` must be at least 1).
    pub(crate) fn new(metric: Metric, k: usize) -> Self {
        debug_assert!(k > 0);
        // Capped so that a huge `k` over a small store does not allocate
        // for candidates that cannot exist; the buffer grows if needed.
        let cap = k.saturating_mul(2).min(1 << 16);
        Self { metric, k, buf: Vec::with_capacity(cap), threshold: (i64::MAX, 0) }
    }

    /// Offers one scored candidate.
    #[inline(always)]
    pub(crate) fn push(&mut self, id: u64, score: f32) {
        let key = i64::from(self.metric.rank_key(score));
        if (key, id) >= self.threshold {
            return;
        }
        self.buf.push(Candidate { key, id, score });
        if self.buf.len() >= self.k.saturating_mul(2) {
            self.cut();
        }
    }

    /// Keeps the best `k` of the buffer and raises the threshold to the
    /// worst of them.
    #[cold]
    fn cut(&mut self) {
        let k = self.k;
        self.buf.select_nth_unstable_by_key(k - 1, Candidate::order);
        self.buf.truncate(k);
        self.threshold = self.buf.iter().map(Candidate::order).max().unwrap_or((i64::MAX, 0));
    }

    /// Merges another selection of the same `k` and metric into this one.
    pub(crate) fn merge(&mut self, other: TopK) {
        for c in other.buf {
            if c.order() < self.threshold {
                self.buf.push(c);
                if self.buf.len() >= self.k.saturating_mul(2) {
                    self.cut();
                }
            }
        }
    }

    /// The best `k`, best first.
    pub(crate) fn into_hits(mut self) -> Vec<Hit> {
        self.buf.sort_unstable_by_key(Candidate::order);
        self.buf.truncate(self.k);
        self.buf.into_iter().map(|c| Hit { id: c.id, score: c.score }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the selection keeps the best k by score then id, whatever the
    // order candidates arrive in and however they are split and merged.
    #[test]
    fn keeps_the_best_k_in_total_order() {
        let scores: Vec<(u64, f32)> = (0..1000u64).map(|id| (id, ((id * 7919) % 101) as f32)).collect();
        let mut expected = scores.clone();
        expected.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        for k in [1, 3, 10, 64, 999, 1000, 5000] {
            let mut whole = TopK::new(Metric::Dot, k);
            for &(id, s) in scores.iter().rev() {
                whole.push(id, s);
            }
            let (mut a, mut b) = (TopK::new(Metric::Dot, k), TopK::new(Metric::Dot, k));
            for &(id, s) in &scores {
                if id % 3 == 0 { a.push(id, s) } else { b.push(id, s) }
            }
            a.merge(b);
            let want: Vec<(u64, f32)> = expected.iter().take(k).copied().collect();
            for got in [whole.into_hits(), a.into_hits()] {
                let got: Vec<(u64, f32)> = got.iter().map(|h| (h.id, h.score)).collect();
                assert_eq!(got, want, "k = {k}");
            }
        }
    }
}
