#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Builds the peer sched_ext schedulers the benchmark compares with
# (scx_bpfland, scx_flash, scx_lavd), pinned, once, cached in
# ~/.cache/scx-slo/peers; prints the directory holding their binaries.
# Only `checks/vm/run bench` needs them, so it calls this when a bench first
# asks (about 3 minutes each here): `scripts/setup` and the demo do not wait
# for them. Needs clang-22 (scripts/setup installs it).
set -euo pipefail
peers_root=$HOME/.cache/scx-slo/peers
peer_version=1.1.4
for p in scx_bpfland scx_flash scx_lavd; do
	if [[ ! -x $peers_root/bin/$p ]] || [[ $(cat "$peers_root/$p.version" 2>/dev/null) != "$peer_version" ]]; then
		echo "build-peers: building $p $peer_version (cached in $peers_root)" >&2
		BPF_CLANG=clang-22 cargo install --locked --quiet --root "$peers_root" "$p@$peer_version" >&2
		echo "$peer_version" >"$peers_root/$p.version"
	fi
done
echo "$peers_root/bin"
