// SPDX-License-Identifier: GPL-2.0-only
//! Host benchmark: what observe mode costs a wakeup-heavy load. hackbench
//! runs in a cgroup that observe mode targets (every wakeup measured: the
//! worst case), alternately without the daemon and with scx-slod in observe
//! mode, in the same boot. Reported: hackbench time with/without (ratio of
//! medians), and the probes' own CPU from the kernel's bpf_stats (run time
//! during the run / wall time, as a share of one CPU; ns per probe run).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// Benchmark settings.
pub struct Settings {
    /// The scx-slod binary.
    pub daemon: PathBuf,
    /// Pairs of runs.
    pub rounds: usize,
    /// hackbench arguments.
    pub hackbench: Vec<String>,
    /// Run hackbench outside the targeted cgroup: the probes still run on
    /// every wakeup but take only the cheap path (the common case: observe
    /// targets a few services, the rest of the host pays the filter).
    pub untargeted: bool,
}

/// One hackbench run.
#[derive(Clone, Debug, Serialize)]
pub struct Run {
    /// "baseline" or "observe".
    pub variant: &'static str,
    /// hackbench's own "Time:".
    pub seconds: f64,
    /// Probe run time during the run, ns (observe only).
    pub probe_ns: Option<u64>,
    /// Probe runs during the run (observe only).
    pub probe_runs: Option<u64>,
}

/// The result.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Every run, in order.
    pub runs: Vec<Run>,
    /// Median hackbench time without the daemon.
    pub baseline_median_s: f64,
    /// Median with observe mode.
    pub observe_median_s: f64,
    /// observe / baseline.
    pub time_ratio: f64,
    /// Probe CPU during the observe runs, as a share of one CPU (median).
    pub probe_cpu_share: f64,
    /// ns per probe invocation (median).
    pub probe_ns_per_run: f64,
    /// Probe invocations per second of hackbench (median).
    pub probe_runs_per_s: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn hackbench(cgroup: &Path, args: &[String]) -> Result<f64> {
    let procs = cgroup.join("cgroup.procs");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("echo $$ > {} && exec hackbench {}", procs.display(), args.join(" ")))
        .output()
        .context("running hackbench (Debian package rt-tests)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let time = text.lines().find_map(|l| l.strip_prefix("Time:")).map(str::trim).context("hackbench printed no Time:")?;
    Ok(time.parse()?)
}

struct Daemon {
    child: Child,
    status: PathBuf,
}

impl Daemon {
    fn start(bin: &Path, dir: &Path) -> Result<Daemon> {
        let status = dir.join("status.json");
        let _ = std::fs::remove_file(&status);
        let child = Command::new(bin)
            .arg("--config")
            .arg(dir.join("config.json"))
            .arg("--status-file")
            .arg(&status)
            .arg("--state-file")
            .arg(dir.join("state.json"))
            .arg("--audit-dir")
            .arg(dir.join("audit"))
            .args(["--dbus", "off", "--metrics-listen", "off", "--scan-interval", "1s", "--status-interval", "1s"])
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let d = Daemon { child, status };
        let t = Instant::now();
        while d.probe().is_none() {
            if t.elapsed() > Duration::from_secs(20) {
                bail!("scx-slod did not reach observe mode in 20 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(d)
    }

    /// (run_time_ns, run_count) from the status file, once observing.
    fn probe(&self) -> Option<(u64, u64)> {
        let status = scx_slo_api::documents::read_status_file(&self.status).ok()?;
        if status.mode != "observe" {
            return None;
        }
        status.probe.map(|p| (p.run_time_ns, p.run_count))
    }

    /// A reading taken after the next status write.
    fn fresh_probe(&self) -> Option<(u64, u64)> {
        // The daemon scans and writes its status every second.
        std::thread::sleep(Duration::from_millis(1200));
        self.probe()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// The kernel's BPF run-time statistics, on while held (closing the fd
/// turns them off).
struct BpfStats {
    _fd: std::os::fd::OwnedFd,
}

impl BpfStats {
    fn hold() -> Result<BpfStats> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain syscall wrapper; a non-negative return is a new fd we own.
        let fd = unsafe { libbpf_rs::libbpf_sys::bpf_enable_stats(libbpf_rs::libbpf_sys::BPF_STATS_RUN_TIME) };
        if fd < 0 {
            bail!("BPF_ENABLE_STATS refused: errno {}", -fd);
        }
        // SAFETY: fd >= 0 is a fresh descriptor owned by nobody else.
        Ok(BpfStats { _fd: unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) } })
    }
}

/// Runs the benchmark.
pub fn run(s: &Settings) -> Result<Summary> {
    let root = scx_slod::resolver::cgroup2_root().context("no cgroup2 mount")?;
    let name = format!("scx-slo-bench-{}", std::process::id());
    let target = root.join(&name);
    std::fs::create_dir_all(&target)?;
    let other = root.join(format!("{name}-untargeted"));
    std::fs::create_dir_all(&other)?;
    let cgroup = if s.untargeted { other.clone() } else { target.clone() };
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir)?;
    let config = serde_json::json!({
        "version": 1,
        "mode": "observe",
        "targets": { format!("/{name}"): { "class": "latency", "budget": { "runtime": "1ms", "period": "10ms" }, "deadline": "5ms" } }
    });
    std::fs::write(dir.join("config.json"), config.to_string())?;
    let result = (|| {
        let mut runs = Vec::new();
        // Warm-up (page cache, CPU frequency), not counted.
        hackbench(&cgroup, &s.hackbench)?;
        for round in 0..s.rounds {
            // ABBA order so a drift over time does not favour one side.
            let order = if round % 2 == 0 { [false, true] } else { [true, false] };
            for observe in order {
                if observe {
                    let d = Daemon::start(&s.daemon, &dir)?;
                    // The daemon turns the kernel's BPF statistics on only
                    // 2 s in 20; the bench holds them on through its runs to
                    // count every probe run (so the probe's numbers include
                    // the statistics' own cost: an upper bound).
                    let _stats = BpfStats::hold()?;
                    let before = d.fresh_probe().context("no probe statistics in the status file")?;
                    let seconds = hackbench(&cgroup, &s.hackbench)?;
                    let after = d.fresh_probe().context("no probe statistics in the status file")?;
                    runs.push(Run {
                        variant: "observe",
                        seconds,
                        probe_ns: Some(after.0 - before.0),
                        probe_runs: Some(after.1 - before.1),
                    });
                } else {
                    let seconds = hackbench(&cgroup, &s.hackbench)?;
                    runs.push(Run { variant: "baseline", seconds, probe_ns: None, probe_runs: None });
                }
                eprintln!("round {round}: {:?}", runs.last());
            }
        }
        Ok::<_, anyhow::Error>(runs)
    })();
    let _ = std::fs::remove_dir(&target);
    let _ = std::fs::remove_dir(&other);
    let runs = result?;
    let times = |v: &str| runs.iter().filter(|r| r.variant == v).map(|r| r.seconds).collect::<Vec<_>>();
    let observed: Vec<&Run> = runs.iter().filter(|r| r.variant == "observe").collect();
    let baseline_median_s = median(times("baseline"));
    let observe_median_s = median(times("observe"));
    Ok(Summary {
        baseline_median_s,
        observe_median_s,
        time_ratio: observe_median_s / baseline_median_s,
        probe_cpu_share: median(observed.iter().map(|r| r.probe_ns.unwrap_or(0) as f64 / (r.seconds * 1e9)).collect()),
        probe_ns_per_run: median(observed.iter().map(|r| r.probe_ns.unwrap_or(0) as f64 / r.probe_runs.unwrap_or(1).max(1) as f64).collect()),
        probe_runs_per_s: median(observed.iter().map(|r| r.probe_runs.unwrap_or(0) as f64 / r.seconds).collect()),
        runs,
    })
}
