//! The economics file (TOML). Every field has a default; the defaults are the seed's numbers
//! where the seed gives one (60/30/10, 40/20/15/15/10, 10k/25k/50k GYM) and documented
//! placeholders where it does not (total supply, number of epochs, sub-metric weights). See
//! `docs/rewards.md`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Category, METRICS, Metric, RewardError, Role, amount};

/// An amount of tokens as written in the file: a TOML integer or a decimal string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AmountText {
    Int(u64),
    Text(String),
}

impl AmountText {
    fn base_units(&self, decimals: u8) -> Result<u128, String> {
        match self {
            AmountText::Int(v) => amount::parse(&v.to_string(), decimals),
            AmountText::Text(s) => amount::parse(s, decimals),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSection {
    pub symbol: String,
    /// Base units per token are 10^decimals.
    pub decimals: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmissionSection {
    /// Tokens emitted over the whole schedule.
    pub total_supply: AmountText,
    /// Number of epochs the supply is emitted over, in equal parts.
    pub epochs: u64,
}

/// Percentages of each epoch's emission; must sum to 100.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistributionSection {
    pub mining: u32,
    pub staking: u32,
    pub development: u32,
    pub community: u32,
    pub reserve: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComputeWeights {
    pub flops: u32,
    pub gpu_seconds: u32,
    pub memory_bytes: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QualityWeights {
    pub loss_improvement: u32,
    pub stable_tokens: u32,
    pub convergence: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkWeights {
    pub uptime_seconds: u32,
    pub ring_rounds: u32,
    pub checkpoints: u32,
}

/// How the mining pool is split: category percentages (must sum to 100) and relative weights of
/// the sub-metrics inside each category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MiningSection {
    pub compute: u32,
    pub quality: u32,
    pub network: u32,
    pub compute_metrics: ComputeWeights,
    pub quality_metrics: QualityWeights,
    pub network_metrics: NetworkWeights,
}

/// Minimum stake per role, in tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StakeSection {
    pub compute: AmountText,
    pub validator: AmountText,
    pub orchestrator: AmountText,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CapsSection {
    /// Claimed FLOPs are capped at `flops_per_param_token × params × tokens` (6 for training:
    /// 2 forward + 4 backward per parameter per token).
    pub flops_per_param_token: u32,
    /// The job's token assignment per delta: a delta's claimed `compute.tokens` is cut to it
    /// (for the FLOPs cap, `stable_tokens` and the averaging weight). Unset: not bounded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_delta: Option<u64>,
    /// The round's wall time: a delta's claimed `compute.wall_seconds` is cut to it.
    /// Unset: not bounded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wall_seconds_per_delta: Option<f64>,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Economics {
    pub token: TokenSection,
    pub emission: EmissionSection,
    pub distribution: DistributionSection,
    pub mining: MiningSection,
    pub stake: StakeSection,
    pub caps: CapsSection,
}

impl Default for TokenSection {
    fn default() -> Self {
        TokenSection {
            symbol: "GYM".into(),
            decimals: 18,
        }
    }
}
impl Default for EmissionSection {
    fn default() -> Self {
        EmissionSection {
            total_supply: AmountText::Text("1000000000".into()),
            epochs: 3650,
        }
    }
}
impl Default for DistributionSection {
    fn default() -> Self {
        DistributionSection {
            mining: 40,
            staking: 20,
            development: 15,
            community: 15,
            reserve: 10,
        }
    }
}
impl Default for ComputeWeights {
    fn default() -> Self {
        ComputeWeights {
            flops: 50,
            gpu_seconds: 30,
            memory_bytes: 20,
        }
    }
}
impl Default for QualityWeights {
    fn default() -> Self {
        QualityWeights {
            loss_improvement: 50,
            stable_tokens: 20,
            convergence: 30,
        }
    }
}
impl Default for NetworkWeights {
    fn default() -> Self {
        NetworkWeights {
            uptime_seconds: 40,
            ring_rounds: 40,
            checkpoints: 20,
        }
    }
}
impl Default for MiningSection {
    fn default() -> Self {
        MiningSection {
            compute: 60,
            quality: 30,
            network: 10,
            compute_metrics: ComputeWeights::default(),
            quality_metrics: QualityWeights::default(),
            network_metrics: NetworkWeights::default(),
        }
    }
}
impl Default for StakeSection {
    fn default() -> Self {
        StakeSection {
            compute: AmountText::Text("10000".into()),
            validator: AmountText::Text("25000".into()),
            orchestrator: AmountText::Text("50000".into()),
        }
    }
}
impl Default for CapsSection {
    fn default() -> Self {
        CapsSection {
            flops_per_param_token: 6,
            tokens_per_delta: None,
            wall_seconds_per_delta: None,
        }
    }
}

/// Validated parameters, amounts in base units.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub symbol: String,
    pub decimals: u8,
    pub total_supply: u128,
    pub epochs: u64,
    /// mining, staking, development, community, reserve (percent).
    pub distribution: [u32; 5],
    /// compute, quality, network (percent).
    pub categories: [u32; 3],
    /// Relative weight of each metric inside its category, indexed like [`METRICS`].
    pub metric_weights: [u32; METRICS.len()],
    /// Minimum stake of compute, validator, orchestrator (base units).
    pub min_stake: [u128; 3],
    pub flops_per_param_token: u32,
    /// `[caps] tokens_per_delta` and `wall_seconds_per_delta` (unset: unbounded).
    pub tokens_per_delta: Option<u64>,
    pub wall_seconds_per_delta: Option<f64>,
    /// Where the parameters came from (a path, or "defaults").
    pub source: String,
}

impl Economics {
    /// Parses TOML text; `origin` names the file in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, RewardError> {
        toml::from_str(text).map_err(|e| RewardError::Economics {
            path: origin.to_string(),
            field: "-".into(),
            reason: e.to_string().trim().replace('\n', " "),
        })
    }

    pub fn load(path: &Path) -> Result<Self, RewardError> {
        let text = std::fs::read_to_string(path).map_err(|source| RewardError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// The file's text, for `gym reward economics`.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Checks every field and converts amounts to base units.
    pub fn params(&self, origin: &str) -> Result<Params, RewardError> {
        let err = |field: &str, reason: String| RewardError::Economics {
            path: origin.to_string(),
            field: field.to_string(),
            reason,
        };
        let d = self.token.decimals;
        if d > amount::MAX_DECIMALS {
            return Err(err(
                "token.decimals",
                format!("{d} exceeds the limit of {}", amount::MAX_DECIMALS),
            ));
        }
        let sym = &self.token.symbol;
        if sym.is_empty() || sym.len() > 16 || !sym.bytes().all(|c| c.is_ascii_alphanumeric()) {
            return Err(err(
                "token.symbol",
                format!("{sym:?} must be 1 to 16 ASCII letters or digits"),
            ));
        }
        let total_supply = self
            .emission
            .total_supply
            .base_units(d)
            .map_err(|e| err("emission.total_supply", e))?;
        if self.emission.epochs == 0 {
            return Err(err("emission.epochs", "must be at least 1".into()));
        }
        let dist = &self.distribution;
        let distribution = [
            dist.mining,
            dist.staking,
            dist.development,
            dist.community,
            dist.reserve,
        ];
        let sum: u64 = distribution.iter().map(|&v| u64::from(v)).sum();
        if sum != 100 {
            return Err(err(
                "distribution",
                format!("percentages sum to {sum}, not 100"),
            ));
        }
        let m = &self.mining;
        let categories = [m.compute, m.quality, m.network];
        let sum: u64 = categories.iter().map(|&v| u64::from(v)).sum();
        if sum != 100 {
            return Err(err(
                "mining",
                format!("compute + quality + network = {sum}, not 100"),
            ));
        }
        let metric_weights = [
            m.compute_metrics.flops,
            m.compute_metrics.gpu_seconds,
            m.compute_metrics.memory_bytes,
            m.quality_metrics.loss_improvement,
            m.quality_metrics.stable_tokens,
            m.quality_metrics.convergence,
            m.network_metrics.uptime_seconds,
            m.network_metrics.ring_rounds,
            m.network_metrics.checkpoints,
        ];
        for c in Category::ALL {
            let total: u64 = METRICS
                .iter()
                .filter(|x| x.category() == c)
                .map(|x| u64::from(metric_weights[x.index()]))
                .sum();
            if total == 0 && categories[c.index()] > 0 {
                return Err(err(
                    &format!("mining.{}_metrics", c.name()),
                    format!(
                        "all weights are 0 but the {} category has {}%",
                        c.name(),
                        categories[c.index()]
                    ),
                ));
            }
            if total > 1_000_000 {
                return Err(err(
                    &format!("mining.{}_metrics", c.name()),
                    "weights sum above 1000000".into(),
                ));
            }
        }
        let stake = |field: &str, a: &AmountText| a.base_units(d).map_err(|e| err(field, e));
        let min_stake = [
            stake("stake.compute", &self.stake.compute)?,
            stake("stake.validator", &self.stake.validator)?,
            stake("stake.orchestrator", &self.stake.orchestrator)?,
        ];
        Ok(Params {
            symbol: sym.clone(),
            decimals: d,
            total_supply,
            epochs: self.emission.epochs,
            distribution,
            categories,
            metric_weights,
            min_stake,
            flops_per_param_token: self.caps.flops_per_param_token,
            tokens_per_delta: self.caps.tokens_per_delta,
            wall_seconds_per_delta: match self.caps.wall_seconds_per_delta {
                Some(s) if !(s.is_finite() && s > 0.0) => {
                    return Err(RewardError::Economics {
                        path: origin.to_string(),
                        field: "caps.wall_seconds_per_delta".into(),
                        reason: format!("{s} (must be a positive number)"),
                    });
                }
                s => s,
            },
            source: origin.to_string(),
        })
    }
}

impl Params {
    pub fn min_stake(&self, role: Role) -> u128 {
        self.min_stake[role.index()]
    }

    pub fn weight(&self, m: Metric) -> u32 {
        self.metric_weights[m.index()]
    }

    /// Tokens emitted in `epoch` (0-based): the supply in equal parts, the first
    /// `total_supply mod epochs` epochs one base unit more, nothing after the last epoch. Summed
    /// over all epochs this is exactly the total supply.
    pub fn emission(&self, epoch: u64) -> u128 {
        let n = u128::from(self.epochs);
        let e = u128::from(epoch);
        if e >= n {
            return 0;
        }
        self.total_supply / n + u128::from(e < self.total_supply % n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seed_numbers() {
        let p = Economics::default().params("defaults").unwrap();
        assert_eq!(p.distribution, [40, 20, 15, 15, 10]);
        assert_eq!(p.categories, [60, 30, 10]);
        let gym = 10u128.pow(18);
        assert_eq!(p.min_stake, [10_000 * gym, 25_000 * gym, 50_000 * gym]);
        assert_eq!(p.flops_per_param_token, 6);
    }

    #[test]
    fn default_toml_round_trips() {
        let e = Economics::default();
        assert_eq!(Economics::from_toml(&e.to_toml(), "t").unwrap(), e);
    }

    #[test]
    fn partial_file_keeps_other_defaults() {
        let e = Economics::from_toml("[stake]\ncompute = 5\n", "t").unwrap();
        let p = e.params("t").unwrap();
        assert_eq!(p.min_stake[0], 5 * 10u128.pow(18));
        assert_eq!(p.categories, [60, 30, 10]);
    }

    #[test]
    fn bad_files_name_the_field() {
        let cases = [
            ("[distribution]\nmining = 50\n", "distribution"),
            ("[mining]\ncompute = 70\n", "mining"),
            ("[stake]\ncompute = \"-1\"\n", "stake.compute"),
            ("[emission]\nepochs = 0\n", "emission.epochs"),
            (
                "[mining.quality_metrics]\nloss_improvement = 0\nstable_tokens = 0\nconvergence = 0\n",
                "quality_metrics",
            ),
        ];
        for (text, field) in cases {
            let e = Economics::from_toml(text, "t")
                .and_then(|e| e.params("t"))
                .unwrap_err();
            assert!(e.to_string().contains(field), "{text:?}: {e}");
        }
        let e = Economics::from_toml("[mining]\ncompue = 60\n", "t").unwrap_err();
        assert!(e.to_string().contains("compue"), "{e}");
    }

    #[test]
    fn emission_sums_to_supply() {
        let mut p = Economics::default().params("d").unwrap();
        p.total_supply = 1003;
        p.epochs = 10;
        let total: u128 = (0..12).map(|e| p.emission(e)).sum();
        assert_eq!(total, 1003);
        assert_eq!(p.emission(0), 101);
        assert_eq!(p.emission(3), 100);
        assert_eq!(p.emission(10), 0);
    }
}
