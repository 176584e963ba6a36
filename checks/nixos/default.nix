# SPDX-License-Identifier: GPL-2.0-only
# NixOS VM tests (nix flake check). The same scenarios run without Nix under
# checks/vm (QEMU + a busybox guest on Debian's sched_ext kernel).
{ pkgs, module }:
{
  enforce = pkgs.testers.runNixOSTest (import ./enforce.nix { inherit module; });
  reload = pkgs.testers.runNixOSTest (import ./reload.nix { inherit module; });
  observe = pkgs.testers.runNixOSTest (import ./observe.nix { inherit module; });
}
