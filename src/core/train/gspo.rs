//! STAND-IN (replaced by the gspo branch): sequence-level GSPO, grpo normalisation.
use candle_core::{D, Result, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum IsLevel {
    Token,
    Sequence,
    SequenceToken,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LossType {
    Grpo,
    Bnpo,
    DrGrpo,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ScaleRewards {
    Group,
    Batch,
    None,
}

pub fn advantages(rewards: &[f32], group: usize, _scale: ScaleRewards) -> Vec<f32> {
    let mut out = Vec::new();
    for g in rewards.chunks(group) {
        let n = g.len() as f32;
        let m = g.iter().sum::<f32>() / n;
        let var = g.iter().map(|r| (r - m) * (r - m)).sum::<f32>() / (n - 1.0).max(1.0);
        out.extend(g.iter().map(|r| (r - m) / (var.sqrt() + 1e-4)));
    }
    out
}

#[derive(Debug, Clone)]
pub struct LossParams {
    pub level: IsLevel,
    pub loss_type: LossType,
    pub epsilon_low: f64,
    pub epsilon_high: f64,
    pub beta: f64,
    pub max_completion_length: usize,
}

#[derive(Debug, Clone, Default)]
pub struct LossStats {
    pub kl: f32,
    pub clip_low: f32,
    pub clip_high: f32,
    pub clip_region: f32,
    pub ratio_mean: f32,
}

pub struct LossOut {
    pub loss: Tensor,
    pub stats: LossStats,
}

pub fn loss(
    logp: &Tensor,
    old_logp: &Tensor,
    ref_logp: Option<&Tensor>,
    advantages: &Tensor,
    mask: &Tensor,
    p: &LossParams,
) -> Result<LossOut> {
    let len = mask.sum(D::Minus1)?.clamp(1f32, f32::MAX)?;
    let diff = ((logp - old_logp)? * mask)?;
    let lw = diff.sum(D::Minus1)?.div(&len)?.unsqueeze(1)?;
    let c1 = lw.exp()?;
    let c2 = c1.clamp(1.0 - p.epsilon_low, 1.0 + p.epsilon_high)?;
    let a = advantages.unsqueeze(1)?;
    let l1 = c1.broadcast_mul(&a)?;
    let l2 = c2.broadcast_mul(&a)?;
    let mut per_tok = l1
        .minimum(&l2)?
        .neg()?
        .broadcast_as(logp.shape())?
        .contiguous()?;
    let mut kl_v = 0f32;
    if p.beta != 0.0 {
        let r = ref_logp.expect("ref");
        let d = (r - logp)?;
        let kl = ((d.exp()? - &d)? - 1.0)?;
        kl_v = ((&kl * mask)?.sum_all()?.to_scalar::<f32>()?)
            / mask.sum_all()?.to_scalar::<f32>()?.max(1.0);
        per_tok = (per_tok + (kl.broadcast_mul(&c1)? * p.beta)?)?;
    }
    let l = ((per_tok * mask)?.sum(D::Minus1)? / &len)?.mean_all()?;
    Ok(LossOut {
        loss: l,
        stats: LossStats {
            kl: kl_v,
            ..Default::default()
        },
    })
}
