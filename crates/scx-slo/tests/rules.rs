// SPDX-License-Identifier: GPL-2.0-only
//! `scx-slo rules` and `scx-slo dashboard` on the example config: promtool
//! accepts the rules, and promtool's own rule unit tests show the page alert
//! firing on a fast burn, and nothing on a clean run. Needs promtool (Debian's
//! `prometheus` package, installed by scripts/setup); skipped without it
//! outside CI, a failure in CI.

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

#[test]
fn dashboard_is_json_with_panels_per_latency_target() {
    let config = repo().join("examples/enforce.json");
    let (code, out, err) = scx_slo(&["dashboard", "--config", config.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let dash: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let titles: Vec<&str> = dash["panels"].as_array().unwrap().iter().filter_map(|p| p["title"].as_str()).collect();
    assert!(titles.contains(&"api.service") && titles.contains(&"worker.service"), "{titles:?}");
    assert!(out.contains("scx_slo_queue_latency_seconds_bucket"));
}

#[test]
fn an_invalid_config_makes_no_rules() {
    let path = std::env::temp_dir().join(format!("scx-slo-rules-bad-{}.json", std::process::id()));
    std::fs::write(&path, r#"{"version":1,"targets":{"a.service":{"class":"latency"}}}"#).unwrap();
    let (code, out, err) = scx_slo(&["rules", "--config", path.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(out.is_empty() && err.contains("a.service"), "{err}");
}
