// SPDX-License-Identifier: GPL-2.0-only
//! `scx-slo check-config`: the offline checker the NixOS build runs.

use std::path::Path;

use scx_slo_model::admission;
use scx_slo_model::{Class, Config, ConfigErrors};
use serde::Serialize;

use scx_slo_api::exit::cli::{OK as VALID, REFUSED as INVALID, USAGE as UNREADABLE};

#[derive(Serialize)]
struct Summary {
    targets: usize,
    latency_targets: usize,
    batch_targets: usize,
    mode: scx_slo_model::Mode,
    switch: scx_slo_model::SwitchMode,
    reserved_cpus: f64,
    admitted_cpus: Option<f64>,
}

#[derive(Serialize)]
struct Report<'a> {
    file: String,
    valid: bool,
    problems: &'a [scx_slo_model::Problem],
    summary: Option<Summary>,
}

fn summary(config: &Config, cpus: Option<u32>) -> Summary {
    let report = admission::check(config, cpus).ok();
    let latency = config.targets.iter().filter(|t| t.class == Class::Latency).count();
    Summary {
        targets: config.targets.len(),
        latency_targets: latency,
        batch_targets: config.targets.len() - latency,
        mode: config.mode,
        switch: config.switch,
        reserved_cpus: admission::reserved_ppm(config) as f64 / 1e6,
        admitted_cpus: report.and_then(|r| r.limit_cpus),
    }
}

/// The name a value has in config.json (`enforce`, `partial`).
fn wire_name(value: &impl Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Runs the check and prints the result; returns the exit code.
pub fn run(file: &Path, json: bool, cpus: Option<u32>) -> u8 {
    let name = file.display().to_string();
    let text = match scx_slo_model::read_config_text(file) {
        Ok(t) => t,
        Err(e) => {
            if json {
                outln!("{}", serde_json::json!({ "file": name, "valid": false, "error": e.to_string() }));
            } else {
                eprintln!("{name}: {e}");
            }
            return if e.is_invalid_content() { INVALID } else { UNREADABLE };
        }
    };
    let result = scx_slo_model::load_str(&text, cpus);
    let (problems, summary) = match &result {
        Ok(config) => (Vec::new(), Some(summary(config, cpus))),
        Err(ConfigErrors { problems }) => (problems.clone(), None),
    };
    if json {
        let report = Report { file: name, valid: result.is_ok(), problems: &problems, summary };
        match serde_json::to_string_pretty(&report) {
            Ok(s) => outln!("{s}"),
            Err(e) => eprintln!("{e}"),
        }
    } else if let Some(s) = summary {
        let admitted = match s.admitted_cpus {
            Some(limit) => format!("{limit:.3} admitted"),
            None => "capacity \"auto\": the daemon admits against the host's CPUs".to_string(),
        };
        outln!(
            "{name}: valid: {} targets ({} latency, {} batch), mode {}, switch {}; latency budgets reserve {:.3} CPUs ({admitted})",
            s.targets,
            s.latency_targets,
            s.batch_targets,
            wire_name(&s.mode),
            wire_name(&s.switch),
            s.reserved_cpus
        );
    } else {
        for p in &problems {
            eprintln!("{name}: {p}");
        }
        eprintln!(
            "{name}: {} problem{}; the config is rejected",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
    }
    if result.is_ok() {
        VALID
    } else {
        INVALID
    }
}

/// Reads and validates a config, then runs `f` on it; the exit code is
/// check-config's (an invalid config prints its problems and makes nothing).
pub fn with_config(path: &Path, f: impl FnOnce(&Config)) -> u8 {
    let text = match scx_slo_model::read_config_text(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("reading {}: {e}", path.display());
            return if e.is_invalid_content() { INVALID } else { UNREADABLE };
        }
    };
    match scx_slo_model::load_str(&text, None) {
        Ok(config) => {
            f(&config);
            VALID
        }
        Err(errors) => {
            eprintln!("{} is invalid:\n{errors}", path.display());
            INVALID
        }
    }
}
