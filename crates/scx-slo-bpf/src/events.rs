// SPDX-License-Identifier: GPL-2.0-only
//! The scheduler's early-warning ring buffer, read on a thread of its own.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use crate::error::{Context, Result};

use crate::intf;

/// An owned handle on the ring buffer (see `Scheduler::events_map`).
pub struct EventsMap(pub(crate) libbpf_rs::MapHandle);

/// Stops a reader at once: an eventfd the reader polls next to the ring
/// buffer, so an idle reader sleeps until an event or the stop instead of
/// waking every few hundred ms to look at a flag.
pub struct ReaderStop(OwnedFd);

impl ReaderStop {
    /// A fresh, unsignalled stop.
    pub fn new() -> Result<Arc<Self>> {
        // SAFETY: plain syscall; a non-negative return is a new fd we own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        crate::ensure!(fd >= 0, "eventfd: {}", std::io::Error::last_os_error());
        // SAFETY: fd is fresh and owned by nobody else.
        Ok(Arc::new(ReaderStop(unsafe { OwnedFd::from_raw_fd(fd) })))
    }

    /// Signals the reader; idempotent.
    pub fn stop(&self) {
        let one = 1u64;
        // SAFETY: writes 8 bytes from a valid u64 to our eventfd.
        unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }
}

/// Calls `on_event` for every event until `stop` is signalled. Blocks; run
/// it on its own thread.
pub fn read_events(map: EventsMap, stop: Arc<ReaderStop>, mut on_event: impl FnMut(intf::slo_event) + 'static) -> Result<()> {
    let mut builder = libbpf_rs::RingBufferBuilder::new();
    builder
        .add(&map.0, move |bytes: &[u8]| {
            if let Some(ev) = parse_event(bytes) {
                on_event(ev);
            }
            0
        })
        .context("adding the events ring buffer")?;
    let ring = builder.build().context("building the events ring buffer reader")?;
    let mut fds = [
        libc::pollfd { fd: ring.epoll_fd(), events: libc::POLLIN, revents: 0 },
        libc::pollfd { fd: stop.0.as_raw_fd(), events: libc::POLLIN, revents: 0 },
    ];
    loop {
        // SAFETY: fds is a valid array of two pollfds.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e).context("polling the events ring buffer");
        }
        // Whatever arrived before the stop is still delivered.
        ring.consume().context("reading the events ring buffer")?;
        if fds[1].revents != 0 {
            return Ok(());
        }
    }
}

/// A `struct slo_event` from the ring buffer.
pub fn parse_event(bytes: &[u8]) -> Option<intf::slo_event> {
    crate::maps::pod_from_bytes(bytes)
}
