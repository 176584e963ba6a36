// SPDX-License-Identifier: GPL-2.0-only
//! The bench's selection of schedulers and scenarios (bench.rs), its
//! target lines (bench_report.rs), and the per-round samples its summary
//! keeps for the release gate (bench_gate.rs).

use super::*;
use serde_json::json;

#[test]
fn an_empty_selection_runs_everything_and_quick_runs_oversub_2x() {
    let all = Selection::parse("", "", false).expect("empty");
    assert!(all.is_everything());
    assert_eq!(scenarios(false, &all).len(), all_scenarios().len());
    assert_eq!(scenarios(true, &all).iter().map(|s| s.name).collect::<Vec<_>>(), ["oversub-2x"]);
    assert!(SCHEDULERS.iter().all(|s| all.scheduler(s)));
}

#[test]
fn a_selection_keeps_eevdf_and_only_what_it_names() {
    let sel = Selection::parse("scx_slo-all, scx_flash", "oversub-2x,fork-exec", false).expect("valid");
    assert!(!sel.is_everything());
    let picked: Vec<&str> = SCHEDULERS.iter().copied().filter(|s| sel.scheduler(s)).collect();
    assert_eq!(picked, ["eevdf", "scx_slo-all", "scx_flash"]);
    assert_eq!(scenarios(false, &sel).iter().map(|s| s.name).collect::<Vec<_>>(), ["oversub-2x", "fork-exec"]);
    // quick stays within its one scenario, and says so when nothing is left.
    assert_eq!(scenarios(true, &Selection::parse("", "oversub-2x,fork-exec", true).expect("valid")).len(), 1);
    let e = Selection::parse("", "fork-exec", true).expect_err("quick has no fork-exec");
    assert!(format!("{e:#}").contains("--quick runs only oversub-2x"), "{e:#}");
}

#[test]
fn unknown_names_are_refused_by_name() {
    let e = Selection::parse("scx_rusty", "", false).expect_err("unknown scheduler");
    assert!(format!("{e:#}").contains("\"scx_rusty\"") && format!("{e:#}").contains("scx_flash"), "{e:#}");
    let e = Selection::parse("", "oversub-3x", false).expect_err("unknown scenario");
    assert!(format!("{e:#}").contains("\"oversub-3x\"") && format!("{e:#}").contains("oversub-2x"), "{e:#}");
}

/// Every callback of the BPF cost target (no callback dearer than the
/// cheapest peer's) gets its line, select_cpu
/// included, against the cheapest peer that ran.
#[test]
fn each_callback_is_compared_with_the_cheapest_peer() {
    let cost = |ns: [f64; 5]| {
        let names = ["select_cpu", "enqueue", "dispatch", "running", "stopping"];
        serde_json::Value::Object(names.iter().zip(ns).map(|(n, v)| (n.to_string(), serde_json::json!({ "ns_per_call": v }))).collect())
    };
    let report = serde_json::json!({ "facts": { "results": [
        { "scenario": "oversub-2x", "scheduler": "scx_slo-all", "bpf": cost([29_000.0, 12_000.0, 44_000.0, 4_000.0, 5_000.0]) },
        { "scenario": "oversub-2x", "scheduler": "scx_flash", "bpf": cost([12_000.0, 15_000.0, 63_000.0, 3_000.0, 6_000.0]) },
        { "scenario": "oversub-2x", "scheduler": "scx_bpfland", "bpf": cost([20_000.0, 30_000.0, 48_000.0, 4_200.0, 8_000.0]) },
    ] } });
    let lines: Vec<String> = crate::bench_report::targets(&report).into_iter().filter(|l| l.starts_with("BPF ")).collect();
    assert_eq!(
        lines,
        [
            "BPF select_cpu: scx_slo 29000 ns/call vs best peer 12000 (target ≤ peers: missed)",
            "BPF enqueue: scx_slo 12000 ns/call vs best peer 15000 (target ≤ peers: met)",
            "BPF dispatch: scx_slo 44000 ns/call vs best peer 48000 (target ≤ peers: met)",
            "BPF running: scx_slo 4000 ns/call vs best peer 3000 (target ≤ peers: missed)",
            "BPF stopping: scx_slo 5000 ns/call vs best peer 6000 (target ≤ peers: met)",
        ]
    );
}

/// The summary keeps what a release gate tests a later run against: each
/// round's raw queue and response samples, and each round's batch work
/// against EEVDF's in the same round (bench_gate.rs reads them back).
#[test]
fn the_summary_keeps_each_rounds_samples_for_the_release_gate() {
    let cell = |scheduler: &str, round: usize, queue: &[u64], work: u64| {
        json!({ "scenario": "oversub-2x", "scheduler": scheduler, "round": round, "queue_ns": queue,
                "response_ns": queue.iter().map(|q| q + 500_000).collect::<Vec<_>>(), "batch_work": work,
                "attached": scheduler != "eevdf", "samples_dropped": 0 })
    };
    let cells = [
        cell("eevdf", 0, &[100_000, 200_000], 1000),
        cell("scx_slo-all", 0, &[150_000], 900),
        cell("eevdf", 1, &[300_000], 2000),
        cell("scx_slo-all", 1, &[250_000, 50_000], 2400),
    ];
    let results = summarize(&cells);
    let all = results.as_array().and_then(|r| r.iter().find(|r| r["scheduler"] == "scx_slo-all")).expect("scx_slo-all");
    assert_eq!(all["queue_ns_per_round"], json!([[150_000], [250_000, 50_000]]));
    assert_eq!(all["response_ns_per_round"], json!([[650_000], [750_000, 550_000]]));
    assert_eq!(all["batch_work_ratio_per_round"], json!([0.9, 1.2]));
    let report = json!({ "scenario": "bench", "facts": { "results": results } });
    let run = crate::bench_gate::Run::from_report(&report).expect("the gate reads the summary");
    let outcome = crate::bench_gate::gate(&run, &run, &crate::bench_gate::Policy::default()).expect("gate");
    assert!(outcome.failed().is_empty());
}
