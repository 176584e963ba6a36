# SPDX-License-Identifier: GPL-2.0-only
#
# scx-slo: the daemon, the CLI and the BPF scheduler built into them.
# Dependencies come from Cargo.lock (no vendor hash to guess); the BPF object
# is compiled by the unwrapped clang (the cc-wrapper's hardening flags are not
# valid for the BPF target) against the vmlinux.h vendored in scx_cargo.
{
  lib,
  rustPlatform,
  llvmPackages_19,
  pkg-config,
  elfutils,
  zlib,
  installShellFiles,
}:
let
  manifest = (lib.importTOML ../Cargo.toml).workspace.package;
  sourceFiles = lib.fileset.unions [
    ../Cargo.toml
    ../Cargo.lock
    ../.cargo
    ../crates
    ../bpf
    ../examples
    ../data
    # Read by tests at compile time (include_str!) or run time.
    ../docs/org.scxslo1.Manager.xml
    ../docs/metrics.md
    ../docs/config.md
    ../docs/troubleshooting.md
    ../docs/control.md
    ../docs/security.md
    # The quick bench's stored run, which the release gate's tests read.
    ../checks/vm/baselines/bench-quick.json
  ];
in
rustPlatform.buildRustPackage {
  pname = "scx-slo";
  inherit (manifest) version;

  src = lib.fileset.toSource {
    root = ../.;
    fileset = sourceFiles;
  };
  # checks/nix/package-source copies exactly these files (evaluated with
  # nixpkgs' lib) and compiles the workspace's tests in the copy, so a file
  # the build or a test includes but the fileset leaves out fails CI.
  passthru = { inherit sourceFiles; };

  cargoLock.lockFile = ../Cargo.lock;

  nativeBuildInputs = [
    pkg-config
    llvmPackages_19.clang-unwrapped
    rustPlatform.bindgenHook
    installShellFiles
  ];
  buildInputs = [
    elfutils
    zlib
  ];

  env.BPF_CLANG = lib.getExe llvmPackages_19.clang-unwrapped;
  hardeningDisable = [
    "zerocallusedregs"
    "stackprotector"
  ];

  cargoBuildFlags = [
    "-p"
    "scx-slod"
    "-p"
    "scx-slo"
  ];
  # Unit, property and host tests; the VM checks run in checks/.
  cargoTestFlags = [ "--workspace" ];

  postInstall = ''
    install -Dm644 data/org.scxslo1.conf $out/share/dbus-1/system.d/org.scxslo1.conf
    install -Dm644 docs/org.scxslo1.Manager.xml $out/share/dbus-1/interfaces/org.scxslo1.Manager.xml
    installShellCompletion --cmd scx-slo \
      --bash <($out/bin/scx-slo completions bash) \
      --zsh <($out/bin/scx-slo completions zsh) \
      --fish <($out/bin/scx-slo completions fish)
    mkdir -p man
    $out/bin/scx-slo man man
    installManPage man/*.1
    # The digests the build recorded for the embedded BPF objects (docs/security.md):
    # what the running daemon reports (Status bpf_objects, the audit trail,
    # scx_slo_bpf_object_info) is compared with this file of the reviewed build.
    mkdir -p $out/share/scx-slo
    $out/bin/scx-slod --bpf-digests > $out/share/scx-slo/bpf-objects.json
  '';

  meta = {
    description = "Latency SLOs for systemd units, kept by a sched_ext scheduler";
    license = lib.licenses.gpl2Only;
    platforms = lib.platforms.linux;
    mainProgram = "scx-slo";
  };
}
