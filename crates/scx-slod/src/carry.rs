// SPDX-License-Identifier: GPL-2.0-only
//! Counters that outlive a session. A new session loads a new BPF
//! object, whose maps start at zero: without this, every Disable and Enable,
//! ejection and retry, or mode switch reset the targets' counters, and
//! Prometheus saw `scx_slo_jobs_total` go backwards while the daemon ran.
//! When a session ends, each target's final statistics are added here, and
//! every reader (Status, Explain, the metrics) sees these plus the live
//! maps. So counters only grow for the daemon's lifetime. A restart of the
//! daemon starts them again, as any exporter's restart does.

use std::collections::BTreeMap;

use scx_slo_api::TargetStats;
use scx_slo_model::Config;

use crate::backend::Backend;
use crate::resolver::Resolved;
use crate::slots::Slots;

/// Whole-scheduler values that are gauges of the running session, not
/// counters: the longest wait and its tid (scx_slo), the probes' sampling
/// divisor (observe). Summed over sessions they were nonsense (two
/// sessions' tids added up); they stay the live session's, absent between
/// sessions.
const GLOBAL_GAUGES: [&str; 3] = ["max_wait_ns", "max_wait_pid", "sample_every"];

/// Each target's statistics from the sessions that ended.
#[derive(Clone, Debug, Default)]
pub struct Carried {
    by_key: BTreeMap<String, TargetStats>,
    /// The whole-scheduler counters (`events_dropped`, `credit_lent_ns`, ...).
    global: BTreeMap<&'static str, u64>,
}

impl Carried {
    /// Adds what a session that is ending counted, for every target in its
    /// maps (resolved: a slot that was never written for a target holds
    /// nothing of it).
    pub fn session_ended(&mut self, config: &Config, slots: &Slots, resolved: &BTreeMap<String, Resolved>, sched: &dyn Backend) {
        for t in config.targets.iter().filter(|t| resolved.contains_key(&t.key)) {
            if let Some(stats) = slots.get(&t.key).and_then(|slot| sched.target_stats(slot).ok()) {
                self.by_key.entry(t.key.clone()).or_default().add(&stats);
            }
        }
        for (name, v) in sched.global_stats().unwrap_or_default().into_iter().filter(|(name, _)| !GLOBAL_GAUGES.contains(name)) {
            let sum = self.global.entry(name).or_default();
            *sum = sum.wrapping_add(v);
        }
    }

    /// The whole-scheduler counters for the daemon's lifetime: the ended
    /// sessions' plus `live` (the running session's, empty between
    /// sessions); the gauges are `live`'s alone.
    pub fn global_total(&self, live: &[(&'static str, u64)]) -> BTreeMap<&'static str, u64> {
        let mut sum = self.global.clone();
        for (name, v) in live {
            let s = sum.entry(name).or_default();
            *s = s.wrapping_add(*v);
        }
        sum
    }

    /// Forgets targets that left the config.
    pub fn retain(&mut self, config: &Config) {
        let keys: std::collections::BTreeSet<&str> = config.targets.iter().map(|t| t.key.as_str()).collect();
        self.by_key.retain(|k, _| keys.contains(k.as_str()));
    }

    /// A target's statistics for the daemon's lifetime: the sessions that
    /// ended plus `live` (the running session's, if any); `None` when there
    /// is neither. The counters and histograms add up; `max_wait_ns` is a
    /// gauge of the running scheduler ("since the scheduler loaded", what the
    /// no-starvation bound is checked on), so it stays the live session's.
    pub fn total(&self, key: &str, live: Option<TargetStats>) -> Option<TargetStats> {
        let Some(carried) = self.by_key.get(key) else { return live };
        let mut sum = carried.clone();
        sum.max_wait_ns = 0;
        if let Some(live) = live {
            sum.add(&live);
        }
        Some(sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobs(n: u64) -> TargetStats {
        TargetStats { counters: [(scx_slo_api::Counter::Jobs, n)].into(), ..Default::default() }
    }

    #[test]
    fn totals_grow_across_sessions_and_forget_removed_targets() {
        let mut c = Carried::default();
        assert_eq!(c.total("api.service", None), None);
        c.by_key.insert("api.service".into(), jobs(100));
        assert_eq!(c.total("api.service", Some(jobs(5))).map(|s| s.get(scx_slo_api::Counter::Jobs)), Some(105), "carried plus live");
        assert_eq!(c.total("api.service", None).map(|s| s.get(scx_slo_api::Counter::Jobs)), Some(100), "between sessions");
        // The longest wait is the running scheduler's, not the lifetime's.
        c.by_key.insert("api.service".into(), TargetStats { max_wait_ns: 9_000, ..jobs(100) });
        let live = TargetStats { max_wait_ns: 2_000, ..jobs(5) };
        assert_eq!(c.total("api.service", Some(live)).map(|s| s.max_wait_ns), Some(2_000));
        assert_eq!(c.total("api.service", None).map(|s| s.max_wait_ns), Some(0));
        let config = scx_slo_model::load_str(r#"{"version":1,"targets":{"batch.slice":{"class":"batch"}}}"#, None).unwrap();
        c.retain(&config);
        assert_eq!(c.total("api.service", None), None);
    }

    #[test]
    fn global_counters_add_the_ended_sessions_to_the_live_one() {
        let mut c = Carried::default();
        assert_eq!(c.global_total(&[("events_dropped", 3)]).get("events_dropped"), Some(&3));
        c.global.insert("events_dropped", 40);
        let total = c.global_total(&[("events_dropped", 3), ("credit_lent_ns", 7)]);
        assert_eq!((total.get("events_dropped"), total.get("credit_lent_ns")), (Some(&43), Some(&7)));
        assert_eq!(c.global_total(&[]).get("events_dropped"), Some(&40), "between sessions");
    }

    /// A backend whose whole-scheduler values are fixed.
    struct Globals(Vec<(&'static str, u64)>);

    impl Backend for Globals {
        fn attach(&mut self) -> scx_slo_bpf::Result<()> {
            Ok(())
        }
        fn apply(&mut self, _: &[scx_slo_bpf::MapTarget]) -> scx_slo_bpf::Result<()> {
            Ok(())
        }
        fn detach(&mut self) {}
        fn exit_info(&self) -> Option<scx_slo_api::ExitInfo> {
            None
        }
        fn target_stats(&self, _: u32) -> scx_slo_bpf::Result<TargetStats> {
            Ok(TargetStats::default())
        }
        fn global_stats(&self) -> scx_slo_bpf::Result<Vec<(&'static str, u64)>> {
            Ok(self.0.clone())
        }
        fn events_map(&self) -> Option<scx_slo_bpf::events::EventsMap> {
            None
        }
        fn target_capacity(&self) -> u32 {
            1
        }
    }

    #[test]
    fn gauges_are_the_live_sessions_and_never_summed() {
        let config = scx_slo_model::load_str(r#"{"version":1,"targets":{"batch.slice":{"class":"batch"}}}"#, None).unwrap();
        let (slots, resolved) = (Slots::default(), BTreeMap::new());
        let mut c = Carried::default();
        for tid in [4242, 777] {
            let ended = Globals(vec![("enqueues", 10), ("max_wait_ns", 5_000_000), ("max_wait_pid", tid), ("sample_every", 4)]);
            c.session_ended(&config, &slots, &resolved, &ended);
        }
        let between = c.global_total(&[]);
        assert_eq!(between.get("enqueues"), Some(&20), "counters add up over sessions");
        assert!(GLOBAL_GAUGES.iter().all(|g| !between.contains_key(g)), "no gauge between sessions: {between:?}");
        let live = c.global_total(&[("enqueues", 1), ("max_wait_ns", 900), ("max_wait_pid", 31), ("sample_every", 1)]);
        assert_eq!(
            (live.get("enqueues"), live.get("max_wait_ns"), live.get("max_wait_pid"), live.get("sample_every")),
            (Some(&21), Some(&900), Some(&31), Some(&1)),
            "the gauges are the live session's"
        );
    }
}
