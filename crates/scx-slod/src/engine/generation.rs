// SPDX-License-Identifier: GPL-2.0-only
//! Config generations: the file as read, the runtime budget overrides, and
//! the validated config made of both. Pure: reading the file is the host's
//! job; everything here is decided on values, so it is unit-tested as is.
//!
//! An override is a typed budget given to the model's validator in place of
//! the file's (`load_str_with_budgets`): it is checked by the same rules,
//! with the same messages and JSON paths, as a budget written in the file,
//! and admission runs on the whole result.

use std::collections::BTreeMap;

use scx_slo_api::{BudgetOverride, ControlError};
use scx_slo_model::{Budget, Config, ConfigErrors};
use serde_json::Value;

/// A config file as read: its text, its JSON, and the SHA-256 of the text.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigFile {
    /// The text, exactly as read.
    pub text: String,
    /// The text parsed as JSON (for what the file says, as written).
    pub json: Value,
    /// SHA-256 of the text (`scx-slo health --expect-config` compares it).
    pub sha256: String,
}

impl ConfigFile {
    /// A file's text (its `json` is null when it is not JSON: the validator
    /// says why).
    pub fn from_text(text: String) -> ConfigFile {
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        let sha256 = scx_slo_model::config_digest(&text);
        ConfigFile { text, json, sha256 }
    }

    /// `targets.<unit>` as the file writes it.
    fn target(&self, unit: &str) -> Option<&Value> {
        self.json.get("targets").and_then(|t| t.get(unit))
    }

    /// `targets.<unit>.budget` as the file writes it.
    pub fn budget_as_written(&self, unit: &str) -> Option<Value> {
        self.target(unit).and_then(|t| t.get("budget")).cloned()
    }
}

/// The overrides as budgets for the validator.
fn budgets(overrides: &BTreeMap<String, BudgetOverride>) -> BTreeMap<String, Budget> {
    overrides
        .iter()
        .map(|(unit, o)| {
            let budget = Budget {
                runtime: scx_slo_model::Duration::from_us(o.runtime_us),
                period: scx_slo_model::Duration::from_us(o.period_us),
            };
            (unit.clone(), budget)
        })
        .collect()
}

/// The file's config with `overrides` in place of its budgets, validated whole.
pub fn effective(file: &ConfigFile, overrides: &BTreeMap<String, BudgetOverride>, cpus: u32) -> Result<Config, ConfigErrors> {
    scx_slo_model::load_str_with_budgets(&file.text, Some(cpus), &budgets(overrides))
}

/// An override the validator refused: a bad budget in itself (zero, over
/// its period, out of range: a problem at an override's
/// `targets.<unit>.budget`) is the caller's argument; a good budget that
/// clashes with the rest of the config (the target's deadline, admission)
/// makes the config invalid.
fn refused(errors: ConfigErrors, overrides: &BTreeMap<String, BudgetOverride>) -> ControlError {
    let in_budget = |p: &scx_slo_model::Problem| {
        matches!(p.path.segments(), [targets, unit, budget, ..] if targets == "targets" && budget == "budget" && overrides.contains_key(unit))
    };
    if errors.problems.iter().any(in_budget) {
        ControlError::InvalidArgument(format!("budget: {errors}"))
    } else {
        ControlError::InvalidConfig(errors.to_string())
    }
}

/// Splits the overrides into those that still apply to `file` and those that
/// do not, with why: an override's target was removed from the file or is
/// no longer a latency target. A reload drops the latter (and says so)
/// instead of failing on them: the file is the operator's newer word.
pub fn applicable_overrides(
    file: &ConfigFile,
    overrides: &BTreeMap<String, BudgetOverride>,
) -> (BTreeMap<String, BudgetOverride>, Vec<String>) {
    let mut kept = BTreeMap::new();
    let mut dropped = Vec::new();
    for (unit, o) in overrides {
        match file.target(unit) {
            None => dropped.push(format!("{unit} (no longer in the config)")),
            Some(t) if t.get("class").and_then(Value::as_str) != Some("latency") => {
                dropped.push(format!("{unit} (now class {})", t.get("class").map_or("unset".to_string(), |c| c.to_string())))
            }
            Some(_) => {
                kept.insert(unit.clone(), *o);
            }
        }
    }
    (kept, dropped)
}

/// Load-time sections a reload cannot change without reloading BPF.
pub fn load_time_change(old: &Config, new: &Config) -> Option<&'static str> {
    if old.switch != new.switch {
        Some("switch")
    } else if old.scheduler != new.scheduler {
        Some("scheduler")
    } else if old.numa != new.numa {
        Some("numa")
    } else if old.early_warning != new.early_warning {
        Some("early_warning")
    } else if old.mode != new.mode {
        Some("mode")
    } else {
        None
    }
}

/// The running generation.
#[derive(Clone, Debug)]
pub struct Generation {
    /// Counts from 1; every applied change adds one.
    pub number: u64,
    /// The file it came from.
    pub file: ConfigFile,
    /// Runtime budget overrides (persisted).
    pub overrides: BTreeMap<String, BudgetOverride>,
    /// The validated config: the file with the overrides.
    pub config: Config,
    /// The correlation id of the D-Bus call or automatic action that made
    /// it (None: the one read at start).
    pub correlation_id: Option<String>,
}

/// A validated change, not applied yet: the engine writes the maps first and
/// commits only when that worked, so a refused change leaves all in place.
#[derive(Debug)]
pub struct Candidate {
    /// The file.
    pub file: ConfigFile,
    /// The overrides.
    pub overrides: BTreeMap<String, BudgetOverride>,
    /// The config they make.
    pub config: Config,
    /// Overrides a reload dropped, with why.
    pub dropped: Vec<String>,
}

impl Generation {
    /// The first generation. Stored overrides that no longer fit the file
    /// are dropped (and said so in the second value) rather than blocking
    /// the start.
    pub fn first(file: ConfigFile, config: Config, overrides: BTreeMap<String, BudgetOverride>, cpus: u32) -> (Generation, Option<String>) {
        if overrides.is_empty() {
            return (Generation { number: 1, file, overrides, config, correlation_id: None }, None);
        }
        match effective(&file, &overrides, cpus) {
            Ok(config) => (Generation { number: 1, file, overrides, config, correlation_id: None }, None),
            Err(e) => (
                Generation { number: 1, file, overrides: BTreeMap::new(), config, correlation_id: None },
                Some(format!("stored budget overrides no longer fit the config and are dropped: {e}")),
            ),
        }
    }

    /// A reload of `file`: overrides survive when their target is still a
    /// latency target and the whole still validates.
    pub fn reload(&self, file: ConfigFile, cpus: u32) -> Result<Candidate, ControlError> {
        let (overrides, dropped) = applicable_overrides(&file, &self.overrides);
        let config = effective(&file, &overrides, cpus)
            .map_err(|e| ControlError::InvalidConfig(format!("with the runtime budget overrides: {e}")))?;
        self.admit(Candidate { file, overrides, config, dropped })
    }

    /// The same file with `overrides` instead of the current ones.
    pub fn with_overrides(&self, overrides: BTreeMap<String, BudgetOverride>, cpus: u32) -> Result<Candidate, ControlError> {
        let config = effective(&self.file, &overrides, cpus).map_err(|e| refused(e, &overrides))?;
        self.admit(Candidate { file: self.file.clone(), overrides, config, dropped: Vec::new() })
    }

    /// Refuses a candidate that changes what is fixed at load time.
    fn admit(&self, candidate: Candidate) -> Result<Candidate, ControlError> {
        match load_time_change(&self.config, &candidate.config) {
            Some(field) => Err(ControlError::InvalidConfig(format!(
                "`{field}` is fixed when the scheduler loads; restart scx-slod to change it (generation {} stays)",
                self.number
            ))),
            None => Ok(candidate),
        }
    }

    /// Makes an applied candidate the running generation.
    pub fn commit(&mut self, candidate: Candidate) {
        self.file = candidate.file;
        self.overrides = candidate.overrides;
        self.config = candidate.config;
        self.number += 1;
    }

    /// A latency target's key, or an argument error naming why not.
    pub fn latency_target(&self, unit: &str) -> Result<(), ControlError> {
        let Some(target) = self.config.targets.iter().find(|t| t.key == unit) else {
            return Err(ControlError::InvalidArgument(format!("unit {unit:?} is not a target")));
        };
        if target.class != scx_slo_model::Class::Latency {
            return Err(ControlError::InvalidArgument(format!("unit {unit:?} is a batch target; only latency targets have a budget")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> ConfigFile {
        ConfigFile::from_text(include_str!("../../../../examples/enforce.json").to_string())
    }

    fn first() -> Generation {
        let file = example();
        let config = scx_slo_model::load_str(&file.text, Some(2)).unwrap();
        Generation::first(file, config, BTreeMap::new(), 2).0
    }

    fn one(unit: &str, runtime_us: u64, period_us: u64) -> BTreeMap<String, BudgetOverride> {
        [(unit.to_string(), BudgetOverride { runtime_us, period_us })].into()
    }

    #[test]
    fn overrides_patch_the_file_config_and_are_validated_whole() {
        let file = example();
        let c = effective(&file, &one("api.service", 4000, 10000), 2).unwrap();
        let api = c.targets.iter().find(|t| t.key == "api.service").unwrap();
        assert_eq!(api.budget.unwrap().runtime, scx_slo_model::Duration::from_us(4000));
        // deadline 5ms < period: fine; a period shorter than the deadline is not,
        // and the validator's own message and path say so.
        let e = effective(&file, &one("api.service", 1000, 2000), 2).unwrap_err().to_string();
        assert!(e.contains("targets.\"api.service\".deadline") || e.contains("exceeds budget.period"), "{e}");
        // A zero period and a runtime over the period: the validator's rules,
        // not copies of them.
        assert!(effective(&file, &one("api.service", 0, 0), 2).is_err());
        assert!(effective(&file, &one("api.service", 20_000, 10_000), 2).is_err());
        // Admission: 2 CPUs x 0.95 (without worker's adaptive block, whose
        // max_runtime would refuse its budget first).
        let mut json = file.json.clone();
        json["targets"]["worker.service"].as_object_mut().unwrap().remove("adaptive");
        let file = ConfigFile::from_text(json.to_string());
        let mut o = one("api.service", 5000, 5000);
        o.insert("worker.service".to_string(), BudgetOverride { runtime_us: 20000, period_us: 20000 });
        assert!(effective(&file, &o, 2).unwrap_err().to_string().contains("latency budgets reserve"));
    }

    #[test]
    fn a_bad_budget_is_the_callers_argument_a_clash_is_an_invalid_config() {
        let g = first();
        for (runtime, period) in [(1000, 0), (20_000, 10_000), (u64::MAX, u64::MAX)] {
            let e = g.with_overrides(one("api.service", runtime, period), 2).unwrap_err();
            assert!(matches!(&e, ControlError::InvalidArgument(m) if m.contains("budget")), "{runtime}/{period}: {e}");
        }
        // The deadline (5 ms) is over a 2 ms period; admission.
        assert!(matches!(g.with_overrides(one("api.service", 1000, 2000), 2), Err(ControlError::InvalidConfig(_))));
        assert!(matches!(g.with_overrides(one("api.service", 9_500_000, 10_000_000), 2), Err(ControlError::InvalidConfig(_))));
    }

    #[test]
    fn load_time_sections_are_named() {
        let g = first();
        let mut b = g.config.clone();
        b.scheduler.slice_max = scx_slo_model::Duration::from_ms(4);
        assert_eq!(load_time_change(&g.config, &b), Some("scheduler"));
        assert_eq!(load_time_change(&g.config, &g.config), None);
    }

    #[test]
    fn a_reload_drops_overrides_whose_target_left_or_changed_class() {
        let mut g = first();
        let c = g.with_overrides(one("api.service", 2000, 10000), 2).unwrap();
        g.commit(c);
        assert_eq!(g.number, 2);
        let mut json = g.file.json.clone();
        json["targets"].as_object_mut().unwrap().remove("api.service");
        let c = g.reload(ConfigFile::from_text(json.to_string()), 2).unwrap();
        assert!(c.overrides.is_empty() && c.dropped == ["api.service (no longer in the config)"], "{c:?}");
    }

    #[test]
    fn stored_overrides_that_no_longer_fit_are_dropped_at_start() {
        let file = example();
        let config = scx_slo_model::load_str(&file.text, Some(2)).unwrap();
        let (g, warning) = Generation::first(file, config, one("api.service", 20_000, 10_000), 2);
        assert!(g.overrides.is_empty() && warning.is_some_and(|w| w.contains("dropped")));
    }

    #[test]
    fn only_latency_targets_take_a_budget() {
        let g = first();
        assert!(g.latency_target("api.service").is_ok());
        assert!(matches!(g.latency_target("nope.service"), Err(ControlError::InvalidArgument(m)) if m.contains("not a target")));
        let batch = g.config.targets.iter().find(|t| t.class == scx_slo_model::Class::Batch).unwrap().key.clone();
        assert!(matches!(g.latency_target(&batch), Err(ControlError::InvalidArgument(m)) if m.contains("batch target")));
    }
}
