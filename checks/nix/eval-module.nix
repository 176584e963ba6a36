# SPDX-License-Identifier: GPL-2.0-only
#
# Evaluates modules/scx-slo.nix with lib.evalModules against stub NixOS
# options and a stub pkgs, without building anything: option types, defaults,
# assertions and the generated unit. For machines that have nixpkgs' lib but
# cannot build (where `nix flake check` is out of reach):
#
#   nix-instantiate --eval --strict --json checks/nix/eval-module.nix \
#     --arg lib 'import <nixpkgs/lib>' -A summary
{
  lib,
  options ? import ../../hosts/canary/scx-slo.nix,
  kernelVersion ? "6.12.60",
  prometheus ? false,
}:
let
  fakeDrv = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  };
  pkgs = {
    formats.json = _: {
      type = lib.types.attrsOf lib.types.anything;
      generate = name: value: (fakeDrv name) // { json = builtins.toJSON value; };
    };
    runCommand = name: _env: _script: fakeDrv name;
    coreutils = fakeDrv "coreutils";
    scx-slo = fakeDrv "scx-slo";
    linuxPackages_6_12.kernel.version = kernelVersion;
  };
  anything = lib.mkOption {
    type = lib.types.anything;
    default = { };
  };
  stubs = {
    options = {
      assertions = lib.mkOption {
        type = lib.types.listOf lib.types.anything;
        default = [ ];
      };
      warnings = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [ ];
      };
      boot.kernelPackages = lib.mkOption {
        type = lib.types.anything;
        default.kernel.version = "6.1.0";
      };
      environment.etc = anything;
      environment.systemPackages = lib.mkOption {
        type = lib.types.listOf lib.types.anything;
        default = [ ];
      };
      users.groups = anything;
      services.dbus.packages = lib.mkOption {
        type = lib.types.listOf lib.types.anything;
        default = [ ];
      };
      services.prometheus = {
        enable = lib.mkOption {
          type = lib.types.bool;
          default = false;
        };
        ruleFiles = lib.mkOption {
          type = lib.types.listOf lib.types.anything;
          default = [ ];
        };
        scrapeConfigs = lib.mkOption {
          type = lib.types.listOf lib.types.anything;
          default = [ ];
        };
      };
      networking.firewall.allowedTCPPorts = lib.mkOption {
        type = lib.types.listOf lib.types.port;
        default = [ ];
      };
      systemd.services = lib.mkOption {
        type = lib.types.attrsOf lib.types.anything;
        default = { };
      };
    };
  };
  evaluated = lib.evalModules {
    specialArgs = { inherit pkgs; };
    modules = [
      stubs
      ../../modules/scx-slo.nix
      { services.scxSlo = options // { enable = true; checkConfig = false; }; }
      { services.prometheus.enable = prometheus; }
    ];
  };
  cfg = evaluated.config;
  unit = cfg.systemd.services.scx-slod;
in
{
  summary = {
    failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) cfg.assertions);
    inherit (cfg) warnings;
    kernel = cfg.boot.kernelPackages.kernel.version;
    # checkConfig is off here: the stub pkgs cannot run the checker.
    configJson = builtins.fromJSON cfg.environment.etc."scx-slo/config.json".source.json;
    execStart = unit.serviceConfig.ExecStart;
    type = unit.serviceConfig.Type;
    capabilities = unit.serviceConfig.CapabilityBoundingSet;
    privateNetwork = unit.serviceConfig.PrivateNetwork;
    addressFamilies = unit.serviceConfig.RestrictAddressFamilies;
    firewall = cfg.networking.firewall.allowedTCPPorts;
    prometheusRuleFiles = map (f: f.name) cfg.services.prometheus.ruleFiles;
  };
}
