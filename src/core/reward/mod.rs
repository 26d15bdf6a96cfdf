//! Epoch rewards: who earns what from an epoch's emission, computed exactly in integer base units.
//! The formula, the inputs and every rounding rule are specified in `docs/rewards.md`; this module
//! is its reference implementation.
//!
//! - [`economics`]: the economics file (TOML) and the validated [`Params`].
//! - [`alloc`]: the allocation itself, from per-node integer metrics to rewards.
//! - [`contrib`]: what-if inputs from a contributions file (JSON or CSV).
//! - [`signed`], [`records`], [`epoch`]: signed ring receipts and eval reports, and reading an
//!   epoch folder (signed deltas, receipts, reports) into per-node metrics.
//! - [`claim`]: signed reward claims binding a delta to its compute record.

pub mod alloc;
pub mod amount;
pub mod claim;
pub mod contrib;
pub mod economics;
pub mod epoch;
pub mod records;
pub mod signed;

pub use alloc::{Estimate, NodeInput, NodeReward, Pools, estimate};
pub use economics::{Economics, Params};

use crate::core::atomic::AtomicError;
use crate::core::delta::DeltaError;
use crate::core::error::{Classify, ErrorClass};

/// Metric values are fixed point: an input value `v` becomes the integer `floor(v × 10^6)`.
pub const FIXED_POINT: i128 = 1_000_000;
/// Largest metric value accepted, in input units (10^30, so `× 10^6` stays far inside i128).
pub const MAX_METRIC: f64 = 1e30;

/// Everything an estimate is computed from: per-node inputs, plus what was learnt on the way.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Inputs {
    /// The epoch named by the input, if it names one.
    pub epoch: Option<u64>,
    pub nodes: Vec<NodeInput>,
    /// Adjustments made to inputs (capped FLOPs, ignored duplicates), for the user.
    pub notes: Vec<String>,
    /// Files or records that were not used, with the reason.
    pub rejected: Vec<Rejected>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rejected {
    pub file: String,
    pub reason: String,
}

/// What a node does in the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Compute,
    Validator,
    Orchestrator,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Compute, Role::Validator, Role::Orchestrator];

    pub fn name(self) -> &'static str {
        match self {
            Role::Compute => "compute",
            Role::Validator => "validator",
            Role::Orchestrator => "orchestrator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == s.trim())
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// The three parts of the mining pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Compute,
    Quality,
    Network,
}

impl Category {
    pub const ALL: [Category; 3] = [Category::Compute, Category::Quality, Category::Network];

    pub fn name(self) -> &'static str {
        match self {
            Category::Compute => "compute",
            Category::Quality => "quality",
            Category::Network => "network",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// One sub-metric. Every metric is extensive (it adds up over a node's work), which is what makes
/// proportional shares split-proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Floating-point operations, capped at `6 × params × tokens`.
    Flops,
    /// GPU time in seconds (the seed's "GPU hours").
    GpuSeconds,
    /// Bytes moved through device memory (bandwidth × time; the seed's "memory bandwidth").
    MemoryBytes,
    /// Validation-loss improvement of the aggregate with vs without the node's deltas (signed).
    LossImprovement,
    /// Tokens weighted by the validators' gradient-norm stability score in [0, 1] (signed input,
    /// clamped).
    StableTokens,
    /// Projection of the node's update onto the aggregate update (signed).
    Convergence,
    /// Seconds the node was reachable, attested by other ring members.
    UptimeSeconds,
    /// Ring rounds in which the node forwarded its chunks, attested by the next member.
    RingRounds,
    /// Checkpoints the node validated, attested by a validator or orchestrator.
    Checkpoints,
}

pub const METRICS: [Metric; 9] = [
    Metric::Flops,
    Metric::GpuSeconds,
    Metric::MemoryBytes,
    Metric::LossImprovement,
    Metric::StableTokens,
    Metric::Convergence,
    Metric::UptimeSeconds,
    Metric::RingRounds,
    Metric::Checkpoints,
];

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Flops => "flops",
            Metric::GpuSeconds => "gpu_seconds",
            Metric::MemoryBytes => "memory_bytes",
            Metric::LossImprovement => "loss_improvement",
            Metric::StableTokens => "stable_tokens",
            Metric::Convergence => "convergence",
            Metric::UptimeSeconds => "uptime_seconds",
            Metric::RingRounds => "ring_rounds",
            Metric::Checkpoints => "checkpoints",
        }
    }

    pub fn parse(s: &str) -> Option<Metric> {
        METRICS.into_iter().find(|m| m.name() == s)
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn category(self) -> Category {
        match self {
            Metric::Flops | Metric::GpuSeconds | Metric::MemoryBytes => Category::Compute,
            Metric::LossImprovement | Metric::StableTokens | Metric::Convergence => {
                Category::Quality
            }
            Metric::UptimeSeconds | Metric::RingRounds | Metric::Checkpoints => Category::Network,
        }
    }

    /// Quality metrics may be negative in the input (a delta that made things worse); they are
    /// clamped to 0 before any share is computed. The others must be non-negative.
    pub fn may_be_negative(self) -> bool {
        self.category() == Category::Quality
    }
}

/// Converts an input value to fixed point: `floor(v × 10^6)`. Flooring (not rounding) keeps the
/// conversion split-proof: `floor(a) + floor(b) <= floor(a + b)`.
pub fn to_fixed(v: f64) -> Result<i128, String> {
    if !v.is_finite() {
        return Err(format!("{v} is not a finite number"));
    }
    if v.abs() > MAX_METRIC {
        return Err(format!("{v} exceeds the limit of 1e30"));
    }
    Ok((v * FIXED_POINT as f64).floor() as i128)
}

/// Every way computing rewards can fail. Each names the file and record at fault.
#[derive(Debug, thiserror::Error)]
pub enum RewardError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("economics {path}: {field}: {reason}")]
    Economics {
        path: String,
        field: String,
        reason: String,
    },
    #[error("{file}: {record}: {reason}")]
    Record {
        file: String,
        record: String,
        reason: String,
    },
    #[error("{file}: node {node:?} appears more than once")]
    DuplicateNode { file: String, node: String },
    #[error("{file}: {record}: format {found:?} is not supported (expected {expected:?})")]
    Format {
        file: String,
        record: String,
        found: String,
        expected: &'static str,
    },
    #[error("{file}: {record}: {algorithm} signature does not verify (tampered or wrong key)")]
    BadSignature {
        file: String,
        record: String,
        algorithm: &'static str,
    },
    #[error("{file}: {record}: not signed")]
    Unsigned { file: String, record: String },
    #[error("{file}: {record}: signer {worker_id} is not in the epoch's roster")]
    UnknownSigner {
        file: String,
        record: String,
        worker_id: String,
    },
    #[error("{file}: {record}: {reason}")]
    Policy {
        file: String,
        record: String,
        reason: String,
    },
    #[error("{file}: {source}")]
    Delta { file: String, source: DeltaError },
    #[error("{path}: no roster (nodes.json or nodes.csv) in the epoch folder")]
    NoRoster { path: String },
    #[error("the delta is signed by {delta_signer}, but the claim key is {key}")]
    ClaimSigner { delta_signer: String, key: String },
    #[error("{file}: {field} in the claim is {claim}, but the delta has {delta}")]
    ClaimMismatch {
        file: String,
        field: &'static str,
        claim: String,
        delta: String,
    },
    #[error(transparent)]
    Write(#[from] AtomicError),
}

impl Classify for RewardError {
    fn class(&self) -> ErrorClass {
        match self {
            RewardError::Read { .. } | RewardError::NoRoster { .. } => ErrorClass::Io,
            RewardError::Economics { .. }
            | RewardError::Record { .. }
            | RewardError::DuplicateNode { .. } => ErrorClass::Malformed,
            RewardError::Format { .. } => ErrorClass::Unsupported,
            RewardError::BadSignature { .. } => ErrorClass::Signature,
            RewardError::Unsigned { .. }
            | RewardError::UnknownSigner { .. }
            | RewardError::ClaimSigner { .. } => ErrorClass::Untrusted,
            RewardError::Policy { .. } | RewardError::ClaimMismatch { .. } => ErrorClass::Policy,
            RewardError::Delta { source, .. } => source.class(),
            RewardError::Write(e) => e.class(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_point_floors_and_rejects_non_finite() {
        assert_eq!(to_fixed(1.5).unwrap(), 1_500_000);
        assert_eq!(to_fixed(-0.0000015).unwrap(), -2);
        assert!(to_fixed(f64::NAN).is_err());
        assert!(to_fixed(f64::INFINITY).is_err());
        assert!(to_fixed(1e31).is_err());
    }

    #[test]
    fn names_round_trip() {
        for m in METRICS {
            assert_eq!(Metric::parse(m.name()), Some(m));
            assert_eq!(METRICS[m.index()], m);
        }
        for r in Role::ALL {
            assert_eq!(Role::parse(r.name()), Some(r));
        }
        assert_eq!(Role::parse("miner"), None);
    }
}
