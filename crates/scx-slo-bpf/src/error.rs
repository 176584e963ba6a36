// SPDX-License-Identifier: GPL-2.0-only
//! The BPF crate's one error type: which step failed, and why (libbpf, a
//! system call or file, scx_utils' loader, or an object, kernel or input that
//! is not what the loader expects). The daemon matches on nothing here but
//! shows the whole sentence, so each variant's text carries its cause; no
//! variant also reports it as `source()`, which would print it twice in a
//! chained display.
//!
//! [`Context`] gives results of each cause the `context`/`with_context`
//! calls the code reads with, and [`ensure!`] is the typed `ensure`.

use std::fmt::Display;

/// Why a BPF operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A libbpf call failed.
    #[error("{what}: {cause}")]
    Libbpf {
        /// The step, e.g. "writing target_cfg[3]".
        what: String,
        /// libbpf's error.
        cause: libbpf_rs::Error,
    },
    /// A system call or a file failed.
    #[error("{what}: {cause}")]
    Io {
        /// The step.
        what: String,
        /// The OS error.
        cause: std::io::Error,
    },
    /// scx_utils' open, load or attach (its macros return anyhow errors).
    #[error("{what}: {cause:#}")]
    Loader {
        /// The step.
        what: String,
        /// scx_utils' error chain.
        cause: anyhow::Error,
    },
    /// The object, the kernel or an argument is not what the loader expects.
    #[error("{0}")]
    Invalid(String),
}

/// A result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Names the step a result belongs to.
pub trait Context<T> {
    /// The step, when it failed.
    fn context(self, what: impl Display) -> Result<T>;
    /// The step, built only when it failed.
    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T>;
}

macro_rules! context_for {
    ($err:ty, $variant:ident) => {
        impl<T> Context<T> for std::result::Result<T, $err> {
            fn context(self, what: impl Display) -> Result<T> {
                self.map_err(|cause| Error::$variant { what: what.to_string(), cause })
            }
            fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T> {
                self.map_err(|cause| Error::$variant { what: what().to_string(), cause })
            }
        }
    };
}

context_for!(libbpf_rs::Error, Libbpf);
context_for!(std::io::Error, Io);
context_for!(anyhow::Error, Loader);

impl<T> Context<T> for Option<T> {
    fn context(self, what: impl Display) -> Result<T> {
        self.ok_or_else(|| Error::Invalid(what.to_string()))
    }
    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.ok_or_else(|| Error::Invalid(what().to_string()))
    }
}

/// `Err(Error::Invalid(format!(...)))` unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::error::Error::Invalid(format!($($fmt)+)));
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_the_step_and_the_cause_once() {
        let e = Err::<(), _>(std::io::Error::from_raw_os_error(libc::EPERM)).context("writing target_cfg[3]").unwrap_err();
        assert_eq!(e.to_string(), "writing target_cfg[3]: Operation not permitted (os error 1)");
        let chained = format!("{:#}", anyhow::Error::from(e));
        assert_eq!(chained.matches("Operation not permitted").count(), 1, "{chained}");
        let e = None::<u8>.context("the scx_slo object has no .bss").unwrap_err();
        assert_eq!(e.to_string(), "the scx_slo object has no .bss");
    }
}
