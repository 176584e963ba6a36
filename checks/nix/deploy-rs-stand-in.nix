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
  # activate-rs's `activate` (src/bin/activate.rs: activate, deactivate,
  # activation_confirmation), as bash over a stand-in profile, for the
  # rollback matrix in crates/scx-slo/tests/nix.rs. The profile is
  # $PROFILES/system (a link to the current generation) with one line per
  # generation in $PROFILES/generations; CLOSURE is the closure to deploy.
  # Flags as deploy-rs passes them: AUTO_ROLLBACK, MAGIC_ROLLBACK, BOOT,
  # DRY_ACTIVATE (1 or 0); CONFIRMED=1 when the deployer confirms within
  # the confirm timeout (it cannot after a lost connection).
  #   - dry-activate never sets the profile and runs the closure's own
  #     activation with DRY_ACTIVATE=1; nothing is rolled back;
  #   - otherwise the profile is set to CLOSURE and its deploy-rs-activate
  #     runs with BOOT; if that fails and AUTO_ROLLBACK, deactivate: the
  #     profile goes back one generation, the failed one is deleted, and the
  #     previous generation's deploy-rs-activate runs, without BOOT; a
  #     generation made by nixos-rebuild has none, so that step fails and
  #     the failed configuration keeps running;
  #   - magic rollback only follows a successful activation, and never
  #     with --boot: unconfirmed, it deactivates the same way.
  activateRs = ''
    set -uo pipefail
    profile=$PROFILES/system
    deactivate() {
      echo "deactivate" >> "$LOG"
      prev=$(tail -n 2 "$PROFILES/generations" | head -n 1)
      sed -i '$ d' "$PROFILES/generations"
      ln -sfn "$prev" "$profile"
      if [[ ! -x $profile/deploy-rs-activate ]]; then
        echo "re-activating the last generation failed: $prev has no deploy-rs-activate" >> "$LOG"
        return 1
      fi
      (cd "$profile" && PROFILE=$profile "$profile/deploy-rs-activate") || return 1
    }
    if [[ $DRY_ACTIVATE == 1 ]]; then
      (cd "$CLOSURE" && PROFILE=$CLOSURE DRY_ACTIVATE=1 BOOT=0 "$CLOSURE/deploy-rs-activate")
      exit $?
    fi
    echo "$CLOSURE" >> "$PROFILES/generations"
    ln -sfn "$CLOSURE" "$profile"
    if ! (cd "$profile" && PROFILE=$profile DRY_ACTIVATE=0 BOOT=$BOOT "$profile/deploy-rs-activate"); then
      if [[ $AUTO_ROLLBACK == 1 ]]; then deactivate; fi
      exit 1
    fi
    if [[ $MAGIC_ROLLBACK == 1 && $BOOT != 1 && $CONFIRMED != 1 ]]; then
      deactivate
      exit 1
    fi
  '';
  deployChecks = deploy: {
    deploy-schema = deploy;
    deploy-activate = deploy;
  };
}
