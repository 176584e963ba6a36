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

/// The gid of the operators' group, if it exists: looked up once (getgrnam
/// is not reentrant, and both the bus's runtime and the operator socket's
/// ask), so a group made after the daemon started counts from its restart.
pub(crate) fn operator_gid() -> Option<u32> {
    static GID: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *GID.get_or_init(|| {
        let name = std::ffi::CString::new(OPERATOR_GROUP).ok()?;
        // SAFETY: getgrnam returns a pointer to static storage or null; we
        // read one field immediately, once, under the OnceLock.
        let gr = unsafe { libc::getgrnam(name.as_ptr()) };
        (!gr.is_null()).then(|| unsafe { (*gr).gr_gid })
    })
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

/// Where a call came from: the system bus (anyone may read), or the
/// operator socket (only root and group `scx-slo` can connect; its reads
/// have their own slots, so no flood on the bus reaches them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// The system bus: the caller is asked of the bus.
    Bus,
    /// A peer-to-peer connection on the operator socket: the caller is the
    /// socket's peer (SO_PEERCRED).
    Operator,
}

/// Refused reads whose caller is asked of the bus at once (to find an
/// operator among them); the rest are refused without asking.
const BUSY_LOOKUPS: usize = 4;

/// How long the bus may take to say who called. Under a flood of large
/// calls dbus-daemon drops messages to a full queue, replies to the
/// daemon's own questions included: without a bound, root's Disable waited
/// for that reply forever.
pub const WHO_CALLED_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Whether a caller may change things: root, or a member of the operators'
/// group.
pub(crate) fn privileged(creds: &crate::bus_callers::Credentials) -> bool {
    creds.uid == Some(0) || operator_gid().is_some_and(|g| creds.groups.contains(&g))
}

/// The service object.
pub struct Manager {
    engine: EngineHandle,
    reads: SenderQuota,
    lane: Lane,
    callers: crate::bus_callers::CallerCache,
    denials: crate::bus_callers::DenialLog,
    /// Questions to the bus about a refused read's caller in flight at most.
    lookups: tokio::sync::Semaphore,
}

impl Manager {
    /// The object for one lane.
    pub fn new(engine: EngineHandle, lane: Lane) -> Manager {
        Manager { engine, reads: SenderQuota::default(), lane, callers: Default::default(), denials: Default::default(), lookups: tokio::sync::Semaphore::new(BUSY_LOOKUPS) }
    }

    /// A read, within its sender's share (on the bus) or the operators'
    /// own slots (on the operator socket).
    async fn read(&self, header: &Header<'_>, conn: &Connection, request: Request) -> Result<String, Error> {
        if self.lane == Lane::Operator {
            return self.engine.call_as_operator(request, Caller::default()).await;
        }
        let sender = header.sender().map(|s| s.to_string()).unwrap_or_default();
        let _slot = self.reads.acquire(&sender)?;
        match self.engine.call(request.clone()).await {
            // Everyone's read slots are taken (by others' reads): an
            // operator on the bus still gets through, on the operators' own.
            // Asking the bus who called is itself bounded (a few at once),
            // so a flood of refused reads cannot become a flood of
            // questions to the bus.
            // A caller the bus already named is judged at once; only an
            // unknown one waits for one of the few lookups.
            Err(Error::Busy(why)) => {
                let creds = match self.callers.get(&sender) {
                    Some(creds) => Some(creds),
                    None => match tokio::time::timeout(WHO_CALLED_TIMEOUT, self.lookups.acquire()).await {
                        Ok(Ok(_asking)) => self.who_called(header, conn).await.ok().map(|(_, creds)| creds),
                        _ => None,
                    },
                };
                match creds {
                    Some(creds) if privileged(&creds) => self.engine.call_as_operator(request, Caller::default()).await,
                    _ => Err(Error::Busy(why)),
                }
            }
            other => other,
        }
    }

    /// Who called: the socket's peer on the operator socket; on the bus,
    /// the bus's answer (kept per unique name, which the bus never reuses).
    async fn who_called(&self, header: &Header<'_>, conn: &Connection) -> Result<(String, crate::bus_callers::Credentials), Error> {
        if self.lane == Lane::Operator {
            let creds = conn.peer_creds().await.map_err(|e| Error::Failed(format!("reading the operator socket's peer: {e}")))?;
            return Ok(("operator socket".into(), crate::bus_callers::Credentials::from_fdo(creds)));
        }
        let sender = header
            .sender()
            .ok_or_else(|| Error::AccessDenied("the call has no sender".into()))?
            .to_string();
        if let Some(creds) = self.callers.get(&sender) {
            return Ok((sender, creds));
        }
        let ask = async {
            let dbus = fdo::DBusProxy::new(conn).await?;
            dbus.get_connection_credentials(sender.as_str().try_into().map_err(zbus::Error::from)?).await.map_err(zbus::Error::from)
        };
        let creds = match tokio::time::timeout(WHO_CALLED_TIMEOUT, ask).await {
            Ok(Ok(creds)) => crate::bus_callers::Credentials::from_fdo(&creds),
            Ok(Err(e)) => return Err(Error::Failed(format!("asking the bus who called: {e}; nothing was done"))),
            Err(_) => {
                return Err(Error::Failed(format!(
                    "the bus did not say who called within {} s (it is congested); nothing was done. \
                     The operator socket ({}) does not go through the bus: scx-slo uses it when it exists",
                    WHO_CALLED_TIMEOUT.as_secs(),
                    scx_slo_api::paths::CONTROL_SOCKET
                )))
            }
        };
        self.callers.insert(sender.clone(), creds.clone());
        Ok((sender, creds))
    }

    /// Checks the caller may change things, and says who it is (for the
    /// audit trail).
    async fn authorize(&self, header: &Header<'_>, conn: &Connection, member: &str) -> Result<Caller, Error> {
        let (sender, creds) = self.who_called(header, conn).await?;
        let allowed = privileged(&creds);
        let via = match self.lane {
            Lane::Bus => "dbus",
            Lane::Operator => "operator-socket",
        };
        if allowed {
            return Ok(Caller { uid: creds.uid, pid: creds.pid, unit: creds.pid.and_then(unit_of_pid), via: via.into() });
        }
        // Logged at most once a second with a count of the rest: a flood
        // of denied calls would otherwise push the daemon past journald's
        // per-unit rate limit and silence what it logs next.
        if let Some(suppressed) = self.denials.should_log(std::time::Instant::now()) {
            warn!(event = "access_denied", caller = %sender, uid = ?creds.uid, pid = ?creds.pid, member, suppressed, "denied a mutating call");
        }
        Err(Error::AccessDenied(format!(
            "{member} needs root or membership in group {OPERATOR_GROUP} (caller uid {})",
            creds.uid.map_or("unknown".into(), |u| u.to_string())
        )))
    }

    async fn mutate(&self, header: &Header<'_>, conn: &Connection, member: &str, request: Request) -> Result<String, Error> {
        let caller = self.authorize(header, conn, member).await?;
        info!(event = "control_call", member, ?request, uid = ?caller.uid, pid = ?caller.pid, via = %caller.via, "control call");
        match self.lane {
            Lane::Bus => self.engine.call_as(request, caller).await,
            Lane::Operator => self.engine.call_as_operator(request, caller).await,
        }
    }
}

#[interface(name = "org.scxslo1.Manager")]
impl Manager {
    /// The status document (JSON): state, mode, generation, targets with the
    /// kernel's counters, breaker, overrides.
    async fn status(&self, #[zbus(header)] header: Header<'_>, #[zbus(connection)] conn: &Connection) -> Result<String, Error> {
        self.read(&header, conn, Request::Status).await
    }

    /// Targets and their cgroups (JSON array).
    async fn list_targets(&self, #[zbus(header)] header: Header<'_>, #[zbus(connection)] conn: &Connection) -> Result<String, Error> {
        self.read(&header, conn, Request::ListTargets).await
    }

    /// Why a unit has its budget and priority now (JSON).
    async fn explain(&self, #[zbus(header)] header: Header<'_>, #[zbus(connection)] conn: &Connection, unit: String) -> Result<String, Error> {
        let unit = bounded("unit", unit, arg_limits::UNIT)?;
        self.read(&header, conn, Request::Explain { unit }).await
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
/// row count as lost (one can be a restart of the bus in progress).
pub const BUS_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
const BUS_CHECK_FAILURES: u32 = 2;
/// How long the bus may take to answer a check.
const BUS_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// What one check of the connection found.
#[derive(Debug, PartialEq, Eq)]
pub enum BusCheck {
    /// The bus answered, and the name is ours.
    Ours,
    /// No answer in time, or the bus refused for its limits: a flood, not
    /// a loss. dbus-daemon drops messages to a full queue, so under a
    /// flood of large calls the answer can be lost while the connection
    /// and the name stay ours; concluding "lost" then made the daemon
    /// detach and exit.
    Congested(String),
    /// Evidence of loss: the connection is closed, or the name is not ours.
    Lost(String),
}

/// Classifies one GetNameOwner check (None: no answer within the timeout).
pub fn classify_check(answer: Option<zbus::Result<String>>, ours: Option<&str>) -> BusCheck {
    match answer {
        None => BusCheck::Congested(format!("the bus did not answer GetNameOwner within {} s", BUS_CHECK_TIMEOUT.as_secs())),
        Some(Ok(owner)) if Some(owner.as_str()) == ours => BusCheck::Ours,
        Some(Ok(owner)) => BusCheck::Lost(format!("{BUS_NAME} is owned by {owner}, not by this daemon ({})", ours.unwrap_or_default())),
        Some(Err(zbus::Error::MethodError(name, msg, _))) if name.as_str() == "org.freedesktop.DBus.Error.LimitsExceeded" => {
            BusCheck::Congested(format!("the bus refused GetNameOwner for its limits: {}", msg.unwrap_or_default()))
        }
        Some(Err(e)) => BusCheck::Lost(format!("GetNameOwner({BUS_NAME}) failed: {e}")),
    }
}

/// Returns when the connection to the bus is gone or org.scxslo1 is no
/// longer ours: dbus-daemon dropping the connection (an oversized message,
/// a restart of the bus) leaves a process that looks alive but that no
/// operator can reach, so the caller stops and systemd restarts it. A bus
/// that is only slow or full is logged (once a minute at most), never
/// taken for lost: the operator socket still reaches the daemon then.
pub async fn watch_bus(conn: Connection) -> String {
    let mut failures = 0;
    let mut congestion_logged: Option<std::time::Instant> = None;
    loop {
        tokio::time::sleep(BUS_CHECK_EVERY).await;
        let ours = conn.unique_name().map(|n| n.to_string());
        let call = conn.call_method(Some("org.freedesktop.DBus"), "/org/freedesktop/DBus", Some("org.freedesktop.DBus"), "GetNameOwner", &(BUS_NAME));
        let answer = tokio::time::timeout(BUS_CHECK_TIMEOUT, call)
            .await
            .ok()
            .map(|r| r.and_then(|reply| reply.body().deserialize::<String>()));
        match classify_check(answer, ours.as_deref()) {
            BusCheck::Ours => {
                failures = 0;
                if congestion_logged.take().is_some() {
                    info!(event = "bus_congestion_over", "the system bus answers again");
                }
            }
            BusCheck::Congested(why) => {
                // Losses count in a row: an answer of any kind breaks the run.
                failures = 0;
                if congestion_logged.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(60)) {
                    warn!(event = "bus_congested", reason = %why, "the system bus is congested; not treated as lost");
                    congestion_logged = Some(std::time::Instant::now());
                }
            }
            BusCheck::Lost(why) => {
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
        .serve_at(OBJECT_PATH, Manager::new(engine, Lane::Bus))?
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

    /// Only evidence of loss counts as lost: a timeout or the bus's
    /// limits are congestion (the flood that made the daemon exit).
    #[test]
    fn a_congested_bus_is_not_taken_for_lost() {
        let ours = Some(":1.7");
        assert_eq!(classify_check(Some(Ok(":1.7".into())), ours), BusCheck::Ours);
        assert!(matches!(classify_check(None, ours), BusCheck::Congested(_)));
        let limits = zbus::Error::MethodError(
            zbus::names::OwnedErrorName::try_from("org.freedesktop.DBus.Error.LimitsExceeded").unwrap(),
            Some("The destination service's message queue is full".into()),
            zbus::message::Message::method_call("/", "x").unwrap().build(&()).unwrap(),
        );
        assert!(matches!(classify_check(Some(Err(limits)), ours), BusCheck::Congested(m) if m.contains("queue is full")));
        assert!(matches!(classify_check(Some(Ok(":1.9".into())), ours), BusCheck::Lost(m) if m.contains(":1.9")));
        let gone = zbus::Error::MethodError(
            zbus::names::OwnedErrorName::try_from("org.freedesktop.DBus.Error.NameHasNoOwner").unwrap(),
            None,
            zbus::message::Message::method_call("/", "x").unwrap().build(&()).unwrap(),
        );
        assert!(matches!(classify_check(Some(Err(gone)), ours), BusCheck::Lost(_)));
        assert!(matches!(classify_check(Some(Err(zbus::Error::InputOutput(std::io::Error::other("closed").into()))), ours), BusCheck::Lost(_)));
    }

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
