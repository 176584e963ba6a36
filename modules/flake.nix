# SPDX-License-Identifier: GPL-2.0-only
#
# The NixOS module as the flake exports it (nixosModules.default): the
# module itself, with the package defaulting to this flake's own build.
#
# No overlay: a module that sets nixpkgs.overlays cannot be used where pkgs is
# read-only (pkgs.testers.runNixOSTest, nixpkgs.pkgs, nix-darwin style
# setups), and forcing one on every importer is not the module's business.
# checks/nix/eval-module.nix evaluates this file with the read-only nixpkgs
# options of a NixOS test, so an overlay here fails CI.
self:
{ lib, pkgs, ... }:
{
  imports = [ ./scx-slo.nix ];
  services.scxSlo.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.scx-slo;
}
