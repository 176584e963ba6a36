// SPDX-License-Identifier: GPL-2.0-only
//! Any text through the config loader (check-config, the daemon's start and
//! every reload): it never panics, and a config it accepts keeps what the
//! schema promises (no duplicate keys, no arrays, admission held).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for cpus in [None, Some(1), Some(256)] {
        if let Ok(config) = scx_slo_model::load_str(text, cpus) {
            assert!(scx_slo_model::shape::shape_problems(text).is_empty(), "accepted a duplicate key or an array: {text}");
            assert!(config.targets.len() <= 1024, "more targets than the maps hold");
        }
    }
});
