# SPDX-License-Identifier: GPL-2.0-only
#
# deploy-rs activation for a NixOS host running scx-slo: deploy-rs's own
# `activate.nixos` behaviour (switch, `deploy --boot`, `deploy --dry-activate`)
# plus the health gate after a switch. If scx-slod is not healthy within 30 s,
# or runs another config than the one just deployed, activation fails and
# deploy-rs rolls back (magic rollback).
#
# `activate` is deploy-rs.lib.<system>.activate; checks/nix/eval-module.nix
# runs this file against a stand-in with the same `custom` interface and
# executes the generated script for each of the three paths.
{ activate, scx-slo }:
nixos:
(activate.custom // {
  dryActivate = "$PROFILE/bin/switch-to-configuration dry-activate";
  boot = "$PROFILE/bin/switch-to-configuration boot";
})
  nixos.config.system.build.toplevel
  ''
    # switch-to-configuration runs from the profile; /tmp, not the caller's
    # directory, as deploy-rs's activate.nixos does (nixpkgs#73404).
    cd /tmp
    $PROFILE/bin/switch-to-configuration switch
    ${scx-slo}/bin/scx-slo health --wait 30s --expect-config $PROFILE/etc/scx-slo/config.json
  ''
