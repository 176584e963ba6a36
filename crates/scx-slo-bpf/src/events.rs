// SPDX-License-Identifier: GPL-2.0-only
//! The scheduler's early-warning ring buffer, read on a thread of its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::intf;

/// An owned handle on the ring buffer (see `Scheduler::events_map`).
pub struct EventsMap(pub(crate) libbpf_rs::MapHandle);

/// Calls `on_event` for every event until `stop` is set. Blocks; run it on
/// its own thread.
pub fn read_events(map: EventsMap, stop: Arc<AtomicBool>, mut on_event: impl FnMut(intf::slo_event) + 'static) -> Result<()> {
    let mut builder = libbpf_rs::RingBufferBuilder::new();
    builder
        .add(&map.0, move |bytes: &[u8]| {
            if let Some(ev) = crate::maps::parse_event(bytes) {
                on_event(ev);
            }
            0
        })
        .context("adding the events ring buffer")?;
    let ring = builder.build().context("building the events ring buffer reader")?;
    while !stop.load(Ordering::Relaxed) {
        ring.poll(Duration::from_millis(200)).context("polling the events ring buffer")?;
    }
    Ok(())
}
