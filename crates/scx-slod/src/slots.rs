// SPDX-License-Identifier: GPL-2.0-only
//! Stable map slots for targets. A target's index into
//! `target_cfg`/`target_stats` used to be its position in the sorted config,
//! so adding `a.service` moved every later target to another slot, and
//! every apply zeroed every target's counters: Prometheus saw counters reset
//! on each reload, SetBudget or unit restart. Now a target keeps its slot
//! for as long as it stays in the config; a new target takes the lowest free
//! slot, and only a slot new to its target is zeroed.

use std::collections::{BTreeMap, BTreeSet};

use scx_slo_bpf::MapTarget;
use scx_slo_model::Config;

use crate::resolver::Resolved;

/// Slot assignment by target key.
#[derive(Clone, Debug, Default)]
pub struct Slots {
    by_key: BTreeMap<String, u32>,
    /// Keys whose slot's counters were zeroed for them (written once).
    zeroed: BTreeSet<String>,
}

impl Slots {
    /// Keeps the slots of keys still in `config`, frees the others, and
    /// gives each new key the lowest free slot.
    pub fn assign(&mut self, config: &Config) {
        let keys: BTreeSet<&str> = config.targets.iter().map(|t| t.key.as_str()).collect();
        self.by_key.retain(|k, _| keys.contains(k.as_str()));
        self.zeroed.retain(|k| keys.contains(k.as_str()));
        let mut used: BTreeSet<u32> = self.by_key.values().copied().collect();
        let mut next = 0u32;
        for t in &config.targets {
            if self.by_key.contains_key(&t.key) {
                continue;
            }
            while used.contains(&next) {
                next += 1;
            }
            used.insert(next);
            self.by_key.insert(t.key.clone(), next);
        }
    }

    /// The highest slot in use.
    pub fn highest(&self) -> Option<u32> {
        self.by_key.values().max().copied()
    }

    /// The slot of a target key.
    pub fn get(&self, key: &str) -> Option<u32> {
        self.by_key.get(key).copied()
    }

    /// What the maps should hold for the resolved targets of `config`.
    pub fn map_targets(&self, config: &Config, resolved: &BTreeMap<String, Resolved>) -> Vec<MapTarget> {
        config
            .targets
            .iter()
            .filter_map(|t| {
                let r = resolved.get(&t.key)?;
                Some(MapTarget {
                    index: self.get(&t.key)?,
                    cgroup_id: r.cgroup_id,
                    cfg: scx_slo_bpf::maps::target_cfg(t),
                    fresh: !self.zeroed.contains(&t.key),
                })
            })
            .collect()
    }

    /// Records that `written` reached the maps (their fresh slots are zeroed).
    pub fn written(&mut self, config: &Config, written: &[MapTarget]) {
        let indices: BTreeSet<u32> = written.iter().map(|t| t.index).collect();
        for t in &config.targets {
            if self.get(&t.key).is_some_and(|i| indices.contains(&i)) {
                self.zeroed.insert(t.key.clone());
            }
        }
    }

    /// A new BPF object (load, re-attach): its maps start at zero, every
    /// slot is fresh again.
    pub fn new_maps(&mut self) {
        self.zeroed.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(keys: &[&str]) -> Config {
        let targets: serde_json::Map<String, serde_json::Value> =
            keys.iter().map(|k| (k.to_string(), serde_json::json!({ "class": "batch" }))).collect();
        scx_slo_model::load_str(&serde_json::json!({ "version": 1, "targets": targets }).to_string(), None).unwrap()
    }

    #[test]
    fn a_target_keeps_its_slot_when_others_come_and_go() {
        let mut slots = Slots::default();
        slots.assign(&config(&["m.service", "z.service"]));
        let (m, z) = (slots.get("m.service").unwrap(), slots.get("z.service").unwrap());
        // a.service sorts first: it used to shift both to other slots.
        slots.assign(&config(&["a.service", "m.service", "z.service"]));
        assert_eq!((slots.get("m.service"), slots.get("z.service")), (Some(m), Some(z)));
        assert_eq!(slots.get("a.service"), Some(2));
        // m leaves; its slot is reused by the next new target.
        slots.assign(&config(&["a.service", "b.service", "z.service"]));
        assert_eq!(slots.get("b.service"), Some(m));
        assert_eq!(slots.get("m.service"), None);
    }

    #[test]
    fn only_a_slot_new_to_its_target_is_zeroed() {
        let mut slots = Slots::default();
        let c = config(&["a.service"]);
        slots.assign(&c);
        let resolved: BTreeMap<String, Resolved> =
            [("a.service".to_string(), Resolved { dir: "/sys/fs/cgroup/a".into(), cgroup_id: 7 })].into();
        let first = slots.map_targets(&c, &resolved);
        assert!(first[0].fresh);
        slots.written(&c, &first);
        assert!(!slots.map_targets(&c, &resolved)[0].fresh, "a reload must not zero a.service's counters");
        slots.new_maps();
        assert!(slots.map_targets(&c, &resolved)[0].fresh);
    }
}
