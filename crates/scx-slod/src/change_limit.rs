// SPDX-License-Identifier: GPL-2.0-only
//! The host-wide limit on automatic changes: the adaptive controllers'
//! budget steps and advisory's CPUWeight changes together make at most
//! `max_changes` in any `window` (a sliding window). Each controller also
//! has its own per-target limits (max_step, cooldown); those bound one
//! target, this bounds the host, so 1,000 adaptive targets cannot all move
//! in one pass. Backing out (a canary rollback, Disable, the breaker) is
//! never limited: holding harm in place is not safer.
//!
//! Which targets get the changes a pass may make rotates, so the first
//! targets in name order cannot take every pass's share for ever.
//! Time is passed in, so the behaviour is tested without sleeping.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Default: changes in any window.
pub const DEFAULT_MAX_CHANGES: usize = 100;
/// Default window.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
/// The largest `max_changes` accepted: the window's log holds one instant
/// per change, so this bounds its memory.
pub const MAX_CHANGES_LIMIT: usize = 100_000;

/// The limiter.
#[derive(Debug)]
pub struct ChangeLimiter {
    max_changes: usize,
    window: Duration,
    /// When each change of the window was made, oldest first (at most
    /// `max_changes`).
    made: VecDeque<Instant>,
    /// Changes refused by the limit since the start.
    deferred: u64,
}

impl Default for ChangeLimiter {
    fn default() -> Self {
        ChangeLimiter::new(DEFAULT_MAX_CHANGES, DEFAULT_WINDOW)
    }
}

impl ChangeLimiter {
    /// At most `max_changes` (clamped to 1..=[`MAX_CHANGES_LIMIT`]) in any
    /// `window`.
    pub fn new(max_changes: usize, window: Duration) -> Self {
        ChangeLimiter { max_changes: max_changes.clamp(1, MAX_CHANGES_LIMIT), window, made: VecDeque::new(), deferred: 0 }
    }

    fn expire(&mut self, now: Instant) {
        while self.made.front().is_some_and(|t| now.saturating_duration_since(*t) >= self.window) {
            self.made.pop_front();
        }
    }

    /// How many changes may be made at `now`.
    pub fn allowance(&mut self, now: Instant) -> usize {
        self.expire(now);
        self.max_changes.saturating_sub(self.made.len())
    }

    /// Takes one change at `now`: `false` (and counted as deferred) when the
    /// window is full.
    pub fn take(&mut self, now: Instant) -> bool {
        if self.allowance(now) == 0 {
            self.deferred += 1;
            return false;
        }
        self.made.push_back(now);
        true
    }

    /// Changes the limit held back since the start.
    pub fn deferred(&self) -> u64 {
        self.deferred
    }

    /// The limit, as `(max_changes, window)`.
    pub fn limit(&self) -> (usize, Duration) {
        (self.max_changes, self.window)
    }
}

/// Splits `units` (sorted by name) into the `allowance` that may change now
/// and the rest, starting after `cursor` (the last unit served last time), so
/// every unit gets its turn; `cursor` moves to the last one chosen.
pub fn take_turns<T>(cursor: &mut Option<String>, mut units: Vec<T>, allowance: usize, name: impl Fn(&T) -> &str) -> (Vec<T>, Vec<T>) {
    if units.len() <= allowance {
        return (units, Vec::new());
    }
    let start = cursor.as_deref().map_or(0, |c| units.iter().position(|u| name(u) > c).unwrap_or(0));
    units.rotate_left(start);
    let rest = units.split_off(allowance);
    if let Some(last) = units.last() {
        *cursor = Some(name(last).to_string());
    }
    (units, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_max_changes_in_any_window() {
        let t0 = Instant::now();
        let mut l = ChangeLimiter::new(3, Duration::from_secs(60));
        assert_eq!(l.allowance(t0), 3);
        assert!(l.take(t0) && l.take(t0) && l.take(t0 + Duration::from_secs(30)));
        assert!(!l.take(t0 + Duration::from_secs(59)), "the window is full");
        assert_eq!(l.deferred(), 1);
        // The first two leave the window at 60 s, the third at 90 s.
        assert_eq!(l.allowance(t0 + Duration::from_secs(60)), 2);
        assert_eq!(l.allowance(t0 + Duration::from_secs(90)), 3);
    }

    #[test]
    fn the_limit_is_clamped_to_at_least_one_and_a_bounded_log() {
        assert_eq!(ChangeLimiter::new(0, DEFAULT_WINDOW).limit().0, 1);
        assert_eq!(ChangeLimiter::new(usize::MAX, DEFAULT_WINDOW).limit().0, MAX_CHANGES_LIMIT);
    }

    #[test]
    fn a_thousand_targets_take_turns() {
        let mut cursor = None;
        let units: Vec<String> = (0..1000).map(|i| format!("u{i:04}.service")).collect();
        let (now, rest) = take_turns(&mut cursor, units.clone(), 100, |u| u.as_str());
        assert_eq!((now.len(), rest.len()), (100, 900));
        assert_eq!(now[0], "u0000.service");
        // The next pass starts where this one stopped, not at the first name.
        let (next, _) = take_turns(&mut cursor, units.clone(), 100, |u| u.as_str());
        assert_eq!(next[0], "u0100.service");
        // Past the end it wraps around.
        let few: Vec<String> = vec!["a".into(), "b".into(), "zz".into()];
        let mut cursor = None;
        let order: Vec<String> = (0..4).map(|_| take_turns(&mut cursor, few.clone(), 1, |u| u.as_str()).0.remove(0)).collect();
        assert_eq!(order, ["a", "b", "zz", "a"]);
        // Everything fits: nothing held back, in order.
        let (all, none) = take_turns(&mut cursor, few.clone(), 5, |u| u.as_str());
        assert_eq!((all, none.len()), (few, 0));
    }
}
