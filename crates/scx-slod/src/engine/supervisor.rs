// SPDX-License-Identifier: GPL-2.0-only
//! Session supervision: whether a scheduler should run and which mode, the
//! lifecycle state, backoff and the circuit breaker, the observe fallback,
//! and the Enable calls waiting for a session to attach. Pure: time is passed
//! in and nothing here touches the kernel or the disk; the engine carries out
//! what it decides (detach, save, announce the transition).

use std::time::Instant;

use scx_slo_api::{ActiveMode, Capabilities, ControlError, Reply, State};
use scx_slo_model::Mode;
use tokio::sync::oneshot;
use tracing::{error, info};

use crate::breaker::{Breaker, BreakerConfig, Decision};
use crate::lifecycle::{Lifecycle, Transition};

/// What an Enable call leads to.
#[derive(Debug, PartialEq, Eq)]
pub enum EnableOutcome {
    /// The scheduler already runs in the wanted mode.
    AlreadyRunning,
    /// A session starts (or restarts in another mode); it answers the call.
    SessionStarts,
}

/// What a failure led to.
#[derive(Debug, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Retry after a backoff.
    Backoff(std::time::Duration),
    /// The breaker opened: no retries until an operator resets it.
    BreakerOpened(usize),
}

/// The supervisor.
#[derive(Debug)]
pub struct Supervisor {
    lifecycle: Lifecycle,
    breaker: Breaker,
    caps: Capabilities,
    /// The mode to run when the daemon runs one.
    primary: ActiveMode,
    /// The mode running now (None: nothing loaded).
    pub active: Option<ActiveMode>,
    /// On unless an operator disabled or the breaker opened.
    wanted_on: bool,
    /// An operator's Disable reason still in force.
    operator_disabled: Option<String>,
    /// The backoff: the primary mode may not start before this.
    retry_at: Option<Instant>,
    /// The open breaker's half-open probe may start at this time.
    probe_at: Option<Instant>,
    /// Observe could not load as a fallback; not retried until this.
    fallback_retry_at: Option<Instant>,
    /// Observe may stand in while enforce backs off (the real backend,
    /// a host that can observe).
    can_fallback: bool,
    /// An Enable asked for another mode: end the session and start it.
    mode_switch: bool,
    /// The canary's baseline window: enforce waits, observe measures the
    /// default scheduler, until the canary ends the window.
    baseline: bool,
    pending_enable: Vec<oneshot::Sender<Reply>>,
}

impl Supervisor {
    /// Starts from what was persisted: an operator's disable and an open
    /// breaker survive restarts.
    pub fn new(
        caps: Capabilities,
        primary: ActiveMode,
        breaker: BreakerConfig,
        operator_disabled: Option<String>,
        breaker_open: bool,
        can_fallback: bool,
    ) -> Self {
        let mut lifecycle = Lifecycle::default();
        if breaker_open {
            let _ = lifecycle.go(State::Starting, "restoring");
            let _ = lifecycle.go(State::Failed, "circuit breaker was open before the restart");
        }
        Supervisor {
            lifecycle,
            breaker: if breaker_open { Breaker::opened(breaker) } else { Breaker::new(breaker) },
            caps,
            primary,
            active: None,
            wanted_on: operator_disabled.is_none() && !breaker_open,
            operator_disabled,
            retry_at: None,
            probe_at: None,
            fallback_retry_at: None,
            can_fallback,
            mode_switch: false,
            baseline: false,
            pending_enable: Vec::new(),
        }
    }

    /// The lifecycle state.
    pub fn state(&self) -> State {
        self.lifecycle.state()
    }

    /// The primary mode.
    pub fn primary(&self) -> ActiveMode {
        self.primary
    }

    /// What the host offers.
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// Whether a scheduler should run.
    pub fn wanted_on(&self) -> bool {
        self.wanted_on
    }

    /// An operator's Disable reason in force.
    pub fn operator_disabled(&self) -> Option<&str> {
        self.operator_disabled.as_deref()
    }

    /// Whether the breaker is open, and the failures in its window.
    pub fn breaker(&self) -> (bool, usize) {
        (self.breaker.is_open(), self.breaker.recent_failures())
    }

    /// Seconds from `now` until the open breaker's half-open probe (None:
    /// no probe is coming, an operator must act).
    pub fn breaker_probe_in(&self, now: Instant) -> Option<u64> {
        self.probe_at.filter(|_| self.breaker.is_open()).map(|at| at.saturating_duration_since(now).as_secs())
    }

    /// Whether the breaker's half-open probe runs now.
    pub fn breaker_half_open(&self) -> bool {
        self.breaker.is_half_open()
    }

    /// Whether the running session must end for another mode.
    pub fn mode_switch(&self) -> bool {
        self.mode_switch
    }

    /// A move of the lifecycle; `None` when already there. A forbidden move
    /// is a bug: it is logged and the state stays.
    pub fn go(&mut self, to: State, reason: impl Into<String>) -> Option<Transition> {
        let reason = reason.into();
        match self.lifecycle.go(to, reason.clone()) {
            Ok(t) => t,
            Err(e) => {
                error!("internal: {e} ({reason})");
                None
            }
        }
    }

    /// The primary mode may (re)start: on, breaker closed (or its half-open
    /// probe due), backoff over.
    pub fn primary_due(&self, now: Instant) -> bool {
        let breaker_lets = !self.breaker.is_open() || self.probe_at.is_some_and(|t| now >= t);
        self.wanted_on && breaker_lets && !self.baseline && self.retry_at.is_none_or(|t| now >= t)
    }

    /// The canary's baseline window begins (enforce waits) or ends.
    pub fn set_baseline(&mut self, on: bool) {
        self.baseline = on;
    }

    /// Whether a canary baseline window holds enforce back.
    pub fn in_baseline(&self) -> bool {
        self.baseline
    }

    /// The canary judged the candidate worse than the default scheduler:
    /// the breaker opens (persisted by the caller), state `failed`, and the
    /// host stays on its default scheduler until an operator resets it.
    pub fn canary_rolled_back(&mut self, why: &str) -> Option<Transition> {
        self.breaker.trip();
        self.retry_at = None;
        self.probe_at = None;
        self.baseline = false;
        self.go(State::Failed, format!("{why}; circuit breaker open, staying off until ResetBreaker or Enable"))
    }

    /// What to run next: the primary mode when due; while enforce backs off
    /// or its breaker is open, observe as a fallback (the kernel schedules
    /// with its default scheduler either way, and the numbers keep coming).
    pub fn next_session(&self, now: Instant) -> Option<(ActiveMode, bool)> {
        if self.primary_due(now) {
            return Some((self.primary, false));
        }
        // The canary's baseline needs the probes whatever the backend: its
        // verdict is only as good as the default scheduler's measurements.
        let fallback_ok = self.wanted_on
            && self.primary == ActiveMode::Enforce
            && (self.can_fallback || self.baseline)
            && self.caps.can_observe()
            && self.fallback_retry_at.is_none_or(|t| now >= t);
        fallback_ok.then_some((ActiveMode::Observe, true))
    }

    /// The wait until the backoff (or the breaker's probe) ends, when
    /// sooner than `wait`.
    pub fn until_retry(&self, now: Instant, wait: std::time::Duration) -> std::time::Duration {
        self.retry_at.or(self.probe_at).map_or(wait, |at| wait.min(at.saturating_duration_since(now)))
    }

    /// A session attached; for the primary mode the backoff is over, and an
    /// open breaker whose probe was due is half-open now. Returns `true`
    /// when this attach is that probe.
    pub fn attached(&mut self, mode: ActiveMode, fallback: bool) -> bool {
        self.active = Some(mode);
        if fallback {
            return false;
        }
        self.retry_at = None;
        self.probe_at = None;
        let probe = self.breaker.half_open();
        if probe {
            info!("circuit breaker half-open: one probe runs; a failure opens it again");
        }
        probe
    }

    /// The primary session runs (the state says so already): the Enable
    /// calls waiting for it are answered.
    pub fn running(&mut self, generation: u64) {
        self.answer_pending(Ok(format!("running generation {generation}")));
    }

    /// A session ended (detached, whatever the reason).
    pub fn detached(&mut self) {
        self.active = None;
        if self.mode_switch {
            self.mode_switch = false;
            self.retry_at = None;
        }
    }

    /// The scheduler ran long enough that the next failure backs off from
    /// the start again. Returns `true` when that ended a half-open probe:
    /// the breaker is closed (the caller persists and audits it).
    pub fn stable(&mut self) -> bool {
        let closed = self.breaker.success();
        if closed {
            info!("circuit breaker closed: the half-open probe ran stably");
        }
        closed
    }

    /// A fallback session could not start: the primary's state stands, and
    /// observe is tried again in a minute.
    pub fn fallback_failed(&mut self, now: Instant) {
        self.fallback_retry_at = Some(now + std::time::Duration::from_secs(60));
    }

    /// A load failure or an ejection: back off, or open the breaker.
    /// `since_start` is the breaker's clock.
    pub fn failure(&mut self, why: &str, since_start: std::time::Duration, now: Instant) -> (FailureOutcome, Option<Transition>) {
        let (outcome, transition) = match self.breaker.failure(since_start) {
            Decision::RetryAfter(delay) => {
                self.retry_at = Some(now + delay);
                (FailureOutcome::Backoff(delay), self.go(State::Degraded, format!("{why}; retrying in {:.1} s", delay.as_secs_f64())))
            }
            Decision::Open => {
                self.retry_at = None;
                self.probe_at = self.breaker.probe_after().map(|after| now + after);
                let n = self.breaker.recent_failures();
                let until = match self.breaker.probe_after() {
                    Some(after) => format!("probing once again in {:.0} s (or ResetBreaker, Enable)", after.as_secs_f64()),
                    None => "staying off until ResetBreaker or Enable".to_string(),
                };
                let reason = format!("{why}; circuit breaker open after {n} failures, {until}");
                (FailureOutcome::BreakerOpened(n), self.go(State::Failed, reason))
            }
        };
        self.answer_pending(Err(ControlError::Failed(why.to_string())));
        (outcome, transition)
    }

    /// Enable: `mode` is `""` for the config's mode (`config_mode`), or a
    /// mode's name. Closes the breaker and clears an operator's disable.
    /// `running`: a session of the primary mode runs now.
    pub fn enable(&mut self, mode: &str, config_mode: Mode, running: bool) -> Result<EnableOutcome, ControlError> {
        let requested = match mode {
            "" => config_mode,
            "auto" => Mode::Auto,
            "enforce" => Mode::Enforce,
            "advisory" => Mode::Advisory,
            "observe" => Mode::Observe,
            other => {
                return Err(ControlError::InvalidArgument(format!(
                    "mode {other:?}: use enforce, advisory, observe, auto, or \"\" for the config's mode"
                )))
            }
        };
        let wanted = self.caps.select(requested).map_err(|why| ControlError::NotSupported(format!("mode {mode}: {why}")))?;
        let running = running && self.active == Some(self.primary) && self.state() == State::Running;
        if wanted != self.primary {
            info!(from = self.primary.as_str(), to = wanted.as_str(), "Enable switches the mode");
            self.primary = wanted;
            if running {
                self.mode_switch = true;
            }
        }
        if self.breaker.is_open() {
            info!("circuit breaker reset by Enable");
        }
        self.breaker.reset();
        self.operator_disabled = None;
        self.wanted_on = true;
        self.retry_at = None;
        self.probe_at = None;
        // An operator's Enable loads the scheduler now, canary or not.
        self.baseline = false;
        Ok(if running && !self.mode_switch { EnableOutcome::AlreadyRunning } else { EnableOutcome::SessionStarts })
    }

    /// Waits for the session an Enable started.
    pub fn park(&mut self, reply: oneshot::Sender<Reply>) {
        self.pending_enable.push(reply);
    }

    fn answer_pending(&mut self, reply: Reply) {
        for pending in self.pending_enable.drain(..) {
            let _ = pending.send(reply.clone());
        }
    }

    /// An operator's emergency stop: decided before the engine detaches
    /// (the detach cannot fail), so the save is queued while it does.
    pub fn disable(&mut self, reason: &str) -> Option<Transition> {
        self.wanted_on = false;
        self.baseline = false;
        self.retry_at = None;
        self.probe_at = None;
        self.operator_disabled = Some(reason.to_string());
        let t = self.go(State::Disabled, format!("disabled by an operator: {reason}"));
        self.answer_pending(Err(ControlError::Failed("disabled before the scheduler started".into())));
        t
    }

    /// ResetBreaker: `true` when the daemon was failed and retries now.
    pub fn reset_breaker(&mut self) -> (bool, Option<Transition>) {
        self.breaker.reset();
        self.probe_at = None;
        if self.state() != State::Failed {
            return (false, None);
        }
        self.retry_at = None;
        info!("circuit breaker reset by an operator");
        let t = if self.wanted_on { None } else { self.go(State::Disabled, "circuit breaker reset") };
        (true, t)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn caps(sched_ext: bool) -> Capabilities {
        Capabilities { sched_ext, btf: true, cgroup2: true, cgroup2_unified: false, systemd: false, enforce_unavailable: None }
    }

    fn supervisor() -> Supervisor {
        Supervisor::new(caps(true), ActiveMode::Enforce, BreakerConfig::default(), None, false, true)
    }

    #[test]
    fn failures_back_off_then_open_the_breaker_and_observe_stands_in() {
        let mut s = supervisor();
        let now = Instant::now();
        assert_eq!(s.next_session(now), Some((ActiveMode::Enforce, false)));
        s.go(State::Starting, "load");
        let (outcome, t) = s.failure("ejected", Duration::from_secs(1), now);
        assert_eq!(outcome, FailureOutcome::Backoff(Duration::from_secs(1)));
        assert_eq!(t.map(|t| t.to), Some(State::Degraded));
        // Backing off: observe stands in, and enforce is due after the delay.
        assert_eq!(s.next_session(now), Some((ActiveMode::Observe, true)));
        assert!(s.primary_due(now + Duration::from_secs(1)));
        assert_eq!(s.until_retry(now, Duration::from_secs(5)), Duration::from_secs(1));
        s.go(State::Starting, "retry");
        assert_eq!(s.failure("ejected", Duration::from_secs(3), now).0, FailureOutcome::Backoff(Duration::from_secs(2)));
        s.go(State::Starting, "retry");
        let (outcome, t) = s.failure("ejected", Duration::from_secs(7), now);
        assert_eq!(outcome, FailureOutcome::BreakerOpened(3));
        assert_eq!(t.map(|t| t.to), Some(State::Failed));
        assert!(!s.primary_due(now + Duration::from_secs(3600)) && s.breaker().0);
        // A failed observe fallback waits a minute.
        s.fallback_failed(now);
        assert_eq!(s.next_session(now), None);
        assert_eq!(s.next_session(now + Duration::from_secs(61)), Some((ActiveMode::Observe, true)));
    }

    #[test]
    fn waiting_enables_hear_how_the_session_ended() {
        let mut s = supervisor();
        let (tx, mut rx) = oneshot::channel();
        assert_eq!(s.enable("", Mode::Enforce, false), Ok(EnableOutcome::SessionStarts));
        s.park(tx);
        s.go(State::Starting, "load");
        s.failure("loading scx_slo: verifier", Duration::ZERO, Instant::now());
        assert_eq!(rx.try_recv().unwrap(), Err(ControlError::Failed("loading scx_slo: verifier".into())));
        let (tx, mut rx) = oneshot::channel();
        s.park(tx);
        s.go(State::Starting, "retry");
        s.attached(ActiveMode::Enforce, false);
        s.go(State::Running, "attached");
        s.running(4);
        assert_eq!(rx.try_recv().unwrap(), Ok("running generation 4".into()));
        let (tx, mut rx) = oneshot::channel();
        s.park(tx);
        s.disable("incident");
        assert!(matches!(rx.try_recv().unwrap(), Err(ControlError::Failed(m)) if m.contains("disabled before")));
    }

    #[test]
    fn enable_names_bad_modes_and_what_the_host_lacks() {
        let mut s = Supervisor::new(caps(false), ActiveMode::Observe, BreakerConfig::default(), None, false, true);
        assert!(matches!(s.enable("fast", Mode::Observe, false), Err(ControlError::InvalidArgument(m)) if m.contains("\"fast\"")));
        assert!(matches!(s.enable("enforce", Mode::Observe, false), Err(ControlError::NotSupported(_))));
        assert_eq!(s.primary(), ActiveMode::Observe);
    }

    #[test]
    fn enable_while_running_is_a_no_op_or_a_mode_switch() {
        let mut s = supervisor();
        s.go(State::Starting, "load");
        s.go(State::Running, "attached");
        s.attached(ActiveMode::Enforce, false);
        assert_eq!(s.enable("enforce", Mode::Enforce, true), Ok(EnableOutcome::AlreadyRunning));
        assert_eq!(s.enable("observe", Mode::Enforce, true), Ok(EnableOutcome::SessionStarts));
        assert!(s.mode_switch() && s.primary() == ActiveMode::Observe);
        s.detached();
        assert!(!s.mode_switch() && s.active.is_none());
    }

    #[test]
    fn disable_and_the_breaker_survive_restarts_and_enable_clears_both() {
        let s = Supervisor::new(caps(true), ActiveMode::Enforce, BreakerConfig::default(), Some("incident".into()), false, true);
        assert!(!s.wanted_on() && s.state() == State::Disabled && s.next_session(Instant::now()).is_none());
        let mut s = Supervisor::new(caps(true), ActiveMode::Enforce, BreakerConfig::default(), None, true, true);
        assert!(s.state() == State::Failed && s.breaker().0);
        assert_eq!(s.enable("", Mode::Enforce, false), Ok(EnableOutcome::SessionStarts));
        assert!(!s.breaker().0 && s.wanted_on() && s.operator_disabled().is_none());
    }

    #[test]
    fn reset_breaker_retries_when_failed_and_stays_off_when_disabled() {
        let mut s = Supervisor::new(caps(true), ActiveMode::Enforce, BreakerConfig::default(), None, true, true);
        // Restored open: wanted off until reset; the reset leaves it disabled.
        let (retry, t) = s.reset_breaker();
        assert!(retry && t.map(|t| t.to) == Some(State::Disabled));
        let mut s = supervisor();
        assert_eq!(s.reset_breaker(), (false, None));
    }

    #[test]
    fn an_open_breaker_probes_after_its_reset_timeout_and_reopens_on_harm() {
        let config = BreakerConfig { max_failures: 1, reset_timeout: Some(Duration::from_secs(300)), ..Default::default() };
        let mut s = Supervisor::new(caps(true), ActiveMode::Enforce, config, None, false, true);
        let now = Instant::now();
        s.go(State::Starting, "load");
        let (outcome, t) = s.failure("ejected", Duration::ZERO, now);
        assert_eq!(outcome, FailureOutcome::BreakerOpened(1));
        assert!(t.is_some_and(|t| t.reason.contains("probing once again in 300 s")));
        assert!(!s.primary_due(now + Duration::from_secs(299)));
        assert_eq!(s.until_retry(now, Duration::from_secs(3600)), Duration::from_secs(300));
        assert_eq!(s.breaker_probe_in(now + Duration::from_secs(100)), Some(200));
        let later = now + Duration::from_secs(300);
        assert_eq!(s.next_session(later), Some((ActiveMode::Enforce, false)));
        // The probe attaches, is ejected: open again, the next probe later.
        s.go(State::Starting, "probe");
        assert!(s.attached(ActiveMode::Enforce, false) && s.breaker_half_open());
        assert_eq!(s.failure("ejected again", Duration::from_secs(300), later).0, FailureOutcome::BreakerOpened(2));
        assert!(s.breaker().0 && !s.primary_due(later + Duration::from_secs(299)));
        let again = later + Duration::from_secs(300);
        assert!(s.primary_due(again));
        s.go(State::Starting, "probe");
        assert!(s.attached(ActiveMode::Enforce, false));
        s.go(State::Running, "attached");
        assert!(s.stable(), "a stable probe closes the breaker");
        assert!(!s.breaker().0 && !s.breaker_half_open());
        assert!(!s.stable(), "only a probe's stable run reports the close");
    }

    #[test]
    fn a_canary_rollback_is_not_probed() {
        let config = BreakerConfig { reset_timeout: Some(Duration::from_secs(1)), ..Default::default() };
        let mut s = Supervisor::new(caps(true), ActiveMode::Enforce, config, None, false, true);
        s.go(State::Starting, "load");
        s.go(State::Running, "attached");
        s.canary_rolled_back("p99 regression");
        assert!(!s.primary_due(Instant::now() + Duration::from_secs(3600)));
        assert_eq!(s.breaker_probe_in(Instant::now()), None, "Status says an operator must act");
    }
}
