// SPDX-License-Identifier: GPL-2.0-only
//! scx-slo-lab: workloads and VM scenarios for scx-slo's tests and benchmarks.
//!
//! Inside the VM: `probe`, `hog`, `idle` run workloads; `scenario` runs a
//! scenario and prints its report. On the host: `report` reads the captured
//! output and prints a summary; its exit code is the scenario's verdict.

mod adapt;
mod bench;
mod bench_footprint;
mod bench_gate;
mod bench_resume;
mod external;
mod external_report;
mod external_tools;
mod external_verdicts;
mod external_workloads;
mod bench_report;
mod canary;
mod chaos;
mod control;
mod daemon;
mod demo;
mod disable_timing;
mod enforce;
mod fixtures;
mod harness;
mod host_report;
mod hostile_metrics;
mod hunt;
mod kernel;
mod overhead;
mod sampler;
mod served;
mod spawn;
mod stats_cost;
mod switch_action;
mod systemd;
mod threads;
mod workload;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use scx_slo_model::Duration as SloDuration;

#[derive(Parser)]
#[command(name = "scx-slo-lab", version, about = "Workloads and VM scenarios for scx-slo")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args, Clone)]
struct Placement {
    /// Move into this cgroup directory first.
    #[arg(long)]
    cgroup: Option<PathBuf>,
    /// Then wait (up to 5 s) until scx-slod gave this task SCHED_EXT.
    #[arg(long)]
    wait_ext: bool,
    /// Write the JSON result here (default: stdout).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Periodic latency probe: every period, wake and burn `work` of CPU time.
    Probe {
        #[arg(long, default_value = "10ms")]
        period: SloDuration,
        #[arg(long, default_value = "300us")]
        work: SloDuration,
        #[arg(long, default_value = "5ms")]
        deadline: SloDuration,
        #[arg(long, default_value = "5s")]
        duration: SloDuration,
        /// Arrival process: periodic, or Poisson with `period` as the mean gap.
        #[arg(long, value_enum, default_value = "periodic")]
        arrival: workload::Arrival,
        /// Keep the raw samples in the output (for significance tests).
        #[arg(long)]
        samples: bool,
        /// After the last request: print `measured`, then wait for stdin to
        /// close before writing the result, so a kernel-side sampler of the
        /// cgroup can stop before the result is serialized (bench).
        #[arg(long)]
        hold: bool,
        /// Serve the requests' response-time histogram on
        /// http://127.0.0.1:PORT/metrics (`probe_response_seconds`).
        #[arg(long)]
        serve: Option<u16>,
        #[command(flatten)]
        placement: Placement,
    },
    /// Noisy neighbour: threads bursting `burst` on, `burst` off.
    Noisy {
        #[arg(long, default_value_t = 4)]
        threads: usize,
        #[arg(long, default_value = "20ms")]
        burst: SloDuration,
        #[arg(long, default_value = "5s")]
        duration: SloDuration,
        #[command(flatten)]
        placement: Placement,
    },
    /// Fork/exec-heavy load: /bin/true back to back.
    Forkexec {
        #[arg(long, default_value = "5s")]
        duration: SloDuration,
        #[command(flatten)]
        placement: Placement,
    },
    /// CPU hog (batch work), counting work done.
    Hog {
        #[arg(long, default_value = "5s")]
        duration: SloDuration,
        #[command(flatten)]
        placement: Placement,
    },
    /// One process of periodic threads plus a supervising main thread
    /// (the multi-threaded latency service of the hunt's exhausted-workers shape).
    Threads {
        /// A worker thread as PERIOD/WORK (e.g. 1ms/50us); repeat for more.
        #[arg(long = "worker", value_parser = threads::ThreadSpec::parse, required = true)]
        workers: Vec<threads::ThreadSpec>,
        /// The main thread's own PERIOD/WORK.
        #[arg(long, value_parser = threads::ThreadSpec::parse, default_value = "100ms/20us")]
        main: threads::ThreadSpec,
        #[arg(long, default_value = "5s")]
        duration: SloDuration,
        #[command(flatten)]
        placement: Placement,
    },
    /// The chaos scenario's D-Bus flood client: Explain with a maximal
    /// unit name in a loop (run as an unprivileged user).
    DbusFlood {
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// With --large-bytes: connections sending at once.
        #[arg(long, default_value_t = 1)]
        connections: usize,
        /// Send Explain calls of this many bytes without waiting for replies.
        #[arg(long)]
        large_bytes: Option<usize>,
    },
    /// A targeted service's metrics endpoint turned hostile (chaos).
    HostileMetrics {
        #[arg(long)]
        port: u16,
        /// tiny, bounds or trickle.
        #[arg(long)]
        mode: String,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Sleeps until killed.
    Idle {
        #[command(flatten)]
        placement: Placement,
    },
    /// Runs a scenario inside the VM guest and appends its report to --out.
    Scenario {
        /// enforce, control or demo.
        name: String,
        /// Directory holding scx-slod, scx-slo, scx-slo-lab and bpftool.
        #[arg(long, default_value = "/bin")]
        bin: PathBuf,
        /// cgroup2 mount point.
        #[arg(long, default_value = "/sys/fs/cgroup")]
        cgroot: PathBuf,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 6)]
        seconds: u64,
        /// Demo rounds (each: default scheduler, then scx-slo).
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// Where the report goes (the harness's results serial port).
        #[arg(long, default_value = "/dev/ttyS1")]
        out: PathBuf,
        /// bench: only these schedulers (comma-separated; EEVDF, the
        /// baseline, always runs). Empty: all.
        #[arg(long, default_value = "")]
        only: String,
        /// bench: only these scenarios (comma-separated). Empty: all.
        #[arg(long, default_value = "")]
        scenarios: String,
        /// hunt: the first random shape's seed (the next ones follow it).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// bench: panic the kernel after this many blocks measured in this
        /// boot (0: never), to test that the bench resumes (checks/vm/run
        /// --crash-after passes it to the first boot only).
        #[arg(long, default_value_t = 0)]
        crash_after: usize,
        /// external: the workload (cyclictest, nginx-wrk, redis or all).
        /// Empty: cyclictest, CI's.
        #[arg(long, default_value = "")]
        workload: String,
    },
    /// What the observe probes cost per run with the kernel's BPF
    /// statistics on and off: a pinned pipe ping-pong, timed with the
    /// probes detached, attached, and attached with statistics (root).
    BenchStats {
        /// Blocks per variant.
        #[arg(long, default_value_t = 15)]
        blocks: usize,
        /// Round trips per block.
        #[arg(long, default_value_t = 100_000)]
        trips: usize,
    },
    /// The scheduler's map memory by the sizing rule (scx_slo_bpf::map_memory)
    /// for CPU counts x configured targets, as a markdown table; the VM's
    /// enforce scenario checks the rule against the kernel's own count.
    MapMemory {
        /// Possible CPUs, comma separated.
        #[arg(long, default_value = "2,16,64,256")]
        cpus: String,
        /// Configured targets, comma separated.
        #[arg(long, default_value = "10,100,1000")]
        targets: String,
    },
    /// Host benchmark: hackbench with and without observe mode, same boot;
    /// prints the JSON summary (time ratio, probe CPU share, ns per probe run).
    BenchObserve {
        /// The scx-slod binary.
        #[arg(long, default_value = "target/release/scx-slod")]
        daemon: PathBuf,
        /// Pairs of runs (baseline, observe).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// hackbench arguments.
        #[arg(long, default_value = "-g 4 -l 2000", allow_hyphen_values = true)]
        hackbench: String,
        /// Run hackbench in a cgroup observe mode does not target.
        #[arg(long)]
        untargeted: bool,
    },
    /// Host side: checks a focused bench's --only/--scenarios before the
    /// VM boots (checks/vm/run), so a typo fails in a second, by name.
    BenchSelection {
        #[arg(long, default_value = "")]
        only: String,
        #[arg(long, default_value = "")]
        scenarios: String,
        #[arg(long)]
        quick: bool,
    },
    /// Host side: a bench report (report.json) as the markdown of
    /// docs/benchmarks.md.
    BenchTable {
        /// checks/vm/out/bench/report.json.
        report: PathBuf,
        /// The date to print (default: today, UTC).
        #[arg(long)]
        date: Option<String>,
    },
    /// Host side: the release gate: a bench run against a stored baseline
    /// run of the same bench, metric by metric and setup by setup
    /// (docs/testing.md, "Release gates"). Exit 0: no gated metric
    /// regressed; 1: one did; 2: bad input (named).
    Gate {
        /// The baseline run's report.json (e.g. checks/vm/baselines/bench-quick.json).
        #[arg(long)]
        baseline: PathBuf,
        /// The run under test (e.g. checks/vm/out/bench-quick/report.json).
        #[arg(long)]
        candidate: PathBuf,
        /// A JSON policy (fields as in bench_gate::Policy; absent ones keep the defaults).
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Host side: a bench report with its per-setup results recomputed
    /// from the raw cells its boots checkpointed (results.log, and an
    /// earlier boot's bench-done.jsonl), for a report written before the
    /// results kept their samples. Refuses blocks that are not the report's.
    BenchRebuild {
        /// The report.json to rebuild.
        report: PathBuf,
        /// Files holding the run's checkpoint lines (SCX_SLO_BENCH_BLOCK).
        #[arg(long = "blocks", required = true)]
        blocks: Vec<PathBuf>,
        /// Where the rebuilt report goes (compact JSON).
        #[arg(long)]
        out: PathBuf,
    },
    /// Host side: checks an external run's --only and --workload before
    /// the VM boots, and prints the programs the guest needs, one a line.
    ExternalSelection {
        #[arg(long, default_value = "")]
        only: String,
        #[arg(long, default_value = "")]
        workload: String,
    },
    /// Host side: an external-workload report (report.json) as the
    /// markdown of docs/benchmarks-external.md, with one tail plot (SVG)
    /// per workload written next to it.
    ExternalTable {
        /// checks/vm/out/external/report.json.
        report: PathBuf,
        /// Where the markdown goes; the SVG goes beside it.
        #[arg(long)]
        out: PathBuf,
        /// The date to print (default: today, UTC).
        #[arg(long)]
        date: Option<String>,
    },
    /// Host side: extracts a report from captured guest output, prints it,
    /// optionally writes the JSON; exits 0 only if every check passed.
    Report {
        /// Captured results serial output.
        file: PathBuf,
        /// Write the report JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// The QEMU version the guest ran under, recorded in the report.
        #[arg(long)]
        qemu: Option<String>,
        /// The TCG threading the guest ran with (multi or single), recorded.
        #[arg(long)]
        tcg_thread: Option<String>,
        /// Boots it took (a bench resumed after a guest panic takes more).
        #[arg(long, default_value_t = 1)]
        boots: u32,
        /// QEMU's main loop (which raises the guest's timer interrupts) ran
        /// on SCHED_FIFO on the host: recorded, since it moves every
        /// latency the guest measures (checks/vm/run says by how much).
        #[arg(long)]
        main_loop_fifo: bool,
    },
}

fn place(p: &Placement) -> Result<Option<f64>> {
    if let Some(dir) = &p.cgroup {
        workload::join_cgroup(dir)?;
    }
    if p.wait_ext {
        return Ok(Some(workload::wait_for_ext(Duration::from_secs(5))?.as_secs_f64() * 1e3));
    }
    Ok(None)
}

fn write_out(p: &Placement, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    match &p.out {
        Some(path) => std::fs::write(path, text).with_context(|| format!("writing {}", path.display())),
        None => {
            println!("{text}");
            Ok(())
        }
    }
}

fn std_dur(d: SloDuration) -> Duration {
    Duration::from_nanos(d.as_ns())
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Probe { period, work, deadline, duration, arrival, samples, hold, serve, placement } => {
            let waited = place(&placement)?;
            if let Some(port) = serve {
                served::serve(port)?;
            }
            let mut r = workload::probe_with(std_dur(period), std_dur(work), std_dur(duration), std_dur(deadline), arrival, samples);
            if hold {
                use std::io::{Read, Write};
                println!("measured");
                std::io::stdout().flush()?;
                std::io::stdin().read_to_end(&mut Vec::new())?;
            }
            r.ext_wait_ms = waited;
            write_out(&placement, &r)
        }
        Cmd::Noisy { threads, burst, duration, placement } => {
            let waited = place(&placement)?;
            let mut r = workload::noisy(threads, std_dur(burst), std_dur(duration));
            r.ext_wait_ms = waited;
            write_out(&placement, &r)
        }
        Cmd::Forkexec { duration, placement } => {
            let waited = place(&placement)?;
            let mut r = workload::forkexec(std_dur(duration));
            r.ext_wait_ms = waited;
            write_out(&placement, &r)
        }
        Cmd::Hog { duration, placement } => {
            let waited = place(&placement)?;
            // SAFETY: sched_getscheduler(0) reads the calling thread's policy.
            let before = unsafe { libc::sched_getscheduler(0) };
            let mut r = workload::hog(std_dur(duration));
            r.ext_wait_ms = waited;
            r.policy = Some((before, unsafe { libc::sched_getscheduler(0) }));
            write_out(&placement, &r)
        }
        Cmd::Threads { workers, main, duration, placement } => {
            // The process joins its cgroup before any thread exists.
            let waited = place(&placement)?;
            let mut r = threads::run(&workers, main, std_dur(duration));
            r.ext_wait_ms = waited;
            write_out(&placement, &r)
        }
        Cmd::Idle { placement } => {
            place(&placement)?;
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        Cmd::Scenario { name, bin, cgroot, seconds, rounds, out, only, scenarios, seed, crash_after, workload } => {
            let env = harness::Env { bin, cgroot, seconds };
            // --only names schedulers for the bench and setups for the
            // external scenario; each checks its own.
            let bench_only = if name.starts_with("bench") { only.as_str() } else { "" };
            let selection = bench::Selection::parse(bench_only, &scenarios, name == "bench-quick")?;
            let report = match name.as_str() {
                "enforce" => enforce::enforce(&env)?,
                "demo" => demo::demo(&env, rounds)?,
                "control" => control::run(&env)?,
                "bench" => bench::run(&env, rounds, false, &selection, &out, Some(crash_after))?,
                "bench-quick" => bench::run(&env, rounds, true, &selection, &out, Some(crash_after))?,
                // --seconds: the time budget for random shapes; --rounds:
                // how often the exhausted-workers shape runs first (0 to replay a seed).
                "hunt" => hunt::run(&env, seed, seconds, rounds)?,
                "chaos" => chaos::run(&env)?,
                "adapt" => adapt::run(&env)?,
                "canary" => canary::run(&env)?,
                "external" => external::run(&env, rounds, false, &only, &workload)?,
                "external-quick" => external::run(&env, rounds, true, &only, &workload)?,
                // Runs as a unit under systemd in the Debian guest.
                "systemd" => systemd::run_scenario()?,
                other => anyhow::bail!("unknown scenario {other:?}; known: enforce, control, demo, bench, bench-quick, external, external-quick, hunt, systemd, chaos, adapt, canary"),
            };
            harness::emit(&report, &out)
        }
        Cmd::Report { file, json, qemu, tcg_thread, boots, main_loop_fifo } => {
            if !host_report::report(&file, json.as_deref(), qemu, tcg_thread, boots, main_loop_fifo)? {
                std::process::exit(1);
            }
            Ok(())
        }
        Cmd::Gate { baseline, candidate, policy } => {
            if host_report::gate_or_exit(&baseline, &candidate, policy.as_deref()) {
                std::process::exit(1);
            }
            Ok(())
        }
        Cmd::BenchRebuild { report, blocks, out } => {
            let rebuilt = host_report::bench_rebuild(&report, &blocks)?;
            std::fs::write(&out, serde_json::to_string(&rebuilt)?).with_context(|| format!("writing {}", out.display()))
        }
        Cmd::DbusFlood { seconds, connections, large_bytes } => chaos::flood_client(seconds, connections, large_bytes),
        Cmd::HostileMetrics { port, mode, seconds } => hostile_metrics::serve(port, &mode, seconds),
        Cmd::BenchSelection { only, scenarios, quick } => bench::Selection::parse(&only, &scenarios, quick).map(|_| ()),
        Cmd::BenchTable { report, date } => {
            let value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).with_context(|| format!("reading {}", report.display()))?)?;
            let date = date.unwrap_or_else(|| {
                std::process::Command::new("date").args(["-u", "+%Y-%m-%d"]).output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default()
            });
            print!("{}", bench_report::markdown(&value, &date));
            Ok(())
        }
        Cmd::ExternalSelection { only, workload } => {
            external::parse_only(&only)?;
            for w in external::Workload::parse_list(&workload)? {
                for p in w.programs() {
                    println!("{p}");
                }
            }
            Ok(())
        }
        Cmd::ExternalTable { report, out, date } => {
            let value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).with_context(|| format!("reading {}", report.display()))?)?;
            let date = date.unwrap_or_else(|| {
                std::process::Command::new("date").args(["-u", "+%Y-%m-%d"]).output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default()
            });
            let stem = out.file_stem().and_then(|n| n.to_str()).unwrap_or("benchmarks-external").to_string();
            for (workload, svg) in external_report::tail_svgs(&value) {
                let path = out.with_file_name(external_report::svg_name(&stem, &workload));
                std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
            }
            std::fs::write(&out, external_report::markdown(&value, &date, &stem)).with_context(|| format!("writing {}", out.display()))?;
            Ok(())
        }
        Cmd::BenchStats { blocks, trips } => {
            let r = stats_cost::run(blocks, trips)?;
            println!("{}", serde_json::to_string_pretty(&r)?);
            eprintln!(
                "probe cost per run: {:.0} ns with bpf_stats off, {:.0} ns on ({:.0} ns counted by the kernel); the statistics add {:.0} ns ({:.1} probe runs per round trip)",
                r.probe_ns_per_run_off, r.probe_ns_per_run_on, r.counted_ns_per_run, r.stats_ns_per_run, r.runs_per_trip
            );
            Ok(())
        }
        Cmd::MapMemory { cpus, targets } => {
            let list = |s: &str, what: &str| -> Result<Vec<u64>> {
                s.split(',')
                    .map(|v| {
                        // A long argument is named by its start, not echoed whole.
                        let shown: String = v.chars().take(40).collect();
                        let cut = if shown.len() < v.len() { " (cut to 40 characters)" } else { "" };
                        v.trim().parse::<u64>().with_context(|| format!("--{what}: {shown:?}{cut} is not a count"))
                    })
                    .collect()
            };
            let (cpus, targets) = (list(&cpus, "cpus")?, list(&targets, "targets")?);
            let max_cpus = u64::from(scx_slo_bpf::intf::slo_consts_SLO_MAX_CPUS);
            if let Some(c) = cpus.iter().find(|c| !(1..=max_cpus).contains(*c)) {
                anyhow::bail!("--cpus: {c} is outside the 1..={max_cpus} CPUs scx_slo supports");
            }
            if let Some(t) = targets.iter().find(|t| **t as usize > scx_slo_model::MAX_TARGETS) {
                anyhow::bail!("--targets: {t} is over the {} a config may hold", scx_slo_model::MAX_TARGETS);
            }
            print!("{}", map_memory_table(&cpus, &targets));
            Ok(())
        }
        Cmd::BenchObserve { daemon, rounds, hackbench, untargeted } => {
            let settings =
                overhead::Settings { daemon, rounds, hackbench: hackbench.split_whitespace().map(String::from).collect(), untargeted };
            let summary = overhead::run(&settings)?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
            eprintln!(
                "observe overhead: hackbench {:.3} s -> {:.3} s (ratio {:.4}); probes used {:.3}% of one CPU, {:.0} ns per run, {:.0} runs/s",
                summary.baseline_median_s,
                summary.observe_median_s,
                summary.time_ratio,
                summary.probe_cpu_share * 100.0,
                summary.probe_ns_per_run,
                summary.probe_runs_per_s
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use scx_slo_model::Duration as D;

    use super::Cli;
    use crate::spawn::Workload;
    use crate::threads::ThreadSpec;

    /// Every argument the typed builder writes is one this binary's own
    /// command line takes: the builder and the subcommands cannot drift.
    #[test]
    fn the_workload_builder_speaks_the_subcommands_language() {
        let spec = ThreadSpec::parse("1ms/50us").unwrap();
        let all = [
            Workload::probe()
                .cgroup("/sys/fs/cgroup/a")
                .period(D::from_ms(10))
                .work(D::from_us(300))
                .deadline(D::from_ms(5))
                .duration(D::from_secs(6))
                .arrival(crate::workload::Arrival::Poisson)
                .samples()
                .out("/tmp/x.json")
                .wait_ext(true),
            Workload::hog().cgroup("/sys/fs/cgroup/b").duration(D::from_secs(6)).out("/tmp/h.json").wait_ext(true),
            Workload::noisy().bursts(2, D::from_ms(1)).duration(D::from_secs(1)),
            Workload::forkexec().duration(D::from_secs(1)),
            Workload::idle().cgroup("/sys/fs/cgroup/c"),
            Workload::threads().worker(&spec).worker(&spec).main_thread(&spec).duration(D::from_secs(2)),
        ];
        for w in all {
            let argv = std::iter::once("scx-slo-lab".to_string()).chain(w.args());
            if let Err(e) = Cli::try_parse_from(argv) {
                panic!("{:?} does not parse: {e}", w.args());
            }
        }
    }
}

/// The markdown table of `scx-slo-lab map-memory`.
fn map_memory_table(cpus: &[u64], targets: &[u64]) -> String {
    use scx_slo_bpf::map_memory::{mib, rule};
    let mut out = String::from("| CPUs | targets | slots | target_stats | all maps | was (1,024 slots) |\n|---:|---:|---:|---:|---:|---:|\n");
    for &c in cpus {
        let was: u64 = rule(c, scx_slo_model::MAX_TARGETS as u64).iter().map(|(_, b)| b).sum();
        for &t in targets {
            let slots = scx_slo_model::target_capacity(t as usize) as u64;
            let now = rule(c, slots);
            let total: u64 = now.iter().map(|(_, b)| b).sum();
            out.push_str(&format!("| {c} | {t} | {slots} | {} | {} | {} |\n", mib(now[0].1), mib(total), mib(was)));
        }
    }
    out
}
