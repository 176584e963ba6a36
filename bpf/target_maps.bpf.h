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

/*
 * The loop over cgroup levels below: an object that may use open-coded
 * iterators (scx_slo: every sched_ext kernel has them) defines
 * SLO_DEPTH_LOOP as bpf_for before including this header; the observe
 * probes keep a bounded for loop, as they load on kernels without them.
 */
#ifndef SLO_DEPTH_LOOP
#define SLO_DEPTH_LOOP(i, start, end) for ((i) = (start); (i) < (end); (i)++)
#endif

/*
 * The target of a cgroup: itself or the nearest targeted ancestor (a slice
 * target covers the units inside it), or SLO_NO_TARGET. The one walk both
 * objects use. container_of() on a BTF pointer would change its type behind
 * the verifier's back, so plain BPF_CORE_READ here.
 */
static u32 slo_cgroup_target(struct cgroup *cgrp)
{
	u32 depth, target = SLO_NO_TARGET;

	SLO_DEPTH_LOOP(depth, 0, SLO_MAX_CGROUP_DEPTH) {
		struct cgroup_subsys_state *parent;
		u64 id;
		u32 *idx;

		if (!cgrp)
			break;
		id = BPF_CORE_READ(cgrp, kn, id);
		idx = bpf_map_lookup_elem(&cgroup_targets, &id);
		if (idx) {
			target = *idx < SLO_MAX_TARGETS ? *idx : SLO_NO_TARGET;
			break;
		}
		parent = BPF_CORE_READ(cgrp, self.parent);
		if (!parent)
			break;
		cgrp = container_of(parent, struct cgroup, self);
	}
	return target;
}

#endif /* __SCX_SLO_TARGET_MAPS_BPF_H */
