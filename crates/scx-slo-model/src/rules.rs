// SPDX-License-Identifier: GPL-2.0-only
//! SLOs → Prometheus recording rules and multi-window, multi-burn-rate
//! alerts (the Google SRE workbook's scheme); the Grafana dashboard is in
//! [`crate::dashboard`].
//!
//! The SLI of a latency target is the share of jobs that finish before their
//! deadline: `scx_slo_deadline_misses_total / scx_slo_jobs_total`. With an
//! error budget `1 - availability` over the SLO window:
//! - page: burn rate 14.4 over 1h and 5m, or 6 over 6h and 30m;
//! - ticket: burn rate 1 over 3d and 6h.
//!
//! Those windows are the workbook's for a 30-day SLO window; for another
//! window they are scaled by `window / 30d` (so a burn alert still means the
//! same share of the budget spent), with short windows floored at 1m and
//! long ones at 5m, below which rates are noise. A threshold
//! `factor × budget` above 1 is capped at 1 (a ratio cannot exceed it).

use std::fmt::Write;


use crate::config::{Class, Config, Slo, Target};
use crate::duration::Duration;

/// The window the workbook's burn windows are written for.
pub const REFERENCE_WINDOW: Duration = Duration::from_secs(30 * 86400);

/// One alerting condition: a long and a short window at a burn rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BurnWindow {
    /// Long window.
    pub long: Duration,
    /// Short window (the alert resets quickly once the burn stops).
    pub short: Duration,
    /// Burn rate: multiples of the rate that spends the budget exactly over the window.
    pub factor: f64,
    /// `page` or `ticket`.
    pub severity: &'static str,
}

/// The workbook's windows for a 30-day SLO.
pub const REFERENCE_BURNS: [BurnWindow; 3] = [
    BurnWindow { long: Duration::from_secs(3600), short: Duration::from_secs(300), factor: 14.4, severity: "page" },
    BurnWindow { long: Duration::from_secs(6 * 3600), short: Duration::from_secs(1800), factor: 6.0, severity: "page" },
    BurnWindow { long: Duration::from_secs(3 * 86400), short: Duration::from_secs(6 * 3600), factor: 1.0, severity: "ticket" },
];

const MIN_SHORT: u64 = 60;
const MIN_LONG: u64 = 300;

/// The burn windows for an SLO window.
pub fn burn_windows(window: Duration) -> Vec<BurnWindow> {
    let scale = window.as_ns() as f64 / REFERENCE_WINDOW.as_ns() as f64;
    let scaled = |d: Duration, floor: u64| Duration::from_secs(((d.as_ns() as f64 * scale / 1e9).round() as u64).max(floor));
    REFERENCE_BURNS
        .iter()
        .map(|b| BurnWindow { long: scaled(b.long, MIN_LONG), short: scaled(b.short, MIN_SHORT), ..*b })
        .collect()
}

/// A Prometheus duration: the largest unit that divides it (`90m`, `3d`).
pub fn prom_duration(d: Duration) -> String {
    let s = d.as_ns() / 1_000_000_000;
    for (unit, len) in [("d", 86400), ("h", 3600), ("m", 60)] {
        if s > 0 && s.is_multiple_of(len) {
            return format!("{}{unit}", s / len);
        }
    }
    format!("{s}s")
}

/// The miss-ratio recording rule's name for a window.
pub fn miss_ratio_record(w: Duration) -> String {
    format!("scx_slo:deadline_miss_ratio:rate{}", prom_duration(w))
}

/// The alert threshold for a burn rate and an availability.
pub fn threshold(factor: f64, availability: f64) -> f64 {
    (factor * (1.0 - availability)).min(1.0)
}

/// The targets rules are made for: latency targets with a deadline and an SLO.
pub fn slo_targets(config: &Config) -> impl Iterator<Item = &Target> {
    config.targets.iter().filter(|t| t.class == Class::Latency && t.deadline.is_some() && t.slo.is_some())
}

/// A number as PromQL shows it, without float noise (0.001, not 0.0010000000000000009).
fn num(x: f64) -> String {
    format!("{}", (x * 1e12).round() / 1e12)
}

fn q(s: &str) -> String {
    // A JSON string is a valid YAML double-quoted scalar.
    serde_json::to_string(s).unwrap_or_default()
}

/// A PromQL selector for one unit.
pub(crate) fn sel(unit: &str) -> String {
    format!("{{unit={}}}", q(unit))
}

/// One recording or alerting rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// `record` or `alert` name.
    pub name: String,
    /// true for an alert.
    pub alert: bool,
    /// PromQL.
    pub expr: String,
    /// How long the condition must hold before the alert fires (alerts).
    pub for_: Option<&'static str>,
    /// Extra labels.
    pub labels: Vec<(String, String)>,
    /// Annotations (alerts).
    pub annotations: Vec<(String, String)>,
}

/// The rule group for one target.
pub fn target_rules(t: &Target) -> Vec<Rule> {
    let Some(slo) = t.slo else { return Vec::new() };
    let unit = t.key.as_str();
    let s = sel(unit);
    let unit_label = vec![("unit".to_string(), unit.to_string())];
    let burns = burn_windows(slo.error_budget_window);
    let mut windows: Vec<Duration> = burns.iter().flat_map(|b| [b.short, b.long]).collect();
    windows.sort();
    windows.dedup();
    let mut rules: Vec<Rule> = windows
        .iter()
        .map(|w| Rule {
            name: miss_ratio_record(*w),
            alert: false,
            for_: None,
            expr: format!(
                "sum by (unit) (rate(scx_slo_deadline_misses_total{s}[{d}])) / sum by (unit) (rate(scx_slo_jobs_total{s}[{d}]))",
                d = prom_duration(*w)
            ),
            labels: unit_label.clone(),
            annotations: Vec::new(),
        })
        .collect();
    let window = prom_duration(slo.error_budget_window);
    rules.push(Rule {
        name: "scx_slo:error_budget_remaining:ratio".into(),
        alert: false,
        for_: None,
        expr: format!(
            "1 - (sum by (unit) (increase(scx_slo_deadline_misses_total{s}[{window}])) / sum by (unit) (increase(scx_slo_jobs_total{s}[{window}]))) / {eb}",
            eb = num(1.0 - slo.availability)
        ),
        labels: unit_label.clone(),
        annotations: Vec::new(),
    });
    rules.push(Rule {
        name: "scx_slo:queue_latency_seconds:p99_rate5m".into(),
        alert: false,
        for_: None,
        expr: format!("histogram_quantile(0.99, sum by (unit, le) (rate(scx_slo_queue_latency_seconds_bucket{s}[5m])))"),
        labels: unit_label.clone(),
        annotations: Vec::new(),
    });
    rules.extend(latency_objective_rules(t, &slo, &s));
    for severity in ["page", "ticket"] {
        let conditions: Vec<String> = burns
            .iter()
            .filter(|b| b.severity == severity)
            .map(|b| {
                let th = num(threshold(b.factor, slo.availability));
                format!(
                    "({long}{s} >= {th} and {short}{s} >= {th})",
                    long = miss_ratio_record(b.long),
                    short = miss_ratio_record(b.short)
                )
            })
            .collect();
        let name = if severity == "page" { "ScxSloErrorBudgetBurnFast" } else { "ScxSloErrorBudgetBurnSlow" };
        rules.push(Rule {
            name: name.into(),
            alert: true,
            for_: None,
            expr: conditions.join(" or "),
            labels: vec![("severity".into(), severity.into()), ("unit".into(), unit.into())],
            annotations: vec![
                ("summary".into(), format!("{unit} is spending its deadline error budget too fast ({severity})")),
                (
                    "description".into(),
                    format!(
                        "{unit}: jobs missing their {} deadline burn the {:.3}% error budget of its {window} SLO window at the {severity} rate. \
                         Check `scx-slo explain {unit}` and the queue latency panel.",
                        t.deadline.map(|d| d.to_string()).unwrap_or_default(),
                        (1.0 - slo.availability) * 100.0
                    ),
                ),
            ],
        });
    }
    rules
}

/// The quantiles an SLO's latency objectives name, with the objective.
fn latency_objectives(slo: &Slo) -> impl Iterator<Item = (&'static str, f64, Duration)> {
    [("p50", 0.5, slo.latency.p50), ("p95", 0.95, slo.latency.p95), ("p99", 0.99, slo.latency.p99)]
        .into_iter()
        .filter_map(|(name, q, d)| d.map(|d| (name, q, d)))
}

/// The latency objectives, read at last: per objective the measured
/// quantile of the queue-latency histogram over 5m and its ratio to the
/// objective (above 1: missed). The histogram's buckets are powers of two
/// (1.024 µs × 2^i), and histogram_quantile interpolates inside a bucket, so
/// a ratio is exact to within that bucket's factor of 2: a ratio between 0.5
/// and 1 may hide a miss, and one between 1 and 2 may be met.
fn latency_objective_rules(t: &Target, slo: &Slo, s: &str) -> Vec<Rule> {
    let unit = t.key.as_str();
    let mut rules = Vec::new();
    for (name, quantile, objective) in latency_objectives(slo) {
        let labels = vec![("unit".to_string(), unit.to_string()), ("quantile".to_string(), num(quantile))];
        if name != "p99" {
            rules.push(Rule {
                name: format!("scx_slo:queue_latency_seconds:{name}_rate5m"),
                alert: false,
                for_: None,
                expr: format!("histogram_quantile({quantile}, sum by (unit, le) (rate(scx_slo_queue_latency_seconds_bucket{s}[5m])))"),
                labels: vec![("unit".to_string(), unit.to_string())],
                annotations: Vec::new(),
            });
        }
        rules.push(Rule {
            name: "scx_slo:latency_objective:ratio_rate5m".into(),
            alert: false,
            for_: None,
            expr: format!("scx_slo:queue_latency_seconds:{name}_rate5m{s} / {}", num(objective.as_ns() as f64 / 1e9)),
            labels,
            annotations: Vec::new(),
        });
    }
    rules
}

/// The scrape job the NixOS module names (`services.scxSlo.metrics`); the
/// daemon-down alert looks for it.
pub const SCRAPE_JOB: &str = "scx-slo";

fn daemon_alert(name: &str, expr: String, for_: Option<&'static str>, severity: &str, summary: &str, description: &str) -> Rule {
    Rule {
        name: name.into(),
        alert: true,
        for_,
        expr,
        labels: vec![("severity".into(), severity.into())],
        annotations: vec![("summary".into(), summary.into()), ("description".into(), description.into())],
    }
}

/// The daemon's own alerts, one group whatever the targets: the daemon or
/// its metrics gone, the breaker open or the daemon failed, an ejection,
/// the probes over their budget, a refused reload, the audit trail closed.
/// Each description names the first command to run (docs/troubleshooting.md
/// has the rest).
pub fn daemon_rules() -> Vec<Rule> {
    let job = q(SCRAPE_JOB);
    vec![
        daemon_alert(
            "ScxSloDaemonDown",
            format!("up{{job={job}}} == 0"),
            Some("5m"),
            "page",
            "scx-slod on {{ $labels.instance }} does not answer scrapes",
            "Prometheus cannot scrape scx-slod on {{ $labels.instance }}: the daemon is down or its endpoint is. The kernel runs its default scheduler while scx-slod is down. Run `systemctl status scx-slod` there.",
        ),
        daemon_alert(
            "ScxSloMetricsAbsent",
            format!("absent(up{{job={job}}})"),
            Some("15m"),
            "ticket",
            "No scx-slo scrape target exists",
            "Prometheus has no target for job scx-slo: the scrape config or service discovery lost it, so every scx-slo alert is blind.",
        ),
        daemon_alert(
            "ScxSloBreakerOpen",
            "scx_slo_breaker_open == 1 or scx_slo_state{state=\"failed\"} == 1".into(),
            Some("10m"),
            "page",
            "scx-slo on {{ $labels.instance }} stopped enforcing (breaker open or state failed)",
            "scx-slod on {{ $labels.instance }} has its circuit breaker open or is failed, and the host runs its default scheduler. Run `scx-slo status` there (the `breaker:` and `last ejection:` lines), fix the cause, then `scx-slo reset-breaker`.",
        ),
        daemon_alert(
            "ScxSloSchedulerEjected",
            "sum without (reason) (increase(scx_slo_scheduler_exits_total[1h])) > 0".into(),
            None,
            "ticket",
            "The kernel ejected scx_slo on {{ $labels.instance }} in the last hour",
            "The kernel ejected scx_slo on {{ $labels.instance }} in the last hour; scx-slod retries with backoff and opens its breaker after repeated failures. Run `scx-slo status` there: its `last ejection:` line has the kernel's reason.",
        ),
        daemon_alert(
            "ScxSloProbeOverheadHigh",
            "scx_slo_probe_overhead_ratio > scx_slo_probe_overhead_budget_ratio".into(),
            Some("15m"),
            "ticket",
            "scx-slo's observe probes on {{ $labels.instance }} cost more than their budget",
            "The observe probes on {{ $labels.instance }} use {{ $value | humanizePercentage }} of a CPU, over their budget, even with sampling raised. Run `scx-slo status` there: its `probes:` line has the cost, the budget and the sampling.",
        ),
        daemon_alert(
            "ScxSloReloadFailed",
            "increase(scx_slo_reload_failures_total[15m]) > 0".into(),
            None,
            "ticket",
            "scx-slod on {{ $labels.instance }} refused a config reload",
            "A reload on {{ $labels.instance }} was refused and the previous generation still runs. Run `scx-slo status` there: its `last reload rejected:` line has the reason.",
        ),
        daemon_alert(
            "ScxSloAuditTrailClosed",
            "scx_slo_audit_open == 0".into(),
            Some("5m"),
            "page",
            "scx-slod on {{ $labels.instance }} cannot write its audit trail",
            "scx-slod on {{ $labels.instance }} cannot append to /var/lib/scx-slo/audit, so every mutating call but Disable is refused. Run `scx-slo status` there: its `audit trail closed` line has the reason.",
        ),
    ]
}

/// The whole rule file, in YAML (`promtool check rules` reads it).
pub fn prometheus_rules(config: &Config) -> String {
    let mut out = String::from("# Generated by `scx-slo rules`; do not edit: change the SLOs in the scx-slo config.\ngroups:\n");
    let groups = std::iter::once(("scx-slo:daemon".to_string(), daemon_rules()))
        .chain(slo_targets(config).map(|t| (format!("scx-slo:{}", t.key), target_rules(t))));
    for (name, rules) in groups {
        let _ = writeln!(out, "  - name: {}\n    rules:", q(&name));
        for r in rules {
            let key = if r.alert { "alert" } else { "record" };
            let _ = writeln!(out, "      - {key}: {}\n        expr: {}", q(&r.name), q(&r.expr));
            if let Some(d) = r.for_ {
                let _ = writeln!(out, "        for: {d}");
            }
            for (field, pairs) in [("labels", &r.labels), ("annotations", &r.annotations)] {
                if !pairs.is_empty() {
                    let _ = writeln!(out, "        {field}:");
                    for (k, v) in pairs {
                        let _ = writeln!(out, "          {k}: {}", q(v));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn thirty_days_gives_the_workbook_windows() {
        let w = burn_windows(REFERENCE_WINDOW);
        let names: Vec<(String, String, f64)> = w.iter().map(|b| (prom_duration(b.long), prom_duration(b.short), b.factor)).collect();
        assert_eq!(
            names,
            vec![("1h".into(), "5m".into(), 14.4), ("6h".into(), "30m".into(), 6.0), ("3d".into(), "6h".into(), 1.0)]
        );
    }

    #[test]
    fn other_windows_scale_and_floor() {
        let w = burn_windows(Duration::from_secs(7 * 86400));
        // 7/30 of 1h = 14m; of 5m = 70s; of 3d = 16h48m.
        assert_eq!(prom_duration(w[0].long), "14m");
        assert_eq!(prom_duration(w[0].short), "70s");
        assert_eq!(prom_duration(w[2].long), "1008m");
        let tiny = burn_windows(Duration::from_secs(3600));
        assert!(tiny.iter().all(|b| b.short.as_ns() >= 60_000_000_000 && b.long.as_ns() >= 300_000_000_000));
    }

    #[test]
    fn thresholds_are_burn_times_budget_capped_at_one() {
        assert!((threshold(14.4, 0.999) - 0.0144).abs() < 1e-12);
        assert_eq!(threshold(14.4, 0.9), 1.0);
    }

    #[test]
    fn example_rules_name_every_window_they_use() {
        let config = crate::load_str(include_str!("../../../examples/enforce.json"), None).unwrap();
        let yaml = prometheus_rules(&config);
        assert!(yaml.contains("scx_slo:deadline_miss_ratio:rate5m"));
        assert!(yaml.contains("\"ScxSloErrorBudgetBurnFast\""));
        // worker.service has no SLO: no group.
        assert!(!yaml.contains("scx-slo:worker.service"));
    }

    #[test]
    fn latency_objectives_are_recorded_as_ratios_of_recorded_quantiles() {
        let config = crate::load_str(include_str!("../../../examples/enforce.json"), None).unwrap();
        let api = config.targets.iter().find(|t| t.key == "api.service").unwrap();
        let rules = target_rules(api);
        let recorded: Vec<&str> = rules.iter().filter(|r| !r.alert).map(|r| r.name.as_str()).collect();
        let ratios: Vec<&Rule> = rules.iter().filter(|r| r.name == "scx_slo:latency_objective:ratio_rate5m").collect();
        let quantiles: Vec<&str> = ratios.iter().map(|r| r.labels.iter().find(|(k, _)| k == "quantile").unwrap().1.as_str()).collect();
        assert_eq!(quantiles, ["0.5", "0.95", "0.99"]);
        assert!(ratios[2].expr.ends_with("/ 0.005"), "{}", ratios[2].expr);
        for r in &ratios {
            let used = r.expr.split_whitespace().next().unwrap().split('{').next().unwrap();
            assert!(recorded.contains(&used), "{used} not recorded");
        }
        // Without objectives, no ratio.
        let mut bare = api.clone();
        bare.slo = bare.slo.map(|s| Slo { latency: Default::default(), ..s });
        assert!(target_rules(&bare).iter().all(|r| !r.name.contains("objective")));
    }

    #[test]
    fn daemon_alerts_have_a_severity_and_a_first_command() {
        for r in daemon_rules() {
            assert!(r.alert && r.labels.iter().any(|(k, v)| k == "severity" && (v == "page" || v == "ticket")), "{}", r.name);
            let description = &r.annotations.iter().find(|(k, _)| k == "description").unwrap().1;
            assert!(description.contains("Run `") || r.name == "ScxSloMetricsAbsent", "{}: {description}", r.name);
        }
    }

    proptest! {
        #[test]
        fn alerts_only_use_recorded_series(availability in 0.5f64..0.99999, days in 1u64..90, hours in 0u64..24) {
            let window = Duration::from_secs(days * 86400 + hours * 3600);
            let t = Target {
                key: "x.service".into(),
                selector: crate::Selector::Unit { name: "x.service".into(), cgroup: None },
                class: Class::Latency,
                budget: None,
                deadline: Some(Duration::from_ms(5)),
                priority: 500,
                preemption: crate::Preemption::Never,
                weight: 100,
                slo: Some(crate::Slo { latency: Default::default(), availability, error_budget_window: window }),
                adaptive: None,
                scrape: None,
            };
            let rules = target_rules(&t);
            let recorded: Vec<&str> = rules.iter().filter(|r| !r.alert).map(|r| r.name.as_str()).collect();
            for alert in rules.iter().filter(|r| r.alert) {
                for word in alert.expr.split(|c: char| !(c.is_alphanumeric() || c == ':' || c == '_')) {
                    if word.starts_with("scx_slo:") {
                        prop_assert!(recorded.contains(&word), "{word} not recorded");
                    }
                }
            }
            for b in burn_windows(window) {
                prop_assert!(b.short < b.long);
                let th = threshold(b.factor, availability);
                prop_assert!(th > 0.0 && th <= 1.0);
            }
            // Longer SLO windows never shorten the alert windows.
            let longer = burn_windows(Duration::from_secs((days + 1) * 86400 + hours * 3600));
            for (a, b) in burn_windows(window).iter().zip(longer.iter()) {
                prop_assert!(a.long <= b.long && a.short <= b.short);
            }
        }
    }
}
