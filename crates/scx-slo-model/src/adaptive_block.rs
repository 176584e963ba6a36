// SPDX-License-Identifier: GPL-2.0-only
//! Validation of a latency target's `adaptive` block (docs/config.md): its own
//! fields, and how they fit the target's budget, deadline and SLO.

use crate::bounds::{defaults, limits};
use crate::config::{AdaptiveSli, Adaptive, Budget, Slo};
use crate::duration::Duration;
use crate::error::{in_range, ConfigErrors, JsonPath};
use crate::raw::RawAdaptive;

/// The controller's block. Its bounds do not depend on the budget in force
/// (which the controller itself moves): the runtime stays within
/// `[min_runtime, max_runtime]`, and `max_runtime` within the deadline, so
/// every budget it may set keeps runtime <= deadline <= period.
pub(crate) fn validate_adaptive(
    errors: &mut ConfigErrors,
    path: &JsonPath,
    raw: RawAdaptive,
    budget: Option<Budget>,
    deadline: Option<Duration>,
    slo: Option<&Slo>,
    has_scrape: bool,
) -> Option<Adaptive> {
    let objective = match raw.objective.or(slo.and_then(|s| s.latency.p99)) {
        Some(o) if o == Duration::ZERO => {
            errors.push(path.key("objective"), "an objective of 0s can never be met");
            None
        }
        Some(o) => Some(o),
        None => {
            errors.push(path.key("objective"), "the controller needs a p99 to steer under: set adaptive.objective or slo.latency.p99");
            None
        }
    };
    let interval = in_range(errors, path.key("interval"), raw.interval.unwrap_or(defaults::ADAPTIVE_INTERVAL), limits::ADAPTIVE_INTERVAL_RANGE);
    let deadline = deadline?;
    // The service's own histogram when the target names one: what its
    // users see, and the canary's SLI too.
    let sli = raw.sli.unwrap_or(if has_scrape { AdaptiveSli::Service } else { AdaptiveSli::Response });
    if sli == AdaptiveSli::Service && !has_scrape {
        errors.push(path.key("sli"), "service reads the service's own histogram: add the target's scrape { url, histogram } block, or use response or queue_delay");
    }
    // Past the deadline the scheduler counts a job's miss but does not time
    // it: a response objective beyond the deadline cannot be measured.
    if let (AdaptiveSli::Response, Some(o)) = (sli, objective) {
        if o > deadline {
            errors.push(path.key("objective"), format!("{o} is past the deadline {deadline}: response times beyond the deadline are counted as misses, not timed; use an objective within it"));
        }
    }
    let min_default = Duration::from_ns((deadline.as_ns() / defaults::ADAPTIVE_MIN_RUNTIME_DIVISOR).max(limits::MIN_RUNTIME.as_ns()));
    let min_runtime = raw.min_runtime.unwrap_or(min_default);
    let max_runtime = raw.max_runtime.unwrap_or(deadline);
    if min_runtime < limits::MIN_RUNTIME {
        errors.push(path.key("min_runtime"), format!("{min_runtime} is below the minimum {}", limits::MIN_RUNTIME));
    }
    if max_runtime > deadline {
        errors.push(path.key("max_runtime"), format!("{max_runtime} exceeds the deadline {deadline} (runtime <= deadline <= period)"));
    }
    if min_runtime > max_runtime {
        errors.push(path.key("min_runtime"), format!("{min_runtime} is above max_runtime {max_runtime}"));
    } else if let Some(b) = budget {
        // The clamps are hard: the budget in force (the file's, an
        // operator's override or a learned one) is always inside them.
        if b.runtime < min_runtime {
            errors.push(path.key("min_runtime"), format!("budget.runtime {} is below min_runtime {min_runtime} (default: the deadline / {}); lower min_runtime or raise the budget", b.runtime, defaults::ADAPTIVE_MIN_RUNTIME_DIVISOR));
        } else if b.runtime > max_runtime {
            errors.push(path.key("max_runtime"), format!("budget.runtime {} is above max_runtime {max_runtime}; raise max_runtime or lower the budget", b.runtime));
        }
    }
    let max_step = raw.max_step.unwrap_or(defaults::ADAPTIVE_MAX_STEP);
    if !(max_step > 1.0 && max_step <= limits::ADAPTIVE_MAX_STEP_MAX) {
        errors.push(path.key("max_step"), format!("{max_step} is outside (1, {}]: the largest factor one change may apply", limits::ADAPTIVE_MAX_STEP_MAX));
    }
    let cooldown = match raw.cooldown {
        None => defaults::ADAPTIVE_COOLDOWN,
        Some(c) if c <= limits::ADAPTIVE_COOLDOWN_MAX => c as u32,
        Some(c) => {
            errors.push(path.key("cooldown"), format!("{c} is outside 0..={} intervals", limits::ADAPTIVE_COOLDOWN_MAX));
            defaults::ADAPTIVE_COOLDOWN
        }
    };
    let (lo, hi) = limits::ADAPTIVE_MIN_SAMPLES_RANGE;
    let min_samples = raw.min_samples.unwrap_or(defaults::ADAPTIVE_MIN_SAMPLES);
    if !(lo..=hi).contains(&min_samples) {
        errors.push(path.key("min_samples"), format!("{min_samples} is outside {lo}..={hi}"));
    }
    let raw_gains = raw.gains.unwrap_or_default();
    let d = crate::adaptive::DEFAULT_GAINS;
    let mut gain = |name: &str, value: Option<f64>, default: f64| {
        let g = value.unwrap_or(default);
        if !(0.0..=limits::ADAPTIVE_GAIN_MAX).contains(&g) {
            errors.push(path.key("gains").key(name), format!("{g} is outside [0, {}]", limits::ADAPTIVE_GAIN_MAX));
        }
        g
    };
    let gains = crate::adaptive::Gains {
        kp: gain("kp", raw_gains.kp, d.kp),
        ki: gain("ki", raw_gains.ki, d.ki),
        kd: gain("kd", raw_gains.kd, d.kd),
    };
    if gains.ki == 0.0 && gains.kp == 0.0 {
        errors.push(path.key("gains"), "kp and ki are both 0: the controller would never move the budget (remove the adaptive block instead)");
    }
    Some(Adaptive {
        sli,
        objective: objective?,
        interval,
        min_runtime,
        max_runtime,
        max_step,
        cooldown,
        min_samples,
        gains,
        dry_run: raw.dry_run.unwrap_or(defaults::ADAPTIVE_DRY_RUN),
    })
}

