// SPDX-License-Identifier: GPL-2.0-only
//! The Grafana dashboard `scx-slo dashboard` prints: a scheduler-health row
//! (state, mode, breaker, ejections, probe cost against its budget, the
//! daemon's refusals), an enforce-vs-observe comparison, and a row per
//! latency target. It reads the series [`crate::rules`] records.

use serde_json::{json, Value};

use crate::config::{Class, Config};
use crate::rules::sel;

fn panel(id: u32, title: &str, kind: &str, grid: (u32, u32, u32, u32), targets: Value, extra: Value) -> Value {
    let mut p = json!({
        "id": id,
        "title": title,
        "type": kind,
        "datasource": { "type": "prometheus", "uid": "${datasource}" },
        "gridPos": { "x": grid.0, "y": grid.1, "w": grid.2, "h": grid.3 },
        "targets": targets,
    });
    if let (Some(p), Some(extra)) = (p.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            p.insert(k.clone(), v.clone());
        }
    }
    p
}

/// The scheduler-health row: is scx-slo running, in which mode, has the
/// kernel ejected it or the breaker stopped it, what the probes cost against
/// their budget, what the daemon refused; then p99 queue latency per unit
/// labelled with the mode it was measured in, so enforce and observe
/// periods of the same unit sit side by side.
/// One health panel: title, kind, targets, field config, (width, height).
type PanelSpec<'a> = (&'a str, &'a str, Value, Value, (u32, u32));

fn health_row(panels: &mut Vec<Value>, id: &mut u32, y: &mut u32) {
    panels.push(json!({ "id": *id, "type": "row", "title": "Scheduler health", "collapsed": false, "gridPos": { "x": 0, "y": *y, "w": 24, "h": 1 } }));
    *id += 1;
    *y += 1;
    let specs: [PanelSpec; 7] = [
        (
            "State",
            "state-timeline",
            json!([{ "expr": "scx_slo_state == 1", "legendFormat": "{{instance}} {{state}}" }]),
            json!({}),
            (0, 4),
        ),
        (
            "Mode",
            "state-timeline",
            json!([{ "expr": "scx_slo_mode == 1", "legendFormat": "{{instance}} {{mode}}" }]),
            json!({}),
            (4, 4),
        ),
        (
            "Breaker open",
            "stat",
            json!([{ "expr": "max(scx_slo_breaker_open)", "legendFormat": "open" }]),
            json!({}),
            (8, 2),
        ),
        (
            "Ejections (1h)",
            "stat",
            json!([{ "expr": "sum(increase(scx_slo_scheduler_exits_total[1h]))", "legendFormat": "ejections" }]),
            json!({}),
            (10, 2),
        ),
        (
            "Probe cost vs budget (BPF CPU, share of one CPU)",
            "timeseries",
            json!([
                { "expr": "scx_slo_probe_overhead_ratio", "legendFormat": "{{instance}} cost" },
                { "expr": "scx_slo_probe_overhead_budget_ratio", "legendFormat": "{{instance}} budget" }
            ]),
            json!({ "fieldConfig": { "defaults": { "unit": "percentunit" } } }),
            (12, 4),
        ),
        (
            "Refusals and losses / s",
            "timeseries",
            json!([
                { "expr": "sum(rate(scx_slo_reload_failures_total[$__rate_interval]))", "legendFormat": "reloads refused" },
                { "expr": "sum(rate(scx_slo_idempotency_conflicts_total[$__rate_interval]))", "legendFormat": "idempotency conflicts" },
                { "expr": "sum(rate(scx_slo_audit_append_failures_total[$__rate_interval]))", "legendFormat": "audit appends failed" },
                { "expr": "sum(rate(scx_slo_events_dropped_total[$__rate_interval]))", "legendFormat": "events dropped" }
            ]),
            json!({}),
            (16, 4),
        ),
        (
            "p99 queue latency by mode (enforce vs observe)",
            "timeseries",
            json!([{
                "expr": "histogram_quantile(0.99, sum by (unit, mode, le) (rate(scx_slo_queue_latency_seconds_bucket[$__rate_interval]) * on (instance, job) group_left (mode) (scx_slo_mode == 1)))",
                "legendFormat": "{{unit}} ({{mode}})"
            }]),
            json!({ "fieldConfig": { "defaults": { "unit": "s" } } }),
            (20, 4),
        ),
    ];
    for (title, kind, targets, extra, (x, w)) in specs {
        panels.push(panel(*id, title, kind, (x, *y, w, 8), targets, extra));
        *id += 1;
    }
    *y += 8;
}

/// A Grafana dashboard: the scheduler-health row, then per latency target a
/// row with the queue-latency heatmap, p99 against the objective (the SLO's
/// p99, else the deadline), misses, budget use and, for a target with an
/// `slo` block, the error budget left: `scx-slo rules` records that series
/// only for SLO targets, so without one the panel could never show data.
pub fn grafana_dashboard(config: &Config) -> Value {
    let mut panels = Vec::new();
    let mut id = 1;
    let mut y = 0;
    health_row(&mut panels, &mut id, &mut y);
    for t in config.targets.iter().filter(|t| t.class == Class::Latency) {
        let unit = t.key.as_str();
        let s = sel(unit);
        let slo_p99 = t.slo.and_then(|s| s.latency.p99);
        let objective = slo_p99.or(t.deadline).map_or(0.0, |d| d.as_ns() as f64 / 1e9);
        let objective_legend = if slo_p99.is_some() { "objective" } else { "deadline" };
        panels.push(json!({ "id": id, "type": "row", "title": unit, "collapsed": false, "gridPos": { "x": 0, "y": y, "w": 24, "h": 1 } }));
        id += 1;
        y += 1;
        let mut specs: Vec<(&str, &str, Value, Value)> = vec![
            (
                "Queue latency (wakeup to run)",
                "heatmap",
                json!([{ "expr": format!("sum by (le) (rate(scx_slo_queue_latency_seconds_bucket{s}[$__rate_interval]))"), "format": "heatmap", "legendFormat": "{{le}}" }]),
                json!({ "options": { "calculate": false, "yAxis": { "unit": "s" } } }),
            ),
            (
                "p99 queue latency vs objective",
                "timeseries",
                json!([
                    { "expr": format!("histogram_quantile(0.99, sum by (le) (rate(scx_slo_queue_latency_seconds_bucket{s}[$__rate_interval])))"), "legendFormat": "p99" },
                    { "expr": format!("vector({objective})"), "legendFormat": objective_legend }
                ]),
                json!({ "fieldConfig": { "defaults": { "unit": "s" } } }),
            ),
            (
                "Deadline misses / s",
                "timeseries",
                json!([{ "expr": format!("sum(rate(scx_slo_deadline_misses_total{s}[$__rate_interval]))"), "legendFormat": "misses" }]),
                json!({}),
            ),
            (
                "Budget use",
                "timeseries",
                json!([{ "expr": format!("scx_slo_budget_utilization{s}"), "legendFormat": "used / budget" }]),
                json!({ "fieldConfig": { "defaults": { "unit": "percentunit" } } }),
            ),
            (
                "Error budget left",
                "stat",
                json!([{ "expr": format!("scx_slo:error_budget_remaining:ratio{s}"), "legendFormat": "left" }]),
                json!({ "fieldConfig": { "defaults": { "unit": "percentunit", "min": 0, "max": 1 } } }),
            ),
        ];
        if t.slo.is_none() {
            specs.pop();
        }
        let grid: &[(u32, u32)] = if specs.len() == 5 { &[(0, 6), (6, 6), (12, 4), (16, 4), (20, 4)] } else { &[(0, 6), (6, 6), (12, 6), (18, 6)] };
        for ((title, kind, targets, extra), (x, w)) in specs.into_iter().zip(grid.iter().copied()) {
            panels.push(panel(id, title, kind, (x, y, w, 8), targets, extra));
            id += 1;
        }
        y += 8;
    }
    json!({
        "title": "scx-slo",
        "uid": "scx-slo",
        "tags": ["scx-slo", "slo"],
        "schemaVersion": 39,
        "time": { "from": "now-6h", "to": "now" },
        "refresh": "30s",
        "templating": { "list": [{ "name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus" }] },
        "panels": panels,
    })
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_health_row_then_a_row_and_its_panels_per_latency_target() {
        let config = crate::load_str(include_str!("../../../examples/enforce.json"), None).unwrap();
        let dash = grafana_dashboard(&config);
        let panels = dash["panels"].as_array().unwrap();
        // api.service has an SLO (5 panels), worker.service none (4: no
        // error budget to show).
        assert_eq!(panels.len(), 8 + 6 + 5);
        assert_eq!(panels[0]["title"], "Scheduler health");
        let ids: std::collections::BTreeSet<u64> = panels.iter().filter_map(|p| p["id"].as_u64()).collect();
        assert_eq!(ids.len(), panels.len(), "ids are unique");
        // No two panels overlap on the grid.
        let boxes: Vec<(u64, u64, u64, u64)> = panels
            .iter()
            .map(|p| {
                let g = &p["gridPos"];
                (g["x"].as_u64().unwrap(), g["y"].as_u64().unwrap(), g["w"].as_u64().unwrap(), g["h"].as_u64().unwrap())
            })
            .collect();
        for (i, a) in boxes.iter().enumerate() {
            assert!(a.0 + a.2 <= 24, "panel {i} past the grid's width");
            for b in &boxes[i + 1..] {
                let apart = a.0 + a.2 <= b.0 || b.0 + b.2 <= a.0 || a.1 + a.3 <= b.1 || b.1 + b.3 <= a.1;
                assert!(apart, "{a:?} overlaps {b:?}");
            }
        }
    }
}
