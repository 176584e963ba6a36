// SPDX-License-Identifier: GPL-2.0-only
//! BPF object integrity (docs/security.md): the build records the SHA-256 of each
//! object it embeds (build.rs); before anything is loaded, the embedded
//! bytes are hashed again and compared, and a mismatch is refused with the
//! object's name and both digests.
//!
//! What this catches: the object bytes inside the installed binary changed
//! after the build (a corrupted or patched file, a bad copy), which would
//! otherwise load into the kernel. What it does not: a binary rebuilt or
//! patched together with its recorded digest. Against that, compare the
//! digests the daemon reports (Status, `scx-slo version --verbose`, the
//! audit trail, `scx_slo_bpf_object_info`) with the ones the Nix package
//! exposes (`passthru.bpfDigests`), which come from the build of the
//! source you reviewed (docs/security.md).

include!(concat!(env!("OUT_DIR"), "/bpf_digests.rs"));

/// One embedded object and what it should hash to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ObjectDigest {
    /// `scx_slo` (the scheduler) or `observe` (the probes).
    pub object: &'static str,
    /// The digest recorded at build time.
    pub recorded: &'static str,
    /// The digest of the bytes in this binary now.
    pub actual: String,
}

impl ObjectDigest {
    /// Whether the object is what was built.
    pub fn intact(&self) -> bool {
        self.recorded == self.actual
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    scx_slo_model::sha256_hex(bytes)
}

/// The refusal for an object whose bytes do not match the build's record.
fn mismatch(d: &ObjectDigest) -> String {
    format!(
        "BPF object {}: the embedded bytes hash to SHA-256 {} but the build recorded {}: the binary was modified or corrupted after the build; refusing to load it (reinstall the package)",
        d.object, d.actual, d.recorded
    )
}

/// Checks `bytes` against `recorded`: the error names the object and both
/// digests.
pub fn check(object: &'static str, bytes: &[u8], recorded: &'static str) -> Result<ObjectDigest, String> {
    let d = ObjectDigest { object, recorded, actual: sha256_hex(bytes) };
    if d.intact() {
        Ok(d)
    } else {
        Err(mismatch(&d))
    }
}

/// Both embedded objects, checked.
pub fn objects() -> Vec<ObjectDigest> {
    vec![
        ObjectDigest { object: "scx_slo", recorded: SCX_SLO_SHA256, actual: sha256_hex(crate::skel::object_bytes()) },
        ObjectDigest { object: "observe", recorded: OBSERVE_SHA256, actual: sha256_hex(crate::observe_skel::object_bytes()) },
    ]
}

/// Every embedded object intact, or the first that is not.
pub fn verify_all() -> Result<Vec<ObjectDigest>, String> {
    let all = objects();
    if let Some(d) = all.iter().find(|d| !d.intact()) {
        return Err(mismatch(d));
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_objects_match_what_the_build_recorded() {
        let all = verify_all().expect("intact");
        assert_eq!(all.len(), 2);
        assert!(all.iter().all(|d| d.recorded.len() == 64 && d.intact()), "{all:?}");
        // They are ELF objects, not empty placeholders.
        assert!(crate::skel::object_bytes().starts_with(b"\x7fELF"));
    }

    #[test]
    fn one_changed_byte_is_refused_naming_the_object_and_both_digests() {
        let mut bytes = crate::skel::object_bytes().to_vec();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x01;
        let e = check("scx_slo", &bytes, SCX_SLO_SHA256).unwrap_err();
        assert!(e.contains("BPF object scx_slo") && e.contains(SCX_SLO_SHA256) && e.contains("refusing to load"), "{e}");
        assert!(check("scx_slo", crate::skel::object_bytes(), SCX_SLO_SHA256).is_ok());
    }
}
