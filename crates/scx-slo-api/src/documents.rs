// SPDX-License-Identifier: GPL-2.0-only
//! The documents the daemon serves as JSON: Status (also the status file),
//! ListTargets and Explain. The daemon builds these types and serializes
//! them; every reader (the CLI, the deploy gate, the lab, tests) parses them
//! back into the same types, so a renamed field breaks the build, not an
//! operator's script. Each document carries [`DOCUMENT_VERSION`]; a field is
//! only ever added (with a default for older documents) within a version.

use std::collections::BTreeMap;

pub use scx_slo_model::canary::{Arm, CanaryState, Verdict};
use scx_slo_model::{Budget, Class, Duration, Mode, SwitchMode, Target};
use serde::{Deserialize, Serialize};

use crate::counters::{Counter, Counters};
use crate::host::{Capabilities, ExitInfo, KernelFeatures};
use crate::state::{ActiveMode, State};

/// The version of Status, ListTargets and Explain.
pub const DOCUMENT_VERSION: u32 = 1;

fn document_version() -> u32 {
    DOCUMENT_VERSION
}

/// A budget set at runtime with SetBudget, overriding the config file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetOverride {
    /// Runtime per period, µs.
    pub runtime_us: u64,
    /// Period, µs.
    pub period_us: u64,
}

/// A target's statistics from the scheduler, summed over CPUs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetStats {
    /// The scheduler's counters (by name on the wire, [`Counters`]).
    pub counters: Counters,
    /// log2 histogram of run-queue delay.
    pub rq_delay_hist: Vec<u64>,
    /// log2 histogram of slack at job completion.
    pub slack_hist: Vec<u64>,
    /// Longest runnable wait of any task of the target, in ns (the maximum
    /// over CPUs, not a sum): what the no-starvation bound is checked on.
    pub max_wait_ns: u64,
}

impl TargetStats {
    /// One counter.
    pub fn get(&self, c: Counter) -> u64 {
        self.counters.get(c)
    }

    /// Adds `other` in: counters and histogram buckets sum (wrapping, as the
    /// kernel's do), the longest wait is the larger of the two.
    pub fn add(&mut self, other: &TargetStats) {
        self.counters.add(&other.counters);
        for (mine, theirs) in [(&mut self.rq_delay_hist, &other.rq_delay_hist), (&mut self.slack_hist, &other.slack_hist)] {
            if mine.len() < theirs.len() {
                mine.resize(theirs.len(), 0);
            }
            for (m, t) in mine.iter_mut().zip(theirs) {
                *m = m.wrapping_add(*t);
            }
        }
        self.max_wait_ns = self.max_wait_ns.max(other.max_wait_ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_file_too_large_or_not_text_is_named_not_misparsed() {
        let dir = std::env::temp_dir().join(format!("scx-slo-api-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("big.json");
        std::fs::write(&big, vec![b' '; (MAX_STATUS_FILE_BYTES + 1) as usize]).unwrap();
        assert!(read_status_file(&big).unwrap_err().contains("larger than"));
        let binary = dir.join("binary.json");
        std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
        assert!(read_status_file(&binary).unwrap_err().contains("binary.json"));
        let empty = dir.join("empty.json");
        std::fs::write(&empty, "").unwrap();
        assert!(read_status_file(&empty).unwrap_err().contains("document version 1"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_fifo_at_the_status_file_is_refused_without_waiting() {
        let dir = std::env::temp_dir().join(format!("scx-slo-api-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("status.json");
        let _ = std::fs::remove_file(&fifo);
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // On a thread: opening a FIFO for reading without O_NONBLOCK blocks
        // until a writer comes, which would hang the test, not fail it.
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || tx.send(read_status_file(&path).map(|_| ())));
        let e = rx.recv_timeout(std::time::Duration::from_secs(5)).expect("reading a FIFO hung").unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn stats_add_up_counters_and_buckets_and_keep_the_longest_wait() {
        let mut a = TargetStats { counters: [(Counter::Jobs, 5)].into(), rq_delay_hist: vec![1, 2], slack_hist: vec![], max_wait_ns: 9 };
        let b = TargetStats {
            counters: [(Counter::Jobs, 3), (Counter::DeadlineMisses, 1)].into(),
            rq_delay_hist: vec![1, 1, 4],
            slack_hist: vec![2],
            max_wait_ns: 7,
        };
        a.add(&b);
        assert_eq!((a.get(Counter::Jobs), a.get(Counter::DeadlineMisses), a.max_wait_ns), (8, 1, 9));
        assert_eq!((a.rq_delay_hist, a.slack_hist), (vec![2, 3, 4], vec![2]));
    }
}

/// Which modes the host can run, and the facts that decided it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CapabilityReport {
    /// Each mode and whether this host can run it.
    pub modes: BTreeMap<String, bool>,
    /// What was probed.
    pub host: Capabilities,
}

/// The observe probes' cost against their budget.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// Probe CPU time over wall time, in the last measurement window (the
    /// kernel's BPF statistics are on 2 s in every 20 s).
    pub overhead_ratio: f64,
    /// One event in this many is measured.
    pub sample_every: u32,
    /// The budget the ratio is held under.
    pub overhead_budget: f64,
    /// Probe CPU time counted so far, ns: only while the statistics are on
    /// (the measurement windows, or anyone else holding them on).
    pub run_time_ns: u64,
    /// Probe runs counted so far, likewise.
    pub run_count: u64,
}

/// Partial switching: threads moved to SCHED_EXT and refusals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialSwitchReport {
    /// Switched when the scheduler reported a new task.
    pub by_event: u64,
    /// Switched by the periodic scan.
    pub by_scan: u64,
    /// Threads the kernel refused SCHED_EXT.
    pub refused: u64,
    /// The last refusal's reason.
    pub last_refusal: Option<String>,
}

/// The circuit breaker.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerReport {
    /// Open: no retries until ResetBreaker or Enable.
    pub open: bool,
    /// Failures inside the breaker's window.
    pub recent_failures: usize,
    /// The half-open probe runs: one more attempt after the reset timeout;
    /// a failure opens the breaker again, a stable run closes it.
    #[serde(default)]
    pub half_open: bool,
    /// Open: seconds until its half-open probe; absent when it waits for an
    /// operator (no `--breaker-reset-timeout`, a canary rollback, or open
    /// since before a restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_in_s: Option<u64>,
}

/// An override next to what the config file says: the drift an operator
/// must decide about (ClearBudget undoes it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OverrideDrift {
    /// The override, e.g. `2000us per 10000us`.
    #[serde(rename = "override")]
    pub override_: String,
    /// The file's budget for the target, as written there.
    pub config_file: Option<serde_json::Value>,
}

/// The audit trail's state (docs/security.md, The audit trail).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditReport {
    /// The last entry's sequence number (compare with `scx-slo audit verify`:
    /// a trail cut at its end shows a lower one).
    pub last_seq: u64,
    /// The last entry's hash.
    pub last_hash: String,
    /// Entries appended since scx-slod started.
    pub appends: u64,
    /// Mean append time (write and fdatasync), µs.
    pub append_mean_us: f64,
    /// Appends that failed since scx-slod started.
    pub failures: u64,
    /// Why the trail cannot be written (mutating calls but Disable are refused).
    pub error: Option<String>,
}

/// One judged pair of canary windows (docs/tuning.md): the verdict and the
/// numbers it rests on. The ratios are absent without data.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CanaryWindow {
    /// `better`, `same`, `worse` or `not-enough-data`.
    pub verdict: Verdict,
    /// Run-queue delay samples under scx-slo (the candidate).
    pub candidate_samples: usize,
    /// Under the default scheduler (the baseline).
    pub baseline_samples: usize,
    /// candidate p99 / baseline p99.
    pub p99_ratio: Option<f64>,
    /// Its bootstrap interval at 99.9%.
    pub p99_ratio_ci: Option<(f64, f64)>,
    /// Mann-Whitney's two-sided p.
    pub mann_whitney_p: Option<f64>,
    /// Cliff's delta (negative: the candidate is lower).
    pub cliffs_delta: Option<f64>,
    /// The candidate's and the baseline's p99, µs (bucket-interpolated).
    pub p99_us: Option<(f64, f64)>,
    /// Deadline misses per job, candidate and baseline (the SLO breaker's
    /// input; absent without an SLO).
    #[serde(default)]
    pub miss_ratio: Option<(f64, f64)>,
    /// The candidate's miss ratio over the error budget (1: the SLO's pace).
    #[serde(default)]
    pub burn_rate: Option<f64>,
}

/// The A/B canary now (docs/tuning.md, The A/B canary).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CanaryReport {
    /// `running`, `promoted`, `rolled-back` or `expired`.
    pub state: CanaryState,
    /// The arm measuring now: `candidate` (scx-slo enforcing), `baseline`
    /// (the default scheduler), or none between arms and after the end.
    pub arm: Option<Arm>,
    /// Pairs of windows judged.
    pub windows: u32,
    /// `better` or `same` windows in a row.
    pub streak: u32,
    /// One arm's window, s.
    pub window_s: f64,
    /// The config (SHA-256) the canary judges.
    pub config_sha256: String,
    /// Every window's verdict so far, oldest first (at most `max_windows`).
    pub verdicts: Vec<Verdict>,
    /// The last window's numbers.
    pub last: Option<CanaryWindow>,
    /// How it ended, in words (promotion, rollback or expiry).
    pub outcome: Option<String>,
}

/// A target's budget controller now (docs/tuning.md, The controller).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveReport {
    /// The runtime the controller holds in force, µs.
    pub runtime_us: u64,
    /// The config file's runtime, where it started, µs.
    pub config_runtime_us: u64,
    /// The p99 it keeps the run-queue delay under, µs.
    pub objective_us: u64,
    /// Logs what it would set, changes nothing.
    pub dry_run: bool,
    /// Budget changes applied since scx-slod started.
    pub changes: u64,
    /// Steps admission (or a failed map write) refused since scx-slod started.
    pub refused: u64,
    /// The last interval's decision.
    pub last: Option<AdaptiveDecision>,
    /// The last change it applied (kept across restarts): why the budget
    /// in force is what it is.
    pub last_change: Option<AdaptiveDecision>,
}

/// One BPF map of the loaded backend and the kernel memory it holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapMemory {
    /// The map's name in the BPF object.
    pub name: String,
    /// Its `max_entries`, as loaded.
    pub max_entries: u32,
    /// The kernel's own count (`memlock` in the map's fdinfo), bytes.
    pub bytes: u64,
}

/// A target's own latency histogram, as the daemon's scraper reads it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScrapeReport {
    /// The endpoint.
    pub url: String,
    /// The histogram's base name.
    pub histogram: String,
    /// Readings that parsed, since scx-slod started.
    pub ok: u64,
    /// Readings that failed (connect, HTTP status, parse, no such
    /// histogram), since scx-slod started.
    pub failed: u64,
    /// Seconds since the latest reading (None: none yet).
    pub age_s: Option<f64>,
    /// Why the latest reading failed, when it did.
    pub last_error: Option<String>,
}

/// One interval of a budget controller.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveDecision {
    /// When, in seconds since the Unix epoch.
    pub at_unix_s: u64,
    /// The interval's run-queue delay p99, µs (None: no jobs).
    /// (Whole µs: the decision is persisted, and an integer survives a JSON
    /// round trip exactly, which a float parsed without serde_json's
    /// `float_roundtrip` may not.)
    pub p99_us: Option<u64>,
    /// Jobs it was computed from.
    pub samples: u64,
    /// The runtime before, µs.
    pub from_us: u64,
    /// The runtime proposed, µs (`from_us` when it held).
    pub to_us: u64,
    /// `applied`, `refused`, `dry-run`, or why it held: `not-enough-data`,
    /// `cooldown`, `on-target`, `at-limit`.
    pub outcome: String,
    /// The same in words, with the refusal's reason.
    pub why: String,
}

/// One target in Status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetStatus {
    /// The target's key.
    pub key: String,
    /// Its class.
    pub class: Class,
    /// Its map slot, while it has one.
    pub index: Option<u32>,
    /// Its cgroup directory, once resolved.
    pub cgroup: Option<String>,
    /// Its cgroup id, once resolved.
    pub cgroup_id: Option<u64>,
    /// Run-queue delay p50, as the upper bound of its histogram bucket.
    pub rq_delay_p50_le_ns: Option<u64>,
    /// Run-queue delay p99, likewise.
    pub rq_delay_p99_le_ns: Option<u64>,
    /// The scheduler's statistics (enforce mode, resolved targets).
    pub stats: Option<TargetStats>,
}

/// The status document: `Status` on D-Bus and the status file. `Default` is
/// a daemon that runs nothing and has no targets (for clients' tests).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// [`DOCUMENT_VERSION`].
    #[serde(default = "document_version")]
    pub version: u32,
    /// scx-slod's package version (`scx-slo version --verbose` shows it
    /// beside the CLI's; empty from a daemon older than the field).
    #[serde(default)]
    pub daemon_version: String,
    /// Lifecycle state (`stopped` in the file written at a stop).
    pub state: State,
    /// The mode running now, or `none`.
    pub mode: String,
    /// The mode the daemon runs when it can.
    pub primary_mode: ActiveMode,
    /// The mode the config asks for.
    pub requested_mode: Mode,
    /// Modes this host can run.
    pub capabilities: CapabilityReport,
    /// The observe probes' cost (observe and advisory).
    pub probe: Option<ProbeReport>,
    /// CPUWeight set per target in advisory mode.
    #[serde(default)]
    pub advisory_weights: BTreeMap<String, u32>,
    /// Partial or full switching.
    pub switch: SwitchMode,
    /// The applied config generation.
    pub generation: u64,
    /// The correlation id of the D-Bus call or automatic action that made
    /// the applied generation (absent for the one read at start): its audit
    /// entries carry it (`scx-slo audit show --correlation ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_correlation_id: Option<String>,
    /// The config file.
    pub config_path: String,
    /// SHA-256 of the config file text the running generation came from.
    pub config_sha256: String,
    /// `bpf` or `simulated`.
    pub backend: String,
    /// What the kernel offers.
    pub kernel: KernelFeatures,
    /// Last load time, ms.
    pub load_ms: f64,
    /// Last attach time, ms.
    pub attach_ms: f64,
    /// Last map update, µs.
    pub last_apply_us: f64,
    /// Threads on SCHED_EXT by partial switching now.
    pub switched_threads: usize,
    /// Partial switching's counts.
    pub partial_switch: PartialSwitchReport,
    /// Early-warning events received.
    pub events_received: u64,
    /// Why the last reload was refused (cleared by the next good one).
    pub last_reload_error: Option<String>,
    /// The reason of an operator's Disable still in force.
    pub operator_disabled: Option<String>,
    /// Why the persistent state could not be written, if it could not.
    pub persist_error: Option<String>,
    /// The circuit breaker.
    pub breaker: BreakerReport,
    /// SetBudget overrides by target.
    pub budget_overrides: BTreeMap<String, BudgetOverride>,
    /// The budget controller of each target with an `adaptive` block.
    #[serde(default)]
    pub adaptive: BTreeMap<String, AdaptiveReport>,
    /// The scraper's endpoints, by target (targets with a `scrape` block).
    #[serde(default)]
    pub scrapes: BTreeMap<String, ScrapeReport>,
    /// Target slots the loaded backend's per-target maps hold (0 when
    /// nothing is loaded): a reload past it is refused until a restart.
    #[serde(default)]
    pub target_capacity: u32,
    /// The loaded backend's maps and their kernel memory (empty when nothing
    /// is loaded, or with the simulated backend).
    #[serde(default)]
    pub maps: Vec<MapMemory>,
    /// The A/B canary, when the config has one.
    #[serde(default)]
    pub canary: Option<CanaryReport>,
    /// The audit trail: its head, or why it cannot be written.
    #[serde(default)]
    pub audit: AuditReport,
    /// SHA-256 of each embedded BPF object, verified against the build's
    /// record at start (empty with the simulated backend).
    #[serde(default)]
    pub bpf_objects: BTreeMap<String, String>,
    /// Each override next to the file's budget.
    pub budget_override_drift: BTreeMap<String, OverrideDrift>,
    /// The targets.
    pub targets: Vec<TargetStatus>,
    /// Whole-scheduler counters (enforce mode).
    pub global: Option<BTreeMap<String, u64>>,
    /// Why the scheduler last stopped, when the kernel ejected it.
    pub exit: Option<ExitInfo>,
}

/// One target in ListTargets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetEntry {
    /// The target's key.
    pub key: String,
    /// Its class.
    pub class: Class,
    /// Its cgroup directory, once resolved.
    pub cgroup: Option<String>,
    /// Its cgroup id, once resolved.
    pub cgroup_id: Option<u64>,
    /// The budget in force (the override's, if any).
    pub budget: Option<Budget>,
    /// Relative deadline.
    pub deadline: Option<Duration>,
    /// Priority.
    pub priority: u16,
    /// Whether a SetBudget override sets the budget.
    #[serde(rename = "override")]
    pub overridden: bool,
}

/// Explain's recent counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecentCounters {
    /// Wakeups.
    pub wakeups: u64,
    /// Jobs ended.
    pub jobs: u64,
    /// Jobs that missed their deadline.
    pub deadline_misses: u64,
    /// Periods the budget ran out.
    pub budget_exhausted: u64,
    /// Wakeups that found the period's budget already spent (those jobs
    /// ran by fair share only): the budget's shortfall.
    #[serde(default)]
    pub budget_spent_wakeups: u64,
    /// Past its budget, CPUs taken from fair work that ran ahead.
    #[serde(default)]
    pub fair_preempts: u64,
    /// Share of wakeups, in percent, that found budget left: how much of
    /// the unit's need the budget covers (null before any wakeup).
    #[serde(default)]
    pub budget_covered_pct: Option<f64>,
}

/// Why a unit is scheduled as it is now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Explain {
    /// [`DOCUMENT_VERSION`].
    #[serde(default = "document_version")]
    pub version: u32,
    /// The target's key.
    pub unit: String,
    /// The daemon's state.
    pub state: State,
    /// The applied generation.
    pub generation: u64,
    /// Where its settings come from: the file, or an override over it.
    pub source: String,
    /// The target as validated, with the budget in force (its fields sit at
    /// the top level of the document: `class`, `budget`, `priority`, ...).
    #[serde(flatten)]
    pub target: Target,
    /// Its cgroup directory, once resolved.
    pub cgroup: Option<String>,
    /// Its cgroup id, once resolved.
    pub cgroup_id: Option<u64>,
    /// The scheduling it gets now, in words.
    pub why: String,
    /// Its counters (enforce mode, resolved).
    pub recent: Option<RecentCounters>,
    /// Its budget controller, when it has an `adaptive` block: the budget
    /// in force and why (the block itself is under `adaptive`).
    #[serde(default)]
    pub adaptation: Option<AdaptiveReport>,
}

/// ListTargets: the targets and their resolution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetList {
    /// [`DOCUMENT_VERSION`].
    #[serde(default = "document_version")]
    pub version: u32,
    /// The targets in config order.
    pub targets: Vec<TargetEntry>,
}

/// Parses a document; the error names the document and the field that does
/// not fit.
pub fn parse<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| format!("{what} does not fit scx-slo's document version {DOCUMENT_VERSION}: {e}"))
}

/// The largest status file read: a daemon with 4,096 targets and every
/// counter writes about 2 MB.
pub const MAX_STATUS_FILE_BYTES: u64 = 16 << 20;

/// Reads a status file (`/run/scx-slo/status.json`) as a [`Status`]; the
/// error names the file and what is wrong with it.
pub fn read_status_file(path: &std::path::Path) -> Result<Status, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut text = String::new();
    // O_NONBLOCK: a FIFO planted at the path must not hang the reader (the
    // deploy gate); only a regular file is read.
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !file.metadata().is_ok_and(|m| m.file_type().is_file()) {
        return Err(format!("{}: not a regular file; not a status file", path.display()));
    }
    file.take(MAX_STATUS_FILE_BYTES + 1).read_to_string(&mut text).map_err(|e| format!("{}: {e}", path.display()))?;
    if text.len() as u64 > MAX_STATUS_FILE_BYTES {
        return Err(format!("{}: larger than {MAX_STATUS_FILE_BYTES} bytes; not a status file", path.display()));
    }
    parse(&path.display().to_string(), &text)
}

impl Status {
    /// A target's entry.
    pub fn target(&self, key: &str) -> Option<&TargetStatus> {
        self.targets.iter().find(|t| t.key == key)
    }

    /// A target's (jobs, deadline misses), when the scheduler counts it.
    pub fn jobs_and_misses(&self, key: &str) -> Option<(u64, u64)> {
        let stats = self.target(key)?.stats.as_ref()?;
        Some((stats.get(Counter::Jobs), stats.get(Counter::DeadlineMisses)))
    }
}
