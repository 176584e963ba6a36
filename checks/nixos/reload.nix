# SPDX-License-Identifier: GPL-2.0-only
# A config change through switch-to-configuration reloads the daemon (new
# generation, same scheduler, no restart); the specialisation with a second
# budget is the "new deploy".
{ module }:
{
  name = "scx-slo-reload";
  nodes.machine =
    { lib, pkgs, ... }:
    {
      imports = [
        module
        ./workload.nix
      ];
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
      specialisation.bigger-budget.configuration = {
        services.scxSlo.targets."api.service".budget.runtime = lib.mkForce "4ms";
      };
    };

  testScript =
    { nodes, ... }:
    let
      bigger = "${nodes.machine.system.build.toplevel}/specialisation/bigger-budget";
    in
    ''
      import json

      def status():
          return json.loads(machine.succeed("cat /run/scx-slo/status.json"))

      machine.wait_for_unit("scx-slod.service")
      machine.wait_until_succeeds("grep -qx enabled /sys/kernel/sched_ext/state")
      pid = machine.succeed("systemctl show -p MainPID --value scx-slod.service").strip()

      with subtest("switching configuration reloads instead of restarting"):
          machine.succeed("${bigger}/bin/switch-to-configuration test")
          machine.wait_until_succeeds(
              "test \"$(jq .generation /run/scx-slo/status.json)\" = 2"
          )
          assert pid == machine.succeed("systemctl show -p MainPID --value scx-slod.service").strip()
          machine.succeed("grep -qx enabled /sys/kernel/sched_ext/state")
          assert status()["last_reload_error"] is None
          machine.succeed("busctl get-property org.scxslo1 /org/scxslo1 org.scxslo1.Manager ConfigGeneration | grep -qx 't 2'")

      with subtest("a broken config file is refused and generation 2 stays"):
          machine.succeed("cp /etc/scx-slo/config.json /tmp/good.json")
          machine.succeed(
              "sed 's/\"4ms\"/\"40ms\"/' /tmp/good.json > /tmp/bad.json && "
              "mount --bind /tmp/bad.json /etc/scx-slo/config.json"
          )
          # ExecReload is `scx-slo reload`: the daemon refuses, the reload
          # job fails with the checker's message, the unit stays active.
          machine.fail("systemctl reload scx-slod.service")
          machine.succeed("systemctl is-active scx-slod.service")
          machine.wait_until_succeeds(
              "jq -e '.last_reload_error | test(\"exceeds period\")' /run/scx-slo/status.json"
          )
          assert status()["generation"] == 2
          machine.succeed("grep -qx enabled /sys/kernel/sched_ext/state")
    '';
}
