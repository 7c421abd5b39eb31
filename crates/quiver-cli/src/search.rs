//! `quiver search`: exact top-k search of a store, beside a running writer.
//!
//! Opens the store as a read-only follower (`VectorReader`: no lock, no
//! writes) with the element type and dimension from its header, takes one
//! snapshot and searches it with `quiver::Search`. Prints a table or JSON.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use quiver::{ElementType, Hit, Metric, Search, SearchElement, SearchOptions, StoreOptions, bf16, f16};

use crate::Outcome;

/// Arguments of `quiver search`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["query", "id"])))]
pub(crate) struct Args {
    /// The store directory.
    dir: PathBuf,
    /// A file holding the query vector. `.f32`: raw little-endian f32
    /// values; any other name: text, numbers separated by whitespace and/or
    /// commas, optionally in [brackets] (so a JSON array works).
    #[arg(long, value_name = "FILE")]
    query: Option<PathBuf>,
    /// Use the stored vector of this id as the query. Its own hit is
    /// included in the results: first for l2 and cosine (unless another
    /// vector ties it: the smaller id ranks first), not necessarily for dot,
    /// where a longer vector can score higher.
    #[arg(long, value_name = "ID")]
    id: Option<u64>,
    /// How many hits to print.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// dot (inner product, higher first), cosine (higher first; 0 for a
    /// zero vector) or l2 (squared Euclidean distance, lower first).
    #[arg(long, value_enum, default_value_t = MetricArg::Cosine)]
    metric: MetricArg,
    /// Threads to scan with (0: one per core).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum MetricArg {
    Dot,
    Cosine,
    L2,
}

impl From<MetricArg> for Metric {
    fn from(m: MetricArg) -> Self {
        match m {
            MetricArg::Dot => Metric::Dot,
            MetricArg::Cosine => Metric::Cosine,
            MetricArg::L2 => Metric::L2,
        }
    }
}

/// Runs `quiver search`.
pub(crate) fn run(args: &Args) -> Result<Outcome> {
    let info = quiver::inspect(&args.dir)?;
    let dim = info.dimension as usize;
    let (hits, lsn) = match info.element {
        ElementType::F32 => search::<f32>(args, dim),
        ElementType::F64 => search::<f64>(args, dim),
        ElementType::U8 => search::<u8>(args, dim),
        ElementType::I8 => search::<i8>(args, dim),
        ElementType::F16 => search::<f16>(args, dim),
        ElementType::Bf16 => search::<bf16>(args, dim),
        other => bail!("this build of quiver cannot open stores of {} elements", other.name()),
    }?;
    let metric = Metric::from(args.metric);
    if args.json {
        crate::json::print(&to_json(&hits, metric, args.k, lsn))?;
    } else {
        println!("{:>4}  {:>20}  {}", "rank", "id", metric.name());
        for (rank, h) in hits.iter().enumerate() {
            println!("{:>4}  {:>20}  {}", rank + 1, h.id, h.score);
        }
    }
    Ok(Outcome::Clean)
}

/// Opens a follower of `T`, takes a snapshot and searches it. Returns the
/// hits and the snapshot's LSN.
fn search<T: SearchElement>(args: &Args, dim: usize) -> Result<(Vec<Hit>, u64)> {
    let reader = StoreOptions::new(dim).open_reader::<T>(&args.dir)?;
    let snapshot = reader.snapshot();
    let query = match (&args.query, args.id) {
        (Some(file), _) => read_query(file)?,
        (None, Some(id)) => match snapshot.get(id) {
            Some(v) => T::to_f32(v),
            None => bail!("id {id} is not in the store (as of LSN {})", snapshot.lsn()),
        },
        (None, None) => bail!("give --query FILE or --id ID"),
    };
    let options = SearchOptions::new(args.k, args.metric.into()).threads(args.threads);
    let hits = snapshot.search_with(&query, &options)?;
    Ok((hits, snapshot.lsn()))
}

/// Reads a query file: raw little-endian f32 for `.f32`, text otherwise.
fn read_query(path: &Path) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading the query file {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "f32") {
        if !bytes.len().is_multiple_of(4) {
            bail!("{} holds {} bytes, not a whole number of f32 values", path.display(), bytes.len());
        }
        return Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect());
    }
    let text = String::from_utf8(bytes)
        .with_context(|| format!("{} is neither UTF-8 text nor a .f32 file", path.display()))?;
    parse_text(&text).with_context(|| format!("parsing the query file {}", path.display()))
}

/// Numbers separated by whitespace and/or commas, optionally in brackets.
fn parse_text(text: &str) -> Result<Vec<f32>> {
    let inner = text.trim();
    let inner = inner.strip_prefix('[').and_then(|s| s.strip_suffix(']')).unwrap_or(inner);
    inner
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .enumerate()
        .map(|(i, s)| s.parse::<f32>().with_context(|| format!("value {i} ({s:?}) is not a number")))
        .collect()
}

/// `quiver search --json` (docs/CLI.md, "search").
#[derive(serde::Serialize)]
struct SearchJson {
    metric: &'static str,
    k: usize,
    lsn: u64,
    hits: Vec<HitJson>,
}

/// One hit; a NaN score is `null`.
#[derive(serde::Serialize)]
struct HitJson {
    rank: usize,
    id: u64,
    score: Option<f32>,
}

fn to_json(hits: &[Hit], metric: Metric, k: usize, lsn: u64) -> SearchJson {
    let hits = hits
        .iter()
        .enumerate()
        .map(|(rank, h)| HitJson { rank: rank + 1, id: h.id, score: h.score.is_finite().then_some(h.score) })
        .collect();
    SearchJson { metric: metric.name(), k, lsn, hits }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the text format takes whitespace, commas and a JSON array, and
    // names the value that is not a number.
    #[test]
    fn query_text_formats() {
        assert_eq!(parse_text("1 2.5\n-3").expect("spaces"), [1.0, 2.5, -3.0]);
        assert_eq!(parse_text("[0.5, 1e2 ,-1]\n").expect("json"), [0.5, 100.0, -1.0]);
        let err = parse_text("1, x").expect_err("not a number");
        assert!(err.to_string().contains("value 1 (\"x\")"), "{err}");
    }
}
