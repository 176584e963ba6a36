#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Fetches the sched_ext guest kernel (Debian trixie-backports) into the cache.
#
# The apt source is derived at run time from the machine's own
# /etc/apt/sources.list.d/debian.sources (same URIs, other Suites), and apt runs
# against a private state directory, so the host's package lists are untouched.
# Prints the directory holding vmlinuz and config.
set -euo pipefail

KVER=${SCX_SLO_GUEST_KVER:-6.17.13+deb13-amd64}
SUITE=${SCX_SLO_GUEST_SUITE:-trixie-backports}
CACHE=${SCX_SLO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scx-slo}
out="$CACHE/kernel/$KVER"

if [[ -s "$out/vmlinuz" && -s "$out/config" ]]; then
	echo "$out"
	exit 0
fi

apt_root="$CACHE/apt-$SUITE"
mkdir -p "$apt_root/lists/partial" "$apt_root/archives/partial" "$apt_root/etc"
"$(dirname "$0")/../../../scripts/lib/derived-apt-source.sh" "$SUITE" >"$apt_root/etc/guest.sources"
apt_opts=(
	-o "Dir::Etc::SourceList=/dev/null"
	-o "Dir::Etc::SourceParts=$apt_root/etc"
	-o "Dir::State::Lists=$apt_root/lists"
	-o "Dir::Cache::Archives=$apt_root/archives"
	-o "Dir::State::status=/var/lib/dpkg/status"
	-o "APT::Get::List-Cleanup=0"
	-o "Debug::NoLocking=1"
)
echo "fetch-kernel: apt update ($SUITE from the host's mirror)" >&2
apt-get -q "${apt_opts[@]}" update >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get -q "${apt_opts[@]}" download "linux-image-$KVER" >&2)
deb=$(ls "$tmp"/linux-image-*.deb)
dpkg-deb -x "$deb" "$tmp/root"
mkdir -p "$out"
cp "$tmp/root/boot/vmlinuz-$KVER" "$out/vmlinuz"
cp "$tmp/root/boot/config-$KVER" "$out/config"
grep -q '^CONFIG_SCHED_CLASS_EXT=y' "$out/config" || { echo "fetch-kernel: $KVER lacks CONFIG_SCHED_CLASS_EXT" >&2; exit 1; }
echo "$KVER" >"$out/release"
echo "$out"
