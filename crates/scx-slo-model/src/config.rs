// SPDX-License-Identifier: GPL-2.0-only
//! The validated config: what the daemon applies and the checker reports on.
//!
//! Only values of these types cross crate borders; [`crate::raw`] holds what was
//! parsed, and [`crate::validate`] turns one into the other.

use serde::{Deserialize, Serialize};

use crate::duration::Duration;

/// The only config version this build reads.
pub const CONFIG_VERSION: u32 = 1;
/// Most targets one config may hold; equals `SLO_MAX_TARGETS` in bpf/intf.h
/// (scx-slo-bpf asserts this at compile time).
pub const MAX_TARGETS: usize = 1024;
/// Fewest target slots the BPF maps are sized for.
pub const MIN_TARGET_CAPACITY: usize = 32;

/// How many targets the per-target BPF maps hold when loaded for a config of
/// `targets` targets: the smallest power of two that is at least twice as
/// many, at least [`MIN_TARGET_CAPACITY`], at most [`MAX_TARGETS`]. The
/// statistics are per CPU, so the slots cost `CPUs x 488 bytes` each: sizing
/// them from the config (not always 1,024) is most of the scheduler's map
/// memory on a large host. The headroom lets reloads add targets; a reload
/// past the capacity is refused and a restart sizes the maps anew (the NixOS
/// module restarts the unit when the capacity changes, nix/capacity.nix).
pub fn target_capacity(targets: usize) -> usize {
    targets.saturating_mul(2).next_power_of_two().clamp(MIN_TARGET_CAPACITY, MAX_TARGETS)
}

/// Highest priority; 0 is the lowest and is what untargeted tasks get.
pub const MAX_PRIORITY: u16 = 1000;
/// Weight of a target that sets none; the same scale as systemd's CPUWeight.
pub const DEFAULT_WEIGHT: u32 = 100;
/// Weight bounds, as systemd's CPUWeight.
pub const WEIGHT_RANGE: (u32, u32) = (1, 10_000);

/// Which scheduling mode the daemon runs in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The highest mode the host supports.
    #[default]
    Auto,
    /// Measure only; never change scheduling.
    Observe,
    /// Recommend and apply CPU weights through systemd.
    Advisory,
    /// Load the sched_ext scheduler.
    Enforce,
}

impl Mode {
    /// Every mode, in the order the docs list them.
    pub const ALL: [Mode; 4] = [Mode::Auto, Mode::Observe, Mode::Advisory, Mode::Enforce];
}

/// Which tasks the sched_ext scheduler takes in enforce mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SwitchMode {
    /// Only tasks of targeted units; everything else stays on the kernel's default class.
    #[default]
    Partial,
    /// Every task on the host.
    All,
}

impl SwitchMode {
    /// Every switch mode.
    pub const ALL: [SwitchMode; 2] = [SwitchMode::Partial, SwitchMode::All];
}

/// How a target is scheduled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// Earliest-deadline-first while its budget lasts.
    Latency,
    /// Weighted virtual time.
    Batch,
}

impl Class {
    /// Every class.
    pub const ALL: [Class; 2] = [Class::Latency, Class::Batch];
}

/// Whether a waking task of this target may preempt a running one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preemption {
    /// Never kicks a running task.
    Never,
    /// Kicks a CPU running lower-priority work when its deadline is earlier.
    LowerPriority,
}

impl Preemption {
    /// Every policy.
    pub const ALL: [Preemption; 2] = [Preemption::Never, Preemption::LowerPriority];
}

/// PID gains of an adaptive target's controller, per interval, on the log
/// of the runtime budget (defaults: `adaptive::DEFAULT_GAINS`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gains {
    /// Proportional: reacts to the change of the error.
    pub kp: f64,
    /// Integral: moves the budget by a share of the error every interval.
    pub ki: f64,
    /// Derivative: damps a fast-changing error.
    pub kd: f64,
}

/// What an adaptive target's controller measures (`adaptive.sli`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdaptiveSli {
    /// Job response time (wakeup to completion), from the scheduler's slack
    /// histogram and deadline-miss count: what a budget decides.
    #[default]
    Response,
    /// Run-queue delay (wakeup to first run): what priority and preemption
    /// decide; a budget exhausted mid-job does not show in it.
    QueueDelay,
    /// The service's own latency histogram, scraped from its Prometheus
    /// endpoint (the target's `scrape` block): what its users see. The
    /// default when the target has one.
    Service,
}

impl AdaptiveSli {
    /// Every SLI.
    pub const ALL: [AdaptiveSli; 3] = [AdaptiveSli::Response, AdaptiveSli::QueueDelay, AdaptiveSli::Service];
}

/// A latency target's own latency histogram (`targets.<name>.scrape`): the
/// controller's and the canary's SLI when set. On this host only: the
/// daemon schedules this host's units, so their endpoints are here, and a
/// loopback address keeps the daemon off the network (no DNS, no remote
/// host to hang on).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scrape {
    /// `http://127.0.0.1:PORT/PATH`, `http://[::1]:PORT/PATH` or
    /// `http://localhost:PORT/PATH`.
    pub url: String,
    /// The histogram's base name, e.g. `http_request_duration_seconds`
    /// (its `le` bounds in seconds); its label sets are summed.
    pub histogram: String,
}

/// CPU time a latency target may use per period, across all its CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// Runtime per period.
    pub runtime: Duration,
    /// The replenishment period.
    pub period: Duration,
}

impl Budget {
    /// Share of one CPU, in parts per million, rounded up (admission is conservative).
    pub fn utilization_ppm(&self) -> u64 {
        let runtime = u128::from(self.runtime.as_ns()) * 1_000_000;
        let period = u128::from(self.period.as_ns()).max(1);
        u64::try_from(runtime.div_ceil(period)).unwrap_or(u64::MAX)
    }
}

/// Latency objectives of a target's SLO (used by observe, metrics and alerts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyObjectives {
    /// Median.
    pub p50: Option<Duration>,
    /// 95th percentile.
    pub p95: Option<Duration>,
    /// 99th percentile.
    pub p99: Option<Duration>,
}

/// A target's service-level objective.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    /// Latency percentiles the service should meet.
    pub latency: LatencyObjectives,
    /// Fraction of good events, e.g. 0.999.
    pub availability: f64,
    /// The window the error budget is counted over.
    pub error_budget_window: Duration,
}

/// A latency target's runtime-budget controller (`targets.<name>.adaptive`,
/// docs/tuning.md): every `interval` it compares the p99 of the target's
/// `sli` with `objective` and moves `budget.runtime` within
/// `[min_runtime, max_runtime]`, through the same admission-checked path as
/// SetBudget.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Adaptive {
    /// What it measures.
    pub sli: AdaptiveSli,
    /// The p99 it steers under (`slo.latency.p99` when not set).
    pub objective: Duration,
    /// How often it measures and may change the budget.
    pub interval: Duration,
    /// Lowest runtime it sets.
    pub min_runtime: Duration,
    /// Highest runtime it sets (at most the deadline).
    pub max_runtime: Duration,
    /// Largest factor one change applies, in (1, 2].
    pub max_step: f64,
    /// Intervals it holds after a change.
    pub cooldown: u32,
    /// Jobs an interval needs before its p99 counts.
    pub min_samples: u64,
    /// PID gains on the log of the runtime.
    pub gains: Gains,
    /// Log what it would set; change nothing.
    pub dry_run: bool,
}

/// How a target finds its cgroup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Selector {
    /// A systemd unit or slice, optionally with an explicit cgroup path.
    Unit {
        /// `nginx.service`, `batch.slice`, `session-1.scope`.
        name: String,
        /// A cgroup path relative to the cgroup2 root that overrides lookup.
        cgroup: Option<String>,
    },
    /// A cgroup path relative to the cgroup2 root, such as `/batch.slice/x`.
    Cgroup {
        /// The path, starting with `/`.
        path: String,
    },
}

/// One validated target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// The key it had in `targets`, used in paths, metrics and logs.
    pub key: String,
    /// How to find its cgroup.
    pub selector: Selector,
    /// Scheduling class.
    pub class: Class,
    /// Latency targets only.
    pub budget: Option<Budget>,
    /// Relative deadline; latency targets only.
    pub deadline: Option<Duration>,
    /// 0 (lowest) to [`MAX_PRIORITY`].
    pub priority: u16,
    /// Preemption policy.
    pub preemption: Preemption,
    /// Share of CPU in virtual time, on systemd's CPUWeight scale.
    pub weight: u32,
    /// The SLO, when one is declared.
    pub slo: Option<Slo>,
    /// The runtime-budget controller, when enabled (latency targets only).
    pub adaptive: Option<Adaptive>,
    /// The service's own latency histogram (latency targets only).
    pub scrape: Option<Scrape>,
}

/// Admission control settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Admission {
    /// CPUs to admit against; `None` ("auto") means the online CPUs of the
    /// host the daemon runs on, so the offline checker cannot do the sum.
    pub cpu_capacity: Option<u32>,
    /// Factor on capacity, as SCHED_DEADLINE's 95% default.
    pub overcommit: f64,
}

/// Load-time knobs of the BPF scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SchedulerTuning {
    /// Longest slice any task gets.
    pub slice_max: Duration,
    /// Slice of batch tasks while latency targets hold budget and there is
    /// no lent credit.
    pub slice_min: Duration,
    /// Longest a runnable batch task waits behind latency work (the bound on waiting).
    pub max_wait: Duration,
}

/// NUMA behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Numa {
    /// Tasks queued on a remote node before an idle CPU steals from it.
    pub migration_threshold: u32,
}

/// Early-warning events for shrinking slack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct EarlyWarning {
    /// Emit a warning when a job finishes with less slack than this.
    pub slack_threshold: Duration,
    /// At most one warning per target per interval.
    pub min_interval: Duration,
}

/// Observe mode's probes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ObserveSettings {
    /// Most CPU the probes may use, as a fraction of one CPU; over it they
    /// measure one wakeup in N.
    pub overhead_budget: f64,
}

/// Advisory mode's CPUWeight controller.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct AdvisorySettings {
    /// How often weights are recomputed (and at most changed).
    pub interval: Duration,
    /// Log what would be set instead of calling systemd.
    pub dry_run: bool,
    /// Largest factor one change may apply (up or down).
    pub max_step: f64,
    /// Lowest weight recommended for a latency target.
    pub min_weight: u32,
    /// Highest weight recommended for a latency target.
    pub max_weight: u32,
}

/// The A/B canary (`canary`, docs/tuning.md): scx-slo enforcing (the
/// candidate) and the kernel's default scheduler (the baseline) take turns
/// for a `window` each under the same load; each pair is judged on the
/// latency targets' run-queue delay (`canary::judge`), and a significant
/// p99 regression rolls the candidate back.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CanarySettings {
    /// One arm's window.
    pub window: Duration,
    /// Fewest samples per arm for a verdict.
    pub min_samples: u64,
    /// The p99 regression that rolls back, as a fraction (0.02: 2%).
    pub max_regression: f64,
    /// Windows in a row judged `better` or `same` that promote.
    pub promote_after: u32,
    /// Windows after which an undecided canary expires.
    pub max_windows: u32,
}

/// A whole, valid config.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Config {
    /// Always [`CONFIG_VERSION`].
    pub version: u32,
    /// Requested mode.
    pub mode: Mode,
    /// Which tasks enforce mode takes.
    pub switch: SwitchMode,
    /// Admission control.
    pub admission: Admission,
    /// Scheduler knobs.
    pub scheduler: SchedulerTuning,
    /// NUMA behaviour.
    pub numa: Numa,
    /// Early warnings.
    pub early_warning: EarlyWarning,
    /// Observe-mode probes.
    pub observe: ObserveSettings,
    /// Advisory-mode controller.
    pub advisory: AdvisorySettings,
    /// The A/B canary, when configured.
    pub canary: Option<CanarySettings>,
    /// Targets, sorted by key.
    pub targets: Vec<Target>,
}

#[cfg(test)]
mod capacity_tests {
    use super::*;

    #[test]
    fn capacity_doubles_the_targets_to_a_power_of_two_within_bounds() {
        let cases = [(0, 32), (1, 32), (16, 32), (17, 64), (100, 256), (512, 1024), (513, 1024), (1000, 1024), (1024, 1024)];
        for (targets, capacity) in cases {
            assert_eq!(target_capacity(targets), capacity, "{targets} targets");
        }
        for n in 0..=MAX_TARGETS {
            let c = target_capacity(n);
            assert!(c >= n && c.is_power_of_two() && c <= MAX_TARGETS, "{n} targets: capacity {c}");
        }
    }
}
