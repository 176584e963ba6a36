// SPDX-License-Identifier: GPL-2.0-only
//! The operator socket: the same `org.scxslo1.Manager` object as on the
//! system bus, served peer to peer (D-Bus without a bus) on a unix socket
//! that only root and group `scx-slo` can open (mode 0660, group
//! `scx-slo`). It is the operators' own share of the daemon: no flood on
//! the bus reaches it (dbus-daemon drops messages to a full queue, root's
//! included), the caller is the socket's peer (no round trip to ask who
//! called), and its reads have their own slots. `scx-slo` uses it when it
//! exists, and the system bus otherwise.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::bus_callers::DenialLog;
use crate::control::EngineHandle;
use crate::dbus::{Lane, Manager, OBJECT_PATH, OPERATOR_GROUP};

/// Connections served at once; past this a new one is closed at once.
/// Only operators can connect, so this bounds a runaway script, not an
/// attacker. [`ROOT_RESERVED`] of them are root's alone.
pub const MAX_CONNECTIONS: usize = 8;
/// Places only root may take: members of group `scx-slo` holding every
/// other place (a runaway script, a forgotten loop) never lock root out.
pub const ROOT_RESERVED: usize = 1;
/// A connection with no call for this long is closed: the 8 places are
/// not held by a client that forgot its connection.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a new connection may take to authenticate (only operators
/// can connect: this bounds a stuck client, and leaves room for an
/// emulated machine under load).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the socket at `path`: a stale socket there is replaced, anything
/// else is refused by name (never removed). Mode 0660 with group
/// `scx-slo` when the group exists and the daemon may give the socket to
/// it (the NixOS unit adds the group to the daemon's), else 0600: root
/// only.
pub fn bind(path: &Path) -> Result<std::os::unix::net::UnixListener, String> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            // Another daemon's live socket is left to it; only a socket
            // nothing answers on is stale.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(format!("{} is served by another process (is a second scx-slod running?); it was left alone", path.display()));
            }
            std::fs::remove_file(path).map_err(|e| format!("removing the stale socket {}: {e}", path.display()))?;
        }
        Ok(_) => return Err(format!("{} exists and is not a socket; it was left alone (remove it, or pass --control-socket off)", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", path.display())),
    }
    // The runtime directory, made as the status file's is when systemd did
    // not make it (RuntimeDirectory=).
    if let Some(dir) = path.parent().filter(|d| !d.exists()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        // Reachable by the operators whatever the daemon's umask (0077
        // under the NixOS unit); the socket's own mode admits them.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(|e| format!("setting the mode of {}: {e}", dir.display()))?;
    }
    let listener = std::os::unix::net::UnixListener::bind(path).map_err(|e| format!("binding {}: {e}", path.display()))?;
    let group = crate::dbus::operator_gid().and_then(|gid| {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
        // SAFETY: chown on a NUL-terminated path; -1 keeps the owner.
        (unsafe { libc::chown(c.as_ptr(), u32::MAX, gid) } == 0).then_some(gid)
    });
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| format!("setting the mode of {}: {e}", path.display()))?;
    match group {
        Some(_) => info!(path = %path.display(), "operator socket: root and group {OPERATOR_GROUP}"),
        None => warn!(path = %path.display(), "operator socket: root only (group {OPERATOR_GROUP} is missing, or the daemon may not give the socket to it)"),
    }
    Ok(listener)
}

/// Whether the peer may use the socket: root, or in the operators' group.
/// The same rule as every mutating call's ([`crate::dbus::privileged`]),
/// on the peer's gid and its process's own groups.
fn peer_allowed(uid: u32, gid: u32, pid: Option<i32>) -> bool {
    let pid = pid.and_then(|p| u32::try_from(p).ok());
    let mut groups = pid.map(crate::bus_callers::proc_groups).unwrap_or_default();
    groups.push(gid);
    crate::dbus::privileged(&crate::bus_callers::Credentials { uid: Some(uid), pid, groups })
}

/// Serves the socket on a thread and runtime of its own: a flood on the
/// system bus keeps the bus's runtime busy reading and refusing large
/// calls, and the operators' lane must not wait behind it.
pub fn spawn(listener: std::os::unix::net::UnixListener, engine: EngineHandle) -> std::io::Result<()> {
    // Named: its blocking threads (Reload's config read) inherit the
    // operator thread's nice, and are told apart from the bus's workers.
    let runtime = tokio::runtime::Builder::new_current_thread().thread_name("scx-slo-operator").enable_all().build()?;
    std::thread::Builder::new().name("scx-slo-operator".into()).spawn(move || {
        // An operator's Disable is read here: it must not wait behind a
        // flood for the CPU (crate::priority).
        crate::priority::raise_control_thread("operator socket");
        runtime.block_on(serve(listener, engine))
    })?;
    Ok(())
}

/// Accepts connections until the runtime stops.
pub async fn serve(listener: std::os::unix::net::UnixListener, engine: EngineHandle) {
    if let Err(e) = listener.set_nonblocking(true) {
        warn!(error = %e, "operator socket: not served");
        return;
    }
    let listener = match tokio::net::UnixListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            warn!(error = %e, "operator socket: not served");
            return;
        }
    };
    let slots = Slots::new();
    let refusals = Arc::new(DenialLog::default());
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                warn!(error = %e, "operator socket: accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // The kernel's record of the peer, taken at connect: who it is
        // decides which places it may use.
        let Ok(cred) = stream.peer_cred() else { continue };
        let Some(permit) = slots.take(cred.uid()) else {
            if let Some(suppressed) = refusals.should_log(std::time::Instant::now()) {
                warn!(uid = cred.uid(), suppressed, "operator socket: every place this peer may use is taken ({MAX_CONNECTIONS} in all, {ROOT_RESERVED} kept for root); a new connection was closed");
            }
            continue;
        };
        let (engine, refusals) = (engine.clone(), refusals.clone());
        tokio::spawn(async move {
            let _permit = permit;
            if !peer_allowed(cred.uid(), cred.gid(), cred.pid()) {
                if let Some(suppressed) = refusals.should_log(std::time::Instant::now()) {
                    warn!(event = "access_denied", uid = cred.uid(), pid = ?cred.pid(), suppressed, "operator socket: refused a peer that is neither root nor in group {OPERATOR_GROUP}");
                }
                return;
            }
            let build = async {
                zbus::connection::Builder::unix_stream(stream)
                    .p2p()
                    .server(zbus::Guid::generate())?
                    .serve_at(OBJECT_PATH, Manager::new(engine, Lane::Operator))?
                    .build()
                    .await
            };
            let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, build).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => {
                    warn!(error = %e, "operator socket: a connection failed its handshake");
                    return;
                }
                Err(_) => return,
            };
            // Served until the peer hangs up (the stream ends with the
            // socket) or sends nothing for IDLE_TIMEOUT. Every message is
            // taken off the stream at once, so it never holds up the
            // connection's reader.
            let mut messages = zbus::MessageStream::from(&conn);
            while let Ok(Some(_)) = tokio::time::timeout(IDLE_TIMEOUT, futures_next(&mut messages)).await {}
        });
    }
}

/// The connection places: shared ones, and [`ROOT_RESERVED`] that only
/// uid 0 may take once the shared ones are gone.
struct Slots {
    shared: Arc<tokio::sync::Semaphore>,
    root_only: Arc<tokio::sync::Semaphore>,
}

impl Slots {
    fn new() -> Slots {
        Slots {
            shared: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS - ROOT_RESERVED)),
            root_only: Arc::new(tokio::sync::Semaphore::new(ROOT_RESERVED)),
        }
    }

    /// A place for a peer of `uid`, held until the permit is dropped; None
    /// when every place it may use is taken.
    fn take(&self, uid: u32) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.shared.clone().try_acquire_owned().ok().or_else(|| (uid == 0).then(|| self.root_only.clone().try_acquire_owned().ok()).flatten())
    }
}

async fn futures_next(stream: &mut zbus::MessageStream) -> Option<zbus::Result<zbus::Message>> {
    std::future::poll_fn(|cx| {
        use futures_core::Stream;
        std::pin::Pin::new(&mut *stream).poll_next(cx)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_holding_every_shared_place_leave_roots_place_free() {
        let slots = Slots::new();
        let operator = 1000;
        let held: Vec<_> = std::iter::from_fn(|| slots.take(operator)).collect();
        assert_eq!(held.len(), MAX_CONNECTIONS - ROOT_RESERVED, "an operator gets every shared place and no more");
        assert!(slots.take(operator).is_none());
        let root = slots.take(0).expect("root's place is free");
        assert!(slots.take(0).is_none(), "root has one reserved place, then waits like everyone");
        drop(root);
        assert!(slots.take(operator).is_none(), "root's place is never given to an operator");
        drop(held);
        assert!(slots.take(operator).is_some(), "places come back when connections close");
    }
}
