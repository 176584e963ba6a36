// SPDX-License-Identifier: GPL-2.0-only
//! Retry with exponential backoff, and a circuit breaker that stops retrying
//! after too many failures in a window. It stays open until an operator
//! resets it or, with a `reset_timeout`, until a half-open probe: one more
//! attempt, which closes it after a stable run and opens it again on any
//! failure. Time is passed in, so the behaviour is tested without sleeping.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;

/// What to do after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Try again after this long.
    RetryAfter(Duration),
    /// Stop: the breaker is open.
    Open,
}

/// Breaker settings.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct BreakerConfig {
    /// Failures within `window` that open the breaker.
    pub max_failures: usize,
    /// The window.
    pub window: Duration,
    /// First backoff; doubles per consecutive failure.
    pub base_backoff: Duration,
    /// Backoff cap.
    pub max_backoff: Duration,
    /// How long an open breaker waits before its half-open probe; `None`:
    /// it stays open until an operator resets it.
    pub reset_timeout: Option<Duration>,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            max_failures: 3,
            window: Duration::from_secs(600),
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            reset_timeout: None,
        }
    }
}

/// Where the breaker is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Closed,
    /// Open. `probe`: a half-open probe may follow after `reset_timeout`
    /// (failures opened it). An open breaker restored from the state file or
    /// tripped by the canary's verdict waits for an operator: a measured
    /// regression is not a transient failure that time heals.
    Open { probe: bool },
    /// One attempt runs; the next failure opens the breaker again.
    HalfOpen,
}

/// The breaker. `now` is any monotonic clock reading.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    failures: VecDeque<Duration>,
    consecutive: u32,
    phase: Phase,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Breaker { config, failures: VecDeque::new(), consecutive: 0, phase: Phase::Closed }
    }

    /// An open breaker (restored from state after a restart).
    pub fn opened(config: BreakerConfig) -> Self {
        Breaker { phase: Phase::Open { probe: false }, ..Breaker::new(config) }
    }

    /// Records a failure at `now`.
    pub fn failure(&mut self, now: Duration) -> Decision {
        while self.failures.front().is_some_and(|t| now.saturating_sub(*t) > self.config.window) {
            self.failures.pop_front();
        }
        self.failures.push_back(now);
        self.consecutive = self.consecutive.saturating_add(1);
        match self.phase {
            // The probe failed: harm again, so open again (and probe again later).
            Phase::HalfOpen => self.phase = Phase::Open { probe: true },
            Phase::Closed if self.failures.len() >= self.config.max_failures => self.phase = Phase::Open { probe: true },
            Phase::Closed | Phase::Open { .. } => {}
        }
        if self.is_open() {
            return Decision::Open;
        }
        let factor = 1u32 << (self.consecutive - 1).min(16);
        Decision::RetryAfter(self.config.base_backoff.saturating_mul(factor).min(self.config.max_backoff))
    }

    /// Records a success (a stable run): the backoff starts over (the window
    /// keeps counting). Returns `true` when it ended a half-open probe, which
    /// closes the breaker and forgets its failures.
    pub fn success(&mut self) -> bool {
        self.consecutive = 0;
        if self.phase == Phase::HalfOpen {
            self.reset();
            return true;
        }
        false
    }

    /// Opens the breaker on a decision that is not a failure count (the
    /// canary's rollback): no retries, and no probe, until an operator
    /// resets it.
    pub fn trip(&mut self) {
        self.phase = Phase::Open { probe: false };
    }

    /// Closes the breaker and forgets failures (operator action).
    pub fn reset(&mut self) {
        self.failures.clear();
        self.consecutive = 0;
        self.phase = Phase::Closed;
    }

    /// How long after opening a half-open probe may start: `None` when this
    /// open breaker waits for an operator (or it is not open).
    pub fn probe_after(&self) -> Option<Duration> {
        match self.phase {
            Phase::Open { probe: true } => self.config.reset_timeout,
            _ => None,
        }
    }

    /// The probe starts: the breaker is half-open. `false` (and nothing
    /// changes) unless it is open with a probe allowed.
    pub fn half_open(&mut self) -> bool {
        if self.probe_after().is_none() {
            return false;
        }
        self.phase = Phase::HalfOpen;
        true
    }

    /// True when no more retries happen (until a probe or an operator).
    pub fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open { .. })
    }

    /// True while the half-open probe runs.
    pub fn is_half_open(&self) -> bool {
        self.phase == Phase::HalfOpen
    }

    /// Failures in the current window.
    pub fn recent_failures(&self) -> usize {
        self.failures.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn backs_off_exponentially_then_opens() {
        let mut b = Breaker::new(BreakerConfig { max_failures: 4, ..Default::default() });
        assert_eq!(b.failure(s(0)), Decision::RetryAfter(s(1)));
        assert_eq!(b.failure(s(1)), Decision::RetryAfter(s(2)));
        assert_eq!(b.failure(s(3)), Decision::RetryAfter(s(4)));
        assert_eq!(b.failure(s(7)), Decision::Open);
        assert!(b.is_open());
        assert_eq!(b.failure(s(100)), Decision::Open, "stays open until reset");
        b.reset();
        assert!(!b.is_open());
        assert_eq!(b.failure(s(101)), Decision::RetryAfter(s(1)));
    }

    #[test]
    fn old_failures_leave_the_window() {
        let mut b = Breaker::new(BreakerConfig { max_failures: 2, window: s(10), ..Default::default() });
        b.failure(s(0));
        b.success();
        assert_eq!(b.failure(s(20)), Decision::RetryAfter(s(1)), "the first failure is out of the window");
        assert_eq!(b.recent_failures(), 1);
    }

    #[test]
    fn backoff_is_capped() {
        let mut b = Breaker::new(BreakerConfig { max_failures: 100, max_backoff: s(5), ..Default::default() });
        let mut last = Decision::Open;
        for i in 0..20 {
            last = b.failure(s(i));
        }
        assert_eq!(last, Decision::RetryAfter(s(5)));
    }

    fn probing(reset_timeout: Option<Duration>) -> Breaker {
        let mut b = Breaker::new(BreakerConfig { max_failures: 2, reset_timeout, ..Default::default() });
        b.failure(s(0));
        assert_eq!(b.failure(s(1)), Decision::Open);
        b
    }

    #[test]
    fn without_a_reset_timeout_there_is_no_probe() {
        let mut b = probing(None);
        assert_eq!(b.probe_after(), None);
        assert!(!b.half_open() && b.is_open());
    }

    #[test]
    fn a_half_open_probe_that_fails_opens_again_and_one_that_holds_closes() {
        let mut b = probing(Some(s(300)));
        assert_eq!(b.probe_after(), Some(s(300)));
        assert!(b.half_open());
        assert!(!b.is_open() && b.is_half_open());
        // Harm during the probe: open again at once, with another probe later.
        assert_eq!(b.failure(s(400)), Decision::Open);
        assert!(b.is_open() && b.probe_after() == Some(s(300)));
        assert!(b.half_open());
        assert!(b.success(), "a stable probe closes the breaker");
        assert!(!b.is_open() && !b.is_half_open() && b.recent_failures() == 0);
        assert!(!b.success(), "a success while closed is not a probe's");
        assert_eq!(b.failure(s(800)), Decision::RetryAfter(s(1)));
    }

    #[test]
    fn a_canary_trip_and_a_restored_open_breaker_wait_for_an_operator() {
        let config = BreakerConfig { reset_timeout: Some(s(1)), ..Default::default() };
        let mut b = Breaker::new(config);
        b.trip();
        assert!(b.is_open() && b.probe_after().is_none() && !b.half_open());
        let mut b = Breaker::opened(config);
        assert!(b.is_open() && !b.half_open());
    }
}
