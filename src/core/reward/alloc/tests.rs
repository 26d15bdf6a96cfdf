//! Hand-computed examples and property tests of the allocation.

use proptest::prelude::*;

use super::*;
use crate::core::reward::{Economics, FIXED_POINT, Metric};

/// decimals 0, one epoch of 1,000,000 tokens, stakes 10000/25000/50000.
fn params() -> Params {
    let toml = "[token]\ndecimals = 0\n[emission]\ntotal_supply = 1000000\nepochs = 1\n";
    Economics::from_toml(toml, "test")
        .unwrap()
        .params("test")
        .unwrap()
}

fn node(name: &str, role: Role, stake: u128, metrics: &[(Metric, i128)]) -> NodeInput {
    let mut n = NodeInput::new(name, role, stake);
    for (m, v) in metrics {
        n.metrics[m.index()] = v * FIXED_POINT;
    }
    n
}

fn reward(e: &Estimate, name: &str) -> u128 {
    e.nodes.iter().find(|n| n.node == name).unwrap().reward
}

fn ratio(n: i64, d: i64) -> BigRational {
    BigRational::new(n.into(), d.into())
}

/// Five nodes; every number below is worked out by hand in docs/rewards.md, "Worked example".
#[test]
fn worked_example_five_nodes() {
    use Metric::*;
    let nodes = vec![
        node(
            "a",
            Role::Compute,
            10_000,
            &[
                (Flops, 100),
                (GpuSeconds, 10),
                (LossImprovement, 2),
                (UptimeSeconds, 50),
                (RingRounds, 5),
            ],
        ),
        // Negative quality must earn nothing in quality, and must not wrap into a large weight.
        node(
            "b",
            Role::Compute,
            20_000,
            &[
                (Flops, 300),
                (GpuSeconds, 30),
                (LossImprovement, -5),
                (UptimeSeconds, 50),
                (RingRounds, 5),
            ],
        ),
        node("c", Role::Compute, 5_000, &[(Flops, 1000)]),
        node("v", Role::Validator, 30_000, &[]),
        node("o", Role::Orchestrator, 60_000, &[]),
    ];
    let e = estimate(&params(), 0, &nodes).unwrap();
    assert_eq!(e.emission, 1_000_000);
    assert_eq!(
        e.pools,
        Pools {
            mining: 400_000,
            staking: 200_000,
            development: 150_000,
            community: 150_000,
            reserve: 100_000
        }
    );
    let a = &e.nodes[0];
    assert_eq!(
        a.category_shares.as_ref().unwrap(),
        &[ratio(1, 4), ratio(1, 1), ratio(1, 2)]
    );
    assert_eq!(a.score, ratio(1, 2));
    let b = &e.nodes[1];
    assert_eq!(
        b.category_shares.as_ref().unwrap(),
        &[ratio(3, 4), ratio(0, 1), ratio(1, 2)]
    );
    assert_eq!(reward(&e, "a"), 200_000);
    assert_eq!(reward(&e, "b"), 200_000);
    assert_eq!(reward(&e, "c"), 0);
    assert!(!e.nodes[2].eligible);
    assert_eq!(
        e.nodes[2].reasons,
        vec!["stake 5000 GYM is below the compute minimum of 10000 GYM".to_string()]
    );
    assert_eq!(reward(&e, "v"), 66_666);
    assert_eq!(reward(&e, "o"), 133_333);
    assert_eq!(e.rounding, 1);
    assert_eq!(e.undistributed, 0);
    assert_eq!(e.reserve_total(), 100_001);
    assert_eq!(e.accounted(), 1_000_000);
}

/// A category whose total is zero drops out and the others are renormalised (60:10 of 70).
#[test]
fn zero_category_is_renormalised() {
    use Metric::*;
    let nodes = vec![
        node(
            "a",
            Role::Compute,
            10_000,
            &[(Flops, 1), (RingRounds, 1), (Convergence, -3)],
        ),
        node("b", Role::Compute, 10_000, &[(Flops, 2)]),
    ];
    let e = estimate(&params(), 0, &nodes).unwrap();
    assert_eq!(e.active_categories, [true, false, true]);
    assert_eq!(e.nodes[0].score, ratio(3, 7));
    assert_eq!(e.nodes[1].score, ratio(4, 7));
    assert_eq!(reward(&e, "a"), 171_428);
    assert_eq!(reward(&e, "b"), 228_571);
    assert_eq!(e.rounding, 1);
    // No validator or orchestrator: the staking pool goes to the reserve.
    assert_eq!(e.undistributed, 200_000);
    assert_eq!(e.reserve_total(), 300_001);
    assert_eq!(e.accounted(), 1_000_000);
}

/// Nobody to pay: both pools go to the reserve, nothing is lost.
#[test]
fn nothing_to_pay_goes_to_reserve() {
    let mut excluded = node("a", Role::Compute, 10_000, &[(Metric::Flops, 5)]);
    excluded
        .exclusions
        .push("delta d.delta failed verification".into());
    let nodes = vec![
        excluded,
        node("b", Role::Compute, 10_000, &[]),
        node("v", Role::Validator, 1, &[]),
    ];
    let e = estimate(&params(), 0, &nodes).unwrap();
    assert_eq!(e.mining_paid + e.staking_paid, 0);
    assert_eq!(e.undistributed, 600_000);
    assert_eq!(e.reserve_total(), 700_000);
    assert_eq!(e.accounted(), 1_000_000);
    assert_eq!(
        e.nodes[0].reasons,
        vec!["delta d.delta failed verification".to_string()]
    );
}

#[test]
fn epoch_after_schedule_emits_nothing() {
    let nodes = vec![node("a", Role::Compute, 10_000, &[(Metric::Flops, 5)])];
    let e = estimate(&params(), 1, &nodes).unwrap();
    assert_eq!(e.emission, 0);
    assert_eq!(reward(&e, "a"), 0);
    assert_eq!(e.accounted(), 0);
}

#[test]
fn duplicate_node_is_an_error() {
    let nodes = vec![
        node("a", Role::Compute, 10_000, &[]),
        node("a", Role::Validator, 30_000, &[]),
    ];
    let err = estimate(&params(), 0, &nodes).unwrap_err();
    assert!(err.to_string().contains("\"a\""), "{err}");
}

/// The Templar class of bug: a hugely negative score must not turn into a large weight.
#[test]
fn extreme_negative_quality_earns_no_quality() {
    let mut bad = node("bad", Role::Compute, 10_000, &[(Metric::Flops, 1)]);
    bad.metrics[Metric::LossImprovement.index()] = i128::MIN;
    bad.metrics[Metric::StableTokens.index()] = -1;
    let good = node(
        "good",
        Role::Compute,
        10_000,
        &[(Metric::Flops, 1), (Metric::LossImprovement, 1)],
    );
    let e = estimate(&params(), 0, &[bad, good]).unwrap();
    assert_eq!(e.nodes[0].category_shares.as_ref().unwrap()[1], ratio(0, 1));
    // Network is inactive, so compute and quality weigh 60/90 and 30/90:
    // bad = 60/90 × 1/2 = 1/3 of 400000; good = 60/90 × 1/2 + 30/90 × 1 = 2/3.
    assert_eq!(reward(&e, "bad"), 133_333);
    assert_eq!(reward(&e, "good"), 266_666);
}

// ---- property tests ----

fn metric_value(m: Metric) -> BoxedStrategy<i128> {
    let lo = if m.may_be_negative() {
        -1_000_000i128
    } else {
        0
    };
    prop_oneof![Just(0i128), lo..1_000_000i128].boxed()
}

fn arb_node(i: usize) -> impl Strategy<Value = NodeInput> {
    let metrics: Vec<BoxedStrategy<i128>> = METRICS.iter().map(|m| metric_value(*m)).collect();
    (
        prop_oneof![3 => Just(Role::Compute), 1 => Just(Role::Validator), 1 => Just(Role::Orchestrator)],
        0u128..2_000,
        metrics,
        prop::bool::weighted(0.15),
    )
        .prop_map(move |(role, stake, metrics, excluded)| {
            let mut n = NodeInput::new(format!("n{i}"), role, stake);
            n.metrics.copy_from_slice(&metrics);
            if excluded {
                n.exclusions.push("caught cheating".into());
            }
            n
        })
}

fn arb_nodes() -> impl Strategy<Value = Vec<NodeInput>> {
    (1usize..7).prop_flat_map(|n| (0..n).map(arb_node).collect::<Vec<_>>())
}

fn arb_params() -> impl Strategy<Value = Params> {
    (
        0u128..1_000_000_000_000,
        1u64..4,
        prop::array::uniform9(0u32..5),
        0u32..=100,
        0u32..=100,
    )
        .prop_map(|(supply, epochs, weights, c1, c2)| {
            let mut p = params();
            p.total_supply = supply;
            p.epochs = epochs;
            p.min_stake = [100, 250, 500];
            p.metric_weights = weights;
            let (lo, hi) = (c1.min(c2), c1.max(c2));
            p.categories = [lo, hi - lo, 100 - hi];
            p
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn emission_is_accounted_exactly(p in arb_params(), nodes in arb_nodes(), epoch in 0u64..5) {
        let e = estimate(&p, epoch, &nodes).unwrap();
        let paid: u128 = e.nodes.iter().map(|n| n.reward).sum();
        prop_assert_eq!(paid, e.mining_paid + e.staking_paid);
        prop_assert_eq!(e.accounted(), e.emission);
        prop_assert_eq!(
            e.pools.mining + e.pools.staking + e.pools.development + e.pools.community + e.pools.reserve,
            e.emission
        );
        // Flooring loses less than one base unit per paid node.
        let paid_nodes = e.nodes.iter().filter(|n| n.eligible).count() as u128;
        prop_assert!(e.rounding < paid_nodes.max(1));
    }

    #[test]
    fn ineligible_nodes_get_zero(p in arb_params(), nodes in arb_nodes()) {
        let e = estimate(&p, 0, &nodes).unwrap();
        for (n, r) in nodes.iter().zip(&e.nodes) {
            let expect_eligible = n.exclusions.is_empty() && n.stake >= p.min_stake(n.role);
            prop_assert_eq!(r.eligible, expect_eligible);
            if !r.eligible {
                prop_assert_eq!(r.reward, 0);
                prop_assert!(!r.reasons.is_empty());
            }
        }
    }

    #[test]
    fn raising_a_metric_never_lowers_the_reward(
        p in arb_params(),
        nodes in arb_nodes(),
        pick in any::<prop::sample::Index>(),
        metric in 0usize..9,
        raise in 0i128..2_000_000,
        raise_stake in 0u128..1_000,
    ) {
        let k = pick.index(nodes.len());
        let before = estimate(&p, 0, &nodes).unwrap().nodes[k].reward;
        let mut more = nodes.clone();
        more[k].metrics[metric] += raise;
        prop_assert!(estimate(&p, 0, &more).unwrap().nodes[k].reward >= before);
        let mut staked = nodes.clone();
        staked[k].stake += raise_stake;
        prop_assert!(estimate(&p, 0, &staked).unwrap().nodes[k].reward >= before);
    }

    #[test]
    fn splitting_an_identity_never_earns_more(
        p in arb_params(),
        nodes in arb_nodes(),
        pick in any::<prop::sample::Index>(),
        fractions in prop::array::uniform9(0u32..=1000),
        stake_fraction in 0u32..=1000,
    ) {
        let k = pick.index(nodes.len());
        let whole = estimate(&p, 0, &nodes).unwrap().nodes[k].reward;
        let orig = &nodes[k];
        let mut one = orig.clone();
        let mut two = orig.clone();
        two.node = format!("{}-sybil", orig.node);
        for (m, f) in fractions.iter().enumerate() {
            // Same totals; a negative value is split into two non-positive parts.
            let x = orig.metrics[m];
            let a = x * i128::from(*f) / 1000;
            one.metrics[m] = a;
            two.metrics[m] = x - a;
        }
        one.stake = orig.stake * u128::from(stake_fraction) / 1000;
        two.stake = orig.stake - one.stake;
        let mut split = nodes.clone();
        split[k] = one;
        split.push(two);
        let e = estimate(&p, 0, &split).unwrap();
        let total = e.nodes[k].reward + e.nodes[nodes.len()].reward;
        prop_assert!(total <= whole, "split earned {} > {}", total, whole);
    }

    #[test]
    fn negative_quality_never_earns_quality(p in arb_params(), nodes in arb_nodes()) {
        let e = estimate(&p, 0, &nodes).unwrap();
        let mut clamped = nodes.clone();
        for n in &mut clamped {
            for m in METRICS.iter().filter(|m| m.may_be_negative()) {
                n.metrics[m.index()] = n.metrics[m.index()].max(0);
            }
        }
        // Negative quality counts exactly like zero quality, for everyone.
        prop_assert_eq!(&estimate(&p, 0, &clamped).unwrap(), &e);
        for (n, r) in nodes.iter().zip(&e.nodes) {
            let quality = METRICS.iter().filter(|m| m.may_be_negative()).all(|m| n.metrics[m.index()] <= 0);
            if let (true, Some(s)) = (quality, &r.category_shares) {
                prop_assert!(s[1].is_zero());
            }
        }
    }
}

/// Why gym floors and sends the dust to the reserve instead of using largest remainder
/// (docs/rewards.md, "Rounding"): with largest remainder, splitting B pays.
#[test]
fn largest_remainder_would_reward_splitting() {
    fn largest_remainder(pool: u128, weights: &[u128]) -> Vec<u128> {
        let total: u128 = weights.iter().sum();
        let mut out: Vec<u128> = weights.iter().map(|w| pool * w / total).collect();
        let mut order: Vec<usize> = (0..weights.len()).collect();
        // Largest remainder first; ties to the earlier node.
        order.sort_by_key(|&i| (std::cmp::Reverse(pool * weights[i] % total), i));
        let left = pool - out.iter().sum::<u128>();
        for &i in order.iter().take(left as usize) {
            out[i] += 1;
        }
        out
    }
    // Pool 3, quotas A = B = 1.5; then B split into two halves.
    let whole = largest_remainder(3, &[2, 2]);
    let split = largest_remainder(3, &[2, 1, 1]);
    assert!(split[1] + split[2] > whole[1], "{whole:?} {split:?}");
    // gym's rule on the same inputs: each identity gets floor(quota); the split earns less.
    let p = {
        let mut p = params();
        p.total_supply = 8; // 40 % of 8 is a mining pool of 3
        p
    };
    assert_eq!(estimate(&p, 0, &[]).unwrap().pools.mining, 3);
    let flops = |n: &str, x: i128| node(n, Role::Compute, 10_000, &[(Metric::Flops, x)]);
    let whole = estimate(&p, 0, &[flops("a", 2), flops("b", 2)]).unwrap();
    let split = estimate(&p, 0, &[flops("a", 2), flops("b1", 1), flops("b2", 1)]).unwrap();
    assert_eq!(whole.nodes[1].reward, 1);
    assert_eq!(split.nodes[1].reward + split.nodes[2].reward, 0);
    assert_eq!(split.accounted(), split.emission);
}
