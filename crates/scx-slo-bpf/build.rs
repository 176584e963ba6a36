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
    record_digests();
    for skel in ["bpf_skel.rs", "observe_skel.rs"] {
        expose_object(skel);
    }
}

/// Makes the generated skeleton's embedded object (`static DATA`, private
/// in its private `imp` module) public, so that integrity.rs hashes the very
/// bytes libbpf is given, not a second copy of the file.
fn expose_object(skel: &str) {
    let path = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join(skel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {skel}: {e}"));
    if text.contains("\npub static DATA:") {
        return;
    }
    assert_eq!(text.matches("\nstatic DATA:").count(), 1, "{skel}: expected one `static DATA:` (the embedded object); the skeleton generator changed");
    std::fs::write(&path, text.replace("\nstatic DATA:", "\npub static DATA:")).unwrap_or_else(|e| panic!("writing {skel}: {e}"));
}

/// Writes the SHA-256 of each object the skeletons embed into
/// `$OUT_DIR/bpf_digests.rs` (src/integrity.rs checks the embedded bytes
/// against them before a load, and the daemon reports them).
fn record_digests() {
    use sha2::Digest;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let mut text = String::new();
    for (object, file) in [("SCX_SLO", "bpf.bpf.o"), ("OBSERVE", "observe.bpf.o")] {
        let bytes = std::fs::read(out.join(file)).unwrap_or_else(|e| panic!("reading {file} to record its digest: {e}"));
        let hex: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        text.push_str(&format!("/// SHA-256 of {file} as built.\npub const {object}_SHA256: &str = \"{hex}\";\n"));
    }
    std::fs::write(out.join("bpf_digests.rs"), text).expect("writing bpf_digests.rs");
}
