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

impl RingTopology {
    pub fn new(ring_size: usize, redundancy: usize) -> Self {
        RingTopology {
            ring_size: ring_size.max(2),
            redundancy,
        }
    }

    /// The rings for `(worker, ring address)` pairs: one flat ring in address order (jobs
    /// are limited to `max_workers ≤ ring_size`, see docs/orchestrator.md).
    pub fn rings(&self, members: &[(String, String)]) -> Vec<Vec<String>> {
        let mut sorted: Vec<&(String, String)> = members.iter().collect();
        sorted.sort_by(|a, b| addr_key(&a.1).cmp(&addr_key(&b.1)).then(a.0.cmp(&b.0)));
        vec![sorted.into_iter().map(|(w, _)| w.clone()).collect()]
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
