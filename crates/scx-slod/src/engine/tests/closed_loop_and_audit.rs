// SPDX-License-Identifier: GPL-2.0-only
//! The engine's adaptive budgets (docs/tuning.md) and audit trail (docs/security.md), on
//! the same host in memory and recording backend as the other engine tests.

use super::*;

/// The example's adaptive target: worker.service, 1ms per 20ms, objective
/// 2ms (setpoint 1.5ms; the budget rises past 1.8ms), clamps 500us..5ms,
/// max_step 1.25, cooldown 1, 200 jobs an interval, every 30 s.
const WORKER: &str = "worker.service";

/// Adds `n` jobs of `us` µs response time to `unit`'s counters, as the
/// scheduler counts them: past the deadline a miss, else its slack.
fn add_jobs(e: &Engine, b: &mut Recording, unit: &str, n: u64, us: u64) {
    let slot = e.targets.slots.get(unit).expect("a slot");
    let deadline_us = e.generation.config.targets.iter().find(|t| t.key == unit).and_then(|t| t.deadline).unwrap().as_us();
    let buckets = scx_slo_bpf::intf::slo_consts_SLO_HIST_BUCKETS as usize;
    let s = b.stats.entry(slot).or_insert_with(|| TargetStats { slack_hist: vec![0; buckets], rq_delay_hist: vec![0; buckets], ..Default::default() });
    s.counters.set(Counter::Jobs, s.get(Counter::Jobs) + n);
    if us > deadline_us {
        s.counters.set(Counter::DeadlineMisses, s.get(Counter::DeadlineMisses) + n);
    } else {
        let slack_ns = (deadline_us - us) * 1000;
        let bucket = (0..buckets).find(|i| scx_slo_model::histogram::upper_ns(*i) > slack_ns).unwrap();
        s.slack_hist[bucket] += n;
    }
}

/// Runs the adaptive pass at `t` seconds after `start`.
fn adapt_at(e: &mut Engine, b: &mut Recording, start: std::time::Instant, t: u64) {
    e.adapt(b, start + Duration::from_secs(t));
}

fn worker_runtime(b: &Recording, e: &Engine) -> u64 {
    let slot = e.targets.slots.get(WORKER).unwrap();
    b.applied.iter().find(|t| t.index == slot).map(|t| t.cfg.runtime_ns).expect("worker in the maps")
}

#[test]
fn an_adaptive_target_over_its_objective_gets_more_budget_through_admission_and_keeps_it() {
    let host = MemoryHost::new(EXAMPLE);
    let (mut e, _h) = engine(&host);
    let mut b = Recording::default();
    running(&mut e, &mut b);
    let start = std::time::Instant::now();
    assert_eq!(worker_runtime(&b, &e), 1_000_000);
    // The first read starts the interval; nothing is judged yet.
    add_jobs(&e, &mut b, WORKER, 1000, 100);
    adapt_at(&mut e, &mut b, start, 0);
    // Before the interval ends: not due.
    add_jobs(&e, &mut b, WORKER, 990, 100);
    add_jobs(&e, &mut b, WORKER, 30, 8000);
    adapt_at(&mut e, &mut b, start, 10);
    assert_eq!(worker_runtime(&b, &e), 1_000_000);
    // The interval's p99 (about 8ms, from this interval's jobs only) is far
    // over the 2ms objective: one step of max_step, 1ms -> 1.25ms.
    let generation = e.generation.number;
    adapt_at(&mut e, &mut b, start, 31);
    assert_eq!(worker_runtime(&b, &e), 1_250_000, "the maps hold the new budget");
    assert_eq!(e.generation.number, generation + 1);
    let state = saved(&e, &host);
    assert_eq!(state.budget_overrides.get(WORKER).map(|o| (o.runtime_us, o.period_us)), Some((1250, 20_000)));
    let change = state.adaptive_changes.get(WORKER).expect("the change is persisted");
    assert_eq!((change.outcome.as_str(), change.from_us, change.to_us, change.samples), ("applied", 1000, 1250, 1020));
    assert!(change.p99_us.unwrap() > 2000 && change.why.contains("response p99") && change.why.contains("objective 2000us"), "{change:?}");

    let s = status(&mut e, Some(&mut b));
    let a = &s.adaptive[WORKER];
    assert_eq!((a.runtime_us, a.config_runtime_us, a.objective_us, a.changes, a.refused), (1250, 1000, 2000, 1, 0));
    let x: Explain = parse("Explain", &ok(call(&mut e, Some(&mut b), Request::Explain { unit: WORKER.into() }))).unwrap();
    assert!(x.source.contains("adaptive controller's budget (1250us per 20000us"), "{}", x.source);
    assert_eq!(x.adaptation.as_ref().map(|a| a.runtime_us), Some(1250));

    // The next interval is the cooldown, whatever it measures.
    add_jobs(&e, &mut b, WORKER, 30, 8000);
    add_jobs(&e, &mut b, WORKER, 970, 100);
    adapt_at(&mut e, &mut b, start, 62);
    assert_eq!(worker_runtime(&b, &e), 1_250_000);
    assert_eq!(e.adaptation.report(WORKER, None).unwrap().last.unwrap().outcome, "cooldown");
    // Then an interval with too few jobs holds.
    add_jobs(&e, &mut b, WORKER, 50, 8000);
    adapt_at(&mut e, &mut b, start, 93);
    assert_eq!(e.adaptation.report(WORKER, None).unwrap().last.unwrap().outcome, "not-enough-data");
    assert_eq!(worker_runtime(&b, &e), 1_250_000);

    // A restart starts from the learned budget, and still says why.
    let (mut e2, _h2) = engine_with(&host, saved(&e, &host));
    let mut b2 = Recording::default();
    running(&mut e2, &mut b2);
    assert_eq!(worker_runtime(&b2, &e2), 1_250_000);
    let a = e2.adaptation.report(WORKER, None).unwrap();
    assert_eq!((a.runtime_us, a.last_change.map(|c| c.to_us)), (1250, Some(1250)));
}

#[test]
fn a_step_admission_refuses_is_counted_and_not_forced() {
    // 0.35 CPUs admitted: api.service's 0.3 and worker's 0.05 fill it.
    let mut config: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
    config["admission"] = serde_json::json!({ "cpu_capacity": 1, "overcommit": 0.35 });
    let host = MemoryHost::new(&config.to_string());
    let (mut e, _h) = engine(&host);
    let mut b = Recording::default();
    running(&mut e, &mut b);
    let start = std::time::Instant::now();
    let generation = e.generation.number;
    adapt_at(&mut e, &mut b, start, 0);
    add_jobs(&e, &mut b, WORKER, 300, 8000);
    adapt_at(&mut e, &mut b, start, 31);
    assert_eq!(worker_runtime(&b, &e), 1_000_000, "the budget stays");
    assert_eq!(e.generation.number, generation);
    let a = e.adaptation.report(WORKER, None).unwrap();
    let last = a.last.unwrap();
    assert_eq!((a.refused, a.changes, last.outcome.as_str()), (1, 0, "refused"));
    assert!(last.why.contains("admission") || last.why.contains("CPUs"), "{}", last.why);
    assert!(host.saved.lock().unwrap().iter().all(|s| s.budget_overrides.is_empty()), "nothing learned is saved");
}

#[test]
fn dry_run_logs_the_step_and_changes_nothing() {
    let mut config: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
    config["targets"][WORKER]["adaptive"]["dry_run"] = serde_json::json!(true);
    let host = MemoryHost::new(&config.to_string());
    let (mut e, _h) = engine(&host);
    let mut b = Recording::default();
    running(&mut e, &mut b);
    let start = std::time::Instant::now();
    adapt_at(&mut e, &mut b, start, 0);
    add_jobs(&e, &mut b, WORKER, 300, 8000);
    adapt_at(&mut e, &mut b, start, 31);
    assert_eq!(worker_runtime(&b, &e), 1_000_000);
    let last = e.adaptation.report(WORKER, None).unwrap().last.unwrap();
    assert_eq!((last.outcome.as_str(), last.to_us), ("dry-run", 1250));
    assert!(e.generation.overrides.is_empty());
}

#[test]
fn an_operators_budget_is_the_controllers_new_start() {
    let host = MemoryHost::new(EXAMPLE);
    let (mut e, _h) = engine(&host);
    let mut b = Recording::default();
    running(&mut e, &mut b);
    ok(call(&mut e, Some(&mut b), set_budget(WORKER, 3000, 20_000, "")));
    assert_eq!(e.adaptation.report(WORKER, None).unwrap().runtime_us, 3000);
    // Outside the controller's clamps (500us..5ms): refused like any invalid budget.
    match err(call(&mut e, Some(&mut b), set_budget(WORKER, 6000, 20_000, ""))) {
        ControlError::InvalidConfig(m) | ControlError::InvalidArgument(m) => assert!(m.contains("max_runtime"), "{m}"),
        other => panic!("{other:?}"),
    }
    ok(call(&mut e, Some(&mut b), Request::ClearBudget { unit: WORKER.into() }));
    assert_eq!(e.adaptation.report(WORKER, None).unwrap().runtime_us, 1000);
}

/// The example with api.service adaptive too (3ms per 10ms, deadline 5ms,
/// objective 4ms) and `admission` as given.
fn two_adaptive(admission: serde_json::Value) -> String {
    let mut config: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
    config["admission"] = admission;
    config["targets"]["api.service"]["adaptive"] = serde_json::json!({ "objective": "4ms", "min_samples": 200 });
    config.to_string()
}

/// A running engine with both targets adaptive under `admission`, after
/// one interval in which both are over their objectives (api.service's jobs
/// miss the 5ms deadline); returns the generation before that interval.
fn both_over_their_objectives(admission: serde_json::Value) -> (MemoryHost, Engine, Recording, u64) {
    let host = MemoryHost::new(&two_adaptive(admission));
    let (mut e, _h) = engine(&host);
    let mut b = Recording::default();
    running(&mut e, &mut b);
    let start = std::time::Instant::now();
    adapt_at(&mut e, &mut b, start, 0);
    add_jobs(&e, &mut b, "api.service", 300, 6000);
    add_jobs(&e, &mut b, WORKER, 300, 8000);
    let generation = e.generation.number;
    adapt_at(&mut e, &mut b, start, 31);
    (host, e, b, generation)
}

#[test]
fn one_pass_applies_every_targets_change_as_one_generation() {
    let (host, e, _b, generation) = both_over_their_objectives(serde_json::json!({ "cpu_capacity": 2, "overcommit": 0.95 }));
    assert_eq!(e.generation.number, generation + 1, "one generation for both changes");
    let api = e.adaptation.report("api.service", None).unwrap();
    let worker = e.adaptation.report(WORKER, None).unwrap();
    assert_eq!((api.changes, worker.changes), (1, 1));
    assert!(api.runtime_us > 3000 && worker.runtime_us == 1250, "{api:?} {worker:?}");
    assert_eq!(saved(&e, &host).adaptive_changes.len(), 2);
}

#[test]
fn the_host_wide_limit_holds_back_steps_over_it_and_the_next_pass_serves_the_others_first() {
    let host = MemoryHost::new(&two_adaptive(serde_json::json!({ "cpu_capacity": 2, "overcommit": 0.95 })));
    let (mut e, _h) = engine(&host);
    e.cadence.auto_changes = crate::change_limit::ChangeLimiter::new(1, Duration::from_secs(60));
    let mut b = Recording::default();
    running(&mut e, &mut b);
    let start = std::time::Instant::now();
    adapt_at(&mut e, &mut b, start, 0);
    add_jobs(&e, &mut b, "api.service", 300, 6000);
    add_jobs(&e, &mut b, WORKER, 300, 8000);
    let generation = e.generation.number;
    adapt_at(&mut e, &mut b, start, 31);
    let api = e.adaptation.report("api.service", None).unwrap();
    let worker = e.adaptation.report(WORKER, None).unwrap();
    assert_eq!((api.changes, worker.changes, worker.refused), (1, 0, 0), "{api:?} {worker:?}");
    let held = worker.last.expect("the held step is recorded");
    assert_eq!(held.outcome, "rate-limited");
    assert!(held.why.contains("limit of 1 automatic changes per 60 s"), "{}", held.why);
    assert_eq!(worker.runtime_us, 1000, "the controller's budget stays where it was");
    assert_eq!(e.generation.number, generation + 1);
    // The next interval, after the window: worker.service's turn comes
    // first (api.service cools down anyway), and it moves.
    add_jobs(&e, &mut b, WORKER, 300, 8000);
    add_jobs(&e, &mut b, "api.service", 300, 6000);
    adapt_at(&mut e, &mut b, start, 62);
    let worker = e.adaptation.report(WORKER, None).unwrap();
    assert_eq!(worker.changes, 1, "{worker:?}");
    assert_eq!(worker_runtime(&b, &e), 1_250_000);
    // Each pass that changed a budget is one correlation: its generation
    // and its `adaptive` record share an id no other pass has.
    let mut entries = Vec::new();
    settle(&e);
    scx_slo_api::audit::verify_with(&e.opts.audit_dir, |x| entries.push(x.clone())).expect("the trail verifies");
    let ids: Vec<&str> = entries.iter().filter(|x| x.kind == "adaptive" || x.kind == "generation").filter_map(|x| x.correlation_id.as_deref()).collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert!(ids[0] == ids[1] && ids[2] == ids[3] && ids[0] != ids[2] && ids[0].starts_with("adaptive-"), "{ids:?}");
    assert_eq!(e.generation.correlation_id.as_deref(), Some(ids[2]));
}

#[test]
fn when_admission_refuses_a_pass_each_change_is_tried_alone() {
    let (_host, e, b, _) = both_over_their_objectives(serde_json::json!({ "cpu_capacity": 1, "overcommit": 0.37 }));
    // 0.37 admitted, 0.35 in use: api.service's raise (+0.075 or more) is
    // refused, worker's (+0.0125) fits on its own.
    let api = e.adaptation.report("api.service", None).unwrap();
    let worker = e.adaptation.report(WORKER, None).unwrap();
    assert_eq!((api.changes, api.refused, worker.changes, worker.refused), (0, 1, 1, 0), "{api:?} {worker:?}");
    assert_eq!(worker_runtime(&b, &e), 1_250_000);
}

#[test]
fn every_mutating_call_is_in_the_audit_trail_with_its_caller_before_and_after() {
    let host = MemoryHost::new(EXAMPLE);
    let (mut e, _h) = engine(&host);
    let dir = e.opts.audit_dir.clone();
    let mut b = Recording::default();
    running(&mut e, &mut b);
    ok(call(&mut e, Some(&mut b), set_budget("api.service", 2000, 10_000, "k1")));
    let _ = call(&mut e, Some(&mut b), set_budget("api.service", 20_000, 10_000, ""));
    let _ = call(&mut e, None, Request::Status);
    ok(call(&mut e, Some(&mut b), Request::Disable { reason: "incident 7".into() }));
    let mut entries = Vec::new();
    settle(&e);
    let v = scx_slo_api::audit::verify_with(&dir, |x| entries.push(x.clone())).expect("the trail verifies");
    let kinds: Vec<(&str, &str)> = entries.iter().map(|x| (x.kind.as_str(), x.action.as_str())).collect();
    assert_eq!(
        kinds,
        [
            ("start", "daemon_started"),
            ("call", "SetBudget"),
            ("generation", "applied"),
            ("call_result", "SetBudget"),
            ("call", "SetBudget"),
            ("call_result", "SetBudget"),
            ("call", "Disable"),
            ("call_result", "Disable"),
        ],
        "reads are not audited"
    );
    let first = &entries[1];
    assert_eq!(first.caller.as_ref().map(|c| (c.uid, c.pid, c.unit.as_deref())), Some((Some(1000), Some(4242), Some("deploy.service"))));
    assert_eq!(first.detail["args"]["runtime_us"], 2000);
    assert_eq!(first.detail["args"]["idempotency_key"], "k1");
    assert_eq!((entries[3].detail["ok"].as_bool(), entries[3].detail["generation_before"].as_u64(), entries[3].detail["generation_after"].as_u64()), (Some(true), Some(1), Some(2)));
    assert_eq!(entries[2].detail["budgets_us"]["api.service"], serde_json::json!([2000, 10000]));
    // The refused call is recorded as refused, with the reason.
    assert_eq!(entries[5].detail["ok"], false);
    assert!(entries[5].detail["reply"].as_str().unwrap().contains("exceeds period"), "{:?}", entries[5].detail);
    // Status shows the head the trail ends with (once it is written).
    settle(&e);
    let s = status(&mut e, None);
    assert_eq!((s.audit.last_seq, s.audit.last_hash.as_str(), s.audit.failures), (v.last_seq, v.last_hash.as_str(), 0));
    // One correlation id per call, on each of its entries and on the
    // generation it made; none on the daemon's start.
    let ids: Vec<Option<&str>> = entries.iter().map(|x| x.correlation_id.as_deref()).collect();
    assert_eq!(ids[0], None);
    assert!(ids[1].is_some_and(|id| id.starts_with("call-")), "{ids:?}");
    assert!(ids[1] == ids[2] && ids[2] == ids[3], "SetBudget's call, generation and result: {ids:?}");
    assert!(ids[4] == ids[5] && ids[6] == ids[7] && ids[4] != ids[1] && ids[6] != ids[4] && ids[4].is_some(), "{ids:?}");
    assert_eq!(s.generation_correlation_id.as_deref(), ids[2], "the generation names the call that made it");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_an_audit_trail_changes_are_refused_but_an_emergency_disable_works() {
    let host = MemoryHost::new(EXAMPLE);
    let probed = host.probed(caps(), PersistentState::default());
    // A directory that cannot exist: under a regular file.
    let opts = EngineOptions { audit_dir: "/proc/version/audit".into(), ..options() };
    let mut e = Engine::with_host(opts, Box::new(host.clone()), probed).expect("the engine starts anyway").engine;
    let mut b = Recording::default();
    running(&mut e, &mut b);
    let generation = e.generation.number;
    match err(call(&mut e, Some(&mut b), set_budget("api.service", 2000, 10_000, ""))) {
        ControlError::Failed(m) => assert!(m.contains("SetBudget refused: the audit trail cannot record it") && m.contains("nothing was done"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(e.generation.number, generation, "nothing changed");
    assert!(status(&mut e, None).audit.error.is_some());
    let reply = ok(call(&mut e, Some(&mut b), Request::Disable { reason: "incident 8".into() }));
    assert!(reply.contains("disabled in") && reply.contains("NOT recorded in the audit trail"), "{reply}");
    assert!(!b.attached);
}

#[test]
fn a_frozen_state_disk_holds_neither_disable_nor_status_and_refuses_a_normal_mutation() {
    let host = MemoryHost::new(EXAMPLE);
    let (mut e, _h) = engine(&host);
    let dir = e.opts.audit_dir.clone();
    let mut b = Recording::default();
    running(&mut e, &mut b);
    // The disk takes no writes for 600 ms, as a frozen file system.
    let freeze = std::time::Duration::from_millis(600);
    e.disk.freeze(freeze);
    let start = std::time::Instant::now();
    let reply = ok(call(&mut e, Some(&mut b), Request::Disable { reason: "incident 9".into() }));
    let detach_after = b.detached_at.expect("detached").duration_since(start);
    let replied_after = start.elapsed();
    eprintln!("detached {detach_after:?} after the call, replied after {replied_after:?} (disk frozen {freeze:?})");
    assert!(detach_after < std::time::Duration::from_millis(300), "the detach waited {detach_after:?} for the disk");
    assert!(replied_after < std::time::Duration::from_millis(400), "the reply waited {replied_after:?} for the disk");
    assert!(reply.contains("NOT yet saved") && reply.contains("NOT recorded in the audit trail") && reply.contains("not yet written"), "{reply}");
    assert!(!reply.contains("stays off across restarts"), "the reply claims a save that has not happened: {reply}");
    let t = std::time::Instant::now();
    let _ = status(&mut e, None);
    assert!(t.elapsed() < std::time::Duration::from_millis(300), "Status waited {:?} for the disk", t.elapsed());
    assert!(e.disk.flush(std::time::Duration::from_secs(5)), "the writes land once the disk thaws");
    assert!(saved(&e, &host).operator_disabled.is_some(), "the Disable was saved after the freeze");

    // A normal mutation waits for its entry only AUDIT_WAIT, then is
    // refused with nothing done; its result entry follows the call's.
    let _parked = call(&mut e, Some(&mut b), Request::Enable { mode: "enforce".into() });
    running(&mut e, &mut b);
    settle(&e);
    let generation = e.generation.number;
    e.disk.freeze(crate::disk_writer::AUDIT_WAIT + std::time::Duration::from_millis(500));
    match err(call(&mut e, Some(&mut b), set_budget("api.service", 2000, 10_000, ""))) {
        ControlError::Failed(m) => assert!(m.contains("SetBudget refused") && m.contains("not yet written") && m.contains("nothing was done"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(e.generation.number, generation, "nothing changed");
    assert!(e.disk.flush(std::time::Duration::from_secs(10)));
    let mut entries = Vec::new();
    settle(&e);
    scx_slo_api::audit::verify_with(&dir, |x| entries.push(x.clone())).expect("the trail verifies");
    let disable = entries.iter().find(|x| x.kind == "call" && x.action == "Disable").expect("Disable recorded");
    assert_eq!(disable.detail["acted_without_waiting"], true);
    let set = entries.iter().position(|x| x.kind == "call" && x.action == "SetBudget").expect("the refused call's entry landed");
    assert_eq!(entries[set + 1].kind, "call_result");
    assert_eq!(entries[set + 1].detail["ok"], false, "its result says it was refused");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_reload_reopens_a_trail_moved_aside_and_mutating_calls_work_again() {
    let host = MemoryHost::new(EXAMPLE);
    let probed = host.probed(caps(), PersistentState::default());
    let dir = std::env::temp_dir().join(format!("scx-slod-reopen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // A trail whose newest entry does not verify: the engine starts without one.
    std::fs::write(dir.join("audit-000000000001.jsonl"), "{\"seq\":1}\n").unwrap();
    let opts = EngineOptions { audit_dir: dir.join("."), ..options() };
    let mut e = Engine::with_host(opts, Box::new(host.clone()), probed).expect("the engine starts anyway").engine;
    let mut b = Recording::default();
    running(&mut e, &mut b);
    assert!(matches!(err(call(&mut e, Some(&mut b), set_budget("api.service", 2000, 10_000, ""))), ControlError::Failed(_)));
    // The operator moves the bad trail aside, and reloads.
    std::fs::rename(dir.join("audit-000000000001.jsonl"), dir.join("moved-aside.jsonl")).unwrap();
    let _ = call(&mut e, Some(&mut b), Request::Reload { text: Ok(EXAMPLE.to_string()) });
    assert!(status(&mut e, None).audit.error.is_none());
    ok(call(&mut e, Some(&mut b), set_budget("api.service", 2000, 10_000, "")));
    assert!(scx_slo_api::audit::verify(&dir).unwrap().entries >= 4);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A service's metrics endpoint on loopback serving `rpc_seconds`, whose
/// reply the test sets: `Ok(buckets)` with (le, cumulative count), or
/// `Err(status line)`.
struct ServiceEndpoint {
    url: String,
    reply: std::sync::Arc<std::sync::Mutex<Result<Vec<(&'static str, u64)>, &'static str>>>,
}

impl ServiceEndpoint {
    fn start() -> ServiceEndpoint {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/metrics", listener.local_addr().unwrap());
        let reply = std::sync::Arc::new(std::sync::Mutex::new(Ok(vec![("+Inf", 0)])));
        let serving = std::sync::Arc::clone(&reply);
        std::thread::spawn(move || {
            for mut s in listener.incoming().flatten() {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let text = match &*serving.lock().unwrap() {
                    Ok(buckets) => {
                        let mut body = String::from("# TYPE rpc_seconds histogram\n");
                        for (le, n) in buckets {
                            body += &format!("rpc_seconds_bucket{{method=\"get\",le=\"{le}\"}} {n}\n");
                        }
                        let total = buckets.last().map_or(0, |b| b.1);
                        format!("HTTP/1.0 200 OK\r\n\r\n{body}rpc_seconds_sum 0\nrpc_seconds_count {total}\n")
                    }
                    Err(status) => format!("HTTP/1.0 {status}\r\n\r\n"),
                };
                let _ = s.write_all(text.as_bytes());
            }
        });
        ServiceEndpoint { url, reply }
    }

    /// Serves this reply, and waits until the engine's scraper has read it.
    fn serve(&self, e: &Engine, reply: Result<Vec<(&'static str, u64)>, &'static str>) {
        let want = reply.clone();
        *self.reply.lock().unwrap() = reply;
        let scrape = e.generation.config.targets.iter().find(|t| t.key == WORKER).and_then(|t| t.scrape.clone()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = e.scraper.latest(&scrape).map(|r| r.result.map(|b| b.last().map_or(0.0, |x| x.1) as u64));
            let matched = match (&want, got) {
                (Ok(b), Some(Ok(total))) => b.last().map(|x| x.1) == Some(total),
                (Err(_), Some(Err(_))) => true,
                _ => false,
            };
            if matched {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "the scraper did not read the endpoint");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn with_a_scrape_block_the_controller_steers_on_the_services_own_histogram() {
    let endpoint = ServiceEndpoint::start();
    let mut config: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
    config["targets"][WORKER]["scrape"] = serde_json::json!({ "url": endpoint.url, "histogram": "rpc_seconds" });
    // (The example says sli: response; without it a scrape block makes the
    // service's histogram the SLI.)
    config["targets"][WORKER]["adaptive"].as_object_mut().unwrap().remove("sli");
    let host = MemoryHost::new(&config.to_string());
    let (mut e, _h) = engine(&host);
    let mut b = Recording::default();
    running(&mut e, &mut b);
    let start = std::time::Instant::now();
    assert_eq!(e.generation.config.targets.iter().find(|t| t.key == WORKER).and_then(|t| t.adaptive).map(|a| a.sli), Some(scx_slo_model::AdaptiveSli::Service));
    // The kernel says all is well (fast jobs); the service's histogram says
    // 3% of its requests took 5-10 ms: the service's word counts.
    add_jobs(&e, &mut b, WORKER, 1000, 100);
    endpoint.serve(&e, Ok(vec![("0.001", 1000), ("0.005", 1000), ("0.01", 1000), ("+Inf", 1000)]));
    adapt_at(&mut e, &mut b, start, 0);
    add_jobs(&e, &mut b, WORKER, 1000, 100);
    endpoint.serve(&e, Ok(vec![("0.001", 1970), ("0.005", 1970), ("0.01", 2000), ("+Inf", 2000)]));
    adapt_at(&mut e, &mut b, start, 31);
    assert_eq!(worker_runtime(&b, &e), 1_250_000, "raised on the service's p99");
    let change = saved(&e, &host).adaptive_changes.get(WORKER).cloned().expect("persisted");
    assert_eq!(change.samples, 1000, "the interval's requests, not the kernel's jobs");
    assert!(change.why.contains("service p99") && (5000..=10_000).contains(&change.p99_us.unwrap()), "{change:?}");

    // A failed scrape: no p99, the controller holds and says why.
    endpoint.serve(&e, Err("500 Internal Server Error"));
    adapt_at(&mut e, &mut b, start, 62);
    let last = e.adaptation.report(WORKER, None).unwrap().last.unwrap();
    assert_eq!(last.outcome, "no-data");
    assert!(last.why.contains("scrape failed") && last.why.contains("500"), "{last:?}");
    assert_eq!(worker_runtime(&b, &e), 1_250_000);
    let s = status(&mut e, Some(&mut b));
    let r = &s.scrapes[WORKER];
    assert!(r.ok >= 2 && r.failed >= 1 && r.last_error.as_deref().is_some_and(|x| x.contains("500")), "{r:?}");
    // The service restarted (its counts started over): that interval is
    // not judged either; the one after is.
    endpoint.serve(&e, Ok(vec![("0.001", 5000), ("0.005", 5000), ("0.01", 5000), ("+Inf", 5000)]));
    adapt_at(&mut e, &mut b, start, 93);
    endpoint.serve(&e, Ok(vec![("0.001", 10), ("0.005", 10), ("0.01", 10), ("+Inf", 10)]));
    adapt_at(&mut e, &mut b, start, 124);
    let last = e.adaptation.report(WORKER, None).unwrap().last.unwrap();
    assert!(last.outcome == "no-data" && last.why.contains("restarted"), "{last:?}");
    endpoint.serve(&e, Ok(vec![("0.001", 1010), ("0.005", 1010), ("0.01", 1010), ("+Inf", 1010)]));
    adapt_at(&mut e, &mut b, start, 155);
    let last = e.adaptation.report(WORKER, None).unwrap().last.unwrap();
    assert_ne!(last.outcome, "no-data", "{last:?}");
    assert_eq!(last.samples, 1000);
}

#[test]
fn a_decided_canary_persists_and_a_restart_with_the_same_config_does_not_judge_it_again() {
    let mut config: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
    config["canary"] = serde_json::json!({ "window": "10s" });
    let text = config.to_string();
    let host = MemoryHost::new(&text);
    let sha = scx_slo_model::config_digest(&text);
    let promoted = scx_slo_api::documents::CanaryReport {
        state: scx_slo_api::documents::CanaryState::Promoted,
        windows: 3,
        streak: 3,
        window_s: 10.0,
        config_sha256: sha.clone(),
        verdicts: ["better", "same", "better"].map(|v| serde_json::from_value(serde_json::json!(v)).unwrap()).into(),
        outcome: Some("promoted: 3 windows in a row better or same".into()),
        ..Default::default()
    };
    // The same config: promoted, no windows, enforce not held back.
    let (mut e, _h) = engine_with(&host, PersistentState { canary: Some(promoted.clone()), ..Default::default() });
    let mut b = Recording::default();
    running(&mut e, &mut b);
    assert!(!e.canary_tick(&b, scx_slo_api::ActiveMode::Enforce, false), "no window ends the session");
    let c = status(&mut e, Some(&mut b)).canary.expect("the canary's report");
    assert_eq!((c.state.as_str(), c.windows, c.arm.map(|a| a.as_str())), ("promoted", 3, None));
    assert!(c.outcome.as_deref().is_some_and(|o| o.ends_with("(decided before scx-slod restarted)")), "{c:?}");
    assert!(!e.supervisor.in_baseline());
    // Saved again as it was decided (not with the restart's words).
    e.save_persistent();
    assert_eq!(saved(&e, &host).canary, Some(promoted.clone()));

    // Another config (another digest): judged afresh, and the old decision
    // is not kept.
    let other = PersistentState { canary: Some(scx_slo_api::documents::CanaryReport { config_sha256: "0".repeat(64), ..promoted }), ..Default::default() };
    let (mut e, _h) = engine_with(&host, other);
    let mut b = Recording::default();
    running(&mut e, &mut b);
    e.canary_tick(&b, scx_slo_api::ActiveMode::Enforce, false);
    let c = status(&mut e, Some(&mut b)).canary.expect("the canary's report");
    assert_eq!((c.state.as_str(), c.arm.map(|a| a.as_str())), ("running", Some("candidate")));
    e.save_persistent();
    assert_eq!(saved(&e, &host).canary, None);
}
