// SPDX-License-Identifier: GPL-2.0-only
//! The demo: the api probe next to batch hogs, on the default scheduler and
//! then on scx-slo, alternating rounds within one boot.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::daemon::{write_config, Daemon};
use crate::fixtures::{enforce_config, setup_cgroups, API, BATCH};
use crate::harness::{read_json, Env, Report};
use crate::workload::{HogResult, ProbeResult};
use crate::kernel;
use crate::spawn::Workload;

/// One demo phase: the api probe next to two batch hogs.
fn demo_phase(env: &Env, label: &str, wait_ext: bool, sampler: &crate::sampler::WakeSampler) -> Result<Value> {
    use scx_slo_model::Duration as D;
    let secs = D::from_secs(env.seconds);
    let mut kids = Vec::new();
    let api_out = format!("/tmp/demo-api-{label}.json");
    let probe = Workload::probe().cgroup(env.cg(API)).period(D::from_ms(10)).work(D::from_us(300)).deadline(D::from_ms(5));
    let probe = probe.duration(secs).out(&api_out).wait_ext(wait_ext);
    // The scx-slo rows must run attached from start to end (wait_ext marks them).
    let watch = wait_ext.then(|| kernel::AttachWatch::start("scx_slo"));
    sampler.take()?;
    let mut probe = [probe.spawn_held(env)?];
    for i in 0..2 {
        let hog = Workload::hog().cgroup(env.cg(BATCH)).duration(secs).out(format!("/tmp/demo-hog{i}-{label}.json"));
        kids.push(hog.wait_ext(wait_ext).spawn(env)?);
    }
    let (mut queue, response, _) = crate::sampler::finish_held_probes(&mut probe, sampler)?;
    for mut k in kids {
        k.wait()?;
    }
    let api: ProbeResult = read_json(&api_out)?;
    let queue_us = crate::workload::Percentiles::of_ns(&mut queue);
    let hogs: Vec<HogResult> = (0..2).map(|i| read_json(&format!("/tmp/demo-hog{i}-{label}.json"))).collect::<Result<_>>()?;
    Ok(json!({
        "scheduler": label,
        "wake_p50_us": api.wake_delay_us.p50, "wake_p99_us": api.wake_delay_us.p99,
        "completion_p50_us": api.completion_us.p50, "completion_p99_us": api.completion_us.p99,
        "completion_p999_us": api.completion_us.p999, "over_deadline": api.over_deadline, "requests": api.completion_us.n,
        "batch_iterations": hogs.iter().map(|h| h.iterations).sum::<u64>(),
        "queue_p50_us": queue_us.p50, "queue_p99_us": queue_us.p99, "queue_p999_us": queue_us.p999,
        "response_misses": response.iter().filter(|r| **r > crate::sampler::DEADLINE_NS).count(),
        "attached": watch.map(|w| w.finish()),
    }))
}

/// The README demo: default scheduler vs scx-slo (partial), same boot, repeated.
pub fn demo(env: &Env, rounds: usize) -> Result<Report> {
    let mut report = Report::new("demo");
    setup_cgroups(env)?;
    let mut config = enforce_config("partial");
    if let Some(t) = config["targets"].as_object_mut() {
        t.remove("tight.service");
        t.remove("greedy.service");
    }
    write_config(&config)?;
    let mut object = std::mem::MaybeUninit::uninit();
    let sampler = crate::sampler::WakeSampler::start(env, &[API.to_string()], &mut object)
        .context("loading the wakeup sampler (observe probes)")?;
    let mut rows = Vec::new();
    for round in 0..rounds {
        rows.push(demo_phase(env, &format!("default-{round}"), false, &sampler)?);
        let mut daemon = Daemon::start(env, &format!("demo-{round}"))?;
        let up = daemon.wait_enabled(Duration::from_secs(60)).is_some();
        // The evidence is the kernel's own word, not the daemon's log
        // (which holds libbpf's struct_ops notices); the log only when it
        // failed to attach.
        let evidence = format!(
            "/sys/kernel/sched_ext: state {}, root/ops {}, enable_seq {}",
            kernel::sched_ext_state(),
            kernel::root_ops(),
            kernel::enable_seq()
        );
        report.check(format!("round {round}: scx_slo enabled"), up, if up { evidence } else { format!("{evidence}; scx-slod: {}", daemon.log_tail()) });
        if up {
            let row = demo_phase(env, &format!("scx_slo-{round}"), true, &sampler)?;
            report.check(
                format!("round {round}: scx_slo stayed attached for the whole window"),
                row["attached"]["attached"] == json!(true),
                format!("{}", row["attached"]),
            );
            rows.push(row);
        }
        daemon.signal(libc::SIGTERM);
        daemon.wait_exit(Duration::from_secs(20));
    }
    report.facts.insert("rows".into(), Value::Array(rows));
    report.ok = report.checks.iter().all(|c| c.ok);
    Ok(report)
}
