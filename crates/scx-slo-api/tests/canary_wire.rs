// SPDX-License-Identifier: GPL-2.0-only
//! The canary report on the wire: typed in the code, the same strings in
//! Status, on D-Bus and in state.json as before it was typed.

use scx_slo_api::documents::{CanaryReport, Verdict};

/// The canary's state, arm and verdicts are enums in the code and the
/// same strings on the wire as when they were strings: a state.json or
/// a D-Bus reader of an older scx-slod reads them, and the bytes written
/// do not change.
#[test]
fn a_canary_report_reads_and_writes_the_strings_it_always_had() {
    let text_of = |state: &str, arm: &str| {
        format!(
            concat!(
                r#"{{"state":"{}","arm":{},"windows":2,"streak":1,"window_s":10.0,"config_sha256":"aa","#,
                r#""verdicts":["better","same","worse","not-enough-data"],"last":{{"verdict":"not-enough-data","#,
                r#""candidate_samples":50,"baseline_samples":60,"p99_ratio":1.5,"p99_ratio_ci":[1.25,2.0],"#,
                r#""mann_whitney_p":0.5,"cliffs_delta":-0.25,"p99_us":[3.0,2.0],"miss_ratio":null,"burn_rate":null}},"#,
                r#""outcome":"expired: why"}}"#
            ),
            state, arm
        )
    };
    for (state, arm) in [("running", "\"candidate\""), ("promoted", "null"), ("rolled-back", "\"baseline\""), ("expired", "null")] {
        let text = text_of(state, arm);
        let report: CanaryReport = serde_json::from_str(&text).expect("today's strings parse");
        assert_eq!(report.state.as_str(), state);
        assert_eq!(report.verdicts, Verdict::ALL);
        assert_eq!(serde_json::to_string(&report).unwrap(), text, "byte-identical");
    }
    let unknown = serde_json::from_str::<CanaryReport>(&text_of("rolled_back", "null")).unwrap_err().to_string();
    assert!(unknown.contains("rolled_back"), "an unknown state is refused by name: {unknown}");
}
