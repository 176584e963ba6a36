// SPDX-License-Identifier: GPL-2.0-only
//! The metrics endpoint's HTTP server: hyper (HTTP/1) on a current-thread
//! tokio runtime of its own, so that nothing a scraper does reaches the
//! engine or the D-Bus runtime. Every input is bounded (docs/metrics.md; tiny_http, used before,
//! let any local user abort the daemon with one `Content-Length`, grow it by
//! a 512 MiB header, exhaust its file descriptors with held connections, and
//! stall every scrape behind one client that never reads):
//!
//! - request bodies are never read: no size a client claims is allocated;
//! - a request head is at most [`MAX_HEAD_BYTES`]; larger is refused;
//! - a connection must deliver its request head within [`HEAD_TIMEOUT`] and
//!   is closed after [`CONNECTION_DEADLINE`] whatever it does (a reader that
//!   never reads);
//! - at most [`MAX_CONNECTIONS`] at once; over that a new one is closed at
//!   once, so the daemon keeps its file descriptors;
//! - at most [`MAX_PER_PEER`] at once from one peer: on loopback a peer is
//!   the uid owning the client's socket (`/proc/net/tcp`; every local user
//!   connects from 127.0.0.1, and can bind any 127.x address), elsewhere
//!   its address. One user holding idle connections fills its own share,
//!   never the slots another user's scraper (Prometheus) needs;
//! - no keep-alive: one request per connection.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;

use crate::metrics::{registry, render, SharedSnapshot};

/// Largest request head (request line and headers) accepted.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Time a client has to send its request head (a loopback scraper sends
/// it at once; an idle connection is closed after this).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest a connection may stay open.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(10);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Connections served at once from one peer (a uid on loopback, an address
/// elsewhere): a scraper needs one.
pub const MAX_PER_PEER: usize = 8;

/// Who a connection counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Peer {
    /// A loopback client's socket owner.
    Uid(u32),
    /// Any other client (or a loopback one whose owner was not found).
    Addr(std::net::IpAddr),
}

/// The peer of a connection from `client` to `server`. Blocking: it reads
/// the socket table (up to the connection's line), so the accept loop runs
/// it off the runtime's thread.
pub fn peer_of(client: SocketAddr, server: SocketAddr) -> Peer {
    let loopback = match client.ip() {
        std::net::IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        ip => ip.is_loopback(),
    };
    if loopback {
        let table = if client.is_ipv4() { "/proc/net/tcp" } else { "/proc/net/tcp6" };
        if let Some(uid) = std::fs::File::open(table).ok().and_then(|f| crate::scrape_owner::socket_uid_in(client, server, std::io::BufReader::new(f), client.is_ipv6())) {
            return Peer::Uid(uid);
        }
    }
    Peer::Addr(client.ip())
}

/// Open connections per peer.
#[derive(Default)]
struct PeerCounts(std::sync::Mutex<std::collections::HashMap<Peer, usize>>);

/// A peer's share of the connections, given back when dropped.
struct PeerSlot {
    counts: Arc<PeerCounts>,
    peer: Peer,
}

impl PeerCounts {
    fn take(self: &Arc<Self>, peer: Peer) -> Option<PeerSlot> {
        let mut m = self.0.lock().ok()?;
        let n = m.entry(peer).or_default();
        if *n >= MAX_PER_PEER {
            return None;
        }
        *n += 1;
        Some(PeerSlot { counts: Arc::clone(self), peer })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        if let Ok(mut m) = self.counts.0.lock() {
            if let Some(n) = m.get_mut(&self.peer) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&self.peer);
                }
            }
        }
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    r
}

fn respond(req: &Request<Incoming>, registry: &Registry) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => {
            reply(StatusCode::OK, "application/openmetrics-text; version=1.0.0; charset=utf-8", render(registry))
        }
        (&Method::GET, "/") => reply(StatusCode::OK, "text/plain", "scx-slod: metrics at /metrics\n".into()),
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found: scx-slod serves GET /metrics\n".into()),
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, registry: Arc<Registry>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let peers = Arc::new(PeerCounts::default());
    let server = listener.local_addr();
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: wait instead of spinning; the listener stays.
                tracing::warn!(error = %e, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Off the runtime's thread: connections being served keep their
        // timers while a flood of new ones is classified.
        let peer = match &server {
            Ok(server) => {
                let server = *server;
                tokio::task::spawn_blocking(move || peer_of(client, server)).await.unwrap_or(Peer::Addr(client.ip()))
            }
            Err(_) => Peer::Addr(client.ip()),
        };
        let Some(share) = peers.take(peer) else {
            drop(stream); // this peer holds its share: closed at once
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            drop(stream); // over the limit: closed at once
            continue;
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            serve_io(stream, registry).await;
            drop(permit);
            drop(share);
        });
    }
}

/// One connection, on any byte stream: the listener's, or the fuzz
/// target's in-memory pipe. Bounded by the head size, the head timeout and
/// the connection deadline whatever the peer sends.
pub async fn serve_io<I>(io: I, registry: Arc<Registry>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let r = respond(&req, &registry);
        async move { Ok::<_, Infallible>(r) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEAD_TIMEOUT).max_buf_size(MAX_HEAD_BYTES).keep_alive(false);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    let _ = tokio::time::timeout(CONNECTION_DEADLINE, conn).await;
}

/// Serves `/metrics` from an already bound listener on a thread of its own.
pub fn serve_listener(
    listener: std::net::TcpListener,
    snapshot: SharedSnapshot,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let registry = Arc::new(registry(snapshot));
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "metrics endpoint: starting its runtime");
                return;
            }
        };
        runtime.block_on(async move {
            match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => accept_loop(l, registry).await,
                Err(e) => tracing::error!(error = %e, "metrics endpoint: registering the listener"),
            }
        });
    })
}

/// Binds `addr` and serves `/metrics` on a thread; the error names the
/// address (a port in use is the usual cause).
pub fn serve(addr: SocketAddr, snapshot: SharedSnapshot) -> std::io::Result<std::thread::JoinHandle<()>> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| std::io::Error::new(e.kind(), format!("binding the metrics endpoint to {addr}: {e}")))?;
    tracing::info!(%addr, "metrics endpoint listening on http://{addr}/metrics");
    serve_listener(listener, snapshot)
}
