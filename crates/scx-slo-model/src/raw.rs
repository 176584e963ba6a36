// SPDX-License-Identifier: GPL-2.0-only
//! config.json as parsed, before validation. Unknown fields are rejected.
//!
//! Numbers that have a documented range are parsed as wide integers so that an
//! out-of-range value gets our message (with the range), not serde's.

use serde::Deserialize;

use crate::config::{Class, Mode, Preemption, SwitchMode};
use crate::duration::Duration;

/// `admission.cpu_capacity`: a CPU count or `"auto"`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum RawCapacity {
    /// A CPU count.
    Cpus(u64),
    /// The literal `"auto"`.
    Word(AutoWord),
}

/// The literal `"auto"`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AutoWord {
    /// Use the daemon host's online CPUs.
    Auto,
}

/// `admission`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmission {
    /// CPU count or "auto".
    pub cpu_capacity: Option<RawCapacity>,
    /// Factor on capacity.
    pub overcommit: Option<f64>,
}

/// `scheduler`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScheduler {
    /// Longest slice.
    pub slice_max: Option<Duration>,
    /// Batch slice without credit.
    pub slice_min: Option<Duration>,
    /// Bound on waiting.
    pub max_wait: Option<Duration>,
}

/// `numa`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNuma {
    /// Remote queue depth before stealing.
    pub migration_threshold: Option<u64>,
}

/// `early_warning`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEarlyWarning {
    /// Slack under which a warning is sent.
    pub slack_threshold: Option<Duration>,
    /// Per-target rate limit.
    pub min_interval: Option<Duration>,
}

/// `observe`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawObserve {
    /// Fraction of one CPU the probes may use.
    pub overhead_budget: Option<f64>,
}

/// `advisory`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdvisory {
    /// Recompute period.
    pub interval: Option<Duration>,
    /// Log instead of calling systemd.
    pub dry_run: Option<bool>,
    /// Largest factor per change.
    pub max_step: Option<f64>,
    /// Weight floor for latency targets.
    pub min_weight: Option<u64>,
    /// Weight ceiling for latency targets.
    pub max_weight: Option<u64>,
}

/// `canary`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCanary {
    /// One arm's window.
    pub window: Option<Duration>,
    /// Fewest samples per arm for a verdict.
    pub min_samples: Option<u64>,
    /// The p99 regression that rolls back.
    pub max_regression: Option<f64>,
    /// Good windows in a row that promote.
    pub promote_after: Option<u64>,
    /// Windows to decide in.
    pub max_windows: Option<u64>,
}

/// `targets.<name>.budget`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBudget {
    /// Runtime per period.
    pub runtime: Duration,
    /// Period.
    pub period: Duration,
}

/// `targets.<name>.slo.latency`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLatency {
    /// Median objective.
    pub p50: Option<Duration>,
    /// 95th percentile objective.
    pub p95: Option<Duration>,
    /// 99th percentile objective.
    pub p99: Option<Duration>,
}

/// `targets.<name>.slo`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSlo {
    /// Latency objectives.
    pub latency: Option<RawLatency>,
    /// Fraction of good events.
    pub availability: Option<f64>,
    /// Error budget window.
    pub error_budget_window: Option<Duration>,
}

/// `targets.<name>.adaptive.gains`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGains {
    /// Proportional.
    pub kp: Option<f64>,
    /// Integral.
    pub ki: Option<f64>,
    /// Derivative.
    pub kd: Option<f64>,
}

/// `targets.<name>.adaptive`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdaptive {
    /// What is measured.
    pub sli: Option<crate::config::AdaptiveSli>,
    /// The p99 to keep; default `slo.latency.p99`.
    pub objective: Option<Duration>,
    /// How often the controller runs.
    pub interval: Option<Duration>,
    /// Lowest runtime it may set.
    pub min_runtime: Option<Duration>,
    /// Highest runtime it may set.
    pub max_runtime: Option<Duration>,
    /// Largest factor per change.
    pub max_step: Option<f64>,
    /// Intervals to hold after a change.
    pub cooldown: Option<u64>,
    /// Jobs an interval needs.
    pub min_samples: Option<u64>,
    /// PID gains.
    pub gains: Option<RawGains>,
    /// Log instead of applying.
    pub dry_run: Option<bool>,
}

/// `targets.<name>.scrape`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScrape {
    /// The endpoint.
    pub url: String,
    /// The histogram's base name.
    pub histogram: String,
}

/// `targets.<name>`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    /// Scheduling class (required).
    pub class: Class,
    /// Runtime per period.
    pub budget: Option<RawBudget>,
    /// Relative deadline.
    pub deadline: Option<Duration>,
    /// 0-1000.
    pub priority: Option<u64>,
    /// Preemption policy.
    pub preemption: Option<Preemption>,
    /// CPUWeight scale.
    pub weight: Option<u64>,
    /// Explicit cgroup path for a unit.
    pub cgroup: Option<String>,
    /// Service-level objective.
    pub slo: Option<RawSlo>,
    /// The runtime-budget controller.
    pub adaptive: Option<RawAdaptive>,
    /// The service's own latency histogram.
    pub scrape: Option<RawScrape>,
}

/// Top-level keys, each parsed separately so that one bad section does not hide
/// the problems of another.
pub const TOP_LEVEL_KEYS: [&str; 11] = [
    "version",
    "mode",
    "switch",
    "admission",
    "scheduler",
    "numa",
    "early_warning",
    "observe",
    "advisory",
    "canary",
    "targets",
];

/// Top-level sections that parsed.
#[derive(Debug, Default)]
pub struct RawConfig {
    /// `version`.
    pub version: Option<u64>,
    /// `mode`.
    pub mode: Option<Mode>,
    /// `switch`.
    pub switch: Option<SwitchMode>,
    /// `admission`.
    pub admission: Option<RawAdmission>,
    /// `scheduler`.
    pub scheduler: Option<RawScheduler>,
    /// `numa`.
    pub numa: Option<RawNuma>,
    /// `early_warning`.
    pub early_warning: Option<RawEarlyWarning>,
    /// `observe`.
    pub observe: Option<RawObserve>,
    /// `advisory`.
    pub advisory: Option<RawAdvisory>,
    /// `canary`.
    pub canary: Option<RawCanary>,
    /// `targets`, in key order; `None` values failed to parse.
    pub targets: Vec<(String, Option<RawTarget>)>,
}
