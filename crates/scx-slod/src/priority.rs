// SPDX-License-Identifier: GPL-2.0-only
//! The emergency path's CPU priority. An operator's Disable is carried by
//! two threads: the operator socket's (it reads the call) and the engine's
//! (it detaches and replies). Under a flood of unprivileged processes, or
//! next to the hogs the scheduler is told to run, a thread at the default
//! weight that wakes for the call waits its turn among them: measured in
//! the VM's chaos run, Disable took up to 700 ms during a flood of 116
//! processes. At nice -10 a thread weighs about 9.3 default threads (the
//! kernel's weight table, which scx_slo's fair path uses too), so a wakeup
//! runs almost at once.
//!
//! Not a real-time class, on purpose: the engine also serves reads that
//! unprivileged callers may send, and a real-time engine could be made to
//! take whole CPUs from everything else. At nice -10 it takes at most its
//! weighted share, and only while it has work.
//!
//! The disk writer's thread is raised too: Disable's reply waits (at most
//! 50 ms) for its save and audit entry there. A thread starts with its
//! creator's nice, so the threads the engine starts whose work others can
//! drive go back to 0 at once ([`lower_this_thread`]): the scraper and the
//! events reader. The operator runtime's blocking threads (Reload's config
//! read) keep -10: only operators reach them. The bus's async workers stay
//! at the default weight: they are what a flood on the bus keeps busy.

/// The nice value of the operator socket's, the engine's and the disk
/// writer's threads.
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

/// Gives the calling thread the default nice (0): for a thread started by
/// a raised one (it inherits the nice) whose work others can drive: the
/// scraper (it reads endpoints that targets' owners serve) and the events
/// reader (a target that forks fast sends it work). Lowering one's own
/// priority needs no privilege.
pub fn lower_this_thread(role: &str) {
    // SAFETY: as in raise_this_thread.
    let tid = unsafe { libc::gettid() };
    // SAFETY: no memory is passed.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 0) } != 0 {
        tracing::warn!(role, error = %std::io::Error::last_os_error(), "thread left at the engine's priority");
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
