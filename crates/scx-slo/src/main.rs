// SPDX-License-Identifier: GPL-2.0-only
//! scx-slo: the operator's command line.
//!
//! Exit codes: 0 success (a valid config); 1 the config is invalid;
//! 2 the file could not be read or the command line is wrong.

mod check;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Command-line arguments.
#[derive(Parser, Debug)]
#[command(name = "scx-slo", version, about = "Latency SLOs kept by a sched_ext scheduler")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate a config offline (no kernel, root or daemon): schema, values,
    /// relations between fields and admission control. Every problem is
    /// printed with its JSON path.
    CheckConfig {
        /// The config.json to check.
        file: PathBuf,
        /// Print a JSON report instead of text.
        #[arg(long)]
        json: bool,
        /// Admit against this many CPUs when admission.cpu_capacity is "auto"
        /// (otherwise the sum is left to the daemon, which knows the host).
        #[arg(long)]
        cpus: Option<u32>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::CheckConfig { file, json, cpus } => check::run(&file, json, cpus),
    };
    ExitCode::from(code)
}
