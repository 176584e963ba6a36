#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Prints the nixpkgs lib the offline Nix checks evaluate with.
#
#   nixpkgs-lib.sh [25.05]  the vendored copy in ../shared/vendor/nixpkgs-lib
#                           (next to the clone) when it is there, else
#                           <nixpkgs/lib> from the machine's Nix;
#                           SCX_SLO_NIXPKGS_LIB overrides. The package's
#                           fileset check uses this one: lib.fileset of 26.05
#                           needs builtins.readFileType (Nix >= 2.14), and
#                           Debian's Nix is 2.8.
#   nixpkgs-lib.sh 26.05    the lib of the release the flake pins,
#                           ../shared/vendor/nixpkgs-lib-26.05;
#                           SCX_SLO_NIXPKGS_LIB_26_05 overrides. The module
#                           and the test nodes are evaluated with both.
#
# Exit 3 when the asked-for lib is missing (the caller skips, or fails under
# CI=true).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
case ${1:-25.05} in
25.05)
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
	;;
26.05)
	if [[ -n ${SCX_SLO_NIXPKGS_LIB_26_05:-} ]]; then
		echo "$SCX_SLO_NIXPKGS_LIB_26_05"
	elif [[ -f $repo/../shared/vendor/nixpkgs-lib-26.05/lib/default.nix ]]; then
		cd "$repo/../shared/vendor/nixpkgs-lib-26.05/lib" && pwd
	else
		exit 3
	fi
	;;
*)
	echo "usage: nixpkgs-lib.sh [25.05|26.05]" >&2
	exit 2
	;;
esac
