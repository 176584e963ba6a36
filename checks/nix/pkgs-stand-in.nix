# SPDX-License-Identifier: GPL-2.0-only
#
# A stand-in for `pkgs`, enough to evaluate modules/scx-slo.nix, hosts/ and
# checks/nixos/ without nixpkgs: nothing is built. Derivations are attribute
# sets with type "derivation" and a made-up store path derived from their
# name and content (so a changed file gives a changed path, as in Nix), and
# they keep what they were made from (`text`, `script`, `value`) for the
# checks to read.
#
# There is no `scx-slo` here on purpose: the module must get its package
# from the flake (modules/flake.nix), not from an overlay on pkgs.
# `system`: the platform it stands in for (stdenv.hostPlatform.system), so
# the flake's aarch64-linux outputs evaluate too.
{
  lib,
  system ? "x86_64-linux",
}:
let
  storePath =
    name: content:
    "/nix/store/${builtins.substring 0 32 (builtins.hashString "sha256" "${name}:${content}")}-${name}";
  drv =
    name: content: extra:
    {
      type = "derivation";
      inherit name;
      outPath = storePath name content;
    }
    // extra;
  package = name: drv name name { };
  kernelPackages = version: { kernel = package "linux-${version}" // { inherit version; }; };
  # pkgs.runCommand: the script and the environment are kept; `passthru`
  # attributes land on the result, as with stdenv.mkDerivation.
  runCommand =
    name: env: script:
    drv name (script + builtins.toJSON (builtins.removeAttrs env [ "passthru" ])) ({ inherit script env; } // (env.passthru or { }));
in
{
  inherit runCommand;
  runCommandLocal = runCommand;
  writeText = name: text: drv name text { inherit text; };
  writeShellScript = name: text: drv name text { text = "#!/bin/sh\n" + text; };
  formats.json = _: {
    type = lib.types.attrsOf lib.types.anything;
    generate = name: value: drv name (builtins.toJSON value) { inherit value; };
  };
  stdenv.hostPlatform.system = system;
  linuxPackages_6_6 = kernelPackages "6.6.60";
  linuxPackages_6_12 = kernelPackages "6.12.60";
  # What hardware profiles (nixos-hardware) pick with mkDefault.
  linuxPackages_latest = kernelPackages "6.18.38";
  coreutils = package "coreutils-9.5";
  findutils = package "findutils-4.10.0";
  python3 = package "python3-3.12.10";
  jq = package "jq-1.7.1";
  curl = package "curl-8.13.0";
  prometheus = package "prometheus-3.1.0";
  stress-ng = package "stress-ng-0.18.12";
}
