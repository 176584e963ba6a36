# SPDX-License-Identifier: GPL-2.0-only
{
  description = "scx-slo: latency SLOs for systemd units, kept by a sched_ext scheduler";

  inputs = {
    # The current stable NixOS release, with linuxPackages_6_12 (sched_ext,
    # BTF) and a rustc new enough for the workspace: nix/pinned-rustc.json
    # records its version, and crates/scx-slo/tests/nix.rs fails when the
    # workspace or Cargo.lock needs a newer one.
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";
    deploy-rs = {
      url = "github:serokell/deploy-rs";
      # One nixpkgs for the hosts and deploy-rs (flake.lock: ["nixpkgs"]).
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs =
    {
      self,
      nixpkgs,
      deploy-rs,
    }:
    let
      # The hosts are x86_64; the package, the module, the NixOS tests and
      # the dev shell are defined for aarch64-linux too (sched_ext and
      # libbpf run there). checks/nix/eval-flake.nix evaluates both offline.
      system = "x86_64-linux";
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (s: f s nixpkgs.legacyPackages.${s});
      lib = nixpkgs.lib;
      pkgs = nixpkgs.legacyPackages.${system};

      host =
        path:
        lib.nixosSystem {
          inherit system;
          modules = [
            self.nixosModules.default
            path
          ];
        };

      # deploy-rs activation with the health gate (nix/deploy.nix).
      gatedActivation = import ./nix/deploy.nix {
        inherit (deploy-rs.lib.${system}) activate;
        scx-slo = self.packages.${system}.scx-slo;
      };
      # deploy-rs's defaults, spelled out because the health gate relies on
      # them: a failed activation (the gate) is undone by autoRollback, a
      # lost connection after a successful one by magicRollback.
      rollback = {
        autoRollback = true;
        magicRollback = true;
      };
    in
    {
      overlays.default = final: _prev: {
        scx-slo = final.callPackage ./nix/package.nix { };
      };

      packages = forAllSystems (
        _: pkgs:
        let
          scx-slo = pkgs.callPackage ./nix/package.nix { };
        in
        {
          inherit scx-slo;
          default = scx-slo;
          # The kernel enforce mode is supported on: 6.12 with sched_ext and BTF.
          kernel = pkgs.linuxPackages_6_12.kernel;
        }
      );

      nixosModules.default = import ./modules/flake.nix self;

      # `scx-slo rollout`'s plan from this flake's deploy nodes:
      # pkgs.writeText "plan.json" (scx-slo.lib.rolloutPlan { stages = ...; ... }).
      lib.rolloutPlan = args: import ./nix/rollout-plan.nix ({ inherit (self.deploy) nodes; } // args);

      nixosConfigurations = {
        canary = host ./hosts/canary;
        fleet-1 = host ./hosts/fleet;
        test-vm = host ./hosts/test-vm;
      };

      deploy.nodes = {
        canary = {
          hostname = "canary.example.internal";
          profiles.system = {
            user = "root";
            path = gatedActivation self.nixosConfigurations.canary;
          };
        }
        // rollback;
        fleet-1 = {
          hostname = "fleet-1.example.internal";
          profiles.system = {
            user = "root";
            path = gatedActivation self.nixosConfigurations.fleet-1;
          };
        }
        // rollback;
      };

      checks = forAllSystems (
        s: pkgs:
        let
          tests = import ./checks/nixos {
            inherit pkgs;
            module = self.nixosModules.default;
          };
          # The bad-config host built for this system.
          badHost = lib.nixosSystem {
            system = s;
            modules = [
              self.nixosModules.default
              ./checks/nixos/bad-config-host.nix
            ];
          };
        in
        tests
        # The deploy nodes are x86_64 hosts.
        // lib.optionalAttrs (s == system) (deploy-rs.lib.${s}.deployChecks self.deploy)
        // {
          package = self.packages.${s}.scx-slo;
          # A bad option set must fail the build with the checker's message.
          bad-config =
            let
              # The checker's own words, taken from a real run by
              # crates/scx-slo/tests/nix.rs.
              expectedLines = builtins.filter (line: line != "" && !lib.hasPrefix "#" line) (
                lib.splitString "\n" (builtins.readFile ./checks/nixos/bad-config.expected)
              );
              failed = pkgs.testers.testBuildFailure badHost.config.environment.etc."scx-slo/config.json".source;
            in
            pkgs.runCommand "scx-slo-bad-config-fails" { } ''
              ${lib.concatMapStrings (line: ''
                grep -qF -- ${lib.escapeShellArg line} ${failed}/testBuildFailure.log
              '') expectedLines}
              touch $out
            '';
        }
      );

      devShells = forAllSystems (
        s: pkgs: {
          default = pkgs.mkShell {
            inputsFrom = [ self.packages.${s}.scx-slo ];
            packages = [
              pkgs.cargo
              pkgs.rustc
              pkgs.clippy
              pkgs.rustfmt
              pkgs.bpftools
              pkgs.qemu
              pkgs.busybox
              pkgs.cpio
              pkgs.nixfmt
              deploy-rs.packages.${s}.default
            ];
            env.BPF_CLANG = lib.getExe pkgs.llvmPackages_19.clang-unwrapped;
          };
        }
      );

      # nixfmt is the RFC 166 formatter (nixfmt-rfc-style is its old name).
      formatter = forAllSystems (_: pkgs: pkgs.nixfmt);
    };
}
