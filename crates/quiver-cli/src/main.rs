//! `quiver`: the command-line tool for Quiver stores.
//!
//! `quiver demo` builds a store of synthetic vectors and measures import,
//! reopen and zero-copy reads; `quiver info` shows what a store directory
//! holds without opening it; `quiver verify` checks every record and the
//! index; `quiver compact` reclaims the space of dead vectors; `quiver
//! search` finds the nearest vectors to a query, beside a running writer;
//! `quiver import` and `quiver export` move vectors in and out as fvecs,
//! bvecs, npy, Arrow or Parquet. This crate only parses arguments, calls the library and
//! prints: it never reads a store's files itself.
//!
//! Exit codes: 0 on success, 1 when `verify` finds problems (or the demo
//! reads back a wrong vector), 2 on any error, 130 / 143 when Ctrl-C /
//! SIGTERM stopped an import between batches.
#![forbid(unsafe_code)]

mod compact;
mod demo;
mod info;
mod json;
mod search;
mod transfer;
mod units;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The `quiver` command-line tool.
#[derive(Debug, Parser)]
#[command(name = "quiver", version, about = "Demo, inspect, verify, compact and search Quiver vector stores.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a store of synthetic vectors, reopen it, check every vector and
    /// time imports and zero-copy reads.
    Demo(demo::Args),
    /// Show what a store holds (format, shape, checkpoint, file sizes)
    /// without opening it; works while another process has it open.
    Info(info::Args),
    /// Open a store and check every record's checksum and the index. Exits 1
    /// if problems are found, 2 on errors.
    Verify(verify::Args),
    /// Rewrite the live vectors into a new generation and switch to it,
    /// reclaiming the space of overwritten and deleted vectors.
    Compact(compact::Args),
    /// Exact top-k search: the stored vectors nearest a query (from a file,
    /// or a stored id). Opens the store read-only; works while another
    /// process writes to it.
    Search(search::Args),
    /// Import an .fvecs, .bvecs, .npy, Arrow or Parquet file into a store
    /// (created if missing), in atomic batches, with progress; ends durable.
    Import(transfer::ImportArgs),
    /// Export a consistent snapshot of a store (or its ids) to .fvecs,
    /// .bvecs, .npy, Arrow or Parquet, beside a running writer.
    Export(transfer::ExportArgs),
}

/// What a command concluded, mapped to the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything checked out (exit 0).
    Clean,
    /// The command ran, and found problems (exit 1).
    Problems,
    /// A signal stopped the command cleanly, before it was done (exit
    /// `exit_code`, 128 + the signal's number).
    Interrupted {
        /// The process's exit code.
        exit_code: u8,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Info(args) => info::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Compact(args) => compact::run(&args),
        Command::Search(args) => search::run(&args),
        Command::Import(args) => transfer::run_import(&args),
        Command::Export(args) => transfer::run_export(&args),
    };
    match result {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Problems) => ExitCode::from(1),
        Ok(Outcome::Interrupted { exit_code }) => ExitCode::from(exit_code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
