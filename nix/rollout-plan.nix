# SPDX-License-Identifier: GPL-2.0-only
#
# The plan `scx-slo rollout` reads (docs/operations.md, "Upgrades and
# rollbacks with deploy-rs"), made from the flake's deploy-rs nodes: each
# node's scrape target is its deploy hostname and scx-slod's metrics port
# unless `instances` names another. Returns the JSON text; write it with
# `pkgs.writeText "plan.json" (...)`. `scx-slo rollout` validates it and
# names any field that is wrong, so nothing is checked twice here.
{
  # deploy.nodes: attribute name → { hostname, ... }.
  nodes,
  # [ { name; nodes = [ ... ]; soak = "1h"; } ... ], the last may be
  # { name; rest = true; soak; }; a stage may carry its own `gates`.
  stages,
  # The flake reference being rolled out, and the last known good one.
  flake,
  rollbackFlake,
  # { url = "http://prometheus:9090"; } plus timeout, step, instance_label.
  prometheus,
  name ? "scx-slo rollout",
  # services.scxSlo.metrics.port's default.
  metricsPort ? 9638,
  # node → scrape target, where it is not hostname:metricsPort.
  instances ? { },
  # Any other plan field (deploy, rollback, command_timeout, poll, gates).
  extra ? { },
}:
builtins.toJSON (
  {
    version = 1;
    inherit
      name
      flake
      prometheus
      stages
      ;
    rollback_flake = rollbackFlake;
    nodes = builtins.mapAttrs (n: node: instances.${n} or "${node.hostname}:${toString metricsPort}") nodes;
  }
  // extra
)
