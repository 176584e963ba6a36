# SPDX-License-Identifier: GPL-2.0-only
# The NixOS VM tests by name: default.nix runs them (nix flake check), and
# checks/nix/eval-module.nix evaluates each node offline with nixpkgs' lib.
{
  enforce = ./enforce.nix;
  reload = ./reload.nix;
  observe = ./observe.nix;
  systemd = ./systemd.nix;
  closed-loop = ./closed-loop.nix;
}
