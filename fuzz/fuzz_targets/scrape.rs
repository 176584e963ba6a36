// SPDX-License-Identifier: GPL-2.0-only
//! Any bytes as a `scrape.url` or as a service's /metrics reply (docs/security.md):
//! the URL parser accepts only loopback http or refuses with a short error;
//! the exposition parser and the interval arithmetic never panic, and the
//! canary's samples stay within their cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scx_slo_api::scrape::{counts_p99, counts_samples, histogram_buckets, interval_counts};
use scx_slo_model::scrape_block::parse_scrape_url;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match parse_scrape_url(&text) {
        Ok(u) => assert!(u.addr.ip().is_loopback() && u.path.starts_with('/')),
        Err(e) => assert!(e.len() <= 700, "an error of {} bytes", e.len()),
    }
    let Some(name) = text.lines().find_map(|l| l.strip_prefix("# TYPE ")).and_then(|l| l.split_whitespace().next()) else { return };
    if let Ok(after) = histogram_buckets(&text, name) {
        // The reader refuses NaN and negative bounds and counts.
        assert!(after.iter().all(|(le, n)| *le >= 0.0 && n.is_finite() && *n >= 0.0), "{after:?}");
        let before: Vec<(f64, f64)> = after.iter().map(|(le, n)| (*le, n / 2.0)).collect();
        if let Ok(counts) = interval_counts(&before, &after) {
            assert!(counts_p99(&counts).is_none_or(|p| p >= 0.0), "a negative or NaN p99");
            assert!(counts_samples(&counts, 1000).len() <= 1000);
        }
    }
});
