//! `quiver info`: prints what `quiver::inspect` reads from a store directory,
//! as a table or as JSON. Takes no lock and changes nothing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use quiver::StoreInfo;

use crate::Outcome;
use crate::units::{bytes, count};

/// Arguments of `quiver info`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The store directory.
    dir: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `quiver info`.
pub(crate) fn run(args: &Args) -> Result<Outcome> {
    let info = quiver::inspect(&args.dir)?;
    if args.json {
        crate::json::print(&InfoJson::from(&info))?;
    } else {
        print!("{}", to_table(&info));
    }
    Ok(Outcome::Clean)
}

fn to_table(info: &StoreInfo) -> String {
    let mut out = String::new();
    let mut row = |name: &str, value: String| {
        let _ = writeln!(out, "{name:<12} {value}");
    };
    row("store", info.path.display().to_string());
    row("format", format!("version {}", info.format_version));
    row(
        "vectors",
        format!(
            "dimension {}, element {}, {} bytes per record",
            info.dimension,
            info.element.name(),
            info.record_size_bytes
        ),
    );
    row("generation", info.generation.to_string());
    row(
        "checkpoint",
        if info.checkpoint_lsn == 0 {
            "none yet".to_string()
        } else {
            format!("LSN {}, {} records", info.checkpoint_lsn, count(info.checkpoint_end_slot))
        },
    );
    row(
        "snapshot",
        match (&info.snapshot_entries, &info.snapshot_problem) {
            (Some(entries), _) => format!("{} entries, {}", count(*entries), bytes(info.snapshot_bytes)),
            (None, Some(problem)) => format!("unusable ({problem}); open rebuilds the index"),
            (None, None) => "none".to_string(),
        },
    );
    row(
        "data file",
        format!(
            "{}: {} long, {} allocated, {} in memory",
            file_name(&info.data_file),
            bytes(info.data_file_bytes),
            bytes(info.data_file_allocated_bytes),
            info.data_file_resident_bytes.map_or_else(|| "unknown".to_string(), bytes)
        ),
    );
    row("wal", format!("{} segment(s) from {}, {}", info.wal_segments, info.wal_first_segment, bytes(info.wal_bytes)));
    out
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// `quiver info --json` (docs/CLI.md, "info").
#[derive(serde::Serialize)]
struct InfoJson<'a> {
    path: String,
    format_version: u32,
    dimension: u32,
    element: &'static str,
    record_size_bytes: u32,
    generation: u32,
    checkpoint_lsn: u64,
    checkpoint_end_slot: u64,
    wal_first_segment: u64,
    snapshot_exists: bool,
    snapshot_entries: Option<u64>,
    snapshot_problem: Option<&'a str>,
    snapshot_bytes: u64,
    data_file: String,
    data_file_bytes: u64,
    data_file_allocated_bytes: u64,
    data_file_resident_bytes: Option<u64>,
    wal_segments: u64,
    wal_bytes: u64,
}

impl<'a> From<&'a StoreInfo> for InfoJson<'a> {
    fn from(info: &'a StoreInfo) -> Self {
        Self {
            path: info.path.to_string_lossy().into_owned(),
            format_version: info.format_version,
            dimension: info.dimension,
            element: info.element.name(),
            record_size_bytes: info.record_size_bytes,
            generation: info.generation,
            checkpoint_lsn: info.checkpoint_lsn,
            checkpoint_end_slot: info.checkpoint_end_slot,
            wal_first_segment: info.wal_first_segment,
            snapshot_exists: info.snapshot_exists,
            snapshot_entries: info.snapshot_entries,
            snapshot_problem: info.snapshot_problem.as_deref(),
            snapshot_bytes: info.snapshot_bytes,
            data_file: info.data_file.to_string_lossy().into_owned(),
            data_file_bytes: info.data_file_bytes,
            data_file_allocated_bytes: info.data_file_allocated_bytes,
            data_file_resident_bytes: info.data_file_resident_bytes,
            wal_segments: info.wal_segments,
            wal_bytes: info.wal_bytes,
        }
    }
}
