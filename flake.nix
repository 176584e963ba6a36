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
      pkgs = nixpkgs.legacyPackages.${system};
      lib = nixpkgs.lib;
      scx-slo = pkgs.callPackage ./nix/package.nix { };

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
        inherit scx-slo;
      };
    in
    {
      overlays.default = final: _prev: {
        scx-slo = final.callPackage ./nix/package.nix { };
      };

      packages.${system} = {
        inherit scx-slo;
        default = scx-slo;
        # The kernel enforce mode is supported on: 6.12 with sched_ext and BTF.
        kernel = pkgs.linuxPackages_6_12.kernel;
      };

      nixosModules.default = import ./modules/flake.nix self;

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
          package = scx-slo;
          # A bad option set must fail the build with the checker's message.
          bad-config =
            let
              # The checker's own words, taken from a real run by
              # crates/scx-slo/tests/nix.rs.
              expectedLines = builtins.filter (line: line != "" && !lib.hasPrefix "#" line) (
                lib.splitString "\n" (builtins.readFile ./checks/nixos/bad-config.expected)
              );
              failed = pkgs.testers.testBuildFailure
                (host ./checks/nixos/bad-config-host.nix).config.environment.etc."scx-slo/config.json".source;
            in
            pkgs.runCommand "scx-slo-bad-config-fails" { } ''
              ${lib.concatMapStrings (line: ''
                grep -qF -- ${lib.escapeShellArg line} ${failed}/testBuildFailure.log
              '') expectedLines}
              touch $out
            '';
        };

      devShells.${system}.default = pkgs.mkShell {
        inputsFrom = [ scx-slo ];
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
