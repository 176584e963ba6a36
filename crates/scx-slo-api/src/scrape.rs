// SPDX-License-Identifier: GPL-2.0-only
//! A service's own latency histogram (issue 14): one bounded HTTP GET of its
//! Prometheus endpoint, the histogram's cumulative buckets parsed by
//! `prometheus-parse`, and what the requests between two scrapes say: how
//! many, their p99, and samples for the canary's tests. `scx-slo tune
//! --scrape` and the daemon's scraper (targets' `scrape` blocks) share it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

/// Largest scrape body read (a service's /metrics, not a dump).
pub const MAX_SCRAPE_BYTES: u64 = 8 << 20;

/// Cumulative buckets: (`le` in seconds, requests at or under it), sorted
/// by `le`, the last one `+Inf` when the service exposes it.
pub type Buckets = Vec<(f64, f64)>;

/// The cumulative buckets of `histogram` in a scrape, summed over label
/// sets (bounds that only some label sets have are summed as they come).
pub fn histogram_buckets(text: &str, histogram: &str) -> Result<Buckets, String> {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).map_err(|e| format!("parsing the scrape: {e}"))?;
    let mut sums: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    let mut found = false;
    for s in scrape.samples.iter().filter(|s| s.metric == histogram) {
        if let prometheus_parse::Value::Histogram(buckets) = &s.value {
            found = true;
            for b in buckets {
                if b.less_than.is_nan() || !b.count.is_finite() || b.count < 0.0 {
                    continue;
                }
                let e = sums.entry(b.less_than.to_bits()).or_insert((b.less_than, 0.0));
                e.1 += b.count;
            }
        }
    }
    if !found {
        return Err(format!("no histogram named {histogram:?} in the scrape"));
    }
    let mut v: Buckets = sums.into_values().collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(v)
}

/// The requests between two scrapes, per bucket (`le`, requests in
/// `(previous le, le]`), or `Err` when the counts went down: the service
/// restarted (its counters started over) and the difference means nothing.
pub fn interval_counts(before: &[(f64, f64)], after: &[(f64, f64)]) -> Result<Vec<(f64, f64)>, String> {
    let at = |v: &[(f64, f64)], le: f64| v.iter().find(|b| b.0 == le).map_or(0.0, |b| b.1);
    let total = |v: &[(f64, f64)]| v.last().map_or(0.0, |b| b.1);
    if total(after) < total(before) {
        return Err(format!("the histogram's count went down ({} to {}): the service restarted", total(before), total(after)));
    }
    let mut out = Vec::with_capacity(after.len());
    let mut below = 0.0;
    for (le, cum) in after {
        let cum = (cum - at(before, *le)).max(below);
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
    let want = 0.99 * total;
    let (mut seen, mut lower) = (0.0, 0.0);
    for (le, n) in counts {
        if *n > 0.0 && seen + n >= want {
            if le.is_infinite() {
                return Some(f64::INFINITY);
            }
            return Some(lower + (want - seen) / n * (le - lower));
        }
        seen += n;
        lower = *le;
    }
    Some(f64::INFINITY)
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
    let total: f64 = counts.iter().map(|c| c.1).sum();
    let scale = if total > max as f64 { max as f64 / total } else { 1.0 };
    let mut out = Vec::with_capacity(total.min(max as f64) as usize);
    let (mut lower, mut width) = (0.0f64, 0.0f64);
    for (le, n) in counts {
        let upper = if le.is_finite() { le * 1e6 } else { lower + width.max(lower) };
        let n = (n * scale).round() as usize;
        for k in 0..n.min(max - out.len().min(max)) {
            out.push(lower + (upper - lower) * (k as f64 + 0.5) / n as f64);
        }
        width = upper - lower;
        lower = upper;
    }
    out
}

/// A bounded HTTP/1.0 GET of `path` at `addr`: `timeout` to connect and for
/// each read and write, at most [`MAX_SCRAPE_BYTES`], status 200 only.
pub fn get(addr: SocketAddr, host: &str, path: &str, timeout: Duration, agent: &str) -> Result<String, String> {
    let url = format!("http://{host}{path}");
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{url}: {e}"))?;
    stream.set_read_timeout(Some(timeout)).and_then(|()| stream.set_write_timeout(Some(timeout))).map_err(|e| format!("{url}: {e}"))?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: text/plain\r\nUser-Agent: {agent}\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|e| format!("{url}: {e}"))?;
    let mut body = Vec::new();
    stream.take(MAX_SCRAPE_BYTES + 1).read_to_end(&mut body).map_err(|e| format!("{url}: {e}"))?;
    if body.len() as u64 > MAX_SCRAPE_BYTES {
        return Err(format!("{url}: the response is over {} MiB", MAX_SCRAPE_BYTES >> 20));
    }
    let text = String::from_utf8_lossy(&body);
    let (head, payload) = text.split_once("\r\n\r\n").ok_or_else(|| format!("{url}: not an HTTP response"))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("{url}: {status}"));
    }
    Ok(payload.to_string())
}

/// `get` of any `http://host[:port]/path` URL (resolving the host), for the
/// CLI: 5 s timeouts.
pub fn http_get(url: &str) -> Result<String, String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("{url:?}: only http:// URLs are scraped"))?;
    let (authority, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
    if authority.is_empty() || authority.len() > 255 || path.len() > 2048 || url.chars().any(|c| c.is_control() || c == ' ') {
        return Err(format!("{url:?} is not a scrape URL"));
    }
    let authority = if authority.contains(':') { authority.to_string() } else { format!("{authority}:80") };
    use std::net::ToSocketAddrs;
    let addr = authority.to_socket_addrs().map_err(|e| format!("{authority}: {e}"))?.next().ok_or_else(|| format!("{authority}: no address"))?;
    get(addr, &authority, &path, Duration::from_secs(5), "scx-slo-tune")
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
        assert!(histogram_buckets(&text(1, 0), "nope").unwrap_err().contains("no histogram named \"nope\""));
        assert_eq!(histogram_p99(&after, &after), (0, None));
        // A restart (counts down) is no interval.
        assert!(interval_counts(&after, &before).unwrap_err().contains("restarted"));
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
    fn urls_other_than_plain_http_are_refused() {
        for bad in ["https://x/metrics", "file:///etc/passwd", "http://", "http://a b/", "http://x/\r\nHost: y"] {
            assert!(http_get(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_get_reads_a_local_endpoint_and_refuses_what_is_not_200() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for reply in ["HTTP/1.0 200 OK\r\n\r\nbody", "HTTP/1.0 404 Not Found\r\n\r\n"] {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                s.write_all(reply.as_bytes()).unwrap();
            }
        });
        let host = addr.to_string();
        assert_eq!(get(addr, &host, "/metrics", Duration::from_secs(2), "t").unwrap(), "body");
        assert!(get(addr, &host, "/metrics", Duration::from_secs(2), "t").unwrap_err().contains("404"));
        server.join().unwrap();
    }
}
