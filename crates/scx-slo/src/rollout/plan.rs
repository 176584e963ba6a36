// SPDX-License-Identifier: GPL-2.0-only
//! The rollout plan: a JSON file read whole (a regular file, bounded), then
//! validated into stages of deploy-rs nodes, each with its soak time and
//! gates. Every problem names its JSON path; nothing is deployed from a
//! plan that failed any check.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, Context, Result};
use scx_slo_model::Duration;
use serde::{Deserialize, Serialize};

/// Largest plan file.
pub const MAX_PLAN_BYTES: u64 = 256 << 10;
/// Most stages in a plan.
pub const MAX_STAGES: usize = 32;
/// Most nodes in a plan.
pub const MAX_NODES: usize = 2000;
/// Longest soak of one stage.
pub const MAX_SOAK: Duration = Duration::from_secs(7 * 86400);
/// Most argv elements of a deploy or rollback command.
const MAX_ARGV: usize = 64;
/// Longest name (node, stage, alert) or argv element.
const MAX_NAME: usize = 256;

/// The deploy-rs command for one node: `deploy` with the flake reference of
/// that node (deploy-rs's `[TARGET]` argument, `flake#node`).
pub fn default_deploy() -> Vec<String> {
    vec!["deploy".into(), "{flake}#{node}".into()]
}

/// deploy-rs has no command that undoes a successful deploy (its
/// auto-rollback covers a failed activation, its magic rollback a lost
/// confirmation): rolling back is deploying the last known good revision.
pub fn default_rollback() -> Vec<String> {
    vec!["deploy".into(), "{rollback_flake}#{node}".into()]
}

/// The daemon's alerts that fail a stage when they start on one of its hosts.
pub const DAEMON_ALERTS: [&str; 3] = ["ScxSloSchedulerEjected", "ScxSloBreakerOpen", "ScxSloReloadFailed"];
/// The burn-rate alerts `scx-slo rules` emits.
pub const BURN_ALERTS: [&str; 2] = ["ScxSloErrorBudgetBurnFast", "ScxSloErrorBudgetBurnSlow"];

/// The plan file as written.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Format version, 1.
    pub version: u32,
    /// A name for people and the log.
    pub name: String,
    /// The flake with the release being rolled out (`{flake}`).
    pub flake: String,
    /// The last known good flake revision (`{rollback_flake}`).
    pub rollback_flake: String,
    /// argv for deploying one node; `{flake}`, `{rollback_flake}`, `{node}`
    /// and `{rollout_id}` are replaced.
    #[serde(default = "default_deploy")]
    pub deploy: Vec<String>,
    /// argv for rolling one node back.
    #[serde(default = "default_rollback")]
    pub rollback: Vec<String>,
    /// How long one deploy or rollback command may run.
    #[serde(default = "default_command_timeout")]
    pub command_timeout: Duration,
    /// Where the gates read.
    pub prometheus: PrometheusSource,
    /// Each deploy-rs node and its scx-slod's scrape target (the value of
    /// `prometheus.instance_label` on its series).
    pub nodes: BTreeMap<String, String>,
    /// How often the alert gates are read during a soak.
    #[serde(default = "default_poll")]
    pub poll: Duration,
    /// Defaults for every stage's gates.
    #[serde(default)]
    pub gates: Gates,
    /// The stages, in order.
    pub stages: Vec<Stage>,
}

/// The Prometheus the gates query.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusSource {
    /// `http://host:port` (a path prefix allowed).
    pub url: String,
    /// One query's whole-request deadline.
    #[serde(default = "default_query_timeout")]
    pub timeout: Duration,
    /// The label naming a scrape target.
    #[serde(default = "default_instance_label")]
    pub instance_label: String,
    /// The resolution of range queries (at least the scrape interval).
    #[serde(default = "default_step")]
    pub step: Duration,
}

/// One stage.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// Its name (`canary`, `rack-a`, `rest`).
    pub name: String,
    /// Its nodes; empty with `rest`.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Every node no earlier stage named (the last stage only).
    #[serde(default)]
    pub rest: bool,
    /// How long the gates are watched after the deploy.
    pub soak: Duration,
    /// Overrides of the plan's gates.
    #[serde(default)]
    pub gates: Option<Gates>,
}

/// What a stage must not show.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Gates {
    /// Alerts of the daemon that fail the stage when pending or firing on
    /// one of its hosts and not before it.
    pub daemon_alerts: Vec<String>,
    /// Burn-rate alerts that fail the stage when they start during it.
    pub burn_alerts: Vec<String>,
    /// The rate window of the miss-ratio and latency queries.
    pub rate_window: Duration,
    /// A stage fails when its hosts' miss ratio of a unit exceeds the
    /// comparison's by more than this (absolute) and significantly.
    pub miss_ratio_increase: f64,
    /// A stage fails when a unit's queue-latency quantile on its hosts is
    /// more than this many percent over the comparison's, significantly.
    pub latency_regression_pct: f64,
    /// The quantile compared (the latency objective's, 0.99 by default).
    pub latency_quantile: f64,
    /// Significance level of the tests.
    pub alpha: f64,
}

impl Default for Gates {
    fn default() -> Self {
        Gates {
            daemon_alerts: DAEMON_ALERTS.iter().map(|s| s.to_string()).collect(),
            burn_alerts: BURN_ALERTS.iter().map(|s| s.to_string()).collect(),
            rate_window: Duration::from_secs(300),
            miss_ratio_increase: 0.001,
            // The queue-latency buckets are powers of two: a quantile is
            // exact only to within a bucket, so small shifts are noise.
            latency_regression_pct: 10.0,
            latency_quantile: 0.99,
            alpha: 0.01,
        }
    }
}

fn default_command_timeout() -> Duration {
    Duration::from_secs(30 * 60)
}
fn default_poll() -> Duration {
    Duration::from_secs(30)
}
fn default_query_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_instance_label() -> String {
    "instance".into()
}
fn default_step() -> Duration {
    Duration::from_secs(15)
}

/// A stage resolved: its nodes, the hosts not yet rolled out, its gates.
#[derive(Clone, Debug)]
pub struct ResolvedStage {
    /// Position in the plan, from 0.
    pub index: usize,
    /// The stage's name.
    pub name: String,
    /// Its nodes.
    pub nodes: Vec<String>,
    /// Nodes of later stages: the comparison group.
    pub later: Vec<String>,
    /// Soak time.
    pub soak: Duration,
    /// Its gates.
    pub gates: Gates,
}

/// Reads and validates a plan; also returns its text's SHA-256 (the log
/// refuses to resume another plan).
pub fn load(path: &Path) -> Result<(Plan, Vec<ResolvedStage>, String)> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading the plan {}", path.display()))?;
    if !meta.is_file() {
        bail!("the plan {} is not a regular file", path.display());
    }
    if meta.len() > MAX_PLAN_BYTES {
        bail!("the plan {} is over {} KiB", path.display(), MAX_PLAN_BYTES >> 10);
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the plan {}", path.display()))?;
    let (plan, stages) = parse(&text).with_context(|| format!("the plan {}", path.display()))?;
    Ok((plan, stages, scx_slo_model::config_digest(&text)))
}

/// Parses and validates a plan's text.
pub fn parse(text: &str) -> Result<(Plan, Vec<ResolvedStage>)> {
    let plan: Plan = serde_json::from_str(text).context("not a rollout plan")?;
    let stages = validate(&plan)?;
    Ok((plan, stages))
}

fn check_name(path: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty() && name.len() <= MAX_NAME && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:[]@".contains(c));
    if !ok {
        bail!("{path}: {:?} is not 1-{MAX_NAME} of A-Z a-z 0-9 - _ . : [ ] @", name.chars().take(40).collect::<String>());
    }
    Ok(())
}

fn check_argv(path: &str, argv: &[String]) -> Result<()> {
    if argv.is_empty() || argv.len() > MAX_ARGV {
        bail!("{path}: needs 1-{MAX_ARGV} elements, has {}", argv.len());
    }
    for (i, a) in argv.iter().enumerate() {
        if a.len() > 4096 || a.contains('\0') {
            bail!("{path}[{i}]: over 4096 bytes or a NUL byte");
        }
    }
    if !argv.iter().any(|a| a.contains("{node}")) {
        bail!("{path}: no element names {{node}}, so every stage would deploy the same thing");
    }
    Ok(())
}

fn check_gates(path: &str, g: &Gates) -> Result<()> {
    for (i, a) in g.daemon_alerts.iter().chain(&g.burn_alerts).enumerate() {
        if a.is_empty() || a.len() > MAX_NAME || !a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("{path}: alert {i} {:?} is not a Prometheus alert name", a.chars().take(40).collect::<String>());
        }
    }
    if g.daemon_alerts.len() + g.burn_alerts.len() > 64 {
        bail!("{path}: over 64 alerts");
    }
    if g.rate_window < Duration::from_secs(1) || g.rate_window > Duration::from_secs(86400) {
        bail!("{path}.rate_window: {} is not 1s-1d", g.rate_window);
    }
    if !(0.0..=1.0).contains(&g.miss_ratio_increase) {
        bail!("{path}.miss_ratio_increase: {} is not 0-1", g.miss_ratio_increase);
    }
    if !(0.0..=1000.0).contains(&g.latency_regression_pct) {
        bail!("{path}.latency_regression_pct: {} is not 0-1000", g.latency_regression_pct);
    }
    if !(g.latency_quantile > 0.0 && g.latency_quantile < 1.0) {
        bail!("{path}.latency_quantile: {} is not between 0 and 1", g.latency_quantile);
    }
    if !(g.alpha > 0.0 && g.alpha < 0.5) {
        bail!("{path}.alpha: {} is not between 0 and 0.5", g.alpha);
    }
    Ok(())
}

/// Every check of a plan, in field order; the stages resolved.
pub fn validate(plan: &Plan) -> Result<Vec<ResolvedStage>> {
    if plan.version != 1 {
        bail!("version: {} is not 1", plan.version);
    }
    if plan.name.is_empty() || plan.name.len() > MAX_NAME || plan.name.chars().any(char::is_control) {
        bail!("name: empty, over {MAX_NAME} bytes or a control character");
    }
    for (path, v) in [("flake", &plan.flake), ("rollback_flake", &plan.rollback_flake)] {
        if v.is_empty() || v.len() > 1024 || v.chars().any(|c| c.is_control() || c == ' ') {
            bail!("{path}: empty, over 1024 bytes, or a space or control character");
        }
    }
    if plan.flake == plan.rollback_flake {
        bail!("rollback_flake: the same as flake, so a rollback would deploy the release again");
    }
    check_argv("deploy", &plan.deploy)?;
    check_argv("rollback", &plan.rollback)?;
    if plan.command_timeout < Duration::from_secs(1) || plan.command_timeout > Duration::from_secs(6 * 3600) {
        bail!("command_timeout: {} is not 1s-6h", plan.command_timeout);
    }
    scx_slo_api::scrape::fetch::split_url(&plan.prometheus.url).context("prometheus.url")?;
    let p = &plan.prometheus;
    if p.timeout < Duration::from_ms(100) || p.timeout > Duration::from_secs(120) {
        bail!("prometheus.timeout: {} is not 100ms-2m", p.timeout);
    }
    if p.instance_label.is_empty() || p.instance_label.len() > 64 || !p.instance_label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        bail!("prometheus.instance_label: not a Prometheus label name");
    }
    if p.step < Duration::from_secs(1) || p.step > Duration::from_secs(3600) {
        bail!("prometheus.step: {} is not 1s-1h", p.step);
    }
    if plan.nodes.is_empty() || plan.nodes.len() > MAX_NODES {
        bail!("nodes: needs 1-{MAX_NODES} nodes, has {}", plan.nodes.len());
    }
    for (node, instance) in &plan.nodes {
        check_name(&format!("nodes.{}", node.chars().take(40).collect::<String>()), node)?;
        check_name(&format!("nodes.{node}"), instance)?;
    }
    if plan.poll < Duration::from_secs(1) || plan.poll > Duration::from_secs(3600) {
        bail!("poll: {} is not 1s-1h", plan.poll);
    }
    check_gates("gates", &plan.gates)?;
    if plan.stages.is_empty() || plan.stages.len() > MAX_STAGES {
        bail!("stages: needs 1-{MAX_STAGES} stages, has {}", plan.stages.len());
    }
    let mut taken = BTreeSet::new();
    let mut names = BTreeSet::new();
    let mut lists = Vec::new();
    for (i, s) in plan.stages.iter().enumerate() {
        let path = format!("stages[{i}]");
        check_name(&format!("{path}.name"), &s.name)?;
        if !names.insert(s.name.as_str()) {
            bail!("{path}.name: {:?} names an earlier stage too", s.name);
        }
        if s.soak > MAX_SOAK {
            bail!("{path}.soak: {} is over 7d", s.soak);
        }
        if let Some(g) = &s.gates {
            check_gates(&format!("{path}.gates"), g)?;
        }
        let nodes: Vec<String> = if s.rest {
            if !s.nodes.is_empty() || i + 1 != plan.stages.len() {
                bail!("{path}.rest: only the last stage takes the rest, and then names no nodes");
            }
            plan.nodes.keys().filter(|n| !taken.contains(*n)).cloned().collect()
        } else {
            for (j, n) in s.nodes.iter().enumerate() {
                if !plan.nodes.contains_key(n) {
                    bail!("{path}.nodes[{j}]: {:?} is not in nodes", n.chars().take(40).collect::<String>());
                }
                if !taken.insert(n.clone()) {
                    bail!("{path}.nodes[{j}]: {n:?} is in an earlier stage too");
                }
            }
            s.nodes.clone()
        };
        if nodes.is_empty() {
            bail!("{path}: no nodes (a `rest` stage after every node was taken, or an empty list)");
        }
        lists.push(nodes);
    }
    Ok(plan
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| ResolvedStage {
            index: i,
            name: s.name.clone(),
            nodes: lists[i].clone(),
            later: lists[i + 1..].iter().flatten().cloned().collect(),
            soak: s.soak,
            gates: s.gates.clone().unwrap_or_else(|| plan.gates.clone()),
        })
        .collect())
}

/// A command with its placeholders replaced.
pub fn expand(argv: &[String], plan: &Plan, node: &str, rollout_id: &str) -> Vec<String> {
    argv.iter()
        .map(|a| {
            a.replace("{rollback_flake}", &plan.rollback_flake)
                .replace("{flake}", &plan.flake)
                .replace("{node}", node)
                .replace("{rollout_id}", rollout_id)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const PLAN: &str = r#"{"version":1,"name":"r","flake":".","rollback_flake":"github:o/f/abc",
        "prometheus":{"url":"http://127.0.0.1:9090"},
        "nodes":{"canary":"c:9101","a":"a:9101","b":"b:9101","z":"z:9101"},
        "stages":[{"name":"canary","nodes":["canary"],"soak":"1h"},
                  {"name":"rack","nodes":["a","b"],"soak":"1h"},
                  {"name":"rest","rest":true,"soak":"10m"}]}"#;

    #[test]
    fn a_plan_resolves_its_stages_and_the_hosts_after_each() {
        let (plan, stages) = parse(PLAN).unwrap();
        assert_eq!(stages[0].later, ["a", "b", "z"]);
        assert_eq!(stages[2].nodes, ["z"]);
        assert!(stages[2].later.is_empty());
        assert_eq!(expand(&plan.deploy, &plan, "a", "id"), ["deploy", ".#a"]);
        assert_eq!(expand(&plan.rollback, &plan, "a", "id"), ["deploy", "github:o/f/abc#a"]);
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (r#""nodes":["canary"]"#, r#""nodes":["nope"]"#, "stages[0].nodes[0]"),
            (r#""nodes":["a","b"]"#, r#""nodes":["a","canary"]"#, "stages[1].nodes[1]"),
            (r#""soak":"1h"}"#, r#""soak":"8d"}"#, "stages[0].soak"),
            (r#""rollback_flake":"github:o/f/abc""#, r#""rollback_flake":".""#, "rollback_flake"),
            (r#""url":"http://127.0.0.1:9090""#, r#""url":"https://x""#, "prometheus.url"),
            (r#""version":1"#, r#""version":2"#, "version"),
            (r#""name":"rest","rest":true"#, r#""name":"canary","rest":true"#, "stages[2].name"),
        ];
        for (from, to, path) in cases {
            let text = PLAN.replacen(from, to, 1);
            assert_ne!(text, PLAN, "{from}");
            let e = format!("{:#}", parse(&text).unwrap_err());
            assert!(e.contains(path), "{path}: {e}");
        }
        let e = format!("{:#}", parse(&PLAN.replace(r#""soak":"1h"}"#, r#""soak":"1h","extra":1}"#)).unwrap_err());
        assert!(e.contains("extra"), "{e}");
        let g = r#""soak":"1h","gates":{"alpha":0.7}}"#;
        let e = format!("{:#}", parse(&PLAN.replacen(r#""soak":"1h"}"#, g, 1)).unwrap_err());
        assert!(e.contains("stages[0].gates.alpha"), "{e}");
    }

    #[test]
    fn too_many_stages_or_a_plan_too_large_are_refused() {
        let stages: Vec<String> = (0..=MAX_STAGES).map(|i| format!(r#"{{"name":"s{i}","nodes":["n{i}"],"soak":"1s"}}"#)).collect();
        let nodes: Vec<String> = (0..=MAX_STAGES).map(|i| format!(r#""n{i}":"h{i}:1""#)).collect();
        let text = format!(
            r#"{{"version":1,"name":"r","flake":".","rollback_flake":"o","prometheus":{{"url":"http://p:9090"}},"nodes":{{{}}},"stages":[{}]}}"#,
            nodes.join(","),
            stages.join(",")
        );
        assert!(format!("{:#}", parse(&text).unwrap_err()).contains("stages: needs 1-32"));
        let dir = std::env::temp_dir().join(format!("scx-slo-plan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("big.json");
        std::fs::write(&big, " ".repeat(MAX_PLAN_BYTES as usize + 1)).unwrap();
        assert!(format!("{:#}", load(&big).unwrap_err()).contains("over 256 KiB"));
        assert!(format!("{:#}", load(&dir).unwrap_err()).contains("not a regular file"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
