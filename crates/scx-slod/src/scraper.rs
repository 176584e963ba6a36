// SPDX-License-Identifier: GPL-2.0-only
//! The daemon's scraper (docs/tuning.md): a worker thread that reads the latency
//! targets' own histograms (their `scrape` blocks) every second, so that
//! the engine thread never waits on a service's endpoint. The engine takes
//! the latest reading, at most a second plus the targets' timeouts old; the
//! adaptive controller and the canary difference two readings, as they do
//! the kernel's histograms.
//!
//! Bounded: at most `limits::MAX_SCRAPES` endpoints, all on loopback
//! (validated), each GET with a 500 ms timeout per read, a 2 s deadline for
//! the whole request and the exposition reader's limits (8 MiB, samples,
//! label sets, bounds: `scx_slo_api::scrape::LIMITS`), one after the other
//! on one thread. The body is read as it streams in, keeping only the
//! histogram's bounds, so a reading costs kilobytes whatever the page holds.
//! A slow, trickling or dead endpoint delays the other endpoints' readings
//! by at most the deadline, and its failures are counted and reported. Only a
//! socket of the unit's own users is read (`scrape_owner`): a unit with no
//! cgroup (not running) is not scraped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use scx_slo_api::documents::ScrapeReport;
use scx_slo_api::scrape::{get_histogram, Buckets, Timeouts};
use scx_slo_model::scrape_block::parse_scrape_url;
use scx_slo_model::Scrape;

use crate::scrape_owner::SocketTables;

/// How often each endpoint is read.
pub const SCRAPE_EVERY: Duration = Duration::from_secs(1);
/// Connect, write and read timeout of one GET: loopback answers in well
/// under a millisecond, and a hung endpoint must not starve the others.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_millis(500);
/// The whole GET, connect to last byte: an endpoint that trickles its reply
/// beats the per-read timeout, and must not hold the other endpoints.
pub const SCRAPE_DEADLINE: Duration = Duration::from_secs(2);

/// An endpoint: its URL and histogram.
pub type Source = (String, String);

/// The latest reading of an endpoint.
#[derive(Clone, Debug)]
pub struct Reading {
    /// When it was taken.
    pub at: Instant,
    /// The buckets, or why there are none.
    pub result: Result<Arc<Buckets>, String>,
}

/// An endpoint's readings and their outcomes.
#[derive(Clone, Debug, Default)]
struct Endpoint {
    latest: Option<Reading>,
    ok: u64,
    failed: u64,
    /// The unit's cgroup, whose users' sockets may be read.
    cgroup: Option<PathBuf>,
}

#[derive(Default)]
struct Shared {
    /// The endpoints to read; the thread reads this list each round.
    endpoints: Mutex<BTreeMap<Source, Endpoint>>,
}

/// The scraper: owned by the engine; its thread ends when it is dropped.
#[derive(Default)]
pub struct Scraper {
    shared: Arc<Shared>,
    started: bool,
}

fn source(s: &Scrape) -> Source {
    (s.url.clone(), s.histogram.clone())
}

/// One GET and parse of an endpoint, once its listener is the unit's.
fn read(source: &Source, cgroup: Option<&Path>, tables: &SocketTables) -> Result<Buckets, String> {
    let (url, histogram) = source;
    let u = parse_scrape_url(url)?;
    let cgroup = cgroup.ok_or("the unit has no cgroup (not running): nothing to scrape")?;
    crate::scrape_owner::check(u.addr, Some(cgroup), tables)?;
    let timeouts = Timeouts { io: SCRAPE_TIMEOUT, total: SCRAPE_DEADLINE };
    get_histogram(u.addr, &u.host, &u.path, timeouts, "scx-slod", histogram).map_err(|e| e.to_string())
}

fn run(shared: Weak<Shared>) {
    loop {
        let Some(s) = shared.upgrade() else { return };
        let round = Instant::now();
        let sources: Vec<(Source, Option<PathBuf>)> = s.endpoints.lock().map(|e| e.iter().map(|(k, v)| (k.clone(), v.cgroup.clone())).collect()).unwrap_or_default();
        drop(s);
        let tables = SocketTables::read();
        for (src, cgroup) in sources {
            // A parser panic is a failed reading, and the thread goes on.
            let result = std::panic::catch_unwind(|| read(&src, cgroup.as_deref(), &tables))
                .unwrap_or_else(|_| Err("the reply could not be parsed (the parser panicked)".to_string()))
                .map(Arc::new);
            let Some(s) = shared.upgrade() else { return };
            let mut endpoints = match s.endpoints.lock() {
                Ok(e) => e,
                Err(_) => return,
            };
            // Dropped from the config meanwhile: not re-added.
            if let Some(ep) = endpoints.get_mut(&src) {
                if result.is_ok() {
                    ep.ok += 1;
                } else {
                    ep.failed += 1;
                }
                ep.latest = Some(Reading { at: Instant::now(), result });
            }
            drop(endpoints);
        }
        std::thread::sleep(SCRAPE_EVERY.saturating_sub(round.elapsed()).max(Duration::from_millis(50)));
    }
}

impl Scraper {
    /// Reads these `scrape` blocks from now on, each with its unit's cgroup
    /// (None: not running); endpoints kept keep their readings and counts.
    /// The thread starts with the first endpoint.
    pub fn follow<'a>(&mut self, scrapes: impl Iterator<Item = (&'a Scrape, Option<PathBuf>)>) {
        let want: Vec<(Source, Option<PathBuf>)> = scrapes.map(|(s, c)| (source(s), c)).collect();
        let Ok(mut e) = self.shared.endpoints.lock() else { return };
        e.retain(|k, _| want.iter().any(|(w, _)| w == k));
        for (s, cgroup) in want {
            e.entry(s).or_default().cgroup = cgroup;
        }
        if !e.is_empty() && !self.started {
            let weak = Arc::downgrade(&self.shared);
            self.started = std::thread::Builder::new().name("scx-slod-scrape".into()).spawn(move || run(weak)).is_ok();
        }
    }

    /// The latest reading of `scrape`'s endpoint.
    pub fn latest(&self, scrape: &Scrape) -> Option<Reading> {
        self.shared.endpoints.lock().ok()?.get(&source(scrape))?.latest.clone()
    }

    /// Status's view of `scrape`'s endpoint.
    pub fn report(&self, scrape: &Scrape) -> ScrapeReport {
        let ep = self.shared.endpoints.lock().ok().and_then(|e| e.get(&source(scrape)).cloned()).unwrap_or_default();
        ScrapeReport {
            url: scrape.url.clone(),
            histogram: scrape.histogram.clone(),
            ok: ep.ok,
            failed: ep.failed,
            age_s: ep.latest.as_ref().map(|r| r.at.elapsed().as_secs_f64()),
            last_error: ep.latest.and_then(|r| r.result.err()),
        }
    }

    /// Test helper: stores a reading as the thread would.
    #[cfg(test)]
    pub fn inject(&self, scrape: &Scrape, result: Result<Buckets, String>) {
        if let Ok(mut e) = self.shared.endpoints.lock() {
            let ep = e.entry(source(scrape)).or_default();
            ep.latest = Some(Reading { at: Instant::now(), result: result.map(Arc::new) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn the_thread_reads_a_local_endpoint_and_reports_failures() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for (n, conn) in listener.incoming().enumerate() {
                let Ok(mut s) = conn else { continue };
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let body = format!("# TYPE rpc_seconds histogram\nrpc_seconds_bucket{{le=\"0.001\"}} {n}\nrpc_seconds_bucket{{le=\"+Inf\"}} {n}\nrpc_seconds_sum 0\nrpc_seconds_count {n}\n");
                let _ = s.write_all(format!("HTTP/1.0 200 OK\r\n\r\n{body}").as_bytes());
            }
        });
        let good = Scrape { url: format!("http://127.0.0.1:{port}/metrics"), histogram: "rpc_seconds".into() };
        let missing = Scrape { url: format!("http://127.0.0.1:{port}/metrics"), histogram: "nope".into() };
        let mut scraper = Scraper::default();
        // Our own socket, so the unit's cgroup does not matter here.
        let cg = || Some(PathBuf::from("/nonexistent"));
        scraper.follow([(&good, cg()), (&missing, cg())].into_iter());
        let deadline = Instant::now() + Duration::from_secs(10);
        while scraper.report(&good).ok < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let r = scraper.report(&good);
        assert!(r.ok >= 2 && r.failed == 0 && r.last_error.is_none(), "{r:?}");
        assert!(scraper.latest(&good).unwrap().result.unwrap().last().unwrap().1 >= 1.0);
        let r = scraper.report(&missing);
        assert!(r.failed >= 1 && r.last_error.as_deref().is_some_and(|e| e.contains("no histogram named \"nope\"")), "{r:?}");
        // Dropped from the config: no reading, nothing counted.
        scraper.follow([(&good, cg())].into_iter());
        assert!(scraper.latest(&missing).is_none());
        assert_eq!(scraper.report(&missing).ok + scraper.report(&missing).failed, 0);
    }
}
