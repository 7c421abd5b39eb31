//! A store's metrics and a compaction's statistics as Python dicts.

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use quiver::{CompactionStats, LatencySummary, Metrics};

/// `metrics` as a dict: counts and bytes as ints, each latency summary as
/// a dict of seconds (`count`, `mean`, `p50`, `p99`, `p999`, `max`).
pub(crate) fn metrics_dict<'py>(py: Python<'py>, m: &Metrics) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("live_vectors", m.live_vectors)?;
    d.set_item("vectors_stored", m.vectors_stored)?;
    d.set_item("vectors_deleted", m.vectors_deleted)?;
    d.set_item("batches_committed", m.batches_committed)?;
    d.set_item("wal_syncs", m.wal_syncs)?;
    d.set_item("checkpoints", m.checkpoints)?;
    d.set_item("checkpoint_failures", m.checkpoint_failures)?;
    d.set_item("growth_events", m.growth_events)?;
    d.set_item("file_bytes", m.file_bytes)?;
    d.set_item("committed_bytes", m.committed_bytes)?;
    d.set_item("resident_bytes", m.resident_bytes)?;
    d.set_item("mapped_bytes", m.mapped_bytes)?;
    d.set_item("live_bytes", m.live_bytes)?;
    d.set_item("garbage_bytes", m.garbage_bytes)?;
    d.set_item("wal_bytes", m.wal_bytes)?;
    d.set_item("growth_latency", latency(py, &m.growth_latency)?)?;
    d.set_item("sync_latency", latency(py, &m.sync_latency)?)?;
    d.set_item("commit_latency", latency(py, &m.commit_latency)?)?;
    Ok(d)
}

fn latency<'py>(py: Python<'py>, l: &LatencySummary) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("count", l.count)?;
    for (name, value) in [("mean", l.mean), ("p50", l.p50), ("p99", l.p99), ("p999", l.p999), ("max", l.max)] {
        d.set_item(name, seconds(value))?;
    }
    Ok(d)
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// A compaction's statistics as a dict (durations in seconds).
pub(crate) fn compaction_dict<'py>(py: Python<'py>, s: &CompactionStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("generation", s.generation)?;
    d.set_item("live_records", s.live_records)?;
    d.set_item("dropped_records", s.dropped_records)?;
    d.set_item("bytes_before", s.bytes_before)?;
    d.set_item("bytes_after", s.bytes_after)?;
    d.set_item("bytes_copied", s.bytes_copied)?;
    d.set_item("duration", seconds(s.duration))?;
    d.set_item("writer_pause", seconds(s.writer_pause))?;
    Ok(d)
}
