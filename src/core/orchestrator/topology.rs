//! Ring files per round from the live workers.
//!
//! Ordering: members are sorted by ring address (host, then port), so workers on one host or
//! one subnet sit next to each other and the ring crosses between hosts as few times as
//! possible. Latency between workers is not measured: the orchestrator sees only its own link
//! to each worker, and the ring protocol's view change already drops a member that stalls.
//!
//! `redundancy` is the number of member failures a round survives without being trained again:
//! the ring protocol's view change excludes a failed member and finishes with the rest, and the
//! orchestrator accepts the result when at least `members − redundancy` (and at least 2)
//! members report it. A ring is therefore never formed with fewer than `redundancy + 2` members.

use serde::{Deserialize, Serialize};

/// How the orchestrator arranges a round's members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingTopology {
    /// Most members in one ring.
    pub ring_size: usize,
    /// Member failures a round survives.
    pub redundancy: usize,
}

/// A round's rings. `groups` partition the members (each group is one ring, in ring order);
/// `leaders[0]` are rings of the groups' leaders (each group's first member), `leaders[1]`
/// rings of the leaders of `leaders[0]`'s rings, and so on until one ring is left. A round of
/// at most `ring_size` members is one group and no leader rings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub groups: Vec<Vec<String>>,
    pub leaders: Vec<Vec<Vec<String>>>,
}

impl RingTopology {
    pub fn new(ring_size: usize, redundancy: usize) -> Self {
        RingTopology {
            ring_size: ring_size.max(2),
            redundancy,
        }
    }

    /// The member rings for `(worker, ring address)` pairs (the groups of [`Self::plan`]).
    pub fn rings(&self, members: &[(String, String)]) -> Vec<Vec<String>> {
        self.plan(members).groups
    }

    /// The round's plan: members in address order (host, then port), cut into the fewest
    /// groups of at most `ring_size`, sizes differing by at most one; then, level by level,
    /// the first member of each ring below is its leader, and the leaders are cut the same way.
    pub fn plan(&self, members: &[(String, String)]) -> Plan {
        let mut sorted: Vec<&(String, String)> = members.iter().collect();
        sorted.sort_by(|a, b| addr_key(&a.1).cmp(&addr_key(&b.1)).then(a.0.cmp(&b.0)));
        let ordered: Vec<String> = sorted.into_iter().map(|(w, _)| w.clone()).collect();
        let groups = self.cut(ordered);
        let mut leaders = Vec::new();
        let mut below = &groups;
        while below.len() > 1 {
            let heads: Vec<String> = below.iter().filter_map(|r| r.first().cloned()).collect();
            leaders.push(self.cut(heads));
            below = leaders.last().expect("just pushed");
        }
        Plan { groups, leaders }
    }

    /// `items` in order, cut into the fewest runs of at most `ring_size`, as even as possible.
    fn cut(&self, items: Vec<String>) -> Vec<Vec<String>> {
        if items.is_empty() {
            return vec![Vec::new()];
        }
        let n = items.len();
        let parts = n.div_ceil(self.ring_size);
        let (base, extra) = (n / parts, n % parts);
        let mut it = items.into_iter();
        (0..parts)
            .map(|k| it.by_ref().take(base + usize::from(k < extra)).collect())
            .collect()
    }

    /// The fewest members a ring may start with.
    pub fn min_members(&self) -> usize {
        self.redundancy + 2
    }
}

/// Sort key of an address: the host part first, the port as a number.
fn addr_key(a: &str) -> (String, u32) {
    match a.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse().unwrap_or(u32::MAX)),
        None => (a.to_string(), 0),
    }
}

/// The design's `create_ring_topology(workers, redundancy)`: the ring order for these
/// `(worker id, ring address)` pairs.
///
/// ```
/// use gym::core::orchestrator::create_ring_topology;
/// let workers = vec![
///     ("gym1b".to_string(), "10.0.0.2:7000".to_string()),
///     ("gym1a".to_string(), "10.0.0.1:7000".to_string()),
/// ];
/// let rings = create_ring_topology(&workers, 0);
/// assert_eq!(rings, vec![vec!["gym1a".to_string(), "gym1b".to_string()]]);
/// ```
pub fn create_ring_topology(workers: &[(String, String)], redundancy: usize) -> Vec<Vec<String>> {
    RingTopology::new(crate::core::ring::config::MAX_MEMBERS, redundancy).rings(workers)
}

#[cfg(test)]
#[path = "topology_tests.rs"]
mod tests;
