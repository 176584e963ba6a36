// SPDX-License-Identifier: GPL-2.0-only
//! The full bench survives an emulator panic (multi-threaded TCG panics now and then). Each block of
//! cells (one scheduler loaded for one round, every scenario under it) goes
//! to the guest's output as a checkpoint line the moment it is measured.
//! When a boot ends without its report, `checks/vm/run` collects the
//! checkpoints into `bench-done.jsonl`, puts that file in the next boot's
//! initramfs, and boots again: the bench there takes the blocks already
//! measured as they are and measures only the rest, so the last boot's
//! report covers every block, and says how many came from earlier boots.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where the host puts the blocks earlier boots measured.
pub const DONE_FILE: &str = "/bench-done.jsonl";
/// The checkpoint line's prefix in the guest's output.
pub const MARK: &str = "SCX_SLO_BENCH_BLOCK ";

/// One scheduler's round: its cells and the checks that failed in it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Block {
    /// The round.
    pub round: usize,
    /// The scheduler.
    pub scheduler: String,
    /// Every cell measured (scenario results, raw samples included).
    pub cells: Vec<Value>,
    /// Failed checks: (name, detail).
    pub failures: Vec<(String, String)>,
}

/// The blocks in a guest's output (or a `bench-done.jsonl`), by (round,
/// scheduler); a line cut short by a panic, or any other line, is skipped.
pub fn parse(text: &str) -> BTreeMap<(usize, String), Block> {
    text.lines()
        .filter_map(|l| l.strip_prefix(MARK).or_else(|| l.trim_start().starts_with('{').then_some(l)))
        .filter_map(|json| serde_json::from_str::<Block>(json.trim()).ok())
        .map(|b| ((b.round, b.scheduler.clone()), b))
        .collect()
}

/// The blocks earlier boots measured (none on a first boot).
pub fn load_done() -> BTreeMap<(usize, String), Block> {
    std::fs::read_to_string(DONE_FILE).map(|t| parse(&t)).unwrap_or_default()
}

/// Writes a block's checkpoint line to the guest's output.
pub fn checkpoint(out: &Path, block: &Block) -> Result<()> {
    let line = format!("\n{MARK}{}\n", serde_json::to_string(block)?);
    std::fs::OpenOptions::new()
        .append(true)
        .open(out)
        .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()))
        .with_context(|| format!("writing a bench checkpoint to {}", out.display()))
}

/// `--crash-after N` (testing the resume): after the N-th block measured in
/// this boot, panic the kernel as the emulator's int3 race does.
pub fn crash_if_due(crash_after: Option<usize>, measured: usize) {
    if crash_after.is_some_and(|n| n > 0 && measured >= n) {
        eprintln!("bench: --crash-after {measured}: panicking the kernel to test the resume");
        let _ = std::fs::write("/proc/sys/kernel/sysrq", "1");
        let _ = std::fs::write("/proc/sysrq-trigger", "c");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip_and_a_line_cut_short_is_skipped() {
        let a = Block { round: 0, scheduler: "eevdf".into(), cells: vec![serde_json::json!({ "scenario": "oversub-2x", "samples": [1, 2, 3] })], failures: vec![] };
        let b = Block { round: 0, scheduler: "scx_slo-all".into(), cells: vec![], failures: vec![("x / scx_slo-all / round 0 ran".into(), "boom".into())] };
        let text = format!(
            "console noise\n{MARK}{}\n{MARK}{}\n{MARK}{}",
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap(),
            // The panic cut this one short.
            &serde_json::to_string(&Block { round: 1, ..a.clone() }).unwrap()[..20]
        );
        let got = parse(&text);
        assert_eq!(got.len(), 2);
        assert_eq!(got[&(0, "eevdf".to_string())], a);
        assert_eq!(got[&(0, "scx_slo-all".to_string())], b);
        // bench-done.jsonl holds the JSON alone, one block a line.
        let done = format!("{}\n{}\n", serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
        assert_eq!(parse(&done), got);
    }
}
