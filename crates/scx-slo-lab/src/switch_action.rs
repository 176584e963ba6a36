// SPDX-License-Identifier: GPL-2.0-only
//! switch-to-configuration's rule for a changed unit, which the NixOS module's
//! reload and restart triggers are designed around. The systemd guest applies
//! it to the units the module renders, and scx-slo's Nix tests check the
//! module against it: they include this file by path (`#[path]`), so both
//! use one definition without a library crate for a dozen lines.

/// The action for a unit whose file went from `old` to `new`: `none`;
/// `reload` when only X-Reload-Triggers changed; `restart` otherwise.
pub fn switch_action(old: &str, new: &str) -> &'static str {
    let strip = |u: &str| u.lines().filter(|l| !l.starts_with("X-Reload-Triggers=")).collect::<Vec<_>>().join("\n");
    if old == new {
        "none"
    } else if strip(old) == strip(new) {
        "reload"
    } else {
        "restart"
    }
}
