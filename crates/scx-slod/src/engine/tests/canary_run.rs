// SPDX-License-Identifier: GPL-2.0-only
//! The canary's windows and verdicts (engine/canary.rs), on synthetic
//! histograms and scraped readings.

use super::*;
use scx_slo_model::Duration as D;

fn settings() -> CanarySettings {
    CanarySettings { window: D::from_secs(10), min_samples: 100, max_regression: 0.02, promote_after: 2, max_windows: 4 }
}

/// A histogram with `n` samples in bucket `b` (each bucket doubles).
fn hist(fill: &[(usize, u64)]) -> Vec<u64> {
    let mut h = vec![0u64; scx_slo_bpf::intf::slo_consts_SLO_HIST_BUCKETS as usize];
    for (b, n) in fill {
        h[*b] += n;
    }
    h
}

fn add(a: &[u64], b: &[u64]) -> Vec<u64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// The verdicts' names, as Status writes them.
fn names(verdicts: &[Verdict]) -> Vec<&'static str> {
    verdicts.iter().map(|v| v.as_str()).collect()
}

fn sli(hist: Vec<u64>) -> Sli {
    Sli { hist, ..Sli::default() }
}

/// Runs one pair: the candidate's window adds `cand`, the baseline's `base`.
fn pair(run: &mut CanaryRun, at: &mut Vec<u64>, cand: &[u64], base: &[u64], seed: u64) -> Step {
    let now = Instant::now();
    run.begin(Arm::Candidate, now, sli(at.clone()));
    *at = add(at, cand);
    assert_eq!(run.end(&sli(at.clone()), seed), Some(Step::ToBaseline));
    run.begin(Arm::Baseline, now, sli(at.clone()));
    *at = add(at, base);
    run.end(&sli(at.clone()), seed).expect("a step")
}

#[test]
fn samples_spread_over_their_buckets_and_are_capped() {
    let s = hist_samples(&hist(&[(0, 2), (3, 4)]));
    assert_eq!(s.len(), 6);
    // Bucket 0 is [0, 1.024) µs, bucket 3 [4.096, 8.192) µs.
    assert!(s[..2].iter().all(|v| *v > 0.0 && *v < 1.024), "{s:?}");
    assert!(s[2..].iter().all(|v| *v > 4.096 && *v < 8.192), "{s:?}");
    let big = hist_samples(&hist(&[(5, 400_000), (9, 100_000)]));
    assert!((big.len() as i64 - MAX_SAMPLES as i64).abs() <= 2, "{}", big.len());
    let high = big.iter().filter(|v| **v > 262.0).count() as f64 / big.len() as f64;
    assert!((high - 0.2).abs() < 0.001, "the shape is kept: {high}");
}

/// A reading of one scraped endpoint whose requests so far were `fast`
/// under 1 ms and `slow` in 5-10 ms; the kernel's histogram stays empty.
fn scraped(fast: f64, slow: f64) -> Sli {
    let buckets = vec![(0.001, fast), (0.005, fast), (0.01, fast + slow), (f64::INFINITY, fast + slow)];
    let service = BTreeMap::from([(("http://127.0.0.1:9/m".to_string(), "rpc_seconds".to_string()), Arc::new(buckets))]);
    Sli { hist: hist(&[]), service: Some(service), ..Sli::default() }
}

#[test]
fn with_scraped_histograms_the_services_requests_are_judged() {
    let now = Instant::now();
    let mut run = CanaryRun::new(settings(), None, "s");
    // Candidate: 3% of 10,000 requests slow; baseline: 0.5%.
    run.begin(Arm::Candidate, now, scraped(0.0, 0.0));
    assert_eq!(run.end(&scraped(9_700.0, 300.0), 1), Some(Step::ToBaseline));
    run.begin(Arm::Baseline, now, scraped(9_700.0, 300.0));
    match run.end(&scraped(19_650.0, 350.0), 1) {
        Some(Step::Rollback(why)) => assert!(why.contains("worse") && why.contains("10000 and 10000 samples"), "{why}"),
        other => panic!("{other:?}"),
    }
    let last = run.report().last.unwrap();
    assert_eq!((last.candidate_samples, last.baseline_samples), (10_000, 10_000));
    // An endpoint not read at one end of a window (a failed scrape)
    // gives no samples: not enough data, never a verdict on nothing.
    let mut run = CanaryRun::new(settings(), None, "t");
    run.begin(Arm::Candidate, now, Sli { service: Some(BTreeMap::new()), ..scraped(0.0, 0.0) });
    run.end(&scraped(9_700.0, 300.0), 1);
    run.begin(Arm::Baseline, now, scraped(9_700.0, 300.0));
    assert_eq!(run.end(&scraped(19_700.0, 300.0), 1), Some(Step::ToCandidate));
    assert_eq!(run.report().last.unwrap().verdict.as_str(), "not-enough-data");
}

#[test]
fn a_tail_a_bucket_worse_rolls_back_and_equal_windows_promote() {
    let mut at = hist(&[]);
    let mut worse = CanaryRun::new(settings(), None, "a");
    let base = hist(&[(6, 40_000), (8, 1_600)]);
    let cand = hist(&[(6, 40_000), (10, 1_600)]);
    match pair(&mut worse, &mut at, &cand, &base, 1) {
        Step::Rollback(why) => assert!(why.contains("worse") && why.contains("after 1 windows"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(worse.report().state.as_str(), "rolled-back");
    assert_eq!(names(&worse.report().verdicts), ["worse"]);

    let mut same = CanaryRun::new(settings(), None, "b");
    assert_eq!(pair(&mut same, &mut at, &base, &base, 2), Step::ToCandidate);
    assert_eq!(pair(&mut same, &mut at, &base, &base, 3), Step::Done, "{:?}", same.report());
    let r = same.report();
    assert_eq!((r.state.as_str(), r.windows, r.streak), ("promoted", 2, 2));
    assert!(r.outcome.unwrap().starts_with("promoted"));
    assert_eq!(r.last.unwrap().p99_ratio, Some(1.0));
    // A decided canary measures nothing more.
    same.begin(Arm::Candidate, Instant::now(), sli(at.clone()));
    assert_eq!(same.arm(), None);
}

#[test]
fn too_few_samples_never_decide_and_the_canary_expires() {
    let mut at = hist(&[]);
    let mut run = CanaryRun::new(settings(), None, "c");
    let few = hist(&[(6, 50)]);
    for i in 0..3 {
        assert_eq!(pair(&mut run, &mut at, &few, &few, i), Step::ToCandidate, "window {i}");
    }
    assert_eq!(pair(&mut run, &mut at, &few, &few, 9), Step::Done);
    let r = run.report();
    assert_eq!(r.state.as_str(), "expired");
    assert_eq!(names(&r.verdicts), ["not-enough-data"; 4]);
    assert_eq!(r.last.unwrap().candidate_samples, 50);
}

#[test]
fn an_abandoned_window_is_not_judged() {
    let mut run = CanaryRun::new(settings(), None, "d");
    let now = Instant::now();
    run.begin(Arm::Candidate, now, sli(hist(&[])));
    assert!(!run.due(now) && run.due(now + std::time::Duration::from_secs(10)));
    run.abandon();
    assert_eq!(run.end(&sli(hist(&[(3, 10)])), 0), None);
    // A baseline without a candidate window before it judges nothing.
    run.begin(Arm::Baseline, now, sli(hist(&[])));
    assert_eq!(run.end(&sli(hist(&[(3, 10)])), 0), Some(Step::ToCandidate));
    assert_eq!(run.report().windows, 0);
    assert!(run.judges(&settings(), "d") && !run.judges(&settings(), "e"));
}

#[test]
fn the_slo_breaker_rolls_back_a_candidate_that_burns_the_budget_though_its_p99_is_the_same() {
    let h = hist(&[(6, 40_000), (8, 1_600)]);
    let now = Instant::now();
    let mut run = CanaryRun::new(settings(), Some(0.001), "f");
    run.begin(Arm::Candidate, now, Sli { hist: hist(&[]), ..Sli::default() });
    run.end(&Sli { hist: h.clone(), jobs: 10_000, misses: 200, service: None }, 1);
    run.begin(Arm::Baseline, now, Sli { hist: h.clone(), jobs: 10_000, misses: 200, service: None });
    let step = run.end(&Sli { hist: add(&h, &h), jobs: 20_000, misses: 205, service: None }, 1);
    match step {
        Some(Step::Rollback(why)) => assert!(why.contains("SLO breaker") && why.contains("2.000% of jobs under scx-slo against 0.050%"), "{why}"),
        other => panic!("{other:?}"),
    }
    let r = run.report();
    assert_eq!((r.state.as_str(), names(&r.verdicts).as_slice()), ("rolled-back", ["worse"].as_slice()));
    let last = r.last.unwrap();
    assert_eq!(last.p99_ratio, Some(1.0), "the p99 alone would not have rolled back");
    assert_eq!(last.miss_ratio, Some((0.02, 0.0005)));
    // Without an SLO there is no budget to burn: the same windows go on.
    let mut no_slo = CanaryRun::new(settings(), None, "g");
    no_slo.begin(Arm::Candidate, now, Sli { hist: hist(&[]), ..Sli::default() });
    no_slo.end(&Sli { hist: h.clone(), jobs: 10_000, misses: 200, service: None }, 1);
    no_slo.begin(Arm::Baseline, now, Sli { hist: h.clone(), jobs: 10_000, misses: 200, service: None });
    assert_eq!(no_slo.end(&Sli { hist: add(&h, &h), jobs: 20_000, misses: 205, service: None }, 1), Some(Step::ToCandidate));
}
