// SPDX-License-Identifier: GPL-2.0-only
//! The foreground lifecycle: validate, probe, load, apply, attach, then keep
//! targets resolved and threads switched until a signal or an ejection.
//!
//! Safety rules: nothing touches the kernel until the config is valid; maps
//! are filled before attach; a rejected reload leaves the running config in
//! place; any exit path detaches, so the host is back on its default
//! scheduler (and kill -9 is handled by the kernel dropping the struct_ops).

use std::collections::BTreeMap;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use scx_slo_bpf::{KernelFeatures, LoadParams, MapTarget, Scheduler, Topology};
use scx_slo_model::{Config, Mode, SwitchMode};
use tracing::{debug, error, info, warn};

use crate::resolver::{self, Resolved};
use crate::status::{self, Status, TargetStatus};
use crate::switcher::Switcher;
use crate::Args;

/// Exit codes (documented in main.rs and docs/operations.md).
pub mod exit {
    /// Clean stop.
    pub const OK: i32 = 0;
    /// Invalid config.
    pub const INVALID_CONFIG: i32 = 1;
    /// Unreadable config.
    pub const UNREADABLE_CONFIG: i32 = 2;
    /// Mode unavailable here.
    pub const MODE_UNAVAILABLE: i32 = 3;
    /// Load or attach failed.
    pub const LOAD_FAILED: i32 = 4;
    /// The kernel ejected the scheduler.
    pub const EJECTED: i32 = 5;
}

fn online_cpus() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// Reads and validates a config file; `Err` carries the exit code.
fn read_config(args: &Args) -> Result<Config, (i32, String)> {
    let text = std::fs::read_to_string(&args.config)
        .map_err(|e| (exit::UNREADABLE_CONFIG, format!("reading {}: {e}", args.config.display())))?;
    scx_slo_model::load_str(&text, Some(online_cpus())).map_err(|errors| {
        (
            exit::INVALID_CONFIG,
            format!("{} is invalid:\n{errors}", args.config.display()),
        )
    })
}

/// Index assignment: a target's position in the (sorted) config.
fn map_targets(config: &Config, resolved: &BTreeMap<String, Resolved>) -> Vec<MapTarget> {
    config
        .targets
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            resolved.get(&t.key).map(|r| MapTarget {
                index: i as u32,
                cgroup_id: r.cgroup_id,
                cfg: scx_slo_bpf::maps::target_cfg(t),
            })
        })
        .collect()
}

/// Load-time settings that a reload cannot change without reloading BPF.
fn load_time_change(old: &Config, new: &Config) -> Option<&'static str> {
    if old.switch != new.switch {
        Some("switch")
    } else if old.scheduler != new.scheduler {
        Some("scheduler")
    } else if old.numa != new.numa {
        Some("numa")
    } else if old.early_warning != new.early_warning {
        Some("early_warning")
    } else if old.mode != new.mode {
        Some("mode")
    } else {
        None
    }
}

struct Signals {
    stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
}

fn install_signals() -> std::io::Result<Signals> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(SIGINT, Arc::clone(&stop))?;
    signal_hook::flag::register(SIGTERM, Arc::clone(&stop))?;
    signal_hook::flag::register(SIGHUP, Arc::clone(&reload))?;
    Ok(Signals { stop, reload })
}

/// Reads the ring buffer on its own thread until `stop`; counts events.
fn spawn_event_reader(
    map: scx_slo_bpf::events::EventsMap,
    names: Vec<String>,
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let result = scx_slo_bpf::events::read_events(map, stop, move |ev| {
            received.fetch_add(1, Ordering::Relaxed);
            let unit = names.get(ev.target as usize).map_or("?", String::as_str);
            debug!(unit, pid = ev.pid, kind = ev.kind, slack_ns = ev.slack_ns, "slo event");
        });
        if let Err(e) = result {
            warn!("early-warning events unavailable: {e:#}");
        }
    })
}

/// Tells systemd about the lifecycle; a no-op outside systemd.
fn notify(states: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        debug!(error = %e, "sd_notify");
    }
}

/// Runs the daemon; returns the process exit code.
pub fn run(args: &Args) -> i32 {
    let mut config = match read_config(args) {
        Ok(c) => c,
        Err((code, msg)) => {
            error!("{msg}");
            return code;
        }
    };
    let features = KernelFeatures::probe();
    match config.mode {
        Mode::Auto | Mode::Enforce => {}
        Mode::Observe | Mode::Advisory => {
            error!(mode = ?config.mode, "this build runs enforce mode only; observe and advisory modes are tracked in issue 6");
            return exit::MODE_UNAVAILABLE;
        }
    }
    if let Some(why) = features.enforce_unavailable() {
        error!("{why}");
        return exit::MODE_UNAVAILABLE;
    }
    let Some(cgroup_root) = resolver::cgroup2_root() else {
        error!("no cgroup2 hierarchy is mounted; scx-slo targets cgroups by their v2 id");
        return exit::MODE_UNAVAILABLE;
    };
    let signals = match install_signals() {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "installing signal handlers");
            return exit::LOAD_FAILED;
        }
    };
    let topology = match Topology::from_sysfs() {
        Ok(t) => t,
        Err(e) => {
            error!("reading the CPU topology: {e:#}");
            return exit::LOAD_FAILED;
        }
    };

    let mut open_object = MaybeUninit::uninit();
    let started = Instant::now();
    let params = LoadParams { config: config.clone(), topology, debug: args.debug_bpf };
    let mut sched = match Scheduler::load(&mut open_object, &params) {
        Ok(s) => s,
        Err(e) => {
            error!("{e:#}");
            return exit::LOAD_FAILED;
        }
    };
    let load_ms = started.elapsed().as_secs_f64() * 1e3;

    let mut resolved = resolver::resolve_all(&cgroup_root, &config);
    let apply_started = Instant::now();
    if let Err(e) = sched.apply(&map_targets(&config, &resolved)) {
        error!("filling the scheduler's maps: {e:#}");
        return exit::LOAD_FAILED;
    }
    let mut last_apply_us = apply_started.elapsed().as_secs_f64() * 1e6;

    let attach_started = Instant::now();
    if let Err(e) = sched.attach() {
        error!("{e:#}");
        return exit::LOAD_FAILED;
    }
    let attach_ms = attach_started.elapsed().as_secs_f64() * 1e3;
    info!(
        switch = ?config.switch,
        targets = config.targets.len(),
        resolved = resolved.len(),
        load_ms = format!("{load_ms:.1}"),
        attach_ms = format!("{attach_ms:.1}"),
        "scx_slo attached"
    );
    // systemd (Type=notify): ready only once the config is applied and attached.
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&format!("enforcing generation 1: {} of {} targets resolved", resolved.len(), config.targets.len())),
    ]);
    for t in config.targets.iter().filter(|t| !resolved.contains_key(&t.key)) {
        warn!(unit = %t.key, "target has no cgroup yet; retrying every scan");
    }

    let events_received = Arc::new(AtomicU64::new(0));
    let reader_stop = Arc::new(AtomicBool::new(false));
    let reader = sched.events_map().ok().map(|map| {
        let names = config.targets.iter().map(|t| t.key.clone()).collect();
        spawn_event_reader(map, names, Arc::clone(&reader_stop), Arc::clone(&events_received))
    });

    let mut switcher = Switcher::default();
    let mut generation = 1u64;
    let mut last_reload_error: Option<String> = None;
    let scan_every = Duration::from_nanos(args.scan_interval.as_ns().max(10_000_000));
    let status_every = Duration::from_nanos(args.status_interval.as_ns().max(100_000_000));
    let mut last_status = Instant::now() - status_every;
    let mut code = exit::OK;

    loop {
        // Pets the watchdog (WatchdogSec); a wedged loop gets restarted.
        notify(&[sd_notify::NotifyState::Watchdog]);
        if signals.stop.load(Ordering::Relaxed) {
            info!("stop requested");
            break;
        }
        if let Some(exit_info) = sched.exit_info() {
            error!(
                kind = exit_info.kind_name,
                reason = %exit_info.reason,
                msg = %exit_info.msg,
                "the kernel ejected scx_slo; the host is back on its default scheduler"
            );
            code = exit::EJECTED;
            break;
        }
        if signals.reload.swap(false, Ordering::Relaxed) {
            match read_config(args) {
                Err((_, msg)) => {
                    error!("reload rejected, generation {generation} stays: {msg}");
                    last_reload_error = Some(msg);
                }
                Ok(new) => match load_time_change(&config, &new) {
                    Some(field) => {
                        let msg = format!(
                            "reload rejected, generation {generation} stays: `{field}` is fixed when the scheduler loads; restart scx-slod to change it"
                        );
                        error!("{msg}");
                        last_reload_error = Some(msg);
                    }
                    None => {
                        let new_resolved = resolver::resolve_all(&cgroup_root, &new);
                        let t = Instant::now();
                        match sched.apply(&map_targets(&new, &new_resolved)) {
                            Ok(()) => {
                                last_apply_us = t.elapsed().as_secs_f64() * 1e6;
                                generation += 1;
                                config = new;
                                resolved = new_resolved;
                                last_reload_error = None;
                                info!(generation, targets = config.targets.len(), apply_us = format!("{last_apply_us:.0}"), "config reloaded");
                                notify(&[sd_notify::NotifyState::Status(&format!("enforcing generation {generation}"))]);
                            }
                            Err(e) => {
                                let msg = format!("reload failed while writing maps: {e:#}");
                                error!("{msg}");
                                last_reload_error = Some(msg);
                            }
                        }
                    }
                },
            }
        }

        // Pick up units that started (or restarted with a new cgroup id).
        let now_resolved = resolver::resolve_all(&cgroup_root, &config);
        if now_resolved != resolved {
            let t = Instant::now();
            match sched.apply(&map_targets(&config, &now_resolved)) {
                Ok(()) => {
                    last_apply_us = t.elapsed().as_secs_f64() * 1e6;
                    info!(resolved = now_resolved.len(), "target cgroups changed; maps updated");
                    resolved = now_resolved;
                }
                Err(e) => warn!("updating maps for changed cgroups: {e:#}"),
            }
        }
        if config.switch == SwitchMode::Partial {
            let dirs: Vec<_> = resolved.values().map(|r| r.dir.clone()).collect();
            let report = switcher.scan(&dirs);
            if report.switched + report.restored + report.failed > 0 {
                debug!(switched = report.switched, restored = report.restored, failed = report.failed, "partial switch scan");
            }
        }

        if last_status.elapsed() >= status_every {
            last_status = Instant::now();
            let doc = build_status(
                "running", &config, &resolved, &sched, generation, args, &features, load_ms, attach_ms,
                last_apply_us, switcher.switched(), events_received.load(Ordering::Relaxed), &last_reload_error,
            );
            if let Err(e) = status::write_atomic(&args.status_file, &doc) {
                warn!(error = %e, path = %args.status_file.display(), "writing the status file");
            }
        }
        std::thread::sleep(scan_every);
    }

    notify(&[sd_notify::NotifyState::Stopping]);
    let state = if code == exit::EJECTED { "ejected" } else { "stopped" };
    let doc = build_status(
        state, &config, &resolved, &sched, generation, args, &features, load_ms, attach_ms, last_apply_us,
        switcher.switched(), events_received.load(Ordering::Relaxed), &last_reload_error,
    );
    let detach_started = Instant::now();
    sched.detach();
    let restored = switcher.restore_all();
    info!(
        detach_ms = format!("{:.1}", detach_started.elapsed().as_secs_f64() * 1e3),
        restored_threads = restored,
        "scx_slo detached"
    );
    if let Err(e) = status::write_atomic(&args.status_file, &doc) {
        warn!(error = %e, "writing the final status file");
    }
    reader_stop.store(true, Ordering::Relaxed);
    if let Some(handle) = reader {
        let _ = handle.join();
    }
    code
}

#[allow(clippy::too_many_arguments)]
fn build_status(
    state: &'static str,
    config: &Config,
    resolved: &BTreeMap<String, Resolved>,
    sched: &Scheduler<'_>,
    generation: u64,
    args: &Args,
    features: &KernelFeatures,
    load_ms: f64,
    attach_ms: f64,
    last_apply_us: f64,
    switched_threads: usize,
    events_received: u64,
    last_reload_error: &Option<String>,
) -> Status {
    let targets = config
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let r = resolved.get(&t.key);
            let stats = r.and_then(|_| sched.target_stats(i as u32).ok());
            let q = |q| stats.as_ref().and_then(|s| scx_slo_bpf::TargetStats::quantile_upper_ns(&s.rq_delay_hist, q));
            TargetStatus {
                key: t.key.clone(),
                class: t.class,
                index: i as u32,
                cgroup: r.map(|r| r.dir.display().to_string()),
                cgroup_id: r.map(|r| r.cgroup_id),
                rq_delay_p50_le_ns: q(0.5),
                rq_delay_p99_le_ns: q(0.99),
                stats,
            }
        })
        .collect();
    Status {
        state,
        mode: "enforce",
        switch: config.switch,
        generation,
        config_path: args.config.display().to_string(),
        kernel: features.clone(),
        load_ms,
        attach_ms,
        last_apply_us,
        switched_threads,
        events_received,
        last_reload_error: last_reload_error.clone(),
        targets,
        global: sched.global_stats().unwrap_or_default().into_iter().collect(),
        exit: sched.exit_info(),
    }
}
