// SPDX-License-Identifier: GPL-2.0-only
//! scx-slo's BPF side from Rust: the compiled scheduler, typed access to its
//! maps, the enforce-mode loader, the observe-mode probes and the kernel
//! feature probe.

pub mod error;
pub mod events;
pub mod integrity;
pub mod intf;
pub mod map_memory;
pub mod maps;
pub mod observe;
pub mod observe_skel;
pub mod probe;
pub mod scheduler;
pub mod skel;
pub mod topology;

pub use error::{Error, Result};
pub use maps::{Counter, GlobalCounter, MapTarget, TargetStats};
pub use observe::{ObserveCounters, Observer, ProbeCost, Sample, SampleKind};
pub use probe::KernelFeatures;
pub use scheduler::{ExitInfo, LoadParams, Scheduler};
pub use topology::Topology;

/// Storage a loaded scheduler borrows (see `Scheduler::load`).
pub type OpenObject = libbpf_rs::OpenObject;

