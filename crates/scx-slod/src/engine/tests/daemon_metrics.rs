// SPDX-License-Identifier: GPL-2.0-only
//! The daemon's own health in the metrics (issue 17): refused reloads,
//! idempotency replays and conflicts, overrides, the breaker and the
//! whole-scheduler counters reach the snapshot the endpoint serves.

use super::*;

#[test]
fn refusals_replays_conflicts_and_overrides_reach_the_metrics() {
    let host = MemoryHost::new(EXAMPLE);
    let (mut e, _h) = engine(&host);
    let mut b = Recording::default();
    running(&mut e, &mut b);
    e.telemetry_scan(Some(&mut b));
    let before = e.telemetry.latest();
    assert_eq!(before.health, crate::metrics::DaemonHealth::default(), "nothing counted yet");
    assert_eq!(before.global.get("enqueues"), Some(&3), "the live session's whole-scheduler counters");
    assert_eq!(before.exits.get("error_stall"), Some(&0), "ejection kinds start at 0 for increase()");

    *host.config.lock().unwrap() = EXAMPLE.replace("\"3ms\"", "\"30ms\"");
    assert!(matches!(err(call(&mut e, Some(&mut b), reload(&host))), ControlError::InvalidConfig(_)));
    *host.config.lock().unwrap() = EXAMPLE.to_string();
    ok(call(&mut e, Some(&mut b), set_budget("api.service", 4000, 10_000, "k1")));
    ok(call(&mut e, Some(&mut b), set_budget("api.service", 4000, 10_000, "k1")));
    ok(call(&mut e, Some(&mut b), set_budget("api.service", 4000, 10_000, "k1")));
    assert!(matches!(err(call(&mut e, Some(&mut b), set_budget("api.service", 3000, 10_000, "k1"))), ControlError::Conflict(_)));

    e.telemetry_scan(Some(&mut b));
    let h = e.telemetry.latest().health;
    assert_eq!((h.counts.reload_failures, h.counts.idempotency_replays, h.counts.idempotency_conflicts), (1, 2, 1));
    assert_eq!(h.budget_overrides, 1);
    assert!(!h.breaker_open);

    // A session that ends adds its whole-scheduler counters to the next.
    e.carried.session_ended(&e.generation.config, &e.slots, &e.resolved, &b);
    e.telemetry_scan(Some(&mut b));
    assert_eq!(e.telemetry.latest().global.get("enqueues"), Some(&6));
}
