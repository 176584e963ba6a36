// SPDX-License-Identifier: GPL-2.0-only
//! The release gate (bench_gate.rs) on synthetic reports drawn from a
//! seeded generator, and on the stored baseline of the quick bench.

use serde_json::{json, Value};

use super::*;
use scx_slo_model::stats::Rng;

/// `n` latencies in ns: log-normal around `median_us` (p99 ≈ 4× it).
fn draw(rng: &mut Rng, n: usize, median_us: f64) -> Vec<u64> {
    (0..n).map(|_| (median_us * 1e3 * (0.6 * rng.normal()).exp()) as u64).collect()
}

/// A result as bench::summarize writes it: `rounds` rounds of 400 requests,
/// queue and response around the given medians.
fn result(rng: &mut Rng, scheduler: &str, rounds: usize, queue_us: f64, response_us: f64) -> Value {
    let queue: Vec<Vec<u64>> = (0..rounds).map(|_| draw(rng, 400, queue_us)).collect();
    let response: Vec<Vec<u64>> = (0..rounds).map(|_| draw(rng, 400, response_us)).collect();
    json!({
        "scenario": "oversub-2x", "scheduler": scheduler, "rounds": rounds,
        "queue_ns_per_round": queue, "response_ns_per_round": response,
        "batch_work_ratio_per_round": vec![1.0; rounds],
        "attached_cells": (scheduler != "eevdf").then_some(rounds),
        "samples_dropped": 0,
    })
}

fn report(results: Vec<Value>) -> Value {
    json!({ "scenario": "bench-quick", "harness": { "qemu": "10.0.2", "tcg_thread": "multi" },
            "facts": { "kernel": "6.17", "rounds": 1, "seconds_per_cell": 4, "results": results } })
}

/// A quick bench's report: EEVDF and scx_slo-all, one round.
fn quick(seed: u64, slo_queue_us: f64) -> Value {
    let mut rng = Rng::new(seed);
    report(vec![result(&mut rng, "eevdf", 1, 150.0, 700.0), result(&mut rng, "scx_slo-all", 1, slo_queue_us, 800.0)])
}

fn run(v: &Value) -> Run {
    Run::from_report(v).expect("a valid report")
}

fn verdict(o: &Outcome, metric: Metric, setup: &str) -> Verdict {
    o.rows.iter().find(|r| r.metric == metric && r.setup == setup).map(|r| r.verdict).expect("the row")
}

#[test]
fn identical_runs_pass() {
    let r = run(&quick(1, 200.0));
    let o = gate(&r, &r, &Policy::default()).expect("gate");
    assert!(o.failed().is_empty());
    for row in &o.rows {
        // batch work has one value per round: too few in a quick run.
        let expected = if row.metric == Metric::BatchWork { Verdict::Inconclusive } else { Verdict::Pass };
        assert_eq!(row.verdict, expected, "{row:?}");
    }
    let text = table(&o);
    assert!(text.contains("| queue p99 | oversub-2x / scx_slo-all |") && text.contains("1.00×"), "{text}");
    assert!(text.trim_end().ends_with("0 regressed)") && text.contains("gate: PASS"), "{text}");
}

#[test]
fn a_clearly_slower_candidate_regresses_and_fails_the_gate() {
    let (base, cand) = (run(&quick(1, 200.0)), run(&quick(2, 2000.0)));
    let o = gate(&base, &cand, &Policy::default()).expect("gate");
    assert_eq!(verdict(&o, Metric::QueueP99, "oversub-2x / scx_slo-all"), Verdict::Regressed);
    let failed: Vec<_> = o.failed().iter().map(|r| (r.metric, r.setup.clone())).collect();
    assert_eq!(failed, [(Metric::QueueP99, "oversub-2x / scx_slo-all".to_string())]);
    assert!(table(&o).contains("gate: FAIL (regressed: queue p99 on oversub-2x / scx_slo-all)"), "{}", table(&o));
    // The other way round it improved, and nothing fails.
    let back = gate(&cand, &base, &Policy::default()).expect("gate");
    assert_eq!(verdict(&back, Metric::QueueP99, "oversub-2x / scx_slo-all"), Verdict::Improved);
    assert!(back.failed().is_empty());
}

#[test]
fn a_shift_inside_the_tolerance_passes() {
    // 1.5× slower: Mann-Whitney sees it, the p99 interval stays under 3×.
    let o = gate(&run(&quick(1, 200.0)), &run(&quick(2, 300.0)), &Policy::default()).expect("gate");
    let row = o.rows.iter().find(|r| r.metric == Metric::QueueP99 && r.setup.ends_with("scx_slo-all")).expect("row");
    assert!(row.p.expect("p") < 0.01, "{row:?}");
    assert_eq!(row.verdict, Verdict::Pass, "{row:?}");
    // A strict policy (hardware, not TCG) calls the same shift a regression.
    let strict = Policy { latency_max_ratio: 1.1, ..Policy::default() };
    let o = gate(&run(&quick(1, 200.0)), &run(&quick(2, 300.0)), &strict).expect("gate");
    assert_eq!(verdict(&o, Metric::QueueP99, "oversub-2x / scx_slo-all"), Verdict::Regressed);
}

#[test]
fn a_tail_past_the_tolerance_that_mann_whitney_does_not_back_is_inconclusive() {
    // The same body, but 4% of the candidate's wakeups 20× slower: the p99
    // interval lies far above 3×, the whole distribution barely moved.
    let base = quick(1, 200.0);
    let mut cand = base.clone();
    let mut queue: Vec<u64> = serde_json::from_value(base["facts"]["results"][1]["queue_ns_per_round"][0].clone()).expect("samples");
    queue.iter_mut().step_by(25).for_each(|x| *x *= 20);
    cand["facts"]["results"][1]["queue_ns_per_round"] = json!([queue]);
    let o = gate(&run(&base), &run(&cand), &Policy::default()).expect("gate");
    let row = o.rows.iter().find(|r| r.metric == Metric::QueueP99 && r.setup.ends_with("scx_slo-all")).expect("row");
    assert!(row.ci.expect("ci").0 > 3.0 && row.p.expect("p") > 0.01, "{row:?}");
    assert_eq!(row.verdict, Verdict::Inconclusive, "{row:?}");
    assert!(row.why.contains("the significance test does not back it"), "{row:?}");
    assert!(o.failed().is_empty());
}

#[test]
fn rounds_that_disagree_make_a_latency_verdict_inconclusive() {
    // Three rounds; the candidate's second round is 10× slower than its
    // others (TCG's bad cells): even a pooled regression is not claimed.
    let mut rng = Rng::new(3);
    let base = report(vec![result(&mut rng, "eevdf", 3, 150.0, 700.0), result(&mut rng, "scx_slo-all", 3, 200.0, 800.0)]);
    let mut cand = base.clone();
    let slow: Vec<Vec<u64>> = [200.0, 8000.0, 200.0].iter().map(|m| draw(&mut rng, 400, *m)).collect();
    cand["facts"]["results"][1]["queue_ns_per_round"] = json!(slow);
    let o = gate(&run(&base), &run(&cand), &Policy::default()).expect("gate");
    let row = o.rows.iter().find(|r| r.metric == Metric::QueueP99 && r.setup.ends_with("scx_slo-all")).expect("row");
    assert_eq!(row.verdict, Verdict::Inconclusive, "{row:?}");
    assert!(row.why.contains("rounds of one run differ") && row.why.contains("over the 3.00× bound"), "{row:?}");
    assert!(row.spread.starts_with("1.") && !row.spread.contains("1 round"), "{row:?}");
    assert!(o.failed().is_empty());
    // With one round the spread is not known, and the table says so.
    let q = gate(&run(&quick(1, 200.0)), &run(&quick(1, 200.0)), &Policy::default()).expect("gate");
    assert_eq!(q.rows.iter().find(|r| r.metric == Metric::QueueP99).expect("row").spread, "– (1 round) / – (1 round)");
}

#[test]
fn the_same_distribution_with_other_noise_never_regresses() {
    // The false-positive guard: 30 pairs of runs of the same code (same
    // distributions, independent draws) under the default policy.
    for seed in 0..30 {
        let o = gate(&run(&quick(100 + seed, 200.0)), &run(&quick(200 + seed, 200.0)), &Policy::default()).expect("gate");
        assert!(o.failed().is_empty(), "seed {seed}:\n{}", table(&o));
        assert!(o.rows.iter().all(|r| r.verdict != Verdict::Regressed), "seed {seed}:\n{}", table(&o));
    }
}

#[test]
fn the_bootstrap_is_seeded_so_a_verdict_repeats() {
    let (base, cand) = (run(&quick(1, 200.0)), run(&quick(2, 450.0)));
    let first = table(&gate(&base, &cand, &Policy::default()).expect("gate"));
    assert_eq!(first, table(&gate(&base, &cand, &Policy::default()).expect("gate")));
    // Another seed draws other resamples: other bounds, the same verdicts.
    let other = gate(&base, &cand, &Policy { seed: 99, ..Policy::default() }).expect("gate");
    let again = gate(&base, &cand, &Policy::default()).expect("gate");
    let ci = |o: &Outcome| o.rows.iter().find(|r| r.metric == Metric::QueueP99 && r.setup.ends_with("scx_slo-all")).and_then(|r| r.ci);
    assert_ne!(ci(&other), ci(&again));
    assert_eq!(other.rows.iter().map(|r| r.verdict).collect::<Vec<_>>(), again.rows.iter().map(|r| r.verdict).collect::<Vec<_>>());
}

#[test]
fn attachment_and_lost_samples_are_hard_gates() {
    let base = quick(1, 200.0);
    let mut cand = base.clone();
    cand["facts"]["results"][1]["attached_cells"] = json!(0);
    cand["facts"]["results"][1]["samples_dropped"] = json!(12);
    let o = gate(&run(&base), &run(&cand), &Policy::default()).expect("gate");
    let failed: Vec<Metric> = o.failed().iter().map(|r| r.metric).collect();
    assert_eq!(failed, [Metric::Attached, Metric::SamplesDropped]);
    assert!(table(&o).contains("| attached | oversub-2x / scx_slo-all | 1/1 | 0/1 |"), "{}", table(&o));
    // EEVDF has nothing to attach: no row.
    assert!(!o.rows.iter().any(|r| r.metric == Metric::Attached && r.setup.ends_with("eevdf")));
}

#[test]
fn more_deadline_misses_regress_and_eevdf_is_shown_but_not_gated() {
    let base = quick(1, 200.0);
    let mut cand = base.clone();
    let mut rng = Rng::new(5);
    // 10% of the responses at 8 ms, over the 5 ms deadline, on both setups.
    for i in 0..2 {
        let v: Vec<u64> = (0..400).map(|k| if k % 10 == 0 { 8_000_000 } else { draw(&mut rng, 1, 800.0)[0] }).collect();
        cand["facts"]["results"][i]["response_ns_per_round"] = json!([v]);
    }
    let o = gate(&run(&base), &run(&cand), &Policy::default()).expect("gate");
    assert_eq!(verdict(&o, Metric::Misses, "oversub-2x / scx_slo-all"), Verdict::Regressed);
    assert_eq!(verdict(&o, Metric::Misses, "oversub-2x / eevdf"), Verdict::Regressed);
    let failed: Vec<String> = o.failed().iter().map(|r| r.setup.clone()).collect();
    assert!(failed.iter().all(|s| s.ends_with("scx_slo-all")), "{failed:?}");
    assert!(table(&o).contains("regressed (not gated)"), "{}", table(&o));
}

#[test]
fn too_few_samples_are_inconclusive() {
    let mut small = quick(1, 200.0);
    let mut rng = Rng::new(8);
    small["facts"]["results"][1]["queue_ns_per_round"] = json!([draw(&mut rng, 20, 200.0)]);
    let o = gate(&run(&small), &run(&small), &Policy::default()).expect("gate");
    let row = o.rows.iter().find(|r| r.metric == Metric::QueueP99 && r.setup.ends_with("scx_slo-all")).expect("row");
    assert_eq!(row.verdict, Verdict::Inconclusive);
    assert!(row.why.contains("20 and 20 samples, under the 100 needed"), "{row:?}");
}

fn error_of(v: &Value) -> String {
    format!("{:#}", Run::from_report(v).expect_err("invalid"))
}

#[test]
fn malformed_reports_are_refused_by_name() {
    let good = quick(1, 200.0);
    let mut v = good.clone();
    v["scenario"] = json!("enforce");
    assert!(error_of(&v).contains("scenario \"enforce\" is not a bench"), "{}", error_of(&v));
    let mut v = good.clone();
    v["facts"]["results"] = json!([]);
    assert!(error_of(&v).contains("facts.results: empty"), "{}", error_of(&v));
    let mut v = good.clone();
    v["facts"]["results"][1].as_object_mut().expect("object").remove("queue_ns_per_round");
    let e = error_of(&v);
    assert!(e.contains("facts.results[1]") && e.contains("oversub-2x / scx_slo-all: no queue_ns_per_round") && e.contains("bench-rebuild"), "{e}");
    let mut v = good.clone();
    v["facts"]["results"][0]["response_ns_per_round"] = json!([[]]);
    assert!(error_of(&v).contains("oversub-2x / eevdf: response_ns_per_round is empty"), "{}", error_of(&v));
    let mut v = good.clone();
    v["facts"]["results"][0]["queue_ns_per_round"] = json!([[1, -3]]);
    assert!(error_of(&v).contains("queue_ns_per_round[0] holds a value that is not a count of ns"), "{}", error_of(&v));
    let mut v = good.clone();
    v["facts"]["results"][0]["queue_ns_per_round"] = json!([[1], [2]]);
    assert!(error_of(&v).contains("queue_ns_per_round holds 2 rounds, the setup 1"), "{}", error_of(&v));
    let mut v = good;
    v["facts"]["results"][0]["rounds"] = json!(101);
    assert!(error_of(&v).contains("101 rounds, outside 1..=100"), "{}", error_of(&v));
}

#[test]
fn reports_of_other_benches_or_setups_are_refused() {
    let base = run(&quick(1, 200.0));
    let mut full = quick(1, 200.0);
    full["scenario"] = json!("bench");
    let e = format!("{:#}", gate(&base, &run(&full), &Policy::default()).expect_err("different bench"));
    assert!(e.contains("the baseline is a bench-quick report and the candidate a bench report"), "{e}");
    let mut other = quick(1, 200.0);
    other["facts"]["results"][1]["scheduler"] = json!("scx_slo-partial");
    let e = format!("{:#}", gate(&base, &run(&other), &Policy::default()).expect_err("different setups"));
    assert!(e.contains("only in the baseline: [oversub-2x / scx_slo-all]; only in the candidate: [oversub-2x / scx_slo-partial]"), "{e}");
}

#[test]
fn files_are_read_within_bounds_and_named_in_errors() {
    let dir = std::env::temp_dir().join(format!("scx-slo-gate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let missing = dir.join("missing.json");
    let e = format!("{:#}", Run::load(&missing, "baseline").expect_err("missing"));
    assert!(e.starts_with("baseline ") && e.contains("missing.json: cannot open"), "{e}");
    let junk = dir.join("junk.json");
    std::fs::write(&junk, "{ not json").expect("write");
    let e = format!("{:#}", Run::load(&junk, "candidate").expect_err("junk"));
    assert!(e.contains("candidate") && e.contains("junk.json: not JSON"), "{e}");
    std::fs::write(&junk, "x".repeat(2000)).expect("write");
    let e = format!("{:#}", read_bounded(&junk, 1000, "policy").expect_err("too large"));
    assert!(e.contains("larger than 1000 bytes"), "{e}");
    let policy = dir.join("policy.json");
    std::fs::write(&policy, r#"{ "alpha": 0.001, "latency_max_ratio": 2 }"#).expect("write");
    let p = Policy::load(&policy).expect("policy");
    assert_eq!((p.alpha, p.latency_max_ratio, p.resamples), (0.001, 2.0, 2000));
    std::fs::write(&policy, r#"{ "alfa": 0.001 }"#).expect("write");
    assert!(format!("{:#}", Policy::load(&policy).expect_err("typo")).contains("unknown field `alfa`"));
    std::fs::write(&policy, r#"{ "alpha": 0.7 }"#).expect("write");
    assert!(format!("{:#}", Policy::load(&policy).expect_err("range")).contains("field alpha: 0.7 is outside (0, 0.5)"));
    std::fs::write(&policy, r#"{ "gated_metrics": ["queue p50"] }"#).expect("write");
    assert!(format!("{:#}", Policy::load(&policy).expect_err("metric")).contains("unknown metric \"queue p50\""));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// The quick bench's stored baseline (a real run, checks/vm/baselines)
/// is a report the gate reads, and passes against itself.
#[test]
fn the_stored_quick_baseline_passes_against_itself() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../checks/vm/baselines/bench-quick.json");
    let r = Run::load(&path, "baseline").expect("the stored baseline");
    let o = gate(&r, &r, &Policy::default()).expect("gate");
    assert!(o.failed().is_empty(), "{}", table(&o));
    let setups: BTreeSet<String> = o.rows.iter().map(|r| r.setup.clone()).collect();
    let expected = ["eevdf", "scx_slo-partial", "scx_slo-all", "scx_slo-1000"].map(|s| format!("oversub-2x / {s}"));
    assert_eq!(setups, expected.into_iter().collect(), "the setups CI's quick bench runs");
}
