/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The log2 histogram bucket of intf.h, shared by both BPF objects: bucket 0
 * holds < 1.024 us, bucket i holds [2^(i-1), 2^i) * 1.024 us, the last one
 * everything above. Constant time (count-leading-zeros), no loop.
 */
#ifndef __SCX_SLO_HIST_BPF_H
#define __SCX_SLO_HIST_BPF_H

static __always_inline u32 slo_hist_bucket(u64 ns)
{
	u64 v = ns >> SLO_HIST_SHIFT;
	u32 b;

	if (!v)
		return 0;
	b = 64 - __builtin_clzll(v);
	/*
	 * Hide b's origin from clang, which would otherwise turn the cap below
	 * into a compare on v and leave the verifier with an unbounded index.
	 */
	asm volatile("" : "+r"(b));
	if (b >= SLO_HIST_BUCKETS)
		b = SLO_HIST_BUCKETS - 1;
	return b;
}

#endif /* __SCX_SLO_HIST_BPF_H */
