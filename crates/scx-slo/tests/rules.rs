// SPDX-License-Identifier: GPL-2.0-only
//! `scx-slo rules` and `scx-slo dashboard` on the example config: promtool
//! accepts the rules, and promtool's own rule unit tests show the page alert
//! firing on a fast burn, and nothing on a clean run. Needs promtool (Debian's
//! `prometheus` package, installed by scripts/setup); skipped without it
//! outside CI, a failure in CI.
#![allow(clippy::unwrap_used)] // a test's helpers unwrap too: a failure is a failed test with its line

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn scx_slo(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scx-slo")).args(args).output().expect("scx-slo");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn have_promtool() -> bool {
    let ok = Command::new("promtool").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI must check the rules with promtool (scripts/setup installs it)");
        eprintln!("skipped: promtool is not installed");
    }
    ok
}

const UNIT_TESTS: &str = r#"
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  # 10% of api.service's jobs miss: 100x the 0.1% budget. Pages.
  - interval: 1m
    input_series:
      - series: 'scx_slo_jobs_total{unit="api.service"}'
        values: '0+600x120'
      - series: 'scx_slo_deadline_misses_total{unit="api.service"}'
        values: '0+60x120'
    alert_rule_test:
      - eval_time: 90m
        alertname: ScxSloErrorBudgetBurnFast
        exp_alerts:
          - exp_labels: { severity: page, unit: api.service }
            exp_annotations:
              summary: "api.service is spending its deadline error budget too fast (page)"
              description: "api.service: jobs missing their 5ms deadline burn the 0.100% error budget of its 30d SLO window at the page rate. Check `scx-slo explain api.service` and the queue latency panel."
    promql_expr_test:
      - expr: 'scx_slo:deadline_miss_ratio:rate1h'
        eval_time: 90m
        exp_samples:
          - labels: 'scx_slo:deadline_miss_ratio:rate1h{unit="api.service"}'
            value: 0.1
  # 0.05% misses: half the budget rate. Nothing fires.
  - interval: 1m
    input_series:
      - series: 'scx_slo_jobs_total{unit="api.service"}'
        values: '0+2000x120'
      - series: 'scx_slo_deadline_misses_total{unit="api.service"}'
        values: '0+1x120'
    alert_rule_test:
      - eval_time: 90m
        alertname: ScxSloErrorBudgetBurnFast
        exp_alerts: []
      - eval_time: 90m
        alertname: ScxSloErrorBudgetBurnSlow
        exp_alerts: []
"#;

#[test]
fn promtool_accepts_the_rules_and_they_fire_on_a_fast_burn_only() {
    let config = repo().join("examples/enforce.json");
    let (code, rules, err) = scx_slo(&["rules", "--config", config.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(rules.contains("ScxSloErrorBudgetBurnFast") && rules.contains("ScxSloErrorBudgetBurnSlow"), "{rules}");
    if !have_promtool() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("scx-slo-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("rules.yml"), &rules).unwrap();
    std::fs::write(dir.join("tests.yml"), UNIT_TESTS).unwrap();
    let check = Command::new("promtool").args(["check", "rules"]).arg(dir.join("rules.yml")).output().unwrap();
    assert!(check.status.success(), "promtool check rules:\n{}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
    let test = Command::new("promtool").args(["test", "rules"]).arg(dir.join("tests.yml")).current_dir(&dir).output().unwrap();
    assert!(test.status.success(), "promtool test rules:\n{}{}\n{rules}", String::from_utf8_lossy(&test.stdout), String::from_utf8_lossy(&test.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

/// One promtool case for a daemon alert: the input series (each gets
/// `job="scx-slo"` and `instance="h1:9638"` unless it names its own), when
/// to evaluate, and whether the alert fires then.
struct Case {
    alert: &'static str,
    series: &'static [(&'static str, &'static str)],
    eval: &'static str,
    fires: bool,
    why: &'static str,
}

const INSTANCE: &str = "h1:9638";

const CASES: &[Case] = &[
    Case { alert: "ScxSloDaemonDown", series: &[("up", "1x9 0x10")], eval: "18m", fires: true, why: "down for 9 minutes" },
    Case { alert: "ScxSloDaemonDown", series: &[("up", "1x9 0x2 1x8")], eval: "18m", fires: false, why: "down for 3 minutes, back since" },
    Case { alert: "ScxSloMetricsAbsent", series: &[("scx_slo_state{state=\"running\"}", "1x30")], eval: "20m", fires: true, why: "no scrape target" },
    Case { alert: "ScxSloMetricsAbsent", series: &[("up", "1x30")], eval: "20m", fires: false, why: "the target is there" },
    Case { alert: "ScxSloBreakerOpen", series: &[("scx_slo_breaker_open", "0x4 1x20")], eval: "20m", fires: true, why: "open for 16 minutes" },
    Case { alert: "ScxSloBreakerOpen", series: &[("scx_slo_breaker_open", "0x4 1x5 0x20"), ("scx_slo_state{state=\"failed\"}", "0x30")], eval: "20m", fires: false, why: "open 5 minutes, then reset" },
    Case { alert: "ScxSloSchedulerEjected", series: &[("scx_slo_scheduler_exits_total{reason=\"error_stall\"}", "0x30 1x30")], eval: "40m", fires: true, why: "an ejection 10 minutes ago" },
    Case { alert: "ScxSloSchedulerEjected", series: &[("scx_slo_scheduler_exits_total{reason=\"error_stall\"}", "0x10 1x100")], eval: "80m", fires: false, why: "the ejection was over an hour ago" },
    Case { alert: "ScxSloProbeOverheadHigh", series: &[("scx_slo_probe_overhead_ratio", "0.02x30"), ("scx_slo_probe_overhead_budget_ratio", "0.01x30")], eval: "20m", fires: true, why: "2% against a 1% budget" },
    Case { alert: "ScxSloProbeOverheadHigh", series: &[("scx_slo_probe_overhead_ratio", "0.005x30"), ("scx_slo_probe_overhead_budget_ratio", "0.01x30")], eval: "20m", fires: false, why: "under budget" },
    Case { alert: "ScxSloReloadFailed", series: &[("scx_slo_reload_failures_total", "0x10 1x20")], eval: "15m", fires: true, why: "a refusal 5 minutes ago" },
    Case { alert: "ScxSloReloadFailed", series: &[("scx_slo_reload_failures_total", "0x10 1x40")], eval: "40m", fires: false, why: "the refusal was 30 minutes ago" },
    Case { alert: "ScxSloAuditTrailClosed", series: &[("scx_slo_audit_open", "1x5 0x20")], eval: "20m", fires: true, why: "closed for 15 minutes" },
    Case { alert: "ScxSloAuditTrailClosed", series: &[("scx_slo_audit_open", "1x25")], eval: "20m", fires: false, why: "open" },
];

/// The labels a series gets: its own, plus the scrape's.
fn series_name(s: &str) -> String {
    let (name, labels) = s.split_once('{').map_or((s, ""), |(n, l)| (n, l.trim_end_matches('}')));
    let mut all = vec![format!("job=\"scx-slo\""), format!("instance=\"{INSTANCE}\"")];
    if !labels.is_empty() {
        all.push(labels.to_string());
    }
    format!("{name}{{{}}}", all.join(","))
}

fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// promtool's unit-test file for the daemon alerts: each case is its own
/// test group, expecting the alert with its labels and its annotations as
/// Prometheus expands them, or no alert.
fn daemon_alert_tests() -> String {
    let rules = scx_slo_model::rules::daemon_rules();
    let mut out = String::from("rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n");
    for c in CASES {
        let rule = rules.iter().find(|r| r.name == c.alert).unwrap_or_else(|| panic!("no alert {}", c.alert));
        out.push_str(&format!("  # {}: {}\n  - interval: 1m\n    input_series:\n", c.alert, c.why));
        for (series, values) in c.series {
            out.push_str(&format!("      - series: {}\n        values: '{values}'\n", yaml_str(&series_name(series))));
        }
        out.push_str(&format!("    alert_rule_test:\n      - eval_time: {}\n        alertname: {}\n", c.eval, c.alert));
        if !c.fires {
            out.push_str("        exp_alerts: []\n");
            continue;
        }
        // absent() has no instance: its only label is the selector's job.
        let mut labels = vec![("severity", rule.labels.iter().find(|(k, _)| k == "severity").map(|(_, v)| v.as_str()).unwrap()), ("job", "scx-slo")];
        if c.alert != "ScxSloMetricsAbsent" {
            labels.push(("instance", INSTANCE));
        }
        out.push_str("        exp_alerts:\n          - exp_labels:\n");
        for (k, v) in labels {
            out.push_str(&format!("              {k}: {}\n", yaml_str(v)));
        }
        out.push_str("            exp_annotations:\n");
        for (k, v) in &rule.annotations {
            let expanded = v.replace("{{ $labels.instance }}", INSTANCE).replace("{{ $value | humanizePercentage }}", "2%");
            out.push_str(&format!("              {k}: {}\n", yaml_str(&expanded)));
        }
    }
    out
}

/// The latency objectives' ratios on a histogram whose every sample is in
/// the (2.048 ms, 4.096 ms] bucket: histogram_quantile interpolates there,
/// p99 = 4.07552 ms (0.815 of the 5 ms objective, met; promtool compares
/// floats exactly, so the value is the one float arithmetic gives), p50 = 3.072 ms
/// (3.07 × the 1 ms objective, missed).
const OBJECTIVE_TESTS: &str = r#"
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'scx_slo_queue_latency_seconds_bucket{unit="api.service",le="0.002048"}'
        values: '0x20'
      - series: 'scx_slo_queue_latency_seconds_bucket{unit="api.service",le="0.004096"}'
        values: '0+100x20'
      - series: 'scx_slo_queue_latency_seconds_bucket{unit="api.service",le="+Inf"}'
        values: '0+100x20'
    promql_expr_test:
      - expr: 'scx_slo:latency_objective:ratio_rate5m{quantile="0.99"}'
        eval_time: 10m
        exp_samples:
          - labels: 'scx_slo:latency_objective:ratio_rate5m{unit="api.service",quantile="0.99"}'
            value: 0.8151039999999999
      - expr: 'scx_slo:latency_objective:ratio_rate5m{quantile="0.5"}'
        eval_time: 10m
        exp_samples:
          - labels: 'scx_slo:latency_objective:ratio_rate5m{unit="api.service",quantile="0.5"}'
            value: 3.072
"#;

/// Runs promtool's rule unit tests in `dir` (holding rules.yml).
fn promtool_test(dir: &Path, name: &str, tests: &str, rules: &str) {
    std::fs::write(dir.join(name), tests).unwrap();
    let test = Command::new("promtool").args(["test", "rules"]).arg(dir.join(name)).current_dir(dir).output().unwrap();
    assert!(
        test.status.success(),
        "promtool test rules {name}:\n{}{}\n{tests}\n{rules}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
}

#[test]
fn every_daemon_alert_fires_when_it_should_and_stays_silent_otherwise() {
    let config = repo().join("examples/enforce.json");
    let (code, rules, err) = scx_slo(&["rules", "--config", config.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    // Every daemon alert has a case that fires and one that stays silent.
    for r in scx_slo_model::rules::daemon_rules() {
        assert!(rules.contains(&format!("alert: \"{}\"", r.name)), "{} not generated", r.name);
        for fires in [true, false] {
            assert!(CASES.iter().any(|c| c.alert == r.name && c.fires == fires), "{} lacks a case with fires={fires}", r.name);
        }
    }
    if !have_promtool() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("scx-slo-daemon-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("rules.yml"), &rules).unwrap();
    promtool_test(&dir, "daemon-tests.yml", &daemon_alert_tests(), &rules);
    promtool_test(&dir, "objective-tests.yml", OBJECTIVE_TESTS, &rules);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_config_without_slos_still_gets_the_daemon_alerts() {
    let path = std::env::temp_dir().join(format!("scx-slo-rules-noslo-{}.json", std::process::id()));
    std::fs::write(&path, r#"{"version":1,"targets":{"batch.slice":{"class":"batch"}}}"#).unwrap();
    let (code, rules, err) = scx_slo(&["rules", "--config", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, Some(0), "{err}");
    assert!(rules.contains("\"scx-slo:daemon\"") && !rules.contains("ScxSloErrorBudgetBurnFast"), "{rules}");
    if !have_promtool() {
        return;
    }
    let file = std::env::temp_dir().join(format!("scx-slo-rules-noslo-{}.yml", std::process::id()));
    std::fs::write(&file, &rules).unwrap();
    let check = Command::new("promtool").args(["check", "rules"]).arg(&file).output().unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(check.status.success(), "{}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
}

/// The `scx_slo…` series names in a PromQL expression.
fn series(expr: &str) -> Vec<&str> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    expr.split(|c: char| !is_name(c)).filter(|w| w.starts_with("scx_slo")).collect()
}

/// Every dashboard panel queries a series that exists, with the values the
/// config gives: a metric the daemon exports (the table in docs/metrics.md,
/// which the daemon's tests keep complete; a histogram through its
/// `_bucket`) or one `scx-slo rules` records for that unit. Each latency
/// target's row selects its own unit, draws the SLO's p99 (else the
/// deadline) as the objective, and shows the error budget only when the
/// rules record one for it.
#[test]
fn dashboard_panels_query_series_that_exist_for_each_target() {
    let config = repo().join("examples/enforce.json");
    let (code, out, err) = scx_slo(&["dashboard", "--config", config.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let (code, rules, err) = scx_slo(&["rules", "--config", config.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let metrics_md = std::fs::read_to_string(repo().join("docs/metrics.md")).expect("docs/metrics.md");
    let dash: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    // (row, panel title, its queries), in order.
    let mut row = String::new();
    let mut panels: Vec<(String, String, Vec<String>)> = Vec::new();
    for p in dash["panels"].as_array().expect("panels") {
        let title = p["title"].as_str().unwrap_or_default().to_string();
        if p["type"] == "row" {
            row = title;
            continue;
        }
        let exprs = p["targets"].as_array().into_iter().flatten().filter_map(|t| t["expr"].as_str().map(String::from)).collect();
        panels.push((row.clone(), title, exprs));
    }
    // The rule group of each unit (`scx-slo:<unit>`) and what it records.
    let recorded_for = |unit: &str, name: &str| {
        let group = rules.split("  - name: ").find(|g| g.starts_with(&format!("\"scx-slo:{unit}\"")));
        group.is_some_and(|g| g.contains(&format!("record: \"{name}\"")))
    };
    let exported = |name: &str| {
        let base = name.strip_suffix("_bucket").filter(|b| metrics_md.contains(&format!("| `{b}` | histogram |")));
        metrics_md.contains(&format!("| `{}` |", base.unwrap_or(name)))
    };
    let mut missing = Vec::new();
    for (row, title, exprs) in &panels {
        assert!(!exprs.is_empty(), "{row} / {title}: no query");
        for e in exprs {
            for name in series(e) {
                if !(exported(name) || (name.starts_with("scx_slo:") && recorded_for(row, name))) {
                    missing.push(format!("{row} / {title}: {name} in {e}"));
                }
            }
        }
    }
    assert!(missing.is_empty(), "panels query series nothing exports or records:\n{}", missing.join("\n"));

    let rows: Vec<&str> = panels.iter().map(|p| p.0.as_str()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    assert_eq!(rows, ["Scheduler health", "api.service", "worker.service"]);
    // api.service: SLO p99 5 ms. worker.service: no SLO, deadline 20 ms.
    for (unit, objective, error_budget) in [("api.service", "vector(0.005)", true), ("worker.service", "vector(0.02)", false)] {
        let mine: Vec<&(String, String, Vec<String>)> = panels.iter().filter(|p| p.0 == unit).collect();
        let titles: Vec<&str> = mine.iter().map(|p| p.1.as_str()).collect();
        let mut want = vec!["Queue latency (wakeup to run)", "p99 queue latency vs objective", "Deadline misses / s", "Budget use"];
        if error_budget {
            want.push("Error budget left");
        }
        assert_eq!(titles, want, "{unit}");
        let sel = format!("{{unit=\"{unit}\"}}");
        for (_, title, exprs) in mine {
            for e in exprs {
                assert!(e.contains(&sel) || e == objective, "{unit} / {title}: {e} neither selects {sel} nor is the objective {objective}");
            }
        }
        let p99 = panels.iter().find(|p| p.0 == unit && p.1 == "p99 queue latency vs objective").expect("p99 panel");
        assert!(p99.2.iter().any(|e| e == objective), "{unit}: objective {:?}, want {objective}", p99.2);
        let budget = panels.iter().find(|p| p.0 == unit && p.1 == "Budget use").expect("budget panel");
        assert_eq!(budget.2, [format!("scx_slo_budget_utilization{sel}")], "{unit}");
    }
}

#[test]
fn an_invalid_config_makes_no_rules() {
    let path = std::env::temp_dir().join(format!("scx-slo-rules-bad-{}.json", std::process::id()));
    std::fs::write(&path, r#"{"version":1,"targets":{"a.service":{"class":"latency"}}}"#).unwrap();
    let (code, out, err) = scx_slo(&["rules", "--config", path.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(out.is_empty() && err.contains("a.service"), "{err}");
}
