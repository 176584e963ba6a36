// SPDX-License-Identifier: GPL-2.0-only
//! The external scenario's workloads, each a program nobody here wrote in
//! the latency target and the tool that measures it:
//! - `cyclictest`: rt-tests' timer tool, service and measurement in one;
//! - `nginx-wrk`: nginx serving a small static file on 127.0.0.1, one
//!   worker per CPU, under wrk's closed-loop load (`--latency`);
//! - `redis`: redis-server without persistence under redis-benchmark
//!   (GET and SET, its latency-by-percentile report).
//!
//! A server runs in the latency target and its load generator in a cgroup
//! of its own ([`LOADGEN`]), neither target nor batch, so the generator
//! measures the service rather than its own place in the queue.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::external_tools::{parse_cyclictest, parse_redis_benchmark, parse_wrk, ToolRun, HIST_US};
use crate::fixtures::API;
use crate::harness::Env;
use crate::spawn::start_in_cgroup;

/// The load generators' cgroup: untargeted, beside the batch slice.
pub(crate) const LOADGEN: &str = "loadgen";
/// cyclictest's timer interval and the budget period that matches it.
pub(crate) const INTERVAL_US: u64 = 1000;
/// cyclictest's measurement threads.
const TOOL_THREADS: usize = 2;
/// wrk's threads and connections: a closed loop of 16 requests in flight.
const WRK_THREADS: usize = 2;
const CONNECTIONS: usize = 16;
/// Requests per redis-benchmark run; runs repeat until the cell's time is
/// up (redis-benchmark counts requests, not seconds).
const REDIS_REQUESTS: u64 = 5000;
const NGINX_PORT: u16 = 8080;
const REDIS_PORT: u16 = 6379;
/// nginx's files in the guest, written by [`Workload::start`].
const NGINX_DIR: &str = "/tmp/ext-nginx";

/// One program under test with its measuring tool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Workload {
    Cyclictest,
    NginxWrk,
    Redis,
}

impl Workload {
    /// Every workload, in the complete run's order.
    pub(crate) const ALL: [Workload; 3] = [Workload::Cyclictest, Workload::NginxWrk, Workload::Redis];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Workload::Cyclictest => "cyclictest",
            Workload::NginxWrk => "nginx-wrk",
            Workload::Redis => "redis",
        }
    }

    /// `--workload`: one name or `all`; empty is cyclictest (CI's quick
    /// run measures it alone). An unknown name is an error naming the known.
    pub(crate) fn parse_list(text: &str) -> Result<Vec<Workload>> {
        match text.trim() {
            "" => Ok(vec![Workload::Cyclictest]),
            "all" => Ok(Workload::ALL.to_vec()),
            name => Workload::ALL.into_iter().find(|w| w.name() == name).map(|w| vec![w]).with_context(|| {
                format!(
                    "unknown workload {:?}; known: {}, all",
                    name.chars().take(40).collect::<String>(),
                    Workload::ALL.map(Workload::name).join(", ")
                )
            }),
        }
    }

    /// The programs the guest needs for it (checks/vm/run copies them, with
    /// their libraries, from the host).
    pub(crate) fn programs(self) -> &'static [&'static str] {
        match self {
            Workload::Cyclictest => &["cyclictest"],
            Workload::NginxWrk => &["nginx", "wrk"],
            Workload::Redis => &["redis-server", "redis-benchmark"],
        }
    }

    /// What its latency and rate are, for the report.
    pub(crate) fn measures(self) -> (&'static str, &'static str) {
        match self {
            Workload::Cyclictest => ("wakeup latency (timer expiry to running, cyclictest's histogram)", "cycles"),
            Workload::NginxWrk => ("request latency (wrk --latency: p50/75/90/99 and max)", "requests/s"),
            Workload::Redis => ("request latency (redis-benchmark's percentile distribution)", "requests/s"),
        }
    }

    /// What the latency target holds and how it is measured, for
    /// docs/benchmarks-external.md.
    pub(crate) fn about(self) -> &'static str {
        match self {
            Workload::Cyclictest => "The latency target holds rt-tests' `cyclictest` (two SCHED_OTHER threads on 1 ms absolute timers, each pinned to a CPU \
as the tool does by default; its own histogram of timer-to-running latency). \"cycles\" counts the tool's measurements: a wakeup later than its \
interval costs the cycles it skips.",
            Workload::NginxWrk => "The latency target holds nginx (one worker per CPU, access log off, a static page of about 600 bytes on 127.0.0.1); \
wrk (`--latency`, 2 threads, 16 connections, a closed loop) loads it from a cgroup of its own, neither target nor batch. \
wrk prints p50/75/90/99 and its maximum and nothing in between, so p99.9 is not measured (`-`; wrk2 and wrk's Lua percentiles would give it, \
Debian ships neither the one nor a script for the other); rounds are pooled from each round's points. The rate is wrk's requests/s.",
            Workload::Redis => "The latency target holds redis-server (`--save '' --appendonly no`); redis-benchmark (16 clients, GET and SET, \
runs of 5000 requests repeated until the cell's time is up) loads it from a cgroup of its own, neither target nor batch. \
Its latency-by-percentile distribution (an HDR histogram down to the slowest request) gives every percentile. The rate is its requests/s.",
        }
    }

    /// Starts the workload for `secs`: the service in the latency target
    /// (as SCHED_FIFO 50 with `fifo`), then its measuring tool. Output
    /// files are named after `tag`.
    pub(crate) fn start(self, env: &Env, secs: u64, fifo: bool, tag: &str) -> Result<Measuring> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let service = match self {
            Workload::Cyclictest => None,
            Workload::NginxWrk => {
                write_nginx_files()?;
                let mut cmd = Command::new(env.exe("nginx"));
                cmd.args(["-p", NGINX_DIR, "-c", &format!("{NGINX_DIR}/nginx.conf"), "-e", &format!("{NGINX_DIR}/error.log")]);
                Some(spawn_service(env, cmd, fifo, NGINX_PORT, "nginx")?)
            }
            Workload::Redis => {
                let mut cmd = Command::new(env.exe("redis-server"));
                cmd.args(["--port", &REDIS_PORT.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"]);
                Some(spawn_service(env, cmd, fifo, REDIS_PORT, "redis-server")?)
            }
        };
        let mut m = Measuring { workload: self, service, client: None, outs: Vec::new(), deadline, secs, tag: tag.to_string(), fifo };
        if let Err(e) = m.start_client(env) {
            m.stop_service();
            return Err(e);
        }
        Ok(m)
    }
}

/// A running workload.
pub(crate) struct Measuring {
    workload: Workload,
    service: Option<Child>,
    client: Option<Child>,
    /// The measuring tool's outputs, one per run.
    outs: Vec<PathBuf>,
    deadline: Instant,
    secs: u64,
    tag: String,
    fifo: bool,
}

impl Measuring {
    /// The process whose threads serve: cyclictest itself, the nginx
    /// master (its workers are its children), redis-server.
    pub(crate) fn service_pid(&self) -> Option<u32> {
        self.service.as_ref().or(self.client.as_ref()).map(Child::id)
    }

    fn start_client(&mut self, env: &Env) -> Result<()> {
        let out = PathBuf::from(format!("/tmp/{}-{}-{}.txt", self.tag, self.workload.name(), self.outs.len()));
        let mut cmd = match self.workload {
            Workload::Cyclictest => {
                let mut cmd = Command::new(env.exe("cyclictest"));
                cmd.args(["-q", "-m", "-t", &TOOL_THREADS.to_string(), "-i", &INTERVAL_US.to_string(), "-D", &self.secs.to_string()]);
                cmd.args(["-h", &HIST_US.to_string()]);
                if self.fifo {
                    cmd.args(["-p", "50"]);
                }
                start_in_cgroup(&mut cmd, &env.cg(API))?;
                cmd
            }
            Workload::NginxWrk => {
                let mut cmd = Command::new(env.exe("wrk"));
                cmd.args(["--latency", "-t", &WRK_THREADS.to_string(), "-c", &CONNECTIONS.to_string(), "-d", &format!("{}s", self.secs), "--timeout", "5s"]);
                cmd.arg(format!("http://127.0.0.1:{NGINX_PORT}/index.html"));
                start_in_cgroup(&mut cmd, &env.cg(LOADGEN))?;
                cmd
            }
            Workload::Redis => {
                let mut cmd = Command::new(env.exe("redis-benchmark"));
                cmd.args(["-h", "127.0.0.1", "-p", &REDIS_PORT.to_string(), "-c", &CONNECTIONS.to_string(), "-n", &REDIS_REQUESTS.to_string(), "-t", "get,set"]);
                start_in_cgroup(&mut cmd, &env.cg(LOADGEN))?;
                cmd
            }
        };
        cmd.stdout(std::fs::File::create(&out).with_context(|| format!("creating {}", out.display()))?).stderr(Stdio::null());
        let what = self.workload.programs().last().copied().unwrap_or_default();
        self.client = Some(cmd.spawn().with_context(|| format!("starting {what}"))?);
        self.outs.push(out);
        Ok(())
    }

    /// The threads that serve, for SCHED_DEADLINE: cyclictest's measuring
    /// threads (not its main thread, which waits for them), nginx's
    /// workers (the master only accepts signals), redis-server's main
    /// thread (its bio threads are background I/O). Each gets a
    /// reservation of its own, so a sleeping thread given one would only
    /// take bandwidth from the admission limit.
    pub(crate) fn serving_threads(&self) -> Vec<u32> {
        let Some(pid) = self.service_pid() else { return Vec::new() };
        match self.workload {
            Workload::Cyclictest => threads_of(pid).into_iter().filter(|t| *t != pid).collect(),
            Workload::NginxWrk => children_of(pid).into_iter().flat_map(threads_of).collect(),
            Workload::Redis => vec![pid],
        }
    }

    /// Whether the measurement is over; a redis-benchmark run that ends
    /// with more than a second left is followed by another.
    pub(crate) fn poll(&mut self, env: &Env) -> Result<bool> {
        let Some(client) = self.client.as_mut() else { return Ok(true) };
        let Some(status) = client.try_wait()? else { return Ok(false) };
        let what = self.workload.programs().last().copied().unwrap_or_default();
        anyhow::ensure!(status.success(), "{what} exited with {status}");
        self.client = None;
        if self.workload == Workload::Redis && self.deadline.saturating_duration_since(Instant::now()) > Duration::from_secs(1) {
            self.start_client(env)?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Stops the service and parses every run of the measuring tool.
    pub(crate) fn finish(mut self) -> Result<ToolRun> {
        if let Some(mut c) = self.client.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.stop_service();
        let mut run = ToolRun::default();
        for out in &self.outs {
            let text = std::fs::read_to_string(out).with_context(|| format!("reading {}", out.display()))?;
            let one = match self.workload {
                Workload::Cyclictest => parse_cyclictest(&text),
                Workload::NginxWrk => parse_wrk(&text),
                Workload::Redis => parse_redis_benchmark(&text),
            }
            .with_context(|| format!("parsing {}", out.display()))?;
            run.merge(&one);
        }
        Ok(run)
    }

    fn stop_service(&mut self) {
        if let Some(mut s) = self.service.take() {
            // SAFETY: kill(2) on our child.
            unsafe { libc::kill(s.id() as i32, libc::SIGTERM) };
            if crate::harness::wait_until(Duration::from_secs(5), || matches!(s.try_wait(), Ok(Some(_)))).is_none() {
                let _ = s.kill();
            }
            let _ = s.wait();
        }
    }
}

impl Drop for Measuring {
    fn drop(&mut self) {
        if let Some(mut c) = self.client.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.stop_service();
    }
}

/// A process's threads (tids), or none when it is gone.
pub(crate) fn threads_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// A process's child processes, from every thread's `children` list.
fn children_of(pid: u32) -> Vec<u32> {
    threads_of(pid)
        .into_iter()
        .filter_map(|t| std::fs::read_to_string(format!("/proc/{pid}/task/{t}/children")).ok())
        .flat_map(|text| text.split_whitespace().filter_map(|c| c.parse().ok()).collect::<Vec<u32>>())
        .collect()
}

/// `struct sched_attr` (include/uapi/linux/sched/types.h), the first
/// version's 48 bytes: all SCHED_DEADLINE needs.
#[repr(C)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime_ns: u64,
    deadline_ns: u64,
    period_ns: u64,
}

const SCHED_DEADLINE: u32 = 6;

fn sched_setattr(tid: u32, policy: u32, runtime_ns: u64, deadline_ns: u64, period_ns: u64) -> std::io::Result<()> {
    let attr = SchedAttr { size: std::mem::size_of::<SchedAttr>() as u32, policy, flags: 0, nice: 0, priority: 0, runtime_ns, deadline_ns, period_ns };
    // SAFETY: sched_setattr(2) reads `size` bytes of a live, initialised
    // struct whose layout is the kernel's first version of sched_attr.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, tid as libc::pid_t, &attr as *const SchedAttr, 0u32) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Gives every one of `tids` a SCHED_DEADLINE reservation of `runtime` in
/// every `period` with `deadline`, as `chrt --deadline` would. All or none:
/// when the kernel refuses one (admission control: EBUSY once the
/// reservations pass 95% of the CPUs), the threads already set go back to
/// SCHED_OTHER and the refusal is returned, naming the thread.
pub(crate) fn set_deadline(tids: &[u32], runtime_ns: u64, deadline_ns: u64, period_ns: u64) -> Result<()> {
    anyhow::ensure!(!tids.is_empty(), "no serving thread to give a SCHED_DEADLINE reservation");
    for (i, &tid) in tids.iter().enumerate() {
        if let Err(e) = sched_setattr(tid, SCHED_DEADLINE, runtime_ns, deadline_ns, period_ns) {
            for &done in &tids[..i] {
                let _ = sched_setattr(done, libc::SCHED_OTHER as u32, 0, 0, 0);
            }
            // The kernel's two refusals, said the way an operator acts on them.
            let why = match e.raw_os_error() {
                Some(libc::EPERM) => format!(
                    " (the thread may run only on CPUs {}: a SCHED_DEADLINE task must be allowed every CPU of its root domain)",
                    cpus_allowed(tid).unwrap_or_else(|| "?".into())
                ),
                Some(libc::EBUSY) => " (admission control: the reservations would pass the 95% of the CPUs that sched_rt_runtime_us allows)".into(),
                _ => String::new(),
            };
            anyhow::bail!(
                "the kernel refused SCHED_DEADLINE ({} us / {} us / {} us) for thread {tid}, {} of {}: {e}{why}",
                runtime_ns / 1000,
                deadline_ns / 1000,
                period_ns / 1000,
                i + 1,
                tids.len()
            );
        }
    }
    Ok(())
}

/// A thread's `Cpus_allowed_list`, as /proc prints it.
fn cpus_allowed(tid: u32) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).map(|v| v.trim().to_string())
}

/// Starts a server in the latency target and waits until it accepts
/// connections on `port`.
fn spawn_service(env: &Env, mut cmd: Command, fifo: bool, port: u16, what: &str) -> Result<Child> {
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    start_in_cgroup(&mut cmd, &env.cg(API))?;
    if fifo {
        set_fifo_50(&mut cmd);
    }
    let mut child = cmd.spawn().with_context(|| format!("starting {what}"))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let up = crate::harness::wait_until(Duration::from_secs(20), || {
        matches!(child.try_wait(), Ok(None)) && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    });
    if up.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        anyhow::bail!("{what} did not accept connections on 127.0.0.1:{port} within 20 s");
    }
    Ok(child)
}

/// The child (and what it forks: nginx's workers) as SCHED_FIFO 50, what
/// `chrt -f 50` gives.
fn set_fifo_50(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec and makes
    // one async-signal-safe syscall on its own stack.
    unsafe {
        cmd.pre_exec(|| {
            let param = libc::sched_param { sched_priority: 50 };
            if libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// nginx's config: one worker per CPU, 127.0.0.1 only, no access log,
/// every path under [`NGINX_DIR`] (the guest has no /var/lib/nginx).
pub(crate) fn nginx_conf(dir: &str, port: u16) -> String {
    format!(
        "worker_processes auto;\ndaemon off;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log warn;\nuser nobody nogroup;\n\
events {{ worker_connections 1024; }}\n\
http {{\n    access_log off;\n    client_body_temp_path {dir}/tmp;\n    proxy_temp_path {dir}/tmp;\n    fastcgi_temp_path {dir}/tmp;\n    uwsgi_temp_path {dir}/tmp;\n    scgi_temp_path {dir}/tmp;\n\
    server {{\n        listen 127.0.0.1:{port};\n        root {dir}/www;\n    }}\n}}\n"
    )
}

fn write_nginx_files() -> Result<()> {
    let dir = Path::new(NGINX_DIR);
    std::fs::create_dir_all(dir.join("www")).and_then(|_| std::fs::create_dir_all(dir.join("tmp"))).context("creating nginx's directories")?;
    std::fs::write(dir.join("nginx.conf"), nginx_conf(NGINX_DIR, NGINX_PORT)).context("writing nginx.conf")?;
    // A small page, the size of nginx's own welcome page.
    let page = format!("<!DOCTYPE html>\n<html><head><title>scx-slo</title></head><body>\n{}</body></html>\n", "<p>programs nobody here wrote</p>\n".repeat(16));
    std::fs::write(dir.join("www/index.html"), page).context("writing nginx's index.html")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sched_attr_is_the_kernels_first_version() {
        // SCHED_ATTR_SIZE_VER0: the kernel reads exactly these 48 bytes.
        assert_eq!(std::mem::size_of::<SchedAttr>(), 48);
    }

    #[test]
    fn a_deadline_reservation_for_no_thread_is_an_error_not_a_silent_success() {
        let err = set_deadline(&[], 500_000, 1_000_000, 1_000_000).unwrap_err();
        assert!(format!("{err:#}").contains("no serving thread"), "{err:#}");
    }
}
