# SPDX-License-Identifier: GPL-2.0-only
# The target slots scx-slod sizes its BPF maps for when the scheduler loads,
# for a config of `targets` targets: the smallest power of two at least
# twice as many, at least 32, at most 1024. The same rule as
# scx_slo_model::target_capacity (crates/scx-slo/tests/nix.rs compares the
# two for every count). The daemon refuses a reload past the slots it
# loaded, so the NixOS module restarts the unit when this number changes.
targets:
let
  grow = slots: if slots >= 2 * targets || slots >= 1024 then slots else grow (slots * 2);
in
grow 32
