#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Prints the nixpkgs lib the offline Nix checks evaluate with: the vendored
# copy in ../shared/vendor/nixpkgs-lib (next to the clone) when it is there,
# else <nixpkgs/lib> from the machine's Nix. Exit 3 when neither exists (the
# caller skips, or fails under CI=true). SCX_SLO_NIXPKGS_LIB overrides.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
if [[ -n ${SCX_SLO_NIXPKGS_LIB:-} ]]; then
	echo "$SCX_SLO_NIXPKGS_LIB"
elif [[ -f $repo/../shared/vendor/nixpkgs-lib/lib/default.nix ]]; then
	cd "$repo/../shared/vendor/nixpkgs-lib/lib" && pwd
elif lib=$(nix-instantiate --eval --expr 'toString <nixpkgs/lib>' 2>/dev/null); then
	lib=${lib//\"/}
	[[ -f $lib/default.nix ]] || exit 3
	echo "$lib"
else
	exit 3
fi
