# SPDX-License-Identifier: GPL-2.0-only
# services.scxSlo option values that must generate examples/enforce.json
# exactly: the agreement test between the Nix options and the Rust schema
# (crates/scx-slo/tests/nix.rs). Every field of the schema appears here.
{
  mode = "enforce";
  switch = "partial";
  settings = {
    admission = {
      cpu_capacity = 2;
      overcommit = 0.95;
    };
    scheduler = {
      slice_max = "5ms";
      slice_min = "500us";
      max_wait = "50ms";
    };
    numa.migration_threshold = 4;
    early_warning = {
      slack_threshold = "500us";
      min_interval = "100ms";
    };
    observe.overhead_budget = 0.01;
    advisory = {
      interval = "30s";
      dry_run = false;
      max_step = 1.5;
      min_weight = 100;
      max_weight = 1000;
    };
  };
  targets = {
    "api.service" = {
      class = "latency";
      budget = {
        runtime = "3ms";
        period = "10ms";
      };
      deadline = "5ms";
      priority = 800;
      preemption = "lower-priority";
      weight = 200;
      slo = {
        latency = {
          p50 = "1ms";
          p95 = "3ms";
          p99 = "5ms";
        };
        availability = 0.999;
        errorBudgetWindow = "30d";
      };
    };
    "worker.service" = {
      class = "latency";
      budget = {
        runtime = "1ms";
        period = "20ms";
      };
      deadline = "20ms";
      priority = 300;
      preemption = "never";
      weight = null;
      adaptive = {
        sli = "response";
        objective = "2ms";
        interval = "30s";
        minRuntime = "500us";
        maxRuntime = "5ms";
        maxStep = 1.25;
        cooldown = 1;
        minSamples = 200;
        gains = {
          kp = 0.1;
          ki = 0.35;
          kd = 0.05;
        };
        dryRun = false;
      };
    };
    "batch.slice" = {
      class = "batch";
      weight = 50;
    };
    "/legacy/cron-jobs" = {
      class = "batch";
      weight = 10;
    };
  };
}
