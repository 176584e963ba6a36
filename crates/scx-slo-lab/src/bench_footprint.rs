// SPDX-License-Identifier: GPL-2.0-only
//! The bench's footprint of scx-slod alone (bench.rs runs it after the
//! cells): with 1,000 targets, the first map fill, CPU and RSS; with the
//! bench's own small config, attached and idle, CPU and RSS.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{json, Value};

use crate::daemon::{write_config, Daemon};
use crate::harness::{cpu_share, cpu_ticks, proc_status_kb, Env};

/// The daemon alone. With 1,000 targets: the time of the first map fill
/// (from its status) and RSS. With the bench's own small config (attached,
/// no load, `small_config`): CPU over `idle` and RSS.
pub(crate) fn footprint(env: &Env, idle: Duration, small_config: &Value) -> Result<Value> {
    let root = env.cg("bench-many");
    let mut targets = serde_json::Map::new();
    for i in 0..1000 {
        std::fs::create_dir_all(root.join(format!("t{i}")))?;
        targets.insert(format!("/bench-many/t{i}"), json!({ "class": "batch", "weight": 100 }));
    }
    write_config(&json!({ "version": 1, "mode": "enforce", "switch": "partial", "targets": targets }))?;
    let mut d = Daemon::start_with(env, "footprint-1000", &["--metrics-listen", "off"])?;
    if d.wait_enabled(Duration::from_secs(60)).is_none() {
        anyhow::bail!("scx_slo did not attach with 1,000 targets: {}", d.log_tail());
    }
    std::thread::sleep(Duration::from_secs(3));
    let apply_us = crate::daemon::daemon_status().map(|s| s.last_apply_us);
    let rss_1000 = proc_status_kb("VmRSS", d.child.id());
    let cpu_1000 = cpu_ticks(d.child.id());
    let t_1000 = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let cpu_1000 = cpu_share(cpu_1000, cpu_ticks(d.child.id()), t_1000.elapsed());
    d.signal(libc::SIGTERM);
    d.wait_exit(Duration::from_secs(20));
    for i in 0..1000 {
        let _ = std::fs::remove_dir(root.join(format!("t{i}")));
    }

    write_config(small_config)?;
    let mut d = Daemon::start_with(env, "footprint-idle", &["--metrics-listen", "off"])?;
    if d.wait_enabled(Duration::from_secs(60)).is_none() {
        anyhow::bail!("scx_slo did not attach: {}", d.log_tail());
    }
    std::thread::sleep(Duration::from_secs(2));
    let pid = d.child.id();
    let before = cpu_ticks(pid);
    let t = Instant::now();
    std::thread::sleep(idle);
    let after = cpu_ticks(pid);
    // The window ends at the second reading, not after the shutdown below
    // (dividing by the shutdown's time too understated the share).
    let idle_for = t.elapsed();
    let rss = proc_status_kb("VmRSS", pid);
    d.signal(libc::SIGTERM);
    d.wait_exit(Duration::from_secs(20));
    let idle_cpu = cpu_share(before, after, idle_for);
    Ok(json!({
        "apply_1000_targets_us": apply_us,
        "rss_kb_1000_targets": rss_1000,
        "cpu_share_1000_targets": cpu_1000,
        "rss_kb": rss,
        "idle_cpu_share": idle_cpu,
        "idle_seconds": idle_for.as_secs_f64(),
    }))
}
