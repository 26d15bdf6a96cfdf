use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};

use super::*;
use crate::core::ring::config::InputBounds;
use crate::core::ring::fixed;

fn members(n: usize) -> Vec<(String, String)> {
    // addresses in reverse so the plan has to sort them
    (0..n)
        .map(|i| {
            (
                format!("w{i:04}"),
                format!("10.0.{}.1:{}", (n - i) / 100, 7000 + (n - i)),
            )
        })
        .collect()
}

fn check_levels(p: &Plan, ring_size: usize, n: usize) {
    let mut seen: Vec<&String> = p.groups.iter().flatten().collect();
    assert_eq!(seen.len(), n);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), n, "every member in exactly one group");
    let mut below = &p.groups;
    for level in &p.leaders {
        let heads: Vec<&String> = below.iter().map(|r| &r[0]).collect();
        let got: Vec<&String> = level.iter().flatten().collect();
        assert_eq!(
            got, heads,
            "a level is the leaders of the rings below, in order"
        );
        below = level;
    }
    assert_eq!(below.len(), 1, "the top level is one ring");
    for ring in p.groups.iter().chain(p.leaders.iter().flatten()) {
        assert!(
            !ring.is_empty() && ring.len() <= ring_size,
            "{}",
            ring.len()
        );
    }
}

#[test]
fn up_to_ring_size_members_are_one_ring_in_address_order() {
    let p = RingTopology::new(8, 1).plan(&members(8));
    assert!(p.leaders.is_empty());
    assert_eq!(p.groups.len(), 1);
    let expect: Vec<String> = (0..8).rev().map(|i| format!("w{i:04}")).collect();
    assert_eq!(p.groups[0], expect);
}

#[test]
fn past_ring_size_members_form_even_groups_under_leader_rings() {
    let p = RingTopology::new(4, 0).plan(&members(10));
    let sizes: Vec<usize> = p.groups.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![4, 3, 3]);
    assert_eq!(p.leaders.len(), 1);
    check_levels(&p, 4, 10);

    let p = RingTopology::new(32, 2).plan(&members(1000));
    assert_eq!(p.groups.len(), 32);
    assert!(p.groups.iter().all(|g| g.len() == 31 || g.len() == 32));
    assert_eq!(p.leaders.len(), 1);
    check_levels(&p, 32, 1000);

    let p = RingTopology::new(4, 0).plan(&members(100));
    let per_level: Vec<usize> = p.leaders.iter().map(Vec::len).collect();
    assert_eq!((p.groups.len(), per_level), (25, vec![7, 2, 1]));
    check_levels(&p, 4, 100);
}

/// The sum a plan computes: each group sums its members' fixed-point contributions (what a
/// ring computes), each leader ring sums the sums its leaders carry, up to the top.
fn plan_sum(p: &Plan, inputs: &BTreeMap<String, (Vec<f64>, u64)>, scale: u32) -> (Vec<i64>, u128) {
    let len = inputs.values().next().map_or(0, |x| x.0.len());
    // the sum each ring's first member carries upward
    let mut carried: BTreeMap<String, (Vec<i64>, u128)> = BTreeMap::new();
    for g in &p.groups {
        let mut acc = vec![0i64; len];
        let mut weight = 0u128;
        for w in g {
            let (x, wt) = &inputs[w];
            fixed::add_into(&mut acc, &fixed::contribution(x, *wt, scale));
            weight += *wt as u128;
        }
        carried.insert(g[0].clone(), (acc, weight));
    }
    for level in &p.leaders {
        let mut next = BTreeMap::new();
        for ring in level {
            let mut acc = vec![0i64; len];
            let mut weight = 0u128;
            for w in ring {
                let (s, wt) = &carried[w];
                fixed::add_into(&mut acc, s);
                weight += wt;
            }
            next.insert(ring[0].clone(), (acc, weight));
        }
        carried = next;
    }
    carried.into_values().next().expect("one top ring")
}

#[test]
fn a_hierarchical_round_gives_the_flat_ring_s_exact_mean_bit_for_bit() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    for (n, ring_size) in [(37, 8), (100, 4), (9, 2)] {
        let bounds = InputBounds {
            max_weight: 5000,
            max_exponent: 4,
        };
        // one scale for every ring of the round, fixed by the round's member count
        let scale = bounds.min_scale(n) as u32;
        let inputs: BTreeMap<String, (Vec<f64>, u64)> = members(n)
            .into_iter()
            .map(|(w, _)| {
                let x = (0..257).map(|_| rng.gen_range(-15.99..15.99)).collect();
                (w, (x, rng.gen_range(1..=5000)))
            })
            .collect();
        let p = RingTopology::new(ring_size, 0).plan(&members(n));
        let (sum, weight) = plan_sum(&p, &inputs, scale);
        let flat: Vec<(&[f64], u64)> = inputs.values().map(|(x, w)| (&x[..], *w)).collect();
        assert_eq!(sum, fixed::direct_sum(&flat, scale), "n = {n}");
        let total: u128 = inputs.values().map(|x| x.1 as u128).sum();
        assert_eq!(weight, total);
        let m = fixed::Mean::new(total, scale);
        let exact = |k: usize| {
            let num: f64 = inputs.values().map(|(x, w)| x[k] * *w as f64).sum();
            num / total as f64
        };
        for (k, s) in sum.iter().enumerate() {
            // within the fixed-point precision of the true weighted mean
            assert!((m.of(*s) - exact(k)).abs() < 1e-9, "n = {n}, k = {k}");
        }
    }
}
