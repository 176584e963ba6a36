// SPDX-License-Identifier: GPL-2.0-only
//! Admission control, as SCHED_DEADLINE does it: the latency targets' summed
//! bandwidth (runtime / period) must fit the CPUs times the overcommit factor.

use serde::Serialize;

use crate::config::{Class, Config};
use crate::error::{JsonPath, Problem};

/// The outcome of a successful admission check.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AdmissionReport {
    /// Reserved bandwidth in CPUs (sum of runtime/period).
    pub reserved_cpus: f64,
    /// Capacity admitted against, in CPUs (capacity × overcommit), when known.
    pub limit_cpus: Option<f64>,
}

/// Summed bandwidth of all latency targets, in parts per million of one CPU.
pub fn reserved_ppm(config: &Config) -> u64 {
    config
        .targets
        .iter()
        .filter(|t| t.class == Class::Latency)
        .filter_map(|t| t.budget)
        .map(|b| b.utilization_ppm())
        .fold(0u64, u64::saturating_add)
}

/// Runs admission control. `online_cpus` stands in for `cpu_capacity = "auto"`;
/// with neither, the sum cannot be checked offline and only the report is given.
pub fn check(config: &Config, online_cpus: Option<u32>) -> Result<AdmissionReport, Problem> {
    let reserved = reserved_ppm(config);
    let reserved_cpus = reserved as f64 / 1e6;
    let Some(cpus) = config.admission.cpu_capacity.or(online_cpus) else {
        return Ok(AdmissionReport { reserved_cpus, limit_cpus: None });
    };
    let limit_cpus = f64::from(cpus) * config.admission.overcommit;
    let limit_ppm = (limit_cpus * 1e6).floor() as u64;
    if reserved <= limit_ppm {
        return Ok(AdmissionReport { reserved_cpus, limit_cpus: Some(limit_cpus) });
    }
    let mut biggest: Vec<(&str, u64)> = config
        .targets
        .iter()
        .filter_map(|t| t.budget.map(|b| (t.key.as_str(), b.utilization_ppm())))
        .collect();
    biggest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let listed: Vec<String> = biggest
        .iter()
        .take(5)
        .map(|(k, ppm)| format!("{k} {:.3}", *ppm as f64 / 1e6))
        .collect();
    Err(Problem {
        path: JsonPath::root().key("targets"),
        message: format!(
            "latency budgets reserve {reserved_cpus:.3} CPUs ({}{}) but admission allows {limit_cpus:.3} \
             ({cpus} CPUs x overcommit {}); lower budgets or raise admission.cpu_capacity / admission.overcommit",
            listed.join(", "),
            if biggest.len() > 5 { ", ..." } else { "" },
            config.admission.overcommit
        ),
    })
}
