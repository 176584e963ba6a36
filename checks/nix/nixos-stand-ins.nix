# SPDX-License-Identifier: GPL-2.0-only
#
# Stand-ins for the NixOS options that modules/scx-slo.nix, hosts/ and the
# nodes of checks/nixos/ use, for evaluating them with nixpkgs' real module
# system (lib.evalModules) where NixOS itself is not available.
#
# Each is declared with the name and type NixOS gives it (nixos/modules/...,
# read file by file from NixOS/nixpkgs), never looser than `anything` where
# NixOS has a type we use, so a misspelt option or a wrong type fails here
# as it would in nixos-rebuild. What these do NOT do: build anything, run
# activation, or check the options' values beyond their types. Options with
# `anything` are the ones whose value nothing here reads (fileSystems,
# virtualisation, users.users).
#
# `readOnlyPkgs`: the nixpkgs options as pkgs.testers.runNixOSTest sets them
# (nixos/modules/misc/nixpkgs/read-only.nix): `nixpkgs.overlays` is unique, so
# a module that also sets it fails with the same error NixOS gives.
{ readOnlyPkgs }:
{ lib, config, ... }:
let
  inherit (lib) mkOption types;
  anything = mkOption {
    type = types.anything;
    default = { };
  };
  listOf = t: mkOption {
    type = types.listOf t;
    default = [ ];
  };
  # nixos/lib/systemd-unit-options.nix: a unit option is a bool, int, string
  # or path, or a list of them; lists are merged.
  unitOption = types.oneOf [
    types.bool
    types.int
    types.str
    types.path
    (types.listOf (types.oneOf [ types.bool types.int types.str types.path ]))
  ];
  unitNames = listOf types.str;
  serviceOptions =
    { name, ... }:
    {
      options = {
        enable = mkOption {
          type = types.bool;
          default = true;
        };
        description = mkOption {
          type = types.singleLineStr;
          default = "";
        };
        documentation = listOf types.str;
        wantedBy = unitNames;
        requiredBy = unitNames;
        after = unitNames;
        before = unitNames;
        wants = unitNames;
        requires = unitNames;
        bindsTo = unitNames;
        partOf = unitNames;
        conflicts = unitNames;
        path = listOf (types.either types.package types.str);
        environment = mkOption {
          type = types.attrsOf (types.nullOr (types.oneOf [ types.str types.path types.package ]));
          default = { };
        };
        script = mkOption {
          type = types.lines;
          default = "";
        };
        preStart = mkOption {
          type = types.lines;
          default = "";
        };
        startAt = mkOption {
          type = types.either types.str (types.listOf types.str);
          default = [ ];
        };
        reloadTriggers = listOf unitOption;
        restartTriggers = listOf unitOption;
        restartIfChanged = mkOption {
          type = types.bool;
          default = true;
        };
        reloadIfChanged = mkOption {
          type = types.bool;
          default = false;
        };
        stopIfChanged = mkOption {
          type = types.bool;
          default = true;
        };
        # NixOS leaves these undefined unless set (options.*.isDefined);
        # null stands for undefined here.
        startLimitBurst = mkOption {
          type = types.nullOr types.int;
          default = null;
        };
        startLimitIntervalSec = mkOption {
          type = types.nullOr types.int;
          default = null;
        };
        unitConfig = mkOption {
          type = types.attrsOf unitOption;
          default = { };
        };
        serviceConfig = mkOption {
          type = types.attrsOf unitOption;
          default = { };
        };
      };
    };
  # nixos/modules/misc/nixpkgs.nix merges overlay lists; read-only.nix makes
  # the option unique and defines it from the given pkgs.
  overlays =
    if readOnlyPkgs then
      mkOption { type = types.unique { message = "nixpkgs.overlays is set to read-only"; } types.anything; }
    else
      listOf types.anything;
in
{
  options = {
    assertions = listOf (types.submodule {
      options = {
        assertion = mkOption { type = types.bool; };
        message = mkOption { type = types.str; };
      };
    });
    warnings = listOf types.str;
    nixpkgs.overlays = overlays;
    boot.kernelPackages = mkOption {
      type = types.raw;
      default.kernel.version = "6.6.0";
    };
    boot.loader.grub.device = mkOption {
      type = types.str;
      default = "";
    };
    fileSystems = anything;
    system.stateVersion = mkOption { type = types.str; };
    # What nixos-rebuild and deploy-rs activate; a made-up path here.
    system.build.toplevel = mkOption {
      type = types.package;
      default = {
        type = "derivation";
        name = "nixos-system-${config.networking.hostName}";
        outPath = "/nix/store/00000000000000000000000000000000-nixos-system-${config.networking.hostName}";
      };
    };
    networking.hostName = mkOption {
      type = types.strMatching "^$|^[[:alnum:]]([[:alnum:]_-]{0,61}[[:alnum:]])?$";
      default = "nixos";
    };
    networking.firewall.allowedTCPPorts = listOf types.port;
    environment.etc = mkOption {
      type = types.attrsOf (types.submodule {
        options = {
          source = mkOption { type = types.path; };
          mode = mkOption {
            type = types.str;
            default = "symlink";
          };
        };
      });
      default = { };
    };
    environment.systemPackages = listOf types.package;
    users.users = anything;
    users.groups = mkOption {
      type = types.attrsOf (types.submodule {
        options.gid = mkOption {
          type = types.nullOr types.int;
          default = null;
        };
        options.members = listOf types.str;
      });
      default = { };
    };
    services.dbus.packages = listOf types.path;
    services.prometheus = {
      enable = mkOption {
        type = types.bool;
        default = false;
      };
      ruleFiles = listOf types.path;
      scrapeConfigs = listOf (types.attrsOf types.anything);
    };
    systemd.services = mkOption {
      type = types.attrsOf (types.submodule serviceOptions);
      default = { };
    };
    systemd.timers = mkOption {
      type = types.attrsOf (types.submodule {
        options = {
          wantedBy = unitNames;
          timerConfig = mkOption {
            type = types.attrsOf unitOption;
            default = { };
          };
        };
      });
      default = { };
    };
    systemd.slices = mkOption {
      type = types.attrsOf (types.submodule {
        options.sliceConfig = mkOption {
          type = types.attrsOf unitOption;
          default = { };
        };
      });
      default = { };
    };
    # Test-VM sizing (nixos/modules/virtualisation/qemu-vm.nix): not read here.
    virtualisation = anything;
    # nixos/modules/system/activation/specialisation.nix: each one is the
    # whole configuration extended by `configuration`.
    specialisation = mkOption {
      type = types.attrsOf (types.submodule {
        options.configuration = mkOption {
          type = types.deferredModule;
          default = { };
        };
      });
      default = { };
    };
  };
  config = lib.mkIf readOnlyPkgs { nixpkgs.overlays = [ ]; };
}
