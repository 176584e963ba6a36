// SPDX-License-Identifier: GPL-2.0-only
//! `org.scxslo1.Manager` on the system bus (or `DBUS_SYSTEM_BUS_ADDRESS`):
//! a thin front that authorizes and forwards to the engine. The names, the
//! argument bounds, the proxy and the error enum are the wire crate's
//! (scx-slo-api), shared with every client.
//!
//! Authorization has two layers: the bus policy (data/org.scxslo1.conf) lets
//! anyone read and only root and group `scx-slo` call mutating methods, and
//! every mutating handler checks the caller's uid and groups again.

use tracing::{info, warn};
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::{fdo, interface, Connection};

pub use scx_slo_api::dbus::{arg_limits, bounded, private_bus_config, ManagerProxy, ManagerProxyBlocking, BUS_NAME, INTERFACE, OBJECT_PATH, OPERATOR_GROUP};
use scx_slo_api::ControlError as Error;

use crate::control::{Caller, EngineHandle, Event, Request};

/// The gid of the operators' group, if it exists.
fn operator_gid() -> Option<u32> {
    let name = std::ffi::CString::new(OPERATOR_GROUP).ok()?;
    // SAFETY: getgrnam returns a pointer to static storage or null; we read
    // one field immediately, on this thread.
    let gr = unsafe { libc::getgrnam(name.as_ptr()) };
    (!gr.is_null()).then(|| unsafe { (*gr).gr_gid })
}

/// Reads one connection may have waiting at once. Anyone may read, and the
/// engine takes [`crate::control::READ_SLOTS`] reads at a time: without a
/// per-sender share, one flooding connection held them all and every other
/// reader (a monitoring agent, an operator's `scx-slo status`) got Busy.
/// Per connection, not per user: a user's second connection is another
/// sender, but each costs that user a connection to the bus, which the bus
/// bounds.
pub const READS_PER_SENDER: usize = 2;

/// In-flight reads by sender; an entry lives only while its sender has one.
#[derive(Debug, Default)]
pub struct SenderQuota {
    inflight: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

/// One read's place in its sender's share, given back when dropped.
pub struct SenderSlot<'a> {
    quota: &'a SenderQuota,
    sender: String,
}

impl SenderQuota {
    /// A place for one more read of `sender`, or Busy past its share.
    pub fn acquire(&self, sender: &str) -> Result<SenderSlot<'_>, Error> {
        let mut map = self.inflight.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = map.entry(sender.to_string()).or_default();
        if *n >= READS_PER_SENDER {
            return Err(Error::Busy(format!("this connection already has {READS_PER_SENDER} reads waiting; wait for their replies")));
        }
        *n += 1;
        Ok(SenderSlot { quota: self, sender: sender.to_string() })
    }

    /// Senders with reads in flight.
    pub fn senders(&self) -> usize {
        self.inflight.lock().map_or(0, |m| m.len())
    }
}

impl Drop for SenderSlot<'_> {
    fn drop(&mut self) {
        let mut map = self.quota.inflight.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.sender) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.sender);
            }
        }
    }
}

/// The service object.
pub struct Manager {
    engine: EngineHandle,
    reads: SenderQuota,
}

impl Manager {
    /// A read, within its sender's share.
    async fn read(&self, header: &Header<'_>, request: Request) -> Result<String, Error> {
        let sender = header.sender().map(|s| s.to_string()).unwrap_or_default();
        let _slot = self.reads.acquire(&sender)?;
        self.engine.call(request).await
    }

    /// Checks the caller may change things, and says who it is (for the
    /// audit trail).
    async fn authorize(&self, header: &Header<'_>, conn: &Connection, member: &str) -> Result<Caller, Error> {
        let sender = header
            .sender()
            .ok_or_else(|| Error::AccessDenied("the call has no sender".into()))?
            .to_owned();
        let dbus = fdo::DBusProxy::new(conn).await.map_err(|e| Error::Failed(format!("asking the bus who called: {e}")))?;
        let creds = dbus
            .get_connection_credentials(sender.clone().into())
            .await
            .map_err(|e| Error::Failed(format!("asking the bus who called: {e}")))?;
        let uid = creds.unix_user_id();
        let groups: Vec<u32> = creds.unix_group_ids().cloned().unwrap_or_default();
        let gid = operator_gid();
        let allowed = uid == Some(0) || gid.is_some_and(|g| groups.contains(&g));
        if allowed {
            let pid = creds.process_id();
            return Ok(Caller { uid, pid, unit: pid.and_then(unit_of_pid), via: "dbus".into() });
        }
        warn!(event = "access_denied", caller = %sender, uid = ?uid, pid = ?creds.process_id(), member, "denied a mutating call");
        Err(Error::AccessDenied(format!(
            "{member} needs root or membership in group {OPERATOR_GROUP} (caller uid {})",
            uid.map_or("unknown".into(), |u| u.to_string())
        )))
    }

    async fn mutate(&self, header: &Header<'_>, conn: &Connection, member: &str, request: Request) -> Result<String, Error> {
        let caller = self.authorize(header, conn, member).await?;
        info!(event = "control_call", member, ?request, uid = ?caller.uid, pid = ?caller.pid, "control call");
        self.engine.call_as(request, caller).await
    }
}

#[interface(name = "org.scxslo1.Manager")]
impl Manager {
    /// The status document (JSON): state, mode, generation, targets with the
    /// kernel's counters, breaker, overrides.
    async fn status(&self, #[zbus(header)] header: Header<'_>) -> Result<String, Error> {
        self.read(&header, Request::Status).await
    }

    /// Targets and their cgroups (JSON array).
    async fn list_targets(&self, #[zbus(header)] header: Header<'_>) -> Result<String, Error> {
        self.read(&header, Request::ListTargets).await
    }

    /// Why a unit has its budget and priority now (JSON).
    async fn explain(&self, #[zbus(header)] header: Header<'_>, unit: String) -> Result<String, Error> {
        let unit = bounded("unit", unit, arg_limits::UNIT)?;
        self.read(&header, Request::Explain { unit }).await
    }

    /// Loads the scheduler (closes the breaker); replies once it runs or failed.
    async fn enable(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        mode: String,
    ) -> Result<String, Error> {
        let mode = bounded("mode", mode, arg_limits::MODE)?;
        self.mutate(&header, conn, "Enable", Request::Enable { mode }).await
    }

    /// Emergency stop: detaches before replying; stays off until Enable.
    async fn disable(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        reason: String,
    ) -> Result<String, Error> {
        let reason = bounded("reason", reason, arg_limits::REASON)?;
        self.mutate(&header, conn, "Disable", Request::Disable { reason }).await
    }

    /// Re-reads the config file and applies it as one generation.
    async fn reload(&self, #[zbus(header)] header: Header<'_>, #[zbus(connection)] conn: &Connection) -> Result<String, Error> {
        // Authorized before the file is read: an unprivileged caller never
        // makes the daemon read anything.
        let caller = self.authorize(&header, conn, "Reload").await?;
        info!(event = "control_call", member = "Reload", uid = ?caller.uid, pid = ?caller.pid, "control call");
        self.engine.reload(caller).await
    }

    /// Overrides a latency target's budget (admission-checked, persisted).
    async fn set_budget(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        unit: String,
        runtime_us: u64,
        period_us: u64,
        idempotency_key: String,
    ) -> Result<String, Error> {
        let unit = bounded("unit", unit, arg_limits::UNIT)?;
        let key = bounded("idempotency_key", idempotency_key, arg_limits::KEY)?;
        let request = Request::SetBudget { unit, runtime_us, period_us, key };
        self.mutate(&header, conn, "SetBudget", request).await
    }

    /// Removes a SetBudget override: the config file's budget applies again
    /// (a new generation; persisted).
    async fn clear_budget(&self, #[zbus(header)] header: Header<'_>, #[zbus(connection)] conn: &Connection, unit: String) -> Result<String, Error> {
        let unit = bounded("unit", unit, arg_limits::UNIT)?;
        self.mutate(&header, conn, "ClearBudget", Request::ClearBudget { unit }).await
    }

    /// Closes an open circuit breaker.
    async fn reset_breaker(&self, #[zbus(header)] header: Header<'_>, #[zbus(connection)] conn: &Connection) -> Result<String, Error> {
        self.mutate(&header, conn, "ResetBreaker", Request::ResetBreaker).await
    }

    /// Effective mode: `enforce` while the scheduler runs, else `none`.
    #[zbus(property)]
    async fn mode(&self) -> String {
        self.engine.snapshot().mode
    }

    /// disabled, starting, running, degraded, failed.
    #[zbus(property)]
    async fn state(&self) -> String {
        self.engine.snapshot().state.to_string()
    }

    /// Applied config generation.
    #[zbus(property)]
    async fn config_generation(&self) -> u64 {
        self.engine.snapshot().generation
    }

    /// A lifecycle transition.
    #[zbus(signal, name = "StateChanged")]
    async fn emit_state_changed(emitter: &SignalEmitter<'_>, state: &str, mode: &str, reason: &str) -> zbus::Result<()>;

    /// A deadline miss (or low slack) reported by the scheduler.
    #[zbus(signal, name = "SloViolation")]
    async fn emit_slo_violation(emitter: &SignalEmitter<'_>, unit: &str, kind: &str, slack_ns: i64) -> zbus::Result<()>;
}

/// The systemd unit a process runs in, from the last component of its
/// cgroup path (`/system.slice/deploy.service` -> `deploy.service`); None
/// for a process outside any service or scope.
fn unit_of_pid(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    let last = path.rsplit('/').next()?;
    (last.ends_with(".service") || last.ends_with(".scope")).then(|| last.chars().take(256).collect())
}

/// How often the connection is checked, and how many failed checks in a
/// row count as lost (one can be a busy bus).
pub const BUS_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
const BUS_CHECK_FAILURES: u32 = 2;

/// Returns when the connection to the bus is gone or org.scxslo1 is no
/// longer ours: dbus-daemon dropping the connection (an oversized message,
/// a restart of the bus) leaves a process that looks alive but that no
/// operator can reach, so the caller stops and systemd restarts it.
pub async fn watch_bus(conn: Connection) -> String {
    let mut failures = 0;
    loop {
        tokio::time::sleep(BUS_CHECK_EVERY).await;
        let ours = conn.unique_name().map(|n| n.to_string());
        let owner = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            conn.call_method(Some("org.freedesktop.DBus"), "/org/freedesktop/DBus", Some("org.freedesktop.DBus"), "GetNameOwner", &(BUS_NAME)),
        )
        .await;
        let why = match owner {
            Err(_) => Some("the bus did not answer GetNameOwner within 5 s".to_string()),
            Ok(Err(e)) => Some(format!("GetNameOwner({BUS_NAME}) failed: {e}")),
            Ok(Ok(reply)) => match reply.body().deserialize::<String>() {
                Ok(owner) if Some(&owner) == ours.as_ref() => None,
                Ok(owner) => Some(format!("{BUS_NAME} is owned by {owner}, not by this daemon ({})", ours.unwrap_or_default())),
                Err(e) => Some(format!("GetNameOwner reply: {e}")),
            },
        };
        match why {
            None => failures = 0,
            Some(why) => {
                failures += 1;
                if failures >= BUS_CHECK_FAILURES {
                    return why;
                }
            }
        }
    }
}

/// Serves the object, takes the name, and forwards engine events as signals
/// until the connection or the engine goes away.
pub async fn serve(engine: EngineHandle, mut events: tokio::sync::mpsc::Receiver<Event>) -> zbus::Result<Connection> {
    let conn = zbus::connection::Builder::system()?
        .serve_at(OBJECT_PATH, Manager { engine, reads: SenderQuota::default() })?
        .name(BUS_NAME)?
        .build()
        .await?;
    let forward = conn.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let Err(e) = emit(&forward, event).await {
                warn!(error = %e, "emitting a D-Bus signal");
            }
        }
    });
    Ok(conn)
}

async fn emit(conn: &Connection, event: Event) -> zbus::Result<()> {
    let iface = conn.object_server().interface::<_, Manager>(OBJECT_PATH).await?;
    let emitter = iface.signal_emitter();
    match event {
        Event::StateChanged { state, mode, reason } => {
            Manager::emit_state_changed(emitter, &state, &mode, &reason).await?;
        }
        Event::SloViolation { unit, kind, slack_ns } => {
            return Manager::emit_slo_violation(emitter, &unit, &kind, slack_ns).await;
        }
        Event::PropertiesChanged => {}
    }
    let manager = iface.get().await;
    manager.state_changed(emitter).await?;
    manager.mode_changed(emitter).await?;
    manager.config_generation_changed(emitter).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One connection cannot take every read slot; its places
    /// come back as its replies go out, and nothing stays behind.
    #[test]
    fn each_sender_gets_a_share_of_the_reads() {
        let quota = SenderQuota::default();
        let a1 = quota.acquire(":1.7").unwrap();
        let _a2 = quota.acquire(":1.7").unwrap();
        assert!(matches!(quota.acquire(":1.7"), Err(Error::Busy(m)) if m.contains("2 reads waiting")));
        let _b = quota.acquire(":1.8").expect("another sender still reads");
        drop(a1);
        let _a3 = quota.acquire(":1.7").expect("a place came back");
        drop((_a2, _a3, _b));
        assert_eq!(quota.senders(), 0, "no entry outlives its reads");
    }
}
