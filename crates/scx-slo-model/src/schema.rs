// SPDX-License-Identifier: GPL-2.0-only
//! The config's schema as JSON Schema (draft 2020-12), built from the model's
//! own constants: the enums' variant lists, the bounds and defaults the
//! validator uses ([`crate::bounds`]) and the duration syntax the parser
//! accepts. `scx-slo schema` prints it; data/config.schema.json is that
//! output, committed (a test fails when it is stale), so the NixOS module
//! reads enums, ranges and defaults from it with `builtins.fromJSON`, and
//! docs/config.md is checked against it.
//!
//! JSON Schema cannot compare durations, so duration fields carry their
//! bounds as `x-minimum`/`x-maximum` strings next to the pattern. Every
//! bounded field has `x-range`, the range as the validator's messages and
//! docs/config.md write it (`50us..=100ms`, `(0, 4]`). The schema describes
//! what is accepted field by field; relations between fields (runtime <=
//! deadline <= period, admission, unique cgroups) are the validator's alone.

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::bounds::{defaults, limits};
use crate::config::{AdaptiveSli, Class, Mode, Preemption, SwitchMode, CONFIG_VERSION, DEFAULT_WEIGHT, MAX_PRIORITY, MAX_TARGETS, WEIGHT_RANGE};
use crate::duration::{Duration, UNITS};

/// The duration syntax: a whole number without leading zeros and a unit.
pub fn duration_pattern() -> String {
    let units: Vec<&str> = UNITS.iter().map(|(name, _)| *name).collect();
    format!("^(0|[1-9][0-9]*)({})$", units.join("|"))
}

/// A value's name in config.json (`lower-priority`, `auto`).
fn wire<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn enumeration<T: Serialize>(all: &[T], default: Option<&T>, doc: &str) -> Value {
    let mut v = json!({ "enum": all.iter().map(wire).collect::<Vec<_>>(), "description": doc });
    if let Some(d) = default {
        v["default"] = wire(d);
    }
    v
}

fn duration(doc: &str, default: Option<Duration>, range: Option<(Duration, Duration)>) -> Value {
    let mut v = json!({ "$ref": "#/$defs/duration", "description": doc });
    if let Some(d) = default {
        v["default"] = json!(d.to_string());
    }
    if let Some((lo, hi)) = range {
        v["x-minimum"] = json!(lo.to_string());
        v["x-maximum"] = json!(hi.to_string());
        v["x-range"] = json!(format!("{lo}..={hi}"));
    }
    v
}

fn integer(doc: &str, default: Option<u64>, (lo, hi): (u64, u64)) -> Value {
    let mut v = json!({ "type": "integer", "minimum": lo, "maximum": hi, "x-range": format!("{lo}..={hi}"), "description": doc });
    if let Some(d) = default {
        v["default"] = json!(d);
    }
    v
}

/// A number in `(lo, hi]`.
fn fraction(doc: &str, default: f64, lo: f64, hi: f64) -> Value {
    json!({ "type": "number", "exclusiveMinimum": lo, "maximum": hi, "x-range": format!("({lo}, {hi}]"), "default": default, "description": doc })
}

fn object(doc: &str, properties: Value) -> Value {
    json!({ "type": "object", "additionalProperties": false, "description": doc, "properties": properties })
}

/// The priority's default depends on the class: `x-default-by-class`.
fn priority() -> Value {
    let mut v = integer(
        &format!("higher wins preemption; default {} for latency, {} for batch", defaults::LATENCY_PRIORITY, defaults::BATCH_PRIORITY),
        None,
        (0, u64::from(MAX_PRIORITY)),
    );
    v["x-default-by-class"] = json!({ "latency": defaults::LATENCY_PRIORITY, "batch": defaults::BATCH_PRIORITY });
    v
}

/// A gain in `[0, ADAPTIVE_GAIN_MAX]`.
fn gain(doc: &str, default: f64) -> Value {
    let hi = limits::ADAPTIVE_GAIN_MAX;
    json!({ "type": "number", "minimum": 0, "maximum": hi, "x-range": format!("[0, {hi}]"), "default": default, "description": doc })
}

/// `targets.<name>.adaptive`: latency targets only; the runtime bounds'
/// defaults depend on the deadline (`x-default`).
fn adaptive() -> Value {
    let g = crate::adaptive::DEFAULT_GAINS;
    let (lo, hi) = limits::ADAPTIVE_MIN_SAMPLES_RANGE;
    let mut min_runtime = duration("lowest runtime the controller sets", None, None);
    min_runtime["x-default"] = json!(format!("deadline / {} (at least {})", defaults::ADAPTIVE_MIN_RUNTIME_DIVISOR, limits::MIN_RUNTIME));
    let mut max_runtime = duration("highest runtime the controller sets; at most the deadline", None, None);
    max_runtime["x-default"] = json!("the deadline");
    let mut objective = duration("the p99 of the sli to keep; for response, within the deadline", None, None);
    objective["x-default"] = json!("slo.latency.p99");
    let mut sli = enumeration(&AdaptiveSli::ALL, None, "response: job response time (wakeup to completion); queue_delay: wakeup to first run; service: the target's scrape histogram");
    sli["x-default"] = json!("service with a scrape block, else response");
    object("latency targets only: adapt budget.runtime to the measured p99 (docs/tuning.md)", json!({
        "sli": sli,
        "objective": objective,
        "interval": duration("how often it measures and may change the budget", Some(defaults::ADAPTIVE_INTERVAL), Some(limits::ADAPTIVE_INTERVAL_RANGE)),
        "min_runtime": min_runtime,
        "max_runtime": max_runtime,
        "max_step": fraction("largest factor one change applies (lowering: a third of it in the log)", defaults::ADAPTIVE_MAX_STEP, 1.0, limits::ADAPTIVE_MAX_STEP_MAX),
        "cooldown": integer("intervals it holds after a change", Some(u64::from(defaults::ADAPTIVE_COOLDOWN)), (0, limits::ADAPTIVE_COOLDOWN_MAX)),
        "min_samples": integer("jobs an interval needs before its p99 counts", Some(defaults::ADAPTIVE_MIN_SAMPLES), (lo, hi)),
        "gains": object("PID gains on the log of the runtime, per interval", json!({
            "kp": gain("proportional", g.kp),
            "ki": gain("integral", g.ki),
            "kd": gain("derivative", g.kd),
        })),
        "dry_run": { "type": "boolean", "default": defaults::ADAPTIVE_DRY_RUN, "description": "log what it would set, change nothing" },
    }))
}

/// `targets.<name>.scrape`: both fields required.
fn scrape() -> Value {
    let mut s = object("latency targets only: the service's own latency histogram, on this host (docs/tuning.md)", json!({
        "url": {
            "type": "string", "maxLength": limits::SCRAPE_URL_MAX, "pattern": "^http://",
            "description": "its Prometheus endpoint on loopback: http://127.0.0.1:PORT/PATH, http://[::1]:PORT/PATH or http://localhost:PORT/PATH",
        },
        "histogram": {
            "type": "string", "maxLength": limits::SCRAPE_HISTOGRAM_MAX, "pattern": "^[a-zA-Z_:][a-zA-Z0-9_:]*$",
            "description": "the histogram's base name (le in seconds), e.g. http_request_duration_seconds; its label sets are summed",
        },
    }));
    s["required"] = json!(["url", "histogram"]);
    s
}

fn target() -> Value {
    let mut t = object(
        "A target: a systemd unit (.service, .slice, .scope) or a cgroup path (starting with /).",
        json!({
            "class": enumeration(&Class::ALL, None, "latency: earliest-deadline-first while the budget lasts; batch: weighted virtual time"),
            "budget": {
                "type": "object",
                "additionalProperties": false,
                "required": ["runtime", "period"],
                "description": "CPU time the whole unit may use per period; required for latency, refused for batch",
                "properties": {
                    "runtime": duration("runtime per period; at most the period", None, Some((limits::MIN_RUNTIME, limits::MAX_PERIOD))),
                    "period": duration("the replenishment period", None, Some((limits::MIN_PERIOD, limits::MAX_PERIOD))),
                },
            },
            "deadline": duration("relative deadline of each job; runtime <= deadline <= period", None, Some((limits::MIN_RUNTIME, limits::MAX_PERIOD))),
            "priority": priority(),
            "preemption": enumeration(&Preemption::ALL, None, "default lower-priority for latency; batch targets only take never"),
            "weight": integer("share in virtual time, on systemd's CPUWeight scale", Some(u64::from(DEFAULT_WEIGHT)), (u64::from(WEIGHT_RANGE.0), u64::from(WEIGHT_RANGE.1))),
            "cgroup": { "type": "string", "pattern": "^/", "description": "explicit cgroup path for a unit, relative to the cgroup2 root" },
            "slo": object("the service-level objective (metrics and alerts)", json!({
                "latency": object("latency objectives; non-decreasing, non-zero", json!({
                    "p50": duration("median", None, None),
                    "p95": duration("95th percentile", None, None),
                    "p99": duration("99th percentile", None, None),
                })),
                "availability": {
                    "type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "x-range": "(0, 1)",
                    "default": defaults::AVAILABILITY, "description": "fraction of good events",
                },
                "error_budget_window": duration("the window the error budget is counted over", Some(defaults::ERROR_BUDGET_WINDOW), Some(limits::WINDOW_RANGE)),
            })),
            "adaptive": adaptive(),
            "scrape": scrape(),
        }),
    );
    t["required"] = json!(["class"]);
    t
}

/// The schema document.
pub fn config_schema() -> Value {
    let mut defs = Map::new();
    defs.insert("duration".into(), json!({ "type": "string", "pattern": duration_pattern(), "description": "a whole number and a unit: ns, us, ms, s, m, h, d" }));
    defs.insert("target".into(), target());
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": format!("scx-slo config, version {CONFIG_VERSION}"),
        "description": "Generated by `scx-slo schema` from the model's constants; do not edit (docs/config.md explains each key).",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "version": { "const": CONFIG_VERSION, "default": CONFIG_VERSION, "description": "the config schema version" },
            "mode": enumeration(&Mode::ALL, Some(&Mode::default()), "auto picks the highest mode the host supports"),
            "switch": enumeration(&SwitchMode::ALL, Some(&SwitchMode::default()), "enforce mode: which tasks run on scx_slo"),
            "admission": object("admission control", json!({
                "cpu_capacity": {
                    "oneOf": [
                        { "type": "integer", "minimum": 1, "maximum": limits::MAX_CPUS },
                        { "const": "auto" },
                    ],
                    "default": "auto",
                    "x-range": format!("1..={}", limits::MAX_CPUS),
                    "description": "CPUs to admit against; auto: the daemon's host's online CPUs",
                },
                "overcommit": fraction("factor on capacity", defaults::OVERCOMMIT, 0.0, limits::OVERCOMMIT_MAX),
            })),
            "scheduler": object("load-time knobs of the BPF scheduler", json!({
                "slice_max": duration("longest slice any task gets", Some(defaults::SLICE_MAX), Some(limits::SLICE_RANGE)),
                "slice_min": duration("batch slice while non-preempting latency targets exist; at most slice_max", Some(defaults::SLICE_MIN), Some(limits::SLICE_RANGE)),
                "max_wait": duration("bound on any runnable task's wait; at least slice_max", Some(defaults::MAX_WAIT), Some(limits::MAX_WAIT_RANGE)),
            })),
            "numa": object("NUMA behaviour", json!({
                "migration_threshold": integer(
                    "an idle CPU pulls from another node only when it has this many tasks queued",
                    Some(u64::from(defaults::MIGRATION_THRESHOLD)),
                    (0, u64::from(limits::MIGRATION_THRESHOLD_MAX)),
                ),
            })),
            "early_warning": object("low-slack events", json!({
                "slack_threshold": duration("a job that ends with less slack sends an event", Some(defaults::SLACK_THRESHOLD), Some(limits::SLACK_THRESHOLD_RANGE)),
                "min_interval": duration("at most one event per target per interval", Some(defaults::WARNING_INTERVAL), Some(limits::WARNING_INTERVAL_RANGE)),
            })),
            "observe": object("observe mode", json!({
                "overhead_budget": fraction("most CPU the probes may use, as a fraction of one CPU", defaults::OVERHEAD_BUDGET, 0.0, limits::OVERHEAD_BUDGET_MAX),
            })),
            "advisory": object("advisory mode's CPUWeight controller", json!({
                "interval": duration("how often weights are recomputed", Some(defaults::ADVISORY_INTERVAL), Some(limits::ADVISORY_INTERVAL_RANGE)),
                "dry_run": { "type": "boolean", "default": defaults::ADVISORY_DRY_RUN, "description": "log what would be set, call nothing" },
                "max_step": fraction("largest factor one change applies", defaults::ADVISORY_MAX_STEP, 1.0, limits::ADVISORY_MAX_STEP_MAX),
                "min_weight": integer("lowest CPUWeight recommended", Some(u64::from(defaults::ADVISORY_MIN_WEIGHT)), (u64::from(WEIGHT_RANGE.0), u64::from(WEIGHT_RANGE.1))),
                "max_weight": integer("highest; at least min_weight", Some(u64::from(defaults::ADVISORY_MAX_WEIGHT)), (u64::from(WEIGHT_RANGE.0), u64::from(WEIGHT_RANGE.1))),
            })),
            "canary": object("A/B canary: scx-slo enforcing and the default scheduler take turns, judged on the latency targets' run-queue delay; absent: no canary", json!({
                "window": duration("one arm's window; a pair takes twice this", Some(defaults::CANARY_WINDOW), Some(limits::CANARY_WINDOW_RANGE)),
                "min_samples": integer("fewest run-queue delay samples per arm for a verdict", Some(defaults::CANARY_MIN_SAMPLES), limits::CANARY_MIN_SAMPLES_RANGE),
                "max_regression": fraction("the p99 regression that rolls back, as a fraction", defaults::CANARY_MAX_REGRESSION, 0.0, limits::CANARY_MAX_REGRESSION_MAX),
                "promote_after": integer("windows in a row judged better or same that promote", Some(u64::from(defaults::CANARY_PROMOTE_AFTER)), limits::CANARY_PROMOTE_AFTER_RANGE),
                "max_windows": integer("windows after which an undecided canary expires; at least promote_after", Some(u64::from(defaults::CANARY_MAX_WINDOWS)), limits::CANARY_MAX_WINDOWS_RANGE),
            })),
            "targets": {
                "type": "object",
                "maxProperties": MAX_TARGETS,
                "default": {},
                "additionalProperties": { "$ref": "#/$defs/target" },
                "description": "keyed by systemd unit or slice name, or by cgroup path",
            },
        },
        "$defs": defs,
    })
}

/// The schema as committed: pretty JSON with a final newline.
pub fn config_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&config_schema()).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `ALL` lists name every variant (adding one without listing it
    /// fails to compile here).
    #[test]
    fn enum_lists_are_complete() {
        for m in Mode::ALL {
            match m {
                Mode::Auto | Mode::Observe | Mode::Advisory | Mode::Enforce => {}
            }
        }
        assert_eq!(Mode::ALL.len(), 4);
        let check = |c: Class| matches!(c, Class::Latency | Class::Batch);
        assert!(Class::ALL.iter().all(|c| check(*c)) && Class::ALL.len() == 2);
        let check = |p: Preemption| matches!(p, Preemption::Never | Preemption::LowerPriority);
        assert!(Preemption::ALL.iter().all(|p| check(*p)) && Preemption::ALL.len() == 2);
        let check = |s: SwitchMode| matches!(s, SwitchMode::Partial | SwitchMode::All);
        assert!(SwitchMode::ALL.iter().all(|s| check(*s)) && SwitchMode::ALL.len() == 2);
    }

    /// The pattern accepts what the parser accepts, on both sides of each rule.
    #[test]
    fn the_duration_pattern_is_the_parsers_syntax() {
        let pattern = duration_pattern();
        let matches = |s: &str| {
            let body = pattern.trim_start_matches('^').trim_end_matches('$');
            let (num, units) = body.split_once(")(").unwrap();
            let _ = num;
            let units: Vec<&str> = units.trim_end_matches(')').split('|').collect();
            let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            let (n, u) = s.split_at(split);
            !n.is_empty() && (n == "0" || !n.starts_with('0')) && units.contains(&u)
        };
        for s in ["0s", "5ms", "500us", "30d", "1h", "10ns", "05ms", "5", "ms", "1.5ms", "5 ms", "5sec", "5MS"] {
            assert_eq!(matches(s), s.parse::<Duration>().is_ok(), "{s}");
        }
    }

    #[test]
    fn defaults_and_ranges_come_from_the_validators_constants() {
        let s = config_schema();
        let p = &s["properties"];
        assert_eq!(p["scheduler"]["properties"]["slice_max"]["default"], "5ms");
        assert_eq!(p["scheduler"]["properties"]["slice_max"]["x-range"], "50us..=100ms");
        assert_eq!(p["admission"]["properties"]["overcommit"]["x-range"], "(0, 4]");
        assert_eq!(p["mode"]["enum"], json!(["auto", "observe", "advisory", "enforce"]));
        assert_eq!(s["$defs"]["target"]["properties"]["priority"]["maximum"], 1000);
        assert_eq!(p["targets"]["maxProperties"], 1024);
    }
}
