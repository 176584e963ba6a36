// SPDX-License-Identifier: GPL-2.0-only
//! scx-slod: applies an scx-slo config to the kernel.
//!
//! Exit codes: 0 clean stop; 1 invalid config; 2 unreadable config;
//! 3 the requested mode is not available on this kernel; 4 the scheduler
//! failed to load or attach; 5 the kernel ejected the scheduler.

mod daemon;
mod resolver;
mod status;
mod switcher;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use scx_slo_model::Duration;

/// Command-line arguments.
#[derive(Parser, Debug)]
#[command(name = "scx-slod", version, about = "scx-slo daemon: keeps latency SLOs with a sched_ext scheduler")]
pub struct Args {
    /// The config to apply.
    #[arg(long, default_value = "/etc/scx-slo/config.json")]
    pub config: PathBuf,
    /// Where the daemon writes its status (JSON, replaced atomically).
    #[arg(long, default_value = "/run/scx-slo/status.json")]
    pub status_file: PathBuf,
    /// How often targets are re-resolved and partial-mode threads switched.
    #[arg(long, default_value = "100ms")]
    pub scan_interval: Duration,
    /// How often the status file is rewritten.
    #[arg(long, default_value = "1s")]
    pub status_interval: Duration,
    /// Enable bpf_printk tracing in the scheduler (trace_pipe).
    #[arg(long)]
    pub debug_bpf: bool,
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("SCX_SLO_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let under_systemd = std::env::var_os("JOURNAL_STREAM").is_some();
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if under_systemd {
        // journald adds timestamps of its own.
        builder.without_time().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    init_logging();
    let args = Args::parse();
    ExitCode::from(daemon::run(&args) as u8)
}
