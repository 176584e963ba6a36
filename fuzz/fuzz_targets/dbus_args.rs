// SPDX-License-Identifier: GPL-2.0-only
//! Any string as a D-Bus argument (unit, mode, reason, idempotency key): the
//! bound either accepts it whole (within its limit, no control characters)
//! or refuses it with a short error that never echoes the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scx_slod::dbus::{arg_limits, bounded};

fuzz_target!(|data: &[u8]| {
    let value = String::from_utf8_lossy(data).into_owned();
    for (arg, max) in [("unit", arg_limits::UNIT), ("mode", arg_limits::MODE), ("reason", arg_limits::REASON), ("idempotency_key", arg_limits::KEY)] {
        match bounded(arg, value.clone(), max) {
            Ok(v) => {
                assert!(v.len() <= max && !v.chars().any(char::is_control));
                assert_eq!(v, value);
            }
            Err(e) => {
                let message = e.to_string();
                assert!(message.len() <= 160, "an error reply of {} bytes: {message}", message.len());
            }
        }
    }
});
