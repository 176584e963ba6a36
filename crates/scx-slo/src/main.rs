// SPDX-License-Identifier: GPL-2.0-only
//! scx-slo: the operator's command line.
//!
//! Exit codes (scx_slo_api::exit::cli): 0 success (a valid config, a
//! healthy host, a call done); 1 the config is invalid, the host unhealthy,
//! or the daemon refused the call (the D-Bus error is printed); 2 the file
//! could not be read or the command line is wrong; 3 the daemon cannot be
//! reached.

/// `println!` for the CLI's output: a reader that went away (`scx-slo
/// status --json | head -1`) ends the program quietly instead of a panic
/// about a broken pipe; any other write error is reported (exit 2).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::print(&format!($($arg)*))
    };
}

mod archive;
mod audit;
mod backup;
mod check;
mod control;
mod health;
mod restore;
mod rollout;
mod tune;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use scx_slo_api::paths;

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
    /// Deploy gate: exit 0 when scx-slod runs, (in enforce mode) the
    /// kernel shows scx_slo attached and (with --expect-config) the daemon
    /// runs that file's config; 1 otherwise, with the reason.
    Health {
        /// Keep trying this long before giving up.
        #[arg(long, default_value = "0s")]
        wait: scx_slo_model::Duration,
        /// The daemon's status file.
        #[arg(long, default_value = paths::STATUS_FILE)]
        status_file: PathBuf,
        /// A status file older than this means the daemon is stuck.
        #[arg(long, default_value = "10s")]
        max_age: scx_slo_model::Duration,
        /// The config just deployed: healthy only once the daemon's running
        /// generation came from exactly this file's text (same SHA-256),
        /// so a reload the daemon refused fails the deploy.
        #[arg(long)]
        expect_config: Option<PathBuf>,
        /// Also require the config's A/B canary to have promoted it (with
        /// --wait, for as long as the canary takes): a rollout then gates
        /// on the SLI, not only on "running".
        #[arg(long)]
        canary: bool,
        /// When the deployed config enforces but the running kernel has no
        /// sched_ext and the deployed system boots another kernel (a first
        /// deploy: scx-slod is skipped until the reboot), `fail` the gate or
        /// `pass` it, saying so. Without --expect-config the config read is
        /// /etc/scx-slo/config.json.
        #[arg(long, value_enum, default_value = "fail")]
        pending_reboot: health::PendingReboot,
        /// The deployed system whose kernel a reboot would boot (deploy-rs:
        /// $PROFILE). Default: /run/current-system.
        #[arg(long)]
        system: Option<PathBuf>,
    },
    /// The daemon's state, mode, generation and per-target kernel counters.
    Status {
        /// Print the JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Targets, their budgets and cgroups.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Why a unit has its budget and priority now: config source, overrides,
    /// cgroup, recent misses.
    Explain {
        /// The target, e.g. api.service.
        unit: String,
    },
    /// Load the scheduler (also closes an open circuit breaker). Root or group scx-slo.
    Enable {
        /// enforce, advisory, observe, auto; by default the config's mode
        /// (re-enabling after an emergency disable never escalates an
        /// observe or advisory host to enforce by itself; it once defaulted to enforce).
        #[arg(long, default_value = "")]
        mode: String,
    },
    /// Emergency stop: the host is back on the default scheduler when this
    /// returns; stays off across restarts until `enable`. Root or group scx-slo.
    Disable {
        /// Why (kept in the state file and the journal).
        #[arg(long)]
        reason: String,
    },
    /// Re-read /etc/scx-slo/config.json; a bad file is refused and the running
    /// generation stays. Root or group scx-slo.
    Reload,
    /// Override a latency target's budget at runtime (admission-checked,
    /// persisted). Root or group scx-slo.
    SetBudget {
        /// The target, e.g. api.service.
        unit: String,
        /// Runtime per period, e.g. 2ms.
        #[arg(long)]
        runtime: scx_slo_model::Duration,
        /// Period, e.g. 10ms.
        #[arg(long)]
        period: scx_slo_model::Duration,
        /// Idempotency key: a retry with the same key returns the first result.
        #[arg(long, default_value = "")]
        key: String,
    },
    /// Remove a SetBudget override: the config file's budget applies again
    /// (a new generation; persisted). Root or group scx-slo.
    ClearBudget {
        /// The target, e.g. api.service.
        unit: String,
    },
    /// Close an open circuit breaker. Root or group scx-slo.
    ResetBreaker,
    /// The daemon's hash-chained audit trail: verify it, or show entries.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Profile a running unit and recommend its latency budget (runtime per
    /// period, deadline, priority) with the reasoning, as a NixOS snippet or
    /// JSON, admission-checked against the config. Changes nothing.
    Tune {
        /// The unit, e.g. api.service (a target of the config, or not yet).
        unit: String,
        /// How long to sample.
        #[arg(long, default_value = "10m")]
        duration: scx_slo_model::Duration,
        /// The budget period (and the sampling period).
        #[arg(long, default_value = "10ms")]
        period: scx_slo_model::Duration,
        /// Factor over the p99 CPU per period.
        #[arg(long, default_value_t = 1.3)]
        headroom: f64,
        /// The config to admit the recommendation against.
        #[arg(long, default_value = paths::CONFIG)]
        config: PathBuf,
        /// The unit's cgroup, relative to the cgroup2 root (default: the
        /// config's, else looked up by name).
        #[arg(long)]
        cgroup: Option<String>,
        /// The cgroup2 mount point.
        #[arg(long, default_value = "/sys/fs/cgroup")]
        cgroup_root: PathBuf,
        /// The service's Prometheus endpoint, http://host:port/path.
        #[arg(long, requires = "histogram")]
        scrape: Option<String>,
        /// The latency histogram to read there, e.g. http_request_duration_seconds.
        #[arg(long, requires = "scrape")]
        histogram: Option<String>,
        /// CPUs for admission when admission.cpu_capacity is auto (default: this host's).
        #[arg(long)]
        cpus: Option<u32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Prometheus recording rules and multi-window multi-burn-rate alerts
    /// from the targets' SLOs (YAML for `rule_files`; promtool checks it).
    Rules {
        /// The config.json to read.
        #[arg(long, default_value = paths::CONFIG)]
        config: PathBuf,
    },
    /// Roll a release out stage by stage with deploy-rs: deploy a stage's
    /// nodes, watch its gates in Prometheus for its soak time, then proceed
    /// or roll the stage back and stop, saying why. Every decision goes into
    /// the rollout log; re-running with the same log resumes after the last
    /// stage that proceeded. Exit 0 all stages proceeded, 1 stopped, 2 the
    /// plan or log is wrong.
    Rollout {
        /// The plan (JSON; docs/operations.md, "Upgrades and rollbacks with deploy-rs").
        plan: PathBuf,
        /// The rollout log (JSON lines). Default: PLAN.log.jsonl.
        #[arg(long)]
        log: Option<PathBuf>,
        /// Print the stages, the commands and the queries; run nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// A Grafana dashboard (JSON) for the latency targets: queue-latency
    /// heatmap, p99 vs objective, misses, budget use, error budget left.
    Dashboard {
        /// The config.json to read.
        #[arg(long, default_value = paths::CONFIG)]
        config: PathBuf,
    },
    /// Print this CLI's version; with --verbose also the running daemon's
    /// version, backend, kernel and the SHA-256 of each BPF object it
    /// verified before loading (over D-Bus; exit 3 when it cannot be reached).
    Version {
        /// Ask the daemon too.
        #[arg(long)]
        verbose: bool,
    },
    /// Back up what the daemon knows: state.json (learned budgets,
    /// overrides, the breaker) and the audit trail, with the config they
    /// belong to, as one checksummed archive (a tar). Runs while the daemon
    /// runs; reads files only.
    Backup {
        /// Write this file (never overwritten).
        #[arg(long, conflicts_with = "dir")]
        output: Option<PathBuf>,
        /// Write scx-slo-backup-<ms>.tar into this directory instead.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// With --dir: keep the newest this many archives there (1-1000).
        #[arg(long, default_value_t = 7)]
        retain: usize,
        #[command(flatten)]
        files: DaemonFiles,
    },
    /// Restore an archive of `backup`: refused while scx-slod runs, when the
    /// archive is invalid, or when its config is not the one in force
    /// (naming what differs). The restore is an audit entry. Root.
    Restore {
        /// The archive.
        archive: PathBuf,
        #[command(flatten)]
        files: DaemonFiles,
    },
    /// Print the config's JSON Schema, generated from the model's own
    /// constants (data/config.schema.json is this output; the NixOS module
    /// reads its enums, ranges and defaults).
    Schema,
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

/// The daemon's files, as its flags name them.
#[derive(clap::Args, Debug)]
struct DaemonFiles {
    /// The config in force.
    #[arg(long, default_value = paths::CONFIG)]
    config: PathBuf,
    /// The daemon's state file.
    #[arg(long, default_value = paths::STATE_FILE)]
    state_file: PathBuf,
    /// The audit trail's directory.
    #[arg(long, default_value = paths::AUDIT_DIR)]
    audit_dir: PathBuf,
    /// The daemon's status file (restore: the daemon must be stopped).
    #[arg(long, default_value = paths::STATUS_FILE)]
    status_file: PathBuf,
}

impl DaemonFiles {
    fn paths(self) -> backup::Paths {
        backup::Paths { config: self.config, state: self.state_file, audit: self.audit_dir, status: self.status_file }
    }
}

#[derive(Subcommand, Debug)]
enum AuditAction {
    /// Check every entry's hash and the chain; exit 1 naming the first
    /// edited, deleted, reordered or cut entry.
    Verify {
        /// The trail's directory.
        #[arg(long, default_value = paths::AUDIT_DIR)]
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print entries (each verified as it is read).
    Show {
        /// The trail's directory.
        #[arg(long, default_value = paths::AUDIT_DIR)]
        dir: PathBuf,
        /// Only entries newer than this, e.g. 1h.
        #[arg(long)]
        since: Option<scx_slo_model::Duration>,
        /// Only entries about this unit.
        #[arg(long)]
        unit: Option<String>,
        /// Only the entries of one D-Bus call or automatic action (its
        /// correlation id, as entries and the journal's
        /// SCX_SLO_CORRELATION_ID show it).
        #[arg(long, value_parser = correlation_id)]
        correlation: Option<String>,
        /// JSON lines.
        #[arg(long)]
        json: bool,
    },
}

/// A correlation id as the daemon makes them: at most 64 characters of
/// letters, digits and `-`.
fn correlation_id(text: &str) -> Result<String, String> {
    if text.is_empty() || text.len() > 64 || !text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err("a correlation id is 1 to 64 letters, digits and -, e.g. call-18c1f2a3b4c-7".into());
    }
    Ok(text.to_string())
}

/// Writes one line to stdout (see `outln!`).
fn print(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(i32::from(scx_slo_api::exit::cli::OK));
        }
        eprintln!("scx-slo: writing to stdout: {e}");
        std::process::exit(i32::from(scx_slo_api::exit::cli::USAGE));
    }
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
        Command::Health { wait, status_file, max_age, expect_config, canary, pending_reboot, system } => health::run_gate(
            &status_file,
            std_duration(wait),
            std_duration(max_age),
            expect_config.as_deref(),
            canary,
            &health::Host::real(system.as_deref()),
            pending_reboot,
        ),
        Command::Status { json } => control::run(control::Call::Status { json }),
        Command::List { json } => control::run(control::Call::List { json }),
        Command::Explain { unit } => control::run(control::Call::Explain { unit }),
        Command::Backup { output, dir, retain, files } => backup::backup_cmd(&files.paths(), output.as_deref(), dir.as_deref(), retain),
        Command::Restore { archive, files } => restore::restore_cmd(&files.paths(), &archive),
        Command::Enable { mode } => control::run(control::Call::Enable { mode }),
        Command::Disable { reason } => control::run(control::Call::Disable { reason }),
        Command::Reload => control::run(control::Call::Reload),
        Command::ClearBudget { unit } => control::run(control::Call::ClearBudget { unit }),
        Command::SetBudget { unit, runtime, period, key } => control::run(control::Call::SetBudget {
            unit,
            runtime_us: runtime.as_us(),
            period_us: period.as_us(),
            key,
        }),
        Command::ResetBreaker => control::run(control::Call::ResetBreaker),
        Command::Version { verbose: false } => {
            outln!("scx-slo {}", env!("CARGO_PKG_VERSION"));
            scx_slo_api::exit::cli::OK
        }
        Command::Version { verbose: true } => control::run(control::Call::Version),
        Command::Audit { action: AuditAction::Verify { dir, json } } => audit::verify_cmd(&dir, json),
        Command::Audit { action: AuditAction::Show { dir, since, unit, correlation, json } } => {
            audit::show_cmd(&dir, &audit::Filter { since, unit: unit.as_deref(), correlation: correlation.as_deref() }, json)
        }
        Command::Tune { unit, duration, period, headroom, config, cgroup, cgroup_root, scrape, histogram, cpus, json } => {
            tune::run(&tune::Args { unit, duration, period, headroom, config, cgroup, cgroup_root, scrape, histogram, cpus, json })
        }
        Command::Rules { config } => check::with_config(&config, |c| outln!("{}", scx_slo_model::rules::prometheus_rules(c))),
        Command::Rollout { plan, log, dry_run } => rollout::run(&plan, log.as_deref(), dry_run),
        Command::Dashboard { config } => check::with_config(&config, |c| {
            outln!("{:#}", scx_slo_model::dashboard::grafana_dashboard(c));
        }),
        Command::Schema => {
            outln!("{}", scx_slo_model::schema::config_schema_text().trim_end());
            scx_slo_api::exit::cli::OK
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "scx-slo", &mut script);
            outln!("{}", String::from_utf8_lossy(&script).trim_end());
            scx_slo_api::exit::cli::OK
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `enable` after an emergency disable must not load the scheduler on a
    /// host configured for observe or advisory (it defaulted to enforce).
    #[test]
    fn enable_defaults_to_the_configs_mode() {
        let cli = Cli::try_parse_from(["scx-slo", "enable"]).expect("parses");
        assert!(matches!(cli.command, Command::Enable { ref mode } if mode.is_empty()), "{cli:?}");
        let cli = Cli::try_parse_from(["scx-slo", "enable", "--mode", "enforce"]).expect("parses");
        assert!(matches!(cli.command, Command::Enable { ref mode } if mode == "enforce"), "{cli:?}");
    }

    /// A command line as a shell splits it: words, and double-quoted
    /// strings as one word (all docs/troubleshooting.md uses).
    fn words(line: &str) -> Vec<String> {
        let mut out = vec![String::new()];
        let mut quoted = false;
        for c in line.chars() {
            match c {
                '"' => quoted = !quoted,
                ' ' if !quoted => out.push(String::new()),
                c => out.last_mut().unwrap().push(c),
            }
        }
        out.into_iter().filter(|w| !w.is_empty()).collect()
    }

    /// Every `scx-slo` command in docs/troubleshooting.md's `sh` blocks is
    /// one this CLI accepts (the VM control scenario runs the read-only ones).
    #[test]
    fn troubleshooting_commands_parse() {
        let doc = include_str!("../../../docs/troubleshooting.md");
        let mut in_sh = false;
        let mut seen = 0;
        for line in doc.lines().map(str::trim) {
            if line.starts_with("```") {
                in_sh = line == "```sh";
                continue;
            }
            if in_sh && line.starts_with("scx-slo ") {
                Cli::try_parse_from(words(line)).unwrap_or_else(|e| panic!("docs/troubleshooting.md: `{line}`: {e}"));
                seen += 1;
            }
        }
        assert!(seen >= 15, "only {seen} commands found");
        assert!(Cli::try_parse_from(words("scx-slo set-budget api.service --runtime 3ms")).is_err(), "the check can fail");
    }
}
