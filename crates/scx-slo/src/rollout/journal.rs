// SPDX-License-Identifier: GPL-2.0-only
//! The rollout log: JSON lines, appended and synced one at a time, so what
//! an operator's dead machine left behind says which stages were decided.
//! Re-running with the same log and plan resumes after the last stage that
//! proceeded; a log that ended (stopped or finished) is not run again.
//! A stage's `deploy_start` line, written before its first deploy command,
//! holds its gates' baseline, which a resumed stage reuses.
//!
//! Every line carries the rollout's correlation id. The deploy and rollback
//! commands get it as `SCX_SLO_ROLLOUT_ID` (and `{rollout_id}`), which is
//! how a host's own records of the same change can name it.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::gates::{Baseline, Check};

/// Largest log read back when resuming.
pub const MAX_LOG_BYTES: u64 = 64 << 20;
/// Longest line read back.
const MAX_LINE_BYTES: u64 = 8 << 20;

/// One command run against one node.
#[derive(Clone, Debug, Serialize)]
pub struct Ran {
    /// The node.
    pub node: String,
    /// The argv run.
    pub argv: Vec<String>,
    /// `ok`, `failed`, `timed out` or `not started`.
    pub outcome: String,
    /// The exit code, when the command exited.
    pub exit_code: Option<i32>,
    /// Wall time.
    pub seconds: f64,
}

/// A line of the log as written.
#[derive(Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Entry<'a> {
    /// A new rollout.
    Start {
        /// Correlation id.
        rollout_id: &'a str,
        /// The plan's name.
        plan: &'a str,
        /// The plan file's SHA-256.
        plan_sha256: &'a str,
        /// Unix seconds.
        time: f64,
        /// The stages in order.
        stages: Vec<&'a str>,
    },
    /// The same rollout picked up from its log.
    Resume {
        /// Correlation id.
        rollout_id: &'a str,
        /// Unix seconds.
        time: f64,
        /// The first stage run now.
        from_stage: &'a str,
    },
    /// A stage's deploy is about to start: its hosts before it, as the
    /// gates will compare with them (written and synced before the first
    /// deploy command runs).
    DeployStart {
        /// Correlation id.
        rollout_id: &'a str,
        /// The stage.
        stage: &'a str,
        /// Unix seconds.
        time: f64,
        /// Every gate's "before" answer.
        baseline: &'a Baseline,
    },
    /// A stage's deploy commands ran.
    Deployed {
        /// Correlation id.
        rollout_id: &'a str,
        /// The stage.
        stage: &'a str,
        /// Unix seconds.
        time: f64,
        /// Each node's command.
        commands: &'a [Ran],
    },
    /// A stage's decision, with every gate's queries and answers.
    Decision {
        /// Correlation id.
        rollout_id: &'a str,
        /// The stage.
        stage: &'a str,
        /// Unix seconds.
        time: f64,
        /// `proceed` or `rollback`.
        decision: &'a str,
        /// Why, one sentence each.
        reasons: &'a [String],
        /// The gates.
        checks: &'a [Check],
    },
    /// A stage's rollback commands ran.
    RolledBack {
        /// Correlation id.
        rollout_id: &'a str,
        /// The stage.
        stage: &'a str,
        /// Unix seconds.
        time: f64,
        /// Each node's command.
        commands: &'a [Ran],
    },
    /// The rollout ended.
    Finished {
        /// Correlation id.
        rollout_id: &'a str,
        /// Unix seconds.
        time: f64,
        /// `completed` or `stopped`.
        outcome: &'a str,
        /// The sentence for people.
        summary: &'a str,
    },
}

/// What a line says, as read back (other fields ignored).
#[derive(Deserialize)]
struct Line {
    event: String,
    rollout_id: String,
    #[serde(default)]
    plan_sha256: Option<String>,
    #[serde(default)]
    stage: Option<String>,
    #[serde(default)]
    decision: Option<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    baseline: Option<Baseline>,
}

/// An open log.
pub struct Journal {
    path: PathBuf,
    file: std::fs::File,
    /// The rollout's correlation id.
    pub rollout_id: String,
    /// Stages that proceeded, in order.
    pub done: Vec<String>,
    /// Whether the log was started before (a resume).
    pub resumed: bool,
    /// A stage decided `rollback` before the machine died: its rollback
    /// runs again and the rollout stops, never the stage's deploy.
    pub rolling_back: Option<String>,
    /// The last stage whose deploy started without a decision, with its
    /// baseline: a resumed run of that stage compares with it.
    pub baseline: Option<(String, Baseline)>,
    /// Stages deployed (a `deployed` line) without a decision: one of them
    /// without a `baseline` was deployed by a version that did not log it.
    pub deployed: Vec<String>,
}

fn new_id() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 12];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).context("reading /dev/urandom for the rollout id")?;
    Ok(format!("ro-{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

/// What an existing log holds.
struct Back {
    id: String,
    done: Vec<String>,
    /// A stage decided `rollback` whose rollback did not finish.
    rolling_back: Option<String>,
    /// The last `deploy_start`'s stage and baseline.
    baseline: Option<(String, Baseline)>,
    /// Stages with a `deployed` line and no decision.
    deployed: Vec<String>,
    /// The length of its complete lines.
    complete: u64,
}

/// What an existing log holds, if it holds anything.
fn read_back(path: &Path, plan_sha256: &str) -> Result<Option<Back>> {
    let meta = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        r => r.with_context(|| format!("reading the log {}", path.display()))?,
    };
    if !meta.is_file() {
        bail!("the log {} is not a regular file", path.display());
    }
    if meta.len() > MAX_LOG_BYTES {
        bail!("the log {} is over {} MiB", path.display(), MAX_LOG_BYTES >> 20);
    }
    if meta.len() == 0 {
        return Ok(None);
    }
    let mut reader = std::io::BufReader::new(std::fs::File::open(path).with_context(|| format!("opening the log {}", path.display()))?);
    let mut id = None;
    let mut done = Vec::new();
    let mut rolling_back = None;
    let mut baseline = None;
    let mut deployed: Vec<String> = Vec::new();
    let mut buf = Vec::new();
    let mut complete = 0u64;
    for n in 1.. {
        buf.clear();
        let read = std::io::Read::take(&mut reader, MAX_LINE_BYTES + 1).read_until(b'\n', &mut buf)?;
        if read == 0 {
            break;
        }
        if buf.len() as u64 > MAX_LINE_BYTES {
            bail!("{}:{n}: a line over {} MiB", path.display(), MAX_LINE_BYTES >> 20);
        }
        if !buf.ends_with(b"\n") {
            // The machine died while writing this line: it records nothing
            // that finished, and the stage it belongs to runs again.
            break;
        }
        complete += read as u64;
        let line: Line = serde_json::from_slice(&buf).with_context(|| format!("{}:{n}: not a rollout log line", path.display()))?;
        match (line.event.as_str(), &id) {
            ("start", None) => {
                if line.plan_sha256.as_deref() != Some(plan_sha256) {
                    bail!("{}: the log is of another plan (its SHA-256 differs): start a new log, or run the plan it was written for", path.display());
                }
                id = Some(line.rollout_id);
            }
            (_, None) => bail!("{}:{n}: the log does not begin with a start line", path.display()),
            (_, Some(i)) if *i != line.rollout_id => bail!("{}:{n}: another rollout id than the start line's", path.display()),
            ("deploy_start", _) => match (line.stage, line.baseline) {
                (Some(stage), Some(b)) => baseline = Some((stage, b)),
                _ => bail!("{}:{n}: a deploy_start line without its stage and baseline", path.display()),
            },
            ("deployed", _) => deployed.extend(line.stage),
            ("decision", _) => {
                deployed.retain(|s| Some(s) != line.stage.as_ref());
                if baseline.as_ref().map(|b| &b.0) == line.stage.as_ref() {
                    baseline = None;
                }
                if line.decision.as_deref() == Some("proceed") {
                    done.extend(line.stage);
                } else {
                    rolling_back = line.stage;
                }
            }
            ("finished", _) => bail!("{}: that rollout already ended ({}); start a new log", path.display(), line.summary.unwrap_or_default()),
            _ => {}
        }
    }
    Ok(id.map(|id| Back { id, done, rolling_back, baseline, deployed, complete }))
}

impl Journal {
    /// Opens `path` for `plan_sha256`: resumes a log of the same plan, or starts one.
    pub fn open(path: &Path, plan_sha256: &str) -> Result<Journal> {
        let back = read_back(path, plan_sha256)?;
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("opening the log {}", path.display()))?;
        let Some(back) = back else {
            // No complete line: a start line cut by a crash goes, or the
            // new start line would be appended to it and every later
            // resume would refuse the log.
            file.set_len(0).with_context(|| format!("dropping the cut first line of {}", path.display()))?;
            return Ok(Journal {
                path: path.to_path_buf(),
                file,
                rollout_id: new_id()?,
                done: Vec::new(),
                resumed: false,
                rolling_back: None,
                baseline: None,
                deployed: Vec::new(),
            });
        };
        // A line cut by a crash is dropped, so the next one starts on a line of its own.
        file.set_len(back.complete).with_context(|| format!("dropping the cut last line of {}", path.display()))?;
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            rollout_id: back.id,
            done: back.done,
            resumed: true,
            rolling_back: back.rolling_back,
            baseline: back.baseline,
            deployed: back.deployed,
        })
    }

    /// Appends one line and syncs it: a decision is on disk before the
    /// next stage starts. A line longer than a resume reads back is
    /// refused, not written: it would make the log unresumable.
    pub fn write(&mut self, entry: &Entry<'_>) -> Result<()> {
        let mut line = serde_json::to_string(entry).context("encoding a log line")?;
        if line.len() as u64 >= MAX_LINE_BYTES {
            bail!("a log line of {} bytes, over {} MiB: narrow the stage's queries", line.len(), MAX_LINE_BYTES >> 20);
        }
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("writing the log {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of its own for a test's log, and the log's path in it (no file yet).
    fn fresh(name: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("scx-slo-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.jsonl");
        (dir, path)
    }

    #[test]
    fn a_log_resumes_after_the_last_stage_that_proceeded() {
        let (dir, path) = fresh("resume");
        let mut j = Journal::open(&path, "abc").unwrap();
        assert!(!j.resumed && j.rollout_id.starts_with("ro-"));
        let id = j.rollout_id.clone();
        j.write(&Entry::Start { rollout_id: &id, plan: "p", plan_sha256: "abc", time: 1.0, stages: vec!["a", "b"] }).unwrap();
        j.write(&Entry::Decision { rollout_id: &id, stage: "a", time: 2.0, decision: "proceed", reasons: &[], checks: &[] }).unwrap();
        drop(j);
        // A line cut by a crash is not read as a decision.
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"event":"decision","rollout_id":"x","stage":"b","decision":"proc"#).unwrap();
        let j = Journal::open(&path, "abc").unwrap();
        assert!(j.resumed);
        assert_eq!((j.rollout_id.as_str(), j.done.as_slice()), (id.as_str(), ["a".to_string()].as_slice()));
        assert!(j.rolling_back.is_none());
        drop(j);
        let mut j = Journal::open(&path, "abc").unwrap();
        j.write(&Entry::Decision { rollout_id: &id, stage: "b", time: 3.0, decision: "rollback", reasons: &[], checks: &[] }).unwrap();
        drop(j);
        assert_eq!(Journal::open(&path, "abc").unwrap().rolling_back.as_deref(), Some("b"), "a stopped stage is not deployed again");
        assert!(format!("{:#}", Journal::open(&path, "other").err().unwrap()).contains("another plan"));
        std::fs::write(&path, format!("{{\"event\":\"start\",\"rollout_id\":\"{id}\",\"plan_sha256\":\"abc\"}}\n{{\"event\":\"finished\",\"rollout_id\":\"{id}\",\"summary\":\"stopped at canary\"}}\n")).unwrap();
        assert!(format!("{:#}", Journal::open(&path, "abc").err().unwrap()).contains("already ended (stopped at canary)"));
        // A start line cut by a crash: the log starts again, and resumes.
        std::fs::write(&path, br#"{"event":"start","rollout_id":"ro-x","plan_sha"#).unwrap();
        let mut j = Journal::open(&path, "abc").unwrap();
        assert!(!j.resumed);
        let id = j.rollout_id.clone();
        j.write(&Entry::Start { rollout_id: &id, plan: "p", plan_sha256: "abc", time: 1.0, stages: vec!["a"] }).unwrap();
        drop(j);
        assert!(Journal::open(&path, "abc").unwrap().resumed);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_stage_deployed_without_a_decision_keeps_its_baseline_for_the_resume() {
        let (dir, path) = fresh("base");
        let series = |v: f64| vec![crate::rollout::prom::Series { labels: [("unit".to_string(), "u".to_string())].into(), points: vec![(9.0, v)] }];
        let base = Baseline { time: 9.0, soak_s: 60, step_s: 15.0, daemon_alerts: vec![], burn_alerts: vec![], misses: series(1.0), jobs: series(1e6), latency: series(f64::INFINITY) };
        let mut j = Journal::open(&path, "abc").unwrap();
        let id = j.rollout_id.clone();
        j.write(&Entry::Start { rollout_id: &id, plan: "p", plan_sha256: "abc", time: 1.0, stages: vec!["a", "b"] }).unwrap();
        j.write(&Entry::DeployStart { rollout_id: &id, stage: "a", time: 9.0, baseline: &base }).unwrap();
        j.write(&Entry::Deployed { rollout_id: &id, stage: "a", time: 10.0, commands: &[] }).unwrap();
        drop(j);
        let mut j = Journal::open(&path, "abc").unwrap();
        assert_eq!(j.baseline, Some(("a".to_string(), base.clone())));
        assert_eq!(j.deployed, ["a"]);
        j.write(&Entry::Decision { rollout_id: &id, stage: "a", time: 11.0, decision: "proceed", reasons: &[], checks: &[] }).unwrap();
        drop(j);
        let j = Journal::open(&path, "abc").unwrap();
        assert!(j.baseline.is_none() && j.deployed.is_empty(), "a decided stage's baseline is not reused");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
