// SPDX-License-Identifier: GPL-2.0-only
//! What the external scenario's programs print, parsed: rt-tests'
//! cyclictest's histogram (`-h`) and stress-ng's `--yaml` metrics. Pure, so
//! the parsers are tested on the host with the programs' real output shapes.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The histogram's range, µs: a wakeup later than this counts as an
/// overflow, placed at the tool's reported maximum.
pub(crate) const HIST_US: usize = 30_000;

/// The tool's own measurement of one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ToolRun {
    /// Wakeups per µs of lateness, all threads (index = µs).
    pub(crate) hist: Vec<u64>,
    /// Wakeups later than the histogram's range.
    pub(crate) overflows: u64,
    /// The latest wakeup, µs.
    pub(crate) max_us: u64,
    /// Cycles measured, all threads.
    pub(crate) samples: u64,
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
    pub(crate) fn merge(&mut self, other: &ToolRun) {
        if self.hist.len() < other.hist.len() {
            self.hist.resize(other.hist.len(), 0);
        }
        for (a, b) in self.hist.iter_mut().zip(&other.hist) {
            *a += b;
        }
        self.overflows += other.overflows;
        self.max_us = self.max_us.max(other.max_us);
        self.samples += other.samples;
    }

    /// The `q` quantile in µs: the bucket that holds it; an overflow reads
    /// as the maximum.
    pub(crate) fn quantile(&self, q: f64) -> f64 {
        let total: u64 = self.hist.iter().sum::<u64>() + self.overflows;
        if total == 0 {
            return f64::NAN;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (us, n) in self.hist.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return us as f64;
            }
        }
        self.max_us as f64
    }
}

/// stress-ng's bogo ops from its `--yaml` metrics.
pub(crate) fn parse_bogo_ops(yaml: &str) -> Option<u64> {
    yaml.lines().find_map(|l| l.trim().strip_prefix("bogo-ops:")).and_then(|v| v.trim().parse().ok())
}
