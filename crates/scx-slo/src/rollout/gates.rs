// SPDX-License-Identifier: GPL-2.0-only
//! A stage's gates: the PromQL each one asks, and the verdict from the
//! answers. A stage's hosts are compared with the same hosts before the
//! stage and with the hosts not yet rolled out; a unit fails a statistical
//! gate only when it is worse than both (worse than before but the same as
//! the hosts the release never touched is the fleet's weather, not the
//! release). A unit with series before the deploy and none after it fails
//! too: the release lost it. The alert gates fail on any alert that was not
//! there before.
//!
//! The recording rules `scx-slo rules` emits aggregate by unit over every
//! host, so the per-stage miss ratio and latency quantile are computed here
//! from the daemon's raw series, restricted to the stage's instances. The
//! latency objective is a constant per unit, so comparing a quantile is
//! comparing its objective ratio.
//!
//! The "before" answers are asked once, just before the stage's first
//! deploy command, and kept in the rollout log as its [`Baseline`]: a
//! rollout resumed after the release reached the stage's hosts compares
//! with them, not with the release itself.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Result;
use scx_slo_model::stats;
use serde::{Deserialize, Serialize};

use super::plan::{Gates, ResolvedStage};
use super::prom::{Prometheus, Series};

/// Times of one stage's soak, unix seconds.
#[derive(Clone, Copy, Debug)]
pub struct Times {
    /// When its last deploy command finished (the soak's start).
    pub soak_start: f64,
    /// The evaluation's instant.
    pub now: f64,
}

/// The stage's hosts before its deploy: every gate's "before" answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// When it was taken (unix seconds), just before the first deploy command.
    pub time: f64,
    /// The window of the miss and jobs counts and of the latency range
    /// before `time`: the stage's soak, in seconds.
    pub soak_s: u64,
    /// The resolution of the latency range, seconds; the stage's own range
    /// is read at the same one.
    pub step_s: f64,
    /// The daemon's alerts on the stage's hosts.
    pub daemon_alerts: Vec<Series>,
    /// The burn-rate alerts firing.
    pub burn_alerts: Vec<Series>,
    /// Deadline misses per unit on the stage's hosts.
    pub misses: Vec<Series>,
    /// Jobs per unit on the stage's hosts.
    pub jobs: Vec<Series>,
    /// The queue-latency quantile per unit on the stage's hosts, a range.
    pub latency: Vec<Series>,
}

/// Asks every gate's "before" question for `instances` of `stage` at
/// `time`, with latency ranges at `step`. An answer that cannot be read is
/// an error: a stage whose baseline is unknown is not deployed.
pub fn baseline(p: &Prometheus, label: &str, stage: &ResolvedStage, instances: &[String], time: f64, step: Duration) -> Result<Baseline> {
    let soak_s = (stage.soak.as_ns() / 1_000_000_000).max(1);
    let q = queries(label, instances, &stage.gates, soak_s);
    let window = (soak_s as f64).max(step.as_secs_f64());
    Ok(Baseline {
        time,
        soak_s,
        step_s: step.as_secs_f64(),
        daemon_alerts: p.query(&q.daemon_alerts, time)?,
        burn_alerts: p.query(&q.burn_alerts, time)?,
        misses: p.query(&q.misses, time)?,
        jobs: p.query(&q.jobs, time)?,
        latency: p.query_range(&q.latency, time - window, time, step)?,
    })
}

/// One query as asked and what came back, for the log.
#[derive(Clone, Debug, Serialize)]
pub struct Asked {
    /// The PromQL.
    pub query: String,
    /// Instant (`[t]`) or range (`[start, end]`), unix seconds.
    pub at: Vec<f64>,
    /// Per series: its labels and values (a range's as its count and median).
    pub values: Vec<SeriesValue>,
}

/// One series of an answer, as logged.
#[derive(Clone, Debug, Serialize)]
pub struct SeriesValue {
    /// The series' labels.
    pub labels: BTreeMap<String, String>,
    /// The last value (instant) or the median (range).
    pub value: f64,
    /// Points behind it.
    pub points: usize,
}

/// One gate's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// The gate.
    pub gate: &'static str,
    /// Whether the stage may proceed as far as this gate sees.
    pub pass: bool,
    /// What it found, in a sentence per finding.
    pub findings: Vec<String>,
    /// The queries and their answers.
    pub asked: Vec<Asked>,
}

/// A `label=~"a|b"` matcher for instances (regex characters escaped).
pub fn matcher(label: &str, instances: &[String]) -> String {
    let alts: Vec<String> = instances
        .iter()
        .map(|i| i.chars().map(|c| if c.is_ascii_alphanumeric() || "-_:@".contains(c) { c.to_string() } else { format!("\\\\{c}") }).collect())
        .collect();
    format!("{label}=~\"{}\"", alts.join("|"))
}

/// The PromQL of each gate for one set of instances.
#[derive(Clone, Debug)]
pub struct Queries {
    /// Each instance's scrape health.
    pub up: String,
    /// The daemon's alerts, pending or firing.
    pub daemon_alerts: String,
    /// The burn-rate alerts, firing (fleet-wide: the rules sum over hosts).
    pub burn_alerts: String,
    /// Deadline misses per unit over the soak.
    pub misses: String,
    /// Jobs per unit over the soak.
    pub jobs: String,
    /// The queue-latency quantile per unit.
    pub latency: String,
}

/// The queries for `instances` with a soak of `soak_s` seconds.
pub fn queries(label: &str, instances: &[String], gates: &Gates, soak_s: u64) -> Queries {
    let m = matcher(label, instances);
    let names = |v: &[String]| v.join("|");
    let w = gates.rate_window.as_ns() / 1_000_000_000;
    let soak_s = soak_s.max(1);
    Queries {
        up: format!("up{{{m}}}"),
        daemon_alerts: format!("ALERTS{{alertname=~\"{}\",{m}}}", names(&gates.daemon_alerts)),
        burn_alerts: format!("ALERTS{{alertname=~\"{}\",alertstate=\"firing\"}}", names(&gates.burn_alerts)),
        misses: format!("sum by (unit) (increase(scx_slo_deadline_misses_total{{{m}}}[{soak_s}s]))"),
        jobs: format!("sum by (unit) (increase(scx_slo_jobs_total{{{m}}}[{soak_s}s]))"),
        latency: format!(
            "histogram_quantile({}, sum by (unit, le) (rate(scx_slo_queue_latency_seconds_bucket{{{m}}}[{w}s])))",
            gates.latency_quantile
        ),
    }
}

fn median(v: &[f64]) -> f64 {
    let s = stats::sorted(v);
    if s.is_empty() {
        f64::NAN
    } else {
        stats::percentile(&s, 0.5)
    }
}

fn logged(query: &str, at: Vec<f64>, series: &[Series]) -> Asked {
    let values = series
        .iter()
        .map(|s| {
            let vals: Vec<f64> = s.points.iter().map(|p| p.1).filter(|v| v.is_finite()).collect();
            let value = if at.len() == 1 { s.points.last().map_or(f64::NAN, |p| p.1) } else { median(&vals) };
            SeriesValue { labels: s.labels.clone(), value, points: s.points.len() }
        })
        .collect();
    Asked { query: query.to_string(), at, values }
}

fn key(s: &Series, names: &[&str]) -> String {
    names.iter().map(|n| format!("{n}={}", s.labels.get(*n).map_or("", String::as_str))).collect::<Vec<_>>().join(",")
}

/// The scrape gate: every stage host answers Prometheus (`up` is 1).
pub fn up(p: &Prometheus, label: &str, stage: &ResolvedStage, instances: &[String], t: Times) -> Result<Check> {
    let q = queries(label, instances, &stage.gates, 1);
    let now = p.query(&q.up, t.now)?;
    let mut findings = Vec::new();
    for i in instances {
        match now.iter().find(|s| s.labels.get(label) == Some(i)) {
            None => findings.push(format!("{i} is not scraped by Prometheus")),
            Some(s) if s.points.last().map(|p| p.1) != Some(1.0) => findings.push(format!("{i} does not answer scrapes (up is 0)")),
            Some(_) => {}
        }
    }
    let pass = findings.is_empty();
    if pass {
        findings.push(format!("all {} hosts answer scrapes", instances.len()));
    }
    Ok(Check { gate: "up", pass, findings, asked: vec![logged(&q.up, vec![t.now], &now)] })
}

/// An alert gate: alerts present now that were not `before` (the
/// baseline's answer to `query`, at `base_time`).
pub fn alerts(p: &Prometheus, gate: &'static str, query: &str, labels: &[&str], before: &[Series], base_time: f64, t: Times) -> Result<Check> {
    let now = p.query(query, t.now)?;
    let had: BTreeSet<String> = before.iter().map(|s| key(s, labels)).collect();
    let mut findings: Vec<String> = now
        .iter()
        .filter(|s| !had.contains(&key(s, labels)))
        .map(|s| format!("{} {} since the stage began ({})", key(s, &["alertname"]), s.labels.get("alertstate").map_or("present", String::as_str), key(s, labels)))
        .collect();
    findings.dedup();
    let pass = findings.is_empty();
    if pass {
        findings.push(format!("no new alert ({} already present before the stage)", had.len()));
    }
    Ok(Check { gate, pass, findings, asked: vec![logged(query, vec![base_time], before), logged(query, vec![t.now], &now)] })
}

/// The units that had series on the stage's hosts before the deploy and
/// have none now, one finding each. A release that drops a unit's targets
/// (or stops the daemon counting it) leaves nothing to compare, which
/// must not read as "no regression": such a unit fails the gate.
fn vanished<'a>(before: impl IntoIterator<Item = &'a String>, now: &BTreeSet<&String>, what: &str) -> Vec<String> {
    before
        .into_iter()
        .filter(|u| !now.contains(u))
        .map(|u| format!("{u}: had {what} series on the stage's hosts before the deploy and has none now"))
        .collect()
}

/// Misses and jobs per unit, from two instant answers.
fn counts(misses: &[Series], jobs: &[Series]) -> BTreeMap<String, (u64, u64)> {
    let mut out = BTreeMap::new();
    let n = |s: &Series| s.points.last().map_or(0, |p| if p.1.is_finite() && p.1 > 0.0 { p.1.round() as u64 } else { 0 });
    for s in jobs {
        let unit = s.labels.get("unit").cloned().unwrap_or_default();
        let missed = misses.iter().find(|m| m.labels.get("unit") == Some(&unit)).map_or(0, n);
        out.insert(unit, (missed, n(s)));
    }
    out
}

/// The miss-ratio gate: per unit, the stage's misses over the soak against
/// the same hosts before it (`base`) and the later hosts during it (a
/// one-sided two-proportion test).
pub fn miss_ratio(p: &Prometheus, label: &str, stage: &ResolvedStage, instances: &[String], later: &[String], base: &Baseline, t: Times) -> Result<Check> {
    let g = &stage.gates;
    let soak = (t.now - t.soak_start).round().max(1.0) as u64;
    let mine = queries(label, instances, g, soak);
    let mut asked = Vec::new();
    let mut ask = |q: &str, at: f64| -> Result<Vec<Series>> {
        let r = p.query(q, at)?;
        asked.push(logged(q, vec![at], &r));
        Ok(r)
    };
    let stage_counts = counts(&ask(&mine.misses, t.now)?, &ask(&mine.jobs, t.now)?);
    let rest = if later.is_empty() {
        None
    } else {
        let theirs = queries(label, later, g, soak);
        Some(counts(&ask(&theirs.misses, t.now)?, &ask(&theirs.jobs, t.now)?))
    };
    let then = queries(label, instances, g, base.soak_s);
    asked.push(logged(&then.misses, vec![base.time], &base.misses));
    asked.push(logged(&then.jobs, vec![base.time], &base.jobs));
    let before = counts(&base.misses, &base.jobs);
    let mut findings = Vec::new();
    let mut pass = true;
    for (unit, &(x, n)) in &stage_counts {
        let ratio = |x: u64, n: u64| if n == 0 { f64::NAN } else { x as f64 / n as f64 };
        let worse = |cmp: Option<&(u64, u64)>| -> Option<(bool, String)> {
            let &(cx, cn) = cmp.filter(|c| c.1 > 0)?;
            let p_value = stats::proportion_higher_p(x, n, cx, cn);
            let worse = ratio(x, n) - ratio(cx, cn) > g.miss_ratio_increase && p_value < g.alpha;
            Some((worse, format!("{:.4} ({cx}/{cn}, p={p_value:.2e})", ratio(cx, cn))))
        };
        let vs_before = worse(before.get(unit));
        let vs_rest = rest.as_ref().and_then(|r| worse(r.get(unit)));
        let fail = n > 0 && vs_before.as_ref().is_none_or(|v| v.0) && vs_rest.as_ref().is_none_or(|v| v.0) && (vs_before.is_some() || vs_rest.is_some());
        let describe = |v: &Option<(bool, String)>| v.as_ref().map_or("no data".to_string(), |v| v.1.clone());
        findings.push(format!(
            "{unit}: miss ratio {:.4} ({x}/{n}) on the stage; before it {}; on the hosts not yet rolled out {}{}",
            ratio(x, n),
            describe(&vs_before),
            if rest.is_none() { "none left".to_string() } else { describe(&vs_rest) },
            if fail { ": significantly worse than every comparison" } else { "" }
        ));
        pass &= !fail;
    }
    let gone = vanished(before.keys(), &stage_counts.keys().collect(), "job");
    pass &= gone.is_empty();
    findings.extend(gone);
    if findings.is_empty() {
        findings.push("no unit counted jobs on the stage's hosts: nothing to compare".into());
    }
    Ok(Check { gate: "miss_ratio", pass, findings, asked })
}

/// The latency gate: per unit, the stage's queue-latency quantile over the
/// soak against the same hosts before it (`base`) and the later hosts
/// during it (Mann-Whitney U on the range's points: they overlap in the
/// rate window, so the test is a guard against noise, not an exact p-value).
pub fn latency(p: &Prometheus, label: &str, stage: &ResolvedStage, instances: &[String], later: &[String], base: &Baseline, t: Times) -> Result<Check> {
    let g = &stage.gates;
    let step = Duration::from_secs_f64(base.step_s.max(0.001));
    let soak = (t.now - t.soak_start).max(step.as_secs_f64());
    let mine = queries(label, instances, g, 1);
    let by_unit = |r: &[Series]| -> BTreeMap<String, Vec<f64>> {
        r.iter().map(|s| (s.labels.get("unit").cloned().unwrap_or_default(), s.points.iter().map(|p| p.1).filter(|v| v.is_finite()).collect())).collect()
    };
    let mut asked = Vec::new();
    let mut ask = |q: &str, start: f64, end: f64| -> Result<BTreeMap<String, Vec<f64>>> {
        let r = p.query_range(q, start, end, step)?;
        asked.push(logged(q, vec![start, end], &r));
        Ok(by_unit(&r))
    };
    let stage_q = ask(&mine.latency, t.now - soak, t.now)?;
    let rest = if later.is_empty() { None } else { Some(ask(&queries(label, later, g, 1).latency, t.now - soak, t.now)?) };
    let window = (base.soak_s as f64).max(base.step_s);
    asked.push(logged(&mine.latency, vec![base.time - window, base.time], &base.latency));
    let before = by_unit(&base.latency);
    let mut findings = Vec::new();
    let mut pass = true;
    for (unit, v) in stage_q.iter().filter(|(_, v)| !v.is_empty()) {
        let worse = |cmp: Option<&Vec<f64>>| -> Option<(bool, String)> {
            let c = cmp.filter(|c| !c.is_empty())?;
            let test = stats::mann_whitney(v, c);
            let (m, cm) = (median(v), median(c));
            let worse = m > cm * (1.0 + g.latency_regression_pct / 100.0) && test.p < g.alpha;
            Some((worse, format!("{cm:.6}s (p={:.2e})", test.p)))
        };
        let vs_before = worse(before.get(unit));
        let vs_rest = rest.as_ref().and_then(|r| worse(r.get(unit)));
        let fail = vs_before.as_ref().is_none_or(|v| v.0) && vs_rest.as_ref().is_none_or(|v| v.0) && (vs_before.is_some() || vs_rest.is_some());
        let describe = |v: &Option<(bool, String)>| v.as_ref().map_or("no data".to_string(), |v| v.1.clone());
        findings.push(format!(
            "{unit}: p{} queue latency {:.6}s on the stage; before it {}; on the hosts not yet rolled out {}{}",
            g.latency_quantile * 100.0,
            median(v),
            describe(&vs_before),
            if rest.is_none() { "none left".to_string() } else { describe(&vs_rest) },
            if fail { ": significantly worse than every comparison" } else { "" }
        ));
        pass &= !fail;
    }
    let gone = vanished(before.keys(), &stage_q.keys().collect(), "queue-latency");
    pass &= gone.is_empty();
    findings.extend(gone);
    if findings.is_empty() {
        findings.push("no unit has queue-latency samples on the stage's hosts: nothing to compare".into());
    }
    Ok(Check { gate: "latency", pass, findings, asked })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A Prometheus stand-in at the returned URL: each request's decoded
    /// query string goes to `answer`, whose (resultType, result) is sent back.
    pub(in crate::rollout) fn fake_url(answer: impl Fn(&str) -> (&'static str, String) + Send + 'static) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for mut s in listener.incoming().flatten() {
                let mut buf = vec![0u8; 64 << 10];
                let n = s.read(&mut buf).unwrap_or(0);
                let line = String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or("").to_string();
                let target = line.split(' ').nth(1).unwrap_or("");
                let mut decoded = Vec::new();
                let bytes = target.as_bytes();
                let mut i = 0;
                while i < bytes.len() {
                    if bytes[i] == b'%' && i + 2 < bytes.len() {
                        decoded.push(u8::from_str_radix(&target[i + 1..i + 3], 16).unwrap());
                        i += 3;
                    } else {
                        decoded.push(bytes[i]);
                        i += 1;
                    }
                }
                let (kind, result) = answer(&String::from_utf8_lossy(&decoded));
                let body = format!(r#"{{"status":"success","data":{{"resultType":"{kind}","result":[{result}]}}}}"#);
                let _ = write!(s, "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{body}");
            }
        });
        url
    }

    /// A client of [`fake_url`]'s stand-in.
    fn fake(answer: impl Fn(&str) -> (&'static str, String) + Send + 'static) -> Prometheus {
        Prometheus::new(&fake_url(answer), Duration::from_secs(5)).unwrap()
    }

    /// The stage's baseline from `p` at 1000 s, latency ranges every 3 s.
    fn base(p: &Prometheus) -> Baseline {
        baseline(p, "instance", &stage(), &["a:1".into()], 1000.0, Duration::from_secs(3)).unwrap()
    }

    fn stage() -> ResolvedStage {
        ResolvedStage { index: 0, name: "canary".into(), nodes: vec!["c".into()], later: vec!["r".into()], soak: scx_slo_model::Duration::from_secs(60), gates: Gates::default() }
    }

    const T: Times = Times { soak_start: 1010.0, now: 1070.0 };

    /// Counts: (misses, jobs) on the stage now, on it before, on the rest now.
    fn misses(on_stage: (u64, u64), before: (u64, u64), rest: (u64, u64)) -> Check {
        let p = fake(move |q| {
            let (m, j) = if q.contains("a:1") && q.contains("time=1000") { before } else if q.contains("a:1") { on_stage } else { rest };
            let v = if q.contains("deadline_misses") { m } else { j };
            ("vector", format!(r#"{{"metric":{{"unit":"api.service"}},"value":[1,"{v}"]}}"#))
        });
        miss_ratio(&p, "instance", &stage(), &["a:1".into()], &["b:1".into()], &base(&p), T).unwrap()
    }

    #[test]
    fn a_unit_fails_the_miss_gate_only_when_worse_than_before_and_than_the_rest() {
        let c = misses((500, 1000), (0, 1000), (0, 1000));
        assert!(!c.pass && c.findings[0].contains("significantly worse"), "{c:?}");
        assert_eq!(c.asked.len(), 6, "stage, before and rest, misses and jobs each");
        // The rest as bad: the fleet's weather, not the release.
        assert!(misses((500, 1000), (0, 1000), (500, 1000)).pass);
        // As bad as before the stage.
        assert!(misses((500, 1000), (480, 1000), (0, 1000)).pass);
        // Too few jobs to be significant.
        assert!(misses((1, 2), (0, 2), (0, 2)).pass);
    }

    #[test]
    fn a_unit_fails_the_latency_gate_on_a_significant_regression_against_both() {
        let run = |stage_s: f64, rest_s: f64| {
            let p = fake(move |q| {
                let start: f64 = q.split("start=").nth(1).and_then(|s| s.split('&').next()).and_then(|s| s.parse().ok()).unwrap_or(0.0);
                let level = if !q.contains("a:1") { rest_s } else if start < 1000.0 { 0.001 } else { stage_s };
                let points: Vec<String> = (0..20).map(|i| format!(r#"[{i},"{}"]"#, level * (1.0 + i as f64 / 1000.0))).collect();
                ("matrix", format!(r#"{{"metric":{{"unit":"api.service"}},"values":[{}]}}"#, points.join(",")))
            });
            latency(&p, "instance", &stage(), &["a:1".into()], &["b:1".into()], &base(&p), T).unwrap()
        };
        let c = run(0.004, 0.001);
        assert!(!c.pass, "{c:?}");
        assert!(run(0.004, 0.004).pass, "as slow as the hosts not yet rolled out");
        assert!(run(0.00105, 0.001).pass, "5% is under the 10% threshold");
    }

    #[test]
    fn a_unit_whose_series_disappear_after_the_deploy_fails_both_gates() {
        // The unit had series on the stage before the deploy; the release
        // dropped its target, so the stage has none now.
        let p = fake(|q| {
            let stage_now = q.contains("a:1") && !q.contains("time=1000") && !q.contains("start=9");
            let one = r#"{"metric":{"unit":"api.service"},"value":[1,"10"]}"#;
            let range = r#"{"metric":{"unit":"api.service"},"values":[[1,"0.001"],[2,"0.001"]]}"#;
            let kind = if q.contains("query_range") { "matrix" } else { "vector" };
            (kind, if stage_now { String::new() } else if kind == "matrix" { range.to_string() } else { one.to_string() })
        });
        let c = miss_ratio(&p, "instance", &stage(), &["a:1".into()], &["b:1".into()], &base(&p), T).unwrap();
        assert!(!c.pass, "{c:?}");
        assert_eq!(c.findings, ["api.service: had job series on the stage's hosts before the deploy and has none now"]);
        let c = latency(&p, "instance", &stage(), &["a:1".into()], &["b:1".into()], &base(&p), T).unwrap();
        assert!(!c.pass, "{c:?}");
        assert_eq!(c.findings, ["api.service: had queue-latency series on the stage's hosts before the deploy and has none now"]);
        // No series before either: nothing to compare, and nothing lost.
        let p = fake(|q| (if q.contains("query_range") { "matrix" } else { "vector" }, String::new()));
        assert!(miss_ratio(&p, "instance", &stage(), &["a:1".into()], &[], &base(&p), T).unwrap().pass);
        assert!(latency(&p, "instance", &stage(), &["a:1".into()], &[], &base(&p), T).unwrap().pass);
    }

    #[test]
    fn a_new_alert_fails_and_one_already_there_does_not() {
        let p = fake(|q| {
            let old = r#"{"metric":{"alertname":"ScxSloReloadFailed","alertstate":"firing","instance":"a:1"},"value":[1,"1"]}"#;
            let new = r#"{"metric":{"alertname":"ScxSloBreakerOpen","alertstate":"pending","instance":"a:1"},"value":[1,"1"]}"#;
            ("vector", if q.contains("time=1000") { old.to_string() } else { format!("{old},{new}") })
        });
        let q = queries("instance", &["a:1".into()], &Gates::default(), 60);
        let b = base(&p);
        let c = alerts(&p, "daemon_alerts", &q.daemon_alerts, &["alertname", "instance"], &b.daemon_alerts, b.time, T).unwrap();
        assert!(!c.pass, "{c:?}");
        assert_eq!(c.findings.len(), 1, "{c:?}");
        assert!(c.findings[0].contains("ScxSloBreakerOpen pending"), "{c:?}");
    }

    #[test]
    fn instances_are_matched_literally() {
        let m = matcher("instance", &["127.0.0.1:9101".into(), "[::1]:9".into()]);
        assert_eq!(m, r#"instance=~"127\\.0\\.0\\.1:9101|\\[::1\\]:9""#);
    }

    #[test]
    fn queries_name_the_stage_and_the_rules_alerts() {
        let q = queries("instance", &["a:1".into()], &Gates::default(), 30);
        assert_eq!(q.daemon_alerts, r#"ALERTS{alertname=~"ScxSloSchedulerEjected|ScxSloBreakerOpen|ScxSloReloadFailed",instance=~"a:1"}"#);
        assert!(q.misses.contains("[30s]") && q.latency.contains("[300s]"), "{q:?}");
        let config = scx_slo_model::load_str(include_str!("../../../../examples/enforce.json"), Some(4)).unwrap();
        let rules = scx_slo_model::rules::prometheus_rules(&config);
        for a in super::super::plan::DAEMON_ALERTS.iter().chain(&super::super::plan::BURN_ALERTS) {
            assert!(rules.contains(&format!("alert: \"{a}\"\n")), "{a} is not an alert `scx-slo rules` emits");
        }
    }
}
