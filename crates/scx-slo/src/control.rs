// SPDX-License-Identifier: GPL-2.0-only
//! The daemon commands: `status`, `list`, `explain`, `enable`, `disable`,
//! `reload`, `set-budget`, `reset-breaker`, over D-Bus (the system bus, or
//! `DBUS_SYSTEM_BUS_ADDRESS`), through the proxy scx-slod exports.

use scx_slod::dbus::ManagerProxyBlocking;
use serde_json::Value;

/// Exit code: the daemon refused or the call failed.
pub const REFUSED: u8 = 1;
/// Exit code: the daemon cannot be reached.
pub const UNREACHABLE: u8 = 3;

/// What to ask the daemon.
pub enum Call {
    /// Status (table or JSON).
    Status { json: bool },
    /// Targets (table or JSON).
    List { json: bool },
    /// One unit.
    Explain { unit: String },
    /// Load the scheduler.
    Enable { mode: String },
    /// Emergency stop.
    Disable { reason: String },
    /// Re-read the config.
    Reload,
    /// Budget override.
    SetBudget { unit: String, runtime_us: u64, period_us: u64, key: String },
    /// Remove a budget override.
    ClearBudget { unit: String },
    /// Close the breaker.
    ResetBreaker,
}

fn proxy() -> Result<(zbus::blocking::Connection, ()), String> {
    zbus::blocking::Connection::system()
        .map(|c| (c, ()))
        .map_err(|e| format!("cannot reach the system bus: {e}"))
}

fn describe(e: zbus::Error) -> (u8, String) {
    match e {
        zbus::Error::MethodError(name, msg, _) => {
            let name = name.as_str().to_string();
            let code = if name == "org.freedesktop.DBus.Error.ServiceUnknown" || name == "org.freedesktop.DBus.Error.NameHasNoOwner" {
                UNREACHABLE
            } else {
                REFUSED
            };
            let hint = if code == UNREACHABLE { " (is scx-slod running?)" } else { "" };
            (code, format!("{name}: {}{hint}", msg.unwrap_or_default()))
        }
        other => (UNREACHABLE, other.to_string()),
    }
}

/// Runs a call; prints the result; returns the exit code.
pub fn run(call: Call) -> u8 {
    let (conn, ()) = match proxy() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("scx-slo: {e}");
            return UNREACHABLE;
        }
    };
    let manager = match ManagerProxyBlocking::builder(&conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
    {
        Ok(m) => m,
        Err(e) => {
            eprintln!("scx-slo: {e}");
            return UNREACHABLE;
        }
    };
    let result = match call {
        Call::Status { json } => manager.status().map(|s| if json { s } else { status_table(&s) }),
        Call::List { json } => manager.list_targets().map(|s| if json { s } else { list_table(&s) }),
        Call::Explain { unit } => manager.explain(&unit).map(|s| pretty(&s)),
        Call::Enable { mode } => manager.enable(&mode),
        Call::Disable { reason } => manager.disable(&reason),
        Call::Reload => manager.reload(),
        Call::SetBudget { unit, runtime_us, period_us, key } => manager.set_budget(&unit, runtime_us, period_us, &key),
        Call::ClearBudget { unit } => manager.clear_budget(&unit),
        Call::ResetBreaker => manager.reset_breaker(),
    };
    match result {
        Ok(text) => {
            println!("{text}");
            0
        }
        Err(e) => {
            let (code, msg) = describe(e);
            eprintln!("scx-slo: {msg}");
            code
        }
    }
}

fn pretty(json: &str) -> String {
    serde_json::from_str::<Value>(json)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| json.to_string())
}

fn us(ns: &Value) -> String {
    ns.as_u64().map_or("-".into(), |n| if n == u64::MAX { ">4s".into() } else { format!("{}", n / 1000) })
}

/// The status document as an operator reads it.
pub fn status_table(json: &str) -> String {
    let Ok(s) = serde_json::from_str::<Value>(json) else { return json.to_string() };
    let mut out = format!(
        "state {}  mode {}  switch {}  generation {}  breaker {}\n",
        s["state"].as_str().unwrap_or("?"),
        s["mode"].as_str().unwrap_or("?"),
        s["switch"].as_str().unwrap_or("?"),
        s["generation"],
        if s["breaker"]["open"] == true { "OPEN" } else { "closed" },
    );
    if let Some(reason) = s["operator_disabled"].as_str() {
        out.push_str(&format!("disabled by an operator: {reason}\n"));
    }
    if let Some(e) = s["last_reload_error"].as_str() {
        out.push_str(&format!("last reload rejected: {e}\n"));
    }
    out.push_str(&format!("{:<28} {:<8} {:>9} {:>9} {:>8} {:>13}\n", "TARGET", "CLASS", "WAKEUPS", "JOBS", "MISSES", "RQ-P99<=US"));
    for t in s["targets"].as_array().into_iter().flatten() {
        let c = &t["stats"]["counters"];
        let resolved = !t["cgroup_id"].is_null();
        out.push_str(&format!(
            "{:<28} {:<8} {:>9} {:>9} {:>8} {:>13}{}\n",
            t["key"].as_str().unwrap_or("?"),
            t["class"].as_str().unwrap_or("?"),
            c["wakeups"].as_u64().map_or("-".into(), |v| v.to_string()),
            c["jobs"].as_u64().map_or("-".into(), |v| v.to_string()),
            c["deadline_misses"].as_u64().map_or("-".into(), |v| v.to_string()),
            us(&t["rq_delay_p99_le_ns"]),
            if resolved { "" } else { "  (no cgroup yet)" },
        ));
    }
    out.trim_end().to_string()
}

fn list_table(json: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(json) else { return json.to_string() };
    let mut out = format!("{:<28} {:<8} {:>8} {:>22} {:<}\n", "TARGET", "CLASS", "PRIORITY", "BUDGET", "CGROUP");
    for t in v.as_array().into_iter().flatten() {
        let budget = match (&t["budget"]["runtime"], &t["budget"]["period"]) {
            (Value::String(r), Value::String(p)) => format!("{r}/{p}{}", if t["override"] == true { " (override)" } else { "" }),
            _ => "-".into(),
        };
        out.push_str(&format!(
            "{:<28} {:<8} {:>8} {:>22} {}\n",
            t["key"].as_str().unwrap_or("?"),
            t["class"].as_str().unwrap_or("?"),
            t["priority"],
            budget,
            t["cgroup"].as_str().unwrap_or("(not running)"),
        ));
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table_shows_state_targets_and_unresolved_ones() {
        let doc = r#"{"state":"running","mode":"enforce","switch":"partial","generation":2,"breaker":{"open":false},
            "operator_disabled":null,"last_reload_error":"bad","targets":[
            {"key":"api.service","class":"latency","cgroup_id":5,"rq_delay_p99_le_ns":65536,
             "stats":{"counters":{"wakeups":10,"jobs":9,"deadline_misses":1}}},
            {"key":"x.service","class":"batch","cgroup_id":null,"stats":null}]}"#;
        let t = status_table(doc);
        assert!(t.contains("state running") && t.contains("generation 2") && t.contains("last reload rejected: bad"), "{t}");
        assert!(t.lines().any(|l| l.starts_with("api.service") && l.contains(" 10 ") && l.trim_end().ends_with("65")), "{t}");
        assert!(t.contains("(no cgroup yet)"), "{t}");
    }
}
