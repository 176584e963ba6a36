# SPDX-License-Identifier: GPL-2.0-only
# scx-slod under systemd as the module declares it: READY only with scx_slo
# attached under the full hardening, reload and restart through
# switch-to-configuration, the bus policy, the watchdog, the journal fields,
# advisory mode, and the systemd-analyze security gate.
#
# `checks/vm/run systemd` runs the same scenario without Nix: it evaluates
# this node (and its specialisations) with nixpkgs' lib, renders the units,
# and boots a Debian guest with systemd as PID 1 (crates/scx-slo-lab/src/systemd.rs).
{ module }:
let
  # The measured exposure of the unit (docs/nixos.md), the gate both runs use.
  exposureMax = builtins.fromJSON (builtins.readFile ./security-exposure-max);
in
{
  name = "scx-slo-systemd";
  nodes.machine =
    { lib, ... }:
    {
      imports = [
        module
        ./enforce-node.nix
      ];
      services.scxSlo = {
        metrics.enable = true;
        targets."batch.slice" = {
          class = "batch";
          weight = 50;
        };
      };
      specialisation = {
        reload-bigger-budget.configuration = {
          services.scxSlo.targets."api.service".budget.runtime = lib.mkForce "4ms";
        };
        restart-scheduler.configuration = {
          services.scxSlo.targets."api.service".budget.runtime = lib.mkForce "4ms";
          services.scxSlo.settings.scheduler.slice_max = "2ms";
        };
        # Advisory: api.service's 20 us deadline is missed next to the hogs,
        # so the daemon raises its CPUWeight.
        advisory.configuration = {
          services.scxSlo.mode = lib.mkForce "advisory";
          services.scxSlo.settings.advisory = {
            interval = "2s";
            max_step = 2.0;
          };
          services.scxSlo.targets."api.service" = lib.mkForce {
            class = "latency";
            budget = {
              runtime = "10us";
              period = "10ms";
            };
            deadline = "20us";
          };
        };
      };
    };

  testScript =
    { nodes, ... }:
    let
      toplevel = nodes.machine.system.build.toplevel;
      switch = name: "${toplevel}/specialisation/${name}/bin/switch-to-configuration test";
    in
    ''
      def main_pid():
          return machine.succeed("systemctl show -p MainPID --value scx-slod.service").strip()

      def generation():
          return machine.succeed("busctl get-property org.scxslo1 /org/scxslo1 org.scxslo1.Manager ConfigGeneration").strip()

      manager = "org.scxslo1 /org/scxslo1 org.scxslo1.Manager"
      machine.wait_for_unit("scx-slod.service")

      with subtest("active only with scx_slo attached, under the module's hardening"):
          machine.succeed("systemctl restart scx-slod.service")
          machine.succeed("grep -qx enabled /sys/kernel/sched_ext/state")
          machine.succeed("grep -qx scx_slo /sys/kernel/sched_ext/root/ops")
          api = machine.succeed("systemctl show -p MainPID --value api.service").strip()
          machine.wait_until_succeeds(f"grep -Eq '^policy +: +7$' /proc/{api}/sched")

      with subtest("nobody reads Status and cannot Disable"):
          machine.succeed(f"setpriv --reuid=65534 --regid=65534 --clear-groups busctl call {manager} Status")
          machine.fail(f"setpriv --reuid=65534 --regid=65534 --clear-groups busctl call {manager} Disable s no")
          machine.succeed("grep -qx enabled /sys/kernel/sched_ext/state")

      with subtest("a budget change reloads"):
          pid, gen = main_pid(), generation()
          machine.succeed("${switch "reload-bigger-budget"}")
          assert main_pid() == pid
          assert generation() == "t %d" % (int(gen.split()[1]) + 1), generation()
          machine.succeed("scx-slo health --wait 20s --expect-config /etc/scx-slo/config.json")

      with subtest("a load-time change restarts"):
          pid = main_pid()
          machine.succeed("${switch "restart-scheduler"}")
          machine.wait_for_unit("scx-slod.service")
          assert main_pid() != pid
          machine.succeed("scx-slo health --wait 20s --expect-config /etc/scx-slo/config.json")

      with subtest("the watchdog kills and restarts a stopped daemon"):
          pid = main_pid()
          machine.succeed(f"kill -STOP {pid}")
          machine.wait_until_succeeds(
              f"test \"$(systemctl show -p MainPID --value scx-slod.service)\" != {pid} && grep -qx enabled /sys/kernel/sched_ext/state",
              timeout=90,
          )
          machine.succeed("journalctl -u scx-slod.service | grep -c 'Watchdog timeout'")

      with subtest("the journal has the SCX_SLO_* fields"):
          machine.succeed("journalctl -u scx-slod.service -o json | grep -c SCX_SLO_GENERATION")

      with subtest("root's Disable returns with the default scheduler in place"):
          machine.succeed(f"busctl call {manager} Disable s nixos-test && grep -qx disabled /sys/kernel/sched_ext/state")
          machine.succeed(f"busctl call {manager} Enable s \"\"")
          machine.wait_until_succeeds("grep -qx enabled /sys/kernel/sched_ext/state")

      with subtest("systemd-analyze security gate"):
          machine.succeed("systemd-analyze security --threshold=${toString (builtins.ceil (exposureMax * 10))} scx-slod.service")

      with subtest("advisory mode raises api.service's CPUWeight"):
          machine.succeed("${switch "advisory"}")
          machine.wait_until_succeeds(
              "test $(systemctl show -p CPUWeight --value api.service) -gt 100", timeout=120
          )
    '';
}
