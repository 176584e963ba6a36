# SPDX-License-Identifier: GPL-2.0-only
# services.scxSlo of the canary, as plain data: the NixOS config uses it, and
# crates/scx-slo/tests/nix.rs generates its config.json without nixpkgs and
# checks it; checks/nix/eval-module.nix evaluates the host with the module.
{
  mode = "enforce";
  switch = "partial";
  # /metrics on loopback; with Prometheus on the host, the SLO rules too.
  metrics.enable = true;
  settings.admission = {
    cpu_capacity = 8;
    overcommit = 0.9;
  };
  targets = {
    "api.service" = {
      class = "latency";
      budget = {
        runtime = "2ms";
        period = "10ms";
      };
      deadline = "5ms";
      priority = 800;
      preemption = "lower-priority";
      slo = {
        latency = {
          p50 = "1ms";
          p99 = "5ms";
        };
        availability = 0.999;
        errorBudgetWindow = "30d";
      };
      # The canary learns api.service's budget (docs/tuning.md): the run-queue
      # delay p99 kept under 1ms, the runtime between 1ms and the deadline.
      adaptive = {
        objective = "1ms";
        minRuntime = "1ms";
        interval = "30s";
      };
    };
    "batch.slice" = {
      class = "batch";
      weight = 50;
    };
  };
}
