// SPDX-License-Identifier: GPL-2.0-only
//! The bounded HTTP/1.0 GET of a scrape: a deadline for the whole request
//! (connect, write, head and body), a timeout for each read within it, a
//! bounded head, and the body streamed into the exposition reader, never
//! held whole. An endpoint that trickles bytes beats any per-read timeout,
//! so only the whole-request deadline bounds how long it holds the caller.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::error::ScrapeError;
use super::exposition::{read_histogram, Buckets, Limits, LIMITS};

/// Largest response head (status line and headers).
const MAX_HEAD_BYTES: usize = 16 << 10;

/// How long a scrape may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting, and each write and read.
    pub io: Duration,
    /// The whole request, from connecting to the body's last byte.
    pub total: Duration,
}

/// A socket whose every read is cut at the request's deadline.
struct DeadlineReader {
    stream: TcpStream,
    deadline: Instant,
    io: Duration,
}

impl Read for DeadlineReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the scrape's deadline passed"));
        }
        self.stream.set_read_timeout(Some(left.min(self.io)))?;
        self.stream.read(buf)
    }
}

/// Reads the head and checks for status 200; the reader is left at the body.
fn read_head(reader: &mut impl BufRead) -> Result<(), ScrapeError> {
    let mut head = 0usize;
    let mut line = Vec::new();
    let mut first = true;
    loop {
        line.clear();
        let n = Read::take(&mut *reader, (MAX_HEAD_BYTES - head) as u64 + 1).read_until(b'\n', &mut line).map_err(ScrapeError::Read)?;
        head += n;
        if n == 0 || head > MAX_HEAD_BYTES {
            return Err(if n == 0 { ScrapeError::NotHttp } else { ScrapeError::HeadTooLarge { limit: MAX_HEAD_BYTES } });
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if first {
            first = false;
            if !text.starts_with("HTTP/1.") {
                return Err(ScrapeError::NotHttp);
            }
            if text.split_whitespace().nth(1) != Some("200") {
                return Err(ScrapeError::Status(text.chars().take(80).collect()));
            }
        } else if text.is_empty() {
            return Ok(());
        } else if let Some((name, value)) = text.split_once(':') {
            // An HTTP/1.0 request gets no chunked reply; one that comes anyway
            // would be parsed as chunk sizes and data.
            if name.trim().eq_ignore_ascii_case("transfer-encoding") && !value.trim().eq_ignore_ascii_case("identity") {
                return Err(ScrapeError::Chunked);
            }
        }
    }
}

/// The request, then the head, then `body` on the reader left at the body.
fn get_inner<T>(addr: SocketAddr, host: &str, path: &str, t: Timeouts, agent: &str, body: impl FnOnce(&mut dyn BufRead) -> Result<T, ScrapeError>) -> Result<T, ScrapeError> {
    let deadline = Instant::now() + t.total;
    let stream = TcpStream::connect_timeout(&addr, t.io.min(t.total)).map_err(ScrapeError::Connect)?;
    stream.set_write_timeout(Some(t.io)).map_err(ScrapeError::Connect)?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: text/plain\r\nUser-Agent: {agent}\r\nConnection: close\r\n\r\n");
    (&stream).write_all(request.as_bytes()).map_err(ScrapeError::Connect)?;
    let mut reader = BufReader::with_capacity(64 << 10, DeadlineReader { stream, deadline, io: t.io });
    read_head(&mut reader)?;
    body(&mut reader)
}

/// The one bounded GET every caller goes through: status 200 only, a
/// bounded head, everything within `t.total`, the body handed to `body`
/// (which bounds what it reads). Errors name the URL.
fn get<T>(addr: SocketAddr, host: &str, path: &str, t: Timeouts, agent: &str, body: impl FnOnce(&mut dyn BufRead) -> Result<T, ScrapeError>) -> Result<T, ScrapeError> {
    let start = Instant::now();
    get_inner(addr, host, path, t, agent, body).map_err(|e| {
        // A read cut by the deadline is reported as the deadline, not as the
        // socket error it surfaced as.
        let late = start.elapsed() >= t.total;
        let e = match e {
            ScrapeError::Read(_) | ScrapeError::Connect(_) if late => ScrapeError::Deadline { limit: t.total },
            ScrapeError::Read(io) if matches!(io.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => ScrapeError::Stalled { limit: t.io },
            e => e,
        };
        ScrapeError::At { url: format!("http://{host}{path}").chars().take(120).collect(), source: Box::new(e) }
    })
}

/// A bounded GET of `path` at `addr` whose body is read for `histogram`:
/// status 200 only, at most [`LIMITS`], everything within `t.total`.
pub fn get_histogram(addr: SocketAddr, host: &str, path: &str, t: Timeouts, agent: &str, histogram: &str) -> Result<Buckets, ScrapeError> {
    get_histogram_within(addr, host, path, t, agent, histogram, &LIMITS)
}

/// [`get_histogram`] with other limits (tests).
pub fn get_histogram_within(addr: SocketAddr, host: &str, path: &str, t: Timeouts, agent: &str, histogram: &str, limits: &Limits) -> Result<Buckets, ScrapeError> {
    get(addr, host, path, t, agent, |mut body| read_histogram(&mut body, histogram, limits))
}

/// A bounded GET of `path` at `addr` whose whole body is returned as text
/// (invalid UTF-8 replaced): status 200 only, at most `max_bytes` of body,
/// everything within `t.total`.
pub fn get_text(addr: SocketAddr, host: &str, path: &str, t: Timeouts, agent: &str, max_bytes: u64) -> Result<String, ScrapeError> {
    get(addr, host, path, t, agent, |body| {
        let mut bytes = Vec::new();
        body.take(max_bytes + 1).read_to_end(&mut bytes).map_err(ScrapeError::Read)?;
        if bytes.len() as u64 > max_bytes {
            return Err(ScrapeError::TooLarge { limit: max_bytes });
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    })
}

/// An `http://host[:port]/path` URL taken apart for the CLI: the fragment
/// is dropped (it is never sent to a server), the port must be digits.
pub fn split_url(url: &str) -> Result<(String, u16, String), ScrapeError> {
    let refuse = |why: &'static str| ScrapeError::Url { prefix: url.chars().take(80).collect(), why };
    if url.len() > 2048 || url.chars().any(|c| c.is_control() || c == ' ') {
        return Err(refuse("over 2048 bytes, or a space or control character"));
    }
    let url_no_fragment = url.split_once('#').map_or(url, |(u, _)| u);
    let rest = url_no_fragment.strip_prefix("http://").ok_or_else(|| refuse("only http:// URLs are scraped"))?;
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    if authority.is_empty() || authority.len() > 255 || authority.contains('@') {
        return Err(refuse("no host, or credentials in the URL"));
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (ip, after) = v6.split_once(']').ok_or_else(|| refuse("an IPv6 host needs its closing ]"))?;
            (ip, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port = match port {
        None => 80,
        // `u16::from_str` takes a leading `+`; a URL's port is digits only.
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(refuse("the port is not 1-65535")),
            Ok(p) => p,
        },
        Some(_) => return Err(refuse("the port is not 1-65535 in digits")),
    };
    if host.is_empty() {
        return Err(refuse("no host"));
    }
    Ok((host.to_string(), port, path.to_string()))
}

/// An `http://host[:port]/path` URL resolved for the CLI's GETs: the
/// address, the Host header and the path.
pub fn resolve_url(url: &str) -> Result<(SocketAddr, String, String), ScrapeError> {
    use std::net::ToSocketAddrs;
    let (host, port, path) = split_url(url)?;
    let at = |e: std::io::Error| ScrapeError::At { url: format!("{host}:{port}"), source: Box::new(ScrapeError::Connect(e)) };
    let addr = (host.as_str(), port).to_socket_addrs().map_err(at)?.next().ok_or_else(|| at(std::io::ErrorKind::NotFound.into()))?;
    let host_header = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    Ok((addr, host_header, path))
}

/// [`get_histogram`] of any `http://host[:port]/path` URL (resolving the
/// host), for the CLI.
pub fn http_histogram(url: &str, histogram: &str, t: Timeouts) -> Result<Buckets, ScrapeError> {
    let (addr, host_header, path) = resolve_url(url)?;
    get_histogram(addr, &host_header, &path, t, "scx-slo-tune", histogram)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    const QUICK: Timeouts = Timeouts { io: Duration::from_secs(2), total: Duration::from_secs(5) };

    /// A server that answers each connection with the next reply, handing
    /// back the request it read.
    fn serve(replies: Vec<Vec<u8>>) -> (SocketAddr, mpsc::Receiver<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for reply in replies {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
                let _ = s.write_all(&reply);
            }
        });
        (addr, rx)
    }

    fn ok(body: &str) -> Vec<u8> {
        format!("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n{body}").into_bytes()
    }

    #[test]
    fn a_get_reads_a_local_endpoint_and_refuses_what_is_not_200() {
        let (addr, _) = serve(vec![ok("h_bucket{le=\"1\"} 3\n"), b"HTTP/1.0 404 Not Found\r\n\r\n".to_vec(), b"SSH-2.0\r\n".to_vec()]);
        let host = addr.to_string();
        assert_eq!(get_histogram(addr, &host, "/metrics", QUICK, "t", "h").unwrap(), vec![(1.0, 3.0)]);
        assert!(get_histogram(addr, &host, "/metrics", QUICK, "t", "h").unwrap_err().to_string().contains("404"));
        assert!(get_histogram(addr, &host, "/metrics", QUICK, "t", "h").unwrap_err().to_string().contains("not an HTTP response"));
    }

    #[test]
    fn a_text_get_returns_the_body_and_refuses_one_over_its_limit() {
        let (addr, rx) = serve(vec![ok("scx_slo_mode 1\n"), ok(&"x".repeat(65))]);
        let host = addr.to_string();
        assert_eq!(get_text(addr, &host, "/metrics", QUICK, "t", 64).unwrap(), "scx_slo_mode 1\n");
        assert!(rx.recv().unwrap().starts_with("GET /metrics HTTP/1.0\r\nHost: "));
        let e = get_text(addr, &host, "/metrics", QUICK, "t", 64).unwrap_err();
        assert!(matches!(&e, ScrapeError::At { source, .. } if matches!(**source, ScrapeError::TooLarge { limit: 64 })), "{e:?}");
    }

    #[test]
    fn a_page_of_tiny_samples_is_refused_in_bounded_memory() {
        fn hwm_kb() -> u64 {
            let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            s.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
        }
        // 8 MiB of `a 1` lines: 2 million samples. Parsed whole, it took
        // 300 MB; streamed, it stops at the sample limit.
        let (addr, _) = serve(vec![ok(&"a 1\n".repeat((8 << 20) / 4 - 100))]);
        let before = hwm_kb();
        let t = Instant::now();
        let e = get_histogram(addr, &addr.to_string(), "/", QUICK, "t", "h").unwrap_err();
        assert!(e.to_string().contains("over 200000 samples"), "{e}");
        let grew_mb = hwm_kb().saturating_sub(before) / 1024;
        eprintln!("tiny samples: refused in {:?}, peak grew by {grew_mb} MB", t.elapsed());
        assert!(grew_mb < 32, "the peak grew by {grew_mb} MB");
    }

    #[test]
    fn a_trickling_endpoint_fails_at_the_whole_request_deadline() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\n");
            // One byte every 0.2 s: each read beats the 0.5 s read timeout.
            for b in "h_bucket{le=\"1\"} 1\n".repeat(100).bytes() {
                if s.write_all(&[b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let t = Instant::now();
        let timeouts = Timeouts { io: Duration::from_millis(500), total: Duration::from_millis(1500) };
        let e = get_histogram(addr, &addr.to_string(), "/", timeouts, "t", "h").unwrap_err();
        assert!(e.to_string().contains("deadline"), "{e}");
        assert!(t.elapsed() < Duration::from_millis(2500), "{:?}", t.elapsed());
    }

    /// A server that accepts and then says nothing is named for it, not
    /// for the socket's EAGAIN.
    #[test]
    fn a_silent_endpoint_is_named_for_the_per_read_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_secs(3));
            drop(s);
        });
        let timeouts = Timeouts { io: Duration::from_millis(300), total: Duration::from_millis(2000) };
        let e = get_histogram(addr, &addr.to_string(), "/", timeouts, "t", "h").unwrap_err().to_string();
        assert!(e.contains("sent nothing for 0.3 s (the per-read timeout)"), "{e}");
    }

    #[test]
    fn urls_are_plain_http_with_a_digit_port_and_no_fragment_is_sent() {
        for bad in ["https://x/metrics", "file:///etc/passwd", "http://", "http://a b/", "http://x/\r\nHost: y", "http://127.0.0.1:+80/", "http://127.0.0.1:-1/", "http://127.0.0.1:0/", "http://u@x/"] {
            assert!(split_url(bad).is_err(), "{bad}");
        }
        assert_eq!(split_url("http://[::1]:9/m?q=1#top").unwrap(), ("::1".into(), 9, "/m?q=1".into()));
        let (addr, requests) = serve(vec![ok("h_bucket{le=\"1\"} 1\n")]);
        http_histogram(&format!("http://127.0.0.1:{}/metrics#frag", addr.port()), "h", QUICK).unwrap();
        let request = requests.recv().unwrap();
        assert!(request.starts_with("GET /metrics HTTP/1.0\r\n") && !request.contains('#'), "{request}");
    }
}
