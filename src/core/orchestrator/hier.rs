//! The ring files of a hierarchical round (docs/orchestrator.md "Scale: hierarchical rounds"):
//! each group ring writes its exact sum (a sum file) at the round's fixed scale `F`, each
//! leader ring takes the sums of the rings below it, and the top leader ring writes the mean.
//!
//! - **Weights and bounds.** Every ring's `max_weight` is the largest weight its members bring:
//!   a group member its reported weight, a leader the weight total of the ring it leads. The
//!   round's `F` is the smallest `F_min = 58 − max_exponent − bitlen(n · max_weight)` over all
//!   its rings (capped at 60), so every ring file is valid at `F` and every honest input fits.
//! - **Addresses.** A worker's group ring listens on its registered ring address; its leader
//!   ring at level `k` on the next port `+ 1 + k` (distinct, so that a leader that finishes its
//!   ring early never dials a peer's listener of another ring).

use std::collections::BTreeMap;

use super::machine::{Machine, Ringing};
use crate::core::keys::{PublicIdentity, unb64};
use crate::core::ring::config::{
    DEFAULT_CHUNK_ELEMENTS, DEFAULT_MAX_EXPONENT, Hier, InputBounds, Member, Output, RingSpec,
};
use crate::core::ring::fixed;

/// A leader ring of a worker: its ring file and the worker's index in it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeaderRing {
    pub toml: String,
    pub index: usize,
}

/// What a worker runs in a hierarchical round.
#[derive(Debug, Clone)]
pub struct Assignment {
    /// The group ring (output: the exact sum).
    pub group: RingSpec,
    pub index: usize,
    pub weight: u64,
    /// The leader rings it sits in, lowest level first (the last one of the top level writes
    /// the mean).
    pub leaders: Vec<LeaderRing>,
    /// A result reported by a member of the top leader ring.
    pub final_result: Option<String>,
}

/// The address of a worker's leader ring at `level`: its ring port `+ 1 + level`.
pub fn leader_addr(ring_addr: &str, level: usize) -> Option<String> {
    let (host, port) = ring_addr.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let level = u16::try_from(level).ok()?;
    Some(format!(
        "{host}:{}",
        port.checked_add(1)?.checked_add(level)?
    ))
}

/// The weight each ring's member brings, per level: `[0]` the group members' reported
/// weights, `[k + 1]` the weight totals of the rings of level `k − 1` (the groups for `k = 0`),
/// keyed by their leader (first member).
fn weights(r: &Ringing) -> Vec<BTreeMap<String, u128>> {
    let mut levels = vec![
        r.reports
            .iter()
            .map(|(w, rep)| (w.clone(), rep.weight as u128))
            .collect::<BTreeMap<_, _>>(),
    ];
    let mut below: &Vec<Vec<String>> = &r.rings;
    for rings in r.leaders.iter().chain(std::iter::once(&Vec::new())) {
        let of = levels.last().expect("one level");
        let totals = below
            .iter()
            .filter_map(|ring| {
                let head = ring.first()?.clone();
                let sum = ring.iter().map(|w| of.get(w).copied().unwrap_or(0)).sum();
                Some((head, sum))
            })
            .collect();
        levels.push(totals);
        below = rings;
    }
    levels
}

/// Every ring of the round, with the level of its members' weights (0: groups).
fn all_rings(r: &Ringing) -> impl Iterator<Item = (usize, &Vec<String>)> {
    r.rings.iter().map(|g| (0, g)).chain(
        r.leaders
            .iter()
            .enumerate()
            .flat_map(|(k, rings)| rings.iter().map(move |ring| (k + 1, ring))),
    )
}

/// The largest weight a member of `ring` brings (its `max_weight`), at most `2^32`.
fn max_weight(levels: &[BTreeMap<String, u128>], level: usize, ring: &[String]) -> Option<u64> {
    let w = ring
        .iter()
        .map(|m| levels[level].get(m).copied().unwrap_or(1))
        .max()?
        .max(1);
    u64::try_from(w).ok().filter(|&w| w <= fixed::MAX_WEIGHT)
}

fn bounds(max_weight: u64) -> InputBounds {
    InputBounds {
        max_weight,
        max_exponent: DEFAULT_MAX_EXPONENT,
    }
}

/// The round's fixed scale: the smallest `F_min` of its rings (`None`: some ring's weights
/// exceed `2^32` or leave no scale).
pub fn round_scale(r: &Ringing) -> Option<u32> {
    let levels = weights(r);
    let mut f = fixed::MAX_SCALE as i32;
    for (level, ring) in all_rings(r) {
        let b = bounds(max_weight(&levels, level, ring)?);
        f = f.min(b.min_scale(ring.len()));
    }
    u32::try_from(f).ok()
}

fn ring_spec(
    m: &Machine,
    round: u64,
    ring: &[String],
    leader_level: Option<usize>,
    max_weight: u64,
    hier: Hier,
) -> Option<RingSpec> {
    let members: Vec<Member> = ring
        .iter()
        .map(|w| {
            let info = m.workers.get(w)?;
            let raw = unb64(&info.ed25519)?;
            let address = match leader_level {
                None => info.ring_addr.clone(),
                Some(k) => leader_addr(&info.ring_addr, k)?,
            };
            Some(Member {
                id: w.clone(),
                address,
                public: PublicIdentity::from_raw(&raw, None).ok()?,
            })
        })
        .collect::<Option<_>>()?;
    RingSpec::new(round, DEFAULT_CHUNK_ELEMENTS, members)
        .and_then(|s| s.with_bounds(bounds(max_weight)))
        .and_then(|s| s.with_hier(hier))
        .ok()
}

/// `id`'s rings in the hierarchical round `r` (`None` when it is in none, or a ring cannot be
/// formed: a member no longer admitted, weights above `2^32`).
pub fn assignment(m: &Machine, r: &Ringing, ring_round: u64, id: &str) -> Option<Assignment> {
    let f = round_scale(r)?;
    let levels = weights(r);
    let group = r.rings.iter().find(|g| g.iter().any(|w| w == id))?;
    let sum = Hier {
        scale_bits: Some(f),
        output: Output::Sum,
    };
    let spec = ring_spec(
        m,
        ring_round,
        group,
        None,
        max_weight(&levels, 0, group)?,
        sum,
    )?;
    let index = spec.members.iter().position(|x| x.id == id)?;
    let mut leaders = Vec::new();
    for (k, rings) in r.leaders.iter().enumerate() {
        let Some(ring) = rings.iter().find(|x| x.iter().any(|w| w == id)) else {
            break;
        };
        let output = if k + 1 == r.leaders.len() {
            Output::Mean
        } else {
            Output::Sum
        };
        let hier = Hier {
            scale_bits: Some(f),
            output,
        };
        let maxw = max_weight(&levels, k + 1, ring)?;
        let s = ring_spec(m, ring_round, ring, Some(k), maxw, hier)?;
        let index = s.members.iter().position(|x| x.id == id)?;
        leaders.push(LeaderRing {
            toml: s.to_toml(),
            index,
        });
    }
    let top = r.leaders.last().and_then(|rings| rings.first());
    let final_result = top.and_then(|ring| ring.iter().find_map(|w| r.results.get(w).cloned()));
    Some(Assignment {
        group: spec,
        index,
        weight: r.reports.get(id)?.weight,
        leaders,
        final_result,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::orchestrator::machine::Report;

    fn ringing(groups: &[&[&str]], leaders: &[&[&[&str]]], weights: &[u64]) -> Ringing {
        let names: Vec<String> = groups
            .iter()
            .flat_map(|g| g.iter())
            .map(|s| s.to_string())
            .collect();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        Ringing {
            round: 0,
            base: None,
            reports: names
                .iter()
                .zip(weights)
                .map(|(n, &w)| {
                    let r = Report {
                        object: String::new(),
                        weight: w,
                        reward: 0.0,
                        loss: 0.0,
                    };
                    (n.clone(), r)
                })
                .collect(),
            rings: groups.iter().map(|g| s(g)).collect(),
            leaders: leaders
                .iter()
                .map(|l| l.iter().map(|r| s(r)).collect())
                .collect(),
            results: BTreeMap::new(),
            deadline: 0,
        }
    }

    #[test]
    fn the_round_scale_is_the_smallest_of_its_rings_and_leaders_bring_their_totals() {
        // Groups {a, b, c} (weights 1, 2, 3) and {d, e} (4, 5); leaders a and d bring 6 and 9.
        let r = ringing(
            &[&["a", "b", "c"], &["d", "e"]],
            &[&[&["a", "d"]]],
            &[1, 2, 3, 4, 5],
        );
        let levels = weights(&r);
        assert_eq!(levels[1]["a"], 6);
        assert_eq!(levels[1]["d"], 9);
        // Groups: 58 − 8 − bitlen(3 · 3) = 46 and 58 − 8 − bitlen(2 · 5) = 46; the leader ring
        // 58 − 8 − bitlen(2 · 9) = 45.
        assert_eq!(round_scale(&r), Some(45));
        let heavy = ringing(
            &[&["a", "b", "c"], &["d", "e"]],
            &[&[&["a", "d"]]],
            &[1 << 32; 5],
        );
        assert_eq!(round_scale(&heavy), None, "a leader's total above 2^32");
        assert_eq!(
            leader_addr("127.0.0.1:7000", 0).as_deref(),
            Some("127.0.0.1:7001")
        );
        assert_eq!(leader_addr("[::1]:7000", 2).as_deref(), Some("[::1]:7003"));
        assert_eq!(leader_addr("h:65535", 0), None);
    }
}
