// SPDX-License-Identifier: GPL-2.0-only
//! The observe probes on the host kernel (needs root and BTF; CI runs as
//! root). A sleeper in a targeted cgroup must show wakeups, jobs and
//! run-queue delays; a sleeper in an untargeted cgroup must not; a target with
//! an impossible deadline must show misses. Skipped (with a message) when not
//! root, and fails under CI=true instead, so CI cannot pass by skipping.

use std::fs;
use std::mem::MaybeUninit;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use scx_slo_bpf::intf;
use scx_slo_bpf::{Counter, MapTarget, Observer, SampleKind};

fn cgroup2_root() -> PathBuf {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    mountinfo
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            if right.split_whitespace().next()? != "cgroup2" {
                return None;
            }
            left.split_whitespace().nth(4).map(PathBuf::from)
        })
        .expect("no cgroup2 mount")
}

fn can_run() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || !Path::new("/sys/kernel/btf/vmlinux").exists() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI must run the observe probe test as root on a BTF kernel");
        eprintln!("skipped: needs root and /sys/kernel/btf/vmlinux");
        return false;
    }
    true
}

/// A cgroup removed on drop, with its processes killed.
struct TestCgroup {
    dir: PathBuf,
    children: Vec<Child>,
}

impl TestCgroup {
    fn new(name: &str) -> Self {
        let dir = cgroup2_root().join(format!("scx-slo-bpf-test-{}-{name}", std::process::id()));
        fs::create_dir(&dir).expect("mkdir cgroup");
        TestCgroup { dir, children: Vec::new() }
    }
    fn id(&self) -> u64 {
        fs::metadata(&self.dir).expect("stat cgroup").ino()
    }
    /// Runs `sh -c script` inside the cgroup.
    fn spawn(&mut self, script: &str) {
        let procs = self.dir.join("cgroup.procs");
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(format!("echo $$ > {} && exec sh -c '{script}'", procs.display()));
        self.children.push(cmd.spawn().expect("spawn"));
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = fs::remove_dir(&self.dir);
    }
}

fn latency_cfg(deadline_ns: u64) -> intf::slo_target_cfg {
    intf::slo_target_cfg {
        runtime_ns: 1_000_000,
        period_ns: 10_000_000,
        deadline_ns,
        weight: 100,
        priority: 500,
        class: intf::slo_class_SLO_CLASS_LATENCY as u8,
        preempt: 0,
    }
}

#[test]
fn probes_measure_targeted_cgroups_only() {
    if !can_run() {
        return;
    }
    let mut object = MaybeUninit::uninit();
    let mut obs = Observer::load(&mut object, 32).expect("load the observe probes");
    let mut targeted = TestCgroup::new("targeted");
    let mut impossible = TestCgroup::new("impossible");
    let mut other = TestCgroup::new("other");
    obs.apply(&[
        MapTarget { index: 0, cgroup_id: targeted.id(), cfg: latency_cfg(1_000_000_000), fresh: true },
        // 1 ns: every job misses.
        MapTarget { index: 1, cgroup_id: impossible.id(), cfg: latency_cfg(1), fresh: true },
    ])
    .expect("apply");
    obs.attach().expect("attach");
    // The run time grows only while a measurement window is open.
    if obs.measures_cost() {
        obs.set_measuring(true).expect("bpf_stats on");
        assert!(obs.measuring());
    }
    let sleeper = "while :; do sleep 0.01; done";
    targeted.spawn(sleeper);
    impossible.spawn(sleeper);
    other.spawn(sleeper);
    std::thread::sleep(Duration::from_millis(1500));

    let t = obs.target_stats(0).expect("stats 0");
    let i = obs.target_stats(1).expect("stats 1");
    let unused = obs.target_stats(2).expect("stats 2");
    eprintln!("targeted: {:?}\nimpossible: {:?}", t.counters, i.counters);
    assert!(t.get(Counter::Wakeups) >= 20, "wakeups {}", t.get(Counter::Wakeups));
    assert!(t.get(Counter::Jobs) >= 20, "jobs {}", t.get(Counter::Jobs));
    assert!(t.rq_delay_hist.iter().sum::<u64>() >= 20, "rq delay samples {:?}", t.rq_delay_hist);
    assert_eq!(t.get(Counter::DeadlineMisses), 0, "a 1 s deadline is not missed by a sleeper");
    assert!(t.slack_hist.iter().sum::<u64>() >= 20);
    assert!(i.get(Counter::Jobs) >= 20);
    assert_eq!(i.get(Counter::DeadlineMisses), i.get(Counter::Jobs), "every job misses a 1 ns deadline");
    // Index 2 has no cgroup: the untargeted sleeper counted nowhere.
    assert_eq!(unused.get(Counter::Wakeups), 0);
    let c = obs.counters().expect("counters");
    assert!(c.wakeups_seen > t.get(Counter::Wakeups) + i.get(Counter::Wakeups), "the probe sees every wakeup on the host: {c:?}");
    let cost = obs.cost().expect("cost");
    if obs.measures_cost() {
        assert!(cost.run_count > 0 && cost.run_time_ns > 0, "{cost:?}");
        // Closed: nothing more is counted (unless someone else holds the
        // kernel's stats on: the sysctl says).
        obs.set_measuring(false).expect("bpf_stats off");
        let closed = obs.cost().expect("cost");
        std::thread::sleep(Duration::from_millis(200)); // the sleepers keep waking
        let later = obs.cost().expect("cost");
        let others = std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").map_or(true, |v| v.trim() != "0");
        assert!(others || later == closed, "counted with stats off: {closed:?} -> {later:?}");
    }

    // Sampling 1 in 4: about a quarter of the wakeups are measured.
    let before = obs.counters().expect("counters");
    obs.set_sample_every(4).expect("sample");
    std::thread::sleep(Duration::from_millis(500));
    let after = obs.counters().expect("counters");
    let seen = after.wakeups_seen - before.wakeups_seen;
    let skipped = after.wakeups_sampled_out - before.wakeups_sampled_out;
    assert!(seen > 0 && skipped * 10 >= seen * 6, "1 in 4 sampled: skipped {skipped} of {seen}");

    obs.detach();
    let frozen = obs.target_stats(0).expect("stats").get(Counter::Wakeups);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(obs.target_stats(0).expect("stats").get(Counter::Wakeups), frozen, "detached probes count nothing");
}

#[test]
fn raw_samples_match_the_histograms_and_stay_off_by_default() {
    if !can_run() {
        return;
    }
    let mut object = MaybeUninit::uninit();
    let mut obs = Observer::load(&mut object, 32).expect("load the observe probes");
    let mut targeted = TestCgroup::new("samples-targeted");
    let mut other = TestCgroup::new("samples-other");
    obs.apply(&[MapTarget { index: 0, cgroup_id: targeted.id(), cfg: latency_cfg(1_000_000_000), fresh: true }]).expect("apply");
    obs.attach().expect("attach");
    let sleeper = "while :; do sleep 0.01; done";
    targeted.spawn(sleeper);
    other.spawn(sleeper);
    // Off by default: the daemon never fills the ring buffer.
    std::thread::sleep(Duration::from_millis(300));
    assert!(obs.drain_samples().expect("drain").is_empty(), "no samples unless asked");

    let base = obs.target_stats(0).expect("stats");
    obs.set_emit_samples(true).expect("on");
    std::thread::sleep(Duration::from_millis(1000));
    obs.detach();
    let samples = obs.drain_samples().expect("drain");
    let now = obs.target_stats(0).expect("stats");
    let queue: Vec<_> = samples.iter().filter(|s| s.kind == SampleKind::Queue).collect();
    let response: Vec<_> = samples.iter().filter(|s| s.kind == SampleKind::Response).collect();
    eprintln!("{} queue, {} response samples", queue.len(), response.len());
    assert!(samples.iter().all(|s| s.target == 0), "only the targeted cgroup is sampled");
    assert!(queue.len() >= 20 && response.len() >= 20, "{} queue, {} response", queue.len(), response.len());
    // One queue sample per histogram entry added while emitting (the switch
    // from off to on can fall between a job's wakeup and its first run, for each of the shell and its sleep: ±2).
    let hist_added: u64 = now.rq_delay_hist.iter().sum::<u64>() - base.rq_delay_hist.iter().sum::<u64>();
    assert!(hist_added.abs_diff(queue.len() as u64) <= 2, "histogram +{hist_added}, samples {}", queue.len());
    // A sleeper's job takes longer than its wait for the CPU.
    let median = |v: &mut Vec<u64>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    let mut q: Vec<u64> = queue.iter().map(|s| s.ns).collect();
    let mut r: Vec<u64> = response.iter().map(|s| s.ns).collect();
    assert!(median(&mut r) >= median(&mut q), "response {r:?} vs queue {q:?}");
    assert_eq!(obs.counters().expect("counters").samples_dropped, 0);
}

/// The per-target maps hold the slots they were loaded with, the
/// kernel's count of their memory is the sizing rule's (plus a header), and
/// a target set past the slots is refused before anything is written.
#[test]
fn target_maps_are_sized_at_load_and_refuse_what_does_not_fit() {
    if !can_run() {
        return;
    }
    let cpus = libbpf_rs::num_possible_cpus().expect("possible CPUs") as u64;
    for capacity in [32u32, 256] {
        let mut object = MaybeUninit::uninit();
        let mut obs = Observer::load(&mut object, capacity).expect("load the observe probes");
        assert_eq!(obs.target_capacity(), capacity);
        let rule = scx_slo_bpf::map_memory::rule(cpus, u64::from(capacity));
        for loaded in obs.map_memory().expect("fdinfo") {
            let want = rule.iter().find(|(n, _)| *n == loaded.name).expect("a map the rule names").1;
            eprintln!("{} at {capacity} slots, {cpus} CPUs: kernel {} bytes, rule {want}", loaded.name, loaded.bytes);
            assert_eq!(loaded.max_entries, capacity, "{}", loaded.name);
            assert!(
                loaded.bytes >= want && loaded.bytes - want < scx_slo_bpf::map_memory::HEADER_SLACK,
                "{} at {capacity} slots, {cpus} CPUs: the kernel counts {} bytes, the rule {want}",
                loaded.name,
                loaded.bytes
            );
        }
        let targeted = TestCgroup::new("sized");
        let fits = MapTarget { index: capacity - 1, cgroup_id: targeted.id(), cfg: latency_cfg(1_000_000_000), fresh: true };
        obs.apply(std::slice::from_ref(&fits)).expect("the last slot fits");
        let past = MapTarget { index: capacity, cgroup_id: targeted.id() + 1, ..fits.clone() };
        let err = obs.apply(&[fits.clone(), past]).expect_err("a slot past the capacity").to_string();
        assert!(err.contains(&format!("target slot {capacity} is past the {capacity} slots")), "{err}");
    }
}
