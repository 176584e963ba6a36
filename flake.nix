# SPDX-License-Identifier: GPL-2.0-only
{
  description = "scx-slo: latency SLOs for systemd units, kept by a sched_ext scheduler";

  inputs = {
    # A stable NixOS release with linuxPackages_6_12 (sched_ext, BTF).
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";
    deploy-rs = {
      url = "github:serokell/deploy-rs";
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
      system = "x86_64-linux";
      pkgs = import nixpkgs {
        inherit system;
        overlays = [ self.overlays.default ];
      };
      lib = nixpkgs.lib;

      host =
        path:
        lib.nixosSystem {
          inherit system;
          modules = [
            self.nixosModules.default
            path
          ];
        };

      # deploy-rs activation with a health gate: if scx-slod is not healthy
      # within 30 s, activation fails and deploy-rs rolls back.
      gatedActivation =
        nixos:
        deploy-rs.lib.${system}.activate.custom nixos.config.system.build.toplevel ''
          ./bin/switch-to-configuration switch
          ${pkgs.scx-slo}/bin/scx-slo health --wait 30s
        '';
    in
    {
      overlays.default = final: _prev: {
        scx-slo = final.callPackage ./nix/package.nix { };
      };

      packages.${system} = {
        scx-slo = pkgs.scx-slo;
        default = pkgs.scx-slo;
        # The kernel enforce mode is supported on: 6.12 with sched_ext and BTF.
        kernel = pkgs.linuxPackages_6_12.kernel;
      };

      nixosModules.default = {
        imports = [ ./modules/scx-slo.nix ];
        nixpkgs.overlays = [ self.overlays.default ];
      };

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
        };
        fleet-1 = {
          hostname = "fleet-1.example.internal";
          profiles.system = {
            user = "root";
            path = gatedActivation self.nixosConfigurations.fleet-1;
          };
        };
      };

      checks.${system} =
        let
          tests = import ./checks/nixos {
            inherit pkgs;
            module = self.nixosModules.default;
          };
        in
        tests
        // deploy-rs.lib.${system}.deployChecks self.deploy
        // {
          package = pkgs.scx-slo;
          # A bad option set must fail the build with the checker's message.
          bad-config =
            let
              failed = pkgs.testers.testBuildFailure
                (host ./checks/nixos/bad-config-host.nix).config.environment.etc."scx-slo/config.json".source;
            in
            pkgs.runCommand "scx-slo-bad-config-fails" { } ''
              grep -q 'targets."api.service".budget.runtime: 12ms exceeds period 10ms' ${failed}/testBuildFailure.log
              grep -q 'latency budgets reserve' ${failed}/testBuildFailure.log
              touch $out
            '';
        };

      devShells.${system}.default = pkgs.mkShell {
        inputsFrom = [ pkgs.scx-slo ];
        packages = [
          pkgs.cargo
          pkgs.rustc
          pkgs.clippy
          pkgs.rustfmt
          pkgs.bpftools
          pkgs.qemu
          pkgs.busybox
          pkgs.cpio
          pkgs.nixfmt-rfc-style
          deploy-rs.packages.${system}.default
        ];
        env.BPF_CLANG = lib.getExe pkgs.llvmPackages_19.clang-unwrapped;
      };

      formatter.${system} = pkgs.nixfmt-rfc-style;
    };
}
