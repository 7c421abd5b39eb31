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
        println!("{}", to_json(&info));
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

/// One JSON object, written by hand (every value is a number, a boolean,
/// null or an escaped string).
fn to_json(info: &StoreInfo) -> String {
    let opt = |v: Option<u64>| v.map_or_else(|| "null".to_string(), |v| v.to_string());
    let fields: [(&str, String); 19] = [
        ("path", json_string(&info.path.to_string_lossy())),
        ("format_version", info.format_version.to_string()),
        ("dimension", info.dimension.to_string()),
        ("element", json_string(info.element.name())),
        ("record_size_bytes", info.record_size_bytes.to_string()),
        ("generation", info.generation.to_string()),
        ("checkpoint_lsn", info.checkpoint_lsn.to_string()),
        ("checkpoint_end_slot", info.checkpoint_end_slot.to_string()),
        ("wal_first_segment", info.wal_first_segment.to_string()),
        ("snapshot_exists", info.snapshot_exists.to_string()),
        ("snapshot_entries", opt(info.snapshot_entries)),
        ("snapshot_problem", info.snapshot_problem.as_deref().map_or_else(|| "null".to_string(), json_string)),
        ("snapshot_bytes", info.snapshot_bytes.to_string()),
        ("data_file", json_string(&info.data_file.to_string_lossy())),
        ("data_file_bytes", info.data_file_bytes.to_string()),
        ("data_file_allocated_bytes", info.data_file_allocated_bytes.to_string()),
        ("data_file_resident_bytes", opt(info.data_file_resident_bytes)),
        ("wal_segments", info.wal_segments.to_string()),
        ("wal_bytes", info.wal_bytes.to_string()),
    ];
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("  {}: {v}", json_string(k))).collect();
    format!("{{\n{}\n}}", body.join(",\n"))
}

/// `s` as a JSON string literal (RFC 8259 escaping).
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves quotes, backslashes and control characters are escaped.
    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\nd\u{1}é"), "\"a\\\"b\\\\c\\nd\\u0001é\"");
    }
}
