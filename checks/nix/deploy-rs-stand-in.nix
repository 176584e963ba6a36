# SPDX-License-Identifier: GPL-2.0-only
#
# A stand-in for deploy-rs's `lib.<system>` (serokell/deploy-rs flake.nix),
# as far as this flake uses it. `activate.custom` has deploy-rs's interface
# (a functor over the base and the activation text that reads `dryActivate`
# and `boot` from itself) and returns the dispatch deploy-rs writes to
# $PROFILE/deploy-rs-activate, as text: DRY_ACTIVATE=1 runs dryActivate,
# BOOT=1 runs boot, anything else the activation; an unset dryActivate or
# boot only echoes the script, so such a profile never installs a boot entry.
# `deployChecks` returns the names of the checks deploy-rs defines; they
# build (schema validation, activation scripts) and do not run here.
{
  activate.custom = {
    __functor =
      customSelf: base: activation:
      ''
        set -euo pipefail
        if [[ "''${DRY_ACTIVATE:-}" == "1" ]]; then
          ${customSelf.dryActivate or "echo activate-script"}
        elif [[ "''${BOOT:-}" == "1" ]]; then
          ${customSelf.boot or "echo activate-script"}
        else
          ${activation}
        fi
      '';
  };
  deployChecks = deploy: {
    deploy-schema = deploy;
    deploy-activate = deploy;
  };
}
