//! The decoder every architecture gym runs shares (transformers' `LlamaForCausalLM` family):
//! token embedding, pre-norm residual blocks of grouped-query attention with rotary embedding
//! and a SwiGLU MLP or sparse mixture of experts, a final RMS norm and an LM head, optionally
//! tied to the embedding. What differs between architectures is a [`Spec`], which each
//! architecture's file (`qwen3.rs`, `qwen2.rs`, `llama.rs`, `mistral.rs`, `mixtral.rs`) derives
//! from its config: q/k head norms (CausalLm), biases (Qwen2, Llama's `attention_bias`/`mlp_bias`),
//! per-layer sliding windows (Qwen2/CausalLm `layer_types`, Mistral/Mixtral `sliding_window`), the
//! rope frequencies (`rope.rs`) and the MoE layout (`qwen3_moe.rs`, `mixtral.rs`).

use candle_core::{DType, Device, Result, Tensor};
use serde::Deserialize;

use super::config::{RopeParameters, TokenIds};
use super::linear::{Base, Linear};
use super::qwen3_moe::{MoeConfig, SparseMoe};
use super::qwen3_next::{DeltaState, GatedDeltaNet};
use super::rope::RopeFreqs;
use super::weights::Weights;
use super::{ModelConfig, ModelError, ops};

/// The `config.json` fields the decoder architectures share (transformers' names; each
/// architecture's file reads its own further fields).
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: Option<usize>,
    pub head_dim: Option<usize>,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    pub rope_theta: Option<f64>,
    pub rope_parameters: Option<RopeParameters>,
    pub rope_scaling: Option<RopeParameters>,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub attention_bias: bool,
    /// The MLP activation: only `silu` (SwiGLU) is implemented.
    pub hidden_act: Option<String>,
    /// Dropout on the attention probabilities while training: only 0 is implemented.
    pub attention_dropout: Option<f64>,
    /// Sliding-window attention (Qwen2/Qwen3 use it only with `use_sliding_window`).
    #[serde(default)]
    pub use_sliding_window: bool,
    pub sliding_window: Option<usize>,
    pub max_window_layers: Option<usize>,
    /// Per layer `full_attention` or `sliding_attention` (transformers ≥ 4.53).
    pub layer_types: Option<Vec<String>>,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<TokenIds>,
    pub pad_token_id: Option<u32>,
}

fn default_max_pos() -> usize {
    32768
}

fn default_eps() -> f64 {
    1e-6
}

impl Config {
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// The rope settings, `rope_parameters` and the legacy `rope_theta`/`rope_scaling` merged.
    pub fn rope(&self) -> std::result::Result<RopeParameters, ModelError> {
        super::rope::resolve(
            self.rope_theta,
            self.rope_parameters.as_ref(),
            self.rope_scaling.as_ref(),
        )
    }

    /// The rope base frequency θ.
    pub fn rope_theta(&self) -> std::result::Result<f64, ModelError> {
        Ok(self.rope()?.rope_theta.unwrap_or(10000.0))
    }

    /// The rope frequencies, or the error naming what is not implemented.
    pub fn rope_freqs(&self) -> std::result::Result<RopeFreqs, ModelError> {
        super::rope::frequencies(&self.rope()?, self.head_dim(), self.max_position_embeddings)
    }

    /// Checks what every architecture shares; fields that change the computation and are not
    /// implemented are refused by name.
    pub fn validate(&self) -> std::result::Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::Unsupported(m));
        if let Some(act) = self.hidden_act.as_deref()
            && act != "silu"
        {
            return bad(format!("hidden_act {act:?} (gym implements silu)"));
        }
        if let Some(p) = self.attention_dropout
            && p != 0.0
        {
            return bad(format!("attention_dropout {p} (gym implements 0)"));
        }
        if self.num_attention_heads == 0 || self.kv_heads() == 0 {
            return bad("zero attention heads".into());
        }
        if !self.num_attention_heads.is_multiple_of(self.kv_heads()) {
            return bad(format!(
                "{} attention heads are not a multiple of {} key/value heads",
                self.num_attention_heads,
                self.kv_heads()
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return bad(format!("odd head_dim {}", self.head_dim()));
        }
        self.rope_freqs().map(|_| ())
    }

    /// The per-layer windows of the Qwen2/Qwen3 configs: `layer_types` when given, else
    /// sliding from layer `max_window_layers` on when `use_sliding_window`; the window is
    /// `sliding_window`, and `use_sliding_window = false` turns every window off (transformers
    /// sets `sliding_window = None` then).
    pub fn qwen_windows(&self) -> std::result::Result<Vec<Option<usize>>, ModelError> {
        let n = self.num_hidden_layers;
        let w = if self.use_sliding_window {
            self.sliding_window
        } else {
            None
        };
        match &self.layer_types {
            Some(types) => layer_type_windows(types, n, w),
            None => {
                let from = self.max_window_layers.unwrap_or(28);
                Ok((0..n).map(|i| w.filter(|_| i >= from)).collect())
            }
        }
    }
}

/// Windows from `layer_types` (one entry per layer, `full_attention` or `sliding_attention`).
pub fn layer_type_windows(
    types: &[String],
    n: usize,
    window: Option<usize>,
) -> std::result::Result<Vec<Option<usize>>, ModelError> {
    if types.len() != n {
        return Err(ModelError::Unsupported(format!(
            "layer_types has {} entries for {n} layers",
            types.len()
        )));
    }
    types
        .iter()
        .map(|t| match t.as_str() {
            "full_attention" => Ok(None),
            "sliding_attention" => Ok(window),
            other => Err(ModelError::Unsupported(format!(
                "layer_types entry {other:?} (gym implements full_attention and sliding_attention)"
            ))),
        })
        .collect()
}

/// Which model a forward runs: the policy (the frozen base with its LoRA role) or the
/// reference (the frozen base alone, for the KL term and `--no-adapter` runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Policy,
    Reference,
}

impl Role {
    /// Whether the LoRA adapters take part.
    pub fn adapters(self) -> bool {
        self == Role::Policy
    }
}

/// What differs between the architectures the decoder runs, derived from a config by each
/// architecture's file.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// RMS norm on each query and key head before the rotation (Qwen3).
    pub qk_norm: bool,
    /// Biases on the q, k and v projections; on o; on the MLP projections.
    pub qkv_bias: bool,
    pub o_bias: bool,
    pub mlp_bias: bool,
    /// Per layer: None for full causal attention, Some(w) where a query sees the w most recent
    /// positions, itself included (transformers' `kv_idx > q_idx - w`).
    pub windows: Vec<Option<usize>>,
    pub rope: RopeFreqs,
    /// Qwen3-Next: gated attention (q_proj twice as wide, σ(gate) on the output), zero-centred
    /// norms, and gated DeltaNet layers where it says (`qwen3_next.rs`).
    pub next: Option<super::qwen3_next::NextSpec>,
}

impl Spec {
    /// The one window the sliding layers share (configs have a single `sliding_window`).
    fn window(&self) -> Option<usize> {
        self.windows.iter().flatten().next().copied()
    }
}

/// Self-attention with GQA and rotary embedding, optional q/k head norms and biases, full or
/// sliding-window.
pub struct Attention {
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    /// The per-head RMS norm weights of q and k (Qwen3), (head_dim,) each.
    pub(super) qk_norm: Option<(Tensor, Tensor)>,
    /// Whether this layer attends through the sliding-window mask.
    sliding: bool,
    /// Qwen3-Next's output gate: q_proj gives [q | gate] per head.
    gated: bool,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    eps: f64,
}

/// The rotary angles of one forward: cos and sin of shape (b, t, head_dim/2).
pub struct RopeAngles {
    pub cos: Tensor,
    pub sin: Tensor,
}

/// Everything a forward needs besides the hidden states.
pub struct FwdCtx<'a> {
    pub rope: &'a RopeAngles,
    /// Additive attention mask (b, 1, t, s): 0 where attending is allowed, a large negative
    /// number elsewhere.
    pub mask: &'a Tensor,
    /// The same with the sliding window applied, when some layer has one.
    pub window_mask: Option<&'a Tensor>,
    /// (b, t) f32, 1 for the real tokens of this forward and 0 for padding: what the DeltaNet
    /// layers zero their input with (only built for models that have them).
    pub keep: Option<&'a Tensor>,
    pub role: Role,
}

/// A frozen linear layer `{p}.{n}` of shape (o, i), with its `.bias` when `bias`.
pub(super) fn take_linear(
    w: &mut Weights,
    p: &str,
    n: &str,
    (o, i): (usize, usize),
    bias: bool,
) -> std::result::Result<Linear, ModelError> {
    let mut lin = Linear::new(w.take_base(&format!("{p}.{n}.weight"), &[o, i])?);
    if bias {
        lin.bias = Some(w.take(&format!("{p}.{n}.bias"), &[o])?);
    }
    Ok(lin)
}

impl Attention {
    fn new(
        cfg: &Config,
        spec: &Spec,
        layer: usize,
        w: &mut Weights,
        p: &str,
    ) -> std::result::Result<Self, ModelError> {
        let (h, hd, nh, nkv) = (
            cfg.hidden_size,
            cfg.head_dim(),
            cfg.num_attention_heads,
            cfg.kv_heads(),
        );
        let offset = spec.next.is_some();
        let qk_norm = if spec.qk_norm {
            Some((
                take_norm(w, &format!("{p}.q_norm.weight"), hd, offset)?,
                take_norm(w, &format!("{p}.k_norm.weight"), hd, offset)?,
            ))
        } else {
            None
        };
        let gated = spec.next.is_some();
        let q_width = if gated { 2 * nh * hd } else { nh * hd };
        Ok(Attention {
            q: take_linear(w, p, "q_proj", (q_width, h), spec.qkv_bias)?,
            k: take_linear(w, p, "k_proj", (nkv * hd, h), spec.qkv_bias)?,
            v: take_linear(w, p, "v_proj", (nkv * hd, h), spec.qkv_bias)?,
            o: take_linear(w, p, "o_proj", (h, nh * hd), spec.o_bias)?,
            qk_norm,
            sliding: spec.windows[layer].is_some(),
            gated,
            heads: nh,
            kv_heads: nkv,
            head_dim: hd,
            eps: cfg.rms_norm_eps,
        })
    }

    /// The mask this layer attends through.
    fn mask<'a>(&self, ctx: &FwdCtx<'a>) -> &'a Tensor {
        match (self.sliding, ctx.window_mask) {
            (true, Some(m)) => m,
            _ => ctx.mask,
        }
    }

    /// Projects x (b, t, h) into rotated q (b, nh, t, hd), rotated k and v (b, nkv, t, hd),
    /// and for gated attention the output gate (b, t, nh·hd).
    fn qkv(&self, x: &Tensor, ctx: &FwdCtx) -> Result<(Tensor, Tensor, Tensor, Option<Tensor>)> {
        let (b, t, _) = x.dims3()?;
        let hd = self.head_dim;
        let q = self.q.forward(x, ctx.role)?;
        let (q, gate) = if self.gated {
            let q = q.reshape((b, t, self.heads, 2 * hd))?;
            let gate = q.narrow(3, hd, hd)?.reshape((b, t, self.heads * hd))?;
            (q.narrow(3, 0, hd)?.contiguous()?, Some(gate))
        } else {
            (q.reshape((b, t, self.heads, hd))?, None)
        };
        let k = self
            .k
            .forward(x, ctx.role)?
            .reshape((b, t, self.kv_heads, hd))?;
        let v = self
            .v
            .forward(x, ctx.role)?
            .reshape((b, t, self.kv_heads, hd))?;
        let (cos, sin) = (&ctx.rope.cos, &ctx.rope.sin);
        let partial = 2 * cos.dim(2)? < hd;
        let (q, k) = match &self.qk_norm {
            Some((qn, kn)) if !partial => (
                ops::norm_rope(&q, qn, self.eps, cos, sin)?,
                ops::norm_rope(&k, kn, self.eps, cos, sin)?,
            ),
            Some((qn, kn)) => (
                rope_partial(&ops::rms_norm(&q, qn, self.eps)?, cos, sin)?,
                rope_partial(&ops::rms_norm(&k, kn, self.eps)?, cos, sin)?,
            ),
            None => (rope_partial(&q, cos, sin)?, rope_partial(&k, cos, sin)?),
        };
        Ok((q, k, v.transpose(1, 2)?.contiguous()?, gate))
    }

    /// o_proj of the attention output a (b, nh, t, hd), through σ(gate) when gated.
    fn out(&self, a: &Tensor, gate: Option<Tensor>, role: Role) -> Result<Tensor> {
        let (b, _, t, _) = a.dims4()?;
        let a = a
            .transpose(1, 2)?
            .reshape((b, t, self.heads * self.head_dim))?;
        let a = match gate {
            Some(g) => (a * super::qwen3_next::sigmoid(&g)?)?,
            None => a,
        };
        self.o.forward(&a, role)
    }

    /// softmax(q·kᵀ/√d + mask)·v for q (b, nh, t, hd) and k, v (b, nkv, s, hd). The query
    /// heads sharing a key/value head are folded into the row dimension, so k and v are
    /// never repeated.
    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor) -> Result<Tensor> {
        ops::attention(q, k, v, mask, 1.0 / (self.head_dim as f64).sqrt())
    }

    /// Decode-path attention: appends this step's k, v to `cache` and attends over all of it.
    fn forward_cached(&self, x: &Tensor, ctx: &FwdCtx, cache: &mut LayerCache) -> Result<Tensor> {
        let (q, k, v, gate) = self.qkv(x, ctx)?;
        let (k, v) = match cache.take() {
            Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
            None => (k, v),
        };
        let a = self.attend(&q, &k, &v, self.mask(ctx))?;
        *cache = Some((k.detach(), v.detach()));
        self.out(&a, gate, ctx.role)
    }

    fn forward(&self, x: &Tensor, ctx: &FwdCtx) -> Result<Tensor> {
        let (q, k, v, gate) = self.qkv(x, ctx)?;
        let a = self.attend(&q, &k, &v, self.mask(ctx))?;
        self.out(&a, gate, ctx.role)
    }
}

/// Rotary embedding of the first 2·cos.dim(2) dimensions of x (b, t, h, d), the rest passed
/// through (Qwen3-Next's partial rotary); (b, h, t, d) out.
fn rope_partial(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let x = x.transpose(1, 2)?.contiguous()?;
    let d = x.dim(3)?;
    let rot = 2 * cos.dim(2)?;
    if rot >= d {
        return ops::rope(&x, cos, sin);
    }
    let r = ops::rope(&x.narrow(3, 0, rot)?.contiguous()?, cos, sin)?;
    // both halves contiguous, so the result is too (candle's cat of a strided piece is not)
    Tensor::cat(&[&r, &x.narrow(3, rot, d - rot)?.contiguous()?], 3)
}

/// A norm weight of `n`; zero-centred ones (Qwen3-Next stores w for a factor 1 + w) come back
/// as 1 + w.
pub(super) fn take_norm(
    w: &mut Weights,
    name: &str,
    n: usize,
    offset: bool,
) -> std::result::Result<Tensor, ModelError> {
    let t = w.take(name, &[n])?;
    Ok(if offset { (t + 1.0)? } else { t })
}

/// The token mixer of a layer: attention, or Qwen3-Next's gated DeltaNet.
pub enum Mixer {
    Attention(Attention),
    Delta(GatedDeltaNet),
}

impl Mixer {
    /// The module name below the layer and the linear layers with their names.
    pub fn named(&self) -> (&'static str, Vec<(&'static str, &Linear)>) {
        match self {
            Mixer::Attention(a) => (
                "self_attn",
                vec![
                    ("q_proj", &a.q),
                    ("k_proj", &a.k),
                    ("v_proj", &a.v),
                    ("o_proj", &a.o),
                ],
            ),
            Mixer::Delta(d) => ("linear_attn", d.named().to_vec()),
        }
    }

    pub fn named_mut(&mut self) -> (&'static str, Vec<(&'static str, &mut Linear)>) {
        match self {
            Mixer::Attention(a) => (
                "self_attn",
                vec![
                    ("q_proj", &mut a.q),
                    ("k_proj", &mut a.k),
                    ("v_proj", &mut a.v),
                    ("o_proj", &mut a.o),
                ],
            ),
            Mixer::Delta(d) => {
                let [a, b, c] = d.named_mut();
                ("linear_attn", vec![a, b, c])
            }
        }
    }
}

/// SwiGLU MLP: down(silu(gate(x)) ⊙ up(x)).
pub struct Mlp {
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
}

/// The module names of an MLP's gate, up and down projections: transformers' `gate_proj`,
/// `up_proj`, `down_proj`, or Mixtral's `w1`, `w3`, `w2`.
pub type MlpNames = [&'static str; 3];

pub const MLP_NAMES: MlpNames = ["gate_proj", "up_proj", "down_proj"];

impl Mlp {
    /// The MLP `{p}.{gate,up,down}` (named by `names`), with biases when `bias`.
    pub fn new(
        w: &mut Weights,
        p: &str,
        (hidden, inter): (usize, usize),
        names: MlpNames,
        bias: bool,
    ) -> std::result::Result<Self, ModelError> {
        Ok(Mlp {
            gate: take_linear(w, p, names[0], (inter, hidden), bias)?,
            up: take_linear(w, p, names[1], (inter, hidden), bias)?,
            down: take_linear(w, p, names[2], (hidden, inter), bias)?,
        })
    }

    /// The projections with their module names (gate, up, down).
    pub fn named(&self, names: MlpNames) -> [(&'static str, &Linear); 3] {
        [
            (names[0], &self.gate),
            (names[1], &self.up),
            (names[2], &self.down),
        ]
    }

    pub fn named_mut(&mut self, names: MlpNames) -> [(&'static str, &mut Linear); 3] {
        [
            (names[0], &mut self.gate),
            (names[1], &mut self.up),
            (names[2], &mut self.down),
        ]
    }

    pub fn forward(&self, x: &Tensor, role: Role) -> Result<Tensor> {
        let g = self.gate.forward(x, role)?;
        let u = self.up.forward(x, role)?;
        self.down.forward(&ops::swiglu(&g, &u)?, role)
    }
}

pub enum Ffn {
    Dense(Mlp),
    Moe(SparseMoe),
}

pub struct Block {
    pub mixer: Mixer,
    pub ffn: Ffn,
    pub(super) ln1: Tensor,
    pub(super) ln2: Tensor,
    eps: f64,
}

/// One layer's cached keys and values, (b, nkv, s, hd) each.
pub type LayerCache = Option<(Tensor, Tensor)>;

/// The KV cache of a batch being decoded: per-layer keys/values and the key mask so far.
pub struct KvCache {
    pub layers: Vec<LayerCache>,
    /// Per layer, the state of a gated DeltaNet layer (None for attention layers and before the
    /// first step).
    pub states: Vec<Option<DeltaState>>,
    /// (b, s): 1 for real tokens, 0 for padding, over every cached position.
    pub keep: Vec<Vec<u32>>,
}

impl KvCache {
    pub fn new(layers: usize, batch: usize) -> Self {
        KvCache {
            layers: vec![None; layers],
            states: vec![None; layers],
            keep: vec![Vec::new(); batch],
        }
    }

    pub fn len(&self) -> usize {
        self.keep.first().map_or(0, |k| k.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The state of a layer's LoRA dropout generators, to replay the same masks when the layer is
/// recomputed (gradient checkpointing).
pub(crate) type RngSnapshot = Vec<Option<rand::rngs::StdRng>>;

impl Block {
    fn new(
        cfg: &Config,
        spec: &Spec,
        moe: Option<&MoeConfig>,
        i: usize,
        w: &mut Weights,
    ) -> std::result::Result<Self, ModelError> {
        let p = format!("model.layers.{i}");
        let h = cfg.hidden_size;
        let linear = spec.next.as_ref().filter(|n| n.linear[i]);
        let mixer = match linear {
            Some(n) => Mixer::Delta(GatedDeltaNet::new(cfg, n, w, &format!("{p}.linear_attn"))?),
            None => Mixer::Attention(Attention::new(cfg, spec, i, w, &format!("{p}.self_attn"))?),
        };
        let offset = spec.next.is_some();
        let ffn = match moe {
            Some(m) if m.is_sparse_layer(i) => Ffn::Moe(SparseMoe::new(m, h, w, &p)?),
            _ => Ffn::Dense(Mlp::new(
                w,
                &format!("{p}.mlp"),
                (h, cfg.intermediate_size),
                MLP_NAMES,
                spec.mlp_bias,
            )?),
        };
        Ok(Block {
            mixer,
            ffn,
            ln1: take_norm(w, &format!("{p}.input_layernorm.weight"), h, offset)?,
            ln2: take_norm(
                w,
                &format!("{p}.post_attention_layernorm.weight"),
                h,
                offset,
            )?,
            eps: cfg.rms_norm_eps,
        })
    }

    fn loras(&self) -> Vec<&super::linear::Lora> {
        let mut lins: Vec<&Linear> = self.mixer.named().1.into_iter().map(|(_, l)| l).collect();
        match &self.ffn {
            Ffn::Dense(m) => lins.extend([&m.gate, &m.up, &m.down]),
            Ffn::Moe(m) => {
                for x in &m.experts {
                    lins.extend([&x.gate, &x.up, &x.down]);
                }
                if let Some(sh) = &m.shared {
                    lins.extend([&sh.mlp.gate, &sh.mlp.up, &sh.mlp.down]);
                }
            }
        }
        lins.into_iter().filter_map(|l| l.lora.as_ref()).collect()
    }

    pub(crate) fn rng_snapshot(&self) -> RngSnapshot {
        self.loras()
            .iter()
            .map(|l| {
                l.train_rng
                    .as_ref()
                    .and_then(|r| r.lock().ok().map(|g| g.clone()))
            })
            .collect()
    }

    fn rng_restore(&self, snap: &RngSnapshot) {
        for (l, s) in self.loras().iter().zip(snap) {
            if let (Some(r), Some(s)) = (&l.train_rng, s)
                && let Ok(mut g) = r.lock()
            {
                *g = s.clone();
            }
        }
    }

    fn forward_cached(
        &self,
        x: &Tensor,
        ctx: &FwdCtx,
        cache: &mut LayerCache,
        state: &mut Option<DeltaState>,
    ) -> Result<Tensor> {
        let h = ops::rms_norm(x, &self.ln1, self.eps)?;
        let y = match &self.mixer {
            Mixer::Attention(a) => a.forward_cached(&h, ctx, cache)?,
            Mixer::Delta(d) => {
                let (y, s) = d.forward(&h, ctx.keep, state.as_ref(), ctx.role)?;
                *state = Some(DeltaState {
                    conv: s.conv.detach(),
                    state: s.state.detach(),
                });
                y
            }
        };
        let x = (x + y)?;
        let h = ops::rms_norm(&x, &self.ln2, self.eps)?;
        let m = match &self.ffn {
            Ffn::Dense(m) => m.forward(&h, ctx.role)?,
            Ffn::Moe(m) => m.forward(&h, ctx.role)?,
        };
        x + m
    }

    fn forward(&self, x: &Tensor, ctx: &FwdCtx) -> Result<Tensor> {
        let h = ops::rms_norm(x, &self.ln1, self.eps)?;
        let y = match &self.mixer {
            Mixer::Attention(a) => a.forward(&h, ctx)?,
            Mixer::Delta(d) => d.forward(&h, ctx.keep, None, ctx.role)?.0,
        };
        let x = (x + y)?;
        let h = ops::rms_norm(&x, &self.ln2, self.eps)?;
        let m = match &self.ffn {
            Ffn::Dense(m) => m.forward(&h, ctx.role)?,
            Ffn::Moe(m) => m.forward(&h, ctx.role)?,
        };
        x + m
    }
}

/// A decoder-only causal language model (dense or MoE) with a frozen base.
pub struct CausalLm {
    pub cfg: Config,
    pub moe: Option<MoeConfig>,
    pub spec: Spec,
    pub(super) embed: Tensor,
    pub layers: Vec<Block>,
    pub(super) norm: Tensor,
    /// None when the LM head is tied to the embedding.
    lm_head: Option<Tensor>,
    device: Device,
}

/// The attention masks of one forward: causal (with padding) and, when some layer slides, the
/// same restricted to the window.
struct Masks {
    full: Tensor,
    window: Option<Tensor>,
    /// (b, t) f32 keep of the new tokens, for models with DeltaNet layers.
    tokens: Option<Tensor>,
}

impl Masks {
    fn ctx<'a>(&'a self, rope: &'a RopeAngles, role: Role) -> FwdCtx<'a> {
        FwdCtx {
            rope,
            mask: &self.full,
            window_mask: self.window.as_ref(),
            keep: self.tokens.as_ref(),
            role,
        }
    }
}

/// The additive value for masked attention positions: large enough that exp underflows to 0,
/// finite so a fully masked row (a left-padding query) gives no NaN.
pub const MASKED: f32 = -1e9;

/// What [`CausalLm::backward_checkpointed`] needs: the forward's inputs, every layer's (detached)
/// input, the dropout generators' states and the variable standing for the last layer's output.
pub struct Checkpoint {
    positions: Tensor,
    keep: Option<Tensor>,
    role: Role,
    inputs: Vec<Tensor>,
    snaps: Vec<RngSnapshot>,
    last: candle_core::Var,
}

impl CausalLm {
    /// Builds the model from its config and weights (consumed as they are placed).
    pub fn new(cfg: ModelConfig, mut w: Weights) -> std::result::Result<Self, ModelError> {
        let ModelConfig {
            base: cfg,
            moe,
            spec,
            ..
        } = cfg;
        cfg.validate()?;
        if spec.windows.len() != cfg.num_hidden_layers {
            return Err(ModelError::Unsupported(format!(
                "{} attention windows for {} layers",
                spec.windows.len(),
                cfg.num_hidden_layers
            )));
        }
        let (v, h) = (cfg.vocab_size, cfg.hidden_size);
        let embed = w.get("model.embed_tokens.weight", &[v, h])?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            layers.push(Block::new(&cfg, &spec, moe.as_ref(), i, &mut w)?);
        }
        let norm = take_norm(&mut w, "model.norm.weight", h, spec.next.is_some())?;
        let lm_head = if cfg.tie_word_embeddings {
            None
        } else {
            Some(w.take("lm_head.weight", &[v, h])?)
        };
        let device = embed.device().clone();
        Ok(CausalLm {
            cfg,
            moe,
            spec,
            embed,
            layers,
            norm,
            lm_head,
            device,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The LM head matrix (vocab, hidden): the embedding when tied.
    pub fn lm_head(&self) -> &Tensor {
        self.lm_head.as_ref().unwrap_or(&self.embed)
    }

    /// cos/sin (b, t, hd/2) for integer positions (b, t), times the rope's attention factor
    /// (YaRN).
    pub fn rope_angles(&self, positions: &Tensor) -> Result<RopeAngles> {
        let (b, t) = positions.dims2()?;
        let inv_freq = &self.spec.rope.inv_freq;
        let half = inv_freq.len();
        let pos = positions.to_dtype(DType::F32)?.reshape((b, t, 1))?;
        let inv = Tensor::new(inv_freq.as_slice(), &self.device)?.reshape((1, 1, half))?;
        let f = pos.broadcast_mul(&inv)?;
        let a = self.spec.rope.attention_factor;
        let (cos, sin) = (f.cos()?, f.sin()?);
        if a == 1.0 {
            return Ok(RopeAngles { cos, sin });
        }
        Ok(RopeAngles {
            cos: (cos * a as f64)?,
            sin: (sin * a as f64)?,
        })
    }

    /// Additive masks (b, 1, t, past + t) for t new queries after `past` cached positions:
    /// causal, hiding keys whose `keep` (b rows over past + t keys) is 0, and the same with the
    /// sliding window when some layer has one.
    fn masks(&self, keep: &[Vec<u32>], past: usize, t: usize) -> Result<Masks> {
        let b = keep.len();
        let s = past + t;
        let build = |window: Option<usize>| {
            let mut m = vec![0f32; b * t * s];
            for (bi, row) in keep.iter().enumerate() {
                for i in 0..t {
                    let q = past + i;
                    for j in 0..s {
                        let outside = window.is_some_and(|w| q >= j + w);
                        if j > q || row[j] == 0 || outside {
                            m[(bi * t + i) * s + j] = MASKED;
                        }
                    }
                }
            }
            Tensor::from_vec(m, (b, 1, t, s), &self.device)
        };
        let has_delta = self
            .layers
            .iter()
            .any(|l| matches!(l.mixer, Mixer::Delta(_)));
        let tokens = if has_delta {
            let k: Vec<f32> = keep
                .iter()
                .flat_map(|row| row[past..].iter().map(|&k| k as f32))
                .collect();
            Some(Tensor::from_vec(k, (b, t), &self.device)?)
        } else {
            None
        };
        Ok(Masks {
            full: build(None)?,
            window: self.spec.window().map(|w| build(Some(w))).transpose()?,
            tokens,
        })
    }

    /// The rotary angles and masks of a full forward over ids (b, t).
    fn prepare(&self, positions: &Tensor, keep: Option<&Tensor>) -> Result<(RopeAngles, Masks)> {
        let (b, t) = positions.dims2()?;
        let keep: Vec<Vec<u32>> = match keep {
            Some(k) => k.to_dtype(DType::U32)?.to_vec2()?,
            None => vec![vec![1; t]; b],
        };
        Ok((self.rope_angles(positions)?, self.masks(&keep, 0, t)?))
    }

    /// Final hidden states (b, t, h) of token ids (b, t) at positions (b, t), differentiable
    /// with respect to the LoRA factors. `keep` (b, t), when given, masks padding keys.
    pub fn forward_hidden(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        keep: Option<&Tensor>,
        role: Role,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let (rope, masks) = self.prepare(positions, keep)?;
        let ctx = masks.ctx(&rope, role);
        let mut x = self.embed.index_select(&ids.flatten_all()?, 0)?.reshape((
            b,
            t,
            self.cfg.hidden_size,
        ))?;
        for l in &self.layers {
            x = l.forward(&x, &ctx)?;
        }
        ops::rms_norm(&x, &self.norm, self.cfg.rms_norm_eps)
    }

    /// Decode path: runs new tokens (b, t) at `positions` (b, t) with key mask `keep` (b, t)
    /// on top of `cache`, appends to it, and returns the logits of the last position (b, vocab).
    /// No gradient is wanted here: everything is detached.
    pub fn forward_step(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        keep: &[Vec<u32>],
        cache: &mut KvCache,
        role: Role,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let past = cache.len();
        for (row, k) in cache.keep.iter_mut().zip(keep) {
            row.extend_from_slice(k);
        }
        let masks = self.masks(&cache.keep, past, t)?;
        let rope = self.rope_angles(positions)?;
        let ctx = masks.ctx(&rope, role);
        let mut x = self.embed.index_select(&ids.flatten_all()?, 0)?.reshape((
            b,
            t,
            self.cfg.hidden_size,
        ))?;
        for ((l, c), s) in self
            .layers
            .iter()
            .zip(cache.layers.iter_mut())
            .zip(cache.states.iter_mut())
        {
            x = l.forward_cached(&x, &ctx, c, s)?.detach();
        }
        let last = x.narrow(1, t - 1, 1)?.squeeze(1)?;
        let h = ops::rms_norm(&last, &self.norm, self.cfg.rms_norm_eps)?;
        Ok(h.matmul(&self.lm_head().t()?)?.detach())
    }

    /// Full logits (b, t, vocab). For small vocabularies and tests; training uses the chunked
    /// log-prob of `logprob.rs`.
    pub fn forward(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        keep: Option<&Tensor>,
        role: Role,
    ) -> Result<Tensor> {
        let h = self.forward_hidden(ids, positions, keep, role)?;
        h.broadcast_matmul(&self.lm_head().t()?)
    }

    /// Final hidden states as [`CausalLm::forward_hidden`] gives them, without any graph: the
    /// layers run one at a time and each output is detached, so at most one layer's graph
    /// exists at a time (log-probs of the old policy and of the reference).
    pub fn forward_hidden_nograd(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        keep: Option<&Tensor>,
        role: Role,
    ) -> Result<Tensor> {
        let (x, _) = self.layers_detached(ids, positions, keep, role, false)?;
        ops::rms_norm(
            x.last().expect("the embedding"),
            &self.norm,
            self.cfg.rms_norm_eps,
        )
    }

    /// Embeds `ids` and runs every layer on the detached output of the previous one. Returns
    /// the input of every layer followed by the last layer's output, and, when `snapshots`,
    /// each layer's dropout generators as they were before it ran.
    fn layers_detached(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        keep: Option<&Tensor>,
        role: Role,
        snapshots: bool,
    ) -> Result<(Vec<Tensor>, Vec<RngSnapshot>)> {
        let (b, t) = ids.dims2()?;
        let (rope, masks) = self.prepare(positions, keep)?;
        let ctx = masks.ctx(&rope, role);
        let mut xs = vec![
            self.embed
                .index_select(&ids.flatten_all()?, 0)?
                .reshape((b, t, self.cfg.hidden_size))?
                .detach(),
        ];
        let mut snaps = Vec::new();
        for l in &self.layers {
            if snapshots {
                snaps.push(l.rng_snapshot());
            }
            let y = l.forward(xs.last().expect("non-empty"), &ctx)?.detach();
            xs.push(y);
        }
        Ok((xs, snaps))
    }

    /// Gradient checkpointing, forward half: final hidden states (b, t, h) that are
    /// differentiable only through the final norm, with what [`CausalLm::backward_checkpointed`]
    /// needs to carry a loss's gradient through the layers one at a time, recomputing each.
    /// Peak memory is one layer's graph plus one (b, t, h) tensor per layer, for one more
    /// forward of the layers.
    pub fn forward_hidden_checkpointed(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        keep: Option<&Tensor>,
        role: Role,
    ) -> Result<(Tensor, Checkpoint)> {
        let (mut xs, snaps) = self.layers_detached(ids, positions, keep, role, true)?;
        let last = candle_core::Var::from_tensor(&xs.pop().expect("the last output"))?;
        let h = ops::rms_norm(last.as_tensor(), &self.norm, self.cfg.rms_norm_eps)?;
        Ok((
            h,
            Checkpoint {
                positions: positions.clone(),
                keep: keep.cloned(),
                role,
                inputs: xs,
                snaps,
                last,
            },
        ))
    }

    /// Gradient checkpointing, backward half: `grads` is the backward of a loss computed from
    /// the hidden states of [`CausalLm::forward_hidden_checkpointed`]; adds the gradients of
    /// every LoRA factor, layer by layer from the last, recomputing each layer's forward (with
    /// the same dropout masks) and back-propagating the gradient of its output.
    pub fn backward_checkpointed(
        &self,
        ck: Checkpoint,
        grads: &mut candle_core::backprop::GradStore,
    ) -> Result<()> {
        let Some(g) = grads.remove(ck.last.as_tensor()) else {
            return Ok(()); // the loss does not depend on the layers
        };
        let (rope, masks) = self.prepare(&ck.positions, ck.keep.as_ref())?;
        let ctx = masks.ctx(&rope, ck.role);
        let after = self.loras_rng_state();
        let r = self.backward_layers(&ck, &ctx, g, grads);
        // leave the generators where the forward left them
        for (l, s) in self.layers.iter().zip(&after) {
            l.rng_restore(s);
        }
        r
    }

    fn backward_layers(
        &self,
        ck: &Checkpoint,
        ctx: &FwdCtx,
        mut g: Tensor,
        grads: &mut candle_core::backprop::GradStore,
    ) -> Result<()> {
        for (i, l) in self.layers.iter().enumerate().rev() {
            l.rng_restore(&ck.snaps[i]);
            let x = candle_core::Var::from_tensor(&ck.inputs[i])?;
            let y = l.forward(x.as_tensor(), ctx)?;
            let gs = (y * &g)?.sum_all()?.backward()?;
            for lora in l.loras() {
                for v in [&lora.a, &lora.b] {
                    if let Some(d) = gs.get(v.as_tensor()) {
                        let d = match grads.remove(v.as_tensor()) {
                            Some(prev) => (prev + d)?,
                            None => d.clone(),
                        };
                        grads.insert(v.as_tensor(), d);
                    }
                }
            }
            if i > 0 {
                g = match gs.get(x.as_tensor()) {
                    Some(d) => d.detach(),
                    None => return Ok(()),
                };
            }
        }
        Ok(())
    }

    fn loras_rng_state(&self) -> Vec<RngSnapshot> {
        self.layers.iter().map(Block::rng_snapshot).collect()
    }

    /// Replaces every f32 base weight of the linear layers by its NF4 form (bitsandbytes'
    /// layout, double-quantized absmax when `double`). The router, norms, embedding and LM head
    /// stay f32, as with bitsandbytes' `Linear4bit` replacement in QLoRA.
    pub fn quantize_nf4(&mut self, double: bool) -> Result<()> {
        for (_, lin) in self.linears_mut() {
            if let Base::F32(w) = &lin.base {
                let q = super::nf4::Nf4Tensor::quantize(w, double)?;
                lin.base = Base::Nf4(std::sync::Arc::new(q));
            }
        }
        Ok(())
    }

    /// Training mode: with `Some(seed)`, LoRA dropout is active, each adapted layer drawing its
    /// masks from its own generator seeded by (seed, layer order); `None` switches it off
    /// (evaluation, rollouts, the reference policy).
    pub fn set_training(&mut self, seed: Option<u64>) {
        use rand::SeedableRng;
        for (i, (_, lin)) in self.linears_mut().into_iter().enumerate() {
            if let Some(l) = &mut lin.lora {
                l.train_rng = seed.map(|s| {
                    Box::new(std::sync::Mutex::new(rand::rngs::StdRng::seed_from_u64(
                        s.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(i as u64),
                    )))
                });
            }
        }
    }

    /// Every weight under its checkpoint name, f32; linear layers with their adapter merged in
    /// (W + scale·B·A) when `merge` is true, NF4 bases dequantized. Tied models have no
    /// `lm_head.weight`, as transformers saves them.
    pub fn state_dict(&self, merge: bool) -> Result<std::collections::HashMap<String, Tensor>> {
        let mut m = std::collections::HashMap::new();
        // zero-centred norms are stored as w for a factor 1 + w (Qwen3-Next)
        let off = if self.spec.next.is_some() { 1.0 } else { 0.0 };
        let norm = |t: &Tensor| t - off;
        m.insert("model.embed_tokens.weight".to_string(), self.embed.clone());
        m.insert("model.norm.weight".to_string(), norm(&self.norm)?);
        if let Some(h) = &self.lm_head {
            m.insert("lm_head.weight".to_string(), h.clone());
        }
        for (i, l) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            m.insert(format!("{p}.input_layernorm.weight"), norm(&l.ln1)?);
            m.insert(
                format!("{p}.post_attention_layernorm.weight"),
                norm(&l.ln2)?,
            );
            match &l.mixer {
                Mixer::Attention(a) => {
                    if let Some((qn, kn)) = &a.qk_norm {
                        m.insert(format!("{p}.self_attn.q_norm.weight"), norm(qn)?);
                        m.insert(format!("{p}.self_attn.k_norm.weight"), norm(kn)?);
                    }
                }
                Mixer::Delta(d) => {
                    for (n, t) in d.frozen()? {
                        m.insert(format!("{p}.linear_attn.{n}"), t);
                    }
                }
            }
            if let Ffn::Moe(moe) = &l.ffn {
                m.insert(
                    format!("{p}.{}.gate.weight", moe.block),
                    moe.router().clone(),
                );
                if let Some(sh) = &moe.shared {
                    m.insert(
                        format!("{p}.{}.shared_expert_gate.weight", moe.block),
                        sh.gate.clone(),
                    );
                }
            }
        }
        for (name, lin) in self.linears() {
            let w = if merge {
                lin.merged_weight()?
            } else {
                lin.base.to_f32()?
            };
            m.insert(format!("{name}.weight"), w.detach());
            if let Some(bias) = &lin.bias {
                m.insert(format!("{name}.bias"), bias.clone());
            }
        }
        Ok(m)
    }

    /// Every linear layer with its module path (as in the checkpoint, without `.weight`).
    pub fn linears(&self) -> Vec<(String, &Linear)> {
        let mut out = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            let (module, lins) = l.mixer.named();
            for (n, lin) in lins {
                out.push((format!("{p}.{module}.{n}"), lin));
            }
            match &l.ffn {
                Ffn::Dense(m) => {
                    for (n, lin) in m.named(MLP_NAMES) {
                        out.push((format!("{p}.mlp.{n}"), lin));
                    }
                }
                Ffn::Moe(m) => {
                    for (e, x) in m.experts.iter().enumerate() {
                        for (n, lin) in x.named(m.names) {
                            out.push((format!("{p}.{}.experts.{e}.{n}", m.block), lin));
                        }
                    }
                    if let Some(sh) = &m.shared {
                        for (n, lin) in sh.mlp.named(MLP_NAMES) {
                            out.push((format!("{p}.{}.shared_expert.{n}", m.block), lin));
                        }
                    }
                }
            }
        }
        out
    }

    /// Mutable access to every linear layer with its module path.
    pub fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        let mut out = Vec::new();
        for (i, l) in self.layers.iter_mut().enumerate() {
            let p = format!("model.layers.{i}");
            let (module, lins) = l.mixer.named_mut();
            for (n, lin) in lins {
                out.push((format!("{p}.{module}.{n}"), lin));
            }
            match &mut l.ffn {
                Ffn::Dense(m) => {
                    for (n, lin) in m.named_mut(MLP_NAMES) {
                        out.push((format!("{p}.mlp.{n}"), lin));
                    }
                }
                Ffn::Moe(m) => {
                    let (block, names) = (m.block, m.names);
                    for (e, x) in m.experts.iter_mut().enumerate() {
                        for (n, lin) in x.named_mut(names) {
                            out.push((format!("{p}.{block}.experts.{e}.{n}"), lin));
                        }
                    }
                    if let Some(sh) = &mut m.shared {
                        for (n, lin) in sh.mlp.named_mut(MLP_NAMES) {
                            out.push((format!("{p}.{block}.shared_expert.{n}"), lin));
                        }
                    }
                }
            }
        }
        out
    }
}
