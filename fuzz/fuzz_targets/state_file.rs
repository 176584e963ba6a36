// SPDX-License-Identifier: GPL-2.0-only
//! Any bytes as /var/lib/scx-slo/state.json: loading never fails on content
//! (a corrupt file is quarantined and the defaults used), and the state it
//! accepts saves and loads back unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scx_slod::persist;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("scx-slo-fuzz-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state.json");
    std::fs::write(&path, data).unwrap();
    let loaded = persist::load(&path).expect("content alone never makes loading fail");
    if loaded.quarantined.is_none() {
        persist::save_json(&path, &loaded.state).unwrap();
        assert_eq!(persist::load(&path).unwrap().state, loaded.state);
    } else {
        assert!(!path.exists(), "a quarantined file is moved aside");
    }
    let _ = std::fs::remove_dir_all(&dir);
});
