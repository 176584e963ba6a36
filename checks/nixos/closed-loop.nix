# SPDX-License-Identifier: GPL-2.0-only
# The closed loop on NixOS (docs/tuning.md): api.service has an adaptive budget and
# the config an A/B canary. The canary alternates scx-slo with the default
# scheduler in 10 s windows and must not roll the config back; the adaptive
# controller must report its intervals; `scx-slo health --canary` is the
# rollout gate. The same scenarios run without Nix as `checks/vm/run adapt`
# and `checks/vm/run canary`.
{ module }:
{
  name = "scx-slo-closed-loop";
  nodes.machine =
    { pkgs, ... }:
    {
      imports = [
        module
        ./workload.nix
      ];
      environment.systemPackages = [ pkgs.jq ];
      services.scxSlo = {
        enable = true;
        mode = "enforce";
        switch = "all";
        settings = {
          admission.cpu_capacity = 2;
          canary = {
            window = "10s";
            min_samples = 200;
            promote_after = 2;
            max_windows = 6;
          };
        };
        targets = {
          "api.service" = {
            class = "latency";
            budget = {
              runtime = "2ms";
              period = "10ms";
            };
            deadline = "8ms";
            priority = 800;
            adaptive = {
              sli = "response";
              objective = "6ms";
              interval = "5s";
              minSamples = 50;
            };
          };
          "batch.slice".class = "batch";
        };
      };
      # Not booted by this test: evaluated offline (crates/scx-slo/tests/
      # nix.rs) for what a scrape block does to the unit, and checked by the
      # build's config check. The scraping itself runs in `checks/vm/run
      # adapt` (its last phase).
      specialisation.scrape-service.configuration = {
        services.scxSlo.targets."api.service".scrape = {
          url = "http://127.0.0.1:9100/metrics";
          histogram = "http_request_duration_seconds";
        };
      };
    };

  testScript = ''
    import json

    machine.wait_for_unit("scx-slod.service")

    def status():
        return json.loads(machine.succeed("cat /run/scx-slo/status.json"))

    with subtest("the canary decides within its windows and does not roll the config back"):
        machine.wait_until_succeeds(
            "jq -e '.canary.state != \"running\"' /run/scx-slo/status.json", timeout=300
        )
        canary = status()["canary"]
        assert canary["state"] != "rolled-back", canary
        print("canary:", canary["state"], canary["verdicts"], canary.get("outcome"))

    with subtest("health --canary is the rollout gate"):
        if status()["canary"]["state"] == "promoted":
            machine.succeed("scx-slo health --canary --wait 30s")
        else:
            machine.fail("scx-slo health --canary")

    with subtest("the adaptive controller reports its intervals"):
        machine.wait_until_succeeds(
            "jq -e '.adaptive[\"api.service\"].last != null' /run/scx-slo/status.json", timeout=60
        )
        adaptive = status()["adaptive"]["api.service"]
        assert 500 <= adaptive["runtime_us"] <= 8000, adaptive
  '';
}
