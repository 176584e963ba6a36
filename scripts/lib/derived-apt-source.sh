#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# derived-apt-source.sh SUITE
#
# Prints a deb822 apt source for another suite of the archive this machine
# already uses: the URIs and keyring are read from the host's own
# /etc/apt/sources.list.d/debian.sources (the first stanza whose URI ends in
# /debian), only `Suites:` differs. No host name is ever written down here, so
# the project follows whatever mirror the machine is configured for.
set -euo pipefail
suite=${1:?usage: derived-apt-source.sh SUITE}
host_sources=${SCX_SLO_HOST_SOURCES:-/etc/apt/sources.list.d/debian.sources}
[[ -r $host_sources ]] || { echo "derived-apt-source: $host_sources not readable; cannot derive an apt source" >&2; exit 2; }
uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }' "$host_sources")
[[ -n $uri ]] || { echo "derived-apt-source: no main archive URI in $host_sources" >&2; exit 2; }
keyring=$(awk '/^Signed-By:/ { print $2; exit }' "$host_sources")
cat <<SRC
Types: deb
URIs: $uri
Suites: $suite
Components: main
Signed-By: ${keyring:-/usr/share/keyrings/debian-archive-keyring.gpg}
SRC
