// SPDX-License-Identifier: GPL-2.0-only
//! The daemon's writes to its state disk, the audit trail and state.json,
//! on a thread of their own and in order. A write to a frozen, full or
//! hung file system blocks in the kernel for as long as the file system
//! does (20.5 s in a measured freeze); on the engine thread that held
//! Disable's reply and every Status behind it. Here the engine waits for a
//! write only as long as its caller may ([`AUDIT_WAIT`] for a normal
//! mutation, [`EMERGENCY_WAIT`] for Disable and Shutdown, not at all for an
//! automatic action), and a reply says "not yet written" when the wait ran
//! out: the write itself stays queued and lands when the disk takes writes
//! again. The queue is bounded; an entry that finds it full is counted,
//! and the count recorded as an entry once the writer can write again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use scx_slo_api::audit::Caller;
use crate::persist::PersistentState;
use tracing::{info, warn};

use crate::audit::AuditTrail;

/// How long a normal mutation waits for its audit entry (recorded before
/// it acts) and its saved state. Past this it is refused (nothing done) or
/// its reply says the state is not yet saved.
pub const AUDIT_WAIT: Duration = Duration::from_secs(2);
/// How long Disable and Shutdown wait for their entries and saved state:
/// they act first, and their reply never waits on the disk longer.
pub const EMERGENCY_WAIT: Duration = Duration::from_millis(50);
/// Writes queued at most.
pub const QUEUE: usize = 1024;

/// Saves the persistent state (the host's: state.json, or a test's memory).
pub type Saver = Box<dyn Fn(&PersistentState) -> Result<(), String> + Send>;

/// What Status and the metrics show of the writer; updated by it.
#[derive(Clone, Debug, Default)]
pub struct DiskView {
    /// The last entry written: sequence number and hash.
    pub audit_head: (u64, String),
    /// Entries written since start, their total time, and failed appends.
    pub audit_appends: u64,
    /// Total time of the appends, ns.
    pub audit_append_ns: u64,
    /// Appends that failed since start.
    pub audit_failures: u64,
    /// Why the trail is unavailable (it could not be opened), if it is.
    pub audit_error: Option<String>,
    /// Why the last save failed, if it did.
    pub persist_error: Option<String>,
    /// Writes queued and not yet done.
    pub pending: u64,
    /// Entries that found the queue full, not yet recorded as such.
    pub dropped: u64,
    /// Since when the write in progress has been running, if one is.
    pub busy_since: Option<std::time::Instant>,
}

/// One audit entry.
pub struct Entry {
    /// Entry kind (`call`, `call_result`, `generation`, ...).
    pub kind: String,
    /// Who asked, for calls.
    pub caller: Option<Caller>,
    /// What happened.
    pub action: String,
    /// Details.
    pub detail: serde_json::Value,
    /// The correlation id it carries.
    pub correlation: Option<String>,
}

enum Job {
    Append(Entry, Option<SyncSender<Result<u64, String>>>),
    Save(Box<PersistentState>, Option<SyncSender<Result<(), String>>>),
    Reopen(SyncSender<Result<u64, String>>),
    Flush(SyncSender<()>),
    /// Tests: the disk takes no writes for this long (a frozen file system).
    #[cfg(test)]
    Freeze(Duration),
}

/// The result of a write the caller waited for.
#[derive(Debug, PartialEq, Eq)]
pub enum Written<T> {
    /// On disk.
    Done(T),
    /// The write failed: why.
    Failed(String),
    /// Not done within the wait; still queued.
    Pending(Duration),
}

/// The engine's side of the writer.
pub struct DiskWriter {
    tx: SyncSender<Job>,
    view: Arc<Mutex<DiskView>>,
    dropped: Arc<AtomicU64>,
}

impl DiskWriter {
    /// Starts the writer thread with the trail (or why it is unavailable)
    /// and the state saver. `reopen` opens the trail again (after an
    /// operator moved a bad one aside).
    pub fn start(trail: Result<AuditTrail, String>, saver: Saver, reopen: Box<dyn Fn() -> Result<AuditTrail, String> + Send>) -> std::io::Result<DiskWriter> {
        let (tx, rx) = sync_channel(QUEUE);
        let view = Arc::new(Mutex::new(DiskView::default()));
        let dropped = Arc::new(AtomicU64::new(0));
        let mut worker = Worker { trail, saver, reopen, view: Arc::clone(&view), dropped: Arc::clone(&dropped) };
        worker.publish();
        std::thread::Builder::new().name("scx-slo-disk".into()).spawn(move || {
            // Disable's reply waits (at most EMERGENCY_WAIT) for its save
            // and its entries here: this thread is on the emergency path
            // (crate::priority).
            crate::priority::raise_control_thread("disk writer");
            worker.run(rx)
        })?;
        Ok(DiskWriter { tx, view, dropped })
    }

    /// What the writer has done so far.
    pub fn view(&self) -> DiskView {
        let mut v = self.view.lock().map(|v| v.clone()).unwrap_or_default();
        v.dropped = self.dropped.load(Ordering::Relaxed);
        v
    }

    fn enqueue(&self, job: Job) -> Result<(), String> {
        self.view.lock().map(|mut v| v.pending += 1).ok();
        match self.tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.view.lock().map(|mut v| v.pending = v.pending.saturating_sub(1)).ok();
                Err(match e {
                    TrySendError::Full(_) => format!("{QUEUE} writes are waiting for the state disk (it does not take writes)"),
                    TrySendError::Disconnected(_) => "the disk writer has stopped".into(),
                })
            }
        }
    }

    /// Whether a write has been running longer than `wait`: one queued
    /// behind it cannot land sooner, so a caller with that wait need not
    /// wait at all (Disable's entries after its pending save).
    fn stalled_past(&self, wait: Duration) -> bool {
        self.view.lock().ok().and_then(|v| v.busy_since).is_some_and(|t| t.elapsed() > wait)
    }

    /// Appends an entry, waiting up to `wait` for it to be on disk.
    pub fn append(&self, entry: Entry, wait: Duration) -> Written<u64> {
        self.append_queued(entry).wait(self, wait)
    }

    /// Queues an entry and returns at once: [`Queued::wait`] waits for it
    /// later. Disable queues its entry and its save before it detaches, so
    /// the disk writes them while the kernel detaches.
    pub fn append_queued(&self, entry: Entry) -> Queued<u64> {
        let (done, result) = sync_channel(1);
        match self.enqueue(Job::Append(entry, Some(done))) {
            Ok(()) => Queued(Ok(result)),
            Err(e) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                Queued(Err(e))
            }
        }
    }

    /// Appends an entry without waiting (automatic actions): a failure is
    /// logged and counted by the writer.
    pub fn append_later(&self, entry: Entry) {
        if self.enqueue(Job::Append(entry, None)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Saves the state, waiting up to `wait` (zero: not at all).
    pub fn save(&self, state: PersistentState, wait: Duration) -> Written<()> {
        if wait.is_zero() {
            return match self.enqueue(Job::Save(Box::new(state), None)) {
                Ok(()) => Written::Pending(wait),
                Err(e) => Written::Failed(e),
            };
        }
        self.save_queued(state).wait(self, wait)
    }

    /// Queues a save and returns at once ([`DiskWriter::append_queued`]).
    pub fn save_queued(&self, state: PersistentState) -> Queued<()> {
        let (done, result) = sync_channel(1);
        Queued(self.enqueue(Job::Save(Box::new(state), Some(done))).map(|()| result))
    }

    /// Opens the trail again if it is unavailable; the head's sequence
    /// number once open.
    pub fn reopen(&self, wait: Duration) -> Written<u64> {
        let (done, result) = sync_channel(1);
        if let Err(e) = self.enqueue(Job::Reopen(done)) {
            return Written::Failed(e);
        }
        waited(&result, wait)
    }

    /// Waits up to `wait` for every queued write (at shutdown); a full
    /// queue is waited on too, within the same bound.
    pub fn flush(&self, wait: Duration) -> bool {
        let deadline = std::time::Instant::now() + wait;
        let (done, result) = sync_channel(1);
        let mut job = Job::Flush(done);
        // Counted before it is sent: the writer may take it at once.
        self.view.lock().map(|mut v| v.pending += 1).ok();
        loop {
            match self.tx.try_send(job) {
                Ok(()) => break,
                Err(TrySendError::Full(j)) if std::time::Instant::now() < deadline => {
                    job = j;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => {
                    self.view.lock().map(|mut v| v.pending = v.pending.saturating_sub(1)).ok();
                    return false;
                }
            }
        }
        result.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())).is_ok()
    }

    /// Tests: the disk takes no writes for `d`.
    #[cfg(test)]
    pub fn freeze(&self, d: Duration) {
        let _ = self.enqueue(Job::Freeze(d));
    }
}

/// A write queued by [`DiskWriter::append_queued`] or
/// [`DiskWriter::save_queued`], or why it could not be queued.
pub struct Queued<T>(Result<Receiver<Result<T, String>>, String>);

impl<T> Queued<T> {
    /// Waits up to `wait` for the write; not at all when a write ahead of
    /// it has been stalled longer than that (it cannot land sooner).
    pub fn wait(self, writer: &DiskWriter, wait: Duration) -> Written<T> {
        match self.0 {
            Err(e) => Written::Failed(e),
            Ok(_) if writer.stalled_past(wait) => Written::Pending(wait),
            Ok(result) => waited(&result, wait),
        }
    }
}

/// The clause a reply carries about a save (empty when it is on disk, or
/// was not waited for); `forgets` says what a lost save costs.
pub fn unsaved_clause(written: Written<()>, forgets: &str) -> String {
    match written {
        Written::Done(()) => String::new(),
        Written::Failed(why) => format!("; NOT saved ({why}): {forgets}"),
        Written::Pending(w) if w.is_zero() => String::new(),
        Written::Pending(w) => format!(
            "; NOT yet saved: the state disk took no write within {} ms (the save stays queued; until it lands, {forgets})",
            w.as_millis()
        ),
    }
}

fn waited<T>(result: &Receiver<Result<T, String>>, wait: Duration) -> Written<T> {
    match result.recv_timeout(wait) {
        Ok(Ok(v)) => Written::Done(v),
        Ok(Err(e)) => Written::Failed(e),
        Err(RecvTimeoutError::Timeout) => Written::Pending(wait),
        Err(RecvTimeoutError::Disconnected) => Written::Failed("the disk writer has stopped".into()),
    }
}

struct Worker {
    trail: Result<AuditTrail, String>,
    saver: Saver,
    reopen: Box<dyn Fn() -> Result<AuditTrail, String> + Send>,
    view: Arc<Mutex<DiskView>>,
    dropped: Arc<AtomicU64>,
}

impl Worker {
    fn run(mut self, rx: Receiver<Job>) {
        while let Ok(job) = rx.recv() {
            self.view.lock().map(|mut v| v.busy_since = Some(std::time::Instant::now())).ok();
            self.job(job);
            self.view.lock().map(|mut v| v.busy_since = None).ok();
            self.publish();
        }
    }

    fn job(&mut self, job: Job) {
        match job {
            Job::Append(entry, done) => {
                let result = self.append(entry);
                if let Some(done) = done {
                    let _ = done.send(result);
                }
            }
            Job::Save(state, done) => {
                let result = (self.saver)(&state);
                if let Err(e) = &result {
                    warn!(event = "persist_failed", error = %e, "writing persistent state");
                }
                if let Ok(mut v) = self.view.lock() {
                    v.persist_error = result.as_ref().err().cloned();
                }
                if let Some(done) = done {
                    let _ = done.send(result);
                }
            }
            Job::Reopen(done) => {
                if self.trail.is_err() {
                    self.trail = (self.reopen)();
                    match &self.trail {
                        Ok(t) => info!(event = "audit_reopened", seq = t.head().0, "audit trail re-opened: mutating calls are recorded again"),
                        Err(e) => warn!(event = "audit_unavailable", error = %e, "audit trail still unavailable: mutating calls are refused, except Disable"),
                    }
                }
                let _ = done.send(self.trail.as_ref().map(|t| t.head().0).map_err(Clone::clone));
            }
            Job::Flush(done) => {
                // Counted out before the caller is woken: a flush means
                // nothing is pending, and the caller may read the view at
                // once (a test read 1 here one run in a fresh-clone CI).
                if let Ok(mut v) = self.view.lock() {
                    v.pending = v.pending.saturating_sub(1);
                }
                let _ = done.send(());
                return;
            }
            #[cfg(test)]
            Job::Freeze(d) => std::thread::sleep(d),
        }
        if let Ok(mut v) = self.view.lock() {
            v.pending = v.pending.saturating_sub(1);
        }
    }

    fn append(&mut self, entry: Entry) -> Result<u64, String> {
        let trail = self.trail.as_mut().map_err(|why| format!("the audit trail is unavailable: {why}"))?;
        // Entries that found the queue full are recorded first, by count:
        // the trail says what it missed.
        let missed = self.dropped.swap(0, Ordering::Relaxed);
        if missed > 0 {
            trail.correlation = None;
            if trail.append("audit", None, "entries_not_queued", serde_json::json!({ "count": missed, "why": "the writer's queue was full: the state disk took no writes" })).is_err() {
                self.dropped.fetch_add(missed, Ordering::Relaxed);
            }
        }
        trail.correlation = entry.correlation;
        trail.append(&entry.kind, entry.caller, &entry.action, entry.detail)
    }

    fn publish(&mut self) {
        let Ok(mut v) = self.view.lock() else { return };
        match &self.trail {
            Ok(t) => {
                let (seq, hash) = t.head();
                v.audit_head = (seq, hash.to_string());
                v.audit_appends = t.appends;
                v.audit_append_ns = t.append_ns;
                v.audit_failures = t.failures;
                v.audit_error = None;
            }
            Err(e) => v.audit_error = Some(e.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("scx-slod-disk-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn writer(d: &std::path::Path) -> (DiskWriter, Arc<Mutex<Vec<PersistentState>>>) {
        let saved = Arc::new(Mutex::new(Vec::new()));
        let into = Arc::clone(&saved);
        let trail = AuditTrail::open(d, crate::audit::DEFAULT_RETAIN_BYTES);
        let reopen_dir = d.to_path_buf();
        let w = DiskWriter::start(
            trail,
            Box::new(move |s| {
                into.lock().unwrap().push(s.clone());
                Ok(())
            }),
            Box::new(move || AuditTrail::open(&reopen_dir, crate::audit::DEFAULT_RETAIN_BYTES)),
        )
        .unwrap();
        (w, saved)
    }

    fn entry(action: &str) -> Entry {
        Entry { kind: "call".into(), caller: None, action: action.into(), detail: serde_json::json!({}), correlation: None }
    }

    /// A frozen disk delays a waiting caller only by its wait: the entry
    /// and the save land, in order, once the disk takes writes again.
    #[test]
    fn a_frozen_disk_holds_a_caller_only_as_long_as_its_wait() {
        let d = dir("frozen");
        let (w, saved) = writer(&d);
        assert!(matches!(w.append(entry("before"), AUDIT_WAIT), Written::Done(2)));
        w.freeze(Duration::from_millis(600));
        let t = std::time::Instant::now();
        assert_eq!(w.append(entry("Disable"), EMERGENCY_WAIT), Written::Pending(EMERGENCY_WAIT));
        assert_eq!(w.save(PersistentState::default(), EMERGENCY_WAIT), Written::Pending(EMERGENCY_WAIT));
        assert!(t.elapsed() < EMERGENCY_WAIT * 2 + Duration::from_millis(100), "the second write did not wait behind the stalled first: {:?}", t.elapsed());
        assert!(w.view().pending >= 2, "{:?}", w.view());
        assert!(w.flush(Duration::from_secs(5)));
        let v = w.view();
        assert_eq!(v.audit_head.0, 3, "the pending entry landed after the freeze: {v:?}");
        assert_eq!(saved.lock().unwrap().len(), 1);
        assert_eq!(v.pending, 0);
    }

    /// A full queue refuses at once, and the count of entries it could not
    /// take is recorded once the writer writes again.
    #[test]
    fn entries_that_find_the_queue_full_are_counted_then_recorded() {
        let d = dir("full");
        let (w, _) = writer(&d);
        w.freeze(Duration::from_millis(500));
        for _ in 0..QUEUE + 5 {
            w.append_later(entry("automatic"));
        }
        assert!(matches!(w.append(entry("SetBudget"), AUDIT_WAIT), Written::Failed(e) if e.contains("waiting for the state disk")));
        assert!(w.view().dropped >= 5);
        assert!(w.flush(Duration::from_secs(10)));
        assert!(matches!(w.append(entry("after"), AUDIT_WAIT), Written::Done(_)));
        let text: String = std::fs::read_dir(&d).unwrap().map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap()).collect();
        assert!(text.contains("entries_not_queued"), "the trail records what it missed");
        assert_eq!(w.view().dropped, 0);
    }

    /// An unavailable trail fails appends by name and can be re-opened.
    #[test]
    fn an_unavailable_trail_is_named_and_reopened() {
        let d = dir("reopen");
        let saved = Arc::new(Mutex::new(Vec::new()));
        let into = Arc::clone(&saved);
        let reopen_dir = d.clone();
        let w = DiskWriter::start(
            Err("moved aside".into()),
            Box::new(move |s| {
                into.lock().unwrap().push(s.clone());
                Ok(())
            }),
            Box::new(move || AuditTrail::open(&reopen_dir, crate::audit::DEFAULT_RETAIN_BYTES)),
        )
        .unwrap();
        assert!(matches!(w.append(entry("x"), AUDIT_WAIT), Written::Failed(e) if e.contains("unavailable: moved aside")));
        assert_eq!(w.view().audit_error.as_deref(), Some("moved aside"));
        assert!(matches!(w.reopen(AUDIT_WAIT), Written::Done(1)));
        assert!(matches!(w.append(entry("y"), AUDIT_WAIT), Written::Done(2)));
        assert_eq!(w.view().audit_error, None);
    }
}
