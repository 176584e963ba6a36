// SPDX-License-Identifier: GPL-2.0-only
//! The external-workload scenario's parsing and verdicts, on fixed inputs.

use super::*;
use crate::external_tools::{parse_cyclictest, parse_redis_benchmark, parse_wrk, HIST_US};

const CYCLICTEST: &str = "# /dev/cpu_dma_latency set to 0us
# Histogram
000000 000000\t000000
000001 000002\t000001
000002 000005\t000003
000003 000000\t000000
000004 000001\t000000
# Total: 000000009 000000005
# Min Latencies: 00001 00001
# Avg Latencies: 00002 00002
# Max Latencies: 00040 00004
# Histogram Overflows: 00001 00001
# Histogram Overflow at cycle number:
# Thread 0: 00017
# Thread 1: 00003
";

#[test]
fn cyclictest_histograms_are_summed_over_threads() {
    let run = parse_cyclictest(CYCLICTEST).expect("parses");
    assert_eq!(run.hist, vec![0, 3, 8, 0, 1]);
    assert_eq!(run.samples, 14);
    assert_eq!(run.max_us, 40);
    assert_eq!(run.overflows, 2);
}

#[test]
fn quantiles_come_from_the_buckets_and_overflows_read_as_the_maximum() {
    let run = parse_cyclictest(CYCLICTEST).expect("parses");
    // 14 wakeups: 3 at 1 us, 8 at 2, 1 at 4, 2 overflows (max 40).
    assert_eq!(run.quantile(0.2), 1.0);
    assert_eq!(run.quantile(0.5), 2.0);
    assert_eq!(run.quantile(0.85), 4.0);
    assert_eq!(run.quantile(0.99), 40.0);
    assert!(ToolRun::default().quantile(0.5).is_nan());
}

#[test]
fn output_without_a_total_line_is_an_error_not_zero_cycles() {
    let e = parse_cyclictest("# Histogram\n000001 000002\n").expect_err("no total");
    assert!(format!("{e:#}").contains("Total"), "{e:#}");
    assert!(parse_cyclictest("# Total: 1\nxyz 1\n").is_err());
    // A bucket past the range asked for is refused, not grown into.
    assert!(parse_cyclictest(&format!("{HIST_US:06} 000001\n# Total: 1\n")).is_err());
}

#[test]
fn merged_rounds_add_up() {
    let a = parse_cyclictest(CYCLICTEST).expect("parses");
    let mut m = ToolRun::default();
    m.merge(&a);
    m.merge(&a);
    assert_eq!(m.samples, 28);
    assert_eq!(m.hist[2], 16);
    assert_eq!(m.max_us, 40);
}

#[test]
fn stress_ng_bogo_ops_come_from_its_yaml() {
    let yaml = "system-info:\n      stress-ng-version: 0.15.06\nmetrics:\n    - stressor: cpu\n      bogo-ops: 1633\n      bogo-ops-per-second-usr-sys-time: 1537.7\n";
    assert_eq!(parse_bogo_ops(yaml), Some(1633));
    assert_eq!(parse_bogo_ops("metrics:\n"), None);
}

#[test]
fn the_floor_budget_is_half_rounded_up_to_10us() {
    assert_eq!(half_budget(SloDuration::from_us(590)), SloDuration::from_us(300));
    assert_eq!(half_budget(SloDuration::from_us(600)), SloDuration::from_us(300));
    assert_eq!(half_budget(SloDuration::from_us(10)), scx_slo_model::limits::MIN_RUNTIME.max(SloDuration::from_us(10)));
}

fn summary(setup: &str, p99: f64, max: f64, samples: u64, queue_p99: f64, bogo: u64) -> Summary {
    Summary {
        setup: setup.into(),
        baseline: !setup.starts_with("scx_slo"),
        rounds: 1,
        p50_us: 100.0,
        p99_us: p99,
        p999_us: p99 * 2.0,
        max_us: max,
        samples,
        per_s: None,
        errors: 0,
        queue_p99_us: queue_p99,
        queue_p999_us: queue_p99 * 2.0,
        batch_bogo_ops: bogo,
        attached_cells: None,
    }
}

#[test]
fn the_floor_holds_within_1_1x_and_fails_past_it_or_on_lost_cycles() {
    let eevdf = summary("eevdf", 2000.0, 5000.0, 10_000, 1500.0, 1000);
    let good = summary("scx_slo-all-under", 2100.0, 5400.0, 9_900, 900.0, 1000);
    let worse = summary("scx_slo-partial-under", 2300.0, 5000.0, 10_000, 900.0, 1000);
    let lossy = summary("scx_slo-all-under", 2000.0, 5000.0, 9_000, 900.0, 1000);
    let v = verdicts(&[eevdf.clone(), good]);
    assert!(v[0].ends_with("met)"), "{v:?}");
    let v = verdicts(&[eevdf.clone(), worse]);
    assert!(v[0].contains("p99 1.15x") && v[0].ends_with("missed)"), "{v:?}");
    let v = verdicts(&[eevdf, lossy]);
    assert!(v[0].contains("cycles 0.900x") && v[0].ends_with("missed)"), "{v:?}");
}

#[test]
fn the_win_is_judged_against_the_best_baseline_of_each_measure() {
    let eevdf = summary("eevdf", 2000.0, 5000.0, 10_000, 1500.0, 1000);
    // cpu.weight has the best tool p99, FIFO the best max and queue p99.
    let weight = summary("eevdf-weight10000", 800.0, 6000.0, 10_000, 1200.0, 1000);
    let fifo = summary("eevdf-fifo50", 900.0, 3000.0, 10_000, 600.0, 800);
    let tuned = summary("scx_slo-all-tuned", 700.0, 2900.0, 10_000, 290.0, 960);
    let v = verdicts(&[eevdf.clone(), weight.clone(), fifo.clone(), tuned]);
    assert_eq!(v.len(), 1);
    assert!(v[0].contains("queue p99 0.48x best (eevdf-fifo50)"), "{v:?}");
    assert!(v[0].contains("tool p99 0.88x best (eevdf-weight10000)"), "{v:?}");
    assert!(v[0].contains("max 0.97x best (eevdf-fifo50)"), "{v:?}");
    assert!(!v[0].contains("missed"), "{v:?}");
    let slow = summary("scx_slo-all-tuned", 700.0, 3100.0, 10_000, 310.0, 940);
    let v = verdicts(&[eevdf, weight, fifo, slow]);
    assert_eq!(v[0].matches("missed").count(), 3, "{v:?}");
}

#[test]
fn lost_cycles_fail_the_run_per_round_and_without_eevdf() {
    let eevdf = Summary { rounds: 2, ..summary("eevdf", 2000.0, 5000.0, 20_000, 1500.0, 1000) };
    let kept = Summary { rounds: 2, ..summary("scx_slo-all-under", 2000.0, 5000.0, 18_200, 900.0, 1000) };
    let lost = Summary { rounds: 1, ..summary("scx_slo-all-tuned", 2000.0, 5000.0, 8_400, 900.0, 1000) };
    let checks = cycle_checks(&[eevdf, kept.clone(), lost]);
    assert_eq!(checks.iter().map(|c| c.1).collect::<Vec<_>>(), vec![true, false], "{checks:?}");
    assert!(checks[1].2.contains("8400 cycles per round in 1 rounds against EEVDF's 10000"), "{checks:?}");
    let alone = cycle_checks(&[kept]);
    assert!(!alone[0].1, "{alone:?}");
}

#[test]
fn only_names_known_setups() {
    assert_eq!(parse_only("").expect("empty"), Vec::<String>::new());
    assert_eq!(parse_only(" scx_slo-all-under, scx_flash ").expect("known"), vec!["scx_slo-all-under", "scx_flash"]);
    let e = parse_only("scx_slo-all,eevdf").expect_err("unknown");
    assert!(format!("{e:#}").contains("unknown setup \"scx_slo-all\"; known: eevdf"), "{e:#}");
}

#[test]
fn the_adaptive_setup_starts_at_a_third_and_its_line_says_where_it_went() {
    assert_eq!(third_budget(SloDuration::from_us(670)), SloDuration::from_us(230));
    assert_eq!(third_budget(SloDuration::from_us(10)), scx_slo_model::limits::MIN_RUNTIME.max(SloDuration::from_us(10)));
    let cell = |round: u64, series: serde_json::Value, end: u64, outcome: &str| {
        json!({ "round": round, "adaptive": { "start_us": 230, "objective_us": 500, "series_s_us": series, "end_us": end, "changes": 3,
                                              "last": { "outcome": outcome, "p99_us": 228, "why": "" } } })
    };
    let lines = crate::external_report::adaptive_lines(
        &[
            cell(0, json!([[1.0, 230], [2.0, 300], [3.0, 310], [4.0, 304]]), 304, "on-target"),
            cell(1, json!([[1.0, 230], [2.0, 400]]), 562, "applied"),
            json!({ "round": 0, "adaptive": null }),
        ],
        SloDuration::from_us(670),
    );
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("230 us -> 304 us (tune's 670 us) in 3 changes, within 10% of the end after 2 s; last decision: on-target"), "{lines:?}");
    assert!(lines[1].contains("after never; last decision: applied"), "{lines:?}");
}

/// wrk 4.1.0 (Debian 12) against nginx 1.22 on the host: `wrk --latency
/// -t2 -c16 -d2s`, as captured.
const WRK: &str = include_str!("testdata/wrk-latency.txt");
/// redis-benchmark 7.0.15 (Debian 12) against redis-server on the host:
/// `-n 20000 -t get,set`, as captured (progress lines end in \r).
const REDIS_BENCHMARK: &str = include_str!("testdata/redis-benchmark.txt");

#[test]
fn wrk_percentiles_rate_and_maximum_come_from_its_report_and_p999_is_unmeasured() {
    let run = parse_wrk(WRK).expect("parses");
    assert_eq!(run.samples, 100_575);
    assert_eq!((run.quantile(0.5), run.quantile(0.75), run.quantile(0.9), run.quantile(0.99)), (266.0, 457.0, 1320.0, 5840.0));
    assert_eq!(run.max_us, 10_680);
    assert!(run.quantile(0.999).is_nan(), "wrk prints nothing between p99 and its maximum");
    // Requests/sec as wrk printed it, not requests over the rounded 2.10 s.
    assert!((run.per_s().expect("a rate") - 47_910.06).abs() < 0.01, "{:?}", run.per_s());
    assert_eq!(run.errors, 0);
    // What lies past p99 sits at the maximum: the tail ends there.
    assert_eq!(crate::external_report::tail_points(&run).last(), Some(&(10_680.0, 0.0)));
}

#[test]
fn wrk_failures_are_counted_and_a_report_without_latency_is_refused() {
    let failing = WRK.replace("Requests/sec:", "  Socket errors: connect 0, read 2, write 0, timeout 5\n  Non-2xx or 3xx responses: 3\nRequests/sec:");
    assert_eq!(parse_wrk(&failing).expect("parses").errors, 10);
    let e = parse_wrk(&WRK.replace("Latency Distribution", "Latency-less")).expect_err("no distribution");
    assert!(format!("{e:#}").contains("--latency"), "{e:#}");
    assert!(parse_wrk("unable to connect to 127.0.0.1:8080 Connection refused\n").is_err());
}

#[test]
fn redis_benchmark_percentiles_pool_its_tests_down_to_the_slowest_request() {
    let run = parse_redis_benchmark(REDIS_BENCHMARK).expect("parses");
    assert_eq!(run.samples, 40_000);
    // SET's slowest request 7.791 ms, GET's 6.319 ms.
    assert_eq!(run.max_us, 7791);
    // SET's 50% line is 0.543 ms (10051 requests), GET's 0.631 ms (10005):
    // the pooled median lies between them.
    let p50 = run.quantile(0.5);
    assert!((543.0..=631.0).contains(&p50), "{p50}");
    // 99.9% of 40000: 39960 requests at or under. Every GET is under
    // 6.319 ms; SET's 99.609% line (7.047 ms) holds 19923 (39923 pooled),
    // its 99.805% line (7.351 ms) 19962 (39962 pooled).
    assert_eq!(run.quantile(0.999), 7351.0);
    assert!(run.resolved_q.is_none());
    // 40000 requests in 0.54 s + 0.41 s.
    assert!((run.per_s().expect("a rate") - 40_000.0 / 0.95).abs() < 1.0, "{:?}", run.per_s());
    assert!(parse_redis_benchmark("Could not connect to Redis at 127.0.0.1:6379: Connection refused\n").is_err());
}

#[test]
fn runs_of_a_load_generator_merge_into_one_rate_and_the_coarsest_resolution() {
    let mut pooled = parse_redis_benchmark(REDIS_BENCHMARK).expect("parses");
    pooled.merge(&parse_wrk(WRK).expect("parses"));
    assert_eq!(pooled.samples, 140_575);
    assert_eq!(pooled.resolved_q, Some(0.99));
    assert!(pooled.quantile(0.999).is_nan());
    let cyclic = parse_cyclictest(CYCLICTEST).expect("parses");
    assert_eq!(cyclic.per_s(), None, "a timer tool's rate is its cycles");
}

#[test]
fn workloads_are_named_one_at_a_time_or_all_and_default_to_cyclictest() {
    assert_eq!(Workload::parse_list("").expect("default"), vec![Workload::Cyclictest]);
    assert_eq!(Workload::parse_list("nginx-wrk").expect("one"), vec![Workload::NginxWrk]);
    assert_eq!(Workload::parse_list("all").expect("all").len(), Workload::ALL.len());
    let e = Workload::parse_list("nginx").expect_err("unknown");
    assert!(format!("{e:#}").contains("unknown workload \"nginx\"; known: cyclictest, nginx-wrk, redis, all"), "{e:#}");
}

#[test]
fn a_server_s_floor_is_judged_on_its_requests_per_second_and_without_p999() {
    let rate = |setup: &str, p99: f64, per_s: f64| Summary { per_s: Some(per_s), p999_us: f64::NAN, ..summary(setup, p99, 5000.0, 1, 500.0, 1000) };
    let eevdf = rate("eevdf", 2000.0, 10_000.0);
    let v = verdicts(&[eevdf.clone(), rate("scx_slo-all-under", 2000.0, 9_900.0)]);
    assert!(v[0].contains("p99.9 unmeasured") && v[0].contains("requests/s 0.990x") && v[0].ends_with("met)"), "{v:?}");
    let v = verdicts(&[eevdf.clone(), rate("scx_slo-all-under", 2000.0, 9_000.0)]);
    assert!(v[0].ends_with("missed)"), "{v:?}");
    let checks = cycle_checks(&[eevdf, rate("scx_slo-all-tuned", 2000.0, 8_000.0)]);
    assert!(!checks[0].1 && checks[0].0.contains("lost no requests/s"), "{checks:?}");
}

#[test]
fn a_server_s_latencies_past_the_timer_tool_s_range_keep_their_percentiles() {
    // Under the emulator wrk's p50 was 16 ms and its p99 over 200 ms: past
    // the 30 ms of 1 µs buckets, where every request used to read as the
    // maximum.
    let slow = WRK
        .replace("266.00us", "15.83ms")
        .replace("457.00us", "40.10ms")
        .replace("1.32ms", "90.00ms")
        .replace("5.84ms", "221.61ms")
        .replace("10.68ms", "477.82ms");
    let run = parse_wrk(&slow).expect("parses");
    assert!(run.width() > 1 && run.overflows == 0, "{} {}", run.width(), run.overflows);
    let close = |got: f64, want: f64| (want - run.width() as f64..=want).contains(&got);
    assert!(close(run.quantile(0.5), 15_830.0) && close(run.quantile(0.99), 221_610.0), "{} {}", run.quantile(0.5), run.quantile(0.99));
    // A finer round merged in is coarsened, not misplaced.
    let mut pooled = run.clone();
    pooled.merge(&parse_wrk(WRK).expect("parses"));
    assert_eq!(pooled.width(), run.width());
    assert_eq!(pooled.samples, 2 * run.samples);
    assert!(pooled.quantile(0.25) < 1000.0 && close(pooled.quantile(0.99), 221_610.0), "{} {}", pooled.quantile(0.25), pooled.quantile(0.99));
}

#[test]
fn a_cell_that_lost_samples_fails_the_sampler_check_and_is_named() {
    let clean = vec![json!({ "setup": "eevdf", "round": 0, "samples_dropped": 0 }), json!({ "setup": "scx_slo-all-under", "round": 0, "samples_dropped": 0 })];
    assert_eq!(samples_kept(&clean), (true, "0 lost in 2 cells".to_string()));
    let lossy = vec![clean[0].clone(), json!({ "setup": "scx_slo-all-tuned", "round": 2, "samples_dropped": 17 })];
    let (ok, detail) = samples_kept(&lossy);
    assert!(!ok);
    assert_eq!(detail, "lost: scx_slo-all-tuned round 2: 17");
}
