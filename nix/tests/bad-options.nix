# SPDX-License-Identifier: GPL-2.0-only
# Options the build must reject: runtime over period (and a deadline under
# the runtime). check-config reports every per-target error and stops before
# admission. crates/scx-slo/tests/nix.rs expects it to exit 1 with the lines
# in checks/nixos/bad-config.expected, which `checks.bad-config` greps for in
# the failed build's log.
{
  mode = "enforce";
  settings.admission.cpu_capacity = 1;
  targets = {
    "api.service" = {
      class = "latency";
      budget = {
        runtime = "12ms";
        period = "10ms";
      };
      deadline = "10ms";
    };
    "db.service" = {
      class = "latency";
      budget = {
        runtime = "9ms";
        period = "10ms";
      };
      deadline = "10ms";
    };
  };
}
