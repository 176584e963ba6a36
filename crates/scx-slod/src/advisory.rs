// SPDX-License-Identifier: GPL-2.0-only
//! Advisory mode: a recommended CPUWeight per latency unit from its observed
//! run-queue delay, applied through systemd's D-Bus API
//! (`SetUnitProperties(unit, runtime=true, [("CPUWeight", t)])`), never by
//! writing cgroup files behind systemd's back.
//!
//! The formula (docs/operations.md): a job may spend half its deadline
//! queued (`allowance = deadline / 2`). With `r = p99 queue delay over the
//! last interval / allowance`:
//! - `r > 1` (waiting too long): weight × min(√r, max_step);
//! - `r < 1/4` (lots of room): weight × max(√(4r), 1/max_step), never below
//!   min_weight, so the unit gives back what it no longer needs;
//! - otherwise unchanged (a dead band, so the weight does not flap).
//!
//! The result is clamped to [min_weight, max_weight]; a change under 5% is
//! not made; at most one change per unit per interval (rate limit), and
//! intervals without samples change nothing.

use scx_slo_model::AdvisorySettings;

/// Share of the deadline a job may spend waiting for a CPU.
pub const QUEUE_SHARE: f64 = 0.5;
/// Changes smaller than this fraction are not made.
pub const MIN_CHANGE: f64 = 0.05;

/// The next weight for a unit, or `None` to leave it.
pub fn recommend(settings: &AdvisorySettings, current: u32, p99_queue_ns: Option<u64>, deadline_ns: u64) -> Option<u32> {
    let p99 = p99_queue_ns? as f64;
    if deadline_ns == 0 {
        return None;
    }
    let r = p99 / (deadline_ns as f64 * QUEUE_SHARE);
    let factor = if r > 1.0 {
        r.sqrt().min(settings.max_step)
    } else if r < 0.25 {
        (4.0 * r).sqrt().max(1.0 / settings.max_step)
    } else {
        return None;
    };
    let next = (f64::from(current) * factor).round().clamp(f64::from(settings.min_weight), f64::from(settings.max_weight)) as u32;
    let change = (f64::from(next) - f64::from(current)).abs() / f64::from(current.max(1));
    (change >= MIN_CHANGE && next != current).then_some(next)
}

/// A call to systemd that failed.
#[derive(Debug, thiserror::Error)]
#[error("systemd {call}: {cause}")]
pub struct SystemdError {
    /// The call, with its arguments.
    pub call: String,
    /// zbus's error (boxed: it is large, and this is the rare path).
    pub cause: Box<zbus::Error>,
}

/// Sets a unit's CPUWeight for this boot (runtime = true) through systemd.
pub fn set_cpu_weight(bus: &zbus::blocking::Connection, unit: &str, weight: u32) -> Result<(), SystemdError> {
    let props = vec![("CPUWeight", zbus::zvariant::Value::U64(u64::from(weight)))];
    bus.call_method(
        Some("org.freedesktop.systemd1"),
        "/org/freedesktop/systemd1",
        Some("org.freedesktop.systemd1.Manager"),
        "SetUnitProperties",
        &(unit, true, props),
    )
    .map_err(|cause| SystemdError { call: format!("SetUnitProperties({unit}, CPUWeight={weight})"), cause: Box::new(cause) })?;
    Ok(())
}

/// The bus systemd listens on: the system bus, or an address (tests).
pub fn connect(address: Option<&str>) -> Result<zbus::blocking::Connection, SystemdError> {
    let call = || format!("bus connection ({})", address.unwrap_or("system bus"));
    let connected = match address {
        None => zbus::blocking::Connection::system(),
        Some(a) => zbus::blocking::connection::Builder::address(a).and_then(|b| b.build()),
    };
    connected.map_err(|cause| SystemdError { call: call(), cause: Box::new(cause) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn settings() -> AdvisorySettings {
        AdvisorySettings { interval: scx_slo_model::Duration::from_secs(30), dry_run: false, max_step: 2.0, min_weight: 100, max_weight: 1000 }
    }

    #[test]
    fn raises_when_queueing_eats_the_deadline_and_lowers_when_idle() {
        let s = settings();
        // 5 ms deadline: allowance 2.5 ms. p99 10 ms -> r = 4 -> x2.
        assert_eq!(recommend(&s, 100, Some(10_000_000), 5_000_000), Some(200));
        // r = 16 -> sqrt 4, capped at max_step 2.
        assert_eq!(recommend(&s, 200, Some(40_000_000), 5_000_000), Some(400));
        // Dead band.
        assert_eq!(recommend(&s, 400, Some(2_000_000), 5_000_000), None);
        // r = 0.04 -> sqrt(0.16) = 0.4, floored at 1/max_step.
        assert_eq!(recommend(&s, 400, Some(100_000), 5_000_000), Some(200));
        // Never below min_weight; no change at the floor.
        assert_eq!(recommend(&s, 100, Some(1000), 5_000_000), None);
        // No samples, no deadline: nothing.
        assert_eq!(recommend(&s, 100, None, 5_000_000), None);
        assert_eq!(recommend(&s, 100, Some(1), 0), None);
        // Ceiling.
        assert_eq!(recommend(&s, 900, Some(50_000_000), 5_000_000), Some(1000));
    }

    proptest! {
        #[test]
        fn stays_clamped_and_within_one_step(current in 100u32..=1000, p99 in 0u64..10_000_000_000, deadline in 10_000u64..1_000_000_000) {
            let s = settings();
            if let Some(next) = recommend(&s, current, Some(p99), deadline) {
                prop_assert!((s.min_weight..=s.max_weight).contains(&next));
                let ratio = f64::from(next) / f64::from(current);
                prop_assert!(ratio <= s.max_step + 1e-9 && ratio >= 1.0 / s.max_step - 0.01, "{current} -> {next}");
                prop_assert!((f64::from(next) - f64::from(current)).abs() / f64::from(current) >= MIN_CHANGE);
            }
        }
    }
}
