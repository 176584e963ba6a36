// SPDX-License-Identifier: GPL-2.0-only
//! The cgroups and the config the enforce-mode scenarios share.

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::harness::Env;

/// The targets every enforce run uses.
pub(crate) const API: &str = "system.slice/api.service";
pub(crate) const TIGHT: &str = "system.slice/tight.service";
pub(crate) const GREEDY: &str = "system.slice/greedy.service";
pub(crate) const BATCH: &str = "batch.slice/hog.service";
pub(crate) const UNTARGETED: &str = "untargeted";

/// The config every enforce run uses.
pub fn enforce_config(switch: &str) -> Value {
    json!({
        "version": 1,
        "mode": "enforce",
        "switch": switch,
        "targets": {
            // Admitted: 3 ms of CPU per 10 ms for 300 us requests.
            "api.service": { "class": "latency", "budget": { "runtime": "3ms", "period": "10ms" },
                             "deadline": "5ms", "priority": 800, "preemption": "lower-priority" },
            // Deliberately too small: 100 us per 10 ms for 3 ms requests due
            // in 4 ms. Past its budget it gets a fair share (about half a CPU
            // next to the hogs), which needs ~6 ms for the rest of a request.
            "tight.service": { "class": "latency", "budget": { "runtime": "100us", "period": "10ms" },
                               "deadline": "4ms", "priority": 700, "preemption": "lower-priority" },
            // A CPU-bound latency unit: its budget must not starve batch.
            "greedy.service": { "class": "latency", "budget": { "runtime": "5ms", "period": "10ms" },
                                "deadline": "10ms", "priority": 100, "preemption": "never" },
            "batch.slice": { "class": "batch", "weight": 100 }
        }
    })
}

/// Creates the scenario's unit cgroups.
pub fn setup_cgroups(env: &Env) -> Result<()> {
    for rel in [API, TIGHT, GREEDY, BATCH, UNTARGETED] {
        std::fs::create_dir_all(env.cg(rel)).with_context(|| format!("creating cgroup {rel}"))?;
    }
    Ok(())
}

