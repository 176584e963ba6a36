# SPDX-License-Identifier: GPL-2.0-only
#
# Evaluates flake.nix's outputs offline: nixpkgs is nixpkgs' lib plus
# stand-ins (nixosSystem is lib.evalModules over nixos-stand-ins.nix,
# legacyPackages the pkgs stand-in), deploy-rs is deploy-rs-stand-in.nix.
# What it shows: every nixosConfiguration evaluates without a failed
# assertion, every deploy node's activation (the text deploy-rs would run),
# and the names of the packages and checks `nix flake check` would build.
# Nothing is built; the NixOS tests' nodes are evaluated by eval-module.nix.
{ lib }:
let
  standInPkgs = import ./pkgs-stand-in.nix { inherit lib; };
  pkgs = standInPkgs // {
    callPackage = path: _: standInPkgs.writeText "callPackage-${baseNameOf path}" (builtins.readFile path);
    testers = {
      runNixOSTest = test: standInPkgs.writeText "nixos-test-${test.name}" test.name;
      testBuildFailure = drv: standInPkgs.writeText "build-failure" (toString drv);
    };
  };
  nixpkgs = {
    lib = lib // {
      nixosSystem =
        { system, modules }:
        lib.evalModules {
          modules = [
            (import ./nixos-stand-ins.nix { readOnlyPkgs = false; })
            { _module.args.pkgs = pkgs; }
          ]
          ++ modules;
        };
    };
    legacyPackages.x86_64-linux = pkgs;
  };
  deploy-rs.lib.x86_64-linux = import ./deploy-rs-stand-in.nix;
  self = (import ../../flake.nix).outputs { inherit self nixpkgs deploy-rs; };
  failed = c: map (a: a.message) (builtins.filter (a: !a.assertion) c.config.assertions);
in
{
  nixosConfigurations = lib.mapAttrs (_: c: {
    failedAssertions = failed c;
    inherit (c.config.networking) hostName;
    toplevel = toString c.config.system.build.toplevel;
  }) self.nixosConfigurations;
  deploy = lib.mapAttrs (_: node: {
    inherit (node) hostname;
    inherit (node.profiles.system) user;
    activation = node.profiles.system.path;
  }) self.deploy.nodes;
  packages = builtins.attrNames self.packages.x86_64-linux;
  checks = builtins.attrNames self.checks.x86_64-linux;
}
