// SPDX-License-Identifier: GPL-2.0-only
//! `scx-slo tune` as an operator runs it, against a cgroup that a thread of
//! the test keeps "running" (its cpu.stat grows at a known rate) and a
//! service endpoint served by the test: the recommendation, its reasoning,
//! the scraped p99, admission against the config, and the exit codes.
#![allow(clippy::unwrap_used)] // a test's helpers unwrap too: a failure is a failed test with its line

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A cgroup directory under a fake cgroup root whose `usage_usec` grows by
/// `us_per_ms` every millisecond while the guard lives.
struct FakeCgroup {
    root: PathBuf,
    stop: Arc<AtomicBool>,
}

impl FakeCgroup {
    fn new(name: &str, rel: &str, us_per_ms: u64) -> FakeCgroup {
        let root = std::env::temp_dir().join(format!("scx-slo-tune-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = root.join(rel);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cpu.stat"), "usage_usec 0\n").unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            while !flag.load(Ordering::Relaxed) {
                let usage = start.elapsed().as_micros() as u64 * us_per_ms / 1000;
                let text = format!("usage_usec {usage}\nuser_usec {usage}\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n");
                // Written whole, then renamed: a reader never sees half a file.
                let tmp = dir.join("cpu.stat.tmp");
                std::fs::write(&tmp, text).unwrap();
                std::fs::rename(&tmp, dir.join("cpu.stat")).unwrap();
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        FakeCgroup { root, stop }
    }
}

impl Drop for FakeCgroup {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(5));
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn tune(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scx-slo")).arg("tune").args(args).current_dir(repo()).output().expect("running scx-slo");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn runtime_us(doc: &serde_json::Value) -> u64 {
    doc["recommendation"]["runtime"].as_str().unwrap().parse::<scx_slo_model::Duration>().unwrap().as_us()
}

#[test]
fn a_unit_using_a_tenth_of_a_cpu_gets_its_p99_per_period_with_headroom() {
    // 100 us of CPU per ms: 1 ms per 10 ms period.
    let cg = FakeCgroup::new("tenth", "system.slice/api.service", 100);
    let root = cg.root.display().to_string();
    let (code, out, err) = tune(&["api.service", "--duration", "2s", "--cgroup-root", &root, "--config", "examples/enforce.json", "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(doc["cgroup"].as_str().unwrap().ends_with("system.slice/api.service"), "found by name: {doc:#}");
    let periods = doc["profile"]["periods"].as_u64().unwrap();
    assert!((150..=200).contains(&periods), "{periods} periods of 10ms in 2s");
    // The fake's writer thread is itself scheduled: on a loaded machine
    // (the workspace's tests run in parallel) its stalls land whole in one
    // period (a p99 of 5.2 ms was seen in CI for this 1 ms load), so the
    // exact value is the unit tests' (tune.rs: quantiles, headroom,
    // rounding). Here: at least the load with its headroom, at most the
    // period, and the deadline the config's unless the runtime passed it.
    let r = runtime_us(&doc);
    assert!((1200..=10_000).contains(&r), "runtime {r} us: {doc:#}");
    let deadline = doc["recommendation"]["deadline"].as_str().unwrap().parse::<scx_slo_model::Duration>().unwrap().as_us();
    assert_eq!(deadline, r.max(5000), "{doc:#}");
    assert_eq!(doc["recommendation"]["priority"].as_u64(), Some(800));
    assert_eq!(doc["admission"]["ok"], true, "{doc:#}");
    assert_eq!(doc["applied"], false);
    assert!(doc["nix"].as_str().unwrap().starts_with("services.scxSlo.targets.\"api.service\" = {"), "{doc:#}");

    // Text: the reasoning and the snippet; nothing applied.
    let (code, out, err) = tune(&["api.service", "--duration", "500ms", "--cgroup-root", &root, "--config", "examples/enforce.json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    for want in ["p99 CPU per 10ms period", "headroom 1.3x", "deadline 5ms", "from the config", "admission (examples/enforce.json)", "nothing was changed"] {
        assert!(out.contains(want), "{want:?} missing:\n{out}");
    }
}

#[test]
fn a_recommendation_admission_refuses_exits_1_and_says_so() {
    // A whole CPU's worth: capped at the period (10 ms per 10 ms), which
    // with the example's other budgets (0.35 CPUs) is over one CPU x 0.95.
    let cg = FakeCgroup::new("hungry", "system.slice/new.service", 1000);
    let root = cg.root.display().to_string();
    let config = std::env::temp_dir().join(format!("scx-slo-tune-one-cpu-{}.json", std::process::id()));
    let mut c: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(repo().join("examples/enforce.json")).unwrap()).unwrap();
    c["admission"] = serde_json::json!({ "cpu_capacity": 1, "overcommit": 0.95 });
    std::fs::write(&config, c.to_string()).unwrap();
    let (code, out, err) = tune(&["new.service", "--duration", "300ms", "--cgroup-root", &root, "--config", config.to_str().unwrap()]);
    let _ = std::fs::remove_file(&config);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("REFUSED") && out.contains("admission allows 0.950"), "{out}");
    assert!(out.contains("capped at the period"), "{out}");
}

#[test]
fn bad_arguments_and_missing_cgroups_are_named() {
    let root = std::env::temp_dir().display().to_string();
    for (args, want) in [
        (vec!["x.service", "--duration", "1ms"], "--duration 1ms must be at least the period 10ms"),
        (vec!["x.service", "--period", "100us"], "--period 100us is outside 1ms..=10s"),
        (vec!["x.service", "--headroom", "0.5"], "--headroom 0.5 is outside [1, 10]"),
        (vec!["batch.slice", "--duration", "1s"], "batch.slice is a batch target"),
        (vec!["nowhere.service", "--duration", "1s", "--cgroup-root", &root], "no cgroup named nowhere.service"),
        (vec!["x.service", "--duration", "1s", "--cgroup", "../etc"], ".. is not allowed"),
    ] {
        let mut a = args.clone();
        a.extend(["--config", "examples/enforce.json"]);
        let (code, out, err) = tune(&a);
        assert_eq!(code, Some(2), "{args:?}: {out}{err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn the_service_histogram_is_scraped_before_and_after() {
    let cg = FakeCgroup::new("scrape", "system.slice/api.service", 100);
    let root = cg.root.display().to_string();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Two scrapes: 1,000 requests under 1 ms, then 990 more under 1 ms and
    // 10 between 1 and 10 ms.
    std::thread::spawn(move || {
        for (fast, slow) in [(1000u64, 0u64), (1990, 10)] {
            let (mut s, _) = listener.accept().unwrap();
            // The whole request, then the answer.
            let mut req = Vec::new();
            let mut buf = [0u8; 512];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let body = format!(
                "# TYPE req_seconds histogram\nreq_seconds_bucket{{le=\"0.001\"}} {fast}\nreq_seconds_bucket{{le=\"0.01\"}} {t}\n\
                 req_seconds_bucket{{le=\"+Inf\"}} {t}\nreq_seconds_sum 1\nreq_seconds_count {t}\n",
                t = fast + slow
            );
            let _ = write!(s, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n{body}");
        }
    });
    let url = format!("http://127.0.0.1:{port}/metrics");
    let (code, out, err) = tune(&[
        "api.service", "--duration", "300ms", "--cgroup-root", &root, "--config", "examples/enforce.json", "--scrape", &url, "--histogram", "req_seconds", "--json",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["service"]["requests"], 1000, "{doc:#}");
    let p99 = doc["service"]["p99_seconds"].as_f64().unwrap();
    assert!((0.001..=0.01).contains(&p99), "{p99}");
    let reasons = doc["recommendation"]["reasoning"].to_string();
    assert!(reasons.contains("req_seconds: p99") && reasons.contains("objective 5ms: met"), "{reasons}");
}
