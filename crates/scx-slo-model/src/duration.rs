// SPDX-License-Identifier: GPL-2.0-only
//! Human durations ("500us", "5ms", "30d") as used in config.json and the CLI.
//!
//! One type, one conversion: everything is held in nanoseconds and converted to
//! the BPF side's `_ns` fields in exactly one place (`Duration::as_ns`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative span of time with nanosecond resolution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(u64);

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string was empty.
    #[error("empty duration")]
    Empty,
    /// The number part was missing or not a whole number.
    #[error("{0:?} is not a duration: expected a whole number and a unit, such as \"5ms\"")]
    Malformed(String),
    /// The unit was not one of ns, us, ms, s, m, h, d.
    #[error("{input:?} has unknown unit {unit:?}: use ns, us, ms, s, m, h or d")]
    UnknownUnit {
        /// The whole input.
        input: String,
        /// The unit that was given.
        unit: String,
    },
    /// Spaces or a leading zero: one value, one spelling.
    #[error("{0:?} is not a duration: write it without spaces or leading zeros, such as \"5ms\"")]
    Padded(String),
    /// The value does not fit in 64-bit nanoseconds (about 584 years).
    #[error("{0:?} is too large")]
    Overflow(String),
}

/// The units a duration takes, with their size in nanoseconds.
pub const UNITS: [(&str, u64); 7] = [
    ("ns", 1),
    ("us", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3_600 * 1_000_000_000),
    ("d", 86_400 * 1_000_000_000),
];

impl Duration {
    /// Zero.
    pub const ZERO: Duration = Duration(0);

    /// From nanoseconds.
    pub const fn from_ns(ns: u64) -> Self {
        Duration(ns)
    }

    /// From microseconds (saturating).
    pub const fn from_us(us: u64) -> Self {
        Duration(us.saturating_mul(1_000))
    }

    /// From milliseconds (saturating).
    pub const fn from_ms(ms: u64) -> Self {
        Duration(ms.saturating_mul(1_000_000))
    }

    /// From seconds (saturating).
    pub const fn from_secs(s: u64) -> Self {
        Duration(s.saturating_mul(1_000_000_000))
    }

    /// Nanoseconds: the unit of every BPF map field.
    pub const fn as_ns(self) -> u64 {
        self.0
    }

    /// Whole microseconds, rounded down.
    pub const fn as_us(self) -> u64 {
        self.0 / 1_000
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input;
        if s.is_empty() {
            return Err(DurationError::Empty);
        }
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        if s.chars().any(char::is_whitespace) || (num.len() > 1 && num.starts_with('0')) {
            return Err(DurationError::Padded(input.chars().take(32).collect()));
        }
        if num.is_empty() || unit.is_empty() {
            return Err(DurationError::Malformed(input.to_string()));
        }
        let value: u64 = num
            .parse()
            .map_err(|_| DurationError::Overflow(input.to_string()))?;
        let scale = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(|| DurationError::UnknownUnit {
                input: input.to_string(),
                unit: unit.to_string(),
            })?;
        value
            .checked_mul(scale)
            .map(Duration)
            .ok_or_else(|| DurationError::Overflow(input.to_string()))
    }
}

impl fmt::Display for Duration {
    /// The largest unit that represents the value exactly, so that
    /// `parse(display(d)) == d` always holds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let (name, scale) = UNITS
            .iter()
            .rev()
            .find(|(_, scale)| self.0.is_multiple_of(*scale))
            .copied()
            .unwrap_or(("ns", 1));
        write!(f, "{}{}", self.0 / scale, name)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"5ms\" or \"500us\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!("7ns".parse(), Ok(Duration::from_ns(7)));
        assert_eq!("500us".parse(), Ok(Duration::from_us(500)));
        assert_eq!("5ms".parse(), Ok(Duration::from_ms(5)));
        assert_eq!("2s".parse(), Ok(Duration::from_secs(2)));
        assert_eq!("3m".parse(), Ok(Duration::from_secs(180)));
        assert_eq!("1h".parse(), Ok(Duration::from_secs(3600)));
        assert_eq!("30d".parse(), Ok(Duration::from_secs(30 * 86400)));
    }

    #[test]
    fn rejects_bad_input_by_name() {
        assert_eq!("".parse::<Duration>(), Err(DurationError::Empty));
        assert!(matches!("ms".parse::<Duration>(), Err(DurationError::Malformed(_))));
        assert!(matches!("5".parse::<Duration>(), Err(DurationError::Malformed(_))));
        assert!(matches!("1.5ms".parse::<Duration>(), Err(DurationError::UnknownUnit { .. })));
        assert!(matches!("5parsecs".parse::<Duration>(), Err(DurationError::UnknownUnit { .. })));
        // Spaces and leading zeros were once accepted.
        for padded in ["5 ms", " 5ms", "5ms ", "05ms", "00s", "5\tms"] {
            assert!(matches!(padded.parse::<Duration>(), Err(DurationError::Padded(_))), "{padded:?}");
        }
        assert_eq!("0s".parse(), Ok(Duration::from_ns(0)), "a lone zero is fine");
        assert!(matches!(
            "99999999999999999999d".parse::<Duration>(),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!("300000d".parse::<Duration>(), Err(DurationError::Overflow(_))));
    }

    #[test]
    fn displays_in_the_largest_exact_unit() {
        assert_eq!(Duration::from_us(1500).to_string(), "1500us");
        assert_eq!(Duration::from_ms(10).to_string(), "10ms");
        assert_eq!(Duration::ZERO.to_string(), "0s");
    }

    proptest! {
        #[test]
        fn display_round_trips(ns in any::<u64>()) {
            let d = Duration::from_ns(ns);
            prop_assert_eq!(d.to_string().parse::<Duration>(), Ok(d));
        }

        #[test]
        fn never_panics_on_arbitrary_text(s in ".{0,24}") {
            let _ = s.parse::<Duration>();
        }
    }
}
