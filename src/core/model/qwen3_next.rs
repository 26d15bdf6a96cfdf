//! Qwen3-Next (transformers' `Qwen3NextForCausalLM`, `model_type` `qwen3_next`; the equations
//! below follow `models/qwen3_next/modeling_qwen3_next.py` of transformers 5.25.0).
//!
//! A hybrid decoder: per `layer_types` (or, when absent, `full_attention_interval`: every
//! n-th layer full attention, the others linear) each layer mixes tokens with either
//!
//! - **gated full attention** (`self_attn`): the decoder's grouped-query attention with q/k head
//!   norms, where `q_proj` is twice as wide: per head `[q_h | g_h]`, and the attention output is
//!   multiplied by σ(g) before `o_proj`; the rotation covers only the first
//!   `rotary = ⌊head_dim · partial_rotary_factor⌋` dimensions of each head (the rest pass
//!   through), with frequencies 1/θ^(2i/rotary);
//! - or a **gated DeltaNet** (`linear_attn`, [`GatedDeltaNet`]): for x with padding rows zeroed,
//!   `in_proj_qkvz(x)` is viewed per key head as `[q (dk) | k (dk) | v (r·dv) | z (r·dv)]` and
//!   `in_proj_ba(x)` as `[b (r) | a (r)]`, r = value heads / key heads; c = [q, k, v] goes
//!   through a causal depthwise convolution of `linear_conv_kernel_dim` K taps,
//!   c'_t = silu(Σ_j w_j ⊙ c_{t−K+1+j}); q and k are L2-normalised per head
//!   (x/√(Σx² + 1e-6)), q scaled by dk^-½, and repeated over the r value heads of their group;
//!   β = σ(b), g = −exp(A_log) · softplus(a + dt_bias), and the gated delta rule runs per value
//!   head on the state S (dk × dv), starting from 0:
//!
//!   S ← exp(g_t) · S;  S ← S + k_t ⊗ β_t (v_t − Sᵀk_t);  o_t = Sᵀ q_t
//!
//!   (transformers' chunked form is the same recurrence regrouped in blocks of 64); the output
//!   is the gated RMS norm o ↦ w ⊙ o/√(mean o² + ε) ⊙ silu(z) per value head, then `out_proj`.
//!
//! Every RMS norm outside the DeltaNet (input, post-attention, final, q and k heads) is
//! zero-centred: the checkpoint stores w and the norm multiplies by (1 + w); gym adds the 1 on
//! load (the same f32 sum transformers computes) and subtracts it when writing weights back.
//! The MLP is dense on `mlp_only_layers`, otherwise (every `decoder_sparse_step`-th layer) a
//! sparse MoE (`qwen3_moe.rs`: softmax router, top-k, renormalised when `norm_topk_prob`) plus a
//! shared expert SwiGLU MLP scaled by σ(`shared_expert_gate` · x).
//!
//! Gradients: the recurrence is one CPU op with a hand-written backward (`delta_rule.rs`,
//! checked against the composed candle ops and finite differences; the composed form runs off
//! the CPU); the rest is composed candle ops whose backward candle has (the fused ops the guide
//! lists as cutting the graph are not used; the RMS norms are `ops.rs`'s custom ops with their
//! own backward). For decoding, a
//! [`DeltaState`] per linear layer keeps the last K−1 convolution inputs and S; the full
//! attention layers use the decoder's KV cache.

use std::path::Path;

use candle_core::{D, DType, Result, Tensor};
use rayon::prelude::*;
use serde::Deserialize;

use super::decoder::{Config, Role, Spec, take_linear};
use super::delta_rule::gated_delta_rule;
use super::linear::Linear;
use super::qwen3_moe::MoeConfig;
use super::weights::Weights;
use super::{ModelError, config, ops};

/// The `qwen3_next` fields beyond [`Config`].
#[derive(Debug, Clone, Deserialize)]
struct NextExtra {
    #[serde(default = "four")]
    linear_conv_kernel_dim: usize,
    linear_key_head_dim: usize,
    linear_value_head_dim: usize,
    linear_num_key_heads: usize,
    linear_num_value_heads: usize,
    full_attention_interval: Option<usize>,
    #[serde(default)]
    num_experts: usize,
    #[serde(default)]
    num_experts_per_tok: usize,
    #[serde(default)]
    moe_intermediate_size: usize,
    #[serde(default)]
    shared_expert_intermediate_size: usize,
    #[serde(default = "yes")]
    norm_topk_prob: bool,
    #[serde(default = "one")]
    decoder_sparse_step: usize,
    #[serde(default)]
    mlp_only_layers: Vec<usize>,
    #[serde(default)]
    output_router_logits: bool,
}

fn four() -> usize {
    4
}

fn one() -> usize {
    1
}

fn yes() -> bool {
    true
}

/// The DeltaNet dimensions and which layers are linear attention.
#[derive(Debug, Clone, PartialEq)]
pub struct NextSpec {
    /// Per layer: true for a gated DeltaNet, false for gated full attention.
    pub linear: Vec<bool>,
    pub conv_kernel: usize,
    pub key_heads: usize,
    pub value_heads: usize,
    pub key_dim: usize,
    pub value_dim: usize,
}

impl NextSpec {
    /// Channels of the convolution: q, k (key_heads · key_dim each) and v.
    pub fn conv_dim(&self) -> usize {
        2 * self.key_heads * self.key_dim + self.value_heads * self.value_dim
    }
}

/// The per-layer kinds: `layer_types` when given, else every `interval`-th layer full.
fn layer_kinds(
    cfg: &Config,
    interval: Option<usize>,
) -> std::result::Result<Vec<bool>, ModelError> {
    let n = cfg.num_hidden_layers;
    match &cfg.layer_types {
        Some(types) => {
            if types.len() != n {
                return Err(ModelError::Unsupported(format!(
                    "layer_types has {} entries for {n} layers",
                    types.len()
                )));
            }
            types
                .iter()
                .map(|t| match t.as_str() {
                    "linear_attention" => Ok(true),
                    "full_attention" => Ok(false),
                    other => Err(ModelError::Unsupported(format!(
                        "layer_types entry {other:?} (qwen3_next has linear_attention and full_attention)"
                    ))),
                })
                .collect()
        }
        None => {
            let k = interval.unwrap_or(4);
            if k == 0 {
                return Err(ModelError::Unsupported("full_attention_interval 0".into()));
            }
            Ok((0..n).map(|i| !(i + 1).is_multiple_of(k)).collect())
        }
    }
}

/// What a `qwen3_next` config asks of the decoder, and its MoE (None without experts).
pub fn spec(
    cfg: &Config,
    path: &Path,
    text: &str,
) -> std::result::Result<(Spec, Option<MoeConfig>), ModelError> {
    let x: NextExtra = config::parse(path, text)?;
    if x.output_router_logits {
        return Err(ModelError::Unsupported(
            "output_router_logits = true (gym's loss has no router auxiliary loss)".into(),
        ));
    }
    if cfg.use_sliding_window {
        return Err(ModelError::Unsupported(
            "use_sliding_window in qwen3_next (transformers' Qwen3-Next has no sliding window)"
                .into(),
        ));
    }
    let (nk, nv) = (x.linear_num_key_heads, x.linear_num_value_heads);
    if nk == 0 || nv == 0 || !nv.is_multiple_of(nk) || x.linear_conv_kernel_dim == 0 {
        return Err(ModelError::Unsupported(format!(
            "linear_num_value_heads {nv} is not a positive multiple of linear_num_key_heads {nk} \
             (or linear_conv_kernel_dim is 0)"
        )));
    }
    let next = NextSpec {
        linear: layer_kinds(cfg, x.full_attention_interval)?,
        conv_kernel: x.linear_conv_kernel_dim,
        key_heads: nk,
        value_heads: nv,
        key_dim: x.linear_key_head_dim,
        value_dim: x.linear_value_head_dim,
    };
    let moe = (x.num_experts > 0).then(|| MoeConfig {
        num_experts: x.num_experts,
        num_experts_per_tok: x.num_experts_per_tok,
        moe_intermediate_size: x.moe_intermediate_size,
        norm_topk_prob: x.norm_topk_prob,
        decoder_sparse_step: x.decoder_sparse_step,
        mlp_only_layers: x.mlp_only_layers.clone(),
        block: "mlp",
        names: super::decoder::MLP_NAMES,
        shared_expert_intermediate_size: Some(x.shared_expert_intermediate_size),
    });
    if let Some(m) = &moe {
        m.validate()?;
    }
    let spec = Spec {
        qk_norm: true,
        qkv_bias: cfg.attention_bias,
        o_bias: cfg.attention_bias,
        mlp_bias: false,
        windows: vec![None; cfg.num_hidden_layers],
        rope: cfg.rope_freqs()?,
        next: Some(next),
    };
    Ok((spec, moe))
}

/// The decoding state of one DeltaNet layer: the last K−1 convolution inputs (b, K−1, conv_dim)
/// and the recurrent state S (b, value_heads, key_dim, value_dim).
#[derive(Clone)]
pub struct DeltaState {
    pub conv: Tensor,
    pub state: Tensor,
}

/// The gated DeltaNet token mixer of a linear-attention layer.
pub struct GatedDeltaNet {
    pub in_proj_qkvz: Linear,
    pub in_proj_ba: Linear,
    pub out_proj: Linear,
    /// Depthwise convolution taps (conv_dim, K), oldest first.
    pub(super) conv: Tensor,
    pub(super) dt_bias: Tensor,
    pub(super) a_log: Tensor,
    /// −exp(A_log), (value_heads,).
    neg_a: Tensor,
    /// The gated RMS norm's weight (value_dim,).
    pub(super) norm: Tensor,
    dims: NextSpec,
    eps: f64,
}

/// softplus(x) = max(x, 0) + log(1 + exp(−|x|)) (torch's, whose threshold 20 changes nothing in
/// f32).
fn softplus(x: &Tensor) -> Result<Tensor> {
    x.relu()? + ((x.abs()?.neg()?.exp()? + 1.0)?.log()?)
}

/// σ(x) = 1 / (1 + exp(−x)), composed so that autograd carries it.
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    (x.neg()?.exp()? + 1.0)?.recip()
}

/// x / √(Σx² + 1e-6) over the last dimension.
fn l2norm(x: &Tensor) -> Result<Tensor> {
    x.broadcast_div(&(x.sqr()?.sum_keepdim(D::Minus1)? + 1e-6)?.sqrt()?)
}

impl GatedDeltaNet {
    pub(super) fn new(
        cfg: &Config,
        dims: &NextSpec,
        w: &mut Weights,
        p: &str,
    ) -> std::result::Result<Self, ModelError> {
        let h = cfg.hidden_size;
        let (nk, nv, dk, dv) = (
            dims.key_heads,
            dims.value_heads,
            dims.key_dim,
            dims.value_dim,
        );
        let qkvz = 2 * nk * dk + 2 * nv * dv;
        let c = dims.conv_dim();
        let a_log = w.take(&format!("{p}.A_log"), &[nv])?;
        Ok(GatedDeltaNet {
            in_proj_qkvz: take_linear(w, p, "in_proj_qkvz", (qkvz, h), false)?,
            in_proj_ba: take_linear(w, p, "in_proj_ba", (2 * nv, h), false)?,
            out_proj: take_linear(w, p, "out_proj", (h, nv * dv), false)?,
            conv: w
                .take(&format!("{p}.conv1d.weight"), &[c, 1, dims.conv_kernel])?
                .reshape((c, dims.conv_kernel))?,
            dt_bias: w.take(&format!("{p}.dt_bias"), &[nv])?,
            neg_a: a_log.exp()?.neg()?,
            a_log,
            norm: w.take(&format!("{p}.norm.weight"), &[dv])?,
            dims: dims.clone(),
            eps: cfg.rms_norm_eps,
        })
    }

    /// The projections with their module names.
    pub fn named(&self) -> [(&'static str, &Linear); 3] {
        [
            ("in_proj_qkvz", &self.in_proj_qkvz),
            ("in_proj_ba", &self.in_proj_ba),
            ("out_proj", &self.out_proj),
        ]
    }

    pub fn named_mut(&mut self) -> [(&'static str, &mut Linear); 3] {
        [
            ("in_proj_qkvz", &mut self.in_proj_qkvz),
            ("in_proj_ba", &mut self.in_proj_ba),
            ("out_proj", &mut self.out_proj),
        ]
    }

    /// The frozen non-linear tensors under their names below the layer's `linear_attn`.
    pub fn frozen(&self) -> Result<Vec<(&'static str, Tensor)>> {
        let (c, k) = self.conv.dims2()?;
        Ok(vec![
            ("conv1d.weight", self.conv.reshape((c, 1, k))?),
            ("dt_bias", self.dt_bias.clone()),
            ("A_log", self.a_log.clone()),
            ("norm.weight", self.norm.clone()),
        ])
    }

    /// An empty decoding state for a batch of `b`.
    fn empty_state(&self, b: usize, x: &Tensor) -> Result<DeltaState> {
        let d = &self.dims;
        Ok(DeltaState {
            conv: Tensor::zeros((b, d.conv_kernel - 1, d.conv_dim()), DType::F32, x.device())?,
            state: Tensor::zeros(
                (b, d.value_heads, d.key_dim, d.value_dim),
                DType::F32,
                x.device(),
            )?,
        })
    }

    /// x (b, t, h) → (b, t, h), from `state` (zeros when None), returning the state after the
    /// last token. `keep` (b, t) f32 zeroes padding rows of x first.
    pub fn forward(
        &self,
        x: &Tensor,
        keep: Option<&Tensor>,
        state: Option<&DeltaState>,
        role: Role,
    ) -> Result<(Tensor, DeltaState)> {
        let (b, t, _) = x.dims3()?;
        let d = &self.dims;
        let (nk, nv, dk, dv, r) = (
            d.key_heads,
            d.value_heads,
            d.key_dim,
            d.value_dim,
            d.value_heads / d.key_heads,
        );
        let x = match keep {
            Some(k) => x.broadcast_mul(&k.unsqueeze(2)?)?,
            None => x.clone(),
        };
        let empty;
        let state = match state {
            Some(s) => s,
            None => {
                empty = self.empty_state(b, &x)?;
                &empty
            }
        };
        let qkvz = self
            .in_proj_qkvz
            .forward(&x, role)?
            .reshape((b, t, nk, 2 * dk + 2 * r * dv))?;
        let ba = self
            .in_proj_ba
            .forward(&x, role)?
            .reshape((b, t, nk, 2 * r))?;
        let part = |o: usize, n: usize, last: usize| -> Result<Tensor> {
            qkvz.narrow(3, o, n)?.reshape((b, t, last))
        };
        let mixed = Tensor::cat(
            &[
                &part(0, dk, nk * dk)?,
                &part(dk, dk, nk * dk)?,
                &part(2 * dk, r * dv, nv * dv)?,
            ],
            2,
        )?;
        let z = qkvz
            .narrow(3, 2 * dk + r * dv, r * dv)?
            .reshape((b, t, nv, dv))?;
        let beta = sigmoid(&ba.narrow(3, 0, r)?.reshape((b, t, nv))?)?;
        let a = ba.narrow(3, r, r)?.reshape((b, t, nv))?;
        let g = softplus(&a.broadcast_add(&self.dt_bias)?)?.broadcast_mul(&self.neg_a)?;
        let (c, conv) = self.conv1d(&mixed, &state.conv)?;
        let heads = |o: usize, n: usize, hd: usize| c.narrow(2, o, n * hd)?.reshape((b, t, n, hd));
        let q = l2norm(&heads(0, nk, dk)?)?;
        let q = (q * (dk as f64).powf(-0.5))?;
        let k = l2norm(&heads(nk * dk, nk, dk)?)?;
        let v = heads(2 * nk * dk, nv, dv)?;
        // each key head serves r consecutive value heads
        let rep = |x: Tensor| -> Result<Tensor> {
            x.unsqueeze(3)?
                .broadcast_as((b, t, nk, r, dk))?
                .reshape((b, t, nv, dk))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k) = (rep(q)?, rep(k)?);
        let v = v.transpose(1, 2)?.contiguous()?;
        let g = g.transpose(1, 2)?.contiguous()?; // (b, nv, t)
        let beta = beta.transpose(1, 2)?.contiguous()?;
        let (o, s) = gated_delta_rule(&q, &k, &v, &g, &beta, &state.state)?;
        // gated RMS norm per value head, then out_proj
        let o = o.transpose(1, 2)?; // (b, t, nv, dv)
        let o = ops::rms_norm(&o, &self.norm, self.eps)?;
        let o = (o * z.silu()?)?.reshape((b, t, nv * dv))?;
        let y = self.out_proj.forward(&o, role)?;
        Ok((y, DeltaState { conv, state: s }))
    }

    /// The causal depthwise convolution with silu of c (b, t, C) after the `prev` K−1 inputs
    /// (b, K−1, C); returns the output and the last K−1 inputs.
    fn conv1d(&self, c: &Tensor, prev: &Tensor) -> Result<(Tensor, Tensor)> {
        let (_, t, ch) = c.dims3()?;
        let k = self.dims.conv_kernel;
        let full = Tensor::cat(&[prev, c], 1)?; // (b, K−1+t, C)
        let tail = full.narrow(1, t, k - 1)?.detach();
        if full.device().is_cpu() && full.dtype() == DType::F32 {
            let op = CausalConvSilu {
                w: self.conv.contiguous()?,
                k,
            };
            return Ok((full.contiguous()?.apply_op1(op)?, tail));
        }
        let mut y: Option<Tensor> = None;
        for j in 0..k {
            let tap = self.conv.narrow(1, j, 1)?.reshape((1, 1, ch))?;
            let term = full.narrow(1, j, t)?.broadcast_mul(&tap)?;
            y = Some(match y {
                Some(y) => (y + term)?,
                None => term,
            });
        }
        Ok((y.expect("K ≥ 1").silu()?, tail))
    }
}

/// The depthwise causal convolution of the DeltaNet layers followed by SiLU, as one CPU op:
/// y[b, i, c] = silu(Σ_j full[b, i+j, c]·w[c, j]) for full (b, K−1+t, C) and the frozen
/// weights w (C, K). The composed form (K narrows, products and sums) kept K copies of the
/// input and, backward, padded each tap's gradient back to the full length with zeros; this
/// keeps the input only and recomputes the pre-activation. Sums in the composed order (tap by
/// tap), SiLU as candle computes it, so the values are the same.
struct CausalConvSilu {
    w: Tensor,
    k: usize,
}

impl CausalConvSilu {
    /// The pre-activations (b, t, C) of `full` (b, t + K − 1, C).
    fn pre(&self, full: &[f32], (b, tf, ch): (usize, usize, usize)) -> Result<Vec<f32>> {
        let w = self.w.flatten_all()?.to_vec1::<f32>()?;
        let (k, t) = (self.k, tf + 1 - self.k);
        let mut z = vec![0f32; b * t * ch];
        z.par_chunks_mut(ch).enumerate().for_each(|(r, zr)| {
            let (bi, i) = (r / t, r % t);
            for j in 0..k {
                let xr = &full[(bi * tf + i + j) * ch..][..ch];
                for (c, (z, x)) in zr.iter_mut().zip(xr).enumerate() {
                    let term = x * w[c * k + j];
                    *z = if j == 0 { term } else { *z + term };
                }
            }
        });
        Ok(z)
    }
}

fn silu_f32(z: f32) -> f32 {
    z / (1.0 + (-z).exp())
}

impl candle_core::CustomOp1 for CausalConvSilu {
    fn name(&self) -> &'static str {
        "gym-causal-conv-silu"
    }

    fn cpu_fwd(
        &self,
        s: &candle_core::CpuStorage,
        l: &candle_core::Layout,
    ) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let (b, tf, ch) = l.shape().dims3()?;
        let (candle_core::CpuStorage::F32(v), Some((a, e))) = (s, l.contiguous_offsets()) else {
            candle_core::bail!("causal conv: expected contiguous f32")
        };
        if tf + 1 < self.k || self.w.dims() != [ch, self.k] {
            candle_core::bail!(
                "causal conv: input {:?}, weights {:?}",
                l.dims(),
                self.w.dims()
            )
        }
        let mut y = self.pre(&v[a..e], (b, tf, ch))?;
        y.par_iter_mut().for_each(|z| *z = silu_f32(*z));
        let t = tf + 1 - self.k;
        Ok((
            candle_core::CpuStorage::F32(y),
            candle_core::Shape::from((b, t, ch)),
        ))
    }

    /// d full[b, i+j, c] = Σ over (i, j) of g[b, i, c]·silu′(z[b, i, c])·w[c, j].
    fn bwd(&self, full: &Tensor, _y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let (b, tf, ch) = full.dims3()?;
        let (k, t) = (self.k, tf + 1 - self.k);
        let x = full
            .detach()
            .contiguous()?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let g = g.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let mut dz = self.pre(&x, (b, tf, ch))?;
        dz.par_iter_mut().zip(&g).for_each(|(z, g)| {
            let s = 1.0 / (1.0 + (-*z).exp());
            *z = g * s * (1.0 + *z * (1.0 - s));
        });
        let w = self.w.flatten_all()?.to_vec1::<f32>()?;
        let mut dx = vec![0f32; b * tf * ch];
        dx.par_chunks_mut(ch).enumerate().for_each(|(r, dr)| {
            let (bi, p) = (r / tf, r % tf);
            // output rows i = p − j for the taps j that reach input row p
            for j in 0..k {
                if p < j || p - j >= t {
                    continue;
                }
                let zr = &dz[(bi * t + p - j) * ch..][..ch];
                for (c, (d, z)) in dr.iter_mut().zip(zr).enumerate() {
                    *d += z * w[c * k + j];
                }
            }
        });
        Ok(Some(Tensor::from_vec(dx, (b, tf, ch), full.device())?))
    }
}

#[cfg(test)]
mod conv_tests {
    use super::*;
    use candle_core::{Device, Var};

    fn lcg(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    /// The fused causal conv + SiLU against the composed ops it replaces: the same values bit
    /// for bit, and the same input gradient within f32 rounding; K = 4 and K = 1 (no history).
    #[test]
    fn causal_conv_op_matches_the_composed_ops_and_their_gradient() {
        let d = Device::Cpu;
        for (b, t, ch, k) in [(2, 9, 12, 4), (1, 5, 7, 1), (1, 1, 3, 4)] {
            let w = Tensor::from_vec(lcg(ch * k, 1), (ch, k), &d).unwrap();
            let x = Var::from_vec(lcg(b * (t + k - 1) * ch, 2), (b, t + k - 1, ch), &d).unwrap();
            let fused = x
                .as_tensor()
                .apply_op1(CausalConvSilu { w: w.clone(), k })
                .unwrap();
            let mut y: Option<Tensor> = None;
            for j in 0..k {
                let tap = w.narrow(1, j, 1).unwrap().reshape((1, 1, ch)).unwrap();
                let term = x
                    .as_tensor()
                    .narrow(1, j, t)
                    .unwrap()
                    .broadcast_mul(&tap)
                    .unwrap();
                y = Some(match y {
                    Some(y) => (y + term).unwrap(),
                    None => term,
                });
            }
            let composed = y.unwrap().silu().unwrap();
            let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(flat(&fused), flat(&composed), "{b}x{t}x{ch} k={k}");
            let r = Tensor::from_vec(lcg(b * t * ch, 3), (b, t, ch), &d).unwrap();
            let gf = (fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let gc = (composed * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let (a, c) = (
                flat(gf.get(x.as_tensor()).unwrap()),
                flat(gc.get(x.as_tensor()).unwrap()),
            );
            let worst = a
                .iter()
                .zip(&c)
                .map(|(a, c)| (a - c).abs())
                .fold(0f32, f32::max);
            assert!(
                worst < 1e-6,
                "{b}x{t}x{ch} k={k}: gradient differs by {worst}"
            );
        }
    }
}
