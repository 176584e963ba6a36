// SPDX-License-Identifier: GPL-2.0-only
//! Any bytes as the newest audit file: `verify` (the line reader) never
//! panics and names a bad entry briefly; the daemon's writer either refuses
//! to continue the file, naming why, or continues it into a trail that
//! verifies from its start.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scx_slo_api::audit::verify;
use scx_slod::audit::{AuditTrail, DEFAULT_RETAIN_BYTES};

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("scx-slo-fuzz-audit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("audit-000000000001.jsonl"), data).unwrap();
    if let Err(bad) = verify(&dir) {
        assert!(bad.problem.len() <= 300, "a problem of {} bytes", bad.problem.len());
    }
    if let Ok(mut trail) = AuditTrail::open(&dir, DEFAULT_RETAIN_BYTES) {
        trail.append("call", None, "Enable", serde_json::json!({})).unwrap();
        // Continued only from an entry that verifies: the file's earlier
        // entries may still be bad, but the end the writer added is whole.
        let text = std::fs::read(dir.join("audit-000000000001.jsonl")).unwrap_or_default();
        assert!(text.is_empty() || text.ends_with(b"\n"));
    }
    let _ = std::fs::remove_dir_all(&dir);
});
