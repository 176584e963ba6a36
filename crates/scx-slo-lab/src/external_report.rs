// SPDX-License-Identifier: GPL-2.0-only
//! Host side: the external-workload report (checks/vm/out/external/
//! report.json) as docs/benchmarks-external.md and one latency plot per
//! workload, an SVG of each setup's tail (the share of the tool's
//! measurements later than x, both axes logarithmic) drawn from the tool's
//! own histograms.

use std::fmt::Write as _;

use scx_slo_model::Duration as SloDuration;
use serde_json::Value;

use serde::{Deserialize, Serialize};

use crate::external_tools::ToolRun;
use crate::external_workloads::Workload;

/// Each workload's facts (workload, budgets, tune, external, cells,
/// verdicts); a report from before workloads existed holds cyclictest's
/// at the top of its facts.
pub(crate) fn workloads(facts: &Value) -> Vec<Value> {
    match facts["workloads"].as_array() {
        Some(w) => w.clone(),
        None if facts.get("external").is_some() => {
            let mut w = facts.clone();
            w["workload"] = Value::from(Workload::Cyclictest.name());
            vec![w]
        }
        None => Vec::new(),
    }
}

/// µs as the tables print them; `-` for what the tool does not measure.
fn us(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else {
        format!("{v:.0}")
    }
}

/// The tool's rate: requests/s (with the failed ones, if any) or cycles.
fn rate(run_per_s: Option<f64>, samples: u64, errors: u64) -> String {
    match (run_per_s, errors) {
        (Some(r), 0) => format!("{r:.0}"),
        (Some(r), e) => format!("{r:.0} ({e} failed)"),
        (None, _) => samples.to_string(),
    }
}

/// The summary as a markdown table (the rate column is cycles for a timer
/// tool, requests/s for a load generator).
pub(crate) fn table(rows: &[Value]) -> String {
    let rows: Vec<Summary> = rows.iter().filter_map(|r| serde_json::from_value::<Summary>(r.clone()).ok()).collect();
    let unit = if rows.iter().any(|r| r.per_s.is_some()) { "requests/s" } else { "cycles" };
    let mut out = format!(
        "| setup | tool p50 µs | tool p99 µs | tool p99.9 µs | tool max µs | {unit} | queue p99 µs | queue p99.9 µs | batch bogo ops | attached |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let attached = r.attached_cells.map_or("-".to_string(), |a| format!("{a}/{}", r.rounds));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {} | {attached} |",
            r.setup,
            us(r.p50_us),
            us(r.p99_us),
            us(r.p999_us),
            us(r.max_us),
            rate(r.per_s, r.samples, r.errors),
            r.queue_p99_us,
            r.queue_p999_us,
            r.batch_bogo_ops
        );
    }
    out
}

/// One row per cell: the tool's p99 and max, its cycles, the queue p99 and
/// the batch work; with `counters`, the latency target's scheduler counters
/// too (the report printed after a run, for the why behind a number).
pub(crate) fn per_round_table(cells: &[Value], counters: bool) -> String {
    let tools: Vec<ToolRun> = cells.iter().map(|c| serde_json::from_value(c["tool"].clone()).unwrap_or_default()).collect();
    let unit = if tools.iter().any(|t| t.per_s().is_some()) { "requests/s" } else { "cycles" };
    let mut out = format!("| setup | round | tool p99 µs | tool max µs | {unit} | queue p99 µs | batch bogo ops |");
    out.push_str(if counters { " counters |\n|---|---|---|---|---|---|---|---|\n" } else { "\n|---|---|---|---|---|---|---|\n" });
    for (c, tool) in cells.iter().zip(&tools) {
        let _ = write!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            c["setup"].as_str().unwrap_or_default(),
            c["round"],
            us(tool.quantile(0.99)),
            tool.max_us,
            rate(tool.per_s(), tool.samples, tool.errors),
            us(c["queue_p99_us"].as_f64().unwrap_or(f64::NAN)),
            c["batch_bogo_ops"]
        );
        if counters {
            let _ = write!(out, " {}; longest wait {}; CPU ms {} |", c["counters"], c["longest_wait"], c["cpu_ms"]);
        }
        out.push('\n');
    }
    out
}

/// Each setup's tool histograms, rounds merged, in the workload's order.
fn tool_runs(workload: &Value) -> Vec<(String, ToolRun)> {
    let mut runs: Vec<(String, ToolRun)> = Vec::new();
    for c in workload["cells"].as_array().into_iter().flatten() {
        let (Some(setup), Ok(tool)) = (c["setup"].as_str(), serde_json::from_value::<ToolRun>(c["tool"].clone())) else { continue };
        match runs.iter_mut().find(|(s, _)| s == setup) {
            Some((_, merged)) => merged.merge(&tool),
            None => runs.push((setup.to_string(), tool)),
        }
    }
    runs
}

/// Points of the tail: (µs, share of wakeups later than it), from 1 µs up,
/// one per non-empty bucket; overflows sit at the maximum.
pub(crate) fn tail_points(run: &ToolRun) -> Vec<(f64, f64)> {
    let total = (run.hist.iter().sum::<u64>() + run.overflows) as f64;
    if total == 0.0 {
        return Vec::new();
    }
    let mut later = total;
    let mut points = Vec::new();
    for (i, n) in run.hist.iter().enumerate() {
        if *n == 0 {
            continue;
        }
        later -= *n as f64;
        points.push(((i as u64 * run.width()).max(1) as f64, later / total));
    }
    if run.overflows > 0 {
        points.push((run.max_us.max(1) as f64, 0.0));
    }
    points
}

const COLOURS: [&str; 10] = ["#000000", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf"];

/// Each workload's tail plot, by workload name.
pub(crate) fn tail_svgs(report: &Value) -> Vec<(String, String)> {
    workloads(&report["facts"]).iter().map(|w| (w["workload"].as_str().unwrap_or_default().to_string(), tail_svg(w))).collect()
}

/// A workload's plot's file name next to the markdown named `stem`:
/// cyclictest's keeps the name it had before there were other workloads.
pub(crate) fn svg_name(stem: &str, workload: &str) -> String {
    if workload == Workload::Cyclictest.name() {
        format!("{stem}.svg")
    } else {
        format!("{stem}-{workload}.svg")
    }
}

/// One workload's tail plot as SVG: x from 10 µs to 100 ms (to 1 s when a
/// setup's maximum is past 100 ms, as a server's are under the emulator), y from 1 to
/// 1e-5 (a share under 1e-5, the last measurements, is drawn at the bottom
/// edge).
pub(crate) fn tail_svg(workload: &Value) -> String {
    let (latency, _) = Workload::parse_list(workload["workload"].as_str().unwrap_or_default()).ok().and_then(|w| w.first().copied()).unwrap_or(Workload::Cyclictest).measures();
    let (w, h, left, top, right, bottom) = (760.0, 440.0, 70.0, 20.0, 200.0, 50.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let runs = tool_runs(workload);
    let decades = if runs.iter().any(|(_, r)| r.max_us > 100_000) { 6 } else { 5 };
    let (x0, x1, y_decades) = (1.0f64, decades as f64, 5.0f64);
    let x = |us: f64| left + (us.max(10.0).log10() - x0).clamp(0.0, x1 - x0) / (x1 - x0) * pw;
    let y = |share: f64| top + (-(share.max(1e-5).log10())).clamp(0.0, y_decades) / y_decades * ph;
    let mut svg = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n");
    let _ = writeln!(svg, "<rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"white\"/>");
    for d in 1..=decades {
        let xv = x(10f64.powi(d));
        let label = ["", "10 µs", "100 µs", "1 ms", "10 ms", "100 ms", "1 s"][d as usize];
        let _ = writeln!(svg, "<line x1=\"{xv:.1}\" y1=\"{top}\" x2=\"{xv:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/><text x=\"{xv:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>", top + ph, top + ph + 16.0);
    }
    for d in 0..=5 {
        let yv = y(10f64.powi(-d));
        let _ = writeln!(svg, "<line x1=\"{left}\" y1=\"{yv:.1}\" x2=\"{:.1}\" y2=\"{yv:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">1e-{d}</text>", left + pw, left - 6.0, yv + 4.0);
    }
    let _ = writeln!(svg, "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{latency}</text>", left + pw / 2.0, h - 8.0);
    let _ = writeln!(svg, "<text x=\"14\" y=\"{:.1}\" transform=\"rotate(-90 14 {:.1})\" text-anchor=\"middle\">share of measurements later</text>", top + ph / 2.0, top + ph / 2.0);
    for (i, (setup, run)) in runs.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let dash = if setup.starts_with("scx_slo") { "" } else { " stroke-dasharray=\"5 3\"" };
        let points: Vec<String> = tail_points(run).iter().map(|(us, share)| format!("{:.1},{:.1}", x(*us), y(*share))).collect();
        let _ = writeln!(svg, "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\"{dash} points=\"{}\"/>", points.join(" "));
        let ly = top + 14.0 + 16.0 * i as f64;
        let _ = writeln!(svg, "<line x1=\"{:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/><text x=\"{:.1}\" y=\"{:.1}\">{setup}</text>", w - right + 10.0, w - right + 34.0, w - right + 40.0, ly + 4.0);
    }
    svg.push_str("</svg>\n");
    svg
}

/// docs/benchmarks-external.md from a complete run's report; each
/// workload's plot is named by [`svg_name`] after `stem`.
pub(crate) fn markdown(report: &Value, date: &str, stem: &str) -> String {
    let f = &report["facts"];
    let mut md = String::from("# Benchmarks: programs nobody here wrote\n\n");
    let _ = writeln!(
        md,
        "Generated by `checks/vm/run external` on {date} (kernel {}, {} vCPUs, QEMU {} TCG, {}, one boot, {} rounds of {} s per setup, setups rotated each round). \
Do not edit by hand: `scx-slo-lab external-table` writes this file from the run's report.\n",
        f["kernel"].as_str().unwrap_or("?"),
        f["cpus"],
        report["harness"]["qemu"].as_str().unwrap_or("?"),
        if report["harness"]["main_loop_fifo"] == true {
            "QEMU's main loop on SCHED_FIFO 1 on the host, so the guest's timer interrupts are not delayed by the host's scheduler"
        } else {
            "QEMU's main loop on the host's default policy: the guest's timer interrupts wait for the host's scheduler, about 3 ms at the tool's p99 under every guest scheduler"
        },
        f["rounds"],
        f["seconds_per_cell"]
    );
    md.push_str(
        "Each workload is a program nobody here wrote in the latency target, measured by its own tool. The batch target holds `stress-ng --cpu` \
with two stressors per CPU (its bogo ops are the batch work). \"queue\" is the scheduler's share, waking to running, measured in the kernel for \
the latency target's threads (the bench's observe sampler).\n",
    );
    for w in workloads(f) {
        let name = w["workload"].as_str().unwrap_or_default();
        let about = Workload::parse_list(name).ok().and_then(|l| l.first().copied()).map_or("", Workload::about);
        let _ = writeln!(md, "\n## {name}\n\n{about}\n");
        let budget = |k: &str| w["budgets"][k].as_str().unwrap_or("?").to_string();
        let _ = writeln!(
            md,
            "Budgets per {} period: `tuned` {}, what `scx-slo tune` recommended from the workload under EEVDF in this boot, and `under` {}, half of it (the floor).\n",
            budget("period"),
            budget("tuned"),
            budget("under")
        );
        if let Some(reasons) = w["tune"]["recommendation"]["reasoning"].as_array() {
            md.push_str("`scx-slo tune`'s reasoning:\n\n");
            for r in reasons {
                let _ = writeln!(md, "- {}", r.as_str().unwrap_or_default());
            }
            md.push('\n');
        }
        md.push_str(&table(w["external"].as_array().map(Vec::as_slice).unwrap_or_default()));
        let _ = writeln!(md, "\n![{name}: the tool's latency tail per setup]({})\n", svg_name(stem, name));
        md.push_str("### Per round\n\n");
        md.push_str(&per_round_table(w["cells"].as_array().map(Vec::as_slice).unwrap_or_default(), false));
        md.push_str("\n### Targets\n\n");
        for v in w["verdicts"].as_array().into_iter().flatten() {
            let _ = writeln!(md, "- {}", v.as_str().unwrap_or_default());
        }
    }
    let checks: Vec<&Value> = report["checks"].as_array().into_iter().flatten().collect();
    let _ = writeln!(md, "\nChecks: {} of {} passed.", checks.iter().filter(|c| c["ok"] == Value::Bool(true)).count(), checks.len());
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run() -> ToolRun {
        ToolRun { hist: vec![0, 5, 3, 0, 1], overflows: 1, max_us: 40_000, samples: 10, ..ToolRun::default() }
    }

    #[test]
    fn the_tail_falls_from_one_to_zero_through_every_non_empty_bucket() {
        let p = tail_points(&run());
        assert_eq!(p, vec![(1.0, 0.5), (2.0, 0.2), (4.0, 0.1), (40_000.0, 0.0)]);
        assert!(tail_points(&ToolRun::default()).is_empty());
    }

    #[test]
    fn the_plot_draws_one_line_per_setup_with_rounds_merged() {
        let tool = serde_json::to_value(run()).expect("serializes");
        let workload = json!({ "workload": "redis", "cells": [
            { "setup": "eevdf", "round": 0, "tool": tool },
            { "setup": "scx_slo-all-tuned", "round": 0, "tool": tool },
            { "setup": "eevdf", "round": 1, "tool": tool },
        ] });
        let runs = tool_runs(&workload);
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].1.samples, 20);
        let svg = tail_svg(&workload);
        assert!(svg.contains("redis-benchmark's percentile distribution") && !svg.contains(">1 s</text>"), "{svg}");
        // A maximum past 100 ms widens the axis to 1 s.
        let slow = serde_json::to_value(ToolRun { max_us: 400_000, ..run() }).expect("serializes");
        assert!(tail_svg(&json!({ "workload": "redis", "cells": [{ "setup": "eevdf", "tool": slow }] })).contains(">1 s</text>"));
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert!(svg.contains(">scx_slo-all-tuned</text>") && svg.starts_with("<svg"), "{svg}");
    }

    #[test]
    fn the_markdown_carries_budgets_table_verdicts_and_checks() {
        // A report from before workloads: cyclictest's facts at the top.
        let report = json!({
            "harness": { "qemu": "10.0.2" },
            "checks": [{ "name": "a", "ok": true, "detail": "" }, { "name": "b", "ok": false, "detail": "" }],
            "facts": { "kernel": "6.17", "cpus": 2, "rounds": 3, "seconds_per_cell": 10,
                "budgets": { "tuned": "600us", "under": "300us", "period": "1ms" },
                "verdicts": ["floor x: met"], "external": [], "cells": [] } });
        let md = markdown(&report, "2026-12-07", "plot");
        assert!(md.contains("## cyclictest\n\nThe latency target holds rt-tests' `cyclictest`"), "{md}");
        assert!(md.contains("`tuned` 600us") && md.contains("`under` 300us"), "{md}");
        assert!(md.contains("- floor x: met") && md.contains("![cyclictest: the tool's latency tail per setup](plot.svg)"), "{md}");
        assert!(md.contains("Checks: 1 of 2 passed."), "{md}");
    }

    fn row(setup: &str, per_s: Option<f64>, errors: u64) -> Value {
        serde_json::to_value(Summary {
            setup: setup.into(),
            baseline: true,
            rounds: 2,
            p50_us: 300.0,
            p99_us: 5840.0,
            p999_us: if per_s.is_some() { f64::NAN } else { 7000.0 },
            max_us: 10_680.0,
            samples: 200_000,
            per_s,
            errors,
            queue_p99_us: 150.0,
            queue_p999_us: 400.0,
            batch_bogo_ops: 3000,
            attached_cells: None,
        })
        .expect("serializes")
    }

    #[test]
    fn each_workload_gets_its_section_table_and_plot_with_its_own_rate() {
        let tool = serde_json::to_value(ToolRun { seconds: 2.0, ..run() }).expect("serializes");
        let workload = |name: &str, rows: Vec<Value>| {
            json!({ "workload": name, "budgets": { "tuned": "400us", "under": "200us", "period": "1ms" }, "verdicts": [format!("floor {name}")],
                    "external": rows, "cells": [{ "setup": "eevdf", "round": 0, "tool": tool }] })
        };
        let report = json!({ "harness": {}, "checks": [], "facts": { "workloads": [
            workload("cyclictest", vec![row("eevdf", None, 0)]),
            workload("nginx-wrk", vec![row("eevdf", Some(4180.4), 0), row("scx_slo-all-tuned", Some(4000.0), 7)]),
        ] } });
        let md = markdown(&report, "2026-12-07", "benchmarks-external");
        assert!(md.contains("](benchmarks-external.svg)") && md.contains("](benchmarks-external-nginx-wrk.svg)"), "{md}");
        let nginx = &md[md.find("## nginx-wrk").expect("a section")..];
        assert!(nginx.contains("| requests/s |") && nginx.contains("| 4180 |") && nginx.contains("| 4000 (7 failed) |"), "{nginx}");
        // wrk has no p99.9: a dash, not NaN.
        assert!(nginx.contains("| 5840 | - | 10680 |") && !md.contains("NaN"), "{nginx}");
        let cyclic = &md[md.find("## cyclictest").expect("a section")..md.find("## nginx-wrk").expect("a section")];
        assert!(cyclic.contains("| cycles |") && cyclic.contains("| 7000 |"), "{cyclic}");
        // A cell of 10 requests in 2 s: 5 requests/s in its round's row.
        assert!(nginx.contains("| eevdf | 0 | 40000 | 40000 | 5 |"), "{nginx}");
        let svgs = tail_svgs(&report);
        assert_eq!(svgs.iter().map(|(w, _)| w.as_str()).collect::<Vec<_>>(), vec!["cyclictest", "nginx-wrk"]);
    }
}

/// One line per adaptive cell: from where to where the controller moved
/// the budget, how soon it came within 10% of where it ended, and its last
/// decision (reported, not asserted).
pub(crate) fn adaptive_lines(cells: &[Value], tuned: SloDuration) -> Vec<String> {
    cells
        .iter()
        .filter_map(|c| Some((c["round"].as_u64()?, c.get("adaptive").filter(|a| !a.is_null())?)))
        .map(|(round, a)| {
            let end = a["end_us"].as_u64().unwrap_or(0);
            let series: Vec<(f64, u64)> = serde_json::from_value(a["series_s_us"].clone()).unwrap_or_default();
            let settled = series.iter().find(|(_, us)| end > 0 && (*us as f64 - end as f64).abs() <= 0.1 * end as f64).map(|(t, _)| *t);
            format!(
                "adaptive round {round}: budget {} us -> {end} us (tune's {} us) in {} changes, within 10% of the end after {}; last decision: {} (queue p99 {} us, objective {} us)",
                a["start_us"],
                tuned.as_ns() / 1000,
                a["changes"],
                settled.map_or("never".to_string(), |t| format!("{t:.0} s")),
                a["last"]["outcome"].as_str().unwrap_or("none"),
                a["last"]["p99_us"],
                a["objective_us"],
            )
        })
        .collect()
}

/// One setup's rounds pooled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Summary {
    pub(crate) setup: String,
    pub(crate) baseline: bool,
    pub(crate) rounds: usize,
    /// The tool's latency, µs.
    #[serde(deserialize_with = "nan_if_null")]
    pub(crate) p50_us: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub(crate) p99_us: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub(crate) p999_us: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub(crate) max_us: f64,
    /// Cycles the tool measured (a load generator: requests completed).
    pub(crate) samples: u64,
    /// A load generator's requests per second, rounds pooled (None: a
    /// timer tool, whose rate is its cycles).
    #[serde(default)]
    pub(crate) per_s: Option<f64>,
    /// Requests the load generator counted as failed.
    #[serde(default)]
    pub(crate) errors: u64,
    /// Waking to running, from the kernel, µs.
    #[serde(deserialize_with = "nan_if_null")]
    pub(crate) queue_p99_us: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub(crate) queue_p999_us: f64,
    /// The batch side's bogo ops.
    pub(crate) batch_bogo_ops: u64,
    /// Cells in which a sched_ext scheduler stayed attached (null: EEVDF).
    pub(crate) attached_cells: Option<usize>,
}

impl Summary {
    /// The work the tool got done: requests per second, or cycles per round.
    pub(crate) fn rate(&self) -> f64 {
        self.per_s.unwrap_or(self.samples as f64 / self.rounds.max(1) as f64)
    }
}

/// JSON has no NaN: serde_json writes it as null (a percentile the tool
/// does not measure, a queue without samples), and it reads back as NaN.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}
