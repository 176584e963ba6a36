// SPDX-License-Identifier: GPL-2.0-only
//! The bench's selection of schedulers and scenarios (bench.rs).

use super::*;

#[test]
fn an_empty_selection_runs_everything_and_quick_runs_oversub_2x() {
    let all = Selection::parse("", "", false).expect("empty");
    assert!(all.is_everything());
    assert_eq!(scenarios(false, &all).len(), all_scenarios().len());
    assert_eq!(scenarios(true, &all).iter().map(|s| s.name).collect::<Vec<_>>(), ["oversub-2x"]);
    assert!(SCHEDULERS.iter().all(|s| all.scheduler(s)));
}

#[test]
fn a_selection_keeps_eevdf_and_only_what_it_names() {
    let sel = Selection::parse("scx_slo-all, scx_flash", "oversub-2x,fork-exec", false).expect("valid");
    assert!(!sel.is_everything());
    let picked: Vec<&str> = SCHEDULERS.iter().copied().filter(|s| sel.scheduler(s)).collect();
    assert_eq!(picked, ["eevdf", "scx_slo-all", "scx_flash"]);
    assert_eq!(scenarios(false, &sel).iter().map(|s| s.name).collect::<Vec<_>>(), ["oversub-2x", "fork-exec"]);
    // quick stays within its one scenario, and says so when nothing is left.
    assert_eq!(scenarios(true, &Selection::parse("", "oversub-2x,fork-exec", true).expect("valid")).len(), 1);
    let e = Selection::parse("", "fork-exec", true).expect_err("quick has no fork-exec");
    assert!(format!("{e:#}").contains("--quick runs only oversub-2x"), "{e:#}");
}

#[test]
fn unknown_names_are_refused_by_name() {
    let e = Selection::parse("scx_rusty", "", false).expect_err("unknown scheduler");
    assert!(format!("{e:#}").contains("\"scx_rusty\"") && format!("{e:#}").contains("scx_flash"), "{e:#}");
    let e = Selection::parse("", "oversub-3x", false).expect_err("unknown scenario");
    assert!(format!("{e:#}").contains("\"oversub-3x\"") && format!("{e:#}").contains("oversub-2x"), "{e:#}");
}
