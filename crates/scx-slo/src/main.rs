// SPDX-License-Identifier: GPL-2.0-only
//! scx-slo: the operator's command line.
//!
//! Exit codes: 0 success (a valid config, a healthy host); 1 the config is
//! invalid or the host unhealthy; 2 the file could not be read or the command
//! line is wrong.

mod check;
mod health;

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
    /// Deploy gate: exit 0 when scx-slod runs and (in enforce mode) the
    /// kernel shows scx_slo attached; 1 otherwise, with the reason.
    Health {
        /// Keep trying this long before giving up.
        #[arg(long, default_value = "0s")]
        wait: scx_slo_model::Duration,
        /// The daemon's status file.
        #[arg(long, default_value = "/run/scx-slo/status.json")]
        status_file: PathBuf,
        /// A status file older than this means the daemon is stuck.
        #[arg(long, default_value = "10s")]
        max_age: scx_slo_model::Duration,
    },
    /// Print a shell completion script.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write man pages (scx-slo.1 and one per subcommand) into a directory.
    Man {
        /// Output directory.
        dir: PathBuf,
    },
}

fn std_duration(d: scx_slo_model::Duration) -> std::time::Duration {
    std::time::Duration::from_nanos(d.as_ns())
}

fn write_man(dir: &std::path::Path) -> std::io::Result<()> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir)?;
    let cmd = Cli::command();
    clap_mangen::generate_to(cmd, dir)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::CheckConfig { file, json, cpus } => check::run(&file, json, cpus),
        Command::Health { wait, status_file, max_age } => {
            health::run(&status_file, std_duration(wait), std_duration(max_age))
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "scx-slo", &mut std::io::stdout());
            0
        }
        Command::Man { dir } => match write_man(&dir) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("writing man pages to {}: {e}", dir.display());
                2
            }
        },
    };
    ExitCode::from(code)
}
