// SPDX-License-Identifier: GPL-2.0-only
//! What the engine knows of each target between config and kernel: its
//! cgroup (once the unit runs), its map slot (stable across applies and
//! sessions) and what ended sessions counted for it. The engine's loop
//! writes it (applies, scans, session ends); the canary and the adaptive
//! controller only read it, through their views.

use std::collections::BTreeMap;

use scx_slo_bpf::TargetStats;

use crate::backend::Backend;
use crate::carry::Carried;
use crate::resolver::Resolved;
use crate::slots::Slots;

/// Each target's cgroup, slot and carried counts.
#[derive(Debug, Default)]
pub struct Targets {
    /// Each target's cgroup, for those that exist.
    pub resolved: BTreeMap<String, Resolved>,
    /// Each target's map slot, stable across applies.
    pub slots: Slots,
    /// What ended sessions counted: counters never go backwards.
    pub carried: Carried,
}

impl Targets {
    /// The statistics the loaded backend counts for `unit` now, when it has
    /// a cgroup and a slot.
    pub fn live(&self, unit: &str, sched: &dyn Backend) -> Option<TargetStats> {
        self.slots.get(unit).filter(|_| self.resolved.contains_key(unit)).and_then(|slot| sched.target_stats(slot).ok())
    }
}
