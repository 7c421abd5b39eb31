//! `quiver import` and `quiver export`: fvecs, bvecs, npy, Arrow and
//! Parquet files in and out of a store through `quiver-formats`, with a
//! progress bar and a summary (or JSON).
//!
//! An import creates the store when it is missing (dimension and element
//! type from the file) and refuses a file whose shape is not the store's,
//! or flags that do not fit the file, before writing anything: a refused
//! import into a missing directory does not create it. Ctrl-C or SIGTERM stops it between batches:
//! what was stored is flushed, the resume flags are printed, and the exit
//! code is 128 + the signal. An export reads a snapshot of a read-only
//! follower, so it is consistent while a writer keeps writing.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use quiver::{Durability, Element, ElementType, StoreOptions, bf16, f16};
use quiver_formats::{
    FileShape, Format, FormatError, ImportOptions, ImportSummary, Progress, ReadRows, ReaderOptions, Scalar, WithIds,
};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::{SigId, flag};

use crate::Outcome;
use crate::units::count;

/// A file format on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum FormatArg {
    Fvecs,
    Bvecs,
    Ivecs,
    Npy,
    /// An Arrow IPC file.
    Arrow,
    /// An Arrow IPC stream.
    Arrows,
    Parquet,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Fvecs => Format::Fvecs,
            FormatArg::Bvecs => Format::Bvecs,
            FormatArg::Ivecs => Format::Ivecs,
            FormatArg::Npy => Format::Npy,
            FormatArg::Arrow => Format::ArrowFile,
            FormatArg::Arrows => Format::ArrowStream,
            FormatArg::Parquet => Format::Parquet,
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum DurabilityArg {
    Sync,
    Buffered,
    Deferred,
}

/// Arguments of `quiver import`.
#[derive(Debug, clap::Args)]
pub(crate) struct ImportArgs {
    /// The store directory (created if missing, with the file's dimension
    /// and element type).
    dir: PathBuf,
    /// The file to import: .fvecs, .bvecs, .npy (a 2-D array in C order),
    /// .arrow / .arrows / .parquet (a table `id: uint64, vector:
    /// fixed_size_list<item, dim>`, or other names with --id-column and
    /// --vector-column; rows keep their ids).
    file: PathBuf,
    /// The file's format, when its extension does not say.
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// The id of the file's first row; row r gets FIRST_ID + r (files
    /// without an id column).
    #[arg(long, default_value_t = 0)]
    first_id: u64,
    /// The ids of the file's rows, row for row, from a 1-D uint64 .npy (what
    /// `quiver export --ids-only` writes) holding as many ids as the file
    /// has rows; for files without an id column (fvecs, bvecs, npy).
    #[arg(long, value_name = "FILE", conflicts_with = "first_id")]
    ids: Option<PathBuf>,
    /// The table column holding the ids, when it is not `id` (Arrow and
    /// Parquet; uint64, uint32, or int64 without negative ids).
    #[arg(long, value_name = "NAME", conflicts_with = "ids")]
    id_column: Option<String>,
    /// The table column holding the vectors, when it is not `vector` (Arrow
    /// and Parquet; a fixed-size or variable list).
    #[arg(long, value_name = "NAME", conflicts_with = "ids")]
    vector_column: Option<String>,
    /// Rows to skip (to resume an interrupted import; rows keep their ids).
    #[arg(long, default_value_t = 0)]
    skip_rows: u64,
    /// The store's durability while importing (the import ends with a flush
    /// either way).
    #[arg(long, value_enum, default_value_t = DurabilityArg::Buffered)]
    durability: DurabilityArg,
    /// Payload per atomic batch, in MiB.
    #[arg(long, default_value_t = 16)]
    batch_mib: usize,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    json: bool,
}

/// Arguments of `quiver export`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// The store directory (read through a follower: no lock, no writes).
    dir: PathBuf,
    /// The file to write (it appears only once whole).
    file: PathBuf,
    /// The file's format, when its extension does not say.
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Write the ids (in order, a 1-D uint64 .npy) instead of the vectors.
    #[arg(long)]
    ids_only: bool,
    /// Only ids in this range: A..B, A..=B, A.. or ..B.
    #[arg(long = "where", value_name = "ID-RANGE")]
    range: Option<String>,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    json: bool,
}

fn bar(total: Option<u64>, what: &str) -> ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    let template = format!("  {what} {{bar:40}} {{human_pos}}/{{human_len}} vectors, {{per_sec}}, eta {{eta}}");
    bar.set_style(ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar
}

fn element_of(path: &Path, scalar: Scalar) -> Result<ElementType> {
    match scalar {
        Scalar::Element(e) => Ok(e),
        other => bail!("{} holds {} elements, which no store holds", path.display(), other.name()),
    }
}

/// Runs `quiver import`.
pub(crate) fn run_import(args: &ImportArgs) -> Result<Outcome> {
    let format = args.format.map(Format::from);
    let mut columns = ReaderOptions::default();
    if let Some(name) = &args.id_column {
        columns = columns.id_column(name);
    }
    if let Some(name) = &args.vector_column {
        columns = columns.vector_column(name);
    }
    let mut reader = quiver_formats::open_reader_with(&args.file, format, &columns).map_err(refused)?;
    if let Some(ids) = &args.ids {
        if reader.has_ids() {
            return Err(refused(anyhow!(
                "{} is a {} table, whose rows carry their own ids; --ids {} is for files without an id column (fvecs, bvecs, npy)",
                args.file.display(),
                reader.shape().format.name(),
                ids.display()
            )));
        }
        reader = Box::new(WithIds::from_file(reader, ids).map_err(refused)?);
    }
    let shape = reader.shape();
    let element = element_of(&args.file, shape.element)?;
    let options = ImportOptions::default()
        .first_id(args.first_id)
        .skip_rows(args.skip_rows)
        .batch_bytes(args.batch_mib.max(1) << 20);
    // What the file and the flags alone refuse is refused here, before the
    // open in `import` creates a store for a missing or empty directory.
    options.check_reader(&*reader, &args.file).map_err(refused)?;
    // An existing, non-empty directory must be a store of the file's shape;
    // a missing or empty one is created by the open below.
    let exists = args.dir.exists()
        && std::fs::read_dir(&args.dir).with_context(|| format!("listing {}", args.dir.display()))?.next().is_some();
    if exists {
        let info = quiver::inspect(&args.dir)?;
        if info.element != element || info.dimension as usize != shape.dim {
            bail!(
                "{} holds {} vectors of {} elements; the store at {} holds {} vectors of {} (nothing was written)",
                args.file.display(),
                element.name(),
                shape.dim,
                args.dir.display(),
                info.element.name(),
                info.dimension
            );
        }
    }
    match element {
        ElementType::F32 => import::<f32>(args, reader, options),
        ElementType::F64 => import::<f64>(args, reader, options),
        ElementType::U8 => import::<u8>(args, reader, options),
        ElementType::I8 => import::<i8>(args, reader, options),
        ElementType::F16 => import::<f16>(args, reader, options),
        ElementType::Bf16 => import::<bf16>(args, reader, options),
        other => bail!("this build of quiver cannot hold {} elements", other.name()),
    }
}

/// An import refused before it began: the message says so, and that the
/// store (or its directory) was left as it was.
fn refused(e: impl Into<anyhow::Error>) -> anyhow::Error {
    e.into().context("the import was refused before it began (nothing was written)")
}

/// Ctrl-C (SIGINT) and SIGTERM caught for the length of an import: the
/// first raises the import's cancel flag (it stops before its next batch);
/// a second, once the flag is up, ends the process at once by the signal's
/// default action, which keeps whole batches as `kill -9` does.
struct Interrupts {
    cancel: Arc<AtomicBool>,
    signal: Arc<AtomicUsize>,
    registered: Vec<SigId>,
}

impl Interrupts {
    fn catch() -> Result<Self> {
        let cancel = Arc::new(AtomicBool::new(false));
        let signal = Arc::new(AtomicUsize::new(0));
        let mut registered = Vec::new();
        for sig in [SIGINT, SIGTERM] {
            // Handlers run in registration order: the conditional default
            // sees the flag as the previous signal left it.
            registered.push(flag::register_conditional_default(sig, Arc::clone(&cancel)).context("catching signals")?);
            registered.push(flag::register_usize(sig, Arc::clone(&signal), sig as usize).context("catching signals")?);
            registered.push(flag::register(sig, Arc::clone(&cancel)).context("catching signals")?);
        }
        Ok(Self { cancel, signal, registered })
    }

    /// The signal that raised the flag, its name and the conventional exit
    /// code (128 + its number).
    fn caught(&self) -> (&'static str, u8) {
        match self.signal.load(Ordering::Relaxed) {
            n if n == SIGTERM as usize => ("SIGTERM", 128 + SIGTERM as u8),
            _ => ("SIGINT", 128 + SIGINT as u8),
        }
    }
}

impl Drop for Interrupts {
    fn drop(&mut self) {
        for id in self.registered.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// The flags that resume an import whose file rows before `next_row` are
/// stored: for files with their own ids the skip and the column names given
/// (without them the resume would read other columns, or none); for the
/// others the ids file or the first id that gave them theirs.
fn resume_flags(args: &ImportArgs, format: Format, next_row: u64) -> String {
    let mut flags = format!("--skip-rows {next_row}");
    if format.has_ids() {
        for (flag, name) in [("--id-column", &args.id_column), ("--vector-column", &args.vector_column)] {
            if let Some(name) = name {
                flags += &format!(" {flag} {}", shell_word(name));
            }
        }
    } else if let Some(ids) = &args.ids {
        flags += &format!(" --ids {}", shell_word(&ids.to_string_lossy()));
    } else {
        flags += &format!(" --first-id {}", args.first_id);
    }
    flags
}

/// `word` (a path or a column name) as one shell word, to paste into a
/// command line: as it is when it holds only characters no shell treats
/// specially, and single-quoted otherwise.
fn shell_word(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./+=:,@%".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

fn import<T: Element>(args: &ImportArgs, reader: Box<dyn ReadRows>, options: ImportOptions) -> Result<Outcome> {
    let FileShape { dim, format: file_format, .. } = reader.shape();
    let durability = match args.durability {
        DurabilityArg::Sync => Durability::Sync,
        DurabilityArg::Buffered => Durability::Buffered,
        DurabilityArg::Deferred => Durability::Deferred,
    };
    let interrupts = Interrupts::catch()?;
    let store = StoreOptions::new(dim).durability(durability).open::<T>(&args.dir)?;
    let options = options.cancel_flag(Arc::clone(&interrupts.cancel));
    let progress = bar(None, "importing");
    let mut stored = 0u64;
    let started = Instant::now();
    let result = quiver_formats::import_rows(&store, reader, &args.file, &options, &mut |p: Progress| {
        if let Some(total) = p.rows_total {
            progress.set_length(total);
        }
        progress.set_position(p.rows_done);
        stored = p.rows_done;
    });
    progress.finish_and_clear();
    let (summary, interrupted) = match result {
        Ok(summary) => (summary, false),
        Err(FormatError::Cancelled { stored, .. }) => (stored, true),
        Err(e) => {
            // Whole batches only: the rows reported stored are in the store.
            let resume = resume_flags(args, file_format, args.skip_rows + stored);
            let hint = format!("{} rows were stored in whole batches before this; resume with {resume}", count(stored));
            return Err(anyhow::Error::new(e).context(hint));
        }
    };
    store.close().context("closing the store after the import")?;
    let seconds = started.elapsed().as_secs_f64();
    let next_row = args.skip_rows + summary.rows;
    if args.json {
        print_json::<T>(args, &summary, dim, seconds, interrupted, next_row)?;
    }
    if interrupted {
        let (name, exit_code) = interrupts.caught();
        eprintln!(
            "interrupted by {name}: {} rows were stored in whole batches and are durable; resume with {} (and the same other arguments)",
            count(summary.rows),
            resume_flags(args, file_format, next_row)
        );
        return Ok(Outcome::Interrupted { exit_code });
    }
    if !args.json {
        let rate = summary.rows as f64 / seconds.max(1e-9);
        let ids = match &args.ids {
            _ if file_format.has_ids() => "the table's ids".to_string(),
            Some(ids) => format!("ids from {}", ids.display()),
            None => format!("ids {}..{}", args.first_id + args.skip_rows, summary.end_id),
        };
        println!(
            "imported {} vectors of {dim} {} ({ids}) into {} in {seconds:.2} s ({} vectors/s), durable",
            count(summary.rows),
            T::TYPE.name(),
            args.dir.display(),
            count(rate as u64)
        );
    }
    Ok(Outcome::Clean)
}

fn print_json<T: Element>(
    args: &ImportArgs,
    summary: &ImportSummary,
    dim: usize,
    seconds: f64,
    interrupted: bool,
    next_row: u64,
) -> Result<()> {
    crate::json::print(&ImportJson {
        rows: summary.rows,
        first_id: args.first_id + args.skip_rows,
        end_id: summary.end_id,
        dimension: dim,
        element: T::TYPE.name(),
        bytes_read: summary.bytes_read,
        seconds,
        vectors_per_second: crate::json::finite(summary.rows as f64 / seconds.max(1e-9)),
        interrupted,
        next_row,
    })
}

/// `quiver import --json` (docs/CLI.md, "import").
#[derive(serde::Serialize)]
struct ImportJson {
    rows: u64,
    first_id: u64,
    end_id: u64,
    dimension: usize,
    element: &'static str,
    bytes_read: u64,
    seconds: f64,
    vectors_per_second: Option<f64>,
    interrupted: bool,
    next_row: u64,
}

/// `quiver export --json` (docs/CLI.md, "export").
#[derive(serde::Serialize)]
struct ExportJson {
    rows: u64,
    bytes_written: u64,
    lsn: u64,
    seconds: f64,
}

/// `A..B`, `A..=B`, `A..`, `..B` or `..`.
fn parse_range(text: &str) -> Result<(Bound<u64>, Bound<u64>)> {
    let (start, end) = text.split_once("..").with_context(|| format!("{text:?} is not a range like 10..20"))?;
    let number = |s: &str| s.trim().parse::<u64>().with_context(|| format!("{s:?} in {text:?} is not an id"));
    let start = if start.trim().is_empty() { Bound::Unbounded } else { Bound::Included(number(start)?) };
    let end = match end.strip_prefix('=') {
        Some(e) => Bound::Included(number(e)?),
        None if end.trim().is_empty() => Bound::Unbounded,
        None => Bound::Excluded(number(end)?),
    };
    Ok((start, end))
}

/// Runs `quiver export`.
pub(crate) fn run_export(args: &ExportArgs) -> Result<Outcome> {
    let info = quiver::inspect(&args.dir)?;
    let dim = info.dimension as usize;
    match info.element {
        ElementType::F32 => export::<f32>(args, dim),
        ElementType::F64 => export::<f64>(args, dim),
        ElementType::U8 => export::<u8>(args, dim),
        ElementType::I8 => export::<i8>(args, dim),
        ElementType::F16 => export::<f16>(args, dim),
        ElementType::Bf16 => export::<bf16>(args, dim),
        other => bail!("this build of quiver cannot open stores of {} elements", other.name()),
    }
}

fn export<T: Element>(args: &ExportArgs, dim: usize) -> Result<Outcome> {
    let range = args.range.as_deref().map(parse_range).transpose()?.unwrap_or((Bound::Unbounded, Bound::Unbounded));
    let reader = StoreOptions::new(dim).open_reader::<T>(&args.dir)?;
    let snapshot = reader.snapshot();
    let started = Instant::now();
    let summary = if args.ids_only {
        quiver_formats::export_ids(&snapshot, &args.file, range)?
    } else {
        let format = match args.format.map(Format::from).or_else(|| Format::from_path(&args.file)) {
            Some(f) => f,
            None => {
                return Err(FormatError::Unsupported {
                    path: args.file.clone(),
                    reason: "the format is not known from the file name; give --format".into(),
                }
                .into());
            }
        };
        let progress = bar(None, "exporting");
        let summary = quiver_formats::export_snapshot(&snapshot, &args.file, format, range, &mut |p: Progress| {
            progress.set_length(p.rows_total.unwrap_or(0));
            progress.set_position(p.rows_done);
        });
        progress.finish_and_clear();
        summary?
    };
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        crate::json::print(&ExportJson {
            rows: summary.rows,
            bytes_written: summary.bytes_written,
            lsn: snapshot.lsn(),
            seconds,
        })?;
    } else {
        println!(
            "exported {} {} as of LSN {} to {} ({} bytes) in {seconds:.2} s",
            count(summary.rows),
            if args.ids_only { "ids" } else { "vectors" },
            snapshot.lsn(),
            args.file.display(),
            count(summary.bytes_written)
        );
    }
    Ok(Outcome::Clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves every range form parses to the bounds it names, and a
    // malformed one is an error that quotes it.
    #[test]
    fn id_ranges_parse() {
        assert_eq!(parse_range("3..7").expect("a..b"), (Bound::Included(3), Bound::Excluded(7)));
        assert_eq!(parse_range("3..=7").expect("a..=b"), (Bound::Included(3), Bound::Included(7)));
        assert_eq!(parse_range("..7").expect("..b"), (Bound::Unbounded, Bound::Excluded(7)));
        assert_eq!(parse_range("3..").expect("a.."), (Bound::Included(3), Bound::Unbounded));
        assert!(parse_range("3-7").expect_err("no dots").to_string().contains("3-7"));
        assert!(parse_range("x..7").is_err());
    }

    // Proves a resume hint's path or column name pastes back as the same
    // single word: a plain one as it is, one with spaces, `$` or quotes
    // single-quoted, with a quote inside closed, escaped and reopened.
    #[test]
    fn words_in_resume_hints_are_one_shell_word() {
        assert_eq!(shell_word("data/ids-1.npy"), "data/ids-1.npy");
        assert_eq!(shell_word("my ids.npy"), "'my ids.npy'");
        assert_eq!(shell_word("it's.npy"), r"'it'\''s.npy'");
        assert_eq!(shell_word("$HOME"), "'$HOME'");
        assert_eq!(shell_word(""), "''");
    }
}
