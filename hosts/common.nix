# SPDX-License-Identifier: GPL-2.0-only
# What every example host shares: a latency web service next to batch work.
{ pkgs, ... }:
{
  boot.loader.grub.device = "nodev";
  fileSystems."/" = {
    device = "/dev/disk/by-label/nixos";
    fsType = "ext4";
  };
  system.stateVersion = "25.05";

  # The latency-critical service.
  systemd.services.api = {
    description = "Example latency-critical web service";
    wantedBy = [ "multi-user.target" ];
    serviceConfig = {
      ExecStart = "${pkgs.python3}/bin/python3 -m http.server 8080 --directory /var/empty";
      DynamicUser = true;
    };
  };

  # Batch work lives in its own slice, which scx-slo schedules by weight.
  systemd.slices.batch.sliceConfig.CPUWeight = 50;
  systemd.services.reindex = {
    description = "Example batch job";
    startAt = "hourly";
    serviceConfig = {
      Slice = "batch.slice";
      ExecStart = "${pkgs.coreutils}/bin/sha256sum /nix/store/*/bin/* --quiet";
      DynamicUser = true;
    };
  };
}
