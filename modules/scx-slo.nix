# SPDX-License-Identifier: GPL-2.0-only
#
# services.scxSlo: latency SLOs kept by the scx_slo sched_ext scheduler.
#
# The options become /etc/scx-slo/config.json through ../nix/config.nix (the
# same function the offline CI check evaluates), and the build runs
# `scx-slo check-config` on it, as nixpkgs does with promtool: a bad or
# inadmissible config fails nixos-rebuild with the checker's message.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.scxSlo;
  settingsFormat = pkgs.formats.json { };

  # Enums, ranges and defaults come from the config's schema, which
  # `scx-slo schema` generates from the validator's own constants
  # (data/config.schema.json, committed; a test fails when it is stale).
  schema = lib.importJSON ../data/config.schema.json;
  top = schema.properties;
  targetSchema = schema."$defs".target.properties;
  # builtins.match anchors the whole string itself.
  duration = lib.types.strMatching (
    lib.removePrefix "^" (lib.removeSuffix "$" schema."$defs".duration.pattern)
  );
  between = field: lib.types.ints.between field.minimum field.maximum;

  budgetType = lib.types.submodule {
    options = {
      runtime = lib.mkOption {
        type = duration;
        example = "2ms";
        description = "CPU time the whole unit may use per period, across all its CPUs. Must not exceed `period`; the build fails otherwise.";
      };
      period = lib.mkOption {
        type = duration;
        example = "10ms";
        description = "Replenishment period of the budget, ${targetSchema.budget.properties.period."x-range"}.";
      };
    };
  };

  sloType = lib.types.submodule {
    options = {
      latency = lib.mkOption {
        type = lib.types.nullOr (lib.types.attrsOf duration);
        default = null;
        example = {
          p50 = "1ms";
          p99 = "5ms";
        };
        description = "Latency objectives by percentile (`p50`, `p95`, `p99`); they must not decrease, or the build fails.";
      };
      availability = lib.mkOption {
        type = lib.types.nullOr lib.types.float;
        default = null;
        example = 0.999;
        description = "Fraction of good events, strictly between 0 and 1 (null: ${toString targetSchema.slo.properties.availability.default}).";
      };
      errorBudgetWindow = lib.mkOption {
        type = lib.types.nullOr duration;
        default = null;
        example = "30d";
        description = "Window the error budget is counted over, ${targetSchema.slo.properties.error_budget_window."x-range"} (null: ${targetSchema.slo.properties.error_budget_window.default}).";
      };
    };
  };

  adaptiveSchema = targetSchema.adaptive.properties;
  gainType = field: lib.types.addCheck lib.types.number (g: g >= field.minimum && g <= field.maximum);
  adaptiveType = lib.types.submodule {
    options = {
      sli = lib.mkOption {
        type = lib.types.nullOr (lib.types.enum adaptiveSchema.sli.enum);
        default = null;
        description = "What the controller measures: `response` (wakeup to completion, from the scheduler's slack histogram and deadline misses), `queue_delay` (wakeup to first run) or `service` (the target's own histogram, its `scrape` option) (null: ${adaptiveSchema.sli."x-default"}).";
      };
      objective = lib.mkOption {
        type = lib.types.nullOr duration;
        default = null;
        example = "2ms";
        description = "The p99 of `sli` the controller keeps the unit under; for `response`, within the deadline (null: `slo.latency.p99`; one of the two is required).";
      };
      interval = lib.mkOption {
        type = lib.types.nullOr duration;
        default = null;
        example = "10s";
        description = "How often it measures and may change the budget, ${adaptiveSchema.interval."x-range"} (null: ${adaptiveSchema.interval.default}).";
      };
      minRuntime = lib.mkOption {
        type = lib.types.nullOr duration;
        default = null;
        description = "Lowest runtime it sets (null: ${adaptiveSchema.min_runtime."x-default"}).";
      };
      maxRuntime = lib.mkOption {
        type = lib.types.nullOr duration;
        default = null;
        description = "Highest runtime it sets, at most the deadline (null: ${adaptiveSchema.max_runtime."x-default"}).";
      };
      maxStep = lib.mkOption {
        type = lib.types.nullOr lib.types.float;
        default = null;
        example = 1.5;
        description = "Largest factor one change applies, ${adaptiveSchema.max_step."x-range"} (null: ${toString adaptiveSchema.max_step.default}).";
      };
      cooldown = lib.mkOption {
        type = lib.types.nullOr (between adaptiveSchema.cooldown);
        default = null;
        description = "Intervals it holds after a change, ${adaptiveSchema.cooldown."x-range"} (null: ${toString adaptiveSchema.cooldown.default}).";
      };
      minSamples = lib.mkOption {
        type = lib.types.nullOr (between adaptiveSchema.min_samples);
        default = null;
        description = "Jobs an interval needs before its p99 counts (null: ${toString adaptiveSchema.min_samples.default}).";
      };
      gains = lib.mkOption {
        type = lib.types.nullOr (
          lib.types.submodule {
            options = lib.genAttrs [ "kp" "ki" "kd" ] (
              g:
              lib.mkOption {
                type = lib.types.nullOr (gainType adaptiveSchema.gains.properties.${g});
                default = null;
                description = "PID gain ${g}, ${adaptiveSchema.gains.properties.${g}."x-range"} (null: ${toString adaptiveSchema.gains.properties.${g}.default}).";
              }
            );
          }
        );
        default = null;
        description = "PID gains per interval on the log of the runtime (docs/tuning.md shows how the defaults were tuned).";
      };
      # A bool, never null: nix/config.nix drops nulls and the sets they
      # empty, so an all-default block (`adaptive = { };`) still reaches
      # config.json as `{ "dry_run": false }` and turns the controller on.
      dryRun = lib.mkOption {
        type = lib.types.bool;
        default = adaptiveSchema.dry_run.default;
        description = "Log what it would set; change nothing.";
      };
    };
  };

  scrapeSchema = targetSchema.scrape.properties;
  scrapeType = lib.types.submodule {
    options = {
      url = lib.mkOption {
        type = lib.types.addCheck lib.types.str (u: builtins.stringLength u <= scrapeSchema.url.maxLength && lib.hasPrefix "http://" u);
        example = "http://127.0.0.1:9100/metrics";
        description = "The service's Prometheus endpoint on this host: http:// on 127.0.0.0/8, [::1] or localhost (the build's config check refuses any other host).";
      };
      histogram = lib.mkOption {
        type = lib.types.strMatching scrapeSchema.histogram.pattern;
        example = "http_request_duration_seconds";
        description = "The histogram's base name (`le` in seconds); its label sets are summed.";
      };
    };
  };

  targetType = lib.types.submodule {
    options = {
      class = lib.mkOption {
        type = lib.types.enum targetSchema.class.enum;
        example = "latency";
        description = "`latency`: earliest-deadline-first while the budget lasts, then fair share. `batch`: weighted virtual time.";
      };
      budget = lib.mkOption {
        type = lib.types.nullOr budgetType;
        default = null;
        description = "Required for latency targets, refused for batch targets. The sum of runtime/period over all latency targets must fit the CPUs (admission control), or the build fails.";
      };
      deadline = lib.mkOption {
        type = lib.types.nullOr duration;
        default = null;
        example = "5ms";
        description = "Relative deadline of each request (wakeup to sleep); latency targets only. runtime <= deadline <= period.";
      };
      priority = lib.mkOption {
        type = lib.types.nullOr (between targetSchema.priority);
        default = null;
        example = 800;
        description =
          let
            byClass = targetSchema.priority."x-default-by-class";
          in
          "${targetSchema.priority."x-range"}, higher wins preemption (null: ${toString byClass.latency} for latency, ${toString byClass.batch} for batch).";
      };
      preemption = lib.mkOption {
        type = lib.types.nullOr (lib.types.enum targetSchema.preemption.enum);
        default = null;
        description = "Whether a waking task may take the CPU of lower-priority work with a later deadline (null: lower-priority for latency; batch targets only accept never).";
      };
      weight = lib.mkOption {
        type = lib.types.nullOr (between targetSchema.weight);
        default = null;
        example = 200;
        description = "Share in virtual time on systemd's CPUWeight scale, ${targetSchema.weight."x-range"} (null: ${toString targetSchema.weight.default}).";
      };
      cgroup = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        example = "/system.slice/api.service";
        description = "Explicit cgroup path (relative to the cgroup2 root) instead of looking the unit up.";
      };
      slo = lib.mkOption {
        type = lib.types.nullOr sloType;
        default = null;
        description = "The service-level objective, for metrics and alerts.";
      };
      adaptive = lib.mkOption {
        type = lib.types.nullOr adaptiveType;
        default = null;
        example = {
          interval = "30s";
          maxStep = 1.25;
        };
        description = "Latency targets only: adapt `budget.runtime` to the measured p99 (the service's own histogram with `scrape`, else the scheduler's response time) with a PID controller, admission-checked like SetBudget (docs/config.md, docs/tuning.md). Null: a static budget.";
      };
      scrape = lib.mkOption {
        type = lib.types.nullOr scrapeType;
        default = null;
        example = {
          url = "http://127.0.0.1:9100/metrics";
          histogram = "http_request_duration_seconds";
        };
        description = "Latency targets only: the service's own latency histogram, read every second by scx-slod; the adaptive controller's and the canary's SLI when set (docs/config.md).";
      };
    };
  };

  generated = import ../nix/config.nix { inherit (cfg) mode switch settings targets; };

  configFile = settingsFormat.generate "scx-slo-config.json" generated;

  # The sections scx-slod reads only when the scheduler loads (engine.rs,
  # load_time_change): the daemon refuses them on reload, so a change to any
  # of them must restart the unit. Everything else (targets, budgets,
  # admission, advisory, observe) reloads without a restart.
  loadTimeSections = [
    "mode"
    "switch"
    "scheduler"
    "numa"
    "early_warning"
  ];
  loadTimeConfig = lib.filterAttrs (name: _: lib.elem name loadTimeSections) generated // {
    # Not a section: the map slots the daemon loads for this many targets
    # (nix/capacity.nix). More targets than the loaded slots need a restart.
    target_capacity = import ../nix/capacity.nix (builtins.length (builtins.attrNames (generated.targets or { })));
  };

  checkedConfig =
    if cfg.checkConfig then
      pkgs.runCommand "scx-slo-config-checked.json"
        {
          preferLocalBuild = true;
          nativeBuildInputs = [ cfg.package ];
          # The file before the check, for tooling and the offline evaluation.
          passthru.unchecked = configFile;
        }
        ''
          scx-slo check-config ${lib.optionalString (cfg.cpus != null) "--cpus ${toString cfg.cpus}"} ${configFile}
          ln -s ${configFile} $out
        ''
    else
      configFile;

  enforcing = cfg.mode == "enforce";
  # Targets whose own histogram scx-slod reads (on loopback: the config
  # check refuses any other host).
  scrapes = lib.any (t: (t.scrape or null) != null) (lib.attrValues cfg.targets);
  # IP for the metrics endpoint, or for the scrapes alone (then loopback
  # only, below).
  needsNetwork = cfg.metrics.enable || scrapes;
  # Partial mode gives the targets' threads SCHED_EXT; auto may pick enforce.
  switchesThreads = lib.elem cfg.mode [ "enforce" "auto" ] && cfg.switch == "partial";

  listen =
    let
      a = cfg.metrics.listenAddress;
    in
    "${if lib.hasInfix ":" a then "[${a}]" else a}:${toString cfg.metrics.port}";

  # Recording rules and burn-rate alerts from the SLOs, generated at build
  # time from the checked config (nixpkgs' prometheus module then runs
  # promtool on them).
  ruleFile = pkgs.runCommand "scx-slo-rules.yml" {
    preferLocalBuild = true;
    nativeBuildInputs = [ cfg.package ];
  } "scx-slo rules --config ${checkedConfig} > $out";
  kernelVersion = config.boot.kernelPackages.kernel.version;
  unitStem = name: lib.removeSuffix ".service" name;
in
{
  options.services.scxSlo = {
    enable = lib.mkEnableOption "scx-slo, latency SLOs kept by a sched_ext scheduler";

    package = lib.mkPackageOption pkgs "scx-slo" { };

    mode = lib.mkOption {
      type = lib.types.enum top.mode.enum;
      default = top.mode.default;
      example = "enforce";
      description = ''
        `enforce` loads the scx_slo scheduler and needs a sched_ext kernel
        (6.12 or newer); `advisory` measures and sets each latency unit's
        CPUWeight through systemd (runtime only); `observe` only measures, on
        any kernel with BTF; `auto` picks the highest mode the host supports
        and falls back to observe while enforce backs off (docs/observe.md).
      '';
    };

    switch = lib.mkOption {
      type = lib.types.enum top.switch.enum;
      default = top.switch.default;
      description = ''
        `partial`: only the targets' threads run on scx_slo (the canary form);
        note that the kernel's fair class then outranks them, so put batch work
        under a `batch` target. `all`: every task runs on scx_slo.
      '';
    };

    targets = lib.mkOption {
      type = lib.types.attrsOf targetType;
      default = { };
      example = lib.literalExpression ''
        {
          "nginx.service" = {
            class = "latency";
            budget = { runtime = "2ms"; period = "10ms"; };
            deadline = "5ms";
            priority = 800;
          };
          "batch.slice" = { class = "batch"; weight = 50; };
        }
      '';
      description = "Targets keyed by systemd unit (`.service`, `.scope`), slice (`.slice`, covering its units) or cgroup path (starting with `/`).";
    };

    settings = lib.mkOption {
      type = lib.types.submodule { freeformType = settingsFormat.type; };
      default = { };
      example = lib.literalExpression ''
        {
          admission = { cpu_capacity = 16; overcommit = 0.9; };
          scheduler = { slice_max = "3ms"; max_wait = "20ms"; };
        }
      '';
      description = "Everything else in config.json (docs/config.md): `admission`, `scheduler`, `numa`, `early_warning`, `observe`, `advisory`, and `canary` (`canary = { };` runs the A/B canary with its defaults). Unknown keys fail the build.";
    };

    cpus = lib.mkOption {
      type = lib.types.nullOr lib.types.ints.positive;
      default = null;
      example = 16;
      description = "CPUs of the target host, for build-time admission control when `settings.admission.cpu_capacity` is \"auto\" (the default). Without either, the sum is checked by the daemon at start.";
    };

    checkConfig = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Run `scx-slo check-config` on the generated config at build time. It needs no kernel, root or network, so it works in the sandbox; turn it off only to work around a checker bug.";
    };

    audit.retainMiB = lib.mkOption {
      type = lib.types.ints.between 16 1048576;
      default = 256;
      description = "Size cap of the audit trail in /var/lib/scx-slo/audit, MiB. Past it the oldest 8 MiB files are removed after a rotation and the removal is recorded in the trail; `scx-slo audit verify` checks the chain from the first kept entry (docs/operations.md). At least 16: the file being written and the one before it.";
    };

    backup = {
      enable = lib.mkEnableOption "periodic backups of what scx-slod knows: state.json (learned budgets, overrides, the breaker) and the audit trail, with the config they belong to, as one checksummed archive (`scx-slo backup`; restore with `scx-slo restore`, docs/operations.md)";
      directory = lib.mkOption {
        type = lib.types.strMatching "/[A-Za-z0-9._/-]+";
        default = "/var/backup/scx-slo";
        example = "/srv/backup/scx-slo";
        description = "Where the archives go (`scx-slo-backup-<ms>.tar`, mode 0600; the directory is created 0700). An absolute path of letters, digits and `._/-` only: it is passed to the command line as one word. Ship it off the host for the backups to outlive the disk.";
      };
      interval = lib.mkOption {
        type = lib.types.strMatching "[A-Za-z0-9 :*,./~-]+";
        default = "daily";
        example = "hourly";
        description = "When to back up: a systemd calendar expression (`OnCalendar=`, systemd.time(7)). A missed run (the host was off) runs at the next boot. An expression systemd cannot parse leaves the timer inactive, logged when the configuration is switched to.";
      };
      retain = lib.mkOption {
        type = lib.types.ints.between 1 1000;
        default = 7;
        example = 30;
        description = "How many archives to keep in `directory`: after each backup the oldest beyond this many are removed (only files named `scx-slo-backup-*.tar`).";
      };
    };

    metrics = {
      enable = lib.mkEnableOption "the Prometheus endpoint of scx-slod (`/metrics`, docs/metrics.md)";
      listenAddress = lib.mkOption {
        type = lib.types.str;
        default = "127.0.0.1";
        example = "0.0.0.0";
        description = "Address the endpoint binds to. Loopback by default: set it (and `openFirewall`) to let a remote Prometheus scrape.";
      };
      port = lib.mkOption {
        type = lib.types.port;
        default = 9638;
        description = "TCP port of the endpoint.";
      };
      openFirewall = lib.mkOption {
        type = lib.types.bool;
        default = false;
        description = "Open `port` in the firewall.";
      };
      alertRules = lib.mkOption {
        type = lib.types.bool;
        default = config.services.prometheus.enable or false;
        defaultText = lib.literalExpression "config.services.prometheus.enable";
        description = "When this host runs Prometheus: add a scrape job for the endpoint and the rules `scx-slo rules` generates from the targets' SLOs (recording rules and burn-rate alerts) to `services.prometheus.ruleFiles`.";
      };
    };

    kernel.pinned = lib.mkOption {
      type = lib.types.bool;
      default = enforcing;
      defaultText = lib.literalExpression ''config.services.scxSlo.mode == "enforce"'';
      description = "Use the 6.12 kernel enforce mode is supported on (`linuxPackages_6_12`, sched_ext and BTF on) unless the configuration picks another. It is set below `lib.mkDefault`, so any other module's choice (a hardware profile's `mkDefault` included) wins; enforce mode then asserts that choice is 6.12 or newer.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = !(config.services.scx.enable or false);
        message = "services.scxSlo and services.scx both load a sched_ext scheduler; disable one of them (services.scx.enable = false).";
      }
      {
        assertion = !(config.services.scx-loader.enable or false);
        message = "services.scxSlo and services.scx-loader both load a sched_ext scheduler; disable one of them.";
      }
      {
        assertion = !enforcing || lib.versionAtLeast kernelVersion "6.12";
        message = "services.scxSlo.mode = \"enforce\" needs a sched_ext kernel (6.12 or newer; verified on 6.12.117 and 6.17.13), but boot.kernelPackages is ${kernelVersion}; set boot.kernelPackages to a newer kernel (pkgs.linuxPackages_6_12 or later), or leave it unset elsewhere and keep services.scxSlo.kernel.pinned = true (any other module's mkDefault outranks the pinned kernel).";
      }
    ];

    warnings = lib.concatMap (
      name:
      lib.optional (
        lib.hasSuffix ".service" name && !(config.systemd.services ? ${unitStem name})
      ) "services.scxSlo.targets.\"${name}\": no systemd.services.${unitStem name} in this configuration; fine if a package provides it, otherwise the target never resolves."
    ) (lib.attrNames cfg.targets);

    # Below mkDefault (1000), above the option's own default (1500): a
    # hardware profile or any other module that mkDefaults a kernel wins
    # without a "defined multiple times" error, and the assertion above
    # still refuses one without sched_ext in enforce mode.
    boot.kernelPackages = lib.mkIf cfg.kernel.pinned (lib.mkOverride 1100 pkgs.linuxPackages_6_12);

    environment.etc."scx-slo/config.json".source = checkedConfig;
    environment.systemPackages = [ cfg.package ];
    # The bus policy: anyone reads, root and group scx-slo call mutating methods.
    services.dbus.packages = [ cfg.package ];

    users.groups.scx-slo = { };

    networking.firewall.allowedTCPPorts = lib.mkIf (cfg.metrics.enable && cfg.metrics.openFirewall) [ cfg.metrics.port ];

    services.prometheus = lib.mkIf (cfg.metrics.enable && cfg.metrics.alertRules) {
      ruleFiles = [ ruleFile ];
      scrapeConfigs = [
        {
          job_name = "scx-slo";
          static_configs = [ { targets = [ listen ]; } ];
        }
      ];
    };

    # Backups read the daemon's files while it runs (docs/operations.md):
    # root for the 0700 state directory, no capabilities, no network.
    systemd.services.scx-slo-backup = lib.mkIf cfg.backup.enable {
      description = "scx-slo: back up state.json and the audit trail";
      documentation = [ "https://github.com/scx-slo/scx-slo/tree/main/docs/operations.md" ];
      serviceConfig = {
        Type = "oneshot";
        ExecStart = "${cfg.package}/bin/scx-slo backup --dir ${cfg.backup.directory} --retain ${toString cfg.backup.retain}";
        CapabilityBoundingSet = [ "" ];
        NoNewPrivileges = true;
        ProtectSystem = "full";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        PrivateNetwork = true;
        ProtectKernelModules = true;
        ProtectKernelTunables = true;
        ProtectControlGroups = true;
        RestrictAddressFamilies = [ "AF_UNIX" ];
        SystemCallFilter = [ "@system-service" ];
        UMask = "0077";
      };
    };
    systemd.timers.scx-slo-backup = lib.mkIf cfg.backup.enable {
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnCalendar = cfg.backup.interval;
        Persistent = true;
        RandomizedDelaySec = "5m";
      };
    };

    systemd.services.scx-slod = {
      description = "scx-slo: latency SLOs kept by a sched_ext scheduler";
      documentation = [ "https://github.com/scx-slo/scx-slo/tree/main/docs" ];
      wantedBy = [ "multi-user.target" ];
      after = [ "systemd-journald.socket" ];
      # switch-to-configuration reloads a unit whose file changed only in
      # X-Reload-Triggers and restarts it on any other change, so the
      # load-time sections go into restartTriggers (a restart) and the whole
      # file into reloadTriggers (a reload when nothing load-time changed).
      reloadTriggers = [ checkedConfig ];
      restartTriggers = [ (builtins.toJSON loadTimeConfig) ];
      unitConfig.ConditionPathIsDirectory = lib.mkIf enforcing "/sys/kernel/sched_ext";
      # Stops a crash loop (Restart=on-failure every 2 s) after 10 starts in
      # 5 minutes, each of which loads and ejects the scheduler. Deliberate
      # starts count too: every switch-to-configuration that restarts the
      # daemon, a deploy and its rollback. 5 left no room for a day of
      # rollouts and was hit by checks/nixos/reload.nix's 7 starts;
      # crates/scx-slo/tests/nix.rs counts each test's starts against this.
      startLimitBurst = 10;
      startLimitIntervalSec = 300;
      serviceConfig = {
        Type = "notify";
        NotifyAccess = "main";
        BusName = "org.scxslo1";
        ExecStart = "${cfg.package}/bin/scx-slod --config /etc/scx-slo/config.json --status-file /run/scx-slo/status.json --state-file /var/lib/scx-slo/state.json --audit-retain-mib ${toString cfg.audit.retainMiB} --dbus required --metrics-listen ${
          if cfg.metrics.enable then listen else "off"
        }";
        # Through the control plane: the daemon validates the new file whole,
        # keeps the running generation if it is bad, and the reload fails
        # with the checker's message.
        ExecReload = "${cfg.package}/bin/scx-slo reload";
        Restart = "on-failure";
        RestartSec = "2s";
        WatchdogSec = "30s";
        RuntimeDirectory = "scx-slo";
        # An operator's Disable is also kept in /run/scx-slo/disabled, so a
        # restart before the state disk takes the save stays off
        # (crates/scx-slod/src/disable_marker.rs): the directory must
        # survive every stop and start in this boot (Restart=, systemctl
        # restart, a stop then a start, and nixos-rebuild switch, which
        # stops a changed unit and starts the new one). A reboot clears
        # /run, and state.json decides then. A stale status.json left by a
        # stopped daemon is too old for `scx-slo health`, and a stale
        # control.sock is replaced at start.
        RuntimeDirectoryPreserve = "yes";
        StateDirectory = "scx-slo";
        # The operator socket (/run/scx-slo/control.sock, mode 0660) is given
        # to group scx-slo; without CAP_CHOWN the daemon may do that only as
        # a member of the group.
        SupplementaryGroups = [ "scx-slo" ];

        # Loading BPF and switching other processes' policy needs these; nothing else.
        CapabilityBoundingSet = [
          "CAP_BPF"
          "CAP_PERFMON"
          "CAP_SYS_ADMIN"
          "CAP_SYS_RESOURCE"
          "CAP_SYS_NICE"
        ];
        NoNewPrivileges = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        # No network at all unless the metrics endpoint is on or a target's
        # histogram is scraped (a private namespace has its own loopback,
        # where the services are not).
        PrivateNetwork = !needsNetwork;
        ProtectHostname = true;
        ProtectClock = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectKernelTunables = true;
        ProtectControlGroups = true;
        # AF_UNIX for the system bus; IP only for the metrics endpoint and
        # the scrapes.
        RestrictAddressFamilies = [
          "AF_UNIX"
        ]
        ++ lib.optionals needsNetwork [
          "AF_INET"
          "AF_INET6"
        ];
        # Scrapes without the metrics endpoint: loopback is all it may reach.
        IPAddressDeny = lib.mkIf (scrapes && !cfg.metrics.enable) "any";
        IPAddressAllow = lib.mkIf (scrapes && !cfg.metrics.enable) "localhost";
        RestrictNamespaces = true;
        # systemd's RestrictRealtime= filter lets sched_setscheduler() set
        # only SCHED_OTHER, SCHED_BATCH and SCHED_IDLE, so it also refuses
        # SCHED_EXT (7), which partial mode gives the targets' threads:
        # measured in the systemd guest, the targets silently stayed on the
        # fair class. Kept on where no thread is switched (switch = "all",
        # observe, advisory).
        RestrictRealtime = !switchesThreads;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        MemoryDenyWriteExecute = true;
        SystemCallArchitectures = "native";
        SystemCallFilter = [
          "@system-service"
          "@resources"
          "bpf"
          "perf_event_open"
        ];
        UMask = "0077";

        # Bounds on what the daemon can take from the host, measured in the
        # systemd guest (docs/nixos.md) with at least 4x headroom: file
        # descriptors (BPF maps, programs and links, the bus, and at most 64
        # metrics connections: http.rs MAX_CONNECTIONS), threads (the
        # engine, the event reader, the metrics thread, the scraper, two
        # async workers and their blocking pool of at most 4, the disk
        # writer, the operator socket's thread and its 8 connections),
        # and memory (BPF maps are charged to the unit's cgroup).
        LimitNOFILE = 1024;
        TasksMax = 64;
        MemoryMax = "256M";
      };
    };
  };
}
