// SPDX-License-Identifier: GPL-2.0-only
//! The probe's own latency histogram on a Prometheus endpoint (`probe
//! --serve PORT`): what a real service exposes, for the daemon's `scrape`
//! blocks (docs/tuning.md). `probe_response_seconds` counts each request's
//! response time (arrival to work done), cumulative, `le` in seconds.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use anyhow::{Context, Result};

/// Bucket bounds, seconds: 250 µs to 64 ms by doublings.
const BOUNDS: [f64; 9] = [0.000_25, 0.000_5, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064];

/// Per-bucket counts (not cumulative), the last one past every bound.
pub struct Served {
    counts: [AtomicU64; BOUNDS.len() + 1],
    sum_ns: AtomicU64,
}

static SERVED: OnceLock<Served> = OnceLock::new();

/// Records a request's response time when the endpoint is served.
pub fn observe(response_ns: u64) {
    if let Some(s) = SERVED.get() {
        let secs = response_ns as f64 / 1e9;
        let i = BOUNDS.iter().position(|b| secs <= *b).unwrap_or(BOUNDS.len());
        s.counts[i].fetch_add(1, Ordering::Relaxed);
        s.sum_ns.fetch_add(response_ns, Ordering::Relaxed);
    }
}

/// The exposition text.
fn render(s: &Served) -> String {
    let mut out = String::from("# HELP probe_response_seconds Response time of the probe's requests.\n# TYPE probe_response_seconds histogram\n");
    let mut cumulative = 0;
    for (i, c) in s.counts.iter().enumerate() {
        cumulative += c.load(Ordering::Relaxed);
        let le = BOUNDS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
        out += &format!("probe_response_seconds_bucket{{le=\"{le}\"}} {cumulative}\n");
    }
    out += &format!("probe_response_seconds_sum {}\nprobe_response_seconds_count {cumulative}\n", s.sum_ns.load(Ordering::Relaxed) as f64 / 1e9);
    out
}

/// Serves the histogram on 127.0.0.1:`port` from a thread of its own.
pub fn serve(port: u16) -> Result<()> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).with_context(|| format!("binding 127.0.0.1:{port}"))?;
    let served = SERVED.get_or_init(|| Served { counts: Default::default(), sum_ns: AtomicU64::new(0) });
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 2048];
            let _ = conn.read(&mut buf);
            let body = render(served);
            let _ = conn.write_all(format!("HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes());
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_parses_as_the_daemon_reads_it() {
        let s = Served { counts: Default::default(), sum_ns: AtomicU64::new(0) };
        s.counts[2].store(99, Ordering::Relaxed);
        s.counts[6].store(1, Ordering::Relaxed);
        let b = scx_slo_api::scrape::histogram_buckets(&render(&s), "probe_response_seconds").unwrap();
        assert_eq!(b.len(), 10);
        assert_eq!((b[2], b[9].1), ((0.001, 99.0), 100.0));
        let (n, p99) = scx_slo_api::scrape::histogram_p99(&[], &b);
        assert_eq!(n, 100);
        assert!(p99.unwrap() <= 0.001 + 1e-12, "{p99:?}");
    }
}
