// SPDX-License-Identifier: GPL-2.0-only
//! Starting this binary's workloads (`scx-slo-lab probe|hog|...`) in the
//! guest, with their arguments built as types ([`Workload`]) rather than
//! string vectors: a duration is a duration, a cgroup a path, and the cgroup
//! the child starts in is known without searching the arguments.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result};
use scx_slo_model::Duration;

use crate::harness::Env;
use crate::threads::ThreadSpec;
use crate::workload::Arrival;

/// A workload's command line.
#[derive(Clone, Debug)]
pub(crate) struct Workload {
    kind: &'static str,
    args: Vec<String>,
    cgroup: Option<PathBuf>,
}

impl Workload {
    fn new(kind: &'static str) -> Self {
        Workload { kind, args: Vec::new(), cgroup: None }
    }

    /// A periodic latency probe.
    pub(crate) fn probe() -> Self {
        Self::new("probe")
    }
    /// A CPU hog.
    pub(crate) fn hog() -> Self {
        Self::new("hog")
    }
    /// A task that sleeps until killed.
    pub(crate) fn idle() -> Self {
        Self::new("idle")
    }
    /// Bursting threads.
    pub(crate) fn noisy() -> Self {
        Self::new("noisy")
    }
    /// fork/exec back to back.
    pub(crate) fn forkexec() -> Self {
        Self::new("forkexec")
    }
    /// A process of periodic threads.
    pub(crate) fn threads() -> Self {
        Self::new("threads")
    }

    fn arg(mut self, flag: &str, value: impl ToString) -> Self {
        self.args.push(flag.to_string());
        self.args.push(value.to_string());
        self
    }

    fn flag(mut self, flag: &str, on: bool) -> Self {
        if on {
            self.args.push(flag.to_string());
        }
        self
    }

    /// Runs in this cgroup directory.
    pub(crate) fn cgroup(mut self, dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        self = self.arg("--cgroup", dir.display());
        self.cgroup = Some(dir);
        self
    }
    /// How long it runs.
    pub(crate) fn duration(self, d: Duration) -> Self {
        self.arg("--duration", d)
    }
    /// The probe's period.
    pub(crate) fn period(self, d: Duration) -> Self {
        self.arg("--period", d)
    }
    /// The probe's CPU time per request.
    pub(crate) fn work(self, d: Duration) -> Self {
        self.arg("--work", d)
    }
    /// The probe's relative deadline.
    pub(crate) fn deadline(self, d: Duration) -> Self {
        self.arg("--deadline", d)
    }
    /// The probe's arrival process.
    pub(crate) fn arrival(self, a: Arrival) -> Self {
        let name = match a {
            Arrival::Periodic => "periodic",
            Arrival::Poisson => "poisson",
        };
        self.arg("--arrival", name)
    }
    /// The probe serves its response-time histogram on 127.0.0.1:`port`.
    pub(crate) fn serve(self, port: u16) -> Self {
        self.arg("--serve", port)
    }
    /// The probe keeps its raw samples.
    pub(crate) fn samples(self) -> Self {
        self.flag("--samples", true)
    }
    /// Noisy: threads and burst length.
    pub(crate) fn bursts(self, threads: usize, burst: Duration) -> Self {
        self.threads_only(threads).arg("--burst", burst)
    }
    /// Noisy: threads, with the default burst.
    pub(crate) fn threads_only(self, threads: usize) -> Self {
        self.arg("--threads", threads)
    }
    /// Threads: one more worker thread.
    pub(crate) fn worker(self, spec: &ThreadSpec) -> Self {
        self.arg("--worker", spec.arg())
    }
    /// Threads: the main thread's own period and work.
    pub(crate) fn main_thread(self, spec: &ThreadSpec) -> Self {
        self.arg("--main", spec.arg())
    }
    /// Where the JSON result goes.
    pub(crate) fn out(self, path: impl AsRef<Path>) -> Self {
        let path = path.as_ref().display().to_string();
        self.arg("--out", path)
    }
    /// Waits (up to 5 s) until scx-slod gave it SCHED_EXT, when `on`.
    pub(crate) fn wait_ext(self, on: bool) -> Self {
        self.flag("--wait-ext", on)
    }

    /// This binary with the workload's arguments.
    fn command(&self, env: &Env) -> Command {
        let mut cmd = Command::new(env.exe("scx-slo-lab"));
        cmd.args(self.args());
        cmd
    }

    /// The command line after the binary.
    pub(crate) fn args(&self) -> Vec<String> {
        std::iter::once(self.kind.to_string()).chain(self.args.iter().cloned()).collect()
    }

    /// Starts it. A batch workload starts inside its cgroup; a latency probe
    /// joins its cgroup itself, after its start-up: the scheduler would count
    /// tens of ms of exec and loading as deadline misses of the target (the
    /// enforce checks count every job).
    pub(crate) fn spawn(&self, env: &Env) -> Result<Child> {
        let mut cmd = self.command(env);
        cmd.stdout(Stdio::null());
        if self.kind != "probe" {
            if let Some(dir) = &self.cgroup {
                start_in_cgroup(&mut cmd, dir)?;
            }
        }
        cmd.spawn().with_context(|| format!("spawning scx-slo-lab {}", self.args().join(" ")))
    }

    /// Starts a probe that holds its result until told (see
    /// `sampler::finish_held_probes`).
    pub(crate) fn spawn_held(&self, env: &Env) -> Result<Child> {
        let mut cmd = self.command(env);
        // It joins its cgroup itself after start-up (see spawn).
        cmd.arg("--hold").stdin(Stdio::piped()).stdout(Stdio::piped());
        cmd.spawn().context("spawning a latency probe")
    }
}

/// A batch workload with `--cgroup DIR` starts inside DIR, as systemd
/// starts a unit's process in its cgroup: the child moves itself between
/// fork and exec. Otherwise its start-up (exec, loading, argument parsing: tens of ms
/// under TCG) would run outside every target, in the fair class, which in
/// partial mode outranks every sched_ext task and showed up as
/// multi-millisecond waits of the latency unit at the start of each cell.
pub(crate) fn start_in_cgroup(cmd: &mut Command, dir: &Path) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let procs = std::ffi::CString::new(format!("{}/cgroup.procs", dir.display()))?;
    // SAFETY: the closure runs in the child between fork and exec and only
    // makes async-signal-safe syscalls on memory prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // "0" moves the writing process.
            let rc = libc::write(fd, b"0".as_ptr().cast(), 1);
            libc::close(fd);
            if rc != 1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

