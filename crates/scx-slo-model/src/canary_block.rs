// SPDX-License-Identifier: GPL-2.0-only
//! Validation of the `canary` block (docs/tuning.md): its fields, and that the
//! config has a candidate to judge (a mode that can enforce) and an SLI to
//! judge it on (a latency target).

use crate::bounds::{defaults, limits};
use crate::config::{CanarySettings, Class, Mode, Target};
use crate::error::{in_range, ConfigErrors, JsonPath};
use crate::raw::RawCanary;

/// An integer field within `(lo, hi)`, or the default with an error.
fn count(errors: &mut ConfigErrors, path: JsonPath, value: Option<u64>, default: u32, (lo, hi): (u64, u64)) -> u32 {
    match value {
        None => default,
        Some(v) if (lo..=hi).contains(&v) => u32::try_from(v).unwrap_or(default),
        Some(v) => {
            errors.push(path, format!("{v} is outside {lo}..={hi}"));
            default
        }
    }
}

pub(crate) fn validate_canary(errors: &mut ConfigErrors, raw: RawCanary, mode: Mode, targets: &[Target]) -> Option<CanarySettings> {
    let path = JsonPath::root().key("canary");
    let before = errors.paths().len();
    if matches!(mode, Mode::Observe | Mode::Advisory) {
        errors.push(
            path.clone(),
            format!("the canary judges enforce mode against the default scheduler; mode {} never enforces: remove the canary or set mode enforce or auto", if mode == Mode::Observe { "observe" } else { "advisory" }),
        );
    }
    if !targets.iter().any(|t| t.class == Class::Latency) {
        errors.push(path.clone(), "the canary's SLI is the latency targets' run-queue delay, and this config has no latency target");
    }
    let window = in_range(errors, path.key("window"), raw.window.unwrap_or(defaults::CANARY_WINDOW), limits::CANARY_WINDOW_RANGE);
    let (lo, hi) = limits::CANARY_MIN_SAMPLES_RANGE;
    let min_samples = raw.min_samples.unwrap_or(defaults::CANARY_MIN_SAMPLES);
    if !(lo..=hi).contains(&min_samples) {
        errors.push(path.key("min_samples"), format!("{min_samples} is outside {lo}..={hi}"));
    }
    let max_regression = raw.max_regression.unwrap_or(defaults::CANARY_MAX_REGRESSION);
    if !(max_regression > 0.0 && max_regression <= limits::CANARY_MAX_REGRESSION_MAX) {
        errors.push(
            path.key("max_regression"),
            format!("{max_regression} is outside (0, {}]: the p99 regression that rolls back, as a fraction (0.02 for 2%)", limits::CANARY_MAX_REGRESSION_MAX),
        );
    }
    let promote_after = count(errors, path.key("promote_after"), raw.promote_after, defaults::CANARY_PROMOTE_AFTER, limits::CANARY_PROMOTE_AFTER_RANGE);
    let max_windows = count(errors, path.key("max_windows"), raw.max_windows, defaults::CANARY_MAX_WINDOWS, limits::CANARY_MAX_WINDOWS_RANGE);
    if max_windows < promote_after {
        errors.push(path.key("max_windows"), format!("{max_windows} is below promote_after {promote_after}: the canary could never promote"));
    }
    (errors.paths().len() == before).then_some(CanarySettings { window, min_samples, max_regression, promote_after, max_windows })
}
