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
    path = [ pkgs.coreutils ];
    startAt = "hourly";
    serviceConfig = {
      Slice = "batch.slice";
      # systemd does not expand globs in ExecStart; the shell does. The
      # hashes are the CPU work, not a result anyone reads.
      ExecStart = pkgs.writeShellScript "reindex" ''
        shopt -s nullglob
        for f in /nix/store/*/bin/*; do
          [ -f "$f" ] && sha256sum "$f"
        done > /dev/null
        exit 0
      '';
      DynamicUser = true;
    };
  };
}
