# SPDX-License-Identifier: GPL-2.0-only
# services.scxSlo of the test VM (2 vCPUs), as plain data.
{
  mode = "enforce";
  switch = "partial";
  settings.admission.cpu_capacity = 2;
  targets = {
    "api.service" = {
      class = "latency";
      budget = {
        runtime = "3ms";
        period = "10ms";
      };
      deadline = "5ms";
      priority = 800;
    };
    "batch.slice" = {
      class = "batch";
    };
  };
}
