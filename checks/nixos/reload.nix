# SPDX-License-Identifier: GPL-2.0-only
# What a config change through switch-to-configuration does to scx-slod.
# A budget change reloads it (new generation, same process, same scheduler).
# A change to a section the daemon reads only when the scheduler loads
# (mode, switch, scheduler, numa, early_warning), or more targets than the
# maps were loaded with slots for, restarts it, because the
# daemon refuses those on reload: each such section has a specialisation
# here, named after what the switch must do. crates/scx-slo/tests/nix.rs
# checks the same on the evaluated units offline (switch-to-configuration's
# rule: only X-Reload-Triggers changed -> reload, anything else -> restart).
{ module }:
{
  name = "scx-slo-reload";
  nodes.machine =
    { lib, ... }:
    {
      imports = [
        module
        ./enforce-node.nix
      ];
      specialisation = {
        reload-bigger-budget.configuration = {
          services.scxSlo.targets."api.service".budget.runtime = lib.mkForce "4ms";
        };
        restart-scheduler.configuration = {
          services.scxSlo.settings.scheduler.slice_max = "2ms";
        };
        restart-switch.configuration = {
          services.scxSlo.switch = "all";
        };
        restart-numa.configuration = {
          services.scxSlo.settings.numa.migration_threshold = 8;
        };
        restart-early-warning.configuration = {
          services.scxSlo.settings.early_warning.slack_threshold = "1ms";
        };
        restart-mode.configuration = {
          services.scxSlo.mode = lib.mkForce "observe";
        };
        # The maps were loaded with 32 target slots (nix/capacity.nix): one
        # more target fits and reloads; 20 more need 64 slots, a restart.
        reload-another-target.configuration = {
          services.scxSlo.targets."extra.slice".class = "batch";
        };
        restart-more-targets-than-slots.configuration = {
          services.scxSlo.targets = lib.genAttrs (map (i: "extra${toString i}.slice") (lib.range 1 20)) (_: {
            class = "batch";
          });
        };
      };
    };

  testScript =
    { nodes, ... }:
    let
      toplevel = nodes.machine.system.build.toplevel;
      spec = name: "${toplevel}/specialisation/${name}/bin/switch-to-configuration test";
    in
    ''
      import json

      def status():
          return json.loads(machine.succeed("cat /run/scx-slo/status.json"))

      def main_pid():
          return machine.succeed("systemctl show -p MainPID --value scx-slod.service").strip()

      machine.wait_for_unit("scx-slod.service")
      machine.wait_until_succeeds("grep -qx enabled /sys/kernel/sched_ext/state")
      pid = main_pid()

      with subtest("a budget change reloads instead of restarting"):
          machine.succeed("${spec "reload-bigger-budget"}")
          machine.wait_until_succeeds(
              "test \"$(jq .generation /run/scx-slo/status.json)\" = 2"
          )
          assert pid == main_pid()
          machine.succeed("grep -qx enabled /sys/kernel/sched_ext/state")
          assert status()["last_reload_error"] is None
          machine.succeed("busctl get-property org.scxslo1 /org/scxslo1 org.scxslo1.Manager ConfigGeneration | grep -cx 't 2'")
          machine.succeed("scx-slo health --wait 30s --expect-config /etc/scx-slo/config.json")

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
          # The deploy gate sees the deployed file is not the running one.
          machine.fail("scx-slo health --expect-config /etc/scx-slo/config.json")
          machine.succeed("umount /etc/scx-slo/config.json")

      with subtest("another target within the loaded slots reloads"):
          machine.succeed("${spec "reload-another-target"}")
          machine.wait_until_succeeds("jq -e '.targets | map(.key) | index(\"extra.slice\")' /run/scx-slo/status.json")
          assert pid == main_pid()
          assert status()["target_capacity"] == 32

      for name in ["restart-scheduler", "restart-switch", "restart-numa", "restart-early-warning", "restart-mode", "restart-more-targets-than-slots"]:
          with subtest(f"{name}: a load-time section change restarts the daemon"):
              before = main_pid()
              machine.succeed(f"${toplevel}/specialisation/{name}/bin/switch-to-configuration test")
              machine.wait_for_unit("scx-slod.service")
              assert main_pid() != before, f"{name}: scx-slod was not restarted"
              machine.succeed("scx-slo health --wait 30s --expect-config /etc/scx-slo/config.json")
    '';
}
