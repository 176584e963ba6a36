# SPDX-License-Identifier: GPL-2.0-only
#
# services.scxSlo option values -> config.json (schema v1, docs/config.md).
#
# Plain Nix with builtins only, so that the NixOS module and the offline CI
# checks (crates/scx-slo/tests/nix.rs, no nixpkgs) generate the config with
# the same code.
# Nulls mean "unset": they are dropped, and scx-slo's own defaults apply, so
# every default lives in one place (crates/scx-slo-model).
#
# `settings` is the freeform base (RFC 42); `mode`, `switch` and `targets`
# override the keys of the same name.
{
  mode ? null,
  switch ? null,
  targets ? { },
  settings ? { },
  ...
}:
let
  isEmptyAttrs = v: builtins.isAttrs v && v == { };

  # Drops nulls (and attribute sets that became empty) at every depth.
  clean =
    v:
    if builtins.isAttrs v then
      let
        cleaned = builtins.mapAttrs (_: clean) v;
      in
      builtins.removeAttrs cleaned (
        builtins.filter (n: cleaned.${n} == null || isEmptyAttrs cleaned.${n}) (builtins.attrNames cleaned)
      )
    else if builtins.isList v then
      map clean v
    else
      v;

  # Recursive merge; the right side wins.
  merge =
    a: b:
    if builtins.isAttrs a && builtins.isAttrs b then
      a // builtins.mapAttrs (n: bv: if a ? ${n} then merge a.${n} bv else bv) b
    else
      b;

  target = _name: t: {
    class = t.class or null;
    budget =
      if (t.budget or null) == null then
        null
      else
        {
          runtime = t.budget.runtime or null;
          period = t.budget.period or null;
        };
    deadline = t.deadline or null;
    priority = t.priority or null;
    preemption = t.preemption or null;
    weight = t.weight or null;
    cgroup = t.cgroup or null;
    slo =
      if (t.slo or null) == null then
        null
      else
        {
          latency = t.slo.latency or null;
          availability = t.slo.availability or null;
          error_budget_window = t.slo.errorBudgetWindow or null;
        };
    adaptive =
      if (t.adaptive or null) == null then
        null
      else
        let
          a = t.adaptive;
        in
        {
          sli = a.sli or null;
          objective = a.objective or null;
          interval = a.interval or null;
          min_runtime = a.minRuntime or null;
          max_runtime = a.maxRuntime or null;
          max_step = a.maxStep or null;
          cooldown = a.cooldown or null;
          min_samples = a.minSamples or null;
          gains = a.gains or null;
          dry_run = a.dryRun or null;
        };
    scrape = t.scrape or null;
  };
  # Blocks whose presence means something survive cleaning even when empty:
  # `settings.canary = { }` turns the canary on with its defaults.
  present = builtins.mapAttrs (_: clean) (
    builtins.removeAttrs (builtins.intersectAttrs { canary = null; } settings) (
      builtins.filter (n: settings.${n} == null) (builtins.attrNames (builtins.intersectAttrs { canary = null; } settings))
    )
  );
in
clean (
  merge settings {
    version = 1;
    inherit mode switch;
    targets = builtins.mapAttrs target targets;
  }
)
// present
