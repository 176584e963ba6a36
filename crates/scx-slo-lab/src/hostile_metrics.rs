// SPDX-License-Identifier: GPL-2.0-only
//! A targeted service's metrics endpoint turned hostile (`hostile-metrics
//! --port P --mode M`), for the chaos scenario's scraper fault: what the
//! daemon's `scrape` block reads when the service lies or stalls.
//!
//! - `tiny`: 8 MiB of one-sample lines (`a 1`), which once cost the daemon
//!   300 MB of memory per scrape;
//! - `bounds`: a histogram with 200,000 distinct `le` bounds, whose
//!   differencing was once quadratic on the engine thread;
//! - `trickle`: one byte every 0.4 s, each read within the per-read
//!   timeout while the reply never ends.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The histogram a chaos target's `scrape` block names.
pub const HISTOGRAM: &str = "probe_response_seconds";

fn body(mode: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    match mode {
        "tiny" => {
            out.extend_from_slice(format!("# TYPE {HISTOGRAM} histogram\n").as_bytes());
            while out.len() < 8 << 20 {
                out.extend_from_slice(b"a 1\n");
            }
        }
        "bounds" => {
            out.extend_from_slice(format!("# TYPE {HISTOGRAM} histogram\n").as_bytes());
            for i in 0..200_000u32 {
                out.extend_from_slice(format!("{HISTOGRAM}_bucket{{le=\"{}\"}} {i}\n", f64::from(i + 1) * 1e-6).as_bytes());
            }
            out.extend_from_slice(format!("{HISTOGRAM}_bucket{{le=\"+Inf\"}} 200000\n{HISTOGRAM}_count 200000\n").as_bytes());
        }
        "trickle" => {}
        other => bail!("--mode {other}: use tiny, bounds or trickle"),
    }
    Ok(out)
}

/// Serves `mode` on 127.0.0.1:`port` for `seconds`, one client at a time.
pub fn serve(port: u16, mode: &str, seconds: u64) -> Result<()> {
    let body = body(mode)?;
    let listener = TcpListener::bind(("127.0.0.1", port)).with_context(|| format!("binding 127.0.0.1:{port}"))?;
    listener.set_nonblocking(true)?;
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        let Ok((mut conn, _)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let _ = conn.set_nonblocking(false);
        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
        let mut request = [0u8; 4096];
        let _ = conn.read(&mut request);
        if mode == "trickle" {
            // Every client is trickled to at once, as a server whose every
            // worker is slow: a new scrape meets the trickle too.
            std::thread::spawn(move || {
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n");
                while Instant::now() < end && conn.write_all(b"#").is_ok() {
                    std::thread::sleep(Duration::from_millis(400));
                }
            });
            continue;
        }
        let head = format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
        let _ = conn.write_all(head.as_bytes()).and_then(|()| conn.write_all(&body));
    }
    Ok(())
}
