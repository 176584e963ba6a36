# SPDX-License-Identifier: GPL-2.0-only
# The canary: first to get a new scx-slo generation (docs/nixos.md, rollout).
{
  imports = [ ../common.nix ];
  networking.hostName = "canary";
  services.scxSlo = import ./scx-slo.nix // {
    enable = true;
  };
}
