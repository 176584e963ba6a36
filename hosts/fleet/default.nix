# SPDX-License-Identifier: GPL-2.0-only
# A fleet member: gets a generation after the canary and the labelled group.
{
  imports = [ ../common.nix ];
  networking.hostName = "fleet-1";
  services.scxSlo = import ./scx-slo.nix // {
    enable = true;
  };
}
