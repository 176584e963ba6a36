// SPDX-License-Identifier: GPL-2.0-only
//! The client's side of the daemon's operator socket: the same
//! `org.scxslo1.Manager` as on the system bus, peer to peer (D-Bus without
//! a bus) on a unix socket only root and group `scx-slo` may open. One
//! connect for every client (the CLI, the lab, the daemon's tests), so the
//! bounds are the same everywhere.

use std::path::Path;
use std::time::Duration;

/// How long the connect and the handshake may take before a client gives
/// up (the CLI then goes to the bus): a stopped or frozen daemon still has
/// the kernel queue the connect, and would hold the client forever.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a call on the socket may take (a Reload that loads the
/// scheduler, under an emulator, takes seconds).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Connects to the operator socket at `path`, the connect and handshake
/// bounded by [`HANDSHAKE_TIMEOUT`] and each call by [`CALL_TIMEOUT`]. A
/// caller who may not open the socket gets `InputOutput` with
/// `PermissionDenied`.
pub fn connect(path: &Path) -> zbus::Result<zbus::blocking::Connection> {
    let connected = zbus::block_on(async {
        let connect = async {
            let stream = tokio::net::UnixStream::connect(path).await?;
            zbus::connection::Builder::unix_stream(stream).p2p().method_timeout(CALL_TIMEOUT).build().await
        };
        tokio::time::timeout(HANDSHAKE_TIMEOUT, connect).await.unwrap_or_else(|_| {
            let secs = HANDSHAKE_TIMEOUT.as_secs();
            Err(zbus::Error::InputOutput(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("no handshake within {secs} s")).into()))
        })
    });
    connected.map(zbus::blocking::Connection::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_listening_is_an_error_not_a_hang() {
        let dir = std::env::temp_dir().join(format!("scx-slo-api-operator-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let start = std::time::Instant::now();
        assert!(connect(&dir.join("missing.sock")).is_err());
        // A socket that accepts but never speaks: the handshake is bounded.
        let path = dir.join("silent.sock");
        let _ = std::fs::remove_file(&path);
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let err = connect(&path).expect_err("no handshake");
        assert!(err.to_string().contains("no handshake within 5 s"), "{err}");
        assert!(start.elapsed() < HANDSHAKE_TIMEOUT * 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
