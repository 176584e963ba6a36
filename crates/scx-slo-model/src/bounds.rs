// SPDX-License-Identifier: GPL-2.0-only
//! Every bound and default of the config, in one place: the validator checks
//! against these constants, and the schema (`scx-slo schema`,
//! data/config.schema.json) publishes them, so the NixOS module and
//! docs/config.md never retype a number.

/// Limits on budgets and deadlines, chosen so that the BPF side's arithmetic
/// cannot overflow and a budget is larger than the scheduler's own overhead.
pub mod limits {
    use crate::duration::Duration;
    /// Smallest runtime or deadline: below this, scheduling overhead dominates.
    pub const MIN_RUNTIME: Duration = Duration::from_us(10);
    /// Shortest period.
    pub const MIN_PERIOD: Duration = Duration::from_us(100);
    /// Longest period.
    pub const MAX_PERIOD: Duration = Duration::from_secs(10);
    /// Slice bounds.
    pub const SLICE_RANGE: (Duration, Duration) = (Duration::from_us(50), Duration::from_ms(100));
    /// Bound-on-waiting range; the upper end stays well under the sched_ext
    /// watchdog timeout the scheduler declares (10 s).
    pub const MAX_WAIT_RANGE: (Duration, Duration) = (Duration::from_us(100), Duration::from_secs(1));
    /// Error budget window range.
    pub const WINDOW_RANGE: (Duration, Duration) = (Duration::from_secs(3600), Duration::from_secs(90 * 86400));
    /// Largest CPU capacity accepted.
    pub const MAX_CPUS: u64 = 4096;
    /// Overcommit factor range (exclusive lower bound, inclusive upper).
    pub const OVERCOMMIT_MAX: f64 = 4.0;
    /// Largest `numa.migration_threshold`.
    pub const MIGRATION_THRESHOLD_MAX: u32 = 1_000_000;
    /// `early_warning.slack_threshold` range.
    pub const SLACK_THRESHOLD_RANGE: (Duration, Duration) = (Duration::ZERO, Duration::from_secs(10));
    /// `early_warning.min_interval` range.
    pub const WARNING_INTERVAL_RANGE: (Duration, Duration) = (Duration::from_ms(1), Duration::from_secs(3600));
    /// Largest `observe.overhead_budget` (exclusive lower bound 0): half a CPU.
    pub const OVERHEAD_BUDGET_MAX: f64 = 0.5;
    /// `advisory.interval` range.
    pub const ADVISORY_INTERVAL_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(3600));
    /// Largest `advisory.max_step` (exclusive lower bound 1).
    pub const ADVISORY_MAX_STEP_MAX: f64 = 10.0;
    /// `targets.<name>.adaptive.interval` range: at least a second, so one
    /// interval holds enough jobs for a p99.
    pub const ADAPTIVE_INTERVAL_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(3600));
    /// Largest `adaptive.max_step` (exclusive lower bound 1): one change at
    /// most doubles a budget.
    pub const ADAPTIVE_MAX_STEP_MAX: f64 = 2.0;
    /// Largest `adaptive.cooldown`, in intervals.
    pub const ADAPTIVE_COOLDOWN_MAX: u64 = 100;
    /// `adaptive.min_samples` range.
    pub const ADAPTIVE_MIN_SAMPLES_RANGE: (u64, u64) = (1, 1_000_000_000);
    /// Largest PID gain: past it one interval's error moves the budget by
    /// more than `max_step` allows anyway.
    pub const ADAPTIVE_GAIN_MAX: f64 = 5.0;
    /// `canary.window` range: long enough for the samples of a p99, short
    /// enough that a harmful candidate is rolled back within the hour.
    pub const CANARY_WINDOW_RANGE: (Duration, Duration) = (Duration::from_secs(5), Duration::from_secs(3600));
    /// `canary.min_samples` range.
    pub const CANARY_MIN_SAMPLES_RANGE: (u64, u64) = (10, 10_000_000);
    /// Largest `canary.max_regression` (exclusive lower bound 0).
    pub const CANARY_MAX_REGRESSION_MAX: f64 = 1.0;
    /// `canary.promote_after` range.
    pub const CANARY_PROMOTE_AFTER_RANGE: (u64, u64) = (1, 100);
    /// `canary.max_windows` range.
    pub const CANARY_MAX_WINDOWS_RANGE: (u64, u64) = (2, 1000);
    /// Longest `targets.<name>.scrape.url`.
    pub const SCRAPE_URL_MAX: usize = 512;
    /// Longest `targets.<name>.scrape.histogram`.
    pub const SCRAPE_HISTOGRAM_MAX: usize = 200;
    /// Most targets with a `scrape` block: the daemon scrapes them one
    /// after the other every second, each bounded by a timeout, so their
    /// number bounds how stale a reading can be.
    pub const MAX_SCRAPES: usize = 32;
}

/// Defaults: one table, used by the validator and published by `scx-slo
/// schema` (which the NixOS module reads and docs/config.md is checked against).
pub mod defaults {
    use crate::duration::Duration;
    /// `admission.overcommit`, SCHED_DEADLINE's default bandwidth cap.
    pub const OVERCOMMIT: f64 = 0.95;
    /// `scheduler.slice_max`.
    pub const SLICE_MAX: Duration = Duration::from_ms(5);
    /// `scheduler.slice_min`.
    pub const SLICE_MIN: Duration = Duration::from_us(500);
    /// `scheduler.max_wait`.
    pub const MAX_WAIT: Duration = Duration::from_ms(50);
    /// `numa.migration_threshold`.
    pub const MIGRATION_THRESHOLD: u32 = 4;
    /// `early_warning.slack_threshold`.
    pub const SLACK_THRESHOLD: Duration = Duration::from_us(500);
    /// `early_warning.min_interval`.
    pub const WARNING_INTERVAL: Duration = Duration::from_ms(100);
    /// Priority of latency targets that set none.
    pub const LATENCY_PRIORITY: u16 = 500;
    /// Priority of batch targets that set none.
    pub const BATCH_PRIORITY: u16 = 0;
    /// `slo.availability`.
    pub const AVAILABILITY: f64 = 0.999;
    /// `slo.error_budget_window`.
    pub const ERROR_BUDGET_WINDOW: Duration = Duration::from_secs(30 * 86400);
    /// `observe.overhead_budget`: 1% of one CPU.
    pub const OVERHEAD_BUDGET: f64 = 0.01;
    /// `advisory.interval`.
    pub const ADVISORY_INTERVAL: Duration = Duration::from_secs(30);
    /// `advisory.max_step`.
    pub const ADVISORY_MAX_STEP: f64 = 2.0;
    /// `advisory.min_weight`: a latency target never goes below the default.
    pub const ADVISORY_MIN_WEIGHT: u32 = 100;
    /// `advisory.max_weight`.
    pub const ADVISORY_MAX_WEIGHT: u32 = 1000;
    /// `advisory.dry_run`.
    pub const ADVISORY_DRY_RUN: bool = false;
    /// `adaptive.interval`.
    pub const ADAPTIVE_INTERVAL: Duration = Duration::from_secs(30);
    /// `adaptive.max_step`: at most 25% more per change (and a third of that,
    /// in the log, less: see `adaptive::LOWER_SLOWDOWN`).
    pub const ADAPTIVE_MAX_STEP: f64 = 1.25;
    /// `adaptive.cooldown`: intervals to hold after a change.
    pub const ADAPTIVE_COOLDOWN: u32 = 1;
    /// `adaptive.min_samples`: jobs an interval needs before its p99 counts.
    pub const ADAPTIVE_MIN_SAMPLES: u64 = 200;
    /// `adaptive.min_runtime` is the deadline divided by this.
    pub const ADAPTIVE_MIN_RUNTIME_DIVISOR: u64 = 10;
    /// `adaptive.dry_run`.
    pub const ADAPTIVE_DRY_RUN: bool = false;
    /// `canary.window`: one arm's window (a pair takes twice that).
    pub const CANARY_WINDOW: Duration = Duration::from_secs(30);
    /// `canary.min_samples`, per arm (`canary::DEFAULT_POLICY`'s).
    pub const CANARY_MIN_SAMPLES: u64 = 1_000;
    /// `canary.max_regression`: a 2% p99 regression rolls back.
    pub const CANARY_MAX_REGRESSION: f64 = 0.02;
    /// `canary.promote_after`: good windows in a row.
    pub const CANARY_PROMOTE_AFTER: u32 = 3;
    /// `canary.max_windows`: windows to decide in.
    pub const CANARY_MAX_WINDOWS: u32 = 10;
}

