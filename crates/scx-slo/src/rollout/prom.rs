// SPDX-License-Identifier: GPL-2.0-only
//! Prometheus's HTTP API (`/api/v1/query`, `/api/v1/query_range`) through
//! the project's one bounded HTTP client: a whole-request deadline, a
//! bounded body, and at most [`MAX_SERIES`] series of at most
//! [`MAX_POINTS`] points each, checked before anything is used.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use scx_slo_api::scrape::fetch::{get_text, resolve_url};
use scx_slo_api::scrape::Timeouts;
use serde::Deserialize;

/// Largest reply body read.
pub const MAX_BODY_BYTES: u64 = 8 << 20;
/// Most series in one reply.
pub const MAX_SERIES: usize = 2000;
/// Most points of one range series (Prometheus's own cap is 11,000).
pub const MAX_POINTS: usize = 11_000;

/// One series: its labels and its (unix seconds, value) points.
///
/// In the rollout log its points are `[time, "value"]` as in Prometheus's
/// own API, so `NaN` and `±Inf` (which JSON numbers cannot hold) read back.
#[derive(Clone, Debug, PartialEq, serde::Serialize, Deserialize)]
pub struct Series {
    /// The series' labels.
    pub labels: BTreeMap<String, String>,
    /// Points, oldest first (one for an instant query).
    #[serde(serialize_with = "points_to_text", deserialize_with = "points_from_text")]
    pub points: Vec<(f64, f64)>,
}

/// Points as Prometheus writes them: `[time, "value"]`.
fn points_to_text<S: serde::Serializer>(points: &[(f64, f64)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(points.iter().map(|(t, v)| (t, text(*v))))
}

/// Points from `[time, "value"]`.
fn points_from_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(f64, f64)>, D::Error> {
    let raw = Vec::<(f64, String)>::deserialize(d)?;
    raw.into_iter().map(|(t, v)| value(&v).map(|v| (t, v)).map_err(serde::de::Error::custom)).collect()
}

/// A Prometheus server.
pub struct Prometheus {
    addr: SocketAddr,
    host: String,
    prefix: String,
    timeouts: Timeouts,
}

#[derive(Deserialize)]
struct Reply {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct RawSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    value: Option<(f64, String)>,
    #[serde(default)]
    values: Option<Vec<(f64, String)>>,
}

/// Now, in unix seconds.
pub fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// `s` percent-encoded for a query string (everything but unreserved bytes).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Prometheus {
    /// A client of `url` (`http://host:port[/prefix]`), each request bounded by `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Prometheus> {
        let (addr, host, path) = resolve_url(url).context("the Prometheus URL")?;
        if path.contains('?') {
            bail!("the Prometheus URL {:?} has a query string: give the server's address and any path prefix only", url.chars().take(80).collect::<String>());
        }
        let prefix = path.trim_end_matches('/').to_string();
        Ok(Prometheus { addr, host, prefix, timeouts: Timeouts { io: timeout, total: timeout } })
    }

    fn get(&self, path_and_query: &str) -> Result<Vec<Series>> {
        let path = format!("{}{path_and_query}", self.prefix);
        let body = get_text(self.addr, &self.host, &path, self.timeouts, "scx-slo-rollout", MAX_BODY_BYTES)?;
        parse_reply(&body)
    }

    /// An instant query at `time` (unix seconds).
    pub fn query(&self, query: &str, time: f64) -> Result<Vec<Series>> {
        self.get(&format!("/api/v1/query?query={}&time={time:.3}", encode(query))).with_context(|| format!("query {}", short(query)))
    }

    /// A range query from `start` to `end` every `step`.
    pub fn query_range(&self, query: &str, start: f64, end: f64, step: Duration) -> Result<Vec<Series>> {
        let points = ((end - start) / step.as_secs_f64()).ceil() as usize + 1;
        if points > MAX_POINTS {
            bail!("query_range {}: {points} points a series, over {MAX_POINTS}: raise prometheus.step", short(query));
        }
        self.get(&format!("/api/v1/query_range?query={}&start={start:.3}&end={end:.3}&step={}", encode(query), step.as_secs_f64()))
            .with_context(|| format!("query_range {}", short(query)))
    }
}

/// A query's first 160 characters, for messages.
pub fn short(query: &str) -> String {
    let mut s: String = query.chars().take(160).collect();
    if s.len() < query.len() {
        s.push('…');
    }
    s
}

/// `v` as Prometheus writes a sample value (`NaN`, `+Inf`, `-Inf`, or the
/// shortest text that reads back as the same number).
fn text(v: f64) -> String {
    match v {
        v if v.is_nan() => "NaN".into(),
        f64::INFINITY => "+Inf".into(),
        f64::NEG_INFINITY => "-Inf".into(),
        v => v.to_string(),
    }
}

fn value(text: &str) -> Result<f64> {
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        t => t.parse().map_err(|_| anyhow!("the sample value {:?} is not a number", t.chars().take(40).collect::<String>())),
    }
}

/// A reply's series: a `success` with a vector or matrix, within the limits.
pub fn parse_reply(body: &str) -> Result<Vec<Series>> {
    let reply: Reply = serde_json::from_str(body).context("the reply is not Prometheus's API JSON")?;
    if reply.status != "success" {
        bail!("Prometheus said {}: {}", reply.status.chars().take(20).collect::<String>(), reply.error.unwrap_or_default().chars().take(200).collect::<String>());
    }
    let data = reply.data.ok_or_else(|| anyhow!("a success without data"))?;
    if data.result_type != "vector" && data.result_type != "matrix" {
        bail!("a {} result, not a vector or matrix", data.result_type.chars().take(20).collect::<String>());
    }
    let serde_json::Value::Array(items) = data.result else { bail!("the result is not a list") };
    if items.len() > MAX_SERIES {
        bail!("{} series, over {MAX_SERIES}: narrow the query", items.len());
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let raw: RawSeries = serde_json::from_value(item).context("a series")?;
        let points: Vec<(f64, String)> = match (raw.value, raw.values) {
            (Some(v), None) => vec![v],
            (None, Some(vs)) => vs,
            _ => bail!("a series without exactly one of value and values"),
        };
        if points.len() > MAX_POINTS {
            bail!("a series of {} points, over {MAX_POINTS}", points.len());
        }
        let points = points.into_iter().map(|(t, v)| value(&v).map(|v| (t, v))).collect::<Result<_>>()?;
        out.push(Series { labels: raw.metric, points });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_and_matrices_parse_and_errors_are_said() {
        let v = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"unit":"a"},"value":[1.5,"0.25"]}]}}"#;
        let s = parse_reply(v).unwrap();
        assert_eq!(s[0].labels["unit"], "a");
        assert_eq!(s[0].points, [(1.5, 0.25)]);
        let m = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"NaN"],[2,"+Inf"]]}]}}"#;
        let s = parse_reply(m).unwrap();
        assert!(s[0].points[0].1.is_nan() && s[0].points[1].1.is_infinite());
        let e = parse_reply(r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#).unwrap_err();
        assert!(e.to_string().contains("parse error"), "{e}");
        assert!(parse_reply(r#"{"status":"success","data":{"resultType":"scalar","result":[1,"1"]}}"#).is_err());
        assert!(parse_reply("<html>").is_err());
    }

    #[test]
    fn a_series_reads_back_as_written_nan_and_infinities_included() {
        let s = Series { labels: [("unit".to_string(), "a".to_string())].into(), points: vec![(1.0, 0.25), (2.0, f64::INFINITY), (3.0, f64::NEG_INFINITY), (4.0, 1e-7)] };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"{"labels":{"unit":"a"},"points":[[1.0,"0.25"],[2.0,"+Inf"],[3.0,"-Inf"],[4.0,"0.0000001"]]}"#);
        assert_eq!(serde_json::from_str::<Series>(&json).unwrap(), s);
        let nan: Series = serde_json::from_str(r#"{"labels":{},"points":[[1,"NaN"]]}"#).unwrap();
        assert!(nan.points[0].1.is_nan());
    }

    #[test]
    fn too_many_series_are_refused_before_use() {
        let one = r#"{"metric":{},"value":[1,"1"]}"#;
        let body = format!(r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#, vec![one; MAX_SERIES + 1].join(","));
        assert!(parse_reply(&body).unwrap_err().to_string().contains("over 2000"));
    }

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(encode(r#"up{instance=~"a|b"}"#), "up%7Binstance%3D~%22a%7Cb%22%7D");
    }
}
