// SPDX-License-Identifier: GPL-2.0-only
//! Validation of a latency target's `scrape` block (docs/config.md): where the
//! service's own latency histogram is, for the controller and the canary.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::bounds::limits;
use crate::config::Scrape;
use crate::error::{ConfigErrors, JsonPath};
use crate::raw::RawScrape;

/// A scrape URL taken apart: where to connect, and what to ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrapeUrl {
    /// A loopback address and port.
    pub addr: SocketAddr,
    /// The `Host` header's value.
    pub host: String,
    /// The request path, from `/`.
    pub path: String,
}

/// Parses a scrape URL the daemon may fetch: `http://` (the endpoint is on
/// this host, TLS adds nothing there), a loopback host (`127.0.0.0/8`,
/// `[::1]` or `localhost`, taken as 127.0.0.1 without asking a resolver),
/// a port (default 80) and a path (default `/`).
pub fn parse_scrape_url(url: &str) -> Result<ScrapeUrl, String> {
    if url.len() > limits::SCRAPE_URL_MAX {
        return Err(format!("{} bytes, over the {} allowed", url.len(), limits::SCRAPE_URL_MAX));
    }
    if let Some(c) = url.chars().find(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("{c:?} has no place in a URL"));
    }
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs are scraped (the endpoint is on this host)")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if path.contains('#') {
        return Err("a fragment (#...) is not sent to a server; remove it".into());
    }
    if authority.contains('@') {
        return Err("credentials in the URL are not supported".into());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (ip, after) = v6.split_once(']').ok_or("an IPv6 host needs its closing ]")?;
        (ip, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => 80,
        // `u16::from_str` takes a leading `+`; a URL's port is digits only.
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(format!("port {:?} is not a port (1-65535 in digits)", p.chars().take(8).collect::<String>())),
        },
    };
    let ip = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        match host.parse::<IpAddr>() {
            Ok(ip) if ip.is_loopback() => ip,
            Ok(ip) => return Err(format!("{ip} is not a loopback address: the daemon scrapes only this host (127.0.0.0/8, [::1] or localhost)")),
            // At most 64 characters of the host are quoted: escaped, a
            // host of odd characters near the URL's size limit made an
            // error of over 700 bytes (the fuzz target's bound).
            Err(_) => {
                let shown: String = host.chars().take(64).collect();
                let cut = if shown.len() < host.len() { "..." } else { "" };
                return Err(format!("{shown:?}{cut}: the host must be 127.0.0.0/8, [::1] or localhost (the daemon resolves no names)"));
            }
        }
    };
    let host_header = match ip {
        IpAddr::V6(v6) if v6 == Ipv6Addr::LOCALHOST => format!("[::1]:{port}"),
        _ => format!("{host}:{port}"),
    };
    Ok(ScrapeUrl { addr: SocketAddr::new(ip, port), host: host_header, path: path.to_string() })
}

/// Whether `name` is a Prometheus metric name.
fn metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// The block's fields.
pub(crate) fn validate_scrape(errors: &mut ConfigErrors, path: &JsonPath, raw: RawScrape) -> Option<Scrape> {
    let before = errors.problems.len();
    if let Err(e) = parse_scrape_url(&raw.url) {
        errors.push(path.key("url"), e);
    }
    let h = &raw.histogram;
    if h.len() > limits::SCRAPE_HISTOGRAM_MAX {
        errors.push(path.key("histogram"), format!("{} bytes, over the {} allowed", h.len(), limits::SCRAPE_HISTOGRAM_MAX));
    } else if !metric_name(h) {
        errors.push(path.key("histogram"), format!("{h:?} is not a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)"));
    } else if let Some(base) = ["_bucket", "_sum", "_count"].iter().find_map(|s| h.strip_suffix(s)) {
        errors.push(path.key("histogram"), format!("{h:?} is one of the histogram's series: give its base name, {base:?}"));
    }
    (errors.problems.len() == before).then_some(Scrape { url: raw.url, histogram: raw.histogram })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_url_is_http_on_loopback() {
        let u = parse_scrape_url("http://127.0.0.1:9100/metrics").unwrap();
        assert_eq!(u.addr, "127.0.0.1:9100".parse().unwrap());
        assert_eq!((u.host.as_str(), u.path.as_str()), ("127.0.0.1:9100", "/metrics"));
        let u = parse_scrape_url("http://localhost").unwrap();
        assert_eq!((u.addr, u.path.as_str()), ("127.0.0.1:80".parse().unwrap(), "/"));
        assert_eq!(parse_scrape_url("http://[::1]:8080/m?x=1").unwrap().addr, "[::1]:8080".parse().unwrap());
        assert!(parse_scrape_url("http://127.3.2.1:1/").is_ok());
        for (bad, why) in [
            ("https://127.0.0.1/", "only http://"),
            ("http://10.0.0.1:9100/metrics", "not a loopback address"),
            ("http://example.org/metrics", "resolves no names"),
            ("http://127.0.0.1:0/", "not a port"),
            ("http://127.0.0.1:99999/", "not a port"),
            ("http://127.0.0.1:80/a b", "no place in a URL"),
            ("http://127.0.0.1/\n", "no place in a URL"),
            ("http://u:p@127.0.0.1/", "credentials"),
            ("http://[::1/", "closing ]"),
            ("http://127.0.0.1/#x", "fragment"),
            ("http://127.0.0.1:+80/", "not a port"),
            ("http://127.0.0.1:+80", "not a port"),
        ] {
            let e = parse_scrape_url(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(parse_scrape_url(&format!("http://127.0.0.1/{}", "a".repeat(600))).unwrap_err().contains("over the 512"));
    }

    #[test]
    fn a_host_of_odd_characters_gets_a_short_error() {
        // The fuzzer's input: characters that Debug escapes to 10 bytes each
        // once made a 1 KB error out of a URL under the size limit.
        let host: String = std::iter::repeat('\u{3c225}').take(120).collect();
        let url = format!("http://{host}/m");
        assert!(url.len() <= limits::SCRAPE_URL_MAX);
        let e = parse_scrape_url(&url).unwrap_err();
        assert!(e.len() <= 700 && e.contains("...: the host must be"), "{} bytes: {e}", e.len());
        // The fuzzer's own input (checks/fuzz-run, target scrape), in hex.
        let hex = concat!(
            "687474703a2f2f3132372e302e30f1ac88a5df23ffa5df23fff1ac8aa5df2341f1acf1ac8a8af1aca58af1ac8d8a8af1",
            "ac8aa52323fff1ac88a5232323f1ac88a5dff1ac8aa5df2341f1acf1ac8aa58af1acac8a8af1ac8aa52323fff1ac88f1",
            "acac8aa58af1acac8a8af1ac8aa523fff1ac888aa58aa523fff1ac88f1ac8aa5232323f1ac88a5dff1ac8aa5df2341f1",
            "acf1ac8aa58af1acac8a8af1ac8aa5232323fff1ac88f1acac8aa58af1acac8a8af1ac8aa523fff1ac888aa523ffa4f1",
            "ac88a5df23fff1acac88a5df23ffa5df23fff1ac8aa5dff1ac88a5dff1ac2341f1acf1ac8a8af1aca58af1acac8a8af1",
            "ac8aa523fff1ac88f1ac8aa5232323f1ac88a5dff1ac8aa5df2341f1acf1ac8a8aa5df2341f1acf1a58af1acac8a8af1",
            "ac8aa523f1ac88a5dff1ac8aa5df2341f1acac2ef130ac8aa523"
        );
        let fuzzed: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        let e = parse_scrape_url(&String::from_utf8_lossy(&fuzzed)).unwrap_err();
        assert!(e.len() <= 700, "{} bytes: {e}", e.len());
    }

    #[test]
    fn the_histogram_is_a_base_metric_name() {
        assert!(metric_name("http_request_duration_seconds") && metric_name(":a1"));
        assert!(!metric_name("") && !metric_name("1a") && !metric_name("a-b") && !metric_name("a{b}"));
        let check = |h: &str| {
            let mut e = ConfigErrors::default();
            let got = validate_scrape(&mut e, &JsonPath::root(), RawScrape { url: "http://127.0.0.1:1/".into(), histogram: h.into() });
            (got.is_some(), e.problems.iter().map(|p| p.message.clone()).collect::<Vec<_>>().join("; "))
        };
        assert_eq!(check("rpc_seconds"), (true, String::new()));
        assert!(check("rpc_seconds_bucket").1.contains("give its base name, \"rpc_seconds\""));
        assert!(check("rpc seconds").1.contains("not a metric name"));
        assert!(check(&"a".repeat(201)).1.contains("over the 200"));
    }
}
