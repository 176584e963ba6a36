# SPDX-License-Identifier: GPL-2.0-only
# Options the build must reject: runtime over period, and too much reserved
# bandwidth for one CPU. checks/nix/run expects check-config to exit 1 and
# name both fields.
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
