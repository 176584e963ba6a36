# SPDX-License-Identifier: GPL-2.0-only
# The node the enforce-mode NixOS tests share (reload.nix, systemd.nix): the
# workload units, jq, and scx-slo enforcing one latency target, api.service
# with 2 ms of CPU per 10 ms due in 5 ms. Each test adds what it checks.
{ pkgs, ... }:
{
  imports = [ ./workload.nix ];
  environment.systemPackages = [ pkgs.jq ];
  services.scxSlo = {
    enable = true;
    mode = "enforce";
    settings.admission.cpu_capacity = 2;
    targets."api.service" = {
      class = "latency";
      budget = {
        runtime = "2ms";
        period = "10ms";
      };
      deadline = "5ms";
    };
  };
}
