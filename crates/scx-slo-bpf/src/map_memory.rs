// SPDX-License-Identifier: GPL-2.0-only
//! Map memory (docs/scheduler.md): the per-target maps are sized when a backend
//! loads, from the config's target count (`scx_slo_model::target_capacity`),
//! instead of always holding 1,024 slots; the kernel's own count of each
//! map's memory is read back from its fdinfo; and [`rule`] says what that
//! count will be for a CPU count and a capacity, so a host's cost can be
//! known before it runs.
//!
//! The rule follows kernel/bpf/arraymap.c and hashtab.c (their
//! `*_map_mem_usage`, 6.12 and 6.17 alike) without the fixed struct headers
//! (`struct bpf_array`, `struct bpf_htab`: a few hundred bytes, config
//! dependent), so the kernel's count is the rule plus less than
//! [`HEADER_SLACK`] per map. The VM checks that (`checks/vm/run enforce`).

use libbpf_rs::{MapCore, OpenMapMut};

use crate::error::{Context, Result};
use crate::intf;

pub use scx_slo_api::documents::MapMemory;

/// The most a map's struct header adds to [`rule`]'s bytes.
pub const HEADER_SLACK: u64 = 4096;

/// Sets `max_entries` of the per-target maps of an opened object, before it
/// loads. `capacity` comes from `scx_slo_model::target_capacity`.
pub(crate) fn size_target_maps(maps: &mut [&mut OpenMapMut<'_>], capacity: u32) -> Result<()> {
    let max = intf::slo_consts_SLO_MAX_TARGETS;
    crate::ensure!((1..=max).contains(&capacity), "target capacity {capacity} is outside 1..={max}");
    for map in maps {
        let name = map.name().to_string_lossy().into_owned();
        map.set_max_entries(capacity).with_context(|| format!("sizing {name} for {capacity} targets"))?;
    }
    Ok(())
}

/// What the kernel counts for one loaded map (`memlock` in its fdinfo).
pub(crate) fn loaded(map: &impl MapCore) -> Result<MapMemory> {
    let name = map.name().to_string_lossy().into_owned();
    let path = format!("/proc/self/fdinfo/{}", std::os::fd::AsRawFd::as_raw_fd(&map.as_fd()));
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path} ({name})"))?;
    let bytes = memlock(&text).with_context(|| format!("{path} ({name}) has no memlock line"))?;
    Ok(MapMemory { name, max_entries: map.max_entries(), bytes })
}

/// The `memlock:` value of an fdinfo text.
fn memlock(fdinfo: &str) -> Option<u64> {
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("memlock:"))
        .and_then(|v| v.trim().parse().ok())
}

fn round8(n: u64) -> u64 {
    n.div_ceil(8) * 8
}

/// BPF_MAP_TYPE_ARRAY: one element per entry.
fn array(entries: u64, value: usize) -> u64 {
    entries * round8(value as u64)
}

/// BPF_MAP_TYPE_PERCPU_ARRAY: a pointer per entry, and an element per
/// entry per possible CPU.
fn percpu_array(entries: u64, value: usize, cpus: u64) -> u64 {
    entries * 8 + entries * round8(value as u64) * cpus
}

/// A preallocated BPF_MAP_TYPE_HASH: a 16-byte bucket per power-of-two
/// slot, eight lock counters per CPU, and `entries + cpus` elements (one
/// spare per CPU) of a 48-byte `struct htab_elem` plus key and value, plus
/// a pointer per CPU for the spares.
fn hash(entries: u64, key: usize, value: usize, cpus: u64) -> u64 {
    let elem = 48 + round8(key as u64) + round8(value as u64);
    16 * entries.next_power_of_two() + 4 * 8 * cpus + elem * (entries + cpus) + 8 * cpus
}

/// BPF_MAP_TYPE_RINGBUF of `data` bytes: the data pages and three pages of
/// positions (RINGBUF_NR_META_PAGES), and a page pointer for each meta page
/// and two for each data page (the data is mapped twice).
fn ringbuf(data: u64) -> u64 {
    const PAGE: u64 = 4096;
    let (meta, pages) = (3, data / PAGE);
    (meta + pages) * PAGE + (meta + 2 * pages) * 8
}

/// The scheduler's maps and what each holds for `cpus` possible CPUs and
/// `capacity` target slots, bytes, without headers. Task storage is left
/// out: it grows with tasks, not with CPUs or targets.
pub fn rule(cpus: u64, capacity: u64) -> Vec<(&'static str, u64)> {
    use std::mem::size_of;
    vec![
        ("target_stats", percpu_array(capacity, size_of::<intf::slo_target_stats>(), cpus)),
        ("target_cfg", array(capacity, size_of::<intf::slo_target_cfg>())),
        ("budget_state", array(capacity, size_of::<intf::slo_budget_state>())),
        ("target_vtime", array(capacity, size_of::<u64>())),
        ("cgroup_targets", hash(capacity, 8, 4, cpus)),
        ("global_stats", percpu_array(1, size_of::<intf::slo_global_stats>(), cpus)),
        // struct cpu_ctx and node_ctx live in scx_slo.bpf.c alone: 16 and
        // 24 bytes (the VM compares every row with the kernel's count).
        ("cpu_ctxs", percpu_array(1, 16, cpus)),
        ("node_ctxs", array(u64::from(intf::slo_consts_SLO_MAX_NODES), 24)),
        ("events", ringbuf(256 * 1024)),
    ]
}

/// Bytes as MiB with one decimal, for tables.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memlock_is_read_from_fdinfo_text() {
        let text = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1050\nmap_type:\t6\nkey_size:\t4\nvalue_size:\t488\nmax_entries:\t32\nmap_flags:\t0x0\nmap_extra:\t0x0\nmemlock:\t31616\nmap_id:\t7\n";
        assert_eq!(memlock(text), Some(31616));
        assert_eq!(memlock("pos:\t0\n"), None);
        assert_eq!(memlock("memlock:\tlots\n"), None);
    }

    #[test]
    fn the_per_cpu_statistics_dominate_and_scale_with_cpus_times_slots() {
        let total = |cpus, cap| rule(cpus, cap).iter().map(|(_, b)| b).sum::<u64>();
        let stats = |cpus, cap| rule(cpus, cap)[0].1;
        // One slot on one CPU is the struct, 8-byte rounded, plus a pointer.
        let one = round8(std::mem::size_of::<intf::slo_target_stats>() as u64);
        assert_eq!(stats(1, 1), one + 8);
        assert_eq!(stats(256, 1024), 1024 * 8 + 1024 * one * 256);
        // The old fixed sizing at 256 CPUs was over 100 MiB whatever the
        // config; a 10-target config now takes a few MiB.
        assert!(total(256, 1024) > 100 << 20);
        assert!(total(256, scx_slo_model::target_capacity(10) as u64) < 5 << 20);
        assert!(stats(256, 1024) * 10 > total(256, 1024) * 9, "target_stats is over 90% of it");
    }
}
