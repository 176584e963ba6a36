# SPDX-License-Identifier: GPL-2.0-only
# A host whose scx-slo options must fail the build (flake check bad-config):
# the same options as nix/tests/bad-options.nix, through the module.
{
  imports = [ ../../hosts/common.nix ];
  services.scxSlo = import ../../nix/tests/bad-options.nix // {
    enable = true;
  };
}
