# SPDX-License-Identifier: GPL-2.0-only
# NixOS VM tests (nix flake check). The same scenarios run without Nix under
# checks/vm (QEMU on Debian's sched_ext kernel: `checks/vm/run systemd` boots
# a Debian systemd guest with the unit this module declares).
{ pkgs, module }:
builtins.mapAttrs (_: test: pkgs.testers.runNixOSTest (import test { inherit module; })) (import ./tests.nix)
