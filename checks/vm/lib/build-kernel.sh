#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# build-kernel.sh: builds the 6.12 sched_ext guest kernel from
# Debian 12's linux-source-6.12 (the LTS series the flake pins; Debian's own
# 6.12 images lack CONFIG_SCHED_CLASS_EXT) and prints the directory holding
# vmlinuz, config and release, the layout fetch-kernel.sh gives for 6.17.
#
# Config: x86_64's tinyconfig plus kernel-6.12.config, everything built in.
# Cached under ~/.cache/scx-slo/kernel/<source version>-<fragment hash>: a
# second call costs nothing; a new source package or fragment builds anew.
# Every option the fragment sets must survive olddefconfig (a dependency
# Kconfig silently dropped would give a kernel that cannot run the guest).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
CACHE=${SCX_SLO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scx-slo}
fragment=$here/kernel-6.12.config
pkg=linux-source-6.12

version=$(apt-cache policy "$pkg" | sed -n 's/^ *Candidate: //p')
[[ -n $version && $version != "(none)" ]] || { echo "build-kernel: no $pkg in this machine's apt sources (bookworm-security has it)" >&2; exit 1; }
# The contents, not the paths: a fresh clone elsewhere finds the same cache.
hash=$(cat "$fragment" "$0" | sha256sum | cut -c1-12)
out="$CACHE/kernel/6.12-$version-$hash"
if [[ -s "$out/vmlinuz" && -s "$out/config" && -s "$out/release" ]]; then
	echo "$out"
	exit 0
fi

for tool in make gcc flex bison bc pahole; do
	command -v "$tool" >/dev/null || { echo "build-kernel: $tool is missing; scripts/setup installs it" >&2; exit 1; }
done

work="$CACHE/kbuild"
rm -rf "$work"
mkdir -p "$work"
started=$(date +%s)
echo "build-kernel: $pkg $version, fragment $hash" >&2
(cd "$work" && apt-get -q download "$pkg=$version" >&2)
dpkg-deb --fsys-tarfile "$work"/"$pkg"_*.deb | tar -x -C "$work" --wildcards './usr/src/*.tar.xz'
tar -xJf "$work"/usr/src/"$pkg".tar.xz -C "$work"
src="$work/$pkg"

# LOCALVERSION names the build in `uname -r`; no "+" for an unclean tree.
kmake=(make -C "$src" ARCH=x86_64 LOCALVERSION=-scx-slo LOCALVERSION_AUTO= KBUILD_BUILD_USER=scx-slo KBUILD_BUILD_HOST=ci)
"${kmake[@]}" -s tinyconfig >&2
# merge_config.sh reports every value the fragment redefines: kept in a log.
"$src/scripts/kconfig/merge_config.sh" -m -O "$src" "$src/.config" "$fragment" >"$work/merge.log" 2>&1 || { cat "$work/merge.log" >&2; exit 1; }
"${kmake[@]}" -s olddefconfig >&2
missing=()
while IFS= read -r line; do
	[[ $line =~ ^CONFIG_ ]] || continue
	grep -qx "$line" "$src/.config" || missing+=("$line")
done <"$fragment"
if [[ ${#missing[@]} -gt 0 ]]; then
	echo "build-kernel: Kconfig dropped ${missing[*]} (an unmet dependency); fix kernel-6.12.config" >&2
	exit 1
fi
"${kmake[@]}" -s -j"$(nproc)" bzImage >&2

mkdir -p "$out"
cp "$src/arch/x86/boot/bzImage" "$out/vmlinuz"
cp "$src/.config" "$out/config"
"${kmake[@]}" -s kernelrelease >"$out/release"
rm -rf "$work"
echo "build-kernel: built $(cat "$out/release") in $(($(date +%s) - started)) s" >&2
echo "$out"
