// SPDX-License-Identifier: GPL-2.0-only
//! A service's own latency histogram: one bounded HTTP GET of its
//! Prometheus endpoint, the histogram's cumulative buckets read from the
//! exposition as it streams in, and what the requests between two scrapes
//! say: how many, their p99, and samples for the canary's tests. `scx-slo
//! tune --scrape` and the daemon's scraper (targets' `scrape` blocks) share
//! it.
//!
//! Bounded by time, bytes, samples, label sets and bounds (see
//! [`exposition::LIMITS`] and [`fetch::Timeouts`]); the differencing is
//! linear in the bounds, which the reader caps.

mod error;
pub mod exposition;
pub mod fetch;

use scx_slo_model::histogram::{self, Interpolation};

pub use error::ScrapeError;
pub use exposition::{read_histogram, Buckets, Limits, LIMITS};
pub use fetch::{get_histogram, http_histogram, Timeouts};

/// Largest scrape body read (a service's /metrics, not a dump).
pub const MAX_SCRAPE_BYTES: u64 = LIMITS.bytes;

/// The cumulative buckets of `histogram` in a scrape's text, summed over
/// label sets (bounds that only some label sets have are summed as they
/// come), within [`LIMITS`].
pub fn histogram_buckets(text: &str, histogram: &str) -> Result<Buckets, ScrapeError> {
    read_histogram(&mut text.as_bytes(), histogram, &LIMITS)
}

/// The requests between two scrapes, per bucket (`le`, requests in
/// `(previous le, le]`), or `Err` when the counts went down: the service
/// restarted (its counters started over) and the difference means nothing.
/// Both readings are sorted by `le`, so one walk pairs their bounds.
pub fn interval_counts(before: &[(f64, f64)], after: &[(f64, f64)]) -> Result<Vec<(f64, f64)>, ScrapeError> {
    let total = |v: &[(f64, f64)]| v.last().map_or(0.0, |b| b.1);
    if total(after) < total(before) {
        return Err(ScrapeError::Restarted { before: total(before), after: total(after) });
    }
    let mut out = Vec::with_capacity(after.len());
    let mut below = 0.0;
    let mut j = 0;
    for (le, cum) in after {
        while j < before.len() && before[j].0 < *le {
            j += 1;
        }
        let earlier = before.get(j).filter(|b| b.0 == *le).map_or(0.0, |b| b.1);
        let cum = (cum - earlier).max(below);
        out.push((*le, cum - below));
        below = cum;
    }
    Ok(out)
}

/// The p99 of per-bucket counts, in seconds, interpolated linearly inside
/// its bucket (the first from 0); infinite past the last finite bound;
/// `None` without requests.
pub fn counts_p99(counts: &[(f64, f64)]) -> Option<f64> {
    let total: f64 = counts.iter().map(|c| c.1).sum();
    if total < 1.0 {
        return None;
    }
    Some(histogram::quantile(counts.iter().copied(), 0.99, Interpolation::Linear).unwrap_or(f64::INFINITY))
}

/// The number of requests between two scrapes and their p99 in seconds
/// (`None` without requests or across a restart).
pub fn histogram_p99(before: &[(f64, f64)], after: &[(f64, f64)]) -> (u64, Option<f64>) {
    match interval_counts(before, after) {
        Ok(c) => (c.iter().map(|b| b.1).sum::<f64>() as u64, counts_p99(&c)),
        Err(_) => (0, None),
    }
}

/// Samples in µs from per-bucket counts: each bucket's requests spread
/// evenly over it (the first from 0; the open `+Inf` bucket over one more
/// width of the last finite one), counts scaled down so that at most `max`
/// come out, keeping the distribution's shape.
pub fn counts_samples(counts: &[(f64, f64)], max: usize) -> Vec<f64> {
    histogram::samples(counts.iter().map(|(le, n)| (le * 1e6, *n)), max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(fast: u64, slow: u64) -> String {
        format!(
            "# TYPE http_request_duration_seconds histogram\n\
             http_request_duration_seconds_bucket{{path=\"/a\",le=\"0.001\"}} {fast}\n\
             http_request_duration_seconds_bucket{{path=\"/a\",le=\"0.01\"}} {}\n\
             http_request_duration_seconds_bucket{{path=\"/a\",le=\"+Inf\"}} {}\n\
             http_request_duration_seconds_sum{{path=\"/a\"}} 1.5\n\
             http_request_duration_seconds_count{{path=\"/a\"}} {}\n",
            fast + slow,
            fast + slow,
            fast + slow
        )
    }

    #[test]
    fn a_scraped_histogram_gives_the_p99_of_the_requests_between_two_scrapes() {
        let before = histogram_buckets(&text(1000, 0), "http_request_duration_seconds").unwrap();
        // 1,000 requests more: 980 under 1 ms, 20 between 1 and 10 ms.
        let after = histogram_buckets(&text(1980, 20), "http_request_duration_seconds").unwrap();
        let (n, p99) = histogram_p99(&before, &after);
        assert_eq!(n, 1000);
        let p99 = p99.unwrap();
        assert!((0.001..0.01).contains(&p99), "{p99}");
        assert!(histogram_buckets(&text(1, 0), "nope").unwrap_err().to_string().contains("no histogram named \"nope\""));
        assert_eq!(histogram_p99(&after, &after), (0, None));
        // A restart (counts down) is no interval.
        assert!(interval_counts(&after, &before).unwrap_err().to_string().contains("restarted"));
        assert_eq!(histogram_p99(&after, &before), (0, None));
    }

    #[test]
    fn samples_spread_each_bucket_and_keep_its_shape_when_capped() {
        let counts = [(0.001, 90.0), (0.01, 10.0), (f64::INFINITY, 0.0)];
        let s = counts_samples(&counts, 1000);
        assert_eq!(s.len(), 100);
        assert!(s[..90].iter().all(|x| (0.0..1000.0).contains(x)) && s[90..].iter().all(|x| (1000.0..10_000.0).contains(x)));
        let s = counts_samples(&[(0.001, 9000.0), (0.01, 1000.0)], 100);
        assert_eq!(s.len(), 100);
        assert_eq!(s.iter().filter(|x| **x >= 1000.0).count(), 10);
        // The open bucket: one more width past the last bound.
        let s = counts_samples(&[(0.001, 0.0), (0.003, 0.0), (f64::INFINITY, 1.0)], 10);
        assert!((3000.0..5000.0).contains(&s[0]), "{s:?}");
        assert_eq!(counts_p99(&[(0.001, 0.0), (f64::INFINITY, 5.0)]), Some(f64::INFINITY));
        assert_eq!(counts_p99(&[(0.001, 0.0)]), None);
    }

    #[test]
    fn differencing_is_linear_in_the_bounds() {
        // 200,000 bounds (over the reader's limit, so only reachable by a
        // caller building buckets itself): pairing them by search was
        // quadratic, 80 s in a debug build; one walk is milliseconds.
        let before: Buckets = (0..200_000).map(|i| (i as f64 * 1e-6, i as f64)).collect();
        let after: Buckets = before.iter().map(|(le, n)| (*le, n * 2.0)).collect();
        let t = std::time::Instant::now();
        let c = interval_counts(&before, &after).unwrap();
        eprintln!("200,000 bounds differenced in {:?}", t.elapsed());
        assert!(t.elapsed() < std::time::Duration::from_secs(5), "{:?}", t.elapsed());
        assert_eq!(c.len(), 200_000);
        assert_eq!(c.iter().map(|b| b.1).sum::<f64>(), 199_999.0);
        // A bound only the later reading has counts from zero (as before).
        assert_eq!(interval_counts(&[(0.1, 1.0), (1.0, 2.0)], &[(0.1, 1.0), (0.5, 3.0), (1.0, 4.0)]).unwrap(), vec![(0.1, 0.0), (0.5, 3.0), (1.0, 0.0)]);
    }
}
