// SPDX-License-Identifier: GPL-2.0-only
//! Retry with exponential backoff, and a circuit breaker that stops retrying
//! after too many failures in a window until an operator resets it.
//! Time is passed in, so the behaviour is tested without sleeping.

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
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            max_failures: 3,
            window: Duration::from_secs(600),
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// The breaker. `now` is any monotonic clock reading.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    failures: VecDeque<Duration>,
    consecutive: u32,
    open: bool,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Breaker { config, failures: VecDeque::new(), consecutive: 0, open: false }
    }

    /// An open breaker (restored from state after a restart).
    pub fn opened(config: BreakerConfig) -> Self {
        Breaker { open: true, ..Breaker::new(config) }
    }

    /// Records a failure at `now`.
    pub fn failure(&mut self, now: Duration) -> Decision {
        while self.failures.front().is_some_and(|t| now.saturating_sub(*t) > self.config.window) {
            self.failures.pop_front();
        }
        self.failures.push_back(now);
        self.consecutive = self.consecutive.saturating_add(1);
        if self.failures.len() >= self.config.max_failures {
            self.open = true;
        }
        if self.open {
            return Decision::Open;
        }
        let factor = 1u32 << (self.consecutive - 1).min(16);
        Decision::RetryAfter(self.config.base_backoff.saturating_mul(factor).min(self.config.max_backoff))
    }

    /// Records a success: the backoff starts over (the window keeps counting).
    pub fn success(&mut self) {
        self.consecutive = 0;
    }

    /// Opens the breaker on a decision that is not a failure count (the
    /// canary's rollback): no retries until an operator resets it.
    pub fn trip(&mut self) {
        self.open = true;
    }

    /// Closes the breaker and forgets failures (operator action).
    pub fn reset(&mut self) {
        self.failures.clear();
        self.consecutive = 0;
        self.open = false;
    }

    /// True when no more retries happen.
    pub fn is_open(&self) -> bool {
        self.open
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
}
