// SPDX-License-Identifier: GPL-2.0-only
//! The one error enum of control calls: the engine returns it, and it goes on
//! the bus as `org.scxslo1.Error.<Variant>` with the message as the error's
//! text (zbus's `DBusError` derive), so there is no second enum to keep in step.

/// Errors of control calls, as `org.scxslo1.Error.<Name>` on D-Bus.
#[derive(Clone, Debug, PartialEq, Eq, zbus::DBusError)]
#[zbus(prefix = "org.scxslo1.Error", impl_display = false)]
pub enum ControlError {
    /// The caller may not do this.
    AccessDenied(String),
    /// An argument is wrong; the message names it.
    InvalidArgument(String),
    /// The config (file or after an override) is invalid; nothing changed.
    InvalidConfig(String),
    /// Not available in this build or on this kernel.
    NotSupported(String),
    /// The same idempotency key was used with other arguments.
    Conflict(String),
    /// The engine's queue is full; try again.
    Busy(String),
    /// The work failed; the running state is unchanged unless said otherwise.
    Failed(String),
}

impl ControlError {
    /// The message, without the kind.
    pub fn message(&self) -> &str {
        match self {
            ControlError::AccessDenied(m)
            | ControlError::InvalidArgument(m)
            | ControlError::InvalidConfig(m)
            | ControlError::NotSupported(m)
            | ControlError::Conflict(m)
            | ControlError::Busy(m)
            | ControlError::Failed(m) => m,
        }
    }

    /// The kind in words, as the journal and `last_reload_error` show it.
    fn kind(&self) -> &'static str {
        match self {
            ControlError::AccessDenied(_) => "access denied",
            ControlError::InvalidArgument(_) => "invalid argument",
            ControlError::InvalidConfig(_) => "invalid config",
            ControlError::NotSupported(_) => "not supported",
            ControlError::Conflict(_) => "idempotency conflict",
            ControlError::Busy(_) => "busy",
            ControlError::Failed(_) => "failed",
        }
    }
}

// zbus's derive implements std::error::Error; the words are ours.
impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind(), self.message())
    }
}

/// A reply: a JSON document or a sentence saying what was done, or an error.
pub type Reply = Result<String, ControlError>;

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::DBusError;

    #[test]
    fn variants_are_named_on_the_bus_and_carry_the_message() {
        let e = ControlError::InvalidArgument("unit: too long".into());
        assert_eq!(e.name().as_str(), "org.scxslo1.Error.InvalidArgument");
        assert_eq!(e.description(), Some("unit: too long"));
        assert_eq!(e.to_string(), "invalid argument: unit: too long");
    }
}
