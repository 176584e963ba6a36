/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The one contract between scx-slo's BPF programs and its Rust loader:
 * limits, stat ids, and every struct that crosses the boundary.
 *
 * Compiled twice: by clang for BPF (after vmlinux.h) and by bindgen for Rust.
 * Fields are fixed-width with explicit padding; sizes are asserted below so a
 * change on one side cannot silently shift the other.
 */
#ifndef __SCX_SLO_INTF_H
#define __SCX_SLO_INTF_H

#ifndef __VMLINUX_H__
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long s64;
#endif

enum slo_consts {
	/* Targets per config; equals scx_slo_model::MAX_TARGETS. */
	SLO_MAX_TARGETS = 1024,
	/* Index meaning "no target": the task is untargeted. */
	SLO_NO_TARGET = SLO_MAX_TARGETS,
	SLO_MAX_CPUS = 1024,
	SLO_MAX_NODES = 64,
	/* Shortest slice the queue-depth scaling hands out (model: slice floor). */
	SLO_MIN_SLICE_NS = 50000,
	/* Cgroup levels walked up from a task's cgroup to find a target. */
	SLO_MAX_CGROUP_DEPTH = 16,
	/*
	 * log2 histogram buckets over ns >> SLO_HIST_SHIFT (about microseconds):
	 * bucket 0 holds < 1.024us, bucket i holds [2^(i-1), 2^i) * 1.024us,
	 * the last bucket everything from about 4.3 s up.
	 */
	SLO_HIST_SHIFT = 10,
	SLO_HIST_BUCKETS = 24,
	/* DSQ ids: two per NUMA node. */
	SLO_DSQ_EDF_BASE = 0x100,
	SLO_DSQ_VTIME_BASE = 0x200,
	/* Weight that runs at wall-clock virtual time (systemd's CPUWeight
	 * default); equals scx_slo_model::DEFAULT_WEIGHT. */
	SLO_DEFAULT_WEIGHT = 100,
	/* The sched_ext watchdog: a task runnable this long ejects the
	 * scheduler. scheduler.max_wait's upper bound stays well below it. */
	SLO_WATCHDOG_TIMEOUT_MS = 10000,
	/* The period-roll (lend) timer: twice per shortest period, never more
	 * often than the minimum; the default until a latency target exists. */
	SLO_LEND_INTERVAL_NS = 10000000,
	SLO_LEND_INTERVAL_MIN_NS = 1000000,
	/* Lent credit is capped at this many slice_max per CPU. */
	SLO_CREDIT_CAP_SLICES_PER_CPU = 4,
};

enum slo_class {
	SLO_CLASS_BATCH = 0,
	SLO_CLASS_LATENCY = 1,
	NR_SLO_CLASSES,
};

enum slo_preempt {
	SLO_PREEMPT_NEVER = 0,
	SLO_PREEMPT_LOWER_PRIO = 1,
	NR_SLO_PREEMPT,
};

/* Per-target counters, per CPU; the daemon sums CPUs. */
enum slo_tstat_id {
	SLO_TSTAT_WAKEUPS,		/* task became runnable (a job started) */
	SLO_TSTAT_RUNS,			/* task got a CPU */
	SLO_TSTAT_RUNTIME_NS,		/* CPU time consumed */
	SLO_TSTAT_JOBS,			/* jobs ended: the task slept, or ran on past its deadline */
	SLO_TSTAT_DEADLINE_MISSES,	/* ended jobs that missed their deadline (<= JOBS) */
	SLO_TSTAT_BUDGET_EXHAUSTED,	/* periods in which the budget ran out */
	SLO_TSTAT_EDF_ENQUEUES,		/* queued earliest-deadline-first */
	SLO_TSTAT_VTIME_ENQUEUES,	/* queued by virtual time */
	SLO_TSTAT_DIRECT_DISPATCHES,	/* sent straight to an idle CPU */
	SLO_TSTAT_PREEMPT_KICKS,	/* CPUs kicked to make room */
	SLO_TSTAT_EARLY_WARNINGS,	/* low-slack events sent */
	SLO_TSTAT_WARNINGS_SUPPRESSED,	/* low-slack events rate limited */
	SLO_TSTAT_RQ_DELAY_SUM_NS,	/* run-queue delay, summed */
	SLO_TSTAT_SLACK_SUM_NS,		/* slack of jobs that met their deadline, summed */
	SLO_TSTAT_BUDGET_SPENT_WAKEUPS,	/* wakeups that found the period's budget spent */
	SLO_TSTAT_FAIR_PREEMPTS,	/* budget spent: took a CPU from fair work that ran ahead */
	NR_SLO_TSTATS,
};

/* Whole-scheduler counters, per CPU. */
enum slo_gstat_id {
	SLO_GSTAT_ENQUEUES,
	SLO_GSTAT_DIRECT_DISPATCHES,
	SLO_GSTAT_EDF_DISPATCHES,
	SLO_GSTAT_VTIME_DISPATCHES,
	SLO_GSTAT_WAIT_BOUND_DISPATCHES, /* vtime served first: max_wait hit */
	SLO_GSTAT_REMOTE_DISPATCHES,	 /* pulled from another NUMA node */
	SLO_GSTAT_CREDIT_GRANTS,	 /* batch slices lengthened by lent credit */
	SLO_GSTAT_CREDIT_LENT_NS,	 /* ns of unused latency budget lent */
	SLO_GSTAT_PREEMPT_KICKS,
	SLO_GSTAT_EVENTS_DROPPED,	 /* ring buffer full */
	SLO_GSTAT_WAIT_GUARD_DISPATCHES, /* a task overdue past max_wait/4 served first */
	SLO_GSTAT_SLICE_CLAMPS,		 /* kernel-refilled slices cut to slice_max */
	SLO_GSTAT_KEPT_RUNNING,		 /* latency tasks kept on their CPU at a slice's end */
	NR_SLO_GSTATS,
};

/* observe.bpf.c's own counters, per CPU. */
enum slo_ostat_id {
	SLO_OSTAT_WAKEUPS_SEEN,		/* every wakeup the probe ran for */
	SLO_OSTAT_WAKEUPS_SAMPLED_OUT,	/* skipped by 1-in-N sampling */
	SLO_OSTAT_CGROUP_WALKS,		/* cgroup verdict cache misses */
	SLO_OSTAT_JOBS_UNTRACKED,	/* job table full */
	SLO_OSTAT_SAMPLES_DROPPED,	/* raw-sample ring buffer full */
	NR_SLO_OSTATS,
};

/* What a raw sample of observe.bpf.c measured. */
enum slo_sample_kind {
	SLO_SAMPLE_QUEUE = 1,		/* wakeup -> first run of the job */
	SLO_SAMPLE_RESPONSE = 2,	/* wakeup -> the task sleeps again */
};

/* One raw measurement (observe.bpf.c, with emit_samples set). */
struct slo_sample {
	u64 ns;
	u32 target;
	u32 kind;		/* enum slo_sample_kind */
};

enum slo_event_kind {
	SLO_EVENT_LOW_SLACK = 1,	/* job finished with slack under threshold */
	SLO_EVENT_DEADLINE_MISS = 2,	/* job ran past its deadline */
	/*
	 * Partial switch: a task not yet SCHED_EXT started in, or moved into,
	 * a targeted cgroup; slack_ns is 1 when every thread of the process
	 * moved (only its leader is reported).
	 */
	SLO_EVENT_NEW_TASK = 3,
};

/* cgroup's policy; written by the daemon, read by BPF. */
struct slo_target_cfg {
	u64 runtime_ns;		/* budget per period (latency) */
	u64 period_ns;		/* replenishment period (latency) */
	u64 deadline_ns;	/* relative deadline (latency) */
	u32 weight;		/* CPUWeight scale, 100 = default */
	u16 priority;		/* 0..1000, higher wins */
	u8 class;		/* enum slo_class */
	u8 preempt;		/* enum slo_preempt */
};

/* Per-target statistics, one copy per CPU; written by BPF. */
struct slo_target_stats {
	u64 cnt[NR_SLO_TSTATS];
	u64 rq_delay_hist[SLO_HIST_BUCKETS];
	u64 slack_hist[SLO_HIST_BUCKETS];
	/*
	 * Longest runnable wait (queued or preempted -> running) of any task
	 * of the target on this CPU, in ns: a maximum, not a sum.
	 */
	u64 max_wait_ns;
};

/* Per-target budget accounting shared by all CPUs; written by BPF. */
struct slo_budget_state {
	u64 period_start_ns;	/* start of the current period */
	u64 used_ns;		/* CPU time used in the current period */
	u64 last_warning_ns;	/* for the early-warning rate limit */
};

/* Whole-scheduler statistics, one copy per CPU; written by BPF. */
struct slo_global_stats {
	u64 cnt[NR_SLO_GSTATS];
	/* Longest runnable wait of any sched_ext task on this CPU, in ns. */
	u64 max_wait_ns;
	/* The task (tid) that waited max_wait_ns, for diagnosis. */
	u64 max_wait_pid;
};

/* observe.bpf.c's statistics, one copy per CPU; written by BPF. */
struct slo_observe_stats {
	u64 cnt[NR_SLO_OSTATS];
};

/* Ring-buffer record; written by BPF, read by the daemon. */
struct slo_event {
	u64 ts_ns;
	s64 slack_ns;		/* negative for a miss */
	u32 target;
	u32 pid;
	u32 kind;		/* enum slo_event_kind */
	u32 cpu;
};

#ifndef __cplusplus
_Static_assert(sizeof(struct slo_target_cfg) == 32, "slo_target_cfg layout");
_Static_assert(sizeof(struct slo_budget_state) == 24, "slo_budget_state layout");
_Static_assert(sizeof(struct slo_event) == 32, "slo_event layout");
_Static_assert(SLO_NO_TARGET == SLO_MAX_TARGETS, "no-target sentinel");
#endif

#endif /* __SCX_SLO_INTF_H */
