// SPDX-License-Identifier: GPL-2.0-only
//! CPU → NUMA node map from sysfs, for the scheduler's per-node DSQs.

use std::fs;
use std::path::Path;

use crate::intf;

/// What the scheduler needs to know about the machine's shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    /// Possible CPUs (nr_cpu_ids).
    pub nr_cpus: u32,
    /// NUMA nodes (highest node id + 1).
    pub nr_nodes: u32,
    /// Node of each possible CPU.
    pub cpu_to_node: Vec<u32>,
}

/// Parses a sysfs CPU list such as `0-3,8,10-11`.
pub fn parse_cpu_list(text: &str) -> Option<Vec<u32>> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if b < a {
                    return None;
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

impl Topology {
    /// Reads `/sys/devices/system/cpu/possible` and each CPU's `nodeN` link.
    /// A machine without NUMA information is one node.
    pub fn from_sysfs() -> crate::error::Result<Self> {
        Self::from_root(Path::new("/sys/devices/system"))
    }

    /// As [`Self::from_sysfs`] with another root (tests).
    pub fn from_root(root: &Path) -> crate::error::Result<Self> {
        use crate::error::Context;
        let possible_path = root.join("cpu/possible");
        let possible = fs::read_to_string(&possible_path)
            .with_context(|| format!("reading {}", possible_path.display()))?;
        let cpus = parse_cpu_list(&possible)
            .with_context(|| format!("parsing {}: {possible:?}", possible_path.display()))?;
        let nr_cpus = cpus.iter().max().map_or(1, |m| m + 1);
        crate::ensure!(
            nr_cpus <= intf::slo_consts_SLO_MAX_CPUS,
            "{nr_cpus} possible CPUs; scx_slo supports {}",
            intf::slo_consts_SLO_MAX_CPUS
        );
        let mut cpu_to_node = vec![0u32; nr_cpus as usize];
        for cpu in cpus {
            let dir = root.join(format!("cpu/cpu{cpu}"));
            let Ok(entries) = fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if let Some(node) = name.strip_prefix("node").and_then(|n| n.parse::<u32>().ok()) {
                    cpu_to_node[cpu as usize] = node;
                }
            }
        }
        let nr_nodes = cpu_to_node.iter().max().map_or(1, |m| m + 1);
        crate::ensure!(
            nr_nodes <= intf::slo_consts_SLO_MAX_NODES,
            "{nr_nodes} NUMA nodes; scx_slo supports {}",
            intf::slo_consts_SLO_MAX_NODES
        );
        Ok(Topology { nr_cpus, nr_nodes, cpu_to_node })
    }

    /// The CPUs grouped by node, and where each node's group starts (one
    /// more entry than nodes: node n's CPUs are `cpus[start[n]..start[n + 1]]`).
    /// The scheduler's victim search walks one node's group.
    pub fn node_cpus(&self) -> (Vec<u32>, Vec<u32>) {
        let node = |c: u32| self.cpu_to_node.get(c as usize).copied().unwrap_or(0);
        let mut cpus: Vec<u32> = (0..self.nr_cpus).collect();
        cpus.sort_by_key(|c| (node(*c), *c));
        let start = (0..=self.nr_nodes).map(|n| cpus.partition_point(|c| node(*c) < n) as u32).collect();
        (cpus, start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_are_grouped_by_node_with_the_group_starts() {
        let topo = Topology { nr_cpus: 6, nr_nodes: 3, cpu_to_node: vec![1, 0, 1, 0, 2, 2] };
        assert_eq!(topo.node_cpus(), (vec![1, 3, 0, 2, 4, 5], vec![0, 2, 4, 6]));
        let one = Topology { nr_cpus: 2, nr_nodes: 1, cpu_to_node: vec![0, 0] };
        assert_eq!(one.node_cpus(), (vec![0, 1], vec![0, 2]));
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,8,10-11\n"), Some(vec![0, 1, 2, 3, 8, 10, 11]));
        assert_eq!(parse_cpu_list("0"), Some(vec![0]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn reads_nodes_from_a_fake_sysfs() {
        let dir = std::env::temp_dir().join(format!("scx-slo-topo-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("cpu/cpu0/node0")).unwrap();
        fs::create_dir_all(dir.join("cpu/cpu1/node1")).unwrap();
        fs::write(dir.join("cpu/possible"), "0-1\n").unwrap();
        let topo = Topology::from_root(&dir).unwrap();
        assert_eq!(topo, Topology { nr_cpus: 2, nr_nodes: 2, cpu_to_node: vec![0, 1] });
        fs::remove_dir_all(&dir).unwrap();
    }
}
