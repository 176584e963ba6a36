#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Builds the systemd guest's userland: a Debian trixie rootfs (systemd as
# PID 1, dbus-daemon, journald) made by mmdebstrap from an apt source derived
# from the machine's own debian.sources, packed as an uncompressed cpio (the
# guest kernel has no built-in block or ext4 driver, so the whole userland is
# the initramfs). Cached under ~/.cache/scx-slo/rootfs by the hash of this
# script, so a changed package list builds anew. Prints the cpio's path.
set -euo pipefail

SUITE=${SCX_SLO_ROOTFS_SUITE:-trixie}
CACHE=${SCX_SLO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scx-slo}
# What the unit and the scenario need in the guest, nothing more: systemd and
# its analyzer, the system bus, the daemon's shared libraries (libelf, zlib),
# jq for the scenario's JSON, procps for pgrep/kill.
PACKAGES=systemd,systemd-sysv,dbus,dbus-daemon,libelf1t64,zlib1g,jq,procps,iproute2,kmod
key=$(cat "$0" | sha256sum | cut -c1-16)
out="$CACHE/rootfs/$SUITE-$key"

if [[ -s "$out/rootfs.cpio" ]]; then
	echo "$out/rootfs.cpio"
	exit 0
fi
command -v mmdebstrap >/dev/null || { echo "build-rootfs: mmdebstrap is missing; run scripts/setup" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "build-rootfs: mmdebstrap's root mode needs root (CI runs as root)" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$(dirname "$0")/../../../scripts/lib/derived-apt-source.sh" "$SUITE" >"$tmp/guest.sources"
started=$(date +%s)
echo "build-rootfs: mmdebstrap $SUITE (minbase + $PACKAGES)" >&2
mmdebstrap --mode=root --variant=minbase --format=directory \
	--include="$PACKAGES" \
	--dpkgopt='path-exclude=/usr/share/{doc,man,locale,info}/*' \
	--dpkgopt='path-include=/usr/share/locale/locale.alias' \
	--customize-hook='chroot "$1" systemctl mask getty@tty1.service serial-getty@ttyS0.service systemd-networkd-wait-online.service systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer 2>/dev/null || true' \
	"$SUITE" "$tmp/root" "$tmp/guest.sources" >&2
rm -rf "$tmp/root/var/cache/apt" "$tmp/root/var/lib/apt/lists"
mkdir -p "$out"
(cd "$tmp/root" && find . | cpio -o -H newc --quiet) >"$out/rootfs.cpio.tmp"
mv "$out/rootfs.cpio.tmp" "$out/rootfs.cpio"
echo "build-rootfs: $(du -h "$out/rootfs.cpio" | cut -f1) in $(($(date +%s) - started)) s" >&2
echo "$out/rootfs.cpio"
