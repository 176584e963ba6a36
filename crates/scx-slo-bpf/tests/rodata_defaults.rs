// SPDX-License-Identifier: GPL-2.0-only
//! The `const volatile` tunables of bpf/scx_slo.bpf.c carry defaults that
//! repeat the model's (`scx_slo_model::defaults`). The loader overwrites
//! every one of them from the validated config before load, so production
//! never runs on the C numbers; but an object loaded without the loader
//! (veristat, bpftool, a test harness) does, and it should then behave as a
//! default config would. This test reads the C file and fails when a default
//! there drifts from the model's, so the two cannot disagree silently.

use std::collections::BTreeMap;
use std::path::Path;

use scx_slo_model::defaults;

/// `name = value` of every scalar `const volatile` with a numeric initializer.
fn rodata_defaults(c: &str) -> BTreeMap<String, u64> {
    c.lines()
        .filter_map(|l| {
            let decl = l.trim().strip_prefix("const volatile ")?;
            let (lhs, rhs) = decl.split_once('=')?;
            let name = lhs.split_whitespace().last()?;
            let value = rhs.split(';').next()?.trim().parse().ok()?;
            Some((name.to_string(), value))
        })
        .collect()
}

#[test]
fn the_scheduler_rodata_defaults_are_the_model_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bpf/scx_slo.bpf.c");
    let c = std::fs::read_to_string(&path).expect("reading bpf/scx_slo.bpf.c");
    let found = rodata_defaults(&c);
    let want: BTreeMap<String, u64> = [
        ("slice_max_ns", defaults::SLICE_MAX.as_ns()),
        ("slice_min_ns", defaults::SLICE_MIN.as_ns()),
        ("max_wait_ns", defaults::MAX_WAIT.as_ns()),
        ("numa_migration_threshold", u64::from(defaults::MIGRATION_THRESHOLD)),
        ("slack_warn_ns", defaults::SLACK_THRESHOLD.as_ns()),
        ("warn_interval_ns", defaults::WARNING_INTERVAL.as_ns()),
        // Topology: one node of one CPU until the loader writes the host's.
        ("nr_nodes", 1),
        ("nr_cpus", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(found, want, "bpf/scx_slo.bpf.c's rodata defaults against scx_slo_model::defaults");
}

#[test]
fn the_reader_sees_a_drifted_default() {
    let c = "const volatile u64 slice_max_ns = 4000000;\t/* longest slice */\nconst volatile u32 cpu_to_node[SLO_MAX_CPUS];\n";
    assert_eq!(rodata_defaults(c), [("slice_max_ns".to_string(), 4_000_000)].into());
}
