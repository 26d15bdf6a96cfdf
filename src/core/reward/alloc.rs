//! The allocation: per-node integer metrics in, per-node rewards in base units out. All
//! arithmetic is exact (big rationals); each reward is the floor of its exact quota, and the
//! rounding dust goes to the reserve, so that the epoch's emission is accounted for to the base
//! unit and splitting an identity can never gain anything from rounding (see `docs/rewards.md`,
//! "Rounding").

use std::collections::HashSet;

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{ToPrimitive, Zero};

use super::{Category, METRICS, Params, RewardError, Role};

/// One node's inputs: identity, role, stake (base units), metrics (fixed point, see
/// [`super::to_fixed`]) and any reasons found upstream that make it ineligible.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInput {
    pub node: String,
    pub role: Role,
    pub stake: u128,
    pub metrics: [i128; METRICS.len()],
    pub exclusions: Vec<String>,
}

impl NodeInput {
    pub fn new(node: impl Into<String>, role: Role, stake: u128) -> Self {
        NodeInput {
            node: node.into(),
            role,
            stake,
            metrics: [0; METRICS.len()],
            exclusions: Vec::new(),
        }
    }
}

/// The epoch's emission split by the token distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pools {
    pub mining: u128,
    pub staking: u128,
    pub development: u128,
    pub community: u128,
    /// The reserve's percentage plus the rounding of the other four.
    pub reserve: u128,
}

/// Which pool pays a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    Mining,
    Staking,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeReward {
    pub node: String,
    pub role: Role,
    pub stake: u128,
    pub eligible: bool,
    /// Why not eligible (empty when eligible).
    pub reasons: Vec<String>,
    /// Compute nodes: the node's share of each mining category (0 to 1; zero for an inactive
    /// category). `None` for validators and orchestrators.
    pub category_shares: Option<[BigRational; 3]>,
    /// The node's exact share of its pool.
    pub score: BigRational,
    pub pool: PoolKind,
    pub reward: u128,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub epoch: u64,
    pub emission: u128,
    pub pools: Pools,
    pub nodes: Vec<NodeReward>,
    /// Whether each mining category took part (some eligible node has a positive metric in it).
    pub active_categories: [bool; 3],
    pub mining_paid: u128,
    pub staking_paid: u128,
    /// Base units lost to flooring quotas (less than one per paid node); they go to the reserve.
    pub rounding: u128,
    /// A pool with nobody to pay (no eligible node, or all metrics zero); it goes to the reserve.
    pub undistributed: u128,
}

impl Estimate {
    /// Everything the reserve receives this epoch: its share, rounding dust and unpaid pools.
    pub fn reserve_total(&self) -> u128 {
        self.pools.reserve + self.rounding + self.undistributed
    }

    /// Sum of every allocation; always equals [`Estimate::emission`].
    pub fn accounted(&self) -> u128 {
        self.mining_paid
            + self.staking_paid
            + self.pools.development
            + self.pools.community
            + self.reserve_total()
    }
}

/// floor(v × pct / 100) without overflow.
fn percent(v: u128, pct: u32) -> u128 {
    let p = u128::from(pct);
    (v / 100) * p + (v % 100) * p / 100
}

fn big(v: u128) -> BigInt {
    BigInt::from(v)
}

/// floor(pool × share) as base units. `share` is in [0, 1], so the result fits.
fn floor_share(pool: u128, share: &BigRational) -> u128 {
    let q = (BigRational::from_integer(big(pool)) * share)
        .floor()
        .to_integer();
    q.to_u128().unwrap_or(0)
}

/// Computes the epoch's rewards. Fails only on a duplicate node id.
pub fn estimate(p: &Params, epoch: u64, nodes: &[NodeInput]) -> Result<Estimate, RewardError> {
    check_unique(nodes)?;
    let emission = p.emission(epoch);
    let pools = split_emission(p, emission);
    let mut results: Vec<NodeReward> = nodes.iter().map(|n| eligibility(p, n)).collect();
    let mining = pay_miners(p, nodes, &mut results, pools.mining);
    let staking = pay_stakers(nodes, &mut results, pools.staking);
    let mut undistributed = 0u128;
    if !mining.paid_out {
        undistributed += pools.mining;
    }
    if !staking.paid_out {
        undistributed += pools.staking;
    }
    let paid_pools = (if mining.paid_out { pools.mining } else { 0 })
        + (if staking.paid_out { pools.staking } else { 0 });
    let rounding = paid_pools - mining.paid - staking.paid;
    Ok(Estimate {
        epoch,
        emission,
        pools,
        nodes: results,
        active_categories: mining.active_categories,
        mining_paid: mining.paid,
        staking_paid: staking.paid,
        rounding,
        undistributed,
    })
}

/// Every node id appears once.
fn check_unique(nodes: &[NodeInput]) -> Result<(), RewardError> {
    let mut seen = HashSet::new();
    for n in nodes {
        if !seen.insert(n.node.as_str()) {
            return Err(RewardError::DuplicateNode {
                file: "input".into(),
                node: n.node.clone(),
            });
        }
    }
    Ok(())
}

/// The emission split into pools by `distribution`; the reserve takes what the percentages
/// round away.
fn split_emission(p: &Params, emission: u128) -> Pools {
    let [d_mining, d_staking, d_dev, d_comm, _] = p.distribution;
    let mining = percent(emission, d_mining);
    let staking = percent(emission, d_staking);
    let development = percent(emission, d_dev);
    let community = percent(emission, d_comm);
    let reserve = emission - mining - staking - development - community;
    Pools {
        mining,
        staking,
        development,
        community,
        reserve,
    }
}

/// A node's result before payment: eligible unless excluded or below its role's minimum
/// stake (each reason listed), in the mining pool when it computes, else the staking pool.
fn eligibility(p: &Params, n: &NodeInput) -> NodeReward {
    let mut reasons = n.exclusions.clone();
    let min = p.min_stake(n.role);
    if n.stake < min {
        reasons.push(format!(
            "stake {} {} is below the {} minimum of {} {}",
            super::amount::format(n.stake, p.decimals),
            p.symbol,
            n.role.name(),
            super::amount::format(min, p.decimals),
            p.symbol
        ));
    }
    NodeReward {
        node: n.node.clone(),
        role: n.role,
        stake: n.stake,
        eligible: reasons.is_empty(),
        reasons,
        category_shares: None,
        score: BigRational::zero(),
        pool: if n.role == Role::Compute {
            PoolKind::Mining
        } else {
            PoolKind::Staking
        },
        reward: 0,
    }
}

/// What paying one pool came to.
struct Paid {
    /// Base units paid to nodes.
    paid: u128,
    /// Whether the pool had anyone to pay (else it is undistributed).
    paid_out: bool,
    /// Mining pool only: the categories with a weight and a non-zero total.
    active_categories: [bool; 3],
}

/// The metrics and categories that count: a metric with a weight and a non-zero total over
/// the miners, a category with a weight and an active metric.
struct ActiveWeights {
    totals: Vec<BigInt>,
    metric_active: Vec<bool>,
    cat_weight_sum: [u64; 3],
    active_categories: [bool; 3],
    active_cat_sum: u64,
}

/// A miner's value of metric `m`; negative values (quality) are clamped to 0 here, before
/// they reach any total or share.
fn metric_value(n: &NodeInput, m: usize) -> BigInt {
    big(n.metrics[m].max(0) as u128)
}

fn active_weights(p: &Params, nodes: &[NodeInput], miners: &[usize]) -> ActiveWeights {
    let totals: Vec<BigInt> = (0..METRICS.len())
        .map(|m| miners.iter().map(|&i| metric_value(&nodes[i], m)).sum())
        .collect();
    let metric_active: Vec<bool> = METRICS
        .iter()
        .map(|m| p.weight(*m) > 0 && totals[m.index()] > BigInt::zero())
        .collect();
    let mut cat_weight_sum = [0u64; 3];
    for m in METRICS {
        if metric_active[m.index()] {
            cat_weight_sum[m.category().index()] += u64::from(p.weight(m));
        }
    }
    let active_categories: [bool; 3] =
        std::array::from_fn(|c| p.categories[c] > 0 && cat_weight_sum[c] > 0);
    let active_cat_sum: u64 = Category::ALL
        .iter()
        .filter(|c| active_categories[c.index()])
        .map(|c| u64::from(p.categories[c.index()]))
        .sum();
    ActiveWeights {
        totals,
        metric_active,
        cat_weight_sum,
        active_categories,
        active_cat_sum,
    }
}

/// A miner's category shares (its weighted share of each active metric's total) and its
/// score (the categories' weighted sum).
fn miner_score(p: &Params, n: &NodeInput, w: &ActiveWeights) -> ([BigRational; 3], BigRational) {
    let mut shares: [BigRational; 3] = std::array::from_fn(|_| BigRational::zero());
    for m in METRICS {
        let mi = m.index();
        if !w.metric_active[mi] {
            continue;
        }
        let c = m.category().index();
        let weight = BigRational::new(BigInt::from(p.weight(m)), BigInt::from(w.cat_weight_sum[c]));
        shares[c] += weight * BigRational::new(metric_value(n, mi), w.totals[mi].clone());
    }
    let mut score = BigRational::zero();
    if w.active_cat_sum > 0 {
        for c in Category::ALL {
            if w.active_categories[c.index()] {
                let weight = BigRational::new(
                    BigInt::from(p.categories[c.index()]),
                    BigInt::from(w.active_cat_sum),
                );
                score += weight * &shares[c.index()];
            }
        }
    }
    (shares, score)
}

/// Mining pool: eligible compute nodes, by the weighted proportional score.
fn pay_miners(p: &Params, nodes: &[NodeInput], results: &mut [NodeReward], pool: u128) -> Paid {
    let miners: Vec<usize> = (0..nodes.len())
        .filter(|&i| results[i].eligible && nodes[i].role == Role::Compute)
        .collect();
    let weights = active_weights(p, nodes, &miners);
    let mut paid = 0u128;
    for &i in &miners {
        let (shares, score) = miner_score(p, &nodes[i], &weights);
        let r = &mut results[i];
        r.reward = floor_share(pool, &score);
        paid += r.reward;
        r.score = score;
        r.category_shares = Some(shares);
    }
    for r in results
        .iter_mut()
        .filter(|r| r.role == Role::Compute && r.category_shares.is_none())
    {
        r.category_shares = Some(std::array::from_fn(|_| BigRational::zero()));
    }
    Paid {
        paid,
        paid_out: weights.active_cat_sum > 0,
        active_categories: weights.active_categories,
    }
}

/// Staking pool: eligible validators and orchestrators, pro rata to stake.
fn pay_stakers(nodes: &[NodeInput], results: &mut [NodeReward], pool: u128) -> Paid {
    let stakers: Vec<usize> = (0..nodes.len())
        .filter(|&i| results[i].eligible && nodes[i].role != Role::Compute)
        .collect();
    let total_stake: BigInt = stakers.iter().map(|&i| big(nodes[i].stake)).sum();
    let mut paid = 0u128;
    if !total_stake.is_zero() {
        for &i in &stakers {
            let share = BigRational::new(big(nodes[i].stake), total_stake.clone());
            let r = &mut results[i];
            r.reward = floor_share(pool, &share);
            paid += r.reward;
            r.score = share;
        }
    }
    Paid {
        paid,
        paid_out: !total_stake.is_zero(),
        active_categories: [false; 3],
    }
}

#[cfg(test)]
mod tests;
