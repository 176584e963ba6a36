// SPDX-License-Identifier: GPL-2.0-only
//! The emergency path's CPU priority. An operator's Disable on the
//! operator socket is read by that socket's thread, and its save and audit
//! entry are written by the disk writer's; both sleep unless an operator
//! calls or the daemon records something. Under a flood of unprivileged
//! processes, a thread at the default weight that wakes for the call waits
//! its turn among them: measured in the VM's chaos run, Disable took up to
//! 700 ms during a flood of 116 processes. At nice -10 a thread weighs
//! about 9.3 default threads (the kernel's weight table, which scx_slo's
//! fair path uses too), so its wakeup runs almost at once.
//!
//! The engine's thread stays at the default weight, on purpose: it also
//! does the daemon's periodic work (scans, telemetry, the status file),
//! and in `switch: all` mode a raised engine would outrank a latency
//! target past its budget every time that work woke it: the daemon must
//! not make a declared service worse. A Disable wakes it as a sleeper,
//! which both EEVDF and scx_slo's fair path run soon. Not a real-time
//! class either: nothing here may take whole CPUs.
//!
//! Threads start with their creator's nice: the operator runtime's
//! blocking threads (Reload's config read) are raised too, and only
//! operators reach them. The bus's async workers stay at the default
//! weight: they are what a flood on the bus keeps busy.

/// The nice value of the operator socket's and the disk writer's threads.
pub const CONTROL_NICE: i32 = -10;

/// Gives the calling thread [`CONTROL_NICE`]. `Err` says why not (without
/// CAP_SYS_NICE, e.g. a test run as a user): the daemon then runs at its
/// inherited priority, and says so once in the journal.
pub fn raise_this_thread() -> Result<(), String> {
    // SAFETY: gettid takes no arguments and cannot fail.
    let tid = unsafe { libc::gettid() };
    let who = libc::id_t::try_from(tid).map_err(|_| format!("thread id {tid} out of range"))?;
    // SAFETY: setpriority on this thread's own id; no memory is passed.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, who, CONTROL_NICE) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!("nice {CONTROL_NICE}: {}", std::io::Error::last_os_error()))
    }
}

/// The calling thread's nice value, as the kernel reports it.
pub fn this_thread_nice() -> std::io::Result<i32> {
    // SAFETY: as above.
    let tid = unsafe { libc::gettid() };
    // getpriority may return -1 as a value: errno tells an error apart.
    // SAFETY: errno is this thread's; reset before the call.
    unsafe { *libc::__errno_location() = 0 };
    // SAFETY: no memory is passed.
    let value = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) };
    let errno = std::io::Error::last_os_error();
    if value == -1 && errno.raw_os_error().is_some_and(|e| e != 0) {
        return Err(errno);
    }
    Ok(value)
}

/// Raises the calling thread and logs the outcome under the thread's role.
pub fn raise_control_thread(role: &str) {
    match raise_this_thread() {
        Ok(()) => tracing::info!(role, nice = CONTROL_NICE, "control thread raised"),
        Err(e) => tracing::warn!(role, error = %e, "control thread left at its inherited priority: an operator's Disable may wait behind other work under load"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_sets_this_threads_nice_and_no_other_threads() {
        // Run on a thread of its own: the test's thread keeps its
        // priority, which shows the change is per thread.
        let (raised, nice) = std::thread::spawn(|| (raise_this_thread(), this_thread_nice().unwrap())).join().unwrap();
        match raised {
            Ok(()) => assert_eq!(nice, CONTROL_NICE),
            // Unprivileged: refused, and the thread is unchanged.
            Err(e) => {
                assert!(e.contains("nice -10"), "{e}");
                assert_ne!(nice, CONTROL_NICE);
            }
        }
        assert_ne!(this_thread_nice().unwrap(), CONTROL_NICE, "only the raised thread changes");
    }
}
