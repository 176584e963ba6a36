// SPDX-License-Identifier: GPL-2.0-only
//! The daemon's own health in the metrics (docs/metrics.md, Alerts on the daemon itself): refused reloads,
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
    e.targets.carried.session_ended(&e.generation.config, &e.targets.slots, &e.targets.resolved, &b);
    e.telemetry_scan(Some(&mut b));
    assert_eq!(e.telemetry.latest().global.get("enqueues"), Some(&6));
}

/// The periodic status file takes each target's statistics from the last
/// telemetry scan (one map read per target per period, not two); a D-Bus
/// Status and the final file read the maps now; a reload's new generation
/// is not shown the old generation's scan.
#[test]
fn the_periodic_status_file_reuses_the_last_scan_and_the_final_one_reads_live() {
    let host = MemoryHost::new(EXAMPLE);
    let (mut e, _h) = engine(&host);
    let mut b = Recording::default();
    running(&mut e, &mut b);
    let slot = e.targets.slots.get("api.service").expect("api.service has a slot");
    let jobs = |n: u64| TargetStats { counters: [(Counter::Jobs, n)].into(), ..Default::default() };
    b.stats.insert(slot, jobs(1));
    e.telemetry_scan(Some(&mut b));
    b.stats.insert(slot, jobs(5));
    let api_jobs = |s: &Status| s.targets.iter().find(|t| t.key == "api.service").and_then(|t| t.stats.as_ref()).map(|s| s.get(Counter::Jobs));
    let last_file = |host: &MemoryHost| host.statuses.lock().unwrap().last().cloned().expect("a status file");

    e.write_status(Some(&b), false);
    assert_eq!(api_jobs(&last_file(&host)), Some(1), "the periodic file shows the last scan");
    assert_eq!(api_jobs(&status(&mut e, Some(&mut b))), Some(5), "a Status call reads the maps");
    e.write_status(Some(&b), true);
    assert_eq!(api_jobs(&last_file(&host)), Some(5), "the final file reads the maps");

    e.telemetry_scan(Some(&mut b));
    b.stats.insert(slot, jobs(9));
    ok(call(&mut e, Some(&mut b), reload(&host)));
    e.write_status(Some(&b), false);
    assert_eq!(api_jobs(&last_file(&host)), Some(9), "a new generation is not shown the last generation's scan");
}
