// SPDX-License-Identifier: GPL-2.0-only
//! Who calls the daemon, remembered and bounded: the credentials the bus
//! gave for a unique name, and a limit on how often a denied call is
//! logged. Both exist because of floods: asking the bus costs a round trip
//! whose reply a congested bus may drop, and a log line per denied call
//! lets any local user push the daemon past journald's rate limit.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A caller's identity as the daemon authorizes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The caller's uid, when known.
    pub uid: Option<u32>,
    /// The caller's pid, when known (recorded; on the operator socket its
    /// /proc groups are read too, see [`Credentials::from_fdo`]).
    pub pid: Option<u32>,
    /// The caller's groups (supplementary and primary), when known.
    pub groups: Vec<u32>,
}

impl Credentials {
    /// From the bus's (or a peer socket's) answer.
    pub fn from_fdo(creds: &zbus::fdo::ConnectionCredentials) -> Credentials {
        let mut groups: Vec<u32> = creds.unix_group_ids().cloned().unwrap_or_default();
        if let Some(pid) = creds.process_id() {
            // zbus fills a peer socket's groups from the user database
            // (getgrouplist), which misses a group given to the process
            // alone (systemd's SupplementaryGroups=): the process's own
            // groups count too, as the socket's connect check reads them.
            groups.extend(proc_groups(pid));
            groups.sort_unstable();
            groups.dedup();
        }
        Credentials { uid: creds.unix_user_id(), pid: creds.process_id(), groups }
    }
}

/// A process's groups (the `Groups:` and `Gid:` lines of /proc/PID/status).
pub(crate) fn proc_groups(pid: u32) -> Vec<u32> {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return Vec::new() };
    let mut groups = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Groups:") {
            groups.extend(rest.split_whitespace().filter_map(|g| g.parse::<u32>().ok()));
        } else if let Some(rest) = line.strip_prefix("Gid:") {
            // Real, effective, saved, filesystem: the effective one counts.
            groups.extend(rest.split_whitespace().nth(1).and_then(|g| g.parse::<u32>().ok()));
        }
    }
    groups
}

/// Unique names remembered at most: the oldest is forgotten past this.
pub const CALLERS_KEPT: usize = 256;

/// Credentials by unique bus name. A unique name is never reused on a
/// bus's lifetime, so an entry never goes stale; it only ages out.
#[derive(Debug, Default)]
pub struct CallerCache {
    inner: Mutex<(HashMap<String, Credentials>, VecDeque<String>)>,
}

impl CallerCache {
    /// The credentials remembered for `sender`.
    pub fn get(&self, sender: &str) -> Option<Credentials> {
        let guard = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.0.get(sender).cloned()
    }

    /// Remembers `creds` for `sender`, forgetting the oldest past
    /// [`CALLERS_KEPT`].
    pub fn insert(&self, sender: String, creds: Credentials) {
        let mut guard = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (map, order) = &mut *guard;
        if map.insert(sender.clone(), creds).is_none() {
            order.push_back(sender);
        }
        while order.len() > CALLERS_KEPT {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }

    /// Unique names remembered now.
    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |g| g.0.len())
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How often a denied call is logged at most.
pub const DENIAL_LOG_EVERY: Duration = Duration::from_secs(1);

/// At most one denial log line per [`DENIAL_LOG_EVERY`], with the number
/// not logged since the last line.
#[derive(Debug, Default)]
pub struct DenialLog {
    inner: Mutex<(Option<Instant>, u64)>,
}

impl DenialLog {
    /// `Some(suppressed)` when this denial is to be logged (with how many
    /// were not since the last line), None when it is only counted.
    pub fn should_log(&self, now: Instant) -> Option<u64> {
        let mut guard = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (last, suppressed) = &mut *guard;
        match *last {
            Some(t) if now.saturating_duration_since(t) < DENIAL_LOG_EVERY => {
                *suppressed += 1;
                None
            }
            _ => {
                *last = Some(now);
                Some(std::mem::take(suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_the_newest_names_and_no_more() {
        let cache = CallerCache::default();
        for i in 0..CALLERS_KEPT + 10 {
            cache.insert(format!(":1.{i}"), Credentials { uid: Some(i as u32), ..Default::default() });
        }
        assert_eq!(cache.len(), CALLERS_KEPT);
        assert_eq!(cache.get(":1.0"), None, "the oldest aged out");
        let newest = format!(":1.{}", CALLERS_KEPT + 9);
        assert_eq!(cache.get(&newest).and_then(|c| c.uid), Some((CALLERS_KEPT + 9) as u32));
        // Inserting a known name again does not count twice.
        cache.insert(newest.clone(), Credentials::default());
        assert_eq!(cache.len(), CALLERS_KEPT);
    }

    #[test]
    fn denials_are_logged_once_a_second_with_the_rest_counted() {
        let log = DenialLog::default();
        let t0 = Instant::now();
        assert_eq!(log.should_log(t0), Some(0));
        for i in 1..=1000 {
            assert_eq!(log.should_log(t0 + Duration::from_micros(i)), None);
        }
        assert_eq!(log.should_log(t0 + DENIAL_LOG_EVERY), Some(1000), "the next line says how many were not logged");
        assert_eq!(log.should_log(t0 + DENIAL_LOG_EVERY * 3), Some(0));
    }

    #[test]
    fn a_process_groups_come_from_proc() {
        let me = std::process::id();
        let groups = proc_groups(me);
        // SAFETY: getegid has no preconditions.
        let egid = unsafe { libc::getegid() };
        assert!(groups.contains(&egid), "{groups:?} holds the effective gid {egid}");
        assert!(proc_groups(u32::MAX).is_empty());
    }
}
