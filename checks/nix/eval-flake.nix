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
  systems = [
    "x86_64-linux"
    "aarch64-linux"
  ];
  pkgsFor =
    system:
    let
      standInPkgs = import ./pkgs-stand-in.nix { inherit lib system; };
    in
    standInPkgs
    // {
      callPackage = path: _: standInPkgs.writeText "callPackage-${system}-${baseNameOf path}" (builtins.readFile path);
      testers = {
        runNixOSTest = test: standInPkgs.writeText "nixos-test-${test.name}" test.name;
        testBuildFailure = drv: standInPkgs.writeText "build-failure" (toString drv);
      };
      mkShell = args: standInPkgs.writeText "shell" (builtins.toJSON (map toString args.packages));
      cargo = standInPkgs.writeText "cargo" "";
      rustc = standInPkgs.writeText "rustc" "";
      clippy = standInPkgs.writeText "clippy" "";
      rustfmt = standInPkgs.writeText "rustfmt" "";
      bpftools = standInPkgs.writeText "bpftools" "";
      qemu = standInPkgs.writeText "qemu" "";
      busybox = standInPkgs.writeText "busybox" "";
      cpio = standInPkgs.writeText "cpio" "";
      nixfmt = standInPkgs.writeText "nixfmt" "" // { meta.mainProgram = "nixfmt"; };
      llvmPackages_19.clang-unwrapped = standInPkgs.writeText "clang" "" // { meta.mainProgram = "clang"; };
    };
  nixpkgs = {
    lib = lib // {
      nixosSystem =
        { system, modules }:
        lib.evalModules {
          modules = [
            (import ./nixos-stand-ins.nix { readOnlyPkgs = false; })
            { _module.args.pkgs = pkgsFor system; }
          ]
          ++ modules;
        };
    };
    legacyPackages = lib.genAttrs systems pkgsFor;
  };
  deploy-rs = {
    lib = lib.genAttrs systems (_: import ./deploy-rs-stand-in.nix);
    packages = lib.genAttrs systems (s: { default = (pkgsFor s).writeText "deploy-rs" ""; });
  };
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
    # deploy-rs's defaults are true; null here means "not set".
    autoRollback = node.autoRollback or null;
    magicRollback = node.magicRollback or null;
  }) self.deploy.nodes;
  # Per system: the names, and the package each output resolves to (so an
  # output that reaches for another system's package shows).
  packages = lib.mapAttrs (_: builtins.attrNames) self.packages;
  packagePaths = lib.mapAttrs (_: p: toString p.scx-slo) self.packages;
  checks = lib.mapAttrs (_: builtins.attrNames) self.checks;
  # deploy-rs's own checks are the stand-in's names, not derivations.
  checkPaths = lib.mapAttrs (_: c: lib.mapAttrs (_: v: if v ? outPath then toString v else "deploy-rs") c) self.checks;
  devShells = lib.mapAttrs (_: d: toString d.default) self.devShells;
  formatter = lib.mapAttrs (_: toString) self.formatter;
}
