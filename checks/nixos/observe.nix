# SPDX-License-Identifier: GPL-2.0-only
# Observe and advisory modes on a kernel without sched_ext (6.6 LTS), with a
# real systemd: `auto` selects advisory (systemd on unified cgroup2); the
# probes measure api.service next to CPU hogs; advisory raises its
# CPUWeight through systemd (runtime only); /metrics is scraped over HTTP;
# Prometheus on the same host loads the generated rules (promtool checks them
# at build time); the unit passes the systemd-analyze security gate.
{ module }:
let
  # The measured exposure gate (docs/nixos.md); systemd-analyze's threshold
  # is an integer 0-100, ten times the exposure.
  threshold = builtins.ceil (builtins.fromJSON (builtins.readFile ./security-exposure-max) * 10);
in
{
  name = "scx-slo-observe";
  nodes.machine =
    { pkgs, lib, ... }:
    {
      imports = [
        module
        ./workload.nix
      ];
      virtualisation.cores = 2;
      # A kernel without sched_ext: enforce is unavailable, auto must not pick it.
      boot.kernelPackages = pkgs.linuxPackages_6_6;
      services.scxSlo = {
        enable = true;
        mode = "auto";
        kernel.pinned = false;
        metrics.enable = true;
        settings.advisory = {
          interval = "2s";
          max_step = 2.0;
        };
        targets."api.service" = {
          class = "latency";
          # 20us of deadline: the hogs' queueing is far over the 10us allowance.
          budget = {
            runtime = "10us";
            period = "10ms";
          };
          deadline = "20us";
          slo = {
            availability = 0.999;
            errorBudgetWindow = "7d";
          };
        };
        targets."batch.slice" = {
          class = "batch";
          weight = 50;
        };
      };
      services.prometheus.enable = true;
      environment.systemPackages = [ pkgs.curl ];
    };

  testScript = ''
    import json

    machine.wait_for_unit("scx-slod.service")
    machine.wait_for_unit("api.service")

    with subtest("auto picks advisory on a kernel without sched_ext"):
        machine.fail("test -d /sys/kernel/sched_ext")
        mode = machine.succeed("busctl get-property org.scxslo1 /org/scxslo1 org.scxslo1.Manager Mode").strip()
        assert mode == 's "advisory"', mode
        status = json.loads(machine.succeed("cat /run/scx-slo/status.json"))
        assert status["capabilities"]["modes"] == {"enforce": False, "advisory": True, "observe": True}, status["capabilities"]

    with subtest("the probes measure api.service"):
        machine.wait_until_succeeds(
            "curl -sf http://127.0.0.1:9638/metrics | grep -E '^scx_slo_queue_latency_seconds_count\\{unit=\"api.service\"\\} [1-9]'",
            timeout=60,
        )
        metrics = machine.succeed("curl -sf http://127.0.0.1:9638/metrics")
        assert 'scx_slo_mode{mode="advisory"} 1' in metrics, metrics

    with subtest("advisory raises api.service's CPUWeight through systemd"):
        machine.wait_until_succeeds(
            "test $(systemctl show -p CPUWeight --value api.service) -gt 100", timeout=60
        )
        weight = int(machine.succeed("systemctl show -p CPUWeight --value api.service").strip())
        assert 100 < weight <= 1000, weight
        # Runtime only: systemd keeps runtime properties under /run and
        # persistent ones under /etc/systemd/system.control, which must not
        # appear.
        machine.succeed("grep -r CPUWeight /run/systemd/system.control/api.service.d")
        machine.succeed("test ! -e /etc/systemd/system.control/api.service.d")

    with subtest("Prometheus scrapes scx-slod and loaded the SLO rules"):
        machine.wait_for_unit("prometheus.service")
        machine.wait_until_succeeds(
            "curl -sf 'http://127.0.0.1:9090/api/v1/rules' | grep -c ScxSloErrorBudgetBurnFast", timeout=60
        )
        machine.wait_until_succeeds(
            "curl -sf 'http://127.0.0.1:9090/api/v1/query?query=scx_slo_jobs_total' | grep -c api.service", timeout=90
        )
        # The daemon's own alerts are loaded, and the scrape job they watch
        # is the one the module configures: up{job="scx-slo"} is 1.
        machine.succeed("curl -sf 'http://127.0.0.1:9090/api/v1/rules' | grep -c ScxSloDaemonDown")
        machine.wait_until_succeeds(
            "curl -sf 'http://127.0.0.1:9090/api/v1/query?query=up%7Bjob%3D%22scx-slo%22%7D%3D%3D1' | grep -c '\"value\"'", timeout=90
        )

    with subtest("systemd-analyze security gate"):
        machine.succeed("systemd-analyze security --threshold=${toString threshold} scx-slod.service")
  '';
}
