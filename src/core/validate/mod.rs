//! Validation of a round's deltas before they are averaged (`gym validate`, `gym eval
//! --report`), as a library the orchestrator's validator service calls.
//!
//! A validator gets the round's deltas, the round's starting point (the previous aggregate,
//! optional) and its own held-out data. [`load_member`] verifies each delta (structure,
//! checksum, signature, trusted signer) and reads its factors; [`judge`] applies the static
//! checks (one delta per worker, epoch, base model, parent = the round's start, finite values,
//! L2 norm of the update ≤ C), then evaluates the weighted mean of the admitted deltas with and
//! without each one on the held-out data (the "baseline metrics") and fails the worst delta
//! while it makes the loss worse by more than the tolerance, recomputing after each removal.
//! [`Finding::report`] turns a verdict into the signed `gym-eval-report/1` of
//! `docs/rewards.md` §7. The loss itself is a closure, so this logic runs without a model in
//! tests; [`ModelLoss`] is the real one (answer NLL per token, `core::train::eval`).

pub mod dp;
pub mod metrics;
pub mod model_loss;
pub mod offline;
pub mod rdp;

use std::path::Path;

use serde::Serialize;

use crate::core::delta::{self, DeltaError, Dtype, FileSource, VerifyOptions};
use crate::core::error::{Classify, ErrorClass};
use crate::core::keys::Identity;
use crate::core::reward::records::{EvalReport, Verdict};

pub use model_loss::ModelLoss;

#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error("{file}: {source}")]
    Delta {
        file: String,
        #[source]
        source: DeltaError,
    },
    #[error("{file}: {reason}")]
    Input { file: String, reason: String },
    #[error("evaluating the held-out loss: {0}")]
    Eval(#[from] crate::core::train::trainer::TrainError),
    #[error("{0}")]
    Usage(String),
    #[error("differential privacy: {0}")]
    Privacy(String),
}

impl Classify for ValidateError {
    fn class(&self) -> ErrorClass {
        match self {
            ValidateError::Delta { source, .. } => source.class(),
            ValidateError::Input { .. } => ErrorClass::Malformed,
            ValidateError::Eval(e) => e.class(),
            ValidateError::Usage(_) => ErrorClass::Usage,
            ValidateError::Privacy(_) => ErrorClass::Policy,
        }
    }
}

/// One verified delta of the round.
#[derive(Debug, Clone)]
pub struct Member {
    pub file: String,
    /// Body digest, 64 hex digits.
    pub digest: String,
    /// Worker id of the signer (`gym1…`), checked against `metadata.worker_id`.
    pub worker: String,
    pub epoch: u64,
    pub seq: u64,
    pub parent: Option<String>,
    pub base_hash: Option<String>,
    /// `compute.tokens` as signed (0 when absent).
    pub tokens: u64,
    /// Tensor names and shapes, in file order.
    pub layout: Vec<(String, Vec<u64>)>,
    /// All tensors, flattened in layout order.
    pub factors: Vec<f32>,
}

/// Verifies a delta (a signature is always required) and reads its f32 tensors.
pub fn load_member(path: &Path, opts: &VerifyOptions) -> Result<Member, ValidateError> {
    read_member(path, opts, true)
}

/// A round's starting point read from a delta that need not be signed (an orchestrated round
/// starts from the previous ring result, which no one signs; it is named by its content
/// address, so its bytes are the agreed ones).
pub fn load_start(path: &Path) -> Result<Start, ValidateError> {
    let m = read_member(path, &VerifyOptions::default(), false)?;
    Ok(Start {
        digest: Some(m.digest),
        layout: m.layout,
        factors: m.factors,
    })
}

fn read_member(path: &Path, opts: &VerifyOptions, signed: bool) -> Result<Member, ValidateError> {
    let file = path.display().to_string();
    let derr = |source| ValidateError::Delta {
        file: file.clone(),
        source,
    };
    let src = FileSource::open(path).map_err(|e| {
        derr(DeltaError::Io {
            offset: 0,
            source: e,
        })
    })?;
    let mut opts = opts.clone();
    opts.require_signature = signed;
    let rep = delta::verify(&src, &opts).map_err(derr)?;
    let md = &rep.delta.metadata;
    let signer = rep
        .signer
        .as_ref()
        .map(|s| s.worker_id())
        .unwrap_or_default();
    if signed && signer != md.worker_id {
        return Err(ValidateError::Input {
            file,
            reason: format!(
                "metadata.worker_id {} is not the signer {signer}",
                md.worker_id
            ),
        });
    }
    let mut layout = Vec::new();
    let mut factors = Vec::new();
    for t in &rep.delta.tensors {
        if t.dtype != Dtype::F32 {
            return Err(ValidateError::Input {
                file,
                reason: format!("tensor {} is {}, expected f32", t.name, t.dtype.name()),
            });
        }
        delta::read_tensor(&src, &rep.delta, t, |b| {
            factors.extend(
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            )
        })
        .map_err(derr)?;
        layout.push((t.name.clone(), t.shape.clone()));
    }
    Ok(Member {
        digest: rep.digest_hex(),
        worker: signer,
        epoch: md.epoch,
        seq: md.seq,
        parent: md.parent_hash.clone(),
        base_hash: md.base_hash.clone(),
        tokens: md.compute.as_ref().map(|c| c.tokens).unwrap_or(0),
        layout,
        factors,
        file,
    })
}

/// The round's starting point: the factors every member trained from (the previous
/// aggregate), and its digest when it is a delta file.
#[derive(Debug, Clone)]
pub struct Start {
    pub digest: Option<String>,
    pub layout: Vec<(String, Vec<u64>)>,
    pub factors: Vec<f32>,
}

impl From<Member> for Start {
    fn from(m: Member) -> Self {
        Start {
            digest: Some(m.digest),
            layout: m.layout,
            factors: m.factors,
        }
    }
}

/// What the validator enforces.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// L2 bound C on the update (delta minus start); above it the delta fails.
    pub max_norm: Option<f64>,
    /// Required `metadata.epoch`.
    pub epoch: Option<u64>,
    /// Required `metadata.base_hash` (the validator's model).
    pub base_hash: Option<String>,
    /// A delta fails when the aggregate's held-out loss with it exceeds the loss without it
    /// by more than this (nats per answer token).
    pub tolerance: f64,
    /// Averaging weight = `compute.tokens` capped at this (the job's assignment), at least 1.
    pub max_tokens: Option<u64>,
    /// The most tokens a round's training can touch (steps × rows × (prompt + completion)
    /// lengths, [`crate::core::train::config::TrainConfig::max_tokens_per_delta`]): a delta
    /// claiming more fails.
    pub claim_bound: Option<u64>,
    /// The job's DP noise multiplier z: released updates carry N(0, (z·C)²) noise per
    /// coordinate, so the bound checked is [`norm_bound`] rather than C.
    pub noise_multiplier: f64,
}

/// The largest norm an honest released update of `d` coordinates has, except with probability
/// below 1.6e-8: `C + z·C·(√d + 6)` (Gaussian concentration: ‖N(0, σ²I_d)‖ ≤ σ(√d + t) with
/// probability ≥ 1 − e^{−t²/2}; t = 6). Without noise, C.
/// Either way plus `10⁻⁴·C`: the released factors are f32, so an update clipped to exactly C
/// measures up to a few f32 roundings of the factors (about 10⁻⁷ relative) away from it.
pub fn norm_bound(c: f64, z: f64, d: usize) -> f64 {
    let slack = 1e-4 * c;
    if z > 0.0 {
        c + z * c * ((d as f64).sqrt() + 6.0) + slack
    } else {
        c + slack
    }
}

/// The validator's finding on one delta.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub file: String,
    pub digest: String,
    pub subject: String,
    pub epoch: u64,
    pub seq: u64,
    pub verdict: Verdict,
    /// Why it failed (empty for `pass`).
    pub reasons: Vec<String>,
    /// Averaging weight used.
    pub weight: u64,
    /// ‖delta − start‖₂.
    pub norm: f64,
    /// Held-out loss of the aggregate without and with this delta (absent when the delta
    /// failed a static check and was never evaluated).
    pub loss_without: Option<f64>,
    pub loss_with: Option<f64>,
    pub loss_improvement: f64,
    pub grad_norm_stability: f64,
    pub convergence: f64,
}

impl Finding {
    /// The signed `gym-eval-report/1` record of this finding.
    pub fn report(&self, id: &Identity) -> EvalReport {
        let mut r = EvalReport::new(self.epoch, &self.subject, &self.digest, self.verdict);
        if !self.reasons.is_empty() {
            r.reason = Some(self.reasons.join("; "));
        }
        r.loss_improvement = self.loss_improvement;
        r.grad_norm_stability = self.grad_norm_stability;
        r.convergence = self.convergence;
        r.sign(id);
        r
    }
}

/// The result of judging a round.
#[derive(Debug, Clone, Serialize)]
pub struct Judgement {
    pub findings: Vec<Finding>,
    /// Indices (into the members) of the deltas that passed, in input order.
    pub admitted: Vec<usize>,
    /// Held-out loss of the start point (or of the bare model without a start).
    pub start_loss: f64,
    /// Held-out loss of the weighted mean of the admitted deltas.
    pub aggregate_loss: Option<f64>,
}

/// Reasons a delta fails before any evaluation.
fn static_reasons(
    i: usize,
    members: &[Member],
    start: Option<&Start>,
    policy: &Policy,
    norm: f64,
) -> Vec<String> {
    let m = &members[i];
    let mut r = Vec::new();
    let first = &members[0];
    let layout = start.map(|s| &s.layout).unwrap_or(&first.layout);
    if &m.layout != layout {
        r.push("its tensors (names or shapes) differ from the round's".to_string());
        return r;
    }
    if m.factors.iter().any(|x| !x.is_finite()) {
        r.push("it holds NaN or infinite values".into());
    }
    if members
        .iter()
        .enumerate()
        .any(|(j, o)| j != i && o.worker == m.worker)
    {
        r.push(format!(
            "{} submitted more than one delta this round (one counts per worker)",
            m.worker
        ));
    }
    if let Some(b) = policy.claim_bound
        && m.tokens > b
    {
        r.push(format!(
            "its compute record claims {} tokens, more than a round's training can touch ({b})",
            m.tokens
        ));
    }
    if let Some(e) = policy.epoch
        && m.epoch != e
    {
        r.push(format!("epoch {} is not the round's epoch {e}", m.epoch));
    }
    if let Some(h) = &policy.base_hash
        && m.base_hash.as_deref() != Some(h)
    {
        r.push(format!(
            "base_hash {} is not the validator's model {h}",
            m.base_hash.as_deref().unwrap_or("(absent)")
        ));
    }
    if let Some(d) = start.and_then(|s| s.digest.as_deref())
        && m.parent.as_deref() != Some(d)
    {
        r.push(format!(
            "parent_hash {} is not the round's start {d} (stale or replayed delta)",
            m.parent.as_deref().unwrap_or("(absent)")
        ));
    }
    if let Some(c) = policy.max_norm {
        let b = norm_bound(c, policy.noise_multiplier, m.factors.len());
        if norm.is_nan() || norm > b {
            r.push(format!("update norm {norm:.6} exceeds the bound {b}"));
        }
    }
    r
}

/// Judges a round. `loss(factors)` evaluates the held-out loss of the model with those
/// adapter factors (all zeros = the bare model).
pub fn judge<E>(
    members: &[Member],
    start: Option<&Start>,
    policy: &Policy,
    loss: &mut dyn FnMut(&[f32]) -> Result<f64, E>,
) -> Result<Judgement, E> {
    let n = members.len();
    let sf = start.map(|s| s.factors.as_slice());
    let updates: Vec<Vec<f64>> = members
        .iter()
        .map(|m| {
            if sf.is_some_and(|s| s.len() != m.factors.len()) {
                vec![f64::NAN]
            } else {
                metrics::update(&m.factors, sf)
            }
        })
        .collect();
    let norms: Vec<f64> = updates.iter().map(|u| metrics::l2(u)).collect();
    let weights: Vec<u64> = members
        .iter()
        .map(|m| {
            policy
                .max_tokens
                .map_or(m.tokens, |c| m.tokens.min(c))
                .max(1)
        })
        .collect();
    let mut findings: Vec<Finding> = (0..n)
        .map(|i| {
            let reasons = static_reasons(i, members, start, policy, norms[i]);
            Finding {
                file: members[i].file.clone(),
                digest: members[i].digest.clone(),
                subject: members[i].worker.clone(),
                epoch: members[i].epoch,
                seq: members[i].seq,
                verdict: if reasons.is_empty() {
                    Verdict::Pass
                } else {
                    Verdict::Fail
                },
                reasons,
                weight: weights[i],
                norm: norms[i],
                loss_without: None,
                loss_with: None,
                loss_improvement: 0.0,
                grad_norm_stability: 0.0,
                convergence: 0.0,
            }
        })
        .collect();
    let len = start
        .map(|s| s.factors.len())
        .unwrap_or(members.first().map_or(0, |m| m.factors.len()));
    let zeros = vec![0f32; len];
    let base = sf.unwrap_or(&zeros);
    let start_loss = loss(base)?;
    let mut admitted: Vec<usize> = (0..n).filter(|&i| findings[i].reasons.is_empty()).collect();
    let xs: Vec<&[f32]> = members.iter().map(|m| m.factors.as_slice()).collect();
    let aggregate_loss = loop {
        let Some(agg) = metrics::weighted_mean(&xs, &weights, &admitted) else {
            break None;
        };
        let l_all = loss(&agg)?;
        let mut worst: Option<(usize, f64)> = None;
        for &i in &admitted {
            let others: Vec<usize> = admitted.iter().copied().filter(|&j| j != i).collect();
            let l_without = match metrics::weighted_mean(&xs, &weights, &others) {
                Some(a) => loss(&a)?,
                None => start_loss,
            };
            let f = &mut findings[i];
            f.loss_without = Some(l_without);
            f.loss_with = Some(l_all);
            f.loss_improvement = l_without - l_all;
            if worst.is_none_or(|(_, w)| f.loss_improvement < w) {
                worst = Some((i, f.loss_improvement));
            }
        }
        match worst {
            Some((i, li)) if li < -policy.tolerance || !li.is_finite() => {
                findings[i].verdict = Verdict::Fail;
                findings[i].reasons.push(format!(
                    "baseline metrics: the held-out loss is {:.6} with it and {:.6} without it \
                     (worse by more than the tolerance {})",
                    l_all,
                    l_all + li,
                    policy.tolerance
                ));
                admitted.retain(|&j| j != i);
            }
            _ => break Some(l_all),
        }
    };
    geometry(
        &mut findings,
        &updates,
        &norms,
        &xs,
        &weights,
        &admitted,
        sf,
    );
    Ok(Judgement {
        findings,
        admitted,
        start_loss,
        aggregate_loss,
    })
}

/// Fills `grad_norm_stability` and `convergence` of every finding that has a comparable
/// update, against the admitted deltas' aggregate update and median norm.
fn geometry(
    findings: &mut [Finding],
    updates: &[Vec<f64>],
    norms: &[f64],
    xs: &[&[f32]],
    weights: &[u64],
    admitted: &[usize],
    start: Option<&[f32]>,
) {
    let ref_norms: Vec<f64> = admitted.iter().map(|&i| norms[i]).collect();
    let median = metrics::lower_median(&ref_norms);
    let agg_update = metrics::weighted_mean(xs, weights, admitted)
        .map(|a| metrics::update(&a, start))
        .unwrap_or_default();
    for (i, f) in findings.iter_mut().enumerate() {
        if updates[i].len() != agg_update.len() {
            continue;
        }
        f.grad_norm_stability = metrics::stability(norms[i], median);
        let c = metrics::convergence(&updates[i], &agg_update);
        f.convergence = if c.is_finite() { c } else { 0.0 };
    }
}

#[cfg(test)]
mod tests;
