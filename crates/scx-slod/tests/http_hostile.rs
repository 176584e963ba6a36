// SPDX-License-Identifier: GPL-2.0-only
//! The metrics endpoint under hostile local clients' requests (the bounds:
//! docs/metrics.md). Each attack
//! is followed by a normal scrape that must still succeed, and the daemon's
//! memory must not grow with what a client claims or sends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use scx_slod::http::{serve_listener, MAX_CONNECTIONS};
use scx_slod::metrics::SharedSnapshot;

fn start() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let _ = serve_listener(listener, SharedSnapshot::default()).expect("serve");
    addr
}

fn scrape(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn assert_scrape_works(addr: SocketAddr, after: &str) {
    let text = scrape(addr);
    assert!(text.starts_with("HTTP/1.") && text.contains("scx_slo_mode"), "scrape after {after}: {text:.200}");
}

/// VmRSS of this process (the server runs in it), in kB.
fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok()).expect("VmRSS")
}

#[test]
fn a_huge_content_length_allocates_nothing() {
    let addr = start();
    assert_scrape_works(addr, "start");
    let before = rss_kb();
    for _ in 0..5 {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000\r\n\r\n").expect("write");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
    }
    assert_scrape_works(addr, "5 requests claiming 100 GB bodies");
    assert!(rss_kb() < before + 50_000, "RSS grew from {before} kB to {} kB", rss_kb());
}

#[test]
fn an_oversized_header_is_refused() {
    let addr = start();
    let before = rss_kb();
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_write_timeout(Some(Duration::from_secs(20))).expect("timeout");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nX-Junk: ");
    // 64 MiB of one header line: the server must stop reading long before.
    let chunk = vec![b'a'; 1 << 20];
    for _ in 0..64 {
        if s.write_all(&chunk).is_err() {
            break;
        }
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let head = String::from_utf8_lossy(&out[..out.len().min(64)]).to_string();
    assert!(out.is_empty() || head.contains("431"), "expected a refusal or a close, got {head:?}");
    assert_scrape_works(addr, "a 64 MiB header");
    assert!(rss_kb() < before + 50_000, "RSS grew from {before} kB to {} kB", rss_kb());
}

#[test]
fn held_connections_neither_exhaust_nor_block_for_long() {
    let addr = start();
    // Far more idle connections than the server serves at once: the excess
    // is closed at once, the rest time out; the listener survives.
    let held: Vec<TcpStream> = (0..4 * MAX_CONNECTIONS).filter_map(|_| TcpStream::connect(addr).ok()).collect();
    assert!(held.len() >= MAX_CONNECTIONS, "only {} connections opened", held.len());
    // Within the head timeout (2 s) the held ones are dropped and scrapes work again.
    std::thread::sleep(Duration::from_secs(6));
    assert_scrape_works(addr, "holding 4x the connection limit");
    drop(held);
}

#[test]
fn a_client_that_never_reads_does_not_block_others() {
    let addr = start();
    let mut stuck = TcpStream::connect(addr).expect("connect");
    stuck.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").expect("write");
    // Never reads its response; another scraper must not wait for it.
    assert_scrape_works(addr, "a client that never reads");
    drop(stuck);
}

#[test]
fn unknown_paths_get_404_and_root_says_where_metrics_are() {
    let addr = start();
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(b"GET /nope HTTP/1.0\r\n\r\n").expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.0 404") || out.starts_with("HTTP/1.1 404"), "{out}");
}

/// Run as another user by the test below: holds `SCX_SLO_HOLD_N` idle
/// connections to `SCX_SLO_HOLD_ADDR`, reopening each as the server closes
/// it, for `SCX_SLO_HOLD_SECS`.
#[test]
#[ignore]
fn hold_idle_connections_helper() {
    let (Ok(addr), Ok(n), Ok(secs)) = (std::env::var("SCX_SLO_HOLD_ADDR"), std::env::var("SCX_SLO_HOLD_N"), std::env::var("SCX_SLO_HOLD_SECS")) else { return };
    let addr: SocketAddr = addr.parse().expect("addr");
    let n: usize = n.parse().expect("n");
    let end = std::time::Instant::now() + Duration::from_secs(secs.parse().expect("secs"));
    let mut held: Vec<Option<TcpStream>> = (0..n).map(|_| None).collect();
    while std::time::Instant::now() < end {
        for slot in held.iter_mut() {
            let closed = slot.as_mut().is_none_or(|s| {
                s.set_nonblocking(true).ok();
                matches!(s.read(&mut [0u8; 1]), Ok(0))
            });
            if closed {
                *slot = TcpStream::connect(addr).ok();
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn idle_connections_of_one_user_do_not_make_another_users_scrapes_fail() {
    use std::os::unix::process::CommandExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to hold connections as another user");
        return;
    }
    let addr = start();
    let mut holder = std::process::Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", "hold_idle_connections_helper", "--ignored", "--nocapture"])
        .env("SCX_SLO_HOLD_ADDR", addr.to_string())
        .env("SCX_SLO_HOLD_N", "200")
        .env("SCX_SLO_HOLD_SECS", "8")
        .uid(65534)
        .gid(65534)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn the holder as nobody");
    std::thread::sleep(Duration::from_secs(2));
    let mut failed = 0;
    for _ in 0..20 {
        let text = scrape(addr);
        if !text.contains("scx_slo_mode") {
            failed += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(failed, 0, "{failed} of 20 scrapes failed while nobody held 200 idle connections");
}
