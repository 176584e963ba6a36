# SPDX-License-Identifier: GPL-2.0-only
# A VM to try scx-slo by hand: nixos-rebuild build-vm --flake .#test-vm
{
  imports = [ ../common.nix ];
  networking.hostName = "scx-slo-test";
  virtualisation.vmVariant.virtualisation = {
    cores = 2;
    memorySize = 2048;
  };
  users.users.root.initialPassword = "scx-slo";
  services.scxSlo = import ./scx-slo.nix // {
    enable = true;
  };
}
