// SPDX-License-Identifier: GPL-2.0-only
//! The scheduler's counters, described once: each per-target [`Counter`]
//! and whole-scheduler [`GlobalCounter`] has its wire name (the JSON key of
//! Status and the status file), its help text and, where exported, its
//! Prometheus name, all in the tables below. Code names a counter by its
//! variant, so a misspelt one does not compile; the variants are in
//! bpf/intf.h's order (`enum slo_tstat_id`, `enum slo_gstat_id`), which
//! scx-slo-bpf checks against the header.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What the tables say of one counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Described {
    /// snake_case name on the wire.
    pub name: &'static str,
    /// One-line description (the Prometheus HELP where exported).
    pub help: &'static str,
    /// The Prometheus counter it is exported as, if it is. A name ending in
    /// `_ns` is exported in seconds (`_seconds_total`).
    pub metric: Option<&'static str>,
}

macro_rules! table {
    ($(#[$doc:meta])* $ty:ident, $len:ident; $($variant:ident => $name:literal $(as $metric:literal)?, $help:literal;)*) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $ty {
            $(#[doc = $help] $variant,)*
        }

        /// How many there are.
        pub const $len: usize = [$($ty::$variant),*].len();

        impl $ty {
            /// Every one, in bpf/intf.h order.
            pub const ALL: [$ty; $len] = [$($ty::$variant),*];

            /// Its name, help and metric.
            pub const fn describe(self) -> Described {
                match self {
                    $($ty::$variant => Described { name: $name, help: $help, metric: table!(@metric $($metric)?) },)*
                }
            }

            /// Its wire name.
            pub const fn name(self) -> &'static str {
                self.describe().name
            }

            /// Its index in intf.h's enum (and in the per-CPU `cnt` arrays).
            pub const fn index(self) -> usize {
                self as usize
            }

            /// The counter with this wire name; `None` for a name not in the table.
            pub fn from_name(name: &str) -> Option<$ty> {
                $ty::ALL.into_iter().find(|c| c.name() == name)
            }
        }
    };
    (@metric $metric:literal) => { Some($metric) };
    (@metric) => { None };
}

table! {
    /// A per-target counter of the scheduler (and of the observe probes,
    /// which count the first few).
    Counter, NR_COUNTERS;
    Wakeups => "wakeups" as "scx_slo_wakeups_total", "Jobs started: a task of the unit became runnable (sampled in observe mode).";
    Runs => "runs", "Times a task of the target got a CPU.";
    RuntimeNs => "runtime_ns", "CPU time the target's tasks consumed, in nanoseconds.";
    Jobs => "jobs" as "scx_slo_jobs_total", "Jobs ended: a task of the unit went back to sleep, or was still running past its deadline (that job ends missed, the next one starts).";
    DeadlineMisses => "deadline_misses" as "scx_slo_deadline_misses_total", "Ended jobs that ran past their (would-be) deadline; never more than jobs.";
    BudgetExhausted => "budget_exhausted" as "scx_slo_budget_exhausted_total", "Periods in which the target used up its budget.";
    EdfEnqueues => "edf_enqueues", "Times queued earliest-deadline-first.";
    VtimeEnqueues => "vtime_enqueues", "Times queued by weighted virtual time.";
    DirectDispatches => "direct_dispatches", "Times sent straight to an idle CPU.";
    PreemptKicks => "preempt_kicks" as "scx_slo_preempt_kicks_total", "CPUs kicked to preempt lower-priority work.";
    EarlyWarnings => "early_warnings" as "scx_slo_early_warnings_total", "Low-slack or miss events sent to the daemon.";
    WarningsSuppressed => "warnings_suppressed" as "scx_slo_warnings_suppressed_total", "Events withheld by the per-target rate limit.";
    RqDelaySumNs => "rq_delay_sum_ns", "Run-queue delay summed over runs, in nanoseconds.";
    SlackSumNs => "slack_sum_ns", "Slack of jobs that met their deadline, summed, in nanoseconds.";
    BudgetSpentWakeups => "budget_spent_wakeups" as "scx_slo_budget_spent_wakeups_total", "Wakeups that found the period's budget already spent: those jobs ran by fair share only (the budget's shortfall).";
    FairPreempts => "fair_preempts" as "scx_slo_fair_preempts_total", "Past its budget, times a task of the target took the CPU of fair-share work that had run ahead of it, as a sleeper does under EEVDF.";
}

table! {
    /// A whole-scheduler counter (enforce mode), summed over CPUs.
    GlobalCounter, NR_GLOBAL_COUNTERS;
    Enqueues => "enqueues", "Tasks queued by the scheduler.";
    DirectDispatches => "direct_dispatches", "Tasks sent straight to an idle CPU.";
    EdfDispatches => "edf_dispatches", "Tasks dispatched earliest-deadline-first.";
    VtimeDispatches => "vtime_dispatches", "Tasks dispatched by weighted virtual time.";
    WaitBoundDispatches => "wait_bound_dispatches", "Virtual-time tasks served first because one waited max_wait.";
    RemoteDispatches => "remote_dispatches", "Tasks pulled from another NUMA node's queue.";
    CreditGrants => "credit_grants" as "scx_slo_credit_grants_total", "Batch slices lengthened to slice_max by credit lent from unused latency budgets (enforce mode).";
    CreditLentNs => "credit_lent_ns" as "scx_slo_credit_lent_seconds_total", "Unused latency budget lent to batch work as credit (enforce mode).";
    PreemptKicks => "preempt_kicks", "CPUs kicked to preempt lower-priority work.";
    EventsDropped => "events_dropped" as "scx_slo_events_dropped_total", "Early-warning events the scheduler could not send because the ring buffer was full (enforce mode).";
    WaitGuardDispatches => "wait_guard_dispatches", "Tasks overdue past a quarter of max_wait served first.";
    SliceClamps => "slice_clamps" as "scx_slo_slice_clamps_total", "Slices the kernel refilled to its 20 ms default without the scheduler (a task preempted while migration-disabled, mostly), cut back to slice_max (enforce mode).";
    KeptRunning => "kept_running" as "scx_slo_kept_running_total", "Times a latency task whose slice or budget ran out mid-job kept its CPU because no queued work stood ahead of it (enforce mode).";
}

/// A target's counters, one per [`Counter`]. On the wire a JSON object by
/// name, in name order (as the map it replaces wrote it); a reader ignores
/// names it does not know, so an older reader parses a newer daemon's
/// document, whose counters are only ever added to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters([u64; NR_COUNTERS]);

impl Counters {
    /// One counter.
    pub fn get(&self, c: Counter) -> u64 {
        self.0[c.index()]
    }

    /// Sets one counter.
    pub fn set(&mut self, c: Counter, v: u64) {
        self.0[c.index()] = v;
    }

    /// Every counter with its value, in intf.h order.
    pub fn iter(&self) -> impl Iterator<Item = (Counter, u64)> + '_ {
        Counter::ALL.into_iter().map(|c| (c, self.get(c)))
    }

    /// By wire name, in name order (the wire's).
    pub fn by_name(&self) -> BTreeMap<&'static str, u64> {
        self.iter().map(|(c, v)| (c.name(), v)).collect()
    }

    /// Adds `other` in, counter by counter (wrapping, as the kernel's do).
    pub fn add(&mut self, other: &Counters) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine = mine.wrapping_add(theirs);
        }
    }
}

impl<const N: usize> From<[(Counter, u64); N]> for Counters {
    fn from(values: [(Counter, u64); N]) -> Counters {
        let mut c = Counters::default();
        for (k, v) in values {
            c.set(k, v);
        }
        c
    }
}

impl Serialize for Counters {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let by_name = self.by_name();
        let mut map = s.serialize_map(Some(by_name.len()))?;
        for (name, v) in by_name {
            map.serialize_entry(name, &v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Counters {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Counters, D::Error> {
        struct ByName;
        impl<'de> Visitor<'de> for ByName {
            type Value = Counters;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("counters by name")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Counters, A::Error> {
                let mut out = Counters::default();
                while let Some((name, v)) = map.next_entry::<std::borrow::Cow<'de, str>, u64>()? {
                    if let Some(c) = Counter::from_name(&name) {
                        out.set(c, v);
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(ByName)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_counter_takes_its_wire_and_metric_names_from_the_table() {
        assert_eq!(Counter::Jobs.describe(), Described { name: "jobs", help: Counter::Jobs.describe().help, metric: Some("scx_slo_jobs_total") });
        assert_eq!(Counter::Runs.describe().metric, None);
        assert_eq!(GlobalCounter::CreditLentNs.describe().metric, Some("scx_slo_credit_lent_seconds_total"));
        for c in Counter::ALL {
            let d = c.describe();
            assert_eq!(Counter::from_name(d.name), Some(c));
            assert_eq!(c.index(), Counter::ALL.iter().position(|x| *x == c).unwrap());
            if let Some(m) = d.metric {
                assert_eq!(m, format!("scx_slo_{}_total", d.name), "a target counter's metric is its name");
            }
        }
        for g in GlobalCounter::ALL {
            let d = g.describe();
            assert_eq!(GlobalCounter::from_name(d.name), Some(g));
            if let Some(m) = d.metric {
                let base = d.name.strip_suffix("_ns").map_or(d.name.to_string(), |b| format!("{b}_seconds"));
                assert_eq!(m, format!("scx_slo_{base}_total"), "a global counter's metric is its name in base units");
            }
        }
        // A name not in the table is no counter, not a zero.
        assert_eq!(Counter::from_name("job"), None);
        assert_eq!(GlobalCounter::from_name("enqueue"), None);
    }

    #[test]
    fn the_wire_is_an_object_by_name_in_name_order() {
        let c = Counters::from([(Counter::Jobs, 5), (Counter::Wakeups, 7)]);
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.starts_with("{\"budget_exhausted\":0,\"budget_spent_wakeups\":0,\"deadline_misses\":0,"), "{json}");
        assert!(json.contains("\"jobs\":5") && json.ends_with("\"wakeups\":7,\"warnings_suppressed\":0}"), "{json}");
        let back: Counters = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        // A newer daemon's counter is skipped, not refused.
        let newer: Counters = serde_json::from_str("{\"jobs\":3,\"brand_new\":9}").unwrap();
        assert_eq!(newer, Counters::from([(Counter::Jobs, 3)]));
    }
}
