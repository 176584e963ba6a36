# SPDX-License-Identifier: GPL-2.0-only
#
# Evaluates the NixOS module as the flake exports it (modules/flake.nix) with
# nixpkgs' real module system, for every host in hosts/ (as
# nixosConfigurations builds them) and every node of the NixOS tests in
# checks/nixos/ (with the read-only pkgs of runNixOSTest), against the
# stand-ins in nixos-stand-ins.nix and pkgs-stand-in.nix. Nothing is built.
#
# Also: the module next to other modules that pick a kernel and on
# aarch64-linux (compositions), and each testScript as runNixOSTest gets it
# (testScripts, for checks/nix/test-driver).
#
# For each: failed assertions, warnings, the kernel, the generated config
# (crates/scx-slo/tests/nix.rs runs `scx-slo check-config` on it), the whole
# systemd.services.scx-slod declaration, the unit file NixOS would write
# from it (systemd-unit.nix), and the same for each specialisation.
#
#   nix-instantiate --eval --strict --json checks/nix/eval-module.nix \
#     --arg lib "import $(scripts/lib/nixpkgs-lib.sh)" -A hosts.canary
{ lib }:
let
  pkgs = import ./pkgs-stand-in.nix { inherit lib; };
  version = (lib.importTOML ../../Cargo.toml).workspace.package.version;
  # The flake's `self`, as far as modules/flake.nix reads it: a package per
  # system the flake builds for.
  self.packages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (system: {
    scx-slo = pkgs.writeText "scx-slo-${version}-${system}" "the scx-slo package";
  });
  module = import ../../modules/flake.nix self;
  renderUnit = import ./systemd-unit.nix { inherit lib pkgs; };

  evaluateWith =
    pkgs: readOnlyPkgs: modules:
    lib.evalModules {
      modules = [
        (import ./nixos-stand-ins.nix { inherit readOnlyPkgs; })
        { _module.args.pkgs = pkgs; }
      ]
      ++ modules;
    };
  evaluate = evaluateWith pkgs;
  # What another module (a nixos-hardware profile, say) does to the kernel.
  kernelProfile = kernel: { boot.kernelPackages = lib.mkDefault pkgs.${kernel}; };

  summarize =
    evaluated:
    let
      cfg = evaluated.config;
      scx = cfg.services.scxSlo;
      service = cfg.systemd.services.scx-slod;
      source = cfg.environment.etc."scx-slo/config.json".source;
      # With checkConfig the file is the checker's output; the unchecked one
      # is its passthru (as in nixpkgs), else it is the generated file.
      unchecked = source.unchecked or source;
      scripts = lib.filterAttrs (_: text: text != null) (
        lib.mapAttrs (_: s: s.serviceConfig.ExecStart.text or null) cfg.systemd.services
      );
    in
    {
      failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) cfg.assertions);
      inherit (cfg) warnings;
      # Forces the read-only nixpkgs options: an overlay set by the module fails here.
      overlays = builtins.length cfg.nixpkgs.overlays;
      kernel = cfg.boot.kernelPackages.kernel.version;
      enabled = scx.enable;
    }
    // lib.optionalAttrs scx.enable {
      package = toString scx.package;
      config = unchecked.value;
      configPath = toString source;
      checkScript = source.script or null;
      inherit (scx) cpus checkConfig;
      inherit service;
      unit = renderUnit "scx-slod" service;
      dbusPackages = map toString cfg.services.dbus.packages;
      groups = builtins.attrNames cfg.users.groups;
      firewall = cfg.networking.firewall.allowedTCPPorts;
      prometheusRuleFiles = map toString cfg.services.prometheus.ruleFiles;
    }
    // {
      # Every service's ExecStart, and the text of those that are scripts
      # (writeShellScript), for the checks on hosts/common.nix.
      execStarts = lib.mapAttrs (_: s: toString (s.serviceConfig.ExecStart or "")) cfg.systemd.services;
      timers = lib.mapAttrs (_: t: { inherit (t) wantedBy timerConfig; }) cfg.systemd.timers;
      inherit scripts;
      # As NixOS's specialisation module: the parent's configuration plus
      # this one's, without the parent's specialisations.
      specialisations = lib.mapAttrs (
        _: s:
        summarize (
          evaluated.extendModules {
            modules = [
              s.configuration
              { specialisation = lib.mkOverride 0 { }; }
            ];
          }
        )
      ) cfg.specialisation;
    };

  hostDirs = lib.filterAttrs (_: type: type == "directory") (builtins.readDir ../../hosts);
in
{
  hosts =
    lib.mapAttrs (name: _: summarize (evaluate false [ module ../../hosts/${name} ])) hostDirs
    // {
      bad-config = summarize (evaluate false [ module ../nixos/bad-config-host.nix ]);
    };
  nodes = lib.mapAttrs (
    _: test: lib.mapAttrs (_: node: summarize (evaluate true [ node ])) (import test { inherit module; }).nodes
  ) (import ../nixos/tests.nix);

  # The module next to others that choose a kernel, and on aarch64-linux.
  compositions = {
    # A profile's mkDefault kernel wins over the pinned one, with no
    # "defined multiple times" error.
    enforce-with-a-hardware-profile = summarize (evaluate false [
      module
      ../../hosts/test-vm
      (kernelProfile "linuxPackages_latest")
    ]);
    # One without sched_ext: enforce mode's assertion names the option.
    enforce-with-an-old-hardware-kernel = summarize (evaluate false [
      module
      ../../hosts/test-vm
      (kernelProfile "linuxPackages_6_6")
    ]);
    aarch64-linux = summarize (
      evaluateWith (import ./pkgs-stand-in.nix {
        inherit lib;
        system = "aarch64-linux";
      }) false [ module ../../hosts/test-vm ]
    );
  };

  # Periodic backups on, and one value the option types refuse.
  backups = {
    on = summarize (evaluate false [
      module
      ../../hosts/test-vm
      {
        services.scxSlo.backup = {
          enable = true;
          interval = "hourly";
          retain = 3;
        };
      }
    ]);
    retainZero =
      (evaluate false [
        module
        ../../hosts/test-vm
        { services.scxSlo.backup.retain = 0; }
      ]).config.services.scxSlo.backup.retain;
    spaceInDirectory =
      (evaluate false [
        module
        ../../hosts/test-vm
        { services.scxSlo.backup.directory = "/var/backup/a b"; }
      ]).config.services.scxSlo.backup.directory;
  };

  # Each NixOS test's testScript as runNixOSTest gets it (a function is
  # called with the evaluated nodes), with what the driver knows of its
  # nodes, for the lint and the dry run (checks/nix/test-driver).
  testScripts = lib.mapAttrs (
    _: path:
    let
      test = import path { inherit module; };
      nodes = lib.mapAttrs (_: node: (evaluate true [ node ]).config) test.nodes;
    in
    {
      script = if lib.isFunction test.testScript then test.testScript { inherit nodes; } else test.testScript;
      nodes = lib.mapAttrs (_: c: { toplevel = toString c.system.build.toplevel; }) nodes;
    }
  ) (import ../nixos/tests.nix);
}
