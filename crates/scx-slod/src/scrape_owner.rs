// SPDX-License-Identifier: GPL-2.0-only
//! Whose socket the scraper talks to (docs/security.md). A loopback port is anyone's
//! to take: while the service is down or restarting, another local user
//! could listen on its port and serve a histogram of its choosing, raising
//! the budget (within its clamps) or making the canary roll back, which
//! would silence enforcement. So before each scrape the listening socket's
//! owner (`/proc/net/tcp`, `/proc/net/tcp6`) must be a uid that a process
//! of the target's cgroup runs as, root, or scx-slod's own uid.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

/// Most cgroup directories and processes looked at per check.
const MAX_DIRS: usize = 256;
const MAX_PIDS: usize = 4096;

/// The uids of the sockets listening where a connection to `addr` would
/// land, from the text of `/proc/net/tcp` (IPv4) and `/proc/net/tcp6`.
pub fn listener_uids(addr: SocketAddr, tcp: &str, tcp6: &str) -> BTreeSet<u32> {
    let mut uids = BTreeSet::new();
    for (text, v6) in [(tcp, false), (tcp6, true)] {
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st ... uid (8th)
            let (Some(local), Some(state), Some(uid)) = (f.get(1), f.get(3), f.get(7)) else { continue };
            if *state != "0A" {
                continue;
            }
            let Some((ip_hex, port_hex)) = local.split_once(':') else { continue };
            if u16::from_str_radix(port_hex, 16).ok() != Some(addr.port()) {
                continue;
            }
            let Some(ip) = (if v6 { parse_v6(ip_hex).map(IpAddr::V6) } else { parse_v4(ip_hex).map(IpAddr::V4) }) else { continue };
            if reaches(ip, addr.ip()) {
                if let Ok(u) = uid.parse() {
                    uids.insert(u);
                }
            }
        }
    }
    uids
}

/// The uid owning the TCP socket bound at `local` and connected to
/// `remote`, from the text of `/proc/net/tcp` and `/proc/net/tcp6` (the
/// metrics endpoint's peer on loopback).
pub fn socket_uid(local: SocketAddr, remote: SocketAddr, tcp: &str, tcp6: &str) -> Option<u32> {
    socket_uid_in(local, remote, tcp.as_bytes(), false).or_else(|| socket_uid_in(local, remote, tcp6.as_bytes(), true))
}

/// [`socket_uid`] in one table as it is read, stopping at the socket's
/// line (a busy host's table runs to megabytes).
pub fn socket_uid_in(local: SocketAddr, remote: SocketAddr, table: impl std::io::BufRead, v6: bool) -> Option<u32> {
    let addr = |field: &str| -> Option<SocketAddr> {
        let (ip_hex, port_hex) = field.split_once(':')?;
        let port = u16::from_str_radix(port_hex, 16).ok()?;
        let ip = if v6 { IpAddr::V6(parse_v6(ip_hex)?) } else { IpAddr::V4(parse_v4(ip_hex)?) };
        Some(SocketAddr::new(ip, port))
    };
    // The local port first: it is cheap to compare and rules out most lines.
    let port_hex = format!(":{:04X}", local.port());
    for line in table.lines().skip(1).map_while(Result::ok) {
        let mut f = line.split_whitespace();
        let (Some(l), Some(r)) = (f.nth(1), f.next()) else { continue };
        if !l.ends_with(&port_hex) || addr(l) != Some(local) || addr(r) != Some(remote) {
            continue;
        }
        // sl local rem st tx:rx tr:when retrnsmt uid
        return f.nth(4)?.parse().ok();
    }
    None
}

/// The kernel prints an address as 32-bit words in host order.
fn parse_v4(hex: &str) -> Option<Ipv4Addr> {
    (hex.len() == 8).then(|| u32::from_str_radix(hex, 16).ok().map(|w| Ipv4Addr::from(w.to_ne_bytes())))?
}

fn parse_v6(hex: &str) -> Option<Ipv6Addr> {
    if hex.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for i in 0..4 {
        let w = u32::from_str_radix(&hex[8 * i..8 * i + 8], 16).ok()?;
        bytes[4 * i..4 * i + 4].copy_from_slice(&w.to_ne_bytes());
    }
    Some(Ipv6Addr::from(bytes))
}

/// Whether a socket listening on `listen` takes connections to `to`.
fn reaches(listen: IpAddr, to: IpAddr) -> bool {
    match (listen, to) {
        (l, t) if l == t || l.is_unspecified() => true,
        // A dual-stack IPv6 socket takes IPv4 through mapped addresses.
        (IpAddr::V6(l), IpAddr::V4(t)) => l.to_ipv4_mapped() == Some(t),
        _ => false,
    }
}

/// The effective uids of the processes in `dir` and below.
pub fn cgroup_uids(dir: &Path) -> BTreeSet<u32> {
    let mut uids = BTreeSet::new();
    let (mut dirs, mut seen_dirs, mut seen_pids) = (vec![dir.to_path_buf()], 0, 0);
    while let Some(d) = dirs.pop() {
        seen_dirs += 1;
        if seen_dirs > MAX_DIRS {
            break;
        }
        for pid in std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default().lines() {
            seen_pids += 1;
            if seen_pids > MAX_PIDS {
                return uids;
            }
            let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap_or_default();
            if let Some(uid) = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()) {
                uids.insert(uid);
            }
        }
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(e.path());
            }
        }
    }
    uids
}

/// The host's socket tables (`/proc/net/tcp`, `/proc/net/tcp6`), read once
/// per scraping round for every endpoint: on a busy host they run to
/// megabytes.
pub struct SocketTables {
    tcp: String,
    tcp6: String,
}

impl SocketTables {
    /// Reads both tables now.
    pub fn read() -> SocketTables {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        SocketTables { tcp: read("/proc/net/tcp"), tcp6: read("/proc/net/tcp6") }
    }
}

/// Whether the listener on `addr` may be scraped for the unit in `cgroup`.
pub fn check(addr: SocketAddr, cgroup: Option<&Path>, tables: &SocketTables) -> Result<(), String> {
    let owners = listener_uids(addr, &tables.tcp, &tables.tcp6);
    if owners.is_empty() {
        return Err(format!("nothing listens on {addr}"));
    }
    // SAFETY: geteuid(2) cannot fail.
    let me = unsafe { libc::geteuid() };
    let unit = cgroup.map(cgroup_uids).unwrap_or_default();
    match owners.iter().find(|o| **o != 0 && **o != me && !unit.contains(o)) {
        None => Ok(()),
        Some(o) => Err(format!(
            "the socket listening on {addr} belongs to uid {o}, which no process of the unit runs as (uids {unit:?}): not scraped, since another user's socket could feed the controller and the canary"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_of_a_connected_socket_is_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(server).unwrap();
        let local = client.local_addr().unwrap();
        let tables = SocketTables::read();
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        assert_eq!(socket_uid(local, server, &tables.tcp, &tables.tcp6), Some(me));
        assert_eq!(socket_uid(server, local, "", ""), None);
    }

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:238C 00000000:0000 0A 00000000:00000000 00:00000000 00000000   998        0 1146 1 0 100 0 0 10 0
   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1147 1 0 100 0 0 10 0
   2: 0100007F:238C 0100007F:A000 01 00000000:00000000 00:00000000 00000000  1001        0 1148 1 0 100 0 0 10 0
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   33        0 1 1 0 100 0 0 10 0
   1: 00000000000000000000000000000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   44        0 1 1 0 100 0 0 10 0
";

    #[test]
    fn the_listeners_owner_comes_from_proc_net_tcp() {
        let at = |s: &str| listener_uids(s.parse().unwrap(), TCP, TCP6);
        // 127.0.0.1:9100 (0x238C): listening, uid 998; the established
        // connection on the same port (state 01) is not a listener.
        assert_eq!(at("127.0.0.1:9100"), BTreeSet::from([998]));
        // 0.0.0.0:8080 takes loopback too.
        assert_eq!(at("127.0.0.1:8080"), BTreeSet::from([1000]));
        // [::1]:80 and a dual-stack [::]:8081 (which takes IPv4 too).
        assert_eq!(at("[::1]:80"), BTreeSet::from([33]));
        assert_eq!(at("127.0.0.1:8081"), BTreeSet::from([44]));
        assert!(at("127.0.0.1:9999").is_empty());
        assert_eq!(parse_v4("0100007F"), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(parse_v6("00000000000000000000000001000000"), Some(Ipv6Addr::LOCALHOST));
        assert_eq!(parse_v4("zz"), None);
    }

    #[test]
    fn our_own_cgroup_holds_our_uid_and_our_own_socket_passes() {
        // This process's cgroup (v2), where the test runs.
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        if let Some(rel) = own.lines().find_map(|l| l.strip_prefix("0::")) {
            let dir = Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'));
            if dir.join("cgroup.procs").exists() {
                // SAFETY: geteuid(2) cannot fail.
                let me = unsafe { libc::geteuid() };
                assert!(cgroup_uids(&dir).contains(&me), "{dir:?}");
            }
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(check(addr, None, &SocketTables::read()), Ok(()));
        drop(listener);
        assert!(check(addr, None, &SocketTables::read()).unwrap_err().contains("nothing listens"));
    }
}
