# SPDX-License-Identifier: GPL-2.0-only
# Enforce mode on the flake's pinned 6.12 kernel: the service comes up, the
# kernel shows scx_slo, the targeted unit runs on SCHED_EXT and an untargeted
# one does not, the health gate passes, and stopping returns the host to the
# default scheduler.
{ module }:
{
  name = "scx-slo-enforce";
  nodes.machine =
    { ... }:
    {
      imports = [
        module
        ./workload.nix
      ];
      # The same options as the example test VM host.
      services.scxSlo = import ../../hosts/test-vm/scx-slo.nix // {
        enable = true;
      };
    };

  testScript = ''
    import json

    machine.wait_for_unit("scx-slod.service")

    with subtest("the kernel runs scx_slo"):
        machine.wait_until_succeeds("grep -qx enabled /sys/kernel/sched_ext/state")
        ops = machine.succeed("cat /sys/kernel/sched_ext/root/ops").strip()
        assert ops == "scx_slo", f"root ops is {ops!r}, expected 'scx_slo'"

    with subtest("the targeted unit runs on SCHED_EXT, an untargeted one does not"):
        api = machine.succeed("systemctl show -p MainPID --value api.service").strip()
        machine.wait_until_succeeds(f"grep -Eq 'ext.enabled +: 1' /proc/{api}/sched")
        machine.succeed(f"grep -Eq '^policy +: +7$' /proc/{api}/sched")
        journald = machine.succeed("systemctl show -p MainPID --value systemd-journald.service").strip()
        machine.succeed(f"grep -Eq 'ext.enabled +: 0' /proc/{journald}/sched")

    with subtest("the status file reports the kernel's counters"):
        machine.sleep(3)
        status = json.loads(machine.succeed("cat /run/scx-slo/status.json"))
        api_status = [t for t in status["targets"] if t["key"] == "api.service"][0]
        wakeups = api_status["stats"]["counters"]["wakeups"]
        assert wakeups > 50, f"api.service wakeups = {wakeups}"

    with subtest("the deploy health gate passes"):
        machine.succeed("scx-slo health --wait 30s")

    with subtest("busctl reads the status; the CLI prints it"):
        out = machine.succeed("busctl call org.scxslo1 /org/scxslo1 org.scxslo1.Manager Status")
        assert "running" in out, out
        state = machine.succeed("busctl get-property org.scxslo1 /org/scxslo1 org.scxslo1.Manager State").strip()
        assert state == 's "running"', state
        machine.succeed("scx-slo status | grep -c 'state running'")

    with subtest("an unprivileged user may read but not disable"):
        machine.succeed("su -s /bin/sh nobody -c 'busctl get-property org.scxslo1 /org/scxslo1 org.scxslo1.Manager State'")
        machine.fail("su -s /bin/sh nobody -c 'busctl call org.scxslo1 /org/scxslo1 org.scxslo1.Manager Disable s test'")
        machine.succeed("grep -qx enabled /sys/kernel/sched_ext/state")

    with subtest("emergency disable returns the host to the default scheduler, and stays off across a restart"):
        machine.succeed("scx-slo disable --reason 'nixos test'")
        machine.succeed("grep -qx disabled /sys/kernel/sched_ext/state")
        machine.succeed("systemctl restart scx-slod.service")
        machine.sleep(3)
        machine.succeed("grep -qx disabled /sys/kernel/sched_ext/state")
        machine.succeed("scx-slo enable")
        machine.wait_until_succeeds("grep -qx enabled /sys/kernel/sched_ext/state")

    with subtest("the audit trail verifies and names who disabled"):
        machine.succeed("scx-slo audit verify")
        machine.sleep(2)  # the status file is rewritten every second
        status = json.loads(machine.succeed("cat /run/scx-slo/status.json"))
        entries = [json.loads(l) for l in machine.succeed("scx-slo audit show --json").splitlines()]
        disables = [e for e in entries if e["kind"] == "call" and e["action"] == "Disable"]
        assert disables and disables[-1]["caller"]["uid"] == 0, disables
        assert disables[-1]["detail"]["args"]["reason"] == "nixos test", disables[-1]
        # nobody's attempt was refused before it reached the engine: not recorded.
        assert all(e["caller"]["uid"] == 0 for e in disables), disables
        assert status["audit"]["last_seq"] == entries[-1]["seq"], (status["audit"], entries[-1])

    with subtest("stopping returns the host to the default scheduler"):
        machine.succeed("systemctl stop scx-slod.service")
        machine.wait_until_succeeds("grep -qx disabled /sys/kernel/sched_ext/state")
        machine.fail("scx-slo health")
  '';
}
