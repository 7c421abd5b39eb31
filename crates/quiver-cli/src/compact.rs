//! `quiver compact`: rewrites a store's live vectors into a new generation
//! with a progress bar, then prints what it did.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use quiver::{CompactionOptions, CompactionStats, Element, ElementType, StoreOptions, bf16, f16};

use crate::Outcome;
use crate::units::{bytes, count, duration};

/// Arguments of `quiver compact`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The store directory.
    dir: PathBuf,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    json: bool,
}

/// `quiver compact --json` (docs/CLI.md, "compact").
#[derive(serde::Serialize)]
struct CompactJson {
    generation: u32,
    live_records: u64,
    dropped_records: u64,
    bytes_before: u64,
    bytes_after: u64,
    bytes_copied: u64,
    seconds: f64,
    writer_pause_seconds: f64,
}

/// Runs `quiver compact`.
pub(crate) fn run(args: &Args) -> Result<Outcome> {
    let info = quiver::inspect(&args.dir)?;
    let dim = info.dimension as usize;
    let stats = match info.element {
        ElementType::F32 => compact::<f32>(args, dim),
        ElementType::F64 => compact::<f64>(args, dim),
        ElementType::U8 => compact::<u8>(args, dim),
        ElementType::I8 => compact::<i8>(args, dim),
        ElementType::F16 => compact::<f16>(args, dim),
        ElementType::Bf16 => compact::<bf16>(args, dim),
        other => bail!("this build of quiver cannot open stores of {} elements", other.name()),
    }?;
    if args.json {
        crate::json::print(&CompactJson {
            generation: stats.generation,
            live_records: stats.live_records,
            dropped_records: stats.dropped_records,
            bytes_before: stats.bytes_before,
            bytes_after: stats.bytes_after,
            bytes_copied: stats.bytes_copied,
            seconds: stats.duration.as_secs_f64(),
            writer_pause_seconds: stats.writer_pause.as_secs_f64(),
        })?;
        return Ok(Outcome::Clean);
    }
    println!("compacted {} into generation {}", args.dir.display(), stats.generation);
    println!("  records kept     {}", count(stats.live_records));
    println!("  records dropped  {}", count(stats.dropped_records));
    println!("  data file        {} -> {}", bytes(stats.bytes_before), bytes(stats.bytes_after));
    println!("  copied           {}", bytes(stats.bytes_copied));
    println!("  took             {} (writers paused {})", duration(stats.duration), duration(stats.writer_pause));
    Ok(Outcome::Clean)
}

fn compact<T: Element>(args: &Args, dim: usize) -> Result<CompactionStats> {
    let store = StoreOptions::new(dim).open::<T>(&args.dir)?;
    let bar = ProgressBar::new(store.len() as u64);
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} records ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let progress_bar = bar.clone();
    let options = CompactionOptions {
        progress: Some(Arc::new(move |done, total| {
            progress_bar.set_length(total);
            progress_bar.set_position(done);
        })),
        ..CompactionOptions::default()
    };
    let stats = quiver::compact_with(&store, &options)?;
    bar.finish_and_clear();
    store.close()?;
    Ok(stats)
}
