// SPDX-License-Identifier: GPL-2.0-only
//! `scx-slo rollout` end to end: Debian's Prometheus (`/usr/bin/prometheus`)
//! scraping four real scx-slod instances in observe mode on this host (each
//! with its own config, status, state and audit paths and metrics port, no
//! D-Bus), with the rules `scx-slo rules` generates loaded; a stand-in for
//! deploy-rs that deploys a node the way an activation would (the new
//! config in place, the daemon reloaded, `scx-slo health --expect-config`
//! as the gate); three stages.
//!
//! - A sound release proceeds through every stage. The rollout is killed
//!   after the canary's decision (the operator's machine dies) and re-run
//!   with the same log: it resumes at the second stage without deploying
//!   the canary again.
//! - A harmful release (a deadline no job meets) is stopped at the canary
//!   stage, the canary is rolled back to the last good release, and the
//!   later stages' nodes are never touched: once by the burn-rate alerts
//!   it sets off during the soak, once (those alerts left out of the
//!   gates) by the per-unit miss ratio at the soak's end.
//!
//! Skipped, saying why, when not root or without /usr/bin/prometheus.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PROMETHEUS: &str = "/usr/bin/prometheus";
const NODES: [&str; 4] = ["canary", "rack-1", "rack-2", "fleet-1"];

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A child killed on drop.
struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The first cgroup2 mount point (`/sys/fs/cgroup`, or its `unified`
/// directory on a hybrid host).
fn cgroup2_root() -> PathBuf {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    mountinfo
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            (right.split_whitespace().next() == Some("cgroup2")).then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
        })
        .expect("a cgroup2 mount: the daemons' observe probes need one")
}

/// The test's cgroup with one sleeper; removed on drop.
struct Cgroup {
    dir: PathBuf,
    rel: String,
    sleeper: Option<Kid>,
}

impl Cgroup {
    fn new() -> Cgroup {
        let rel = format!("/scx-slo-rollout-{}/api", std::process::id());
        let dir = cgroup2_root().join(rel.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).expect("a cgroup under the cgroup2 mount");
        let procs = dir.join("cgroup.procs");
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("echo $$ > {} && exec sh -c 'while :; do sleep 0.005; done'", procs.display()))
            .spawn()
            .expect("sleeper");
        Cgroup { dir, rel, sleeper: Some(Kid(child)) }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        self.sleeper.take();
        std::thread::sleep(Duration::from_millis(100));
        let _ = std::fs::remove_dir(&self.dir);
        let _ = self.dir.parent().map(std::fs::remove_dir);
    }
}

/// A config for the test's unit; `deadline` and `runtime` vary by release.
fn config(unit: &str, runtime: &str, period: &str, deadline: &str) -> String {
    format!(
        r#"{{"version":1,"mode":"observe","targets":{{"{unit}":{{"class":"latency","budget":{{"runtime":"{runtime}","period":"{period}"}},"deadline":"{deadline}",
            "slo":{{"latency":{{"p99":"1s"}},"availability":0.999,"error_budget_window":"1d"}}}}}}}}"#
    )
}

fn scx_slod() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_scx-slo")).with_file_name("scx-slod");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo).args(["build", "-p", "scx-slod", "--bin", "scx-slod"]).status().is_ok_and(|s| s.success());
        assert!(ok && bin.exists(), "building scx-slod for this test failed");
    }
    bin
}

fn get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    (out.starts_with("HTTP/1.1 200") || out.starts_with("HTTP/1.0 200")).then_some(out)
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < end, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A deploy-rs stand-in: `deploy.sh FLAKE NODE` puts FLAKE's config on
/// NODE, reloads its daemon and gates like the activation does.
fn deploy_script(root: &Path, cli: &str) -> PathBuf {
    let script = root.join("deploy.sh");
    let text = format!(
        r#"#!/bin/sh
set -eu
flake="$1"; node="$2"; dir="{root}/nodes/$node"
echo "$node $(basename "$flake") $SCX_SLO_ROLLOUT_ID" >> "{root}/deploys.log"
cp "$flake/config.json" "$dir/config.json.new"
mv "$dir/config.json.new" "$dir/config.json"
kill -HUP "$(cat "$dir/pid")"
exec {cli} health --wait 15s --status-file "$dir/status.json" --expect-config "$dir/config.json"
"#,
        root = root.display()
    );
    std::fs::write(&script, text).expect("deploy.sh");
    script
}

fn plan(root: &Path, name: &str, flake: &str, good: &str, prom_port: u16, ports: &[u16], gates: &str) -> PathBuf {
    let nodes: Vec<String> = NODES.iter().zip(ports).map(|(n, p)| format!(r#""{n}":"127.0.0.1:{p}""#)).collect();
    let deploy = format!(r#"["sh","{}/deploy.sh","{{flake}}","{{node}}"]"#, root.display());
    let rollback = format!(r#"["sh","{}/deploy.sh","{{rollback_flake}}","{{node}}"]"#, root.display());
    let text = format!(
        r#"{{"version":1,"name":"{name}","flake":"{root}/{flake}","rollback_flake":"{root}/{good}",
            "deploy":{deploy},"rollback":{rollback},"command_timeout":"60s",
            "prometheus":{{"url":"http://127.0.0.1:{prom_port}","timeout":"5s","step":"1s"}},
            "nodes":{{{nodes}}},"poll":"1s","gates":{{"rate_window":"5s"{gates}}},
            "stages":[{{"name":"canary","nodes":["canary"],"soak":"4s"}},
                      {{"name":"racks","nodes":["rack-1","rack-2"],"soak":"4s"}},
                      {{"name":"rest","rest":true,"soak":"4s"}}]}}"#,
        root = root.display(),
        nodes = nodes.join(",")
    );
    let path = root.join(format!("{name}.json"));
    std::fs::write(&path, text).expect("plan");
    path
}

fn log_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

#[test]
fn a_rollout_proceeds_on_a_sound_release_and_stops_the_canary_on_a_harmful_one() {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user.
    if std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1) != 0 {
        eprintln!("skipped: the daemons' observe probes need root");
        return;
    }
    if !Path::new(PROMETHEUS).exists() {
        eprintln!("skipped: no {PROMETHEUS} (scripts/setup installs Debian's prometheus)");
        return;
    }
    let started = Instant::now();
    let cli = env!("CARGO_BIN_EXE_scx-slo");
    let daemon = scx_slod();
    let root = std::env::temp_dir().join(format!("scx-slo-rollout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let cg = Cgroup::new();
    // Three releases: the running one, a sound successor, a harmful one.
    for (name, text) in [
        ("v1", config(&cg.rel, "100ms", "1s", "1s")),
        ("v2", config(&cg.rel, "200ms", "1s", "1s")),
        ("v3-harmful", config(&cg.rel, "10us", "10ms", "10us")),
    ] {
        std::fs::create_dir_all(root.join(name)).expect("mkdir");
        std::fs::write(root.join(name).join("config.json"), text).expect("config");
    }
    let ports: Vec<u16> = NODES.iter().map(|_| free_port()).collect();
    let mut daemons = Vec::new();
    for (node, port) in NODES.iter().zip(&ports) {
        let dir = root.join("nodes").join(node);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::copy(root.join("v1/config.json"), dir.join("config.json")).expect("config");
        let child = Command::new(&daemon)
            .arg("--config")
            .arg(dir.join("config.json"))
            .arg("--status-file")
            .arg(dir.join("status.json"))
            .arg("--state-file")
            .arg(dir.join("state.json"))
            .arg("--audit-dir")
            .arg(dir.join("audit"))
            .args(["--dbus", "off", "--metrics-listen", &format!("127.0.0.1:{port}")])
            .stderr(std::fs::File::create(dir.join("log")).expect("log"))
            .spawn()
            .expect("scx-slod");
        std::fs::write(dir.join("pid"), child.id().to_string()).expect("pid");
        daemons.push(Kid(child));
    }
    deploy_script(&root, cli);
    let rules = Command::new(cli).args(["rules", "--config"]).arg(root.join("v1/config.json")).output().expect("scx-slo rules");
    assert!(rules.status.success(), "{}", String::from_utf8_lossy(&rules.stderr));
    std::fs::write(root.join("rules.yml"), &rules.stdout).expect("rules");
    let targets: Vec<String> = ports.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
    std::fs::write(
        root.join("prometheus.yml"),
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: ['{}']\nscrape_configs:\n  - job_name: scx-slo\n    static_configs: [{{targets: [{}]}}]\n",
            root.join("rules.yml").display(),
            targets.join(", ")
        ),
    )
    .expect("prometheus.yml");
    let prom_port = free_port();
    let _prometheus = Kid(Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", root.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", root.join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stderr(std::fs::File::create(root.join("prometheus.log")).expect("log"))
        .spawn()
        .expect("prometheus"));
    for (d, node) in daemons.iter_mut().zip(NODES) {
        if let Ok(Some(s)) = d.0.try_wait() {
            panic!("scx-slod {node} exited ({s}): {}", std::fs::read_to_string(root.join("nodes").join(node).join("log")).unwrap_or_default());
        }
    }
    // Every daemon scraped and counting jobs, and a few seconds of history.
    let all_up = format!("/api/v1/query?query=count(up%7Bjob%3D%22scx-slo%22%7D%3D%3D1)%3D%3D{}", NODES.len());
    let jobs = "/api/v1/query?query=count(scx_slo_jobs_total%3E0)%3D%3D4";
    wait_for("Prometheus scraping every daemon", Duration::from_secs(60), || {
        get(prom_port, &all_up).is_some_and(|r| r.contains("\"value\"")) && get(prom_port, jobs).is_some_and(|r| r.contains("\"value\""))
    });
    std::thread::sleep(Duration::from_secs(5));
    eprintln!("setup took {:?}", started.elapsed());

    // The dry run prints the plan and every query, and runs nothing.
    let sound = plan(&root, "sound", "v2", "v1", prom_port, &ports, "");
    let dry = Command::new(cli).args(["rollout", "--dry-run"]).arg(&sound).output().expect("dry run");
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(dry.status.success() && text.contains("stage 3 \"rest\"") && text.contains("ALERTS{alertname=~\"ScxSloSchedulerEjected"), "{text}");
    assert!(!root.join("deploys.log").exists() && !root.join("sound.json.log.jsonl").exists());

    // A sound release; the operator's machine dies after the canary's decision.
    let log = root.join("sound.json.log.jsonl");
    let mut first = Kid(Command::new(cli).arg("rollout").arg(&sound).stdout(Stdio::null()).spawn().expect("rollout"));
    wait_for("the canary's decision", Duration::from_secs(60), || log_lines(&log).iter().any(|l| l["event"] == "decision"));
    first.0.kill().expect("kill");
    let _ = first.0.wait();
    let decided = log_lines(&log);
    let canary = decided.iter().find(|l| l["event"] == "decision").expect("decision");
    assert_eq!(canary["decision"], "proceed", "{canary:#}");
    let out = Command::new(cli).arg("rollout").arg(&sound).output().expect("rollout");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("resuming at stage racks"), "{stdout}");
    let lines = log_lines(&log);
    let id = lines[0]["rollout_id"].as_str().expect("id").to_string();
    assert!(lines.iter().all(|l| l["rollout_id"] == id.as_str()), "one correlation id");
    let decisions: Vec<(&str, &str)> =
        lines.iter().filter(|l| l["event"] == "decision").map(|l| (l["stage"].as_str().unwrap_or(""), l["decision"].as_str().unwrap_or(""))).collect();
    assert_eq!(decisions, [("canary", "proceed"), ("racks", "proceed"), ("rest", "proceed")]);
    let gates: Vec<&str> = lines.iter().rev().find(|l| l["event"] == "decision").expect("d")["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| c["gate"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(gates, ["up", "daemon_alerts", "burn_alerts", "miss_ratio", "latency"]);
    let deploys = std::fs::read_to_string(root.join("deploys.log")).expect("deploys");
    assert_eq!(deploys.lines().filter(|l| l.starts_with("canary ")).count(), 1, "the canary was deployed once:\n{deploys}");
    let v2 = std::fs::read_to_string(root.join("v2/config.json")).expect("v2");
    for node in NODES {
        assert_eq!(std::fs::read_to_string(root.join("nodes").join(node).join("config.json")).expect("config"), v2, "{node}");
    }
    eprintln!("sound release rolled out by {:?}", started.elapsed());

    // A harmful release: stopped at the canary, which is rolled back to v2,
    // first by the burn-rate alerts it sets off during the soak, then (with
    // those alerts left out of the gates) by the miss ratio at its end.
    for (name, gates, gate) in [("harmful", "", "burn_alerts"), ("harmful-misses", r#","burn_alerts":[]"#, "miss_ratio")] {
        std::fs::write(root.join("deploys.log"), "").expect("truncate");
        let harmful = plan(&root, name, "v3-harmful", "v2", prom_port, &ports, gates);
        let out = Command::new(cli).arg("rollout").arg(&harmful).output().expect("rollout");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("stopped at stage canary") && stdout.contains(&format!("{gate}: ")), "{gate}: {stdout}");
        let lines = log_lines(&root.join(format!("{name}.json.log.jsonl")));
        let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap_or("")).collect();
        assert_eq!(events, ["start", "deploy_start", "deployed", "decision", "rolled_back", "finished"]);
        assert_eq!(lines[3]["decision"], "rollback");
        let failed = lines[3]["checks"].as_array().and_then(|c| c.iter().find(|c| c["gate"] == gate && c["pass"] == false).cloned()).expect("the failed gate's check");
        assert!(failed["asked"][0]["query"].as_str().is_some_and(|q| !q.is_empty()) && failed["asked"][0]["values"].is_array(), "{failed:#}");
        let deploys = std::fs::read_to_string(root.join("deploys.log")).expect("deploys");
        let touched: Vec<String> = deploys.lines().map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" ")).collect();
        assert_eq!(touched, ["canary v3-harmful", "canary v2"], "{deploys}");
        for node in NODES {
            assert_eq!(std::fs::read_to_string(root.join("nodes").join(node).join("config.json")).expect("config"), v2, "{node} runs the last good release");
        }
        // The same log does not run again.
        let again = Command::new(cli).arg("rollout").arg(&harmful).output().expect("rollout");
        assert_eq!(again.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&again.stderr).contains("already ended"));
        eprintln!("{name} release stopped by {:?}", started.elapsed());
        // The canary's misses leave the comparison windows before the next run.
        std::thread::sleep(Duration::from_secs(5));
    }
    eprintln!("end-to-end wall time {:?}", started.elapsed());
    drop(daemons);
    drop(cg);
    let _ = std::fs::remove_dir_all(&root);
}
