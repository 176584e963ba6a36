// SPDX-License-Identifier: GPL-2.0-only
//! scx-slod: applies an scx-slo config to the kernel and serves
//! `org.scxslo1.Manager`.
//!
//! Exit codes: 0 clean stop; 1 invalid config; 2 unreadable config; 3 the
//! requested mode is not available on this kernel; 4 could not start.
//! Scheduler load failures and ejections do not end the daemon: it backs off,
//! retries, and opens its circuit breaker after repeated failures.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use scx_slo_api::paths;
use scx_slo_model::Duration as SloDuration;
use scx_slod::breaker::BreakerConfig;
use scx_slod::control::Request;
use scx_slod::engine::{BackendKind, Engine, EngineOptions};
use tracing::{error, info, warn};

/// Whether the D-Bus service must come up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum DbusMode {
    /// Serve when a system bus is there; run without it otherwise.
    Auto,
    /// Fail to start without the bus (the systemd unit).
    Required,
    /// Do not connect.
    Off,
}

/// Command-line arguments.
#[derive(Parser, Debug)]
#[command(name = "scx-slod", version, about = "scx-slo daemon: keeps latency SLOs with a sched_ext scheduler")]
struct Args {
    /// The config to apply.
    #[arg(long, default_value = paths::CONFIG)]
    config: PathBuf,
    /// Where the daemon writes its status (JSON, replaced atomically).
    #[arg(long, default_value = paths::STATUS_FILE)]
    status_file: PathBuf,
    /// Persistent state (operator disable, breaker, budget overrides).
    #[arg(long, default_value = paths::STATE_FILE)]
    state_file: PathBuf,
    /// The audit trail (hash-chained JSON lines; `scx-slo audit verify`).
    #[arg(long, default_value = paths::AUDIT_DIR)]
    audit_dir: PathBuf,
    /// The audit trail's size cap, MiB: past it the oldest 8 MiB files are
    /// removed after a rotation, and the removal recorded (at least 16: the
    /// file being written and the one before it).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(16..=1_048_576))]
    audit_retain_mib: u64,
    /// How often targets are re-resolved, partial-mode threads switched and
    /// the scheduler's exit checked.
    #[arg(long, default_value = "100ms")]
    scan_interval: SloDuration,
    /// How often targets are re-resolved and metrics, the probes' overhead
    /// guard and advisory are updated.
    #[arg(long, default_value = "1s")]
    telemetry_interval: SloDuration,
    /// How often the status file is rewritten.
    #[arg(long, default_value = "1s")]
    status_interval: SloDuration,
    /// D-Bus service: auto, required or off.
    #[arg(long, value_enum, default_value_t = DbusMode::Auto)]
    dbus: DbusMode,
    /// Failures within --breaker-window that open the circuit breaker.
    #[arg(long, default_value_t = 3)]
    breaker_failures: usize,
    /// The breaker's window.
    #[arg(long, default_value = "10m")]
    breaker_window: SloDuration,
    /// How long an open breaker (opened by failures) waits before it tries
    /// once again (half-open); a failure of that try opens it again. `off`:
    /// it stays open until ResetBreaker or Enable.
    #[arg(long, default_value = "off")]
    breaker_reset_timeout: String,
    /// Host-wide limit on automatic changes (adaptive budget steps and
    /// advisory CPUWeight changes together) in any --auto-change-window.
    #[arg(long, default_value_t = scx_slod::change_limit::DEFAULT_MAX_CHANGES)]
    auto_change_limit: usize,
    /// The window of --auto-change-limit.
    #[arg(long, default_value = "1m")]
    auto_change_window: SloDuration,
    /// First retry delay after a failure (doubles, capped at 1 min).
    #[arg(long, default_value = "1s")]
    retry_backoff: SloDuration,
    /// Scheduler backend; `simulated` keeps maps in memory (control-plane tests).
    #[arg(long, value_enum, default_value_t = BackendKind::Bpf, hide = true)]
    backend: BackendKind,
    /// Where the Prometheus endpoint listens (`/metrics`), or `off`. Only
    /// loopback unless an operator sets another address.
    #[arg(long, default_value = paths::METRICS_LISTEN)]
    metrics_listen: String,
    /// The operator socket (the control interface peer to peer, for root
    /// and group scx-slo, apart from the system bus), or `off`.
    #[arg(long, default_value = paths::CONTROL_SOCKET)]
    control_socket: String,
    /// systemd's bus for advisory mode (tests: a private bus playing systemd).
    #[arg(long, hide = true)]
    systemd_bus: Option<String>,
    /// Print the SHA-256 of each embedded BPF object as the build recorded
    /// it (JSON) and exit: 0 when the embedded bytes still match, 4 when not.
    /// The Nix package installs this as share/scx-slo/bpf-objects.json.
    #[arg(long)]
    bpf_digests: bool,
}

fn init_logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{fmt, EnvFilter, Layer};
    let filter = EnvFilter::try_from_env("SCX_SLO_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Under systemd: structured journald fields (SCX_SLO_UNIT, ...).
    let journald = std::env::var_os("JOURNAL_STREAM")
        .and_then(|_| tracing_journald::layer().ok())
        .map(|l| l.with_field_prefix(Some("SCX_SLO".into())));
    let stderr = (journald.is_none()).then(|| {
        fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .boxed()
    });
    tracing_subscriber::registry().with(filter).with(journald).with(stderr).init();
}

fn std_dur(d: SloDuration) -> Duration {
    Duration::from_nanos(d.as_ns())
}

fn main() -> ExitCode {
    init_logging();
    let args = Args::parse();
    ExitCode::from(run(args) as u8)
}

fn run(args: Args) -> i32 {
    if args.bpf_digests {
        let objects = scx_slo_bpf::integrity::objects();
        let recorded: std::collections::BTreeMap<&str, &str> = objects.iter().map(|d| (d.object, d.recorded)).collect();
        println!("{}", serde_json::json!(recorded));
        return match scx_slo_bpf::integrity::verify_all() {
            Ok(_) => scx_slod::exit::OK,
            Err(e) => {
                eprintln!("scx-slod: {e}");
                scx_slod::exit::LOAD_FAILED
            }
        };
    }
    let reset_timeout = match args.breaker_reset_timeout.as_str() {
        "off" => None,
        text => match text.parse::<SloDuration>() {
            Ok(d) if d.as_ns() >= 1_000_000_000 => Some(std_dur(d)),
            Ok(_) => {
                error!("--breaker-reset-timeout {text:?}: at least 1s, or off");
                return scx_slod::exit::UNREADABLE_CONFIG;
            }
            Err(e) => {
                error!("--breaker-reset-timeout {:?}: {e} (a duration such as 5m, or off)", text.chars().take(32).collect::<String>());
                return scx_slod::exit::UNREADABLE_CONFIG;
            }
        },
    };
    let limit_max = scx_slod::change_limit::MAX_CHANGES_LIMIT;
    if !(1..=limit_max).contains(&args.auto_change_limit) || std_dur(args.auto_change_window) < Duration::from_secs(1) {
        error!("--auto-change-limit {} per --auto-change-window {}: the limit is 1 to {limit_max}, the window at least 1s", args.auto_change_limit, args.auto_change_window);
        return scx_slod::exit::UNREADABLE_CONFIG;
    }
    let opts = EngineOptions {
        config_path: args.config.clone(),
        status_path: args.status_file.clone(),
        state_path: args.state_file.clone(),
        audit_dir: args.audit_dir.clone(),
        audit_retain_bytes: args.audit_retain_mib << 20,
        tick: std_dur(args.scan_interval).max(Duration::from_millis(10)),
        telemetry_every: std_dur(args.telemetry_interval).max(Duration::from_millis(100)),
        status_every: std_dur(args.status_interval).max(Duration::from_millis(100)),
        backend: args.backend,
        breaker: BreakerConfig {
            max_failures: args.breaker_failures.max(1),
            window: std_dur(args.breaker_window),
            base_backoff: std_dur(args.retry_backoff),
            max_backoff: Duration::from_secs(60),
            reset_timeout,
        },
        auto_change_limit: (args.auto_change_limit, std_dur(args.auto_change_window)),
        systemd_bus: args.systemd_bus.clone(),
    };
    let metrics_addr = match args.metrics_listen.as_str() {
        "off" | "" => None,
        a => match a.parse::<std::net::SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(e) => {
                error!("--metrics-listen {a:?}: {e} (write HOST:PORT such as {}, or off)", paths::METRICS_LISTEN);
                return scx_slod::exit::UNREADABLE_CONFIG;
            }
        },
    };
    let started = match Engine::start(opts) {
        Ok(s) => s,
        Err((code, msg)) => {
            error!("{msg}");
            return code;
        }
    };
    let _metrics_thread = match metrics_addr.map(|addr| scx_slod::http::serve(addr, started.metrics.clone())) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            error!("{e:#}");
            return scx_slod::exit::LOAD_FAILED;
        }
    };
    let handle = started.handle.clone();
    let events = started.events;
    let engine = started.engine;
    let engine_thread = match std::thread::Builder::new().name("scx-slo-engine".into()).spawn(move || engine.run()) {
        Ok(t) => t,
        Err(e) => {
            error!(error = %e, "starting the engine thread");
            return scx_slod::exit::LOAD_FAILED;
        }
    };

    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).max_blocking_threads(4).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            error!(error = %e, "starting the async runtime");
            handle.post(Request::Shutdown);
            return engine_thread.join().unwrap_or(scx_slod::exit::LOAD_FAILED);
        }
    };
    let dbus_mode = args.dbus;
    let operator_listener = match args.control_socket.as_str() {
        "off" | "" => None,
        path => match scx_slod::operator_socket::bind(std::path::Path::new(path)) {
            Ok(l) => Some(l),
            // Not fatal: the bus still serves everyone; the operators lose
            // only their own lane, and the log says why.
            Err(e) => {
                warn!("operator socket: {e}; operators reach the daemon over the system bus only");
                None
            }
        },
    };
    let code = runtime.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut hup), Ok(mut term), Ok(mut int)) =
            (signal(SignalKind::hangup()), signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
        else {
            error!("installing signal handlers failed");
            handle.post(Request::Shutdown);
            return None;
        };
        let signals = handle.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = hup.recv() => {
                        info!("SIGHUP: reload");
                        let h = signals.clone();
                        tokio::spawn(async move {
                            let text = h.read_config().await;
                            h.post(Request::Reload { text });
                        });
                    }
                    _ = term.recv() => { signals.post(Request::Shutdown); }
                    _ = int.recv() => { signals.post(Request::Shutdown); }
                }
            }
        });
        if let Some(listener) = operator_listener {
            if let Err(e) = scx_slod::operator_socket::spawn(listener, handle.clone()) {
                warn!("operator socket: {e}; operators reach the daemon over the system bus only");
            }
        }
        let bus_lost = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let _conn = match dbus_mode {
            DbusMode::Off => None,
            mode => match scx_slod::dbus::serve(handle.clone(), events).await {
                Ok(conn) => {
                    info!(name = scx_slod::dbus::BUS_NAME, "serving on the system bus");
                    let (watched, lost, stop) = (conn.clone(), bus_lost.clone(), handle.clone());
                    tokio::spawn(async move {
                        let why = scx_slod::dbus::watch_bus(watched).await;
                        error!(event = "bus_lost", reason = %why, "lost the system bus: stopping so that systemd restarts scx-slod onto it");
                        lost.store(true, std::sync::atomic::Ordering::SeqCst);
                        stop.post(Request::Shutdown);
                    });
                    Some(conn)
                }
                Err(e) if mode == DbusMode::Required => {
                    error!(error = %e, "the system bus is required (--dbus required) but unavailable");
                    handle.post(Request::Shutdown);
                    let _ = tokio::task::spawn_blocking(move || engine_thread.join()).await;
                    return Some(scx_slod::exit::LOAD_FAILED);
                }
                Err(e) => {
                    warn!(error = %e, "no system bus: running without the D-Bus control plane");
                    None
                }
            },
        };
        let code = tokio::task::spawn_blocking(move || engine_thread.join().ok()).await.ok().flatten();
        if bus_lost.load(std::sync::atomic::Ordering::SeqCst) {
            return Some(scx_slod::exit::BUS_LOST);
        }
        code
    });
    code.unwrap_or(scx_slod::exit::LOAD_FAILED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audit_cap_is_bounded_and_named_when_refused() {
        let args = Args::try_parse_from(["scx-slod"]).expect("defaults");
        assert_eq!(args.audit_retain_mib, 256);
        let e = Args::try_parse_from(["scx-slod", "--audit-retain-mib", "8"]).expect_err("under two files");
        let text = e.to_string();
        assert!(text.contains("--audit-retain-mib") && text.contains("16"), "{text}");
    }
}
