// SPDX-License-Identifier: GPL-2.0-only
//! scx-slo's model: the config schema (v1), validation that names the JSON path
//! of every problem, admission control, and durations.
//!
//! Pure: no kernel, no D-Bus, no async. The checker (`scx-slo check-config`),
//! the daemon and the NixOS build all go through [`load_str`].
#![deny(missing_docs)]

pub mod adaptive;
mod adaptive_block;
pub mod admission;
pub mod bounds;
pub mod canary;
mod canary_block;
pub mod config;
pub mod dashboard;
pub mod duration;
pub mod error;
pub mod histogram;
pub mod raw;
pub mod rules;
pub mod schema;
pub mod scrape_block;
pub mod shape;
pub mod source;
pub mod stats;
pub mod validate;

pub use config::*;
pub use bounds::{defaults, limits};
pub use duration::Duration;
pub use error::{ConfigErrors, JsonPath, Problem};
pub use source::{config_digest, read_config_text, sha256_hex, SourceError, MAX_CONFIG_BYTES};
pub use validate::{load_str, load_str_with_budgets, parse, validate};

#[cfg(test)]
mod tests;
