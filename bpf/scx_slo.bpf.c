/* SPDX-License-Identifier: GPL-2.0 */
/*
 * scx_slo: the Fair-EDF sched_ext scheduler of scx-slo.
 *
 * - A task of a latency target gets deadline = wakeup + relative deadline.
 *   While its target has budget left in the current period, it is queued
 *   earliest-deadline-first on its NUMA node's EDF DSQ.
 * - Budget exhausted, batch targets and untargeted tasks: weighted virtual
 *   time on the node's vtime DSQ. A wrong budget therefore cannot starve the
 *   host (the vruntime guard), and max_wait bounds how long the vtime DSQ
 *   waits behind EDF work.
 * - Budget that latency targets leave unused in a period becomes credit that
 *   lengthens batch slices from slice_min to slice_max (credit borrowing).
 *   Short batch slices only serve latency targets that may not preempt: when
 *   every latency target preempts, batch runs slice_max (a waking latency
 *   task kicks it anyway).
 * - A waking latency task may kick a CPU running lower-priority work with a
 *   later deadline, when its target's preemption policy allows.
 * - Per-target per-CPU counters and log2 histograms of run-queue delay and
 *   slack; rate-limited ring-buffer events when slack runs low.
 *
 * Kernel compatibility (6.12 is the floor) goes through scx/compat.bpf.h's
 * wrappers only: scx_bpf_dsq_insert[_vtime] and scx_bpf_dsq_move_to_local
 * resolve to scx_bpf_dispatch[_vtime] / scx_bpf_consume on 6.12.
 *
 * Order: includes, tunables, counters, maps with accessors, helpers, ops.
 */
#include <scx/common.bpf.h>
#include "intf.h"
#define SLO_DEPTH_LOOP bpf_for
#include "target_maps.bpf.h"
#include "hist.bpf.h"

char _license[] SEC("license") = "GPL";

/*
 * Load-time tunables: set by scx-slo-bpf from the validated config before
 * load, so the verifier sees constants. The defaults only matter to an
 * object loaded without the loader (veristat, bpftool); they are the
 * model's defaults, and a test in scx-slo-bpf (tests/rodata_defaults.rs)
 * fails when one drifts.
 */
const volatile u64 slice_max_ns = 5000000;	/* longest slice (loader) */
const volatile u64 slice_min_ns = 500000;	/* batch slice without credit */
const volatile u64 max_wait_ns = 50000000;	/* bound on any task's wait (loader) */
const volatile u32 numa_migration_threshold = 4; /* remote depth to steal */
const volatile u64 slack_warn_ns = 500000;	/* early-warning threshold */
const volatile u64 warn_interval_ns = 100000000; /* per-target rate limit */
const volatile u32 nr_nodes = 1;		/* NUMA nodes (loader) */
const volatile u32 nr_cpus = 1;			/* possible CPUs (loader) */
const volatile u32 cpu_to_node[SLO_MAX_CPUS];	/* topology (loader) */
/* CPUs grouped by node: node n's are node_cpus[node_cpu_start[n] ..
 * node_cpu_start[n + 1]) (loader). */
const volatile u32 node_cpus[SLO_MAX_CPUS];
const volatile u32 node_cpu_start[SLO_MAX_NODES + 1];
const volatile bool switch_partial;		/* SCX_OPS_SWITCH_PARTIAL (loader) */

#ifndef SCHED_EXT
#define SCHED_EXT 7				/* include/uapi/linux/sched.h */
#endif

/*
 * Runtime state the daemon writes through the mmapped .bss on every apply.
 */
volatile u64 cfg_gen;			/* bumped after maps change (daemon) */
volatile u32 nr_targets;		/* targets in target_cfg (daemon) */
/*
 * Latency targets that may not preempt (daemon). Only their tasks wait for a
 * running batch slice to end; the others kick it. With none, short batch
 * slices would buy no latency and cost a context switch every slice_min
 * (batch throughput), so batch always gets slice_max.
 */
volatile u32 nr_waiting_latency_targets;
volatile u64 lend_interval_ns = SLO_LEND_INTERVAL_NS; /* period-roll timer (daemon) */

/* Credit lent by latency targets to batch, in ns (BPF, atomics). */
s64 credit_ns;

UEI_DEFINE(uei);

static struct slo_target_cfg *try_lookup_target_cfg(u32 target)
{
	return bpf_map_lookup_elem(&target_cfg, &target);
}

static struct slo_target_stats *try_lookup_target_stats(u32 target)
{
	return bpf_map_lookup_elem(&target_stats, &target);
}

/* Per-target budget accounting shared across CPUs; BPF, with atomics. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLO_MAX_TARGETS);
	__type(key, u32);
	__type(value, struct slo_budget_state);
} budget_state SEC(".maps");

static struct slo_budget_state *try_lookup_budget_state(u32 target)
{
	return bpf_map_lookup_elem(&budget_state, &target);
}

/* Whole-scheduler counters, per CPU; BPF writes. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct slo_global_stats);
} global_stats SEC(".maps");

/* Early-warning and miss events for the daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/* Per-task state; BPF only. */
struct task_ctx {
	u64 cgid;		/* cgroup id the target was resolved for */
	u64 gen;		/* cfg_gen of that resolution */
	/*
	 * The task's own weighted virtual time. Not p->scx.dsq_vtime: that
	 * field is only the key of the DSQ the task was last inserted into,
	 * and for the EDF DSQ the key is an absolute deadline (docs/scheduler.md).
	 */
	u64 vtime;
	u64 enq_at_ns;		/* since when the task waits runnable, or 0 */
	u64 started_at_ns;	/* last time it got a CPU */
	u64 deadline_ns;	/* absolute deadline of the current job */
	u32 target;		/* index, or SLO_NO_TARGET */
	bool edf;		/* this run is a budgeted EDF run */
	bool batch;		/* the target is a batch target */
	bool missed;		/* the current job's miss is counted */
	/* ops.select_cpu looked for an idle CPU and a victim for this wakeup
	 * (ops.enqueue need not look again) */
	bool select_tried;
	/* Inserted straight into a local DSQ, not taken from the vtime DSQ:
	 * its start does not count as the vtime DSQ served (ops.running). */
	bool direct;
	/* Moved by the wait guard: its start does not move the node's clock
	 * (its key is far ahead, or it would not have waited so long). */
	bool rescued;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_ctx);
} task_stor SEC(".maps");

static struct task_ctx *try_lookup_task_ctx(struct task_struct *p)
{
	return bpf_task_storage_get(&task_stor, p, 0, 0);
}

/*
 * Each target's virtual time, shared by all its tasks; BPF only (the daemon
 * zeroes a slot it gives a target). A target's weight is its share as one
 * entity, the way the kernel's cgroups share CPU time between a cgroup's
 * tasks and CPUWeight means: charging each task on its own gave a target
 * one share per runnable task, so four batch hogs outweighed a
 * two-worker nginx two to one where EEVDF split them evenly, and the
 * declared server lost requests/s against the same server undeclared
 * (docs/scheduler.md, "Shares by target").
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLO_MAX_TARGETS);
	__type(key, u32);
	__type(value, u64);
} target_vtime SEC(".maps");

/* A targeted task's shared virtual time, or NULL for an untargeted one. */
static u64 *group_vtime(const struct task_ctx *tctx)
{
	u32 target = tctx->target;

	if (target >= SLO_MAX_TARGETS)
		return NULL;
	return bpf_map_lookup_elem(&target_vtime, &target);
}

/* What each CPU runs now, for preemption decisions; BPF only. */
struct cpu_ctx {
	u64 deadline_ns;	/* deadline of the running EDF task */
	u64 vtime;		/* virtual time of the running fair task at its start */
	u64 started_ns;		/* when the running task got this CPU */
	u16 priority;		/* 0 unless an EDF run */
	bool edf;
	bool batch;		/* a batch target's task: the victim to prefer */
	/*
	 * An scx task runs here. A CPU running a fair-class task (partial
	 * switch) or idle is no preemption victim: ext cannot preempt fair.
	 */
	bool scx_running;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct cpu_ctx);
} cpu_ctxs SEC(".maps");

static struct cpu_ctx *try_lookup_cpu_ctx(s32 cpu)
{
	u32 zero = 0;

	if (cpu < 0)
		return bpf_map_lookup_elem(&cpu_ctxs, &zero);
	return bpf_map_lookup_percpu_elem(&cpu_ctxs, &zero, cpu);
}

/* Per-NUMA-node scheduling clock; BPF only. */
struct node_ctx {
	u64 vtime_now;		/* highest vtime that started running */
	u64 vtime_served_ns;	/* last time the vtime DSQ was served or empty */
	u64 guard_scan_ns;	/* last wait-guard scan of the node's DSQs */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLO_MAX_NODES);
	__type(key, u32);
	__type(value, struct node_ctx);
} node_ctxs SEC(".maps");

static struct node_ctx *try_lookup_node_ctx(u32 node)
{
	return bpf_map_lookup_elem(&node_ctxs, &node);
}

/* The period-roll timer. */
struct lend_timer {
	struct bpf_timer timer;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct lend_timer);
} lend_timers SEC(".maps");

/* ---- helpers ---------------------------------------------------------- */

static void gstat_add(enum slo_gstat_id id, u64 v)
{
	u32 zero = 0;
	struct slo_global_stats *s = bpf_map_lookup_elem(&global_stats, &zero);

	if (s && id < NR_SLO_GSTATS)
		s->cnt[id] += v;
}

static void tstat_add(struct slo_target_stats *s, enum slo_tstat_id id, u64 v)
{
	if (s && id < NR_SLO_TSTATS)
		s->cnt[id] += v;
}

static u32 node_of_cpu(s32 cpu)
{
	u32 idx = (u32)cpu, node;

	if (idx >= SLO_MAX_CPUS)
		return 0;
	/*
	 * clang drops a mask it can prove redundant and then widens the
	 * index without the bound; the barrier keeps the mask (SLO_MAX_CPUS
	 * is a power of two) so the verifier sees it.
	 */
	barrier_var(idx);
	node = cpu_to_node[idx & (SLO_MAX_CPUS - 1)];
	return node < SLO_MAX_NODES ? node : 0;
}

/*
 * Records how long @p waited runnable before getting a CPU: the per-CPU
 * maximum overall (with the waiter's tid) and, for a targeted task, per
 * target. This is the number the no-starvation guarantee is checked on.
 */
static void record_wait(struct task_struct *p, struct slo_target_stats *st,
			u64 wait)
{
	u32 zero = 0;
	struct slo_global_stats *g = bpf_map_lookup_elem(&global_stats, &zero);

	if (g && wait > g->max_wait_ns) {
		g->max_wait_ns = wait;
		g->max_wait_pid = p->pid;
	}
	if (st && wait > st->max_wait_ns)
		st->max_wait_ns = wait;
}

static void hist_inc(u64 *hist, u64 ns)
{
	u32 b = slo_hist_bucket(ns);

	if (b < SLO_HIST_BUCKETS)
		hist[b]++;
}

static u64 edf_dsq(u32 node)
{
	return SLO_DSQ_EDF_BASE + node;
}

static u64 vtime_dsq(u32 node)
{
	return SLO_DSQ_VTIME_BASE + node;
}

static bool is_latency(const struct slo_target_cfg *cfg)
{
	return cfg && cfg->class == SLO_CLASS_LATENCY && cfg->period_ns;
}

/*
 * The task's cgroup v2 id. Direct loads, not BPF_CORE_READ: p is a trusted
 * struct_ops argument, the chain below it is read with the verifier's
 * fault-handling loads (still CO-RE relocated through vmlinux.h), and
 * BPF_CORE_READ would cost one bpf_probe_read_kernel call per level on the
 * hottest path (select_cpu, runnable, enqueue all resolve the target).
 */
static u64 task_cgroup_id(struct task_struct *p)
{
	struct css_set *cset = p->cgroups; /* RCU: NULL-checked before use */
	struct cgroup *cgrp;
	struct kernfs_node *kn;

	if (!cset)
		return 0;
	cgrp = cset->dfl_cgrp;
	if (!cgrp)
		return 0;
	kn = cgrp->kn;
	return kn ? kn->id : 0;
}

/* A task's target, cached in its context (see slo_cgroup_target). */
static u32 task_target(struct task_struct *p, struct task_ctx *tctx)
{
	struct slo_target_cfg *cfg;
	u64 cgid = task_cgroup_id(p);
	u64 gen = cfg_gen;
	u32 target;

	if (tctx->cgid == cgid && tctx->gen == gen)
		return tctx->target;
	target = slo_cgroup_target(BPF_CORE_READ(p, cgroups, dfl_cgrp));
	/*
	 * A task leaving a target leaves its shared clock behind too: it kept
	 * that clock's value, which can be far ahead of any one task's, and
	 * would wait until the wait guard rescued it.
	 */
	if (target != tctx->target && target == SLO_NO_TARGET) {
		struct node_ctx *nctx =
			try_lookup_node_ctx(node_of_cpu(scx_bpf_task_cpu(p)));

		if (nctx)
			tctx->vtime = nctx->vtime_now;
	}
	tctx->cgid = cgid;
	tctx->gen = gen;
	tctx->target = target;
	cfg = target == SLO_NO_TARGET ? NULL :
		bpf_map_lookup_elem(&target_cfg, &target);
	tctx->batch = cfg && cfg->class == SLO_CLASS_BATCH;
	return target;
}

static void lend_credit(u64 ns)
{
	s64 cap = (s64)(slice_max_ns * nr_cpus * SLO_CREDIT_CAP_SLICES_PER_CPU);

	if (!ns)
		return;
	if (credit_ns + (s64)ns > cap)
		ns = credit_ns < cap ? cap - credit_ns : 0;
	if (ns) {
		__sync_fetch_and_add(&credit_ns, (s64)ns);
		gstat_add(SLO_GSTAT_CREDIT_LENT_NS, ns);
	}
}

/*
 * Starts a new period when the current one is over; exactly one CPU wins the
 * compare-and-swap, resets the usage and lends what was left unused.
 */
static void roll_period(struct slo_budget_state *bs,
			const struct slo_target_cfg *cfg, u64 now)
{
	u64 start = bs->period_start_ns, new_start, used;

	if (now < start + cfg->period_ns)
		return;
	new_start = now - (now - start) % cfg->period_ns;
	if (__sync_val_compare_and_swap(&bs->period_start_ns, start,
					new_start) != start)
		return;
	used = __sync_lock_test_and_set(&bs->used_ns, 0);
	/* A start of 0 is the first period: nothing was reserved before it. */
	if (start && used < cfg->runtime_ns) {
		lend_credit(cfg->runtime_ns - used);
	}
}

/* Budget left to @target in the current period, in ns. */
static u64 budget_left(u32 target, const struct slo_target_cfg *cfg, u64 now)
{
	struct slo_budget_state *bs = try_lookup_budget_state(target);
	u64 used;

	if (!bs || !is_latency(cfg))
		return 0;
	roll_period(bs, cfg, now);
	used = bs->used_ns;
	return used < cfg->runtime_ns ? cfg->runtime_ns - used : 0;
}

/* Batch slice: slice_min, lengthened to slice_max by lent credit. */
static u64 batch_slice(void)
{
	s64 extra = (s64)(slice_max_ns - slice_min_ns);

	if (!nr_waiting_latency_targets || extra <= 0)
		return slice_max_ns;
	if (credit_ns >= extra) {
		__sync_fetch_and_sub(&credit_ns, extra);
		gstat_add(SLO_GSTAT_CREDIT_GRANTS, 1);
		return slice_max_ns;
	}
	return slice_min_ns;
}

/*
 * Charges @used ns, scaled inversely to @weight, to the virtual time the
 * task is queued by: its target's (group_vtime), shared with the target's
 * other tasks, or its own.
 */
static void charge_vtime(struct task_ctx *tctx, u64 used, u64 weight)
{
	u64 *group = group_vtime(tctx);

	/* Most tasks have the default weight: skip the division (ops.stopping). */
	if (weight && weight != SLO_DEFAULT_WEIGHT)
		used = used * SLO_DEFAULT_WEIGHT / weight;
	if (group)
		tctx->vtime = __sync_fetch_and_add(group, used) + used;
	else
		tctx->vtime += used;
}

/*
 * @a is later than @b in virtual time, wrap-safe as the kernel's own DSQ
 * order (time_before64). A target's shared clock advances by every CPU its
 * tasks run on, scaled by 100 / weight: at weight 1 on 256 busy CPUs a u64
 * wraps in about 8 days, where a plain comparison would then order every
 * task backwards.
 */
static bool vtime_after(u64 a, u64 b)
{
	return (s64)(a - b) > 0;
}

/* Whether the scx work running on @cctx may be preempted for (@prio, @deadline). */
static bool preemptible(const struct cpu_ctx *cctx, u16 prio, u64 deadline)
{
	return cctx && cctx->scx_running && cctx->priority < prio &&
	       (!cctx->edf || cctx->deadline_ns > deadline);
}

/*
 * CPUs one victim search probes at most. It used to scan every
 * CPU of the machine on each non-idle latency wakeup: 27 us per
 * select_cpu under TCG at 2 CPUs, and O(CPUs) at 256. Now it probes the
 * node's CPUs from a random one, at most this many, and stops at the first
 * that runs non-EDF work of priority 0, the best victim there is.
 */
#define SLO_VICTIM_PROBES 16

/* The CPU at @idx of node_cpus. */
static s32 node_cpu_at(u32 idx)
{
	if (idx >= SLO_MAX_CPUS)
		return -1;
	barrier_var(idx);
	return node_cpus[idx & (SLO_MAX_CPUS - 1)];
}

/* Which CPUs of a node a victim search probes: see SLO_VICTIM_PROBES. */
struct probe_range {
	u32 first;	/* the node's first slot in node_cpus */
	u32 count;	/* the node's CPUs */
	u32 start;	/* random offset of the first probe */
	u32 probes;	/* at most SLO_VICTIM_PROBES */
};

/* Fills @pr for @node; false for a node with no CPUs (or out of range). */
static bool node_probes(u32 node, struct probe_range *pr)
{
	if (node >= SLO_MAX_NODES)
		return false;
	barrier_var(node);
	node &= SLO_MAX_NODES - 1;
	pr->first = node_cpu_start[node];
	pr->count = node_cpu_start[node + 1] - pr->first;
	if (!pr->count || pr->count > SLO_MAX_CPUS)
		return false;
	pr->probes = pr->count < SLO_VICTIM_PROBES ? pr->count :
						     SLO_VICTIM_PROBES;
	pr->start = bpf_get_prandom_u32() % pr->count;
	return true;
}

/* The CPU probe @i of @pr visits. */
static s32 probe_cpu(const struct probe_range *pr, u32 i)
{
	return node_cpu_at(pr->first + (pr->start + i) % pr->count);
}

/*
 * Whether the work running on @c is a better victim than @v's: lower
 * priority; among equals non-EDF work, and of that a batch task before an
 * untargeted one (a load generator, a daemon: work that waits on someone
 * too); among EDF runs the later deadline.
 */
static bool better_victim(const struct cpu_ctx *c, const struct cpu_ctx *v)
{
	if (!v)
		return true;
	if (c->priority != v->priority)
		return c->priority < v->priority;
	if (c->edf != v->edf)
		return !c->edf;
	if (!c->edf)
		return c->batch && !v->batch;
	return c->deadline_ns > v->deadline_ns;
}

/* Work no other victim beats (better_victim): the search stops there. */
static bool best_victim(const struct cpu_ctx *c)
{
	return !c->priority && !c->edf && c->batch;
}

/*
 * Among the probed CPUs of @node, the best victim (better_victim) whose
 * running scx work has a priority below @prio and a later deadline than
 * @deadline, or -1. @hint (the task's previous CPU) is probed first and
 * wins among equals: preempting locally needs no IPI and keeps the cache
 * warm. It won outright until 2026-12: a waking nginx worker then took the
 * CPU of wrk, its own load generator, with a batch hog on the other CPU,
 * and the declared server lost requests/s to the same server undeclared.
 */
static s32 find_victim(struct task_struct *p, u32 node, u16 prio, u64 deadline,
		       s32 hint)
{
	struct cpu_ctx *cctx, *vctx = NULL;
	struct probe_range pr;
	s32 victim = -1;
	u32 i;

	if (hint >= 0 && bpf_cpumask_test_cpu(hint, p->cpus_ptr)) {
		cctx = try_lookup_cpu_ctx(hint);
		if (cctx && preemptible(cctx, prio, deadline)) {
			if (best_victim(cctx))
				return hint;
			victim = hint;
			vctx = cctx;
		}
	}
	if (!node_probes(node, &pr))
		return victim;

	bpf_for(i, 0, pr.probes) {
		s32 cpu = probe_cpu(&pr, i);

		if (cpu < 0 || cpu == hint)
			continue;
		if (!bpf_cpumask_test_cpu(cpu, p->cpus_ptr))
			continue;
		cctx = try_lookup_cpu_ctx(cpu);
		if (!cctx || !preemptible(cctx, prio, deadline) ||
		    !better_victim(cctx, vctx))
			continue;
		victim = cpu;
		vctx = cctx;
		if (best_victim(cctx))
			break;
	}
	return victim;
}

/*
 * A latency task past its budget runs by fair share, and fair share has to
 * include what EEVDF gives any sleeper: the CPU from a task that ran ahead of
 * it. Without this the task waited out the running batch slice on every
 * wakeup past its budget, and a declared service was worse off than an
 * undeclared one (a timer tool's p99 1.4-2.1x EEVDF's at half the budget it
 * needed, under TCG). The running task's virtual time is estimated as its
 * value at start plus the time since, unweighted: a hint, not an account.
 * A margin of slice_min keeps two fair tasks of equal standing from
 * preempting each other back and forth.
 */
static bool ran_ahead(const struct cpu_ctx *cctx, u64 vtime, u64 now,
		      u64 min_ran)
{
	u64 ran;

	if (!cctx || !cctx->scx_running || cctx->edf)
		return false;
	ran = now > cctx->started_ns ? now - cctx->started_ns : 0;
	/* @min_ran: the victim's run so far must reach it (EEVDF's run to
	 * parity), so a task is not preempted again the moment it starts. */
	if (ran < min_ran)
		return false;
	return vtime_after(cctx->vtime + ran, vtime + slice_min_ns);
}

/*
 * A CPU of @node whose fair task ran ahead of @vtime, or -1: @hint first
 * (no IPI, warm cache), then at most SLO_VICTIM_PROBES CPUs of the node from
 * a random one, the first that qualifies.
 */
static __always_inline s32
find_fair_victim(struct task_struct *p, u32 node, u64 vtime,
		 s32 hint, u64 now, u64 min_ran)
{
	struct probe_range pr;
	u32 i;

	if (hint >= 0 && bpf_cpumask_test_cpu(hint, p->cpus_ptr) &&
	    ran_ahead(try_lookup_cpu_ctx(hint), vtime, now, min_ran))
		return hint;
	if (!node_probes(node, &pr))
		return -1;

	bpf_for(i, 0, pr.probes) {
		s32 cpu = probe_cpu(&pr, i);

		if (cpu < 0 || cpu == hint)
			continue;
		if (!bpf_cpumask_test_cpu(cpu, p->cpus_ptr))
			continue;
		if (ran_ahead(try_lookup_cpu_ctx(cpu), vtime, now, min_ran))
			return cpu;
	}
	return -1;
}

/* Kicks the best victim so it dispatches the queued EDF task first. */
static bool kick_lower_priority(struct task_struct *p, u32 node, u16 prio,
				u64 deadline)
{
	s32 victim = find_victim(p, node, prio, deadline, scx_bpf_task_cpu(p));

	if (victim < 0)
		return false;
	scx_bpf_kick_cpu(victim, SCX_KICK_PREEMPT);
	return true;
}

static void send_event(u32 target, struct task_struct *p, u32 kind, s64 slack,
		       u64 now)
{
	struct slo_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);

	if (!ev) {
		gstat_add(SLO_GSTAT_EVENTS_DROPPED, 1);
		return;
	}
	ev->ts_ns = now;
	ev->slack_ns = slack;
	ev->target = target;
	ev->pid = p->pid;
	ev->kind = kind;
	ev->cpu = bpf_get_smp_processor_id();
	bpf_ringbuf_submit(ev, 0);
}

/* At most one event per target per warn_interval_ns. */
static void maybe_warn(u32 target, struct task_struct *p, u32 kind, s64 slack,
		       u64 now)
{
	struct slo_budget_state *bs = try_lookup_budget_state(target);
	struct slo_target_stats *st = try_lookup_target_stats(target);
	u64 last;

	if (!bs)
		return;
	last = bs->last_warning_ns;
	if (last && now - last < warn_interval_ns) {
		tstat_add(st, SLO_TSTAT_WARNINGS_SUPPRESSED, 1);
		return;
	}
	if (__sync_val_compare_and_swap(&bs->last_warning_ns, last, now) !=
	    last) {
		tstat_add(st, SLO_TSTAT_WARNINGS_SUPPRESSED, 1);
		return;
	}
	tstat_add(st, SLO_TSTAT_EARLY_WARNINGS, 1);
	send_event(target, p, kind, slack, now);
}

/*
 * Wakes an idle CPU the task may run on, so a queued task never waits for a
 * tick that a tickless idle CPU will not take (per-CPU kthreads skip
 * select_cpu, for one).
 */
static bool kick_idle_cpu(struct task_struct *p)
{
	s32 cpu = scx_bpf_pick_idle_cpu(p->cpus_ptr, 0);

	if (cpu < 0)
		return false;
	scx_bpf_kick_cpu(cpu, SCX_KICK_IDLE);
	return true;
}

/* Slice for a task about to be queued or dispatched; sets tctx->edf. */
static u64 task_slice(struct task_ctx *tctx, u32 target,
		      const struct slo_target_cfg *cfg, u64 now)
{
	u64 left;

	if (is_latency(cfg)) {
		left = budget_left(target, cfg, now);
		if (left) {
			tctx->edf = true;
			return left < slice_max_ns ? left : slice_max_ns;
		}
	}
	tctx->edf = false;
	return batch_slice();
}

/*
 * A task that slept (for a targeted task: its target, all of whose tasks
 * slept or waited) keeps at most one slice_max of credit against the node's
 * clock, so sleepers cannot bank CPU time. Every task gets the same credit, a
 * latency task past its budget included: with none (as until 2026-12) it
 * queued behind every batch task's slice while a batch sleeper went ahead
 * of them, so a service with too small a budget fared worse than with no
 * SLO at all (docs/scheduler.md, "The floor").
 */
static u64 sleeper_vtime(const struct task_ctx *tctx, u32 node)
{
	struct node_ctx *nctx = try_lookup_node_ctx(node);
	u64 *group = group_vtime(tctx);
	u64 vtime = group ? *group : tctx->vtime, floor;

	if (!nctx || nctx->vtime_now <= slice_max_ns)
		return vtime;
	floor = nctx->vtime_now - slice_max_ns;
	if (!vtime_after(floor, vtime))
		return vtime;
	/*
	 * A target's shared clock is raised too: left behind (idle, or just
	 * given its slot), its tasks would all queue at the floor while its
	 * own charges crept up from far below, ahead of everyone for as long.
	 * A lost race leaves a value at least as recent.
	 */
	if (group)
		__sync_val_compare_and_swap(group, vtime, floor);
	return floor;
}

/*
 * Whether a task is queued on the node's vtime DSQ with a virtual time
 * before @vtime (what ops.dispatch would run next by fair share).
 */
static bool queued_before(u32 node, u64 vtime)
{
	struct task_struct *q;

	bpf_for_each(scx_dsq, q, vtime_dsq(node), 0)
		return vtime_after(vtime, q->scx.dsq_vtime);
	return false;
}

/*
 * The CPU a waking task takes at once, or -1. A latency task of @cfg whose
 * preemption policy allows it: with budget left, lower-priority work
 * (find_victim); past it, fair work that ran ahead of it
 * (find_fair_victim). An untargeted task (@cfg NULL): fair work that ran
 * ahead of it, as EEVDF's wakeup preemption gives any sleeper; without it a
 * waking load generator waited out every batch slice, and a closed loop
 * against a declared server (wrk against nginx) lost a fifth of its rate to
 * the same loop under EEVDF. A batch task never (SCHED_BATCH's rule). After
 * a fair preemption the task's virtual time is set to what it queues with.
 * @deadline is the new job's (ops.select_cpu runs before ops.runnable sets
 * it). Both
 * ops.select_cpu and ops.enqueue (a task pinned to one CPU skips
 * select_cpu: rt-tests' cyclictest pins each timer thread) insert the task
 * straight into that CPU's local DSQ with SCX_ENQ_PREEMPT. Queueing it on
 * the node's DSQ and kicking the CPU instead cost a round trip through
 * ops.dispatch on every wakeup: under TCG the pinned timer threads waited
 * 0.9 ms on average and the tool's p99 was 1.8x EEVDF's.
 */
static __always_inline s32
preempt_victim(struct task_struct *p, struct task_ctx *tctx, u32 target,
	       const struct slo_target_cfg *cfg, u32 node, s32 hint,
	       u64 deadline, u64 now)
{
	u64 vtime;
	s32 victim;

	if (is_latency(cfg)) {
		if (cfg->preempt != SLO_PREEMPT_LOWER_PRIO)
			return -1;
		if (tctx->edf)
			return find_victim(p, node, cfg->priority, deadline,
					   hint);
	} else if (cfg) {
		/* Batch: no wakeup preemption, as SCHED_BATCH has none. */
		return -1;
	}
	vtime = sleeper_vtime(tctx, node);
	/*
	 * Fair share goes in order: not past queued EDF work (overdue tasks
	 * the wait guard moved there included: a CPU's local DSQ runs before
	 * ops.dispatch, so preempting could hold them off indefinitely), nor
	 * past a queued fair task that is further behind than this one.
	 */
	if (scx_bpf_dsq_nr_queued(edf_dsq(node)) || queued_before(node, vtime))
		return -1;
	/* An untargeted waker waits for its victim to run slice_min. */
	victim = find_fair_victim(p, node, vtime, hint, now,
				  cfg ? 0 : slice_min_ns);
	if (victim >= 0) {
		tctx->vtime = vtime;
		tstat_add(try_lookup_target_stats(target),
			  SLO_TSTAT_FAIR_PREEMPTS, 1);
	}
	return victim;
}

/* Counts a preemption a waking task of @target made. */
static void count_preemption(u32 target)
{
	tstat_add(try_lookup_target_stats(target), SLO_TSTAT_PREEMPT_KICKS, 1);
	gstat_add(SLO_GSTAT_PREEMPT_KICKS, 1);
}

/*
 * Slices shrink as the node's queues grow, so that one turn of every queued
 * task fits in a quarter of max_wait (CFS's sched_latency / nr_running, with
 * max_wait as the latency). Without it, N queued tasks of slice_max each
 * wait (N / CPUs) * slice_max for a turn, past any bound (the hunt: 376 ms
 * with 20 ms slices). Floor: SLO_MIN_SLICE_NS, where overhead would win.
 */
static u64 fit_slice(u64 slice, u32 node)
{
	u64 nr = scx_bpf_dsq_nr_queued(edf_dsq(node)) +
		 scx_bpf_dsq_nr_queued(vtime_dsq(node)) + 1;
	u64 cpus = nr_nodes ? nr_cpus / nr_nodes : nr_cpus;
	u64 fair = max_wait_ns * (cpus ? cpus : 1) / (4 * nr);

	if (fair < SLO_MIN_SLICE_NS)
		fair = SLO_MIN_SLICE_NS;
	return slice < fair ? slice : fair;
}

/*
 * Partial switching, event-driven: a task that is not SCHED_EXT and starts
 * in, or moves into, a targeted cgroup is reported to the daemon, which
 * switches it at once instead of finding it at its next scan (the scan
 * stays, slower, as the safety net). Callers check switch_partial first, so
 * that `all` mode's fork path does not even read the child's cgroup.
 */
static void report_new_task(struct task_struct *p, struct cgroup *cgrp,
			    bool whole_process)
{
	u32 target;

	if (p->policy == SCHED_EXT)
		return;
	target = slo_cgroup_target(cgrp);
	if (target == SLO_NO_TARGET)
		return;
	send_event(target, p, SLO_EVENT_NEW_TASK, whole_process, scx_bpf_now());
}

/* A new process or thread; it is in its final cgroup by now. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(slo_fork, struct task_struct *parent, struct task_struct *child)
{
	if (switch_partial)
		report_new_task(child, BPF_CORE_READ(child, cgroups, dfl_cgrp),
				false);
	return 0;
}

/* A task (its leader, with @threadgroup: the whole process) moved. */
SEC("tp_btf/cgroup_attach_task")
int BPF_PROG(slo_cgroup_attach, struct cgroup *dst_cgrp, const char *path,
	     struct task_struct *task, bool threadgroup)
{
	if (switch_partial)
		report_new_task(task, dst_cgrp, threadgroup);
	return 0;
}

/* ---- ops ---------------------------------------------------------------- */

s32 BPF_STRUCT_OPS(slo_select_cpu, struct task_struct *p, s32 prev_cpu,
		   u64 wake_flags)
{
	struct slo_target_cfg *cfg = NULL;
	struct task_ctx *tctx;
	bool is_idle = false;
	u32 target;
	s32 cpu, victim;
	u64 slice, now;

	cpu = scx_bpf_select_cpu_dfl(p, prev_cpu, wake_flags, &is_idle);
	tctx = try_lookup_task_ctx(p);
	if (!tctx)
		return cpu;
	target = task_target(p, tctx);
	if (target != SLO_NO_TARGET)
		cfg = try_lookup_target_cfg(target);
	now = scx_bpf_now();
	if (!is_idle) {
		/*
		 * No idle CPU: a latency task with budget may take the CPU of
		 * lower-priority work at once, straight into its local DSQ;
		 * past its budget, the CPU of fair work that ran ahead of it
		 * (ran_ahead), as any sleeper under EEVDF would.
		 */
		tctx->select_tried = true;
		if (cfg && (!is_latency(cfg) ||
			    cfg->preempt != SLO_PREEMPT_LOWER_PRIO))
			return cpu;
		/* The budget says whether this would be an EDF run; the slice,
		 * which may draw lent credit (batch_slice), only once a victim
		 * is found. */
		tctx->edf = cfg && budget_left(target, cfg, now);
		victim = preempt_victim(p, tctx, target, cfg, node_of_cpu(cpu),
					prev_cpu,
					now + (cfg ? cfg->deadline_ns : 0), now);
		if (victim < 0)
			return cpu;
		slice = task_slice(tctx, target, cfg, now);
		if (!tctx->edf)
			slice = fit_slice(slice, node_of_cpu(cpu));
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice, SCX_ENQ_PREEMPT);
		tctx->direct = true;
		/* Counted per target; an untargeted task's is not counted. */
		if (target != SLO_NO_TARGET)
			count_preemption(target);
		return victim;
	}
	/*
	 * An idle CPU: the task goes straight into its local DSQ, in both
	 * modes. In partial mode a fair-class task can take that CPU before
	 * it picks the task up, and ops.cpu_release runs only when a higher
	 * class takes a CPU from scx, not from idle, so the task then waits
	 * as long as the fair task runs. Sending partial mode's wakeups
	 * through ops.enqueue instead (2026-12-01 to 12-03) cost far more
	 * than it saved: on an idle host the queue p50 went from 179 to
	 * 527 us and the p99 from 0.6 to 15.5 ms (EEVDF 156-163 us), and
	 * the next-to-a-fair-hog starvation it was meant to cure stayed:
	 * docs/scheduler.md, "Partial mode next to busy fair-class work".
	 */
	slice = task_slice(tctx, target, cfg, now);
	/*
	 * An idle CPU's local DSQ can already hold a task (one the kernel
	 * just migrated there, say): a budgeted latency task goes ahead of it,
	 * or it waits out that task's whole slice on an "idle" CPU (traced
	 * under TCG: an 8.7 ms wait behind a batch task).
	 */
	scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice, tctx->edf ? SCX_ENQ_HEAD : 0);
	tctx->direct = true;
	gstat_add(SLO_GSTAT_DIRECT_DISPATCHES, 1);
	if (target != SLO_NO_TARGET)
		tstat_add(try_lookup_target_stats(target),
			  SLO_TSTAT_DIRECT_DISPATCHES, 1);
	return cpu;
}

void BPF_STRUCT_OPS(slo_runnable, struct task_struct *p, u64 enq_flags)
{
	struct slo_target_stats *st;
	struct slo_target_cfg *cfg;
	struct task_ctx *tctx;
	u64 now = scx_bpf_now();
	u32 target;

	tctx = try_lookup_task_ctx(p);
	if (!tctx)
		return;
	/* A restore after a property change is not a new job. */
	if (!(enq_flags & SCX_ENQ_WAKEUP) && tctx->deadline_ns)
		return;
	tctx->enq_at_ns = now;
	target = task_target(p, tctx);
	if (target == SLO_NO_TARGET)
		return;
	cfg = try_lookup_target_cfg(target);
	st = try_lookup_target_stats(target);
	tctx->deadline_ns = now + (is_latency(cfg) ? cfg->deadline_ns : 0);
	tctx->missed = false;
	tstat_add(st, SLO_TSTAT_WAKEUPS, 1);
	/* The budget's shortfall, as the operator sees it: jobs that start
	 * with nothing left of it run by fair share only. */
	if (is_latency(cfg) && !budget_left(target, cfg, now))
		tstat_add(st, SLO_TSTAT_BUDGET_SPENT_WAKEUPS, 1);
}

void BPF_STRUCT_OPS(slo_enqueue, struct task_struct *p, u64 enq_flags)
{
	struct slo_target_cfg *cfg = NULL;
	struct slo_target_stats *st = NULL;
	struct task_ctx *tctx;
	u64 now = scx_bpf_now(), slice, vtime;
	u32 target, node = node_of_cpu(scx_bpf_task_cpu(p));
	s32 cpu;

	gstat_add(SLO_GSTAT_ENQUEUES, 1);
	tctx = try_lookup_task_ctx(p);
	if (!tctx) {
		scx_bpf_dsq_insert(p, SCX_DSQ_GLOBAL, slice_min_ns, enq_flags);
		return;
	}
	tctx->enq_at_ns = now;
	target = task_target(p, tctx);
	if (target != SLO_NO_TARGET) {
		cfg = try_lookup_target_cfg(target);
		st = try_lookup_target_stats(target);
	}

	slice = fit_slice(task_slice(tctx, target, cfg, now), node);
	/*
	 * A latency wakeup that skipped ops.select_cpu (a task pinned to one
	 * CPU does) gets what select_cpu would have given it: an idle CPU,
	 * else a preemption victim (preempt_victim). One that went through
	 * select_cpu had both tried there. A re-enqueue (the task was
	 * preempted, or its slice ended) is no wakeup and waits its turn.
	 */
	if ((enq_flags & SCX_ENQ_WAKEUP) && is_latency(cfg) &&
	    !tctx->select_tried) {
		cpu = scx_bpf_pick_idle_cpu(p->cpus_ptr, 0);
		if (cpu >= 0) {
			tctx->direct = true;
			scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | cpu, slice,
					   enq_flags);
			scx_bpf_kick_cpu(cpu, SCX_KICK_IDLE);
			gstat_add(SLO_GSTAT_DIRECT_DISPATCHES, 1);
			tstat_add(st, SLO_TSTAT_DIRECT_DISPATCHES, 1);
			return;
		}
		cpu = preempt_victim(p, tctx, target, cfg, node,
				     scx_bpf_task_cpu(p), tctx->deadline_ns, now);
		if (cpu >= 0) {
			tctx->direct = true;
			scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | cpu, slice,
					   enq_flags | SCX_ENQ_PREEMPT);
			count_preemption(target);
			return;
		}
	}
	tctx->select_tried = false;
	if (tctx->edf && cfg) {
		scx_bpf_dsq_insert_vtime(p, edf_dsq(node), slice,
					 tctx->deadline_ns, enq_flags);
		tstat_add(st, SLO_TSTAT_EDF_ENQUEUES, 1);
		if (kick_idle_cpu(p))
			return;
		if (cfg->preempt == SLO_PREEMPT_LOWER_PRIO &&
		    kick_lower_priority(p, node, cfg->priority,
					tctx->deadline_ns))
			count_preemption(target);
		return;
	}

	vtime = sleeper_vtime(tctx, node);
	tctx->vtime = vtime;
	scx_bpf_dsq_insert_vtime(p, vtime_dsq(node), slice, vtime, enq_flags);
	tstat_add(st, SLO_TSTAT_VTIME_ENQUEUES, 1);
	kick_idle_cpu(p);
}

static bool move_from(u64 dsq)
{
	return scx_bpf_dsq_move_to_local(dsq, 0);
}

/*
 * The wait guard, the mechanism behind "no runnable task waits longer than
 * max_wait". Neither order protects a task by itself: weighted virtual
 * time lets a low-weight task fall far behind busier high-weight ones, and
 * an EDF queue serves later deadlines last. So, at most every
 * max_wait / 8 per node, the CPU that dispatches walks the node's queues
 * and re-keys every task that has waited over max_wait / 4 into the node's
 * EDF DSQ with the time it started waiting as its key: older than any
 * deadline, so every CPU of the node serves them first, longest-waiting
 * first. (Moving them to the scanning CPU's own local DSQ instead queued
 * them all behind each other on one CPU: the CI hunt saw 25.9 ms against
 * a 23 ms bound; and a local DSQ refuses tasks pinned elsewhere, a runtime
 * error the hunt found with ksoftirqd/1.) A task that may not run here has
 * its CPU kicked. Queued slices are short enough then (fit_slice) that they
 * all get a turn. The walk needs no counter: the kernel's DSQ iterator
 * visits only the tasks queued when it began (and a counter the verifier
 * tracks as a constant keeps the loop's states from converging: tried, 1M
 * instructions and -E2BIG, or "8193 jumps is too complex").
 * Worst case: max_wait / 4 + max_wait / 8 + the slice in flight when the
 * task became overdue (at most slice_max, which is at most max_wait) + the
 * short slices of the overdue tasks ahead of it, shared by the node's CPUs.
 */
static void move_overdue(u64 dsq, u32 node, s32 cpu, u64 now)
{
	struct task_struct *p;

	bpf_for_each(scx_dsq, p, dsq, 0) {
		struct task_ctx *tctx;

		tctx = try_lookup_task_ctx(p);
		if (!tctx || !tctx->enq_at_ns || now < tctx->enq_at_ns ||
		    now - tctx->enq_at_ns < max_wait_ns / 4)
			continue;
		scx_bpf_dsq_move_set_vtime(BPF_FOR_EACH_ITER, tctx->enq_at_ns);
		if (!scx_bpf_dsq_move_vtime(BPF_FOR_EACH_ITER, p, edf_dsq(node),
					    0))
			continue;
		tctx->rescued = true;
		/* Counted here: a loop-carried count would be one more
		 * precise constant per iteration to the verifier. */
		gstat_add(SLO_GSTAT_WAIT_GUARD_DISPATCHES, 1);
		if (!bpf_cpumask_test_cpu(cpu, p->cpus_ptr))
			scx_bpf_kick_cpu(scx_bpf_task_cpu(p), 0);
	}
}

static void serve_overdue(struct node_ctx *nctx, u32 node, s32 cpu, u64 now)
{
	u64 last = nctx->guard_scan_ns;

	if (now - last < max_wait_ns / 8)
		return;
	/* One CPU of the node scans per interval. */
	if (__sync_val_compare_and_swap(&nctx->guard_scan_ns, last, now) != last)
		return;
	move_overdue(edf_dsq(node), node, cpu, now);
	move_overdue(vtime_dsq(node), node, cpu, now);
}

/*
 * What a run of @used ns of a targeted task costs: its virtual time (a
 * fair run only: a budgeted EDF run is the target's reservation, outside
 * fair share; charging it too would push a latency task's virtual time
 * ever further ahead of the batch tasks', by its whole budget every period,
 * and the first time its budget ran out it would queue behind all of them
 * until they caught up, for seconds: docs/scheduler.md), the target's
 * runtime, and a latency target's budget.
 */
static void charge_run(struct task_ctx *tctx, u32 target,
		       const struct slo_target_cfg *cfg,
		       struct slo_target_stats *st, u64 used)
{
	struct slo_budget_state *bs;
	u64 before;

	if (!tctx->edf)
		charge_vtime(tctx, used, cfg->weight);
	tstat_add(st, SLO_TSTAT_RUNTIME_NS, used);
	if (!is_latency(cfg))
		return;
	bs = try_lookup_budget_state(target);
	if (bs) {
		before = __sync_fetch_and_add(&bs->used_ns, used);
		if (before < cfg->runtime_ns && before + used >= cfg->runtime_ns)
			tstat_add(st, SLO_TSTAT_BUDGET_EXHAUSTED, 1);
	}
}


/*
 * The job's slack now; a job seen past its deadline gets its early warning
 * here, once. A still-runnable task's overdue job then ends
 * (restart_overdue_job): from ops.stopping, and from keep_latency_prev,
 * where a kept task skips ops.stopping (else a job kept for 100 ms against
 * a 10 ms deadline counted as one miss, not ten, and its stale deadline
 * kept it from being preempted by an earlier one).
 */
static __always_inline s64
warn_if_overdue(struct task_struct *p, struct task_ctx *tctx, u32 target,
		u64 now)
{
	s64 slack = (s64)(tctx->deadline_ns - now);

	if (slack < 0 && !tctx->missed) {
		tctx->missed = true;
		maybe_warn(target, p, SLO_EVENT_DEADLINE_MISS, slack, now);
	}
	return slack;
}

/* The job of a still-runnable task seen past its deadline ends, missed. */
static __always_inline void
restart_overdue_job(struct task_ctx *tctx, const struct slo_target_cfg *cfg,
		    struct slo_target_stats *st, s64 slack, u64 now)
{
	if (slack >= 0)
		return;
	tstat_add(st, SLO_TSTAT_JOBS, 1);
	tstat_add(st, SLO_TSTAT_DEADLINE_MISSES, 1);
	tctx->deadline_ns = now + cfg->deadline_ns;
	tctx->missed = false;
}

/*
 * The kernel calls ops.dispatch while a task whose slice ran out is still
 * current, before it goes back through ops.enqueue: whatever dispatch moves
 * to the local DSQ runs first, and the task waits behind it. A latency task
 * whose budget ran out mid-job (its EDF slice is what was left of the
 * budget) so lost its CPU to the batch task it had preempted, and waited
 * that task's whole slice (fit_slice, up to slice_max): with the timers'
 * phase against the budget's period steady for seconds, a timer tool's p99
 * was 4.5-9 ms in whole rounds against EEVDF's 0.4-1.3 ms (under TCG, the
 * emulator's timer delay removed: docs/scheduler.md, "Where it stands").
 * So, when no EDF task could be moved here, a latency task keeps its CPU,
 * its slice refilled (and fitted to the queues, as ops.enqueue would), when
 * nothing queued stands ahead of it: with budget left, an EDF slice; past
 * it, a slice_min of fair share while its virtual time is not ahead of the
 * first queued fair task's, as EEVDF lets a task with lag run on. The run
 * so far is charged here, and a job past its deadline ends here, since
 * ops.stopping and ops.running do not run for a task that stays: a
 * CPU-bound latency task's virtual time passes the queue's and it yields.
 * Never when the node owes service: EDF work runs first (overdue tasks
 * included, which serve_overdue moves there), and not past a quarter of
 * max_wait without a fair task started.
 */
static bool keep_latency_prev(struct task_struct *prev, s32 cpu, u32 node,
			      struct node_ctx *nctx, u64 now)
{
	struct slo_target_stats *st;
	struct slo_target_cfg *cfg;
	struct task_ctx *tctx;
	struct cpu_ctx *cctx;
	u64 used, left, slice;
	u32 target;
	s64 slack;

	if (!prev || !(prev->scx.flags & SCX_TASK_QUEUED))
		return false;
	if (scx_bpf_dsq_nr_queued(vtime_dsq(node)) &&
	    now - nctx->vtime_served_ns > max_wait_ns / 4)
		return false;
	tctx = try_lookup_task_ctx(prev);
	if (!tctx)
		return false;
	/* Resolved again, as ops.enqueue would: the task may have moved. */
	target = task_target(prev, tctx);
	if (target == SLO_NO_TARGET)
		return false;
	cfg = try_lookup_target_cfg(target);
	if (!is_latency(cfg))
		return false;
	st = try_lookup_target_stats(target);
	used = now > tctx->started_at_ns ? now - tctx->started_at_ns : 0;
	charge_run(tctx, target, cfg, st, used);
	tctx->started_at_ns = now;
	slack = warn_if_overdue(prev, tctx, target, now);
	restart_overdue_job(tctx, cfg, st, slack, now);
	left = budget_left(target, cfg, now);
	if (left) {
		tctx->edf = true;
		slice = left < slice_max_ns ? left : slice_max_ns;
	} else {
		/* Clamped as ops.enqueue would: a task whose runs were mostly
		 * budgeted (uncharged) may not bank more than slice_max. */
		tctx->vtime = sleeper_vtime(tctx, node);
		if (queued_before(node, tctx->vtime))
			return false;
		tctx->edf = false;
		slice = slice_min_ns;
	}
	prev->scx.slice = fit_slice(slice, node);
	cctx = try_lookup_cpu_ctx(cpu);
	if (cctx) {
		cctx->edf = tctx->edf;
		cctx->batch = false;
		cctx->priority = tctx->edf ? cfg->priority : 0;
		cctx->deadline_ns = tctx->deadline_ns;
		cctx->vtime = tctx->vtime;
		cctx->started_ns = now;
	}
	gstat_add(SLO_GSTAT_KEPT_RUNNING, 1);
	return true;
}

void BPF_STRUCT_OPS(slo_dispatch, s32 cpu, struct task_struct *prev)
{
	u32 node = node_of_cpu(cpu), n;
	struct node_ctx *nctx = try_lookup_node_ctx(node);
	u64 now = scx_bpf_now();

	if (!nctx)
		return;
	/* Overdue tasks move to the head of the EDF DSQ, served below. */
	serve_overdue(nctx, node, cpu, now);
	/*
	 * The bound on waiting: when no vtime task of this node has started
	 * for max_wait_ns while some are queued, EDF work has held them off
	 * long enough and one goes first. (slo_running resets the clock when
	 * a fair task taken from a queue starts, not one inserted directly.)
	 */
	if (scx_bpf_dsq_nr_queued(vtime_dsq(node)) == 0) {
		nctx->vtime_served_ns = now;
	} else if (now - nctx->vtime_served_ns > max_wait_ns &&
		   move_from(vtime_dsq(node))) {
		gstat_add(SLO_GSTAT_WAIT_BOUND_DISPATCHES, 1);
		return;
	}
	if (move_from(edf_dsq(node))) {
		gstat_add(SLO_GSTAT_EDF_DISPATCHES, 1);
		return;
	}
	if (keep_latency_prev(prev, cpu, node, nctx, now))
		return;
	if (move_from(vtime_dsq(node))) {
		gstat_add(SLO_GSTAT_VTIME_DISPATCHES, 1);
		return;
	}
	/* Idle here: pull from a node whose queues are deep enough. */
	bpf_for(n, 0, nr_nodes) {
		if (n == node || n >= SLO_MAX_NODES)
			continue;
		if (scx_bpf_dsq_nr_queued(edf_dsq(n)) +
			    scx_bpf_dsq_nr_queued(vtime_dsq(n)) <
		    numa_migration_threshold)
			continue;
		if (move_from(edf_dsq(n)) || move_from(vtime_dsq(n))) {
			gstat_add(SLO_GSTAT_REMOTE_DISPATCHES, 1);
			return;
		}
	}
}

void BPF_STRUCT_OPS(slo_running, struct task_struct *p)
{
	struct slo_target_cfg *cfg = NULL;
	struct slo_target_stats *st;
	struct task_ctx *tctx;
	struct node_ctx *nctx;
	struct cpu_ctx *cctx;
	u64 now = scx_bpf_now(), delay;
	u32 target;

	tctx = try_lookup_task_ctx(p);
	if (!tctx)
		return;
	tctx->started_at_ns = now;
	tctx->select_tried = false;
	/*
	 * No scx task runs more than slice_max at a time. The kernel queues
	 * some tasks without ops.enqueue and refills their slice to its
	 * default, 20 ms: a task a higher class preempted while it was
	 * migration-disabled goes straight back to its CPU's local DSQ (6.17
	 * counts SCX_EV_ENQ_SKIP_MIGRATION_DISABLED, 150 times in one partial
	 * enforce run under TCG). Traced: a CPU-bound latency task then ran
	 * 20-30 ms through every fair-class preemption while a waking latency
	 * task waited, 36 ms once; partial mode's misses dropped from 2.2% to
	 * 0.8% with this (docs/scheduler.md, "Slices the kernel refills").
	 */
	if (p->scx.slice > slice_max_ns) {
		p->scx.slice = slice_max_ns;
		gstat_add(SLO_GSTAT_SLICE_CLAMPS, 1);
	}
	target = tctx->target;
	cctx = try_lookup_cpu_ctx(-1);
	/* Only an EDF run needs its target's config here (its priority). */
	if (tctx->edf && target != SLO_NO_TARGET)
		cfg = try_lookup_target_cfg(target);
	if (cctx) {
		cctx->scx_running = true;
		cctx->edf = tctx->edf;
		cctx->batch = tctx->batch;
		cctx->priority = cfg ? cfg->priority : 0;
		cctx->deadline_ns = tctx->deadline_ns;
		cctx->vtime = tctx->vtime;
		cctx->started_ns = now;
	}
	if (!tctx->edf) {
		/*
		 * The node's vtime DSQ is being served: reset the wait bound.
		 * ops.running runs on the task's CPU, and the verifier inlines
		 * bpf_get_smp_processor_id() where scx_bpf_task_cpu() is a call.
		 */
		nctx = try_lookup_node_ctx(node_of_cpu(bpf_get_smp_processor_id()));
		if (nctx) {
			if (!tctx->direct)
				nctx->vtime_served_ns = now;
			if (!tctx->rescued &&
			    vtime_after(tctx->vtime, nctx->vtime_now))
				nctx->vtime_now = tctx->vtime;
		}
	}
	tctx->direct = false;
	tctx->rescued = false;
	st = target == SLO_NO_TARGET ? NULL : try_lookup_target_stats(target);
	delay = tctx->enq_at_ns && now > tctx->enq_at_ns ?
			now - tctx->enq_at_ns : 0;
	tctx->enq_at_ns = 0;
	if (delay)
		record_wait(p, st, delay);
	if (!st)
		return;
	tstat_add(st, SLO_TSTAT_RUNS, 1);
	if (delay) {
		tstat_add(st, SLO_TSTAT_RQ_DELAY_SUM_NS, delay);
		hist_inc(st->rq_delay_hist, delay);
	}
}

void BPF_STRUCT_OPS(slo_stopping, struct task_struct *p, bool runnable)
{
	struct slo_target_cfg *cfg = NULL;
	struct slo_target_stats *st = NULL;
	struct task_ctx *tctx;
	struct cpu_ctx *cctx;
	u64 now = scx_bpf_now(), used;
	u32 target;
	s64 slack;

	tctx = try_lookup_task_ctx(p);
	if (!tctx)
		return;
	cctx = try_lookup_cpu_ctx(-1);
	if (cctx) {
		cctx->scx_running = false;
		cctx->edf = false;
		cctx->batch = false;
		cctx->priority = 0;
	}
	used = now > tctx->started_at_ns ? now - tctx->started_at_ns : 0;
	/*
	 * Still runnable (slice over, or preempted by a higher class, which
	 * puts it back on the local DSQ without ops.enqueue): it waits from
	 * now. An ops.enqueue that follows restamps the same moment.
	 */
	if (runnable)
		tctx->enq_at_ns = now;
	target = tctx->target;
	if (target != SLO_NO_TARGET) {
		cfg = try_lookup_target_cfg(target);
		st = try_lookup_target_stats(target);
	}
	/*
	 * Virtual time advances by runtime scaled inversely to weight: the
	 * target's, or the task's own (from nice). Two separate loads, so the
	 * compiler cannot merge a map-value and a task pointer into one insn.
	 * A targeted task's run is charged by charge_run (a budgeted EDF run
	 * to its budget only).
	 */
	if (!cfg) {
		charge_vtime(tctx, used, p->scx.weight);
		return;
	}
	charge_run(tctx, target, cfg, st, used);
	if (!is_latency(cfg))
		return;

	/*
	 * A job runs from a wakeup until the task sleeps, or until it is seen
	 * running past its deadline and still runnable: then that job ends,
	 * missed, and the next one starts with a new deadline. Jobs and misses
	 * are both counted when a job ends, jobs first, so misses <= jobs holds
	 * in every per-CPU copy at every moment (docs/metrics.md). Counting a
	 * miss at detection and a job only at sleep gave 315 misses for 247
	 * jobs. The early warning still fires at detection.
	 */
	slack = warn_if_overdue(p, tctx, target, now);
	if (runnable) {
		/* Still running past the deadline: this job ends, missed. */
		restart_overdue_job(tctx, cfg, st, slack, now);
		return;
	}
	/* The job is done: the task goes to sleep. */
	tstat_add(st, SLO_TSTAT_JOBS, 1);
	if (tctx->missed)
		tstat_add(st, SLO_TSTAT_DEADLINE_MISSES, 1);
	tctx->missed = false;
	if (slack >= 0) {
		if (st)
			hist_inc(st->slack_hist, (u64)slack);
		tstat_add(st, SLO_TSTAT_SLACK_SUM_NS, (u64)slack);
		if ((u64)slack < slack_warn_ns)
			maybe_warn(target, p, SLO_EVENT_LOW_SLACK, slack, now);
	}
}

/*
 * A higher class took this CPU (in partial mode, any fair-class task): the
 * tasks waiting in its local DSQ go back through ops.enqueue to the node's
 * queues, where other CPUs can run them. A local DSQ never migrates, so
 * without this a task preempted by a CPU-bound fair task would wait as long
 * as that task runs. (It does not cure the 4 s waits the hunt saw next to an
 * untargeted CPU hog in partial mode: docs/scheduler.md.)
 */
void BPF_STRUCT_OPS(slo_cpu_release, s32 cpu, struct scx_cpu_release_args *args)
{
	scx_bpf_reenqueue_local();
}

void BPF_STRUCT_OPS(slo_enable, struct task_struct *p)
{
	struct node_ctx *nctx = try_lookup_node_ctx(
		node_of_cpu(scx_bpf_task_cpu(p)));
	struct task_ctx *tctx = try_lookup_task_ctx(p);

	/* A task joining sched_ext starts level with the node's clock. */
	if (tctx)
		tctx->vtime = nctx ? nctx->vtime_now : 0;
}

s32 BPF_STRUCT_OPS(slo_init_task, struct task_struct *p,
		   struct scx_init_task_args *args)
{
	struct task_ctx *tctx;

	tctx = bpf_task_storage_get(&task_stor, p, 0,
				    BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!tctx)
		return -ENOMEM;
	tctx->target = SLO_NO_TARGET;
	tctx->gen = (u64)-1;
	return 0;
}

/* Rolls every latency target's period, so idle targets lend their budget. */
static int lend_timer_fn(void *map, int *key, struct bpf_timer *timer)
{
	u64 now = scx_bpf_now();
	u32 i, n = nr_targets;
	u64 interval = lend_interval_ns;

	if (n > SLO_MAX_TARGETS)
		n = SLO_MAX_TARGETS;
	bpf_for(i, 0, n) {
		struct slo_target_cfg *cfg = try_lookup_target_cfg(i);
		struct slo_budget_state *bs = try_lookup_budget_state(i);

		if (bs && is_latency(cfg))
			roll_period(bs, cfg, now);
	}
	if (interval < SLO_LEND_INTERVAL_MIN_NS)
		interval = SLO_LEND_INTERVAL_MIN_NS;
	bpf_timer_start(timer, interval, 0);
	return 0;
}

s32 BPF_STRUCT_OPS_SLEEPABLE(slo_init)
{
	struct lend_timer *lt;
	u32 zero = 0, n;
	s32 ret;

	bpf_for(n, 0, nr_nodes) {
		if (n >= SLO_MAX_NODES)
			break;
		ret = scx_bpf_create_dsq(edf_dsq(n), n);
		if (ret) {
			scx_bpf_error("creating EDF DSQ of node %u: %d", n, ret);
			return ret;
		}
		ret = scx_bpf_create_dsq(vtime_dsq(n), n);
		if (ret) {
			scx_bpf_error("creating vtime DSQ of node %u: %d", n,
				      ret);
			return ret;
		}
	}
	lt = bpf_map_lookup_elem(&lend_timers, &zero);
	if (!lt) {
		scx_bpf_error("lend timer slot missing");
		return -ENOENT;
	}
	ret = bpf_timer_init(&lt->timer, &lend_timers, CLOCK_MONOTONIC);
	if (ret) {
		scx_bpf_error("initialising the lend timer: %d", ret);
		return ret;
	}
	bpf_timer_set_callback(&lt->timer, lend_timer_fn);
	ret = bpf_timer_start(&lt->timer, lend_interval_ns, 0);
	if (ret) {
		scx_bpf_error("starting the lend timer: %d", ret);
		return ret;
	}
	return 0;
}

void BPF_STRUCT_OPS(slo_exit, struct scx_exit_info *ei)
{
	UEI_RECORD(uei, ei);
}

SCX_OPS_DEFINE(slo_ops,
	       .select_cpu = (void *)slo_select_cpu,
	       .runnable = (void *)slo_runnable,
	       .enqueue = (void *)slo_enqueue,
	       .dispatch = (void *)slo_dispatch,
	       .running = (void *)slo_running,
	       .stopping = (void *)slo_stopping,
	       .cpu_release = (void *)slo_cpu_release,
	       .enable = (void *)slo_enable,
	       .init_task = (void *)slo_init_task,
	       .init = (void *)slo_init,
	       .exit = (void *)slo_exit,
	       .timeout_ms = SLO_WATCHDOG_TIMEOUT_MS,
	       .name = "scx_slo");
