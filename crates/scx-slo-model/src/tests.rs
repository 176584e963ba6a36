// SPDX-License-Identifier: GPL-2.0-only
//! Schema tests: every validation error asserts the path it names.

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::*;

fn errors_of(value: Value) -> ConfigErrors {
    load_str(&value.to_string(), None).expect_err("config should be rejected")
}

fn assert_rejected_at(value: Value, path: &str, fragment: &str) {
    let errors = errors_of(value);
    assert!(
        errors.problems.iter().any(|p| p.path.to_string() == path && p.message.contains(fragment)),
        "expected a problem at {path} containing {fragment:?}, got:\n{errors}"
    );
}

fn latency(runtime: &str, period: &str, deadline: &str) -> Value {
    json!({ "class": "latency", "budget": { "runtime": runtime, "period": period }, "deadline": deadline })
}

fn with_target(name: &str, target: Value) -> Value {
    json!({ "version": 1, "targets": { name: target } })
}

#[test]
fn examples_are_valid() {
    for (name, text) in [
        ("enforce.json", include_str!("../../../examples/enforce.json")),
        ("minimal.json", include_str!("../../../examples/minimal.json")),
    ] {
        let config = load_str(text, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!config.targets.is_empty(), "{name}");
    }
}

#[test]
fn example_enforce_reads_as_written() {
    let config = load_str(include_str!("../../../examples/enforce.json"), None).expect("valid");
    assert_eq!(config.mode, Mode::Enforce);
    assert_eq!(config.switch, SwitchMode::Partial);
    let api = config.targets.iter().find(|t| t.key == "api.service").expect("api");
    assert_eq!(api.budget.map(|b| b.runtime), Some(Duration::from_ms(3)));
    assert_eq!(api.priority, 800);
    assert_eq!(api.weight, 200);
    let legacy = config.targets.iter().find(|t| t.key == "/legacy/cron-jobs").expect("legacy");
    assert_eq!(legacy.selector, Selector::Cgroup { path: "/legacy/cron-jobs".into() });
}

#[test]
fn defaults_fill_in() {
    let config = load_str(include_str!("../../../examples/minimal.json"), None).expect("valid");
    assert_eq!(config.mode, Mode::Auto);
    assert_eq!(config.switch, SwitchMode::Partial);
    assert_eq!(config.scheduler.slice_max, validate::defaults::SLICE_MAX);
    let t = &config.targets[0];
    assert_eq!(t.priority, validate::defaults::LATENCY_PRIORITY);
    assert_eq!(t.preemption, Preemption::LowerPriority);
    assert_eq!(t.weight, DEFAULT_WEIGHT);
}

#[test]
fn runtime_over_period_names_the_field() {
    let errors = errors_of(with_target("api.service", latency("12ms", "10ms", "10ms")));
    assert_eq!(
        errors.problems[0].to_string(),
        r#"targets."api.service".budget.runtime: 12ms exceeds period 10ms"#
    );
}

#[test]
fn syntax_errors_give_line_and_column() {
    let errors = load_str("{\"version\": 1,,}", None).expect_err("bad json");
    assert!(errors.problems[0].message.contains("line 1 column"), "{errors}");
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let errors = errors_of(json!({
        "version": 1,
        "mode": "turbo",
        "scheduler": { "slice_max": "5 parsecs" },
        "targets": {
            "a.service": latency("12ms", "10ms", "10ms"),
            "b.service": { "class": "batch", "weight": 0 }
        }
    }));
    let paths = errors.paths();
    for expected in ["mode", "scheduler.slice_max", r#"targets."a.service".budget.runtime"#, r#"targets."b.service".weight"#] {
        assert!(paths.iter().any(|p| p == expected), "missing {expected} in {paths:?}");
    }
}

#[test]
fn each_validation_error_names_its_path() {
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({}), "version", "missing"),
        (json!({ "version": 2 }), "version", "unsupported config version 2"),
        (json!({ "version": 1, "colour": "red" }), "colour", "unknown field"),
        (json!({ "version": 1, "mode": "fast" }), "mode", "unknown variant"),
        (json!({ "version": 1, "switch": "some" }), "switch", "unknown variant"),
        (json!({ "version": 1, "admission": { "cpu_capacity": 0 } }), "admission.cpu_capacity", "outside"),
        (json!({ "version": 1, "admission": { "cpu_capacity": "many" } }), "admission.cpu_capacity", "did not match"),
        (json!({ "version": 1, "admission": { "overcommit": 0.0 } }), "admission.overcommit", "outside"),
        (json!({ "version": 1, "admission": { "overcommit": 9.0 } }), "admission.overcommit", "outside"),
        (json!({ "version": 1, "scheduler": { "slice_max": "1s" } }), "scheduler.slice_max", "outside"),
        (json!({ "version": 1, "scheduler": { "slice_min": "10ms", "slice_max": "5ms" } }), "scheduler.slice_min", "exceeds slice_max"),
        (json!({ "version": 1, "scheduler": { "max_wait": "1ms" } }), "scheduler.max_wait", "shorter than slice_max"),
        (json!({ "version": 1, "scheduler": { "max_wait": 50 } }), "scheduler.max_wait", "duration string"),
        (json!({ "version": 1, "numa": { "migration_threshold": 5000000 } }), "numa.migration_threshold", "outside"),
        (json!({ "version": 1, "early_warning": { "min_interval": "0s" } }), "early_warning.min_interval", "outside"),
        (json!({ "version": 1, "targets": [] }), "targets", "object keyed"),
        (with_target("nginx", latency("1ms", "10ms", "5ms")), r#"targets.nginx"#, "neither a unit"),
        (with_target("a b.service", latency("1ms", "10ms", "5ms")), r#"targets."a b.service""#, "does not allow"),
        (with_target(".service", latency("1ms", "10ms", "5ms")), r#"targets.".service""#, "empty name"),
        // The root slice, and slice names systemd never creates, would never
        // resolve to a unit of their own.
        (with_target("-.slice", json!({ "class": "batch", "weight": 10 })), r#"targets."-.slice""#, "root slice"),
        (with_target("a--b.slice", json!({ "class": "batch", "weight": 10 })), r#"targets."a--b.slice""#, "can never resolve"),
        // A slice and the cgroup path it implies are one cgroup: one target.
        (
            json!({ "version": 1, "targets": { "batch.slice": { "class": "batch" }, "/batch.slice": { "class": "batch" } } }),
            r#"targets."batch.slice""#,
            "already targeted by \"/batch.slice\"",
        ),
        (
            json!({ "version": 1, "targets": { "a-b.slice": { "class": "batch" }, "/a.slice/a-b.slice": { "class": "batch" } } }),
            r#"targets."a-b.slice""#,
            "already targeted",
        ),
        (with_target("-a.slice", json!({ "class": "batch", "weight": 10 })), r#"targets."-a.slice""#, "can never resolve"),
        (with_target("a-.slice", json!({ "class": "batch", "weight": 10 })), r#"targets."a-.slice""#, "can never resolve"),
        (with_target("/", latency("1ms", "10ms", "5ms")), r#"targets."/""#, "root cgroup"),
        (with_target("/a/../b", latency("1ms", "10ms", "5ms")), r#"targets."/a/../b""#, ".. components"),
        (with_target("/a//b", latency("1ms", "10ms", "5ms")), r#"targets."/a//b""#, "empty component"),
        (with_target("x.service", json!({ "class": "latency", "deadline": "1ms" })), r#"targets."x.service".budget"#, "need a budget"),
        (with_target("x.service", json!({ "class": "latency", "budget": { "runtime": "1ms", "period": "10ms" } })), r#"targets."x.service".deadline"#, "need a relative deadline"),
        (with_target("x.service", latency("1us", "10ms", "5ms")), r#"targets."x.service".budget.runtime"#, "below the minimum"),
        (with_target("x.service", latency("1ms", "20s", "5ms")), r#"targets."x.service".budget.period"#, "outside"),
        (with_target("x.service", latency("2ms", "10ms", "1ms")), r#"targets."x.service".deadline"#, "shorter than budget.runtime"),
        (with_target("x.service", latency("2ms", "10ms", "11ms")), r#"targets."x.service".deadline"#, "exceeds budget.period"),
        (with_target("x.service", json!({ "class": "latency", "budget": { "runtime": "1ms", "period": "10ms" }, "deadline": "5ms", "priority": 1001 })), r#"targets."x.service".priority"#, "outside 0..=1000"),
        (with_target("x.service", json!({ "class": "latency", "budget": { "runtime": "1ms", "period": "10ms" }, "deadline": "5ms", "preemption": "always" })), r#"targets."x.service".preemption"#, "unknown variant"),
        (with_target("x.service", json!({ "class": "batch", "weight": 20000 })), r#"targets."x.service".weight"#, "outside 1..=10000"),
        (with_target("x.service", json!({ "class": "batch", "budget": { "runtime": "1ms", "period": "10ms" } })), r#"targets."x.service".budget"#, "only latency targets"),
        (with_target("x.service", json!({ "class": "batch", "deadline": "1ms" })), r#"targets."x.service".deadline"#, "only latency targets"),
        (with_target("x.service", json!({ "class": "batch", "preemption": "lower-priority" })), r#"targets."x.service".preemption"#, "never preempt"),
        (with_target("x.service", json!({ "class": "idle" })), r#"targets."x.service".class"#, "unknown variant"),
        (with_target("x.service", json!({ "weight": 5 })), r#"targets."x.service""#, "missing field `class`"),
        (with_target("x.service", json!({ "class": "batch", "cgroup": "relative/path" })), r#"targets."x.service".cgroup"#, "must start with /"),
        (with_target("/a/b", json!({ "class": "batch", "cgroup": "/c" })), r#"targets."/a/b".cgroup"#, "cannot also set"),
        (with_target("x.service", json!({ "class": "batch", "slo": { "availability": 1.0 } })), r#"targets."x.service".slo.availability"#, "outside (0, 1)"),
        (with_target("x.service", json!({ "class": "batch", "slo": { "latency": { "p50": "5ms", "p99": "1ms" } } })), r#"targets."x.service".slo.latency.p99"#, "must not decrease"),
        (with_target("x.service", json!({ "class": "batch", "slo": { "latency": { "p50": "0s" } } })), r#"targets."x.service".slo.latency.p50"#, "never be met"),
        (with_target("x.service", json!({ "class": "batch", "slo": { "error_budget_window": "1m" } })), r#"targets."x.service".slo.error_budget_window"#, "outside"),
        (with_target("x.service", json!({ "class": "batch", "slo": { "burn": 1 } })), r#"targets."x.service".slo.burn"#, "unknown field"),
        (json!({ "version": 1, "targets": { "a.service": { "class": "batch", "cgroup": "/x" }, "b.service": { "class": "batch", "cgroup": "/x" } } }), r#"targets."b.service""#, "already targeted"),
        (json!({ "version": 1, "admission": { "cpu_capacity": 1 }, "targets": {
            "a.service": latency("6ms", "10ms", "10ms"), "b.service": latency("6ms", "10ms", "10ms") } }), "targets", "reserve 1.200 CPUs"),
    ];
    for (value, path, fragment) in cases {
        assert_rejected_at(value, path, fragment);
    }
}

#[test]
fn too_many_targets_are_refused() {
    let targets: serde_json::Map<String, Value> = (0..=MAX_TARGETS)
        .map(|i| (format!("u{i}.service"), json!({ "class": "batch" })))
        .collect();
    assert_rejected_at(json!({ "version": 1, "targets": targets }), "targets", "at most 1024");
}

#[test]
fn admission_uses_online_cpus_for_auto() {
    let text = json!({ "version": 1, "targets": {
        "a.service": latency("6ms", "10ms", "10ms"), "b.service": latency("6ms", "10ms", "10ms") } })
    .to_string();
    assert!(load_str(&text, None).is_ok(), "offline check cannot sum against auto");
    assert!(load_str(&text, Some(1)).is_err(), "1 CPU x 0.95 < 1.2");
    assert!(load_str(&text, Some(2)).is_ok(), "2 CPUs x 0.95 >= 1.2");
}

#[test]
fn admission_boundary_is_inclusive() {
    let text = json!({ "version": 1, "admission": { "cpu_capacity": 1, "overcommit": 1.0 }, "targets": {
        "a.service": latency("5ms", "10ms", "10ms"), "b.service": latency("5ms", "10ms", "10ms") } })
    .to_string();
    assert!(load_str(&text, None).is_ok());
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        prop_oneof![Just("5ms".to_string()), Just("latency".to_string()), Just("batch".to_string()), ".{0,8}"]
            .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("version".to_string()), Just("targets".to_string()), Just("budget".to_string()),
                    Just("runtime".to_string()), Just("period".to_string()), Just("class".to_string()),
                    Just("deadline".to_string()), Just("a.service".to_string()), Just("scheduler".to_string()),
                    "[a-z/.]{0,6}"
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn random_json_never_panics(value in arb_json()) {
        let _ = load_str(&value.to_string(), Some(2));
    }

    #[test]
    fn random_bytes_never_panic(text in ".{0,64}") {
        let _ = load_str(&text, None);
    }

    #[test]
    fn mutated_example_never_panics_and_rejections_name_a_path(cut in 0usize..1400, insert in ".{0,3}") {
        let base = include_str!("../../../examples/enforce.json");
        let cut = cut.min(base.len());
        let cut = (0..=cut).rev().find(|i| base.is_char_boundary(*i)).unwrap_or(0);
        let mutated = format!("{}{}{}", &base[..cut], insert, &base[cut..]);
        if let Err(errors) = load_str(&mutated, None) {
            prop_assert!(!errors.problems.is_empty());
        }
    }

    #[test]
    fn valid_budgets_round_trip(runtime_us in 10u64..10_000, extra_us in 0u64..10_000, period_extra in 0u64..1000) {
        let runtime = Duration::from_us(runtime_us);
        let deadline = Duration::from_us(runtime_us + extra_us);
        let period = Duration::from_us((runtime_us + extra_us + period_extra).max(100));
        let value = with_target("p.service", latency(&runtime.to_string(), &period.to_string(), &deadline.to_string()));
        let config = load_str(&value.to_string(), None);
        prop_assert!(config.is_ok(), "{:?}", config.err().map(|e| e.to_string()));
    }
}

/// A latency target with an `adaptive` block (runtime 2ms per 10ms, deadline 5ms).
fn adaptive_target(block: Value) -> Value {
    let mut t = latency("2ms", "10ms", "5ms");
    t["adaptive"] = block;
    t
}

#[test]
fn an_adaptive_block_fills_its_defaults_from_the_deadline_and_the_slo() {
    let mut t = adaptive_target(json!({}));
    t["slo"] = json!({ "latency": { "p99": "4ms" } });
    let config = load_str(&with_target("api.service", t).to_string(), None).expect("valid");
    let a = config.targets[0].adaptive.expect("adaptive");
    assert_eq!(a.objective, Duration::from_ms(4));
    assert_eq!((a.min_runtime, a.max_runtime), (Duration::from_us(500), Duration::from_ms(5)));
    assert_eq!((a.interval, a.max_step, a.cooldown, a.min_samples), (Duration::from_secs(30), 1.25, 1, 200));
    assert_eq!(a.gains, crate::adaptive::DEFAULT_GAINS);
    assert!(!a.dry_run);
    // Without the block the budget is static.
    let config = load_str(&with_target("api.service", latency("2ms", "10ms", "5ms")).to_string(), None).unwrap();
    assert_eq!(config.targets[0].adaptive, None);
}

#[test]
fn adaptive_blocks_are_rejected_at_the_field_that_is_wrong() {
    let at = |block: Value| with_target("api.service", adaptive_target(block));
    let p = "targets.\"api.service\".adaptive";
    assert_rejected_at(at(json!({})), &format!("{p}.objective"), "set adaptive.objective or slo.latency.p99");
    assert_rejected_at(at(json!({ "objective": "0s" })), &format!("{p}.objective"), "can never be met");
    assert_rejected_at(at(json!({ "objective": "1ms", "interval": "100ms" })), &format!("{p}.interval"), "outside 1s..=1h");
    assert_rejected_at(at(json!({ "objective": "1ms", "max_runtime": "6ms" })), &format!("{p}.max_runtime"), "exceeds the deadline 5ms");
    assert_rejected_at(at(json!({ "objective": "1ms", "min_runtime": "5us" })), &format!("{p}.min_runtime"), "below the minimum 10us");
    assert_rejected_at(at(json!({ "objective": "1ms", "min_runtime": "3ms", "max_runtime": "2500us" })), &format!("{p}.min_runtime"), "above max_runtime");
    // The budget in force must sit inside the clamps.
    assert_rejected_at(at(json!({ "objective": "1ms", "min_runtime": "3ms" })), &format!("{p}.min_runtime"), "budget.runtime 2ms is below min_runtime 3ms");
    assert_rejected_at(at(json!({ "objective": "1ms", "max_runtime": "1ms" })), &format!("{p}.max_runtime"), "budget.runtime 2ms is above max_runtime 1ms");
    assert_rejected_at(at(json!({ "objective": "1ms", "max_step": 1.0 })), &format!("{p}.max_step"), "outside (1, 2]");
    assert_rejected_at(at(json!({ "objective": "1ms", "max_step": 3 })), &format!("{p}.max_step"), "outside (1, 2]");
    assert_rejected_at(at(json!({ "objective": "1ms", "cooldown": 101 })), &format!("{p}.cooldown"), "outside 0..=100");
    assert_rejected_at(at(json!({ "objective": "1ms", "min_samples": 0 })), &format!("{p}.min_samples"), "outside 1..=");
    assert_rejected_at(at(json!({ "objective": "1ms", "gains": { "ki": -0.1 } })), &format!("{p}.gains.ki"), "outside [0, 5]");
    assert_rejected_at(at(json!({ "objective": "1ms", "gains": { "kp": 0, "ki": 0 } })), &format!("{p}.gains"), "never move the budget");
    assert_rejected_at(at(json!({ "objective": "1ms", "gain": {} })), &format!("{p}.gain"), "unknown field `gain`");
    let batch = json!({ "class": "batch", "adaptive": { "objective": "1ms" } });
    assert_rejected_at(with_target("batch.slice", batch), &format!("targets.\"batch.slice\".adaptive"), "only latency targets");
}

#[test]
fn a_scrape_block_names_the_service_histogram_and_makes_it_the_controllers_sli() {
    let scrape = json!({ "url": "http://127.0.0.1:9100/metrics", "histogram": "http_request_duration_seconds" });
    let mut t = adaptive_target(json!({ "objective": "3ms" }));
    t["scrape"] = scrape.clone();
    let config = load_str(&with_target("api.service", t.clone()).to_string(), None).expect("valid");
    let target = &config.targets[0];
    assert_eq!(target.scrape.as_ref().map(|s| s.histogram.as_str()), Some("http_request_duration_seconds"));
    // The service's histogram is the SLI by default when there is one; a
    // kernel-side SLI can still be chosen.
    assert_eq!(target.adaptive.map(|a| a.sli), Some(AdaptiveSli::Service));
    t["adaptive"]["sli"] = json!("queue_delay");
    let config = load_str(&with_target("api.service", t).to_string(), None).unwrap();
    assert_eq!(config.targets[0].adaptive.map(|a| a.sli), Some(AdaptiveSli::QueueDelay));
    // A response objective past the deadline is refused; a service one is
    // the service's own business.
    let mut t = adaptive_target(json!({ "objective": "20ms" }));
    t["scrape"] = scrape.clone();
    assert!(load_str(&with_target("api.service", t).to_string(), None).is_ok());

    let p = "targets.\"api.service\"";
    let at = |block: Value| with_target("api.service", adaptive_target(block));
    assert_rejected_at(at(json!({ "objective": "1ms", "sli": "service" })), &format!("{p}.adaptive.sli"), "add the target's scrape");
    let with_scrape = |s: Value| {
        let mut t = latency("2ms", "10ms", "5ms");
        t["scrape"] = s;
        with_target("api.service", t)
    };
    assert_rejected_at(with_scrape(json!({ "url": "http://192.168.1.2/metrics", "histogram": "x" })), &format!("{p}.scrape.url"), "not a loopback address");
    assert_rejected_at(with_scrape(json!({ "url": "http://127.0.0.1/", "histogram": "x_bucket" })), &format!("{p}.scrape.histogram"), "base name");
    assert_rejected_at(with_scrape(json!({ "url": "http://127.0.0.1/" })), &format!("{p}.scrape"), "missing field `histogram`");
    assert_rejected_at(with_scrape(json!({ "url": "http://127.0.0.1/", "histogram": "x", "every": "1s" })), &format!("{p}.scrape.every"), "unknown field `every`");
    let batch = json!({ "class": "batch", "scrape": scrape });
    assert_rejected_at(with_target("batch.slice", batch), "targets.\"batch.slice\".scrape", "only latency targets");

    // At most MAX_SCRAPES targets are scraped.
    let mut many = json!({ "version": 1, "targets": {} });
    for i in 0..=crate::limits::MAX_SCRAPES {
        let mut t = latency("10us", "10ms", "5ms");
        t["scrape"] = json!({ "url": format!("http://127.0.0.1:{}/", 9000 + i), "histogram": "x" });
        many["targets"][format!("s{i}.service")] = t;
    }
    assert_rejected_at(many, "targets", "at most 32 may");
}

#[test]
fn the_canary_block_is_checked_and_needs_an_enforcing_mode_and_a_latency_target() {
    let mut config = with_target("api.service", latency("1ms", "10ms", "5ms"));
    config["canary"] = json!({});
    let canary = load_str(&config.to_string(), None).unwrap().canary.expect("a canary");
    assert_eq!((canary.window, canary.min_samples, canary.promote_after, canary.max_windows), (Duration::from_secs(30), 1000, 3, 10));
    assert!((canary.max_regression - 0.02).abs() < 1e-12);
    assert!(load_str(&with_target("api.service", latency("1ms", "10ms", "5ms")).to_string(), None).unwrap().canary.is_none());

    for (field, value, fragment) in [
        ("window", json!("1s"), "outside 5s..=1h"),
        ("min_samples", json!(5), "outside 10..=10000000"),
        ("max_regression", json!(0), "outside (0, 1]"),
        ("promote_after", json!(0), "outside 1..=100"),
        ("max_windows", json!(1), "outside 2..=1000"),
        ("surprise", json!(1), "unknown field"),
    ] {
        let mut bad = config.clone();
        bad["canary"] = json!({ field: value });
        assert_rejected_at(bad, &format!("canary.{field}"), fragment);
    }
    let mut never = config.clone();
    never["canary"] = json!({ "promote_after": 5, "max_windows": 4 });
    assert_rejected_at(never, "canary.max_windows", "could never promote");
    let mut observe = config.clone();
    observe["mode"] = json!("observe");
    assert_rejected_at(observe, "canary", "mode observe never enforces");
    let mut batch_only = with_target("batch.slice", json!({ "class": "batch" }));
    batch_only["canary"] = json!({});
    assert_rejected_at(batch_only, "canary", "no latency target");
}
