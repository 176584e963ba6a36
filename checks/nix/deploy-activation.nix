# SPDX-License-Identifier: GPL-2.0-only
#
# nix/deploy.nix against the deploy-rs stand-in, for
# crates/scx-slo/tests/nix.rs, which runs the resulting activation with a
# fake profile for switch, BOOT=1 and DRY_ACTIVATE=1, and under the
# stand-in of activate-rs for the rollback matrix.
{
  scxSlo,
  pendingReboot ? "fail",
}:
import ../../nix/deploy.nix {
  inherit (import ./deploy-rs-stand-in.nix) activate;
  scx-slo = scxSlo;
  inherit pendingReboot;
} { config.system.build.toplevel = "/nix/store/00000000000000000000000000000000-nixos-system"; }
