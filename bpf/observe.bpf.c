/* SPDX-License-Identifier: GPL-2.0 */
/*
 * observe: scx-slo's measuring probes for kernels without sched_ext (or while
 * the scheduler is off). They change nothing; they measure, per targeted
 * cgroup, what enforce mode measures, into the same per-target statistics
 * (struct slo_target_stats), so every number means the same in every mode.
 *
 * - sched_wakeup / sched_wakeup_new: a job of a targeted task starts; its
 *   wakeup time is remembered by pid.
 * - sched_switch, next side: the first time a woken job gets a CPU, its
 *   run-queue delay goes into the log2 histogram.
 * - sched_switch, prev side: a job whose task goes to sleep is complete; its
 *   response time is compared with the target's relative deadline (the
 *   would-be deadline enforce mode would have given it): a miss or slack.
 *
 * Only raw tracepoints (BPF_PROG_TYPE_RAW_TRACEPOINT): no fentry or tp_btf,
 * which need BPF trampolines some kernels lack. Task pointers are therefore
 * untrusted and read with BPF_CORE_READ; per-task state is a pid-keyed LRU
 * hash, not task storage.
 *
 * Cost control: the daemon measures these programs' run time (bpf_stats)
 * and, over its budget, sets sample_every = N so only one wakeup in N per CPU
 * starts a measured job. The switch side stays cheap for untracked tasks: one
 * per-CPU array read for prev and one hash lookup for next.
 *
 * Raw samples: with emit_samples set (the benchmark lab sets it; the daemon
 * never does), every measured queue delay and response time also goes to the
 * `samples` ring buffer, so a benchmark can test distributions, not buckets.
 *
 * A job starts at sched_waking, which fires on the waker's CPU as
 * try_to_wake_up begins; sched_wakeup can fire later, on the target CPU after
 * a wakelist IPI, and would hide that wait.
 *
 * CPU time per target is not counted here: the daemon reads it from the
 * cgroup's cpu.stat, which the kernel keeps exactly and for free.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "intf.h"
#include "target_maps.bpf.h"
#include "hist.bpf.h"

char _license[] SEC("license") = "GPL";

/* Runtime settings the daemon writes through the mmapped .bss. */
volatile u64 cfg_gen;			/* bumped after the maps change */
volatile u32 sample_every = 1;		/* 1: every wakeup; N: one in N per CPU (.data) */
volatile u32 emit_samples;		/* 1: raw samples to `samples` (benchmark lab) */

/* Probe counters, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct slo_observe_stats);
} observe_stats SEC(".maps");

/* Raw samples for the benchmark lab; empty unless emit_samples. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} samples SEC(".maps");

/*
 * A task's cgroup -> its target (or SLO_NO_TARGET), so a wakeup walks the
 * cgroup tree once per cgroup and config generation, not once per wakeup.
 */
struct cgroup_verdict {
	u64 gen;
	u32 target;
	u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, u64);
	__type(value, struct cgroup_verdict);
} cgroup_verdicts SEC(".maps");

/* A measured job of a targeted task, by pid. */
struct job {
	u64 woke_ns;		/* wakeup time; 0 when no job is open */
	u32 target;
	u32 queued;		/* 1 until the job first gets a CPU */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, u32);
	__type(value, struct job);
} jobs SEC(".maps");

/* The measured task on each CPU, so switching out needs no hash lookup. */
struct cpu_slot {
	u32 pid;		/* 0: the running task has no open job */
	u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct cpu_slot);
} cpu_slots SEC(".maps");

static void ostat_inc(u32 id)
{
	u32 zero = 0;
	struct slo_observe_stats *s = bpf_map_lookup_elem(&observe_stats, &zero);

	if (s && id < NR_SLO_OSTATS)
		s->cnt[id]++;
}

static void emit_sample(u32 target, u32 kind, u64 ns)
{
	struct slo_sample *s;

	if (!emit_samples)
		return;
	s = bpf_ringbuf_reserve(&samples, sizeof(*s), 0);
	if (!s) {
		ostat_inc(SLO_OSTAT_SAMPLES_DROPPED);
		return;
	}
	s->ns = ns;
	s->target = target;
	s->kind = kind;
	bpf_ringbuf_submit(s, 0);
}

static struct slo_target_stats *target_stats_of(u32 target)
{
	return bpf_map_lookup_elem(&target_stats, &target);
}

static u32 task_target(struct task_struct *p)
{
	struct cgroup *cgrp = BPF_CORE_READ(p, cgroups, dfl_cgrp);
	u64 cgid = BPF_CORE_READ(cgrp, kn, id);
	u64 gen = cfg_gen;
	struct cgroup_verdict *v, fresh = {};

	v = bpf_map_lookup_elem(&cgroup_verdicts, &cgid);
	if (v && v->gen == gen)
		return v->target;
	ostat_inc(SLO_OSTAT_CGROUP_WALKS);
	fresh.gen = gen;
	fresh.target = slo_cgroup_target(cgrp);
	bpf_map_update_elem(&cgroup_verdicts, &cgid, &fresh, BPF_ANY);
	return fresh.target;
}

static int on_wakeup(struct task_struct *p)
{
	u32 zero = 0, target, pid, every = sample_every;
	struct slo_observe_stats *os = bpf_map_lookup_elem(&observe_stats, &zero);
	struct slo_target_stats *ts;
	struct job job = {}, *existing;
	u64 now;

	if (!os)
		return 0;
	/* The per-CPU count of wakeups seen doubles as the sampling sequence. */
	if (++os->cnt[SLO_OSTAT_WAKEUPS_SEEN] % every && every > 1) {
		os->cnt[SLO_OSTAT_WAKEUPS_SAMPLED_OUT]++;
		return 0;
	}
	target = task_target(p);
	if (target >= SLO_MAX_TARGETS)
		return 0;
	pid = BPF_CORE_READ(p, pid);
	now = bpf_ktime_get_ns();
	/*
	 * Reuse the task's entry in place: an LRU hash update (lock, node
	 * allocation) costs several times a lookup, and a task wakes many times.
	 */
	existing = bpf_map_lookup_elem(&jobs, &pid);
	if (existing) {
		existing->target = target;
		existing->queued = 1;
		existing->woke_ns = now;
	} else {
		job.woke_ns = now;
		job.target = target;
		job.queued = 1;
		if (bpf_map_update_elem(&jobs, &pid, &job, BPF_ANY)) {
			ostat_inc(SLO_OSTAT_JOBS_UNTRACKED);
			return 0;
		}
	}
	ts = target_stats_of(target);
	if (ts)
		ts->cnt[SLO_TSTAT_WAKEUPS]++;
	return 0;
}

SEC("raw_tp/sched_waking")
int BPF_PROG(observe_waking, struct task_struct *p)
{
	return on_wakeup(p);
}

SEC("raw_tp/sched_wakeup_new")
int BPF_PROG(observe_wakeup_new, struct task_struct *p)
{
	return on_wakeup(p);
}

/* prev leaves the CPU: close its job when it goes to sleep. */
static void switch_out(struct cpu_slot *slot, struct task_struct *prev, bool preempt,
		       unsigned int prev_state)
{
	const struct slo_target_cfg *cfg;
	struct slo_target_stats *ts;
	struct job *job;
	u64 response;
	u32 pid;

	/* Most switches: no measured job was on this CPU; no read at all. */
	if (!slot->pid)
		return;
	pid = BPF_CORE_READ(prev, pid);
	if (slot->pid != pid)
		return;
	slot->pid = 0;
	/* Preempted or yielding: still runnable, the job goes on. */
	if (preempt || prev_state == 0)
		return;
	job = bpf_map_lookup_elem(&jobs, &pid);
	if (!job || !job->woke_ns)
		return;
	response = bpf_ktime_get_ns() - job->woke_ns;
	job->woke_ns = 0;
	emit_sample(job->target, SLO_SAMPLE_RESPONSE, response);
	ts = target_stats_of(job->target);
	cfg = bpf_map_lookup_elem(&target_cfg, &job->target);
	if (!ts)
		return;
	ts->cnt[SLO_TSTAT_JOBS]++;
	if (!cfg || !cfg->deadline_ns)
		return;
	if (response > cfg->deadline_ns) {
		ts->cnt[SLO_TSTAT_DEADLINE_MISSES]++;
	} else {
		ts->slack_hist[slo_hist_bucket(cfg->deadline_ns - response)]++;
		ts->cnt[SLO_TSTAT_SLACK_SUM_NS] += cfg->deadline_ns - response;
	}
}

/* next gets the CPU: the first run of a job ends its run-queue wait. */
static void switch_in(struct cpu_slot *slot, struct task_struct *next)
{
	struct slo_target_stats *ts;
	u32 pid = BPF_CORE_READ(next, pid);
	struct job *job;
	u64 delay, now;

	job = bpf_map_lookup_elem(&jobs, &pid);
	if (!job || !job->woke_ns)
		return;
	slot->pid = pid;
	ts = target_stats_of(job->target);
	if (!ts)
		return;
	ts->cnt[SLO_TSTAT_RUNS]++;
	if (!job->queued)
		return;
	job->queued = 0;
	now = bpf_ktime_get_ns();
	delay = now > job->woke_ns ? now - job->woke_ns : 0;
	ts->cnt[SLO_TSTAT_RQ_DELAY_SUM_NS] += delay;
	ts->rq_delay_hist[slo_hist_bucket(delay)]++;
	emit_sample(job->target, SLO_SAMPLE_QUEUE, delay);
}

/* TP_PROTO(bool preempt, prev, next, unsigned int prev_state): 5.18+. */
SEC("raw_tp/sched_switch")
int BPF_PROG(observe_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	u32 zero = 0;
	struct cpu_slot *slot = bpf_map_lookup_elem(&cpu_slots, &zero);

	if (!slot)
		return 0;
	switch_out(slot, prev, preempt, prev_state);
	switch_in(slot, next);
	return 0;
}
