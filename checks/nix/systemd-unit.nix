# SPDX-License-Identifier: GPL-2.0-only
#
# Renders a systemd.services.<name> declaration into the unit file NixOS
# would write, for the systemd guest (checks/vm/run systemd) and the offline
# checks. Written from the behaviour of nixos/lib/systemd-lib.nix in nixpkgs
# 25.05 (serviceToUnit, commonUnitText, attrsToSection, unitConfig):
#   - [Unit]: After/Before/Wants/... from the lists, X-Restart-Triggers and
#     X-Reload-Triggers as a store file holding the triggers, Description,
#     Documentation, StartLimitIntervalSec/StartLimitBurst when set, then
#     unitConfig;
#   - [Service]: Environment= lines (PATH from `path` plus NixOS's default
#     path), then serviceConfig; a list becomes one line per element, true
#     and false become "true" and "false";
#   - [Install]: WantedBy.
# NixOS sorts keys alphabetically within each attribute set (mapAttrsToList);
# so does this. `writeText` is the pkgs stand-in's, so a changed trigger
# changes the path, and with it the unit, as in NixOS.
{ lib, pkgs }:
name: def:
let
  toOption =
    x:
    if x == true then
      "true"
    else if x == false then
      "false"
    else
      toString x;
  section = attrs: lib.concatStrings (lib.concatLists (lib.mapAttrsToList (key: value: map (x: "${key}=${toOption x}\n") (lib.toList value)) attrs));
  nonEmpty = key: list: lib.optionalAttrs (list != [ ]) { ${key} = toString list; };
  triggers = key: list: lib.optionalAttrs (list != [ ]) { ${key} = "${pkgs.writeText "${key}-${name}" (toString (lib.flatten list))}"; };
  unitConfig =
    nonEmpty "Requires" def.requires
    // nonEmpty "Wants" def.wants
    // nonEmpty "After" def.after
    // nonEmpty "Before" def.before
    // nonEmpty "BindsTo" def.bindsTo
    // nonEmpty "PartOf" def.partOf
    // nonEmpty "Conflicts" def.conflicts
    // triggers "X-Restart-Triggers" def.restartTriggers
    // triggers "X-Reload-Triggers" def.reloadTriggers
    // lib.optionalAttrs (def.description != "") { Description = def.description; }
    // nonEmpty "Documentation" def.documentation
    // lib.optionalAttrs (def.startLimitIntervalSec != null) { StartLimitIntervalSec = toString def.startLimitIntervalSec; }
    // lib.optionalAttrs (def.startLimitBurst != null) { StartLimitBurst = toString def.startLimitBurst; }
    // def.unitConfig;
  # nixos/lib/systemd-lib.nix stage2ServiceConfig: every service's PATH
  # ends with coreutils, findutils, gnugrep, gnused and systemd.
  path = def.path ++ map (p: "/nix/store/${p}") [ "coreutils" "findutils" "gnugrep" "gnused" "systemd" ];
  environment = def.environment // { PATH = lib.concatMapStringsSep ":" (p: "${p}/bin") path + ":" + lib.concatMapStringsSep ":" (p: "${p}/sbin") path; };
in
''
  [Unit]
  ${section unitConfig}
  [Service]
  ${lib.concatStrings (lib.mapAttrsToList (k: v: lib.optionalString (v != null) "Environment=${builtins.toJSON "${k}=${v}"}\n") environment)}${section def.serviceConfig}''
+ lib.optionalString (def.wantedBy != [ ]) ''

  [Install]
  WantedBy=${lib.concatStringsSep " " def.wantedBy}
''
