# SPDX-License-Identifier: GPL-2.0-only
# A latency unit and a batch unit for the NixOS tests: api.service wakes
# every 10 ms and burns a little CPU; two hogs run in batch.slice.
{ pkgs, ... }:
{
  virtualisation = {
    cores = 2;
    memorySize = 2048;
  };
  systemd.services.api = {
    wantedBy = [ "multi-user.target" ];
    script = ''
      while true; do
        ${pkgs.coreutils}/bin/sleep 0.01
        ${pkgs.coreutils}/bin/sha256sum /etc/os-release > /dev/null
      done
    '';
  };
  systemd.slices.batch = { };
  systemd.services.hog = {
    wantedBy = [ "multi-user.target" ];
    serviceConfig.Slice = "batch.slice";
    script = "${pkgs.coreutils}/bin/yes > /dev/null";
  };
}
