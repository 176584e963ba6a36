// SPDX-License-Identifier: GPL-2.0-only
//! What the engine's deciding owners ask for, as values. The canary
//! ([`super::canary`]) and the adaptive controller ([`super::adaptive`]) read
//! a view of the engine and return these; only the engine's loop
//! (engine/mod.rs) carries them out, the way the supervisor returns its
//! Enable and failure outcomes. So no owner writes another owner's state:
//! the supervisor's flags, the generation, the audit trail, the persistent
//! state and the bus are each changed in one place.
//!
//! Effects are carried out in the order given: an owner that audits before
//! it rolls back gets its record before the rollback's.

use scx_slo_api::{AdaptiveDecision, BudgetOverride};

use crate::control::Event;

/// One thing an owner decided the engine must do.
#[derive(Debug)]
pub enum Effect {
    /// Hold enforce back while the canary's baseline window measures the
    /// default scheduler (true), or let it run again (false).
    Baseline(bool),
    /// The canary judged the candidate worse: the supervisor opens the
    /// breaker for this reason, the persistent state records it, and then
    /// the state change is announced (the order every breaker opening keeps).
    RollBack(String),
    /// Budget steps through SetBudget's path (validated whole, admission,
    /// maps, then the generation): together as one generation, or each
    /// alone when admission refuses them together. Each step's result goes
    /// back to the controller as soon as it is known, and the persistent
    /// state is written once if any step was applied.
    ApplyBudgets(Vec<BudgetStep>),
    /// One record in the audit trail (a write that fails is counted by the
    /// trail; the decision stands).
    Audit {
        /// The record's kind (`canary`, `adaptive`).
        kind: &'static str,
        /// What happened.
        action: String,
        /// The numbers behind it.
        detail: serde_json::Value,
    },
    /// Write the persistent state. When the disk refuses, the clause saying
    /// so is logged after `unsaved` if there is one.
    Persist {
        /// The sentence a failed write is logged with.
        unsaved: Option<&'static str>,
    },
    /// A signal on the bus.
    Emit(Event),
}

/// A budget change a controller proposed, waiting to be applied.
#[derive(Clone, Debug)]
pub struct BudgetStep {
    /// The target.
    pub unit: String,
    /// The budget it asks for.
    pub budget: BudgetOverride,
    /// Its record so far (`outcome` and `why` are filled with the result).
    pub decision: AdaptiveDecision,
    /// Why, in words.
    pub why: String,
}
