// SPDX-License-Identifier: GPL-2.0-only
//! Where scx-slo keeps its files and serves its metrics by default: the
//! daemon's flag defaults, the CLI's, the lab's and the NixOS module's
//! (modules/scx-slo.nix) are these. The module is Nix and cannot read Rust,
//! so a test below reads it and fails when one of its defaults differs.

/// The directory of the config.
pub const CONFIG_DIR: &str = "/etc/scx-slo";
/// The config the NixOS module generates and the daemon reads.
pub const CONFIG: &str = "/etc/scx-slo/config.json";
/// The daemon's state directory (systemd's `StateDirectory`).
pub const STATE_DIR: &str = "/var/lib/scx-slo";
/// Learned budgets, overrides and the breaker, kept across restarts.
pub const STATE_FILE: &str = "/var/lib/scx-slo/state.json";
/// The hash-chained audit trail.
pub const AUDIT_DIR: &str = "/var/lib/scx-slo/audit";
/// The daemon's runtime directory (systemd's `RuntimeDirectory`).
pub const RUNTIME_DIR: &str = "/run/scx-slo";
/// The status document, rewritten every scan (readable without D-Bus).
pub const STATUS_FILE: &str = "/run/scx-slo/status.json";
/// The operator socket: the control interface peer to peer, for root and
/// group `scx-slo` only, apart from the system bus (no flood on the bus
/// reaches it). `scx-slo` tries it first.
pub const CONTROL_SOCKET: &str = "/run/scx-slo/control.sock";
/// The address the metrics endpoint binds to: loopback, so a remote scrape
/// is an operator's explicit choice.
pub const METRICS_ADDRESS: &str = "127.0.0.1";
/// The metrics endpoint's TCP port.
pub const METRICS_PORT: u16 = 9638;
/// [`METRICS_ADDRESS`]`:`[`METRICS_PORT`], as the daemon's flag takes it.
pub const METRICS_LISTEN: &str = "127.0.0.1:9638";

#[cfg(test)]
mod tests {
    use super::*;

    fn module() -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../modules/scx-slo.nix");
        std::fs::read_to_string(path).expect("reading modules/scx-slo.nix")
    }

    /// The `default = ...;` of the option declared as `name = lib.mkOption`.
    fn option_default<'a>(nix: &'a str, name: &str) -> &'a str {
        let decl = &nix[nix.find(&format!("{name} = lib.mkOption")).unwrap_or_else(|| panic!("no option {name}"))..];
        let default = &decl[decl.find("default = ").expect("a default") + "default = ".len()..];
        default[..default.find(';').expect("a ;")].trim()
    }

    #[test]
    fn the_paths_nest_as_their_directories_say() {
        assert!(STATE_FILE.starts_with(STATE_DIR) && AUDIT_DIR.starts_with(STATE_DIR));
        assert!(STATUS_FILE.starts_with(RUNTIME_DIR) && CONTROL_SOCKET.starts_with(RUNTIME_DIR) && CONFIG.starts_with(CONFIG_DIR));
        assert_eq!(METRICS_LISTEN, format!("{METRICS_ADDRESS}:{METRICS_PORT}"));
    }

    #[test]
    fn the_nixos_module_uses_the_same_defaults() {
        let nix = module();
        let etc = CONFIG.strip_prefix("/etc/").expect("the config is under /etc");
        assert!(nix.contains(&format!("environment.etc.\"{etc}\".source")), "the module writes {CONFIG}");
        let flags = format!("--config {CONFIG} --status-file {STATUS_FILE} --state-file {STATE_FILE} ");
        assert!(nix.contains(&flags), "the module's ExecStart passes {flags}");
        let state = STATE_DIR.strip_prefix("/var/lib/").expect("the state is under /var/lib");
        let runtime = RUNTIME_DIR.strip_prefix("/run/").expect("the runtime directory is under /run");
        assert!(nix.contains(&format!("StateDirectory = \"{state}\";")), "StateDirectory is {state}");
        assert!(nix.contains(&format!("RuntimeDirectory = \"{runtime}\";")), "RuntimeDirectory is {runtime}");
        assert_eq!(option_default(&nix, "listenAddress"), format!("\"{METRICS_ADDRESS}\""));
        assert_eq!(option_default(&nix, "port"), METRICS_PORT.to_string());
    }
}
