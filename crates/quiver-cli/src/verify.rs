//! `quiver verify`: reads the store's shape with `quiver::inspect`, opens it
//! with the element type found and runs `VectorStore::verify`, printing each
//! problem with its file and offset.
//!
//! Opening is recovery: like any open, it may cut a torn WAL tail or rebuild
//! a damaged snapshot before the check runs, and it takes the writer's lock
//! (a store open in another process gives `Locked`, exit 2).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use quiver::{Element, ElementType, SnapshotOutcome, StoreOptions, VerifyReport, bf16, f16};

use crate::Outcome;
use crate::units::{count, duration};

/// Arguments of `quiver verify`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The store directory.
    dir: PathBuf,
    /// The dimension to open with (default: the one in the store's header;
    /// a different one is refused by open).
    #[arg(long)]
    dim: Option<usize>,
    /// Print one JSON object instead of a report (the exit code is the
    /// same).
    #[arg(long)]
    json: bool,
}

/// `quiver verify --json` (docs/CLI.md, "verify").
#[derive(serde::Serialize)]
struct VerifyJson {
    path: String,
    dimension: usize,
    element: &'static str,
    seconds: f64,
    open: String,
    records_checked: u64,
    live_vectors: u64,
    tombstones: u64,
    clean: bool,
    problems: Vec<ProblemJson>,
}

/// One problem, located in a file.
#[derive(serde::Serialize)]
struct ProblemJson {
    path: String,
    offset: u64,
    reason: String,
}

/// Runs `quiver verify`.
pub(crate) fn run(args: &Args) -> Result<Outcome> {
    let info = quiver::inspect(&args.dir)?;
    let dim = args.dim.unwrap_or(info.dimension as usize);
    let started = std::time::Instant::now();
    let (report, opened) = match info.element {
        ElementType::F32 => check::<f32>(args, dim),
        ElementType::F64 => check::<f64>(args, dim),
        ElementType::U8 => check::<u8>(args, dim),
        ElementType::I8 => check::<i8>(args, dim),
        ElementType::F16 => check::<f16>(args, dim),
        ElementType::Bf16 => check::<bf16>(args, dim),
        other => bail!("this build of quiver cannot open stores of {} elements", other.name()),
    }?;
    let elapsed = started.elapsed();
    if args.json {
        crate::json::print(&VerifyJson {
            path: args.dir.to_string_lossy().into_owned(),
            dimension: dim,
            element: info.element.name(),
            seconds: elapsed.as_secs_f64(),
            open: opened,
            records_checked: report.records_checked,
            live_vectors: report.live_vectors,
            tombstones: report.tombstones,
            clean: report.problems.is_empty(),
            problems: report
                .problems
                .iter()
                .map(|p| ProblemJson {
                    path: p.path.to_string_lossy().into_owned(),
                    offset: p.offset,
                    reason: p.reason.clone(),
                })
                .collect(),
        })?;
        return Ok(if report.problems.is_empty() { Outcome::Clean } else { Outcome::Problems });
    }

    println!("verified {} ({dim} x {}) in {}", args.dir.display(), info.element.name(), duration(elapsed));
    println!("  open             {opened}");
    println!("  records checked  {}", count(report.records_checked));
    println!("  live vectors     {}", count(report.live_vectors));
    println!("  tombstones       {}", count(report.tombstones));
    println!("  problems         {}", count(report.problems.len() as u64));
    for p in &report.problems {
        println!("    {} at byte offset {}: {}", p.path.display(), p.offset, p.reason);
    }
    Ok(if report.problems.is_empty() { Outcome::Clean } else { Outcome::Problems })
}

/// Opens the store as `T`, verifies it and closes it. Returns the report and
/// what open did, as a phrase.
fn check<T: Element>(args: &Args, dim: usize) -> Result<(VerifyReport, String)> {
    let store = StoreOptions::new(dim).open::<T>(&args.dir)?;
    let recovery = store.recovery_report();
    let mut opened = match &recovery.snapshot {
        SnapshotOutcome::Loaded { entries } => format!("snapshot loaded ({} entries)", count(*entries)),
        SnapshotOutcome::Rebuilt { reason } => format!("index rebuilt from the data file ({reason})"),
        SnapshotOutcome::NoCheckpoint => "no checkpoint yet".to_string(),
        other => format!("{other:?}"),
    };
    opened.push_str(&format!(", {} WAL batches replayed", recovery.batches_replayed));
    if let Some(torn) = &recovery.torn_tail {
        opened.push_str(&format!(
            ", torn WAL tail cut at byte {} of {} ({} bytes: {})",
            torn.offset,
            torn.path.display(),
            torn.bytes_cut,
            torn.reason
        ));
    }
    let report = store.verify()?;
    store.close().context("closing the store after verifying it")?;
    Ok((report, opened))
}
