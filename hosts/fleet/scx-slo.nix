# SPDX-License-Identifier: GPL-2.0-only
# services.scxSlo of a fleet member, as plain data (see hosts/canary/scx-slo.nix).
{
  mode = "enforce";
  switch = "partial";
  settings = {
    admission.cpu_capacity = 32;
    scheduler.max_wait = "20ms";
  };
  targets = {
    "api.service" = {
      class = "latency";
      budget = {
        runtime = "4ms";
        period = "10ms";
      };
      deadline = "5ms";
      priority = 800;
    };
    "batch.slice" = {
      class = "batch";
      weight = 50;
    };
  };
}
