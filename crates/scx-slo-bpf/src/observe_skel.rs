// SPDX-License-Identifier: GPL-2.0-only
//! The libbpf-rs skeleton of bpf/observe.bpf.c.
#![allow(missing_docs, clippy::all, clippy::unwrap_used)]

include!(concat!(env!("OUT_DIR"), "/observe_skel.rs"));

/// The object this skeleton embeds, as the loader hands it to libbpf.
pub fn object_bytes() -> &'static [u8] {
    &DATA
}
