/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The maps both BPF objects (scx_slo.bpf.c, observe.bpf.c) share by layout,
 * so the daemon writes targets and reads statistics with one piece of code
 * (scx-slo-bpf's maps::write_targets / read_target_stats) in every mode.
 * Include after vmlinux.h, the libbpf helpers and intf.h.
 */
#ifndef __SCX_SLO_TARGET_MAPS_BPF_H
#define __SCX_SLO_TARGET_MAPS_BPF_H

/* Target policies by index; written by the daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLO_MAX_TARGETS);
	__type(key, u32);
	__type(value, struct slo_target_cfg);
} target_cfg SEC(".maps");

/* cgroup id (kernfs id, the inode number in cgroupfs) -> target index; daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SLO_MAX_TARGETS);
	__type(key, u64);
	__type(value, u32);
} cgroup_targets SEC(".maps");

/* Per-target statistics, per CPU; BPF writes, the daemon reads. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLO_MAX_TARGETS);
	__type(key, u32);
	__type(value, struct slo_target_stats);
} target_stats SEC(".maps");

#endif /* __SCX_SLO_TARGET_MAPS_BPF_H */
