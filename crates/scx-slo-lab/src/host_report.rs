// SPDX-License-Identifier: GPL-2.0-only
//! Host side of a VM run, after the guest: `scx-slo-lab report` (the
//! guest's report extracted from its captured output, printed and written
//! as report.json), `gate` (bench_gate.rs, which checks/vm/run --baseline
//! runs after a bench), and `bench-rebuild` (an older bench report's
//! results recomputed from its checkpointed cells).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::{bench, bench_gate, bench_report, bench_resume, external_report};

/// Runs the release gate and prints its table: true when a gated metric
/// regressed; bad input is named and exits 2 (docs/testing.md, "Release gates").
pub fn gate_or_exit(baseline: &Path, candidate: &Path, policy: Option<&Path>) -> bool {
    match bench_gate::run(baseline, candidate, policy) {
        Ok(regressed) => regressed,
        Err(e) => {
            eprintln!("scx-slo-lab gate: {e:#}");
            std::process::exit(2);
        }
    }
}

/// `bench-rebuild`: the report with `facts.results` recomputed by the
/// bench's own summary from the checkpointed cells; the recomputed
/// percentiles must equal the report's, or the blocks are another run's.
pub fn bench_rebuild(report_path: &Path, block_files: &[PathBuf]) -> Result<serde_json::Value> {
    let mut report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(report_path).with_context(|| format!("reading {}", report_path.display()))?,
    )
    .with_context(|| format!("parsing {}", report_path.display()))?;
    let mut blocks = std::collections::BTreeMap::new();
    for f in block_files {
        blocks.extend(bench_resume::parse(&std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?));
    }
    let cells: Vec<serde_json::Value> = blocks.into_values().flat_map(|b| b.cells).collect();
    anyhow::ensure!(!cells.is_empty(), "no checkpointed cells in {}", block_files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "));
    let rebuilt = bench::summarize(&cells);
    let key = |r: &serde_json::Value| (r["scenario"].to_string(), r["scheduler"].to_string());
    let old = report["facts"]["results"].as_array().context("the report has no facts.results")?;
    let new = rebuilt.as_array().context("summary")?;
    for r in old {
        let n = new.iter().find(|n| key(n) == key(r)).with_context(|| format!("the blocks hold no {} / {}", r["scenario"], r["scheduler"]))?;
        for field in ["queue_us", "response_us", "requests", "batch_work"] {
            anyhow::ensure!(n[field] == r[field], "{} / {}: {field} is {} in the report and {} from the blocks: not this run's blocks", r["scenario"], r["scheduler"], r[field], n[field]);
        }
    }
    anyhow::ensure!(old.len() == new.len(), "the report has {} setups, the blocks {}", old.len(), new.len());
    report["facts"]["results"] = rebuilt;
    Ok(report)
}

/// Finds the report in the captured output, prints checks and tables;
/// whether every check passed.
pub fn report(
    file: &Path,
    json_out: Option<&Path>,
    qemu: Option<String>,
    tcg_thread: Option<String>,
    boots: u32,
    main_loop_fifo: bool,
) -> Result<bool> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let body = text
        .split("SCX_SLO_REPORT_BEGIN")
        .nth(1)
        .and_then(|rest| rest.split("SCX_SLO_REPORT_END").next())
        .context("no report in the guest output: the scenario did not finish (see the console log)")?;
    let mut report: serde_json::Value = serde_json::from_str(body.trim()).context("parsing the guest's report")?;
    // What the guest cannot know about itself: the emulator it ran under.
    report["harness"] = serde_json::json!({ "qemu": qemu, "tcg_thread": tcg_thread, "boots": boots, "main_loop_fifo": main_loop_fifo });
    if let Some(path) = json_out {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    println!(
        "scenario {} on kernel {} ({} CPUs), QEMU {} TCG thread={}, {} boot(s)",
        report["scenario"], report["kernel"], report["cpus"], report["harness"]["qemu"], report["harness"]["tcg_thread"], boots
    );
    for c in report["checks"].as_array().into_iter().flatten() {
        let ok = c["ok"].as_bool().unwrap_or(false);
        println!("  [{}] {}\n         {}", if ok { "PASS" } else { "FAIL" }, c["name"].as_str().unwrap_or(""), c["detail"].as_str().unwrap_or(""));
    }
    if let Some(rows) = report["facts"]["rows"].as_array() {
        println!("\n| scheduler | queue p50 us | queue p99 us | queue p99.9 us | wake p99 us | completion p99 us | over 5 ms from wakeup [from timer] | batch work |");
        println!("|---|---|---|---|---|---|---|---|");
        for r in rows {
            println!(
                "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} [{}]/{} | {} |",
                r["scheduler"].as_str().unwrap_or(""),
                r["queue_p50_us"].as_f64().unwrap_or(0.0),
                r["queue_p99_us"].as_f64().unwrap_or(0.0),
                r["queue_p999_us"].as_f64().unwrap_or(0.0),
                r["wake_p99_us"].as_f64().unwrap_or(0.0),
                r["completion_p99_us"].as_f64().unwrap_or(0.0),
                r["response_misses"], r["over_deadline"], r["requests"], r["batch_iterations"]
            );
        }
    }
    for mode in ["partial", "all"] {
        if let Some(f) = report["facts"].get(mode) {
            println!("\n{mode}: kernel stats per target: {}", f["kernel_stats"]);
            println!(
                "{mode}: spawn->enabled {} ms (daemon load {} ms, attach {} ms, apply {} us), SIGTERM->disabled {} ms",
                f["start_to_enabled_ms"], f["daemon_load_ms"], f["daemon_attach_ms"], f["daemon_last_apply_us"], f["sigterm_to_disabled_ms"]
            );
        }
    }
    if report["facts"].get("results").is_some() {
        println!("\ntargets (reported, not asserted):");
        for line in bench_report::targets(&report) {
            println!("  {line}");
        }
    }
    for w in external_report::workloads(&report["facts"]) {
        let rows = w["external"].as_array().map(Vec::as_slice).unwrap_or_default();
        println!("\n{}:\n\n{}", w["workload"].as_str().unwrap_or("cyclictest"), external_report::table(rows));
        println!("budgets per 1 ms (scx-slo tune's, and half of it): {}", w["budgets"]);
        print!("{}", external_report::per_round_table(w["cells"].as_array().map(Vec::as_slice).unwrap_or_default(), true));
        println!("\ntargets (reported, not asserted):");
        for line in w["verdicts"].as_array().into_iter().flatten() {
            println!("  {}", line.as_str().unwrap_or_default());
        }
    }
    for (key, value) in report["facts"].as_object().into_iter().flatten() {
        if !["rows", "partial", "all", "results", "runs", "external", "cells", "tune", "verdicts", "budgets", "workloads"].contains(&key.as_str()) {
            println!("{key}: {value}");
        }
    }
    let ok = report["ok"].as_bool().unwrap_or(false);
    println!("\nverdict: {}", if ok { "PASS" } else { "FAIL" });
    Ok(ok)
}
