//! `quiver.open`'s keyword arguments as `quiver::StoreOptions`.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use quiver::{AccessPattern, Durability, StoreOptions};

/// The keyword options `open` and `open_reader` accept.
pub(crate) const KNOWN: &str = "initial_file_bytes, growth_step_bytes=(min, max), map_window_bytes, \
                                inline_batch_max_bytes, checkpoint_wal_bytes, access_pattern, populate";

/// The durability level named `name`.
pub(crate) fn durability(name: &str) -> PyResult<Durability> {
    match name {
        "sync" => Ok(Durability::Sync),
        "buffered" => Ok(Durability::Buffered),
        "deferred" => Ok(Durability::Deferred),
        other => {
            Err(PyValueError::new_err(format!("durability {other:?} is not one of 'sync', 'buffered', 'deferred'")))
        }
    }
}

/// The name of `d`.
pub(crate) fn durability_name(d: Durability) -> &'static str {
    match d {
        Durability::Sync => "sync",
        Durability::Deferred => "deferred",
        _ => "buffered",
    }
}

/// `StoreOptions::new(dim)` with every option in `kwargs` applied.
pub(crate) fn store_options(dim: usize, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<StoreOptions> {
    let mut options = StoreOptions::new(dim);
    let Some(kwargs) = kwargs else { return Ok(options) };
    for (key, value) in kwargs.iter() {
        let key: String = key.extract()?;
        options = match key.as_str() {
            "initial_file_bytes" => options.initial_file_bytes(value.extract()?),
            "growth_step_bytes" => {
                let (min, max): (u64, u64) = value.extract()?;
                options.growth_step_bytes(min, max)
            }
            "map_window_bytes" => options.map_window_bytes(value.extract()?),
            "inline_batch_max_bytes" => options.inline_batch_max_bytes(value.extract()?),
            "checkpoint_wal_bytes" => options.checkpoint_wal_bytes(value.extract()?),
            "access_pattern" => options.access_pattern(match value.extract::<String>()?.as_str() {
                "normal" => AccessPattern::Normal,
                "random" => AccessPattern::Random,
                "sequential" => AccessPattern::Sequential,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "access_pattern {other:?} is not one of 'normal', 'random', 'sequential'"
                    )));
                }
            }),
            "populate" => options.populate(value.extract()?),
            other => {
                return Err(PyTypeError::new_err(format!("unknown option {other:?}; the options are: {KNOWN}")));
            }
        };
    }
    Ok(options)
}
