// SPDX-License-Identifier: GPL-2.0-only
//! Text → [`RawConfig`] → [`Config`], collecting every problem with its path.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::admission;
use crate::config::*;
use crate::duration::Duration;
use crate::error::{ConfigErrors, JsonPath};
use crate::raw::*;

pub use crate::bounds::{defaults, limits};

/// Parses and validates a config, running offline admission control.
///
/// `online_cpus` is the capacity used when `admission.cpu_capacity` is
/// `"auto"`: the daemon passes the host's CPUs; the offline checker passes
/// `None` and admission is then left to the daemon.
pub fn load_str(text: &str, online_cpus: Option<u32>) -> Result<Config, ConfigErrors> {
    load_str_with_budgets(text, online_cpus, &BTreeMap::new())
}

/// [`load_str`] with some latency targets' budgets replaced (the daemon's
/// runtime overrides) before validation, so an override is checked by the
/// same rules, with the same messages, as a budget written in the file, and
/// admission runs on the result as a whole. An override for a key the file
/// does not have is ignored here (the caller decides what to say about it).
pub fn load_str_with_budgets(text: &str, online_cpus: Option<u32>, budgets: &BTreeMap<String, Budget>) -> Result<Config, ConfigErrors> {
    let (raw, mut errors) = parse_partial(text);
    let Some(mut raw) = raw else { return Err(errors) };
    for (key, target) in &mut raw.targets {
        if let (Some(b), Some(t)) = (budgets.get(key), target.as_mut()) {
            t.budget = Some(RawBudget { runtime: b.runtime, period: b.period });
        }
    }
    // Validate what did parse, so that one run reports parse and value
    // problems together.
    let config = match validate(raw) {
        Ok(config) if errors.is_empty() => config,
        Ok(_) => return Err(errors),
        Err(more) => {
            errors.problems.extend(more.problems);
            return Err(errors);
        }
    };
    if let Err(problem) = admission::check(&config, online_cpus) {
        errors.problems.push(problem);
        return Err(errors);
    }
    Ok(config)
}

fn section<T: DeserializeOwned>(errors: &mut ConfigErrors, path: &JsonPath, value: Value) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let at = path.join_serde(e.path());
            errors.push(at, e.into_inner().to_string());
            None
        }
    }
}

/// Parses JSON into sections. Syntax errors stop here; each section and each
/// target is parsed on its own so that all of their problems are reported.
pub fn parse(text: &str) -> Result<RawConfig, ConfigErrors> {
    match parse_partial(text) {
        (Some(raw), errors) if errors.is_empty() => Ok(raw),
        (_, errors) => Err(errors),
    }
}

/// What parsed (`None` when the text is not a JSON object) and every problem found.
fn parse_partial(text: &str) -> (Option<RawConfig>, ConfigErrors) {
    let mut errors = ConfigErrors::default();
    let root = JsonPath::root();
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            errors.push(root, format!("invalid JSON: {e}"));
            return (None, errors);
        }
    };
    let Value::Object(map) = value else {
        errors.push(root, "a config is a JSON object");
        return (None, errors);
    };
    // Value keeps the last of two equal keys and the derived sections accept
    // arrays: both would pass unnoticed below.
    let shape = crate::shape::shape_problems(text);
    if !shape.is_empty() {
        for (path, message) in shape {
            errors.push(path, message);
        }
        return (None, errors);
    }
    let mut raw = RawConfig::default();
    for (key, value) in map {
        let path = root.key(key.as_str());
        match key.as_str() {
            "version" => raw.version = section(&mut errors, &path, value),
            "mode" => raw.mode = section(&mut errors, &path, value),
            "switch" => raw.switch = section(&mut errors, &path, value),
            "admission" => raw.admission = section(&mut errors, &path, value),
            "scheduler" => raw.scheduler = section(&mut errors, &path, value),
            "numa" => raw.numa = section(&mut errors, &path, value),
            "early_warning" => raw.early_warning = section(&mut errors, &path, value),
            "observe" => raw.observe = section(&mut errors, &path, value),
            "advisory" => raw.advisory = section(&mut errors, &path, value),
            "canary" => raw.canary = section(&mut errors, &path, value),
            "targets" => match value {
                Value::Object(targets) => {
                    for (name, target) in targets {
                        let parsed = section(&mut errors, &path.key(name.as_str()), target);
                        raw.targets.push((name, parsed));
                    }
                }
                _ => errors.push(path, "targets is an object keyed by unit name or cgroup path"),
            },
            other => errors.push(
                path,
                format!("unknown field `{other}`, expected one of {}", TOP_LEVEL_KEYS.join(", ")),
            ),
        }
    }
    if raw.version.is_none() && !errors.paths().iter().any(|p| p == "version") {
        errors.push(root.key("version"), format!("missing; this scx-slo reads version {CONFIG_VERSION}"));
    }
    (Some(raw), errors)
}

use crate::error::in_range;

/// Checks values and relations between them and fills defaults.
pub fn validate(raw: RawConfig) -> Result<Config, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let root = JsonPath::root();

    let version = raw.version.unwrap_or(u64::from(CONFIG_VERSION));
    if version != u64::from(CONFIG_VERSION) {
        errors.push(
            root.key("version"),
            format!("unsupported config version {version} (this scx-slo reads version {CONFIG_VERSION})"),
        );
    }

    let admission = validate_admission(&mut errors, raw.admission.unwrap_or_default());
    let scheduler = validate_scheduler(&mut errors, raw.scheduler.unwrap_or_default());
    let numa_raw = raw.numa.unwrap_or_default();
    let migration_threshold = match numa_raw.migration_threshold {
        None => defaults::MIGRATION_THRESHOLD,
        Some(n) => u32::try_from(n).ok().filter(|n| *n <= limits::MIGRATION_THRESHOLD_MAX).unwrap_or_else(|| {
            errors.push(root.key("numa").key("migration_threshold"), format!("{n} is outside 0..={}", limits::MIGRATION_THRESHOLD_MAX));
            defaults::MIGRATION_THRESHOLD
        }),
    };
    let warn_raw = raw.early_warning.unwrap_or_default();
    let ew_path = root.key("early_warning");
    let early_warning = EarlyWarning {
        slack_threshold: in_range(
            &mut errors,
            ew_path.key("slack_threshold"),
            warn_raw.slack_threshold.unwrap_or(defaults::SLACK_THRESHOLD),
            limits::SLACK_THRESHOLD_RANGE,
        ),
        min_interval: in_range(
            &mut errors,
            ew_path.key("min_interval"),
            warn_raw.min_interval.unwrap_or(defaults::WARNING_INTERVAL),
            limits::WARNING_INTERVAL_RANGE,
        ),
    };

    let observe = validate_observe(&mut errors, raw.observe.unwrap_or_default());
    let advisory = validate_advisory(&mut errors, raw.advisory.unwrap_or_default());

    let targets_path = root.key("targets");
    if raw.targets.len() > MAX_TARGETS {
        errors.push(
            targets_path.clone(),
            format!("{} targets; at most {MAX_TARGETS} are supported", raw.targets.len()),
        );
    }
    let mut targets = Vec::with_capacity(raw.targets.len());
    for (key, target) in raw.targets {
        let path = targets_path.key(key.as_str());
        if let Some(target) = target {
            if let Some(t) = validate_target(&mut errors, &path, key, target) {
                targets.push(t);
            }
        }
    }
    check_duplicate_cgroups(&mut errors, &targets_path, &targets);
    let scrapes = targets.iter().filter(|t| t.scrape.is_some()).count();
    if scrapes > limits::MAX_SCRAPES {
        errors.push(targets_path.clone(), format!("{scrapes} targets have a scrape block; at most {} may (the daemon scrapes them in turn every second)", limits::MAX_SCRAPES));
    }
    let mode = raw.mode.unwrap_or_default();
    let canary = raw.canary.and_then(|c| crate::canary_block::validate_canary(&mut errors, c, mode, &targets));

    if errors.is_empty() {
        Ok(Config {
            version: CONFIG_VERSION,
            mode,
            switch: raw.switch.unwrap_or_default(),
            admission,
            scheduler,
            numa: Numa { migration_threshold },
            early_warning,
            observe,
            advisory,
            canary,
            targets,
        })
    } else {
        Err(errors)
    }
}

fn validate_observe(errors: &mut ConfigErrors, raw: RawObserve) -> ObserveSettings {
    let overhead_budget = raw.overhead_budget.unwrap_or(defaults::OVERHEAD_BUDGET);
    if !(overhead_budget > 0.0 && overhead_budget <= limits::OVERHEAD_BUDGET_MAX) {
        errors.push(
            JsonPath::root().key("observe").key("overhead_budget"),
            format!("{overhead_budget} is outside (0, {}]: it is a fraction of one CPU, e.g. 0.01 for 1%", limits::OVERHEAD_BUDGET_MAX),
        );
    }
    ObserveSettings { overhead_budget }
}

fn validate_advisory(errors: &mut ConfigErrors, raw: RawAdvisory) -> AdvisorySettings {
    let path = JsonPath::root().key("advisory");
    let interval = in_range(
        errors,
        path.key("interval"),
        raw.interval.unwrap_or(defaults::ADVISORY_INTERVAL),
        limits::ADVISORY_INTERVAL_RANGE,
    );
    let max_step = raw.max_step.unwrap_or(defaults::ADVISORY_MAX_STEP);
    if !(max_step > 1.0 && max_step <= limits::ADVISORY_MAX_STEP_MAX) {
        errors.push(path.key("max_step"), format!("{max_step} is outside (1, {}]: the largest factor one change may apply", limits::ADVISORY_MAX_STEP_MAX));
    }
    let (lo, hi) = WEIGHT_RANGE;
    let mut weight = |name: &str, value: Option<u64>, default: u32| match value {
        None => default,
        Some(v) => u32::try_from(v).ok().filter(|v| (lo..=hi).contains(v)).unwrap_or_else(|| {
            errors.push(path.key(name), format!("{v} is outside {lo}..={hi} (systemd's CPUWeight range)"));
            default
        }),
    };
    let min_weight = weight("min_weight", raw.min_weight, defaults::ADVISORY_MIN_WEIGHT);
    let max_weight = weight("max_weight", raw.max_weight, defaults::ADVISORY_MAX_WEIGHT);
    if min_weight > max_weight {
        errors.push(path.key("min_weight"), format!("{min_weight} is above max_weight {max_weight}"));
    }
    AdvisorySettings { interval, dry_run: raw.dry_run.unwrap_or(defaults::ADVISORY_DRY_RUN), max_step, min_weight, max_weight }
}

fn validate_admission(errors: &mut ConfigErrors, raw: RawAdmission) -> Admission {
    let path = JsonPath::root().key("admission");
    let cpu_capacity = match raw.cpu_capacity {
        None | Some(RawCapacity::Word(AutoWord::Auto)) => None,
        Some(RawCapacity::Cpus(n)) if (1..=limits::MAX_CPUS).contains(&n) => u32::try_from(n).ok(),
        Some(RawCapacity::Cpus(n)) => {
            errors.push(
                path.key("cpu_capacity"),
                format!("{n} CPUs is outside 1..={}; or use \"auto\"", limits::MAX_CPUS),
            );
            None
        }
    };
    let overcommit = raw.overcommit.unwrap_or(defaults::OVERCOMMIT);
    if !(overcommit > 0.0 && overcommit <= limits::OVERCOMMIT_MAX) {
        errors.push(
            path.key("overcommit"),
            format!("{overcommit} is outside (0, {}]", limits::OVERCOMMIT_MAX),
        );
    }
    Admission { cpu_capacity, overcommit }
}

fn validate_scheduler(errors: &mut ConfigErrors, raw: RawScheduler) -> SchedulerTuning {
    let path = JsonPath::root().key("scheduler");
    let slice_max = in_range(
        errors,
        path.key("slice_max"),
        raw.slice_max.unwrap_or(defaults::SLICE_MAX),
        limits::SLICE_RANGE,
    );
    let slice_min = in_range(
        errors,
        path.key("slice_min"),
        raw.slice_min.unwrap_or(defaults::SLICE_MIN),
        limits::SLICE_RANGE,
    );
    let max_wait = in_range(
        errors,
        path.key("max_wait"),
        raw.max_wait.unwrap_or(defaults::MAX_WAIT),
        limits::MAX_WAIT_RANGE,
    );
    if slice_min > slice_max {
        errors.push(path.key("slice_min"), format!("{slice_min} exceeds slice_max {slice_max}"));
    }
    if max_wait < slice_max {
        errors.push(
            path.key("max_wait"),
            format!("{max_wait} is shorter than slice_max {slice_max}: a waiting task could never be served in time"),
        );
    }
    SchedulerTuning { slice_max, slice_min, max_wait }
}

const UNIT_SUFFIXES: [&str; 3] = [".service", ".slice", ".scope"];

/// Checks a systemd unit name as systemd would accept it for a cgroup-owning unit.
fn unit_name_problem(name: &str) -> Option<String> {
    if name.len() > 255 {
        return Some("unit names are at most 255 characters".into());
    }
    let Some(suffix) = UNIT_SUFFIXES.iter().find(|s| name.ends_with(*s)) else {
        return Some(format!(
            "{name:?} is neither a unit ending in {} nor a cgroup path starting with /",
            UNIT_SUFFIXES.join(", ")
        ));
    };
    let stem = &name[..name.len() - suffix.len()];
    if stem.is_empty() {
        return Some(format!("{name:?} has an empty name before {suffix}"));
    }
    if *suffix == ".slice" {
        // systemd's root slice is the root cgroup: every task on the host.
        if stem == "-" {
            return Some(
                "\"-.slice\" is the root slice (every task on the host) and cannot be a target; use switch = \"all\" instead"
                    .into(),
            );
        }
        // In a slice name "-" separates the path (a-b.slice is a.slice/a-b.slice):
        // a leading, trailing or doubled "-" names a cgroup systemd never creates.
        if stem.starts_with('-') || stem.ends_with('-') || stem.contains("--") {
            return Some(format!(
                "{name:?} can never resolve: in slice names \"-\" separates parent from child, so it may not lead, trail or repeat"
            ));
        }
    }
    if let Some(c) = stem
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || ":-_.\\@".contains(*c)))
    {
        return Some(format!("{name:?} contains {c:?}, which systemd does not allow in unit names"));
    }
    None
}

/// Checks a cgroup path relative to the cgroup2 root.
fn cgroup_path_problem(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return Some(format!("{path:?} must start with / (relative to the cgroup2 root)"));
    }
    if path == "/" {
        return Some("the root cgroup cannot be a target; use switch = \"all\" instead".into());
    }
    if path.ends_with('/') || path.contains("//") {
        return Some(format!("{path:?} has an empty component"));
    }
    if path.split('/').any(|c| c == "." || c == "..") {
        return Some(format!("{path:?} may not contain . or .. components"));
    }
    if path.chars().any(|c| c.is_control()) {
        return Some(format!("{path:?} contains a control character"));
    }
    None
}

fn validate_target(errors: &mut ConfigErrors, path: &JsonPath, key: String, raw: RawTarget) -> Option<Target> {
    let before = errors.problems.len();
    let selector = if key.starts_with('/') {
        if let Some(problem) = cgroup_path_problem(&key) {
            errors.push(path.clone(), problem);
        }
        if raw.cgroup.is_some() {
            errors.push(path.key("cgroup"), "a target keyed by cgroup path cannot also set cgroup");
        }
        Selector::Cgroup { path: key.clone() }
    } else {
        if let Some(problem) = unit_name_problem(&key) {
            errors.push(path.clone(), problem);
        }
        if let Some(problem) = raw.cgroup.as_deref().and_then(cgroup_path_problem) {
            errors.push(path.key("cgroup"), problem);
        }
        Selector::Unit { name: key.clone(), cgroup: raw.cgroup.clone() }
    };

    let priority = match raw.priority {
        None => match raw.class {
            Class::Latency => defaults::LATENCY_PRIORITY,
            Class::Batch => defaults::BATCH_PRIORITY,
        },
        Some(p) if p <= u64::from(MAX_PRIORITY) => p as u16,
        Some(p) => {
            errors.push(path.key("priority"), format!("{p} is outside 0..={MAX_PRIORITY}"));
            0
        }
    };
    let weight = match raw.weight {
        None => DEFAULT_WEIGHT,
        Some(w) if (u64::from(WEIGHT_RANGE.0)..=u64::from(WEIGHT_RANGE.1)).contains(&w) => w as u32,
        Some(w) => {
            errors.push(
                path.key("weight"),
                format!("{w} is outside {}..={} (systemd's CPUWeight scale)", WEIGHT_RANGE.0, WEIGHT_RANGE.1),
            );
            DEFAULT_WEIGHT
        }
    };

    let (budget, deadline, preemption) = match raw.class {
        Class::Latency => {
            let budget = match raw.budget {
                None => {
                    errors.push(path.key("budget"), "latency targets need a budget { runtime, period }");
                    None
                }
                Some(b) => Some(validate_budget(errors, &path.key("budget"), b)),
            };
            let deadline = match raw.deadline {
                None => {
                    errors.push(path.key("deadline"), "latency targets need a relative deadline");
                    None
                }
                Some(d) => {
                    if d < limits::MIN_RUNTIME {
                        errors.push(path.key("deadline"), format!("{d} is below the minimum {}", limits::MIN_RUNTIME));
                    } else if let Some(b) = budget {
                        if d < b.runtime {
                            errors.push(
                                path.key("deadline"),
                                format!("{d} is shorter than budget.runtime {} (runtime <= deadline <= period, as SCHED_DEADLINE)", b.runtime),
                            );
                        } else if d > b.period {
                            errors.push(
                                path.key("deadline"),
                                format!("{d} exceeds budget.period {} (runtime <= deadline <= period, as SCHED_DEADLINE)", b.period),
                            );
                        }
                    }
                    Some(d)
                }
            };
            (budget, deadline, raw.preemption.unwrap_or(Preemption::LowerPriority))
        }
        Class::Batch => {
            if raw.budget.is_some() {
                errors.push(path.key("budget"), "only latency targets take a budget; remove it or set class = \"latency\"");
            }
            if raw.deadline.is_some() {
                errors.push(path.key("deadline"), "only latency targets take a deadline; remove it or set class = \"latency\"");
            }
            if raw.preemption == Some(Preemption::LowerPriority) {
                errors.push(path.key("preemption"), "batch targets never preempt; use \"never\" or set class = \"latency\"");
            }
            (None, None, Preemption::Never)
        }
    };

    let slo = raw.slo.map(|s| validate_slo(errors, &path.key("slo"), s));
    let has_scrape = raw.scrape.is_some();
    let scrape = match (raw.scrape, raw.class) {
        (None, _) => None,
        (Some(_), Class::Batch) => {
            errors.push(path.key("scrape"), "only latency targets' histograms are read (by the controller and the canary); remove it or set class = \"latency\"");
            None
        }
        (Some(s), Class::Latency) => crate::scrape_block::validate_scrape(errors, &path.key("scrape"), s),
    };
    let adaptive = match (raw.adaptive, raw.class) {
        (None, _) => None,
        (Some(_), Class::Batch) => {
            errors.push(path.key("adaptive"), "only latency targets have a runtime budget to adapt; remove it or set class = \"latency\"");
            None
        }
        (Some(a), Class::Latency) => crate::adaptive_block::validate_adaptive(errors, &path.key("adaptive"), a, budget, deadline, slo.as_ref(), has_scrape),
    };

    if errors.problems.len() > before {
        return None;
    }
    Some(Target { key, selector, class: raw.class, budget, deadline, priority, preemption, weight, slo, adaptive, scrape })
}

fn validate_budget(errors: &mut ConfigErrors, path: &JsonPath, raw: RawBudget) -> Budget {
    if raw.period < limits::MIN_PERIOD || raw.period > limits::MAX_PERIOD {
        errors.push(
            path.key("period"),
            format!("{} is outside {}..={}", raw.period, limits::MIN_PERIOD, limits::MAX_PERIOD),
        );
    }
    if raw.runtime < limits::MIN_RUNTIME {
        errors.push(path.key("runtime"), format!("{} is below the minimum {}", raw.runtime, limits::MIN_RUNTIME));
    } else if raw.runtime > raw.period {
        errors.push(path.key("runtime"), format!("{} exceeds period {}", raw.runtime, raw.period));
    }
    Budget { runtime: raw.runtime, period: raw.period }
}

fn validate_slo(errors: &mut ConfigErrors, path: &JsonPath, raw: RawSlo) -> Slo {
    let latency = raw.latency.unwrap_or_default();
    let lat_path = path.key("latency");
    let ordered = [("p50", latency.p50), ("p95", latency.p95), ("p99", latency.p99)];
    let mut lower: Option<(&str, Duration)> = None;
    for (name, value) in ordered {
        let Some(value) = value else { continue };
        if value == Duration::ZERO {
            errors.push(lat_path.key(name), "a latency objective of 0s can never be met");
        }
        if let Some((lower_name, lower_value)) = lower {
            if value < lower_value {
                errors.push(lat_path.key(name), format!("{value} is below {lower_name} {lower_value}; percentiles must not decrease"));
            }
        }
        lower = Some((name, value));
    }
    let availability = raw.availability.unwrap_or(defaults::AVAILABILITY);
    if !(availability > 0.0 && availability < 1.0) {
        errors.push(
            path.key("availability"),
            format!("{availability} is outside (0, 1): 1.0 leaves no error budget, write e.g. 0.999"),
        );
    }
    let window = in_range(
        errors,
        path.key("error_budget_window"),
        raw.error_budget_window.unwrap_or(defaults::ERROR_BUDGET_WINDOW),
        limits::WINDOW_RANGE,
    );
    Slo {
        latency: LatencyObjectives { p50: latency.p50, p95: latency.p95, p99: latency.p99 },
        availability,
        error_budget_window: window,
    }
}

/// The cgroup a slice always lives at: systemd nests `a-b.slice` in
/// `a.slice`, so `a-b.slice` is `/a.slice/a-b.slice`.
pub fn slice_cgroup(name: &str) -> Option<String> {
    let stem = name.strip_suffix(".slice")?;
    let parts: Vec<&str> = stem.split('-').collect();
    Some((1..=parts.len()).map(|n| format!("/{}.slice", parts[..n].join("-"))).collect())
}

/// Two targets resolving to the same cgroup would race for its map entry:
/// explicit paths, `cgroup` overrides and the paths slices imply (a
/// `.service` resolves at run time, through its Slice=).
fn check_duplicate_cgroups(errors: &mut ConfigErrors, path: &JsonPath, targets: &[Target]) {
    let mut seen: std::collections::BTreeMap<String, &str> = Default::default();
    for t in targets {
        let cgroup = match &t.selector {
            Selector::Cgroup { path } => Some(path.trim_end_matches('/').to_string()),
            Selector::Unit { cgroup: Some(cg), .. } => Some(cg.trim_end_matches('/').to_string()),
            Selector::Unit { name, cgroup: None } => slice_cgroup(name),
        };
        if let Some(cg) = cgroup {
            if let Some(first) = seen.get(&cg) {
                errors.push(path.key(t.key.as_str()), format!("cgroup {cg:?} is already targeted by {first:?}"));
            } else {
                seen.insert(cg, &t.key);
            }
        }
    }
}
