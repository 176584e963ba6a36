// SPDX-License-Identifier: GPL-2.0-only
//! The daemon's lifecycle as an explicit state machine. Only the engine
//! changes state, every transition is checked here, and each accepted one is
//! returned so the caller logs and signals it.

use serde::Serialize;

pub use scx_slo_api::State;

/// Whether `from → to` is a transition the daemon may make (never into
/// [`State::Stopped`], which only the final status file shows).
pub fn may_become(from: State, to: State) -> bool {
    use State::*;
    matches!(
        (from, to),
        (Disabled, Starting)
            | (Starting, Running)
            | (Starting, Degraded)
            | (Starting, Failed)
            | (Starting, Disabled)
            | (Running, Disabled)
            | (Running, Starting)
            | (Running, Degraded)
            | (Running, Failed)
            | (Degraded, Starting)
            | (Degraded, Failed)
            | (Degraded, Disabled)
            | (Failed, Starting)
            | (Failed, Disabled)
    )
}

/// An accepted transition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Transition {
    /// Before.
    pub from: State,
    /// After.
    pub to: State,
    /// Why, in words an operator reads in the journal.
    pub reason: String,
}

/// The current state plus the rule book.
#[derive(Debug)]
pub struct Lifecycle {
    state: State,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle { state: State::Disabled }
    }
}

impl Lifecycle {
    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Moves to `to` if allowed. Staying in the same state is not a
    /// transition (`None`); a forbidden one is an error naming both ends.
    pub fn go(&mut self, to: State, reason: impl Into<String>) -> Result<Option<Transition>, String> {
        if self.state == to {
            return Ok(None);
        }
        if !may_become(self.state, to) {
            return Err(format!("cannot go from {} to {}", self.state, to));
        }
        let t = Transition { from: self.state, to, reason: reason.into() };
        self.state = to;
        Ok(Some(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_happy_path_and_an_ejection() {
        let mut l = Lifecycle::default();
        assert_eq!(l.go(State::Starting, "enable").unwrap().unwrap().from, State::Disabled);
        l.go(State::Running, "attached").unwrap();
        let t = l.go(State::Degraded, "ejected: watchdog").unwrap().unwrap();
        assert_eq!((t.from, t.to), (State::Running, State::Degraded));
        l.go(State::Starting, "retry").unwrap();
        l.go(State::Failed, "breaker open").unwrap();
        assert_eq!(l.state(), State::Failed);
    }

    /// Regression (found by checks/vm/run enforce): the third ejection opens
    /// the breaker straight from running.
    #[test]
    fn an_ejection_may_open_the_breaker_from_running() {
        let mut l = Lifecycle::default();
        l.go(State::Starting, "enable").unwrap();
        l.go(State::Running, "attached").unwrap();
        assert!(l.go(State::Failed, "ejected; breaker open").unwrap().is_some());
    }

    #[test]
    fn forbidden_transitions_are_named() {
        let mut l = Lifecycle::default();
        assert_eq!(l.go(State::Running, "x").unwrap_err(), "cannot go from disabled to running");
        assert_eq!(l.state(), State::Disabled);
    }

    #[test]
    fn same_state_is_not_a_transition() {
        let mut l = Lifecycle::default();
        assert_eq!(l.go(State::Disabled, "again"), Ok(None));
    }

    #[test]
    fn an_operator_can_disable_from_every_active_state() {
        for from in [State::Starting, State::Running, State::Degraded, State::Failed] {
            assert!(may_become(from, State::Disabled), "{from}");
        }
    }
}
