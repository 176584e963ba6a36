// SPDX-License-Identifier: GPL-2.0-only
//! What the external scenario's programs print, parsed: rt-tests'
//! cyclictest's histogram (`-h`), wrk's `--latency` report, redis-benchmark's
//! latency-by-percentile report and stress-ng's `--yaml` metrics. Pure, so
//! the parsers are tested on the host with the programs' real output.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The histogram's range, µs: a wakeup later than this counts as an
/// overflow, placed at the tool's reported maximum.
pub(crate) const HIST_US: usize = 30_000;

/// The tool's own measurement of one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ToolRun {
    /// Wakeups per µs of lateness, all threads (index = µs; with a
    /// `bucket_us` wider than 1, index = µs / bucket_us).
    pub(crate) hist: Vec<u64>,
    /// The histogram's bucket width, µs, a power of two (0 reads as 1, the
    /// timer tool's): a server's latencies under the emulator reach seconds,
    /// past what 1 µs buckets hold in HIST_US of them.
    #[serde(default)]
    pub(crate) bucket_us: u64,
    /// Wakeups later than the histogram's range.
    pub(crate) overflows: u64,
    /// The latest wakeup, µs.
    pub(crate) max_us: u64,
    /// Cycles measured, all threads (a load generator: requests completed).
    pub(crate) samples: u64,
    /// A load generator's measured time, s (0: a timer tool, whose rate is
    /// its cycles).
    #[serde(default)]
    pub(crate) seconds: f64,
    /// The highest quantile the tool resolves below its maximum (wrk prints
    /// no percentile past 99%); None: the histogram is the tool's own.
    #[serde(default)]
    pub(crate) resolved_q: Option<f64>,
    /// Requests the load generator counted as failed (socket errors,
    /// timeouts, non-2xx answers).
    #[serde(default)]
    pub(crate) errors: u64,
}

/// Parses cyclictest's `-h` output: one line per µs (`000123 000004 000001`,
/// the count per thread), then `# Total:`, `# Max Latencies:` and
/// `# Histogram Overflows:` lines with one number per thread.
pub(crate) fn parse_cyclictest(text: &str) -> Result<ToolRun> {
    let mut run = ToolRun::default();
    let numbers = |rest: &str| rest.split_whitespace().map(|n| n.parse::<u64>()).collect::<Result<Vec<_>, _>>();
    let mut saw_total = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# Total:") {
            run.samples = numbers(rest).context("cyclictest's Total line")?.iter().sum();
            saw_total = true;
        } else if let Some(rest) = line.strip_prefix("# Max Latencies:") {
            run.max_us = numbers(rest).context("cyclictest's Max line")?.into_iter().max().unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix("# Histogram Overflows:") {
            run.overflows = numbers(rest).context("cyclictest's Overflows line")?.iter().sum();
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let fields = numbers(line).with_context(|| format!("cyclictest histogram line {:?}", line.chars().take(40).collect::<String>()))?;
            let (&us, counts) = fields.split_first().context("an empty histogram line")?;
            let us = usize::try_from(us).ok().filter(|u| *u < HIST_US).context("a histogram bucket past the range asked for")?;
            if run.hist.len() <= us {
                run.hist.resize(us + 1, 0);
            }
            run.hist[us] += counts.iter().sum::<u64>();
        }
    }
    anyhow::ensure!(saw_total, "cyclictest printed no '# Total:' line (did it run?)");
    Ok(run)
}

impl ToolRun {
    /// The bucket width, µs.
    pub(crate) fn width(&self) -> u64 {
        self.bucket_us.max(1)
    }

    /// The histogram in buckets of `width` µs (a power of two no finer than
    /// the current one).
    fn rebucket(&mut self, width: u64) {
        let factor = (width / self.width()).max(1) as usize;
        if factor > 1 {
            let mut hist = vec![0; self.hist.len().div_ceil(factor)];
            for (i, n) in self.hist.iter().enumerate() {
                hist[i / factor] += n;
            }
            self.hist = hist;
        }
        self.bucket_us = width;
    }

    /// Adds `other`'s measurements; the finer histogram is coarsened to the
    /// other's bucket width.
    pub(crate) fn merge(&mut self, other: &ToolRun) {
        let width = self.width().max(other.width());
        self.rebucket(width);
        let mut other = other.clone();
        other.rebucket(width);
        if self.hist.len() < other.hist.len() {
            self.hist.resize(other.hist.len(), 0);
        }
        for (a, b) in self.hist.iter_mut().zip(&other.hist) {
            *a += b;
        }
        self.overflows += other.overflows;
        self.max_us = self.max_us.max(other.max_us);
        self.samples += other.samples;
        self.seconds += other.seconds;
        self.errors += other.errors;
        self.resolved_q = match (self.resolved_q, other.resolved_q) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    /// Requests per second for a load generator; None for a timer tool.
    pub(crate) fn per_s(&self) -> Option<f64> {
        (self.seconds > 0.0).then(|| self.samples as f64 / self.seconds)
    }

    /// The `q` quantile in µs: the bucket that holds it (its lower edge);
    /// an overflow reads as the maximum. NaN past what the tool resolves (wrk's p99.9).
    pub(crate) fn quantile(&self, q: f64) -> f64 {
        let total: u64 = self.hist.iter().sum::<u64>() + self.overflows;
        if total == 0 || self.resolved_q.is_some_and(|r| q > r + 1e-9) {
            return f64::NAN;
        }
        // The tiny step down keeps 0.99 * 100 from rounding up to 100.
        let rank = ((q * total as f64 - 1e-6).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, n) in self.hist.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return (i as u64 * self.width()) as f64;
            }
        }
        self.max_us as f64
    }
}

/// stress-ng's bogo ops from its `--yaml` metrics.
pub(crate) fn parse_bogo_ops(yaml: &str) -> Option<u64> {
    yaml.lines().find_map(|l| l.trim().strip_prefix("bogo-ops:")).and_then(|v| v.trim().parse().ok())
}

impl ToolRun {
    /// A histogram from a tool's percentile points: `points` are (the share
    /// of requests at or under, µs), rising; every request between two
    /// points is placed at the upper one, those past the last point at
    /// `max_us`. Buckets are as fine as HIST_US of them reaching `max_us`
    /// allow.
    fn from_points(points: &[(f64, u64)], total: u64, max_us: u64) -> ToolRun {
        let width = (max_us / HIST_US as u64 + 1).next_power_of_two();
        let mut run = ToolRun { max_us, samples: total, bucket_us: width, ..ToolRun::default() };
        let mut below = 0u64;
        let place = |us: u64, n: u64, run: &mut ToolRun| match usize::try_from(us / width).ok().filter(|u| *u < HIST_US) {
            Some(u) => {
                if run.hist.len() <= u {
                    run.hist.resize(u + 1, 0);
                }
                run.hist[u] += n;
            }
            None => run.overflows += n,
        };
        for &(share, us) in points {
            let upto = ((share * total as f64 - 1e-6).ceil().max(0.0) as u64).min(total);
            if upto > below {
                place(us, upto - below, &mut run);
                below = upto;
            }
        }
        if total > below {
            place(max_us, total - below, &mut run);
        }
        run
    }
}

/// A duration as wrk prints it (`266.00us`, `1.32ms`, `2.00s`), in µs.
fn wrk_us(text: &str) -> Option<f64> {
    let t = text.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| v * scale)
}

/// Parses wrk's `--latency` report: the `Latency Distribution` lines
/// (50/75/90/99%), the maximum from the `Latency` thread-stats line, the
/// `N requests in T s` line, and the `Socket errors` and `Non-2xx or 3xx
/// responses` lines when wrk prints them. wrk resolves nothing between
/// p99 and its maximum, so p99.9 is unknown (NaN).
pub(crate) fn parse_wrk(text: &str) -> Result<ToolRun> {
    let mut points = Vec::new();
    let (mut max_us, mut done, mut errors, mut per_s) = (None, None, 0u64, None);
    let mut in_dist = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with("Latency Distribution") {
            in_dist = true;
        } else if let Some(rest) = line.strip_prefix("Latency ") {
            // avg, stdev, max, +/- stdev
            max_us = rest.split_whitespace().nth(2).and_then(wrk_us);
        } else if in_dist && line.contains('%') {
            let (pct, value) = line.split_once('%').context("a wrk percentile line")?;
            let pct: f64 = pct.trim().parse().with_context(|| format!("wrk percentile {:?}", pct.chars().take(20).collect::<String>()))?;
            let us = wrk_us(value).with_context(|| format!("wrk latency {:?}", value.trim().chars().take(20).collect::<String>()))?;
            points.push((pct / 100.0, us.round() as u64));
        } else if let Some((n, rest)) = line.split_once(" requests in ") {
            in_dist = false;
            let secs = rest.split(',').next().and_then(wrk_us).context("wrk's run time")? / 1e6;
            done = Some((n.trim().parse::<u64>().context("wrk's request count")?, secs));
        } else if let Some(rest) = line.strip_prefix("Requests/sec:") {
            per_s = rest.trim().parse::<f64>().ok().filter(|r| *r > 0.0);
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            errors += rest.split(',').filter_map(|f| f.split_whitespace().last()?.parse::<u64>().ok()).sum::<u64>();
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            errors += rest.trim().parse::<u64>().context("wrk's non-2xx count")?;
        } else {
            in_dist = in_dist && !line.is_empty();
        }
    }
    let (total, seconds) = done.context("wrk printed no 'requests in' line (did it run?)")?;
    anyhow::ensure!(!points.is_empty(), "wrk printed no latency distribution (run it with --latency)");
    let max_us = max_us.context("wrk printed no Latency line")?.round() as u64;
    let mut run = ToolRun::from_points(&points, total, max_us);
    // wrk's rate divides by its exact run time; the printed one is rounded.
    run.seconds = per_s.map_or(seconds, |r| total as f64 / r);
    run.errors = errors;
    run.resolved_q = points.last().map(|p| p.0);
    Ok(run)
}

/// Parses redis-benchmark's default report (7.x): per test (`====== GET
/// ======`), `N requests completed in T seconds` and the `Latency by
/// percentile distribution` lines (`99.902% <= 6.175 milliseconds
/// (cumulative count 19981)`), a histogram down to the single slowest
/// request. The tests of one run are pooled.
pub(crate) fn parse_redis_benchmark(text: &str) -> Result<ToolRun> {
    /// The test being read: (cumulative count, µs) per percentile line,
    /// its requests and its time, s.
    struct Test {
        counts: Vec<(u64, u64)>,
        total: u64,
        secs: f64,
    }
    let mut all = ToolRun::default();
    let mut test: Option<Test> = None;
    let mut in_dist = false;
    let finish = |test: Option<Test>, all: &mut ToolRun| {
        let Some(Test { counts, total, secs }) = test else { return };
        let max_us = counts.last().map_or(0, |c| c.1);
        let points: Vec<(f64, u64)> = counts.iter().map(|&(c, us)| (c as f64 / total.max(1) as f64, us)).collect();
        let mut run = ToolRun::from_points(&points, total, max_us);
        run.seconds = secs;
        all.merge(&run);
    };
    // Progress lines end in a carriage return, not a newline.
    for line in text.split(['\n', '\r']).map(str::trim) {
        if line.starts_with("======") && line.ends_with("======") {
            finish(test.take(), &mut all);
            in_dist = false;
        } else if let Some((n, rest)) = line.split_once(" requests completed in ") {
            let secs: f64 = rest.trim_end_matches("seconds").trim().parse().context("redis-benchmark's run time")?;
            test = Some(Test { counts: Vec::new(), total: n.trim().parse().context("redis-benchmark's request count")?, secs });
        } else if line.starts_with("Latency by percentile distribution") {
            in_dist = true;
        } else if in_dist && line.contains("cumulative count") {
            let ms: f64 = line.split("<=").nth(1).and_then(|r| r.split_whitespace().next()).and_then(|v| v.parse().ok()).context("a redis-benchmark percentile line")?;
            let count: u64 = line.rsplit("cumulative count").next().map(|r| r.trim().trim_end_matches(')')).and_then(|v| v.parse().ok()).context("a redis-benchmark cumulative count")?;
            let t = test.as_mut().context("a percentile line before 'requests completed'")?;
            t.counts.push((count, (ms * 1e3).round() as u64));
        } else if !line.is_empty() && !line.contains('%') {
            in_dist = false;
        }
    }
    finish(test.take(), &mut all);
    anyhow::ensure!(all.samples > 0, "redis-benchmark printed no latency distribution (did it run?)");
    Ok(all)
}
