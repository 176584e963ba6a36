# SPDX-License-Identifier: GPL-2.0-only
#
# deploy-rs activation for a NixOS host running scx-slo: deploy-rs's own
# `activate.nixos` behaviour (switch, `deploy --boot`, `deploy --dry-activate`)
# plus the health gate after a switch.
#
# If scx-slod is not healthy within 30 s, or runs another config than the one
# just deployed, the activation fails. What deploy-rs does then is its
# *auto*-rollback (`autoRollback`, on by default; flake.nix sets it
# explicitly): the profile goes back one generation and that generation's
# deploy-rs activation runs again. With `autoRollback = false` the failed
# generation stays active. Magic rollback (`magicRollback`) is another thing:
# it follows only a *successful* activation, undoing it when the deployer
# cannot confirm (a lost connection), and never runs with `--boot`.
# A previous generation made by nixos-rebuild has no deploy-rs activation,
# so rolling back to it fails and the failed configuration keeps running:
# deploy once with `--boot` or by hand after the first nixos-rebuild
# (docs/nixos.md, "Rollouts with deploy-rs").
#
# `pendingReboot` ("fail" or "pass") is the gate's answer to a first deploy of
# enforce mode onto a host whose running kernel has no sched_ext: the unit
# is skipped until the host boots the deployed kernel (docs/operations.md).
#
# `activate` is deploy-rs.lib.<system>.activate; crates/scx-slo/tests/nix.rs
# runs this file against a stand-in with the same `custom` interface
# (checks/nix/deploy-activation.nix) for switch, --boot and --dry-activate,
# and the rollback matrix through a stand-in of activate-rs
# (checks/nix/deploy-rs-stand-in.nix).
{
  activate,
  scx-slo,
  pendingReboot ? "fail",
}:
assert builtins.elem pendingReboot [
  "fail"
  "pass"
];
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
    ${scx-slo}/bin/scx-slo health --wait 30s --expect-config $PROFILE/etc/scx-slo/config.json --system $PROFILE --pending-reboot ${pendingReboot}
  ''
