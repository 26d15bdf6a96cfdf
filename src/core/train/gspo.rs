//! Group-normalised advantages and the GSPO/GRPO clipped policy loss, with the semantics of TRL
//! 1.16 `GRPOTrainer` (`_generate_and_score_completions` for advantages, `_compute_loss` for the
//! loss and its logged metrics). `tools/reference/gspo_loss.py` runs TRL's own code on fixed
//! inputs and writes `testdata/train-ref/gspo_loss.json`; the tests here compare against it.
//!
//! # Advantages (`advantages`)
//! With one reward function and rewards `r` laid out group after group (`group` completions of
//! the same prompt next to each other):
//! `A_i = (r_i - mean_g(r)) / (std + 1e-4)`, where `mean_g` is the mean of the completion's
//! group and `std` is the sample standard deviation (Bessel's correction, `n - 1`) of the group
//! (`Group`) or of the whole batch (`Batch`; the mean stays the group mean). `None` does not
//! divide: `A_i = r_i - mean_g(r)`. A NaN reward marks an unscorable completion: it is left out
//! of means and standard deviations (TRL's `nanmean`/`nanstd`) and its advantage is 0, as is
//! every other NaN advantage (e.g. a group with one scorable completion under `Group`). A group
//! of one has std 0, so its advantage is 0.
//!
//! # Loss (`loss`, `loss_with`)
//! Per token, with `M` the mask, `L_i = Σ_t M_it` and `Lc_i = max(L_i, 1)`:
//! * log ratio `ρ_it = logp_it - old_it`;
//! * importance weight, by level:
//!   - `Token`: `w_it = exp(ρ_it)`, shape (B,T);
//!   - `Sequence` (GSPO): `w_i = exp(Σ_t M_it ρ_it / Lc_i)`, shape (B,1); an all-masked row gets 1;
//!   - `SequenceToken` (GSPO-token, GSPO paper §4.3; not in TRL 1.16, which dropped the
//!     experimental trainer that had it): `w_it = exp(logp_it - sg(logp_it) + sg(Σ_t M_it ρ_it / Lc_i))`,
//!     shape (B,T): the value of `Sequence`'s weight, the gradient of a per-token ratio. With one
//!     advantage per sequence the loss and its gradient equal `Sequence`'s (only the clip
//!     metrics differ: they are token-weighted), and the KL term's bias-correction gradient differs;
//! * clipped objective `ℓ = -min(w·A, clamp(w, 1-ε_low, 1+ε_high)·A)` (torch's `min`/`clamp`
//!   gradients: ties split the gradient in half, `clamp` passes it on inside the closed range);
//! * if `beta != 0`: `k_it = exp(ref_it - logp_it) - (ref_it - logp_it) - 1`, multiplied by `w`
//!   (broadcast) when `bias_correction_kl` (TRL's default `use_bias_correction_kl=True`; `w` is
//!   differentiable there), and `ℓ ← ℓ + beta·k`, which makes ℓ (B,T) at every level.
//!
//! Reduction of a micro-batch, then division by the number of gradient-accumulation micro-batches
//! of the optimiser step (`LossOpts::grad_accum`, TRL's `current_gradient_accumulation_steps`;
//! its `Trainer` does not divide again, `loss_is_scaled_for_ga = True`):
//! * `Grpo`: `mean_i( Σ_t M_it ℓ_it / Lc_i )`: the mean over all B rows, all-masked rows included
//!   (they contribute 0 but count in B);
//! * `Bnpo`: `Σ M ℓ / max(Σ M, 1)` over the micro-batch's own tokens (not the whole accumulated
//!   batch: results depend on how the batch is split);
//! * `DrGrpo`: `Σ M ℓ / (B · max_completion_length)`, B the micro-batch's rows.
//!
//! For `Sequence`, ℓ is (B,1) and is broadcast over the mask first, so `Bnpo`/`DrGrpo` weight a
//! sequence by its length (TRL warns about that combination) and `Grpo` gives each sequence `ℓ_i`.
//!
//! The optimiser step's gradient is therefore the mean over micro-batches of each micro-batch's
//! normalised loss. TRL's `mask_truncated_completions` is a mask edit made before the loss:
//! zero the whole mask row of each completion whose last token is neither EOS nor padding.
//!
//! # Metrics (`LossStats`), as TRL logs them
//! `gmm(x)` ("global masked mean"): for (B,T) values `Σ M x / max(Σ M, 1)`; for (B,1) values
//! (the `Sequence` level) the plain mean over all B rows, all-masked rows included.
//! * `clip_low = gmm([w < 1-ε_low ∧ A < 0])`, `clip_high = gmm([w > 1+ε_high ∧ A > 0])`,
//!   `clip_region = gmm([low ∨ high])` (strict inequalities, so a weight exactly on the bound is
//!   not clipped); `clip_low_min` / `clip_high_max` are the min / max over rows of the per-row
//!   fraction (`Σ_t M x / L_i`, rows with `L_i = 0` skipped; NaN if none is left);
//! * `kl = gmm(k)` (bias-corrected as in the loss) when `ref_logp` is given, NaN otherwise (TRL
//!   logs it only when `beta != 0`);
//! * `ratio_mean = gmm(w)` (not a TRL metric); `policy_loss` is the loss before the division
//!   by `grad_accum`; `tokens = Σ M`.

use candle_core::{DType, Tensor};

/// How per-token log-ratios become importance weights.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum IsLevel {
    /// One ratio per token (PPO/GRPO).
    Token,
    /// One ratio per sequence: the exponential of the mean token log-ratio (GSPO).
    Sequence,
    /// The sequence ratio's value with per-token gradients (GSPO-token).
    SequenceToken,
}

/// How the per-token losses of a micro-batch are averaged.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum LossType {
    /// Mean over sequences of each sequence's mean over its tokens.
    Grpo,
    /// Mean over the micro-batch's tokens.
    Bnpo,
    /// Sum over tokens divided by rows × max_completion_length.
    DrGrpo,
}

/// Which standard deviation divides the group-centred rewards.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum ScaleRewards {
    /// The group's own standard deviation.
    Group,
    /// The standard deviation of all rewards of the batch.
    Batch,
    /// No division: advantages are the centred rewards.
    None,
}

/// Group-normalised advantages, TRL semantics (std with Bessel's correction, + 1e-4).
/// `rewards.len()` must be a multiple of `group` (panics otherwise, or if `group == 0`).
/// A NaN reward is an unscorable completion: excluded from the statistics, advantage 0.
pub fn advantages(rewards: &[f32], group: usize, scale: ScaleRewards) -> Vec<f32> {
    assert!(
        group > 0 && rewards.len().is_multiple_of(group),
        "advantages: {} rewards are not whole groups of {group}",
        rewards.len()
    );
    let r: Vec<f64> = rewards.iter().map(|&x| f64::from(x)).collect();
    let batch_std = if r.len() > 1 { nanstd(&r) } else { 0.0 };
    let mut out = Vec::with_capacity(r.len());
    for g in r.chunks(group) {
        let mean = nanmean(g);
        let std = match scale {
            ScaleRewards::Batch => batch_std,
            ScaleRewards::Group | ScaleRewards::None => {
                if group > 1 {
                    nanstd(g)
                } else {
                    0.0
                }
            }
        };
        for &x in g {
            let mut a = x - mean;
            if scale != ScaleRewards::None {
                a /= std + 1e-4;
            }
            out.push(if a.is_nan() { 0.0 } else { a as f32 });
        }
    }
    out
}

fn nanmean(x: &[f64]) -> f64 {
    let v: Vec<f64> = x.iter().copied().filter(|v| !v.is_nan()).collect();
    v.iter().sum::<f64>() / v.len() as f64
}

/// torch-style nanstd of TRL: mean of squared deviations × n/(n-1); NaN when n < 2.
fn nanstd(x: &[f64]) -> f64 {
    let v: Vec<f64> = x.iter().copied().filter(|v| !v.is_nan()).collect();
    let n = v.len() as f64;
    if v.len() < 2 {
        return f64::NAN;
    }
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / n;
    (var * n / (n - 1.0)).sqrt()
}

/// Loss settings that every training run sets.
#[derive(Debug, Clone)]
pub struct LossParams {
    pub level: IsLevel,
    pub loss_type: LossType,
    pub epsilon_low: f64,
    pub epsilon_high: f64,
    /// KL coefficient; 0 disables the KL term (no reference log-probs needed).
    pub beta: f64,
    /// `DrGrpo`'s constant: the generation limit, not the padded width of the batch.
    pub max_completion_length: usize,
}

/// Less common knobs, with TRL's defaults.
#[derive(Debug, Clone)]
pub struct LossOpts {
    /// Micro-batches accumulated into this optimiser step (TRL's
    /// `current_gradient_accumulation_steps`); the loss is divided by it. Default 1.
    pub grad_accum: usize,
    /// Multiply the KL term by the importance weight (TRL's `use_bias_correction_kl`, default true).
    pub bias_correction_kl: bool,
}

impl Default for LossOpts {
    fn default() -> Self {
        LossOpts {
            grad_accum: 1,
            bias_correction_kl: true,
        }
    }
}

/// The metrics TRL logs for the loss (see the module docs for their exact definitions).
#[derive(Debug, Clone, Default)]
pub struct LossStats {
    /// Mean per-token KL to the reference (bias-corrected as in the loss); NaN without `ref_logp`.
    pub kl: f32,
    /// TRL `clip_ratio/low_mean`.
    pub clip_low: f32,
    /// TRL `clip_ratio/high_mean`.
    pub clip_high: f32,
    /// TRL `clip_ratio/region_mean`.
    pub clip_region: f32,
    /// Mean importance weight (same averaging as the clip fractions; not logged by TRL).
    pub ratio_mean: f32,
    /// TRL `clip_ratio/low_min`: the smallest per-sequence low-clip fraction.
    pub clip_low_min: f32,
    /// TRL `clip_ratio/high_max`: the largest per-sequence high-clip fraction.
    pub clip_high_max: f32,
    /// The loss before division by `grad_accum` (TRL's `policy_loss`).
    pub policy_loss: f32,
    /// Unmasked completion tokens in the micro-batch.
    pub tokens: f32,
}

pub struct LossOut {
    /// Scalar, differentiable with respect to `logp`.
    pub loss: Tensor,
    pub stats: LossStats,
}

/// logp: (B,T) f32, differentiable (the policy's per-token log-probs of the completion tokens);
/// old_logp: (B,T) from the policy that generated the rollouts (detached); ref_logp: (B,T) of
/// the reference policy, required iff beta != 0; advantages: (B,); mask: (B,T) f32 0/1.
/// On-policy steps (the rollout's own policy, as TRL when it skips computing old log-probs):
/// pass `&logp.detach()` as `old_logp`; the weights are then exactly 1.
/// Gradient accumulation: this is one micro-batch with `grad_accum = 1`; see [`loss_with`] and
/// the module docs for what TRL does with several micro-batches (the `Bnpo`/`DrGrpo`
/// normalisers are always the micro-batch's own).
pub fn loss(
    logp: &Tensor,
    old_logp: &Tensor,
    ref_logp: Option<&Tensor>,
    advantages: &Tensor,
    mask: &Tensor,
    p: &LossParams,
) -> candle_core::Result<LossOut> {
    loss_with(
        logp,
        old_logp,
        ref_logp,
        advantages,
        mask,
        p,
        &LossOpts::default(),
    )
}

/// [`loss`] with the gradient-accumulation divisor and the KL bias-correction switch.
/// Works in the dtype of `logp` (f32 in training; f64 is used by the tests).
pub fn loss_with(
    logp: &Tensor,
    old_logp: &Tensor,
    ref_logp: Option<&Tensor>,
    advantages: &Tensor,
    mask: &Tensor,
    p: &LossParams,
    o: &LossOpts,
) -> candle_core::Result<LossOut> {
    let (b, t) = logp.dims2()?;
    let dt = logp.dtype();
    let want = |name: &str, x: &Tensor| -> candle_core::Result<Tensor> {
        if x.dims() != [b, t] {
            candle_core::bail!(
                "gspo loss: {name} has shape {:?}, logp has ({b}, {t})",
                x.dims()
            );
        }
        x.detach().to_dtype(dt)
    };
    let old = want("old_logp", old_logp)?;
    let mask = want("mask", mask)?;
    let reference = match ref_logp {
        Some(r) => Some(want("ref_logp", r)?),
        None => None,
    };
    if p.beta != 0.0 && reference.is_none() {
        candle_core::bail!("gspo loss: beta = {} needs ref_logp", p.beta);
    }
    if advantages.elem_count() != b {
        candle_core::bail!(
            "gspo loss: {} advantages for {b} sequences",
            advantages.elem_count()
        );
    }
    if o.grad_accum == 0 || (p.loss_type == LossType::DrGrpo && p.max_completion_length == 0) {
        candle_core::bail!("gspo loss: grad_accum and max_completion_length must be positive");
    }
    let adv = advantages.detach().reshape((b, 1))?.to_dtype(dt)?;

    let len = mask.sum_keepdim(1)?; // (B,1)
    let len_c = len.clamp(1f64, f64::INFINITY)?;
    let log_ratio = (logp - &old)?;
    let seq_log_w = (&log_ratio * &mask)?.sum_keepdim(1)?.div(&len_c)?; // (B,1)
    let log_w = match p.level {
        IsLevel::Token => log_ratio,
        IsLevel::Sequence => seq_log_w,
        IsLevel::SequenceToken => (logp - logp.detach())?.broadcast_add(&seq_log_w.detach())?,
    };
    let coef1 = log_w.exp()?;
    let coef2 = coef1.clamp(1.0 - p.epsilon_low, 1.0 + p.epsilon_high)?;
    let l1 = coef1.broadcast_mul(&adv)?;
    let l2 = coef2.broadcast_mul(&adv)?;
    let mut per_token = l1.minimum(&l2)?.neg()?;
    let mut kl_vals = None;
    if let Some(r) = &reference {
        let d = (r - logp)?;
        let mut kl = ((d.exp()? - &d)? - 1.0)?;
        if o.bias_correction_kl {
            kl = kl.broadcast_mul(&coef1)?;
        }
        if p.beta != 0.0 {
            per_token = per_token.broadcast_add(&(&kl * p.beta)?)?;
        }
        kl_vals = Some(kl.detach());
    }
    let masked = per_token.broadcast_mul(&mask)?; // (B,T)
    let mask_v = to_f64_2d(&mask)?;
    let n_tokens: f64 = mask_v.iter().flatten().sum();
    let policy = match p.loss_type {
        LossType::Grpo => masked.sum_keepdim(1)?.div(&len_c)?.mean_all()?,
        LossType::Bnpo => (masked.sum_all()? / n_tokens.max(1.0))?,
        LossType::DrGrpo => (masked.sum_all()? / (b * p.max_completion_length) as f64)?,
    };
    let loss = (&policy / o.grad_accum as f64)?;

    // Metrics, from detached values, with TRL's averaging.
    let coef_v = to_f64_2d(&coef1.detach())?; // B rows of 1 or T values
    let adv_v: Vec<f64> = adv.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?;
    let lo = in_dtype(dt, 1.0 - p.epsilon_low);
    let hi = in_dtype(dt, 1.0 + p.epsilon_high);
    let flags = |f: &dyn Fn(f64, f64) -> bool| -> Vec<Vec<f64>> {
        coef_v
            .iter()
            .zip(&adv_v)
            .map(|(row, &a)| row.iter().map(|&c| f64::from(u8::from(f(c, a)))).collect())
            .collect()
    };
    let low = flags(&|c, a| c < lo && a < 0.0);
    let high = flags(&|c, a| c > hi && a > 0.0);
    let region = flags(&|c, a| (c < lo && a < 0.0) || (c > hi && a > 0.0));
    let kl = match &kl_vals {
        Some(k) => global_masked_mean(&to_f64_2d(k)?, &mask_v),
        None => f64::NAN,
    };
    let stats = LossStats {
        kl: kl as f32,
        clip_low: global_masked_mean(&low, &mask_v) as f32,
        clip_high: global_masked_mean(&high, &mask_v) as f32,
        clip_region: global_masked_mean(&region, &mask_v) as f32,
        ratio_mean: global_masked_mean(&coef_v, &mask_v) as f32,
        clip_low_min: nan_fold(&masked_seq_mean(&low, &mask_v), f64::min) as f32,
        clip_high_max: nan_fold(&masked_seq_mean(&high, &mask_v), f64::max) as f32,
        policy_loss: policy.to_dtype(DType::F64)?.to_scalar::<f64>()? as f32,
        tokens: n_tokens as f32,
    };
    Ok(LossOut { loss, stats })
}

/// A bound as the tensor's dtype sees it (torch compares an f32 tensor with an f32 scalar).
fn in_dtype(dt: DType, x: f64) -> f64 {
    match dt {
        DType::F32 => f64::from(x as f32),
        _ => x,
    }
}

fn to_f64_2d(x: &Tensor) -> candle_core::Result<Vec<Vec<f64>>> {
    x.to_dtype(DType::F64)?.to_vec2()
}

/// TRL's `global_masked_mean`: masked token mean of (B,T) values; plain mean of (B,1) values.
fn global_masked_mean(x: &[Vec<f64>], mask: &[Vec<f64>]) -> f64 {
    if x.first().is_some_and(|r| r.len() == 1) {
        return x.iter().map(|r| r[0]).sum::<f64>() / (x.len() as f64).max(1.0);
    }
    let (mut s, mut n) = (0.0, 0.0);
    for (xr, mr) in x.iter().zip(mask) {
        for (v, m) in xr.iter().zip(mr) {
            s += v * m;
            n += m;
        }
    }
    s / f64::max(n, 1.0)
}

/// TRL's `masked_seq_mean`: per-row masked mean (NaN for an all-masked row); (B,1) as is.
fn masked_seq_mean(x: &[Vec<f64>], mask: &[Vec<f64>]) -> Vec<f64> {
    x.iter()
        .zip(mask)
        .map(|(xr, mr)| {
            if xr.len() == 1 {
                xr[0]
            } else {
                xr.iter().zip(mr).map(|(v, m)| v * m).sum::<f64>() / mr.iter().sum::<f64>()
            }
        })
        .collect()
}

/// TRL's `nanmin`/`nanmax`: fold over the non-NaN values, NaN if there are none.
fn nan_fold(x: &[f64], f: fn(f64, f64) -> f64) -> f64 {
    x.iter()
        .copied()
        .filter(|v| !v.is_nan())
        .reduce(f)
        .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests;
