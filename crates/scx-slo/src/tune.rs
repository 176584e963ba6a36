// SPDX-License-Identifier: GPL-2.0-only
//! `scx-slo tune UNIT`: profile a running unit and recommend its latency
//! budget (docs/tuning.md). Read-only in every mode and on any kernel with cgroup
//! v2: it samples the unit's cgroup (`cpu.stat`, `cpu.pressure`) once per
//! period for `--duration`, optionally scrapes the service's own latency
//! histogram (Prometheus text format, read as it streams in, with a
//! deadline for each scrape: [`SCRAPE_TIMEOUTS`]), and
//! prints the budget with its reasoning, as a `services.scxSlo.targets`
//! snippet and as JSON, checked for admission against the rest of the
//! config. It changes nothing: applying it is `scx-slo set-budget` or the
//! NixOS config.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use scx_slo_api::exit::cli;
use scx_slo_api::scrape::{histogram_p99, http_histogram, Timeouts};
use scx_slo_model::{limits, Duration as D};
use serde::Serialize;
use serde_json::{json, Value};

/// Longest profile: a day of samples.
const MAX_DURATION: D = D::from_secs(86_400);
/// Most per-period samples kept (10 minutes of 1 ms periods is 600,000).
const MAX_SAMPLES: u64 = 10_000_000;
/// Shortest sampling period: below a millisecond the sampler's own wakeups
/// are the noise.
const MIN_TUNE_PERIOD: D = D::from_ms(1);
/// Each `--scrape` reading: 5 s per read, 10 s for the whole request, so
/// a run takes at most `--duration` plus 20 s whatever the server does.
pub const SCRAPE_TIMEOUTS: Timeouts = Timeouts { io: Duration::from_secs(5), total: Duration::from_secs(10) };
/// Budgets are rounded up to this.
const ROUND_NS: u64 = 10_000;

/// What `tune` was asked.
#[derive(Debug)]
pub struct Args {
    /// The target's key, e.g. `api.service`.
    pub unit: String,
    /// How long to sample.
    pub duration: D,
    /// The budget period, and the sampling period.
    pub period: D,
    /// Factor over the p99 CPU per period.
    pub headroom: f64,
    /// The config the recommendation is admitted against.
    pub config: PathBuf,
    /// The unit's cgroup, relative to `cgroup_root` (default: looked up).
    pub cgroup: Option<String>,
    /// The cgroup2 mount point.
    pub cgroup_root: PathBuf,
    /// A service's Prometheus endpoint (`http://host:port/path`).
    pub scrape: Option<String>,
    /// The histogram to read there (base name, e.g. `http_request_duration_seconds`).
    pub histogram: Option<String>,
    /// CPUs for admission when `cpu_capacity` is `auto` (default: this host's).
    pub cpus: Option<u32>,
    /// JSON instead of text.
    pub json: bool,
}

/// One cgroup reading.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Reading {
    usage_us: u64,
    nr_throttled: u64,
    throttled_us: u64,
    pressure_some_us: u64,
}

fn field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().parse().ok()))
}

fn read_cgroup(dir: &Path) -> Result<Reading, String> {
    let stat = std::fs::read_to_string(dir.join("cpu.stat")).map_err(|e| format!("{}: {e}", dir.join("cpu.stat").display()))?;
    let usage_us = field(&stat, "usage_usec ").ok_or_else(|| format!("{}: no usage_usec", dir.join("cpu.stat").display()))?;
    let pressure = std::fs::read_to_string(dir.join("cpu.pressure")).unwrap_or_default();
    let pressure_some_us = pressure
        .lines()
        .find(|l| l.starts_with("some "))
        .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("total=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok(Reading {
        usage_us,
        nr_throttled: field(&stat, "nr_throttled ").unwrap_or(0),
        throttled_us: field(&stat, "throttled_usec ").unwrap_or(0),
        pressure_some_us,
    })
}

/// `(steal, total)` jiffies from /proc/stat's `cpu` line.
fn steal_jiffies() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    Some((v.get(7).copied().unwrap_or(0), v.iter().take(8).sum()))
}

/// The value at quantile `q` of sorted samples (nearest rank); 0 for none.
fn quantile(sorted: &[u64], q: f64) -> u64 {
    scx_slo_model::stats::nearest_rank(sorted, q).unwrap_or(0)
}

/// The profile of one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Profile {
    /// Periods sampled.
    pub periods: u64,
    /// CPU per period, µs: median.
    pub cpu_p50_us: u64,
    /// 99th percentile.
    pub cpu_p99_us: u64,
    /// Largest.
    pub cpu_max_us: u64,
    /// Share of periods in which the unit ran at all.
    pub busy_ratio: f64,
    /// CPU used over the whole run, in CPUs.
    pub mean_cpus: f64,
    /// CFS bandwidth periods throttled during the run.
    pub throttled_periods: u64,
    /// Time throttled, µs.
    pub throttled_us: u64,
    /// cpu.pressure `some` during the run, µs (time some task of the unit
    /// waited for a CPU).
    pub pressure_some_us: u64,
    /// Hypervisor steal over the run, as a share of all CPU time.
    pub steal_ratio: f64,
    /// Periods whose reading was over what the host's CPUs can run in a
    /// period (cpu.stat accounts a running task's time in lumps), cut to
    /// that bound.
    #[serde(default)]
    pub clamped_periods: u64,
}

/// One period's reading (µs) cut to what the CPUs can run in a period;
/// whether it was cut.
fn clamp_to_capacity(used_us: f64, capacity_us: f64) -> (u64, bool) {
    if used_us > capacity_us {
        (capacity_us.round() as u64, true)
    } else {
        (used_us.round() as u64, false)
    }
}

/// Per-period CPU (µs, scaled to exactly one period when the sampler woke
/// late) into a profile.
fn profile(mut per_period_us: Vec<u64>, wall: Duration, first: Reading, last: Reading) -> Profile {
    per_period_us.sort_unstable();
    let busy = per_period_us.iter().filter(|v| **v > 0).count();
    Profile {
        periods: per_period_us.len() as u64,
        cpu_p50_us: quantile(&per_period_us, 0.5),
        cpu_p99_us: quantile(&per_period_us, 0.99),
        cpu_max_us: per_period_us.last().copied().unwrap_or(0),
        busy_ratio: busy as f64 / per_period_us.len().max(1) as f64,
        mean_cpus: last.usage_us.saturating_sub(first.usage_us) as f64 / (wall.as_secs_f64() * 1e6).max(1.0),
        throttled_periods: last.nr_throttled.saturating_sub(first.nr_throttled),
        throttled_us: last.throttled_us.saturating_sub(first.throttled_us),
        pressure_some_us: last.pressure_some_us.saturating_sub(first.pressure_some_us),
        steal_ratio: 0.0,
        clamped_periods: 0,
    }
}

/// The recommended budget.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Recommendation {
    /// Runtime per period.
    pub runtime: String,
    /// Period.
    pub period: String,
    /// Relative deadline.
    pub deadline: String,
    /// Priority.
    pub priority: u16,
    /// Why, in words.
    pub reasoning: Vec<String>,
}

/// The budget for a profile: the p99 CPU per period times `headroom`,
/// rounded up to 10 µs, at least the smallest runtime and at most the
/// period; the deadline and priority the config gives the target (else the
/// period and the default priority), the deadline raised to the runtime if
/// it was shorter (runtime <= deadline <= period).
pub fn recommend(p: &Profile, period: D, headroom: f64, existing: Option<&Value>) -> Recommendation {
    let mut reasoning = Vec::new();
    let raw_ns = (p.cpu_p99_us as f64 * 1000.0 * headroom).ceil() as u64;
    let rounded = raw_ns.div_ceil(ROUND_NS) * ROUND_NS;
    let runtime_ns = rounded.max(limits::MIN_RUNTIME.as_ns()).min(period.as_ns());
    reasoning.push(format!(
        "p99 CPU per {period} period {} over {} periods; headroom {headroom}x -> runtime {}",
        D::from_us(p.cpu_p99_us),
        p.periods,
        D::from_ns(runtime_ns)
    ));
    if runtime_ns == period.as_ns() && rounded > period.as_ns() {
        reasoning.push(format!("capped at the period: the unit needs about a whole CPU or more per {period}; a budget cannot hold it"));
    }
    if p.throttled_periods > 0 {
        reasoning.push(format!(
            "the unit was throttled by cpu.max in {} periods ({} in all): its usage is capped, the real need may be higher",
            p.throttled_periods,
            D::from_us(p.throttled_us)
        ));
    }
    if p.clamped_periods > 0 {
        reasoning.push(format!(
            "{} of {} periods read more CPU time than the host's CPUs can run in a period (cpu.stat accounts in lumps) and were cut to that bound: at periods this short the profile overstates the need; a longer --period smooths it",
            p.clamped_periods, p.periods
        ));
    }
    if p.steal_ratio > 0.05 {
        reasoning.push(format!("{:.1}% of CPU time was stolen by the hypervisor: the profile may understate the need", p.steal_ratio * 100.0));
    }
    let config_deadline = existing.and_then(|t| t.get("deadline")?.as_str()?.parse::<D>().ok());
    let deadline_ns = config_deadline.map_or(period.as_ns(), |d| d.as_ns()).clamp(runtime_ns, period.as_ns());
    match config_deadline {
        Some(d) if d.as_ns() == deadline_ns => reasoning.push(format!("deadline {d} kept from the config")),
        Some(d) => reasoning.push(format!("deadline {d} from the config moved to {} to keep runtime <= deadline <= period", D::from_ns(deadline_ns))),
        None => reasoning.push(format!("deadline: the period ({period}), as the target has none")),
    }
    let priority = existing.and_then(|t| t.get("priority")?.as_u64()).map_or(scx_slo_model::defaults::LATENCY_PRIORITY, |p| p as u16);
    Recommendation { runtime: D::from_ns(runtime_ns).to_string(), period: period.to_string(), deadline: D::from_ns(deadline_ns).to_string(), priority, reasoning }
}

/// The service histogram's summary over the run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServiceLatency {
    /// The histogram.
    pub histogram: String,
    /// Requests observed during the run.
    pub requests: u64,
    /// p99 over the run, in seconds (interpolated inside its bucket);
    /// `None` without requests, infinite past the last finite bucket.
    pub p99_seconds: Option<f64>,
}

/// The unit's cgroup directory: `--cgroup`, the config's `cgroup`, a
/// slice's fixed path, or a search for a directory named after the unit
/// (services live under their slice; bounded to 5 levels).
fn find_cgroup(root: &Path, unit: &str, explicit: Option<&str>, target: Option<&Value>) -> Result<PathBuf, String> {
    let given = explicit.map(str::to_string).or_else(|| target.and_then(|t| t.get("cgroup")?.as_str().map(str::to_string)));
    let given = given.or_else(|| unit.starts_with('/').then(|| unit.to_string())).or_else(|| scx_slo_model::validate::slice_cgroup(unit));
    if let Some(rel) = given {
        if rel.split('/').any(|c| c == "..") {
            return Err(format!("{rel:?}: .. is not allowed in a cgroup path"));
        }
        let dir = root.join(rel.trim_start_matches('/'));
        return if dir.join("cpu.stat").is_file() { Ok(dir) } else { Err(format!("{}: no such cgroup (no cpu.stat)", dir.display())) };
    }
    let mut frontier = vec![root.to_path_buf()];
    for _ in 0..5 {
        let mut next = Vec::new();
        for dir in frontier {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for e in entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
                if e.file_name() == unit {
                    return Ok(e.path());
                }
                next.push(e.path());
            }
        }
        if next.len() > 100_000 {
            break;
        }
        frontier = next;
    }
    Err(format!("no cgroup named {unit} under {} (is the unit running? or pass --cgroup)", root.display()))
}

/// The admission check of the recommendation against the config: the
/// target's budget (and deadline) replaced, or the target added.
fn admit(config_text: &str, unit: &str, rec: &Recommendation, cpus: Option<u32>) -> Result<String, String> {
    let mut config: Value = serde_json::from_str(config_text).map_err(|e| format!("the config is not JSON: {e}"))?;
    let targets = config.get_mut("targets").and_then(Value::as_object_mut).ok_or("the config has no targets object")?;
    let t = targets.entry(unit.to_string()).or_insert_with(|| json!({ "class": "latency", "priority": rec.priority }));
    t["budget"] = json!({ "runtime": rec.runtime, "period": rec.period });
    t["deadline"] = json!(rec.deadline);
    let checked = scx_slo_model::load_str(&config.to_string(), cpus).map_err(|e| e.to_string())?;
    let report = scx_slo_model::admission::check(&checked, cpus).map_err(|p| p.to_string())?;
    Ok(match report.limit_cpus {
        Some(limit) => format!("latency budgets reserve {:.3} of {limit:.3} admitted CPUs: {:.3} left", report.reserved_cpus, limit - report.reserved_cpus),
        None => format!("latency budgets reserve {:.3} CPUs (capacity auto: the daemon admits against its host's CPUs)", report.reserved_cpus),
    })
}

fn online_cpus() -> Option<u32> {
    std::thread::available_parallelism().ok().and_then(|n| u32::try_from(n.get()).ok())
}

/// The Nix snippet for the recommendation.
pub fn nix_snippet(unit: &str, rec: &Recommendation) -> String {
    format!(
        "services.scxSlo.targets.\"{unit}\" = {{\n  class = \"latency\";\n  budget = {{ runtime = \"{}\"; period = \"{}\"; }};\n  deadline = \"{}\";\n  priority = {};\n}};",
        rec.runtime, rec.period, rec.deadline, rec.priority
    )
}

/// Runs `tune`; the CLI's exit code.
pub fn run(args: &Args) -> u8 {
    match tune(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("scx-slo tune: {e}");
            cli::USAGE
        }
    }
}

fn tune(a: &Args) -> Result<u8, String> {
    if a.duration < a.period || a.duration > MAX_DURATION {
        return Err(format!("--duration {} must be at least the period {} and at most {MAX_DURATION}", a.duration, a.period));
    }
    if a.period < MIN_TUNE_PERIOD || a.period > limits::MAX_PERIOD {
        return Err(format!("--period {} is outside {MIN_TUNE_PERIOD}..={}", a.period, limits::MAX_PERIOD));
    }
    if !(a.headroom >= 1.0 && a.headroom <= 10.0) {
        return Err(format!("--headroom {} is outside [1, 10]", a.headroom));
    }
    if a.duration.as_ns() / a.period.as_ns() > MAX_SAMPLES {
        return Err(format!("{} periods of {} is over {MAX_SAMPLES} samples; lengthen the period or shorten the run", a.duration.as_ns() / a.period.as_ns(), a.period));
    }
    if a.scrape.is_some() != a.histogram.is_some() {
        return Err("--scrape and --histogram go together".into());
    }
    let config_text = scx_slo_model::read_config_text(&a.config).map_err(|e| e.to_string())?;
    let config_json: Value = serde_json::from_str(&config_text).unwrap_or(Value::Null);
    let existing = config_json.get("targets").and_then(|t| t.get(&a.unit));
    if existing.and_then(|t| t.get("class")).and_then(Value::as_str) == Some("batch") {
        return Err(format!("{} is a batch target in {}: only latency targets have a budget", a.unit, a.config.display()));
    }
    let dir = find_cgroup(&a.cgroup_root, &a.unit, a.cgroup.as_deref(), existing)?;
    let scrape_before = match (&a.scrape, &a.histogram) {
        (Some(url), Some(h)) => Some(http_histogram(url, h, SCRAPE_TIMEOUTS).map_err(|e| e.to_string())?),
        _ => None,
    };

    let period = Duration::from_nanos(a.period.as_ns());
    let first = read_cgroup(&dir)?;
    let steal_first = steal_jiffies();
    let start = Instant::now();
    let end = start + Duration::from_nanos(a.duration.as_ns());
    let mut samples = Vec::with_capacity((a.duration.as_ns() / a.period.as_ns()).min(1 << 20) as usize);
    let (mut prev, mut prev_t, mut next) = (first, start, start + period);
    // No cgroup runs more than every CPU for the whole period.
    let capacity_us = f64::from(online_cpus().unwrap_or(1).max(1)) * period.as_secs_f64() * 1e6;
    let mut clamped_periods = 0u64;
    while next <= end {
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let now = Instant::now();
        let r = read_cgroup(&dir)?;
        let elapsed = now.duration_since(prev_t).as_secs_f64();
        // A late wakeup covers more than one period: scale to one.
        let used = r.usage_us.saturating_sub(prev.usage_us) as f64 * (period.as_secs_f64() / elapsed.max(period.as_secs_f64()));
        let (used, clamped) = clamp_to_capacity(used, capacity_us);
        clamped_periods += u64::from(clamped);
        samples.push(used);
        (prev, prev_t) = (r, now);
        next += period;
        if next < now {
            next = now + period;
        }
    }
    let mut p = profile(samples, start.elapsed(), first, prev);
    p.clamped_periods = clamped_periods;
    if let (Some((s0, t0)), Some((s1, t1))) = (steal_first, steal_jiffies()) {
        p.steal_ratio = s1.saturating_sub(s0) as f64 / t1.saturating_sub(t0).max(1) as f64;
    }
    let service = match (&a.scrape, &a.histogram, &scrape_before) {
        (Some(url), Some(h), Some(before)) => {
            let after = http_histogram(url, h, SCRAPE_TIMEOUTS).map_err(|e| e.to_string())?;
            let (requests, p99_seconds) = histogram_p99(before, &after);
            Some(ServiceLatency { histogram: h.clone(), requests, p99_seconds })
        }
        _ => None,
    };
    let mut rec = recommend(&p, a.period, a.headroom, existing);
    if let Some(s) = &service {
        let objective = existing.and_then(|t| t.pointer("/slo/latency/p99")?.as_str()?.parse::<D>().ok());
        rec.reasoning.push(match (s.p99_seconds, objective) {
            (None, _) => format!("{}: no requests during the run", s.histogram),
            (Some(p99), Some(o)) => format!(
                "{}: p99 {} over {} requests, objective {o}: {}",
                s.histogram,
                fmt_seconds(p99),
                s.requests,
                if p99 * 1e9 <= o.as_ns() as f64 { "met" } else { "NOT met: the service's own latency needs more than CPU time (or more headroom)" }
            ),
            (Some(p99), None) => format!("{}: p99 {} over {} requests", s.histogram, fmt_seconds(p99), s.requests),
        });
    }
    let admission = admit(&config_text, &a.unit, &rec, a.cpus.or_else(online_cpus));
    let code = if admission.is_ok() { cli::OK } else { cli::REFUSED };
    if a.json {
        let doc = json!({
            "unit": a.unit, "cgroup": dir.display().to_string(), "duration": a.duration.to_string(),
            "profile": p, "service": service, "recommendation": rec,
            "admission": match &admission { Ok(m) => json!({ "ok": true, "message": m }), Err(m) => json!({ "ok": false, "message": m }) },
            "nix": nix_snippet(&a.unit, &rec),
            "applied": false,
        });
        outln!("{doc:#}");
        return Ok(code);
    }
    outln!("{} ({}), {} in {} periods of {}:", a.unit, dir.display(), a.duration, p.periods, a.period);
    outln!(
        "  CPU per period: p50 {}, p99 {}, max {}; ran in {:.0}% of periods; {:.3} CPUs on average",
        D::from_us(p.cpu_p50_us),
        D::from_us(p.cpu_p99_us),
        D::from_us(p.cpu_max_us),
        p.busy_ratio * 100.0,
        p.mean_cpus
    );
    outln!(
        "  waiting for a CPU (cpu.pressure some) {}; throttled {} periods; steal {:.1}%",
        D::from_us(p.pressure_some_us),
        p.throttled_periods,
        p.steal_ratio * 100.0
    );
    outln!("recommendation: runtime {} per {}, deadline {}, priority {}", rec.runtime, rec.period, rec.deadline, rec.priority);
    for r in &rec.reasoning {
        outln!("  - {r}");
    }
    match &admission {
        Ok(m) => outln!("  admission ({}): {m}", a.config.display()),
        Err(m) => outln!("  admission ({}): REFUSED: {m}", a.config.display()),
    }
    outln!("{}", nix_snippet(&a.unit, &rec));
    outln!("(nothing was changed; apply with `scx-slo set-budget {} --runtime {} --period {}` or in the NixOS config)", a.unit, rec.runtime, rec.period);
    Ok(code)
}

fn fmt_seconds(s: f64) -> String {
    if s.is_infinite() {
        "past the last bucket".into()
    } else {
        D::from_ns((s * 1e9).round() as u64).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prof(p99_us: u64) -> Profile {
        Profile { periods: 6000, cpu_p50_us: p99_us / 3, cpu_p99_us: p99_us, cpu_max_us: p99_us * 2, ..Default::default() }
    }

    #[test]
    fn a_reading_over_the_cpus_capacity_is_cut_to_it_and_said() {
        assert_eq!(clamp_to_capacity(4377.0, 2000.0), (2000, true));
        assert_eq!(clamp_to_capacity(1999.6, 2000.0), (2000, false));
        assert_eq!(clamp_to_capacity(120.0, 2000.0), (120, false));
        let p = Profile { clamped_periods: 12, periods: 1972, ..prof(2000) };
        let rec = recommend(&p, D::from_ms(1), 1.3, None);
        assert!(rec.reasoning.iter().any(|r| r.starts_with("12 of 1972 periods read more CPU time")), "{:?}", rec.reasoning);
        let rec = recommend(&prof(2000), D::from_ms(1), 1.3, None);
        assert!(!rec.reasoning.iter().any(|r| r.contains("periods read more CPU time")), "{:?}", rec.reasoning);
    }

    #[test]
    fn the_budget_is_the_p99_with_headroom_rounded_up() {
        let r = recommend(&prof(1400), D::from_ms(10), 1.3, None);
        assert_eq!((r.runtime.as_str(), r.period.as_str(), r.deadline.as_str(), r.priority), ("1820us", "10ms", "10ms", 500));
        assert!(r.reasoning[0].contains("p99 CPU per 10ms period 1400us over 6000 periods; headroom 1.3x -> runtime 1820us"), "{:?}", r.reasoning);
        // The config's deadline and priority are kept.
        let t = json!({ "class": "latency", "deadline": "5ms", "priority": 800 });
        let r = recommend(&prof(1400), D::from_ms(10), 1.3, Some(&t));
        assert_eq!((r.deadline.as_str(), r.priority), ("5ms", 800));
        // A deadline shorter than the runtime moves up to it.
        let t = json!({ "deadline": "1ms" });
        let r = recommend(&prof(1400), D::from_ms(10), 1.3, Some(&t));
        assert_eq!(r.deadline, "1820us");
        // Never above the period, never below the smallest runtime.
        assert_eq!(recommend(&prof(20_000), D::from_ms(10), 1.3, None).runtime, "10ms");
        assert_eq!(recommend(&prof(0), D::from_ms(10), 1.3, None).runtime, "10us");
    }

    #[test]
    fn the_profile_takes_quantiles_of_cpu_per_period() {
        let samples: Vec<u64> = (0..1000).map(|i| if i < 990 { 100 } else { 2000 }).collect();
        let first = Reading::default();
        let last = Reading { usage_us: 119_000, nr_throttled: 2, throttled_us: 500, pressure_some_us: 70 };
        let p = profile(samples, Duration::from_secs(10), first, last);
        assert_eq!((p.periods, p.cpu_p50_us, p.cpu_p99_us, p.cpu_max_us), (1000, 100, 100, 2000));
        assert_eq!((p.throttled_periods, p.throttled_us, p.pressure_some_us), (2, 500, 70));
        assert!((p.mean_cpus - 0.0119).abs() < 1e-9);
    }
}
