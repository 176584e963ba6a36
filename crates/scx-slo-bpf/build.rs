// SPDX-License-Identifier: GPL-2.0-only
//! Compiles ../../bpf/scx_slo.bpf.c and ../../bpf/observe.bpf.c with clang (BPF_CLANG, default `clang`)
//! against the vmlinux.h and scx headers vendored in scx_cargo, generates its
//! libbpf-rs skeleton, and runs bindgen over ../../bpf/intf.h.
//! scx_cargo emits rerun-if-changed for every header it includes.

fn main() {
    if let Err(e) = scx_cargo::BpfBuilder::new()
        .and_then(|mut b| {
            b.enable_intf("../../bpf/intf.h", "bpf_intf.rs")
                .enable_skel("../../bpf/scx_slo.bpf.c", "bpf")
                .build()
        })
    {
        // A build script can only report by failing; name what failed.
        panic!("building bpf/scx_slo.bpf.c: {e:#}");
    }
    // The observe probes are a second, independent object (raw tracepoints
    // only, no sched_ext), so they load on kernels without sched_ext.
    if let Err(e) = scx_cargo::BpfBuilder::new().and_then(|mut b| b.enable_skel("../../bpf/observe.bpf.c", "observe").build()) {
        panic!("building bpf/observe.bpf.c: {e:#}");
    }
}
