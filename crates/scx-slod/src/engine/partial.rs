// SPDX-License-Identifier: GPL-2.0-only
//! Partial switching (`switch: partial`): the targets' threads are moved to
//! SCHED_EXT one by one, when the scheduler reports a new task (the events
//! thread) and by a periodic scan as the safety net, and moved back when the
//! session ends. This owns the switcher and its counts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scx_slo_api::documents::PartialSwitchReport;
use tracing::{debug, warn};

use crate::resolver::Resolved;
use crate::switcher::Switcher;

/// Cgroups the scan reads per pass, about: with many targets the scan visits
/// each one less often (1,000 targets: every 10th pass; reading them all
/// each pass cost 80% of a TCG vCPU).
const SCAN_CGROUPS: usize = 100;

/// What the events thread shares with the engine.
#[derive(Clone, Default)]
pub struct EventSink {
    /// Tids the events thread switched, for the switcher to adopt.
    pub reported: Arc<Mutex<Vec<i32>>>,
    /// Threads switched on the scheduler's report.
    pub by_event: Arc<AtomicU64>,
}

/// Partial switching's state.
#[derive(Default)]
pub struct PartialSwitching {
    switcher: Switcher,
    sink: EventSink,
    scans: u64,
    by_scan: u64,
    /// Threads the kernel refused SCHED_EXT (EPERM...), the last reason, and
    /// when that was last logged.
    refused: u64,
    last_refusal: Option<String>,
    refused_warned: Option<Instant>,
}

impl PartialSwitching {
    /// The handles the events thread switches through.
    pub fn sink(&self) -> EventSink {
        self.sink.clone()
    }

    /// Takes over what the events thread switched, so it is restored too.
    pub fn adopt_reported(&mut self) {
        let tids = self.sink.reported.lock().map(|mut r| std::mem::take(&mut *r)).unwrap_or_default();
        self.switcher.adopt(tids);
    }

    /// One scan pass over the resolved targets' cgroups (every pass visits
    /// about [`SCAN_CGROUPS`] cgroups' worth; the list is built only for a
    /// pass that runs).
    pub fn scan(&mut self, resolved: &BTreeMap<String, Resolved>) {
        self.scans = self.scans.wrapping_add(1);
        let every = (resolved.len() / SCAN_CGROUPS).max(1) as u64;
        if !self.scans.is_multiple_of(every) {
            return;
        }
        let dirs: Vec<PathBuf> = resolved.values().map(|r| r.dir.clone()).collect();
        self.adopt_reported();
        let report = self.switcher.scan(&dirs);
        self.by_scan += report.switched as u64;
        if report.switched + report.restored + report.failed > 0 {
            debug!(switched = report.switched, restored = report.restored, failed = report.failed, "partial switch scan");
        }
        if let Some(errno) = report.refused_errno {
            // The targets are not on scx_slo: say so, at most once a minute.
            self.refused += report.failed as u64;
            let why = std::io::Error::from_raw_os_error(errno).to_string();
            if self.refused_warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                self.refused_warned = Some(Instant::now());
                warn!(
                    event = "partial_switch_refused",
                    threads = report.failed,
                    errno,
                    "the kernel refused SCHED_EXT for {} target threads ({why}): they stay on the fair class; under systemd, RestrictRealtime=yes refuses policy 7 and CAP_SYS_NICE is needed (docs/nixos.md)",
                    report.failed
                );
            }
            self.last_refusal = Some(why);
        }
    }

    /// Moves every switched thread back; how many.
    pub fn restore_all(&mut self) -> usize {
        self.switcher.restore_all()
    }

    /// Threads on SCHED_EXT now.
    pub fn switched(&self) -> usize {
        self.switcher.switched()
    }

    /// The counts for Status.
    pub fn report(&self) -> PartialSwitchReport {
        PartialSwitchReport {
            by_event: self.sink.by_event.load(Ordering::Relaxed),
            by_scan: self.by_scan,
            refused: self.refused,
            last_refusal: self.last_refusal.clone(),
        }
    }
}
