#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# systemd-guest.sh OUT KVER KCONFIG: builds the systemd guest's initramfs,
# OUT/initramfs.cpio: the cached Debian rootfs (build-rootfs.sh) followed by
# an overlay with scx-slo installed as the NixOS module declares it.
#
# The module is evaluated with nixpkgs' lib (checks/nix/eval-module.nix) for
# the node of checks/nixos/systemd.nix and its specialisations; each one's
# unit file is rendered from its evaluated systemd.services.scx-slod, so a
# unit that drifts from the module cannot reach the guest. Installed as
# NixOS would: the package under its /nix/store path (binaries built here),
# its bus policy linked into /etc/dbus-1/system.d (services.dbus.packages),
# group scx-slo (users.groups, through sysusers), scx-slo on PATH
# (environment.systemPackages). The guest's own units are the workload
# (api.service, hog.service in batch.slice) and the scenario runner.
set -euo pipefail
out=${1:?usage: systemd-guest.sh OUT KVER KCONFIG}
kver=${2:?}
kconfig=${3:?}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)

rootfs=$("$here/build-rootfs.sh")
lib=$("$repo/scripts/lib/nixpkgs-lib.sh") || { echo "systemd-guest: no nixpkgs lib (../shared/vendor/nixpkgs-lib or <nixpkgs/lib>)" >&2; exit 2; }
root=$out/overlay
rm -rf "$root"
mkdir -p "$root"/{boot,etc/scx-slo-guest,etc/systemd/system/multi-user.target.wants,etc/dbus-1/system.d,etc/sysusers.d,usr/local/bin}
(cd "$repo" && nix-instantiate --eval --strict --json checks/nix/eval-module.nix --arg lib "import $lib" -A nodes.systemd.machine) >"$out/node.json"
python3 - "$out/node.json" "$repo/checks/nixos/security-exposure-max" "$root/etc/scx-slo-guest/module.json" <<'PY'
import json, sys
node = json.load(open(sys.argv[1]))
variants = {"base": node, **node.pop("specialisations")}
for v in variants.values():
    v.pop("specialisations", None)
    assert not v["failedAssertions"], v["failedAssertions"]
module = {"exposureMax": float(open(sys.argv[2]).read()), "package": node["package"], "variants": variants}
json.dump(module, open(sys.argv[3], "w"), indent=1)
PY
pkg=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["package"])' "$out/node.json")
mkdir -p "$root$pkg/bin" "$root$pkg/share/dbus-1/system.d"
cp "$repo/target/release/scx-slod" "$repo/target/release/scx-slo" "$root$pkg/bin/"
cp "$repo/data/org.scxslo1.conf" "$root$pkg/share/dbus-1/system.d/"
ln -s "$pkg/share/dbus-1/system.d/org.scxslo1.conf" "$root/etc/dbus-1/system.d/org.scxslo1.conf"
ln -s "$pkg/bin/scx-slo" "$root/usr/local/bin/scx-slo"
echo 'g scx-slo -' >"$root/etc/sysusers.d/scx-slo.conf"
cp "$repo/target/release/scx-slo-lab" "$root/usr/local/bin/"
cp "$kconfig" "$root/boot/config-$kver"
ln -s /lib/systemd/systemd "$root/init"

cat >"$root/etc/systemd/system/batch.slice" <<'UNIT'
[Slice]
CPUWeight=50
UNIT
cat >"$root/etc/systemd/system/api.service" <<'UNIT'
[Unit]
Description=Latency-critical workload (wakes every 10 ms)
[Service]
ExecStart=/bin/sh -c 'while :; do sleep 0.01; sha256sum /etc/os-release >/dev/null; done'
UNIT
cat >"$root/etc/systemd/system/hog.service" <<'UNIT'
[Unit]
Description=Batch work: one CPU hog per vCPU
[Service]
Slice=batch.slice
ExecStart=/bin/sh -c 'for i in $(seq $(nproc)); do yes >/dev/null & done; wait'
UNIT
cat >"$root/etc/systemd/system/scx-slo-scenario.service" <<'UNIT'
[Unit]
Description=scx-slo systemd scenario (checks/vm/run systemd)
Requires=dbus.service
After=multi-user.target dbus.service
[Service]
Type=oneshot
ExecStart=/usr/local/bin/scx-slo-lab scenario systemd --out /dev/ttyS1
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=1200
# Power off at once however the scenario ended (the report is on the serial
# port already): --force twice skips stopping units, which took 70 s and
# more with SuccessAction=poweroff-force.
ExecStopPost=/usr/bin/systemctl poweroff --force --force
[Install]
WantedBy=multi-user.target
UNIT
ln -s ../scx-slo-scenario.service "$root/etc/systemd/system/multi-user.target.wants/scx-slo-scenario.service"
(cd "$root" && find . | cpio -o -H newc --quiet) >"$out/overlay.cpio"
cat "$rootfs" "$out/overlay.cpio" >"$out/initramfs.cpio"
rm -f "$out/overlay.cpio"
