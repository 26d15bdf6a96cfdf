//! Qwen3 (transformers' `Qwen3ForCausalLM`): RMS-normed q/k heads, grouped-query attention,
//! rotary embedding, SwiGLU MLP, pre-norm residual blocks, optionally tied LM head.
//! The sparse-MoE MLP of `qwen3_moe` lives in `qwen3_moe.rs`; both share this file's attention
//! and block structure, as in transformers.

use candle_core::{DType, Device, Result, Tensor};
use serde::Deserialize;

use super::config::{RopeParameters, TokenIds};
use super::linear::{Base, Linear};
use super::qwen3_moe::{MoeConfig, SparseMoe};
use super::weights::Weights;
use super::{ModelError, ops};

/// `config.json` of a `qwen3` model (transformers' `Qwen3Config` field names).
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

    pub fn rope_theta(&self) -> std::result::Result<f64, ModelError> {
        super::config::rope_theta(
            self.rope_theta,
            self.rope_parameters.as_ref(),
            self.rope_scaling.as_ref(),
        )
    }

    pub fn validate(&self) -> std::result::Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::Unsupported(m));
        if self.attention_bias {
            return bad("attention_bias = true".into());
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
        self.rope_theta().map(|_| ())
    }
}

/// Self-attention with q/k RMS norms, GQA and rotary embedding.
pub struct Attention {
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    pub(super) q_norm: Tensor,
    pub(super) k_norm: Tensor,
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
    /// false: run the frozen base only (the reference policy for the KL term).
    pub adapters: bool,
}

impl Attention {
    fn new(cfg: &Config, w: &mut Weights, p: &str) -> std::result::Result<Self, ModelError> {
        let (h, hd, nh, nkv) = (
            cfg.hidden_size,
            cfg.head_dim(),
            cfg.num_attention_heads,
            cfg.kv_heads(),
        );
        let lin = |w: &mut Weights, n: &str, o: usize, i: usize| {
            Ok::<_, ModelError>(Linear::new(
                w.take_base(&format!("{p}.{n}.weight"), &[o, i])?,
            ))
        };
        Ok(Attention {
            q: lin(w, "q_proj", nh * hd, h)?,
            k: lin(w, "k_proj", nkv * hd, h)?,
            v: lin(w, "v_proj", nkv * hd, h)?,
            o: lin(w, "o_proj", h, nh * hd)?,
            q_norm: w.take(&format!("{p}.q_norm.weight"), &[hd])?,
            k_norm: w.take(&format!("{p}.k_norm.weight"), &[hd])?,
            heads: nh,
            kv_heads: nkv,
            head_dim: hd,
            eps: cfg.rms_norm_eps,
        })
    }

    /// Projects x (b, t, h) into rotated q (b, nh, t, hd), rotated k and v (b, nkv, t, hd).
    fn qkv(&self, x: &Tensor, ctx: &FwdCtx) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, t, _) = x.dims3()?;
        let hd = self.head_dim;
        let q = self
            .q
            .forward(x, ctx.adapters)?
            .reshape((b, t, self.heads, hd))?;
        let k = self
            .k
            .forward(x, ctx.adapters)?
            .reshape((b, t, self.kv_heads, hd))?;
        let v = self
            .v
            .forward(x, ctx.adapters)?
            .reshape((b, t, self.kv_heads, hd))?;
        let (cos, sin) = (&ctx.rope.cos, &ctx.rope.sin);
        let q = ops::norm_rope(&q, &self.q_norm, self.eps, cos, sin)?;
        let k = ops::norm_rope(&k, &self.k_norm, self.eps, cos, sin)?;
        Ok((q, k, v.transpose(1, 2)?.contiguous()?))
    }

    /// softmax(q·kᵀ/√d + mask)·v for q (b, nh, t, hd) and k, v (b, nkv, s, hd). The query
    /// heads sharing a key/value head are folded into the row dimension, so k and v are
    /// never repeated.
    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor) -> Result<Tensor> {
        ops::attention(q, k, v, mask, 1.0 / (self.head_dim as f64).sqrt())
    }

    /// Decode-path attention: appends this step's k, v to `cache` and attends over all of it.
    fn forward_cached(&self, x: &Tensor, ctx: &FwdCtx, cache: &mut LayerCache) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let (q, k, v) = self.qkv(x, ctx)?;
        let (k, v) = match cache.take() {
            Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
            None => (k, v),
        };
        let a = self.attend(&q, &k, &v, ctx.mask)?;
        *cache = Some((k.detach(), v.detach()));
        let a = a
            .transpose(1, 2)?
            .reshape((b, t, self.heads * self.head_dim))?;
        self.o.forward(&a, ctx.adapters)
    }

    fn forward(&self, x: &Tensor, ctx: &FwdCtx) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let (q, k, v) = self.qkv(x, ctx)?;
        let a = self.attend(&q, &k, &v, ctx.mask)?;
        let a = a
            .transpose(1, 2)?
            .reshape((b, t, self.heads * self.head_dim))?;
        self.o.forward(&a, ctx.adapters)
    }
}

/// SwiGLU MLP: down(silu(gate(x)) ⊙ up(x)).
pub struct Mlp {
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
}

impl Mlp {
    pub fn new(
        w: &mut Weights,
        p: &str,
        hidden: usize,
        inter: usize,
    ) -> std::result::Result<Self, ModelError> {
        let mut lin = |n: &str, o: usize, i: usize| {
            Ok::<_, ModelError>(Linear::new(
                w.take_base(&format!("{p}.{n}.weight"), &[o, i])?,
            ))
        };
        Ok(Mlp {
            gate: lin("gate_proj", inter, hidden)?,
            up: lin("up_proj", inter, hidden)?,
            down: lin("down_proj", hidden, inter)?,
        })
    }

    pub fn forward(&self, x: &Tensor, adapters: bool) -> Result<Tensor> {
        let g = self.gate.forward(x, adapters)?;
        let u = self.up.forward(x, adapters)?;
        self.down.forward(&ops::swiglu(&g, &u)?, adapters)
    }
}

pub enum Ffn {
    Dense(Mlp),
    Moe(SparseMoe),
}

pub struct Block {
    pub attn: Attention,
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
    /// (b, s): 1 for real tokens, 0 for padding, over every cached position.
    pub keep: Vec<Vec<u32>>,
}

impl KvCache {
    pub fn new(layers: usize, batch: usize) -> Self {
        KvCache {
            layers: vec![None; layers],
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
    fn loras(&self) -> Vec<&super::linear::Lora> {
        let a = &self.attn;
        let mut lins = vec![&a.q, &a.k, &a.v, &a.o];
        match &self.ffn {
            Ffn::Dense(m) => lins.extend([&m.gate, &m.up, &m.down]),
            Ffn::Moe(m) => {
                for x in &m.experts {
                    lins.extend([&x.gate, &x.up, &x.down]);
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

    fn forward_cached(&self, x: &Tensor, ctx: &FwdCtx, cache: &mut LayerCache) -> Result<Tensor> {
        let h = ops::rms_norm(x, &self.ln1, self.eps)?;
        let x = (x + self.attn.forward_cached(&h, ctx, cache)?)?;
        let h = ops::rms_norm(&x, &self.ln2, self.eps)?;
        let m = match &self.ffn {
            Ffn::Dense(m) => m.forward(&h, ctx.adapters)?,
            Ffn::Moe(m) => m.forward(&h, ctx.adapters)?,
        };
        x + m
    }

    fn forward(&self, x: &Tensor, ctx: &FwdCtx) -> Result<Tensor> {
        let h = ops::rms_norm(x, &self.ln1, self.eps)?;
        let x = (x + self.attn.forward(&h, ctx)?)?;
        let h = ops::rms_norm(&x, &self.ln2, self.eps)?;
        let m = match &self.ffn {
            Ffn::Dense(m) => m.forward(&h, ctx.adapters)?,
            Ffn::Moe(m) => m.forward(&h, ctx.adapters)?,
        };
        x + m
    }
}

/// A Qwen3 (dense or MoE) causal language model with a frozen base.
pub struct Qwen3 {
    pub cfg: Config,
    pub moe: Option<MoeConfig>,
    pub(super) embed: Tensor,
    pub layers: Vec<Block>,
    pub(super) norm: Tensor,
    /// None when the LM head is tied to the embedding.
    lm_head: Option<Tensor>,
    pub(super) inv_freq: Vec<f32>,
    device: Device,
}

/// The additive value for masked attention positions: large enough that exp underflows to 0,
/// finite so a fully masked row (a left-padding query) gives no NaN.
pub const MASKED: f32 = -1e9;

/// What [`Qwen3::backward_checkpointed`] needs: the forward's inputs, every layer's (detached)
/// input, the dropout generators' states and the variable standing for the last layer's output.
pub struct Checkpoint {
    ids: Tensor,
    positions: Tensor,
    keep: Option<Tensor>,
    adapters: bool,
    inputs: Vec<Tensor>,
    snaps: Vec<RngSnapshot>,
    last: candle_core::Var,
}

impl Qwen3 {
    /// Builds the model from its config and weights (consumed as they are placed).
    pub fn new(
        cfg: Config,
        moe: Option<MoeConfig>,
        mut w: Weights,
    ) -> std::result::Result<Self, ModelError> {
        cfg.validate()?;
        let (v, h) = (cfg.vocab_size, cfg.hidden_size);
        let embed = w.get("model.embed_tokens.weight", &[v, h])?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let attn = Attention::new(&cfg, &mut w, &format!("{p}.self_attn"))?;
            let ffn = match &moe {
                Some(m) if m.is_sparse_layer(i) => {
                    Ffn::Moe(SparseMoe::new(m, h, &mut w, &format!("{p}.mlp"))?)
                }
                _ => Ffn::Dense(Mlp::new(
                    &mut w,
                    &format!("{p}.mlp"),
                    h,
                    cfg.intermediate_size,
                )?),
            };
            layers.push(Block {
                attn,
                ffn,
                ln1: w.take(&format!("{p}.input_layernorm.weight"), &[h])?,
                ln2: w.take(&format!("{p}.post_attention_layernorm.weight"), &[h])?,
                eps: cfg.rms_norm_eps,
            });
        }
        let norm = w.take("model.norm.weight", &[h])?;
        let lm_head = if cfg.tie_word_embeddings {
            None
        } else {
            Some(w.take("lm_head.weight", &[v, h])?)
        };
        let hd = cfg.head_dim();
        let theta = cfg.rope_theta()?;
        // as transformers: 1 / theta^(2i/d), in f32
        let inv_freq = (0..hd / 2)
            .map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / hd as f32))
            .collect();
        let device = embed.device().clone();
        Ok(Qwen3 {
            cfg,
            moe,
            embed,
            layers,
            norm,
            lm_head,
            inv_freq,
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

    /// cos/sin (b, t, hd/2) for integer positions (b, t).
    pub fn rope_angles(&self, positions: &Tensor) -> Result<RopeAngles> {
        let (b, t) = positions.dims2()?;
        let half = self.inv_freq.len();
        let pos = positions.to_dtype(DType::F32)?.reshape((b, t, 1))?;
        let inv = Tensor::new(self.inv_freq.as_slice(), &self.device)?.reshape((1, 1, half))?;
        let f = pos.broadcast_mul(&inv)?;
        Ok(RopeAngles {
            cos: f.cos()?,
            sin: f.sin()?,
        })
    }

    /// Causal mask (b, 1, t, t) that also hides keys where `keep` (b, t) is 0.
    pub fn causal_mask(&self, b: usize, t: usize, keep: Option<&Tensor>) -> Result<Tensor> {
        let keep: Vec<u32> = match keep {
            Some(k) => k.to_dtype(DType::U32)?.flatten_all()?.to_vec1()?,
            None => vec![1; b * t],
        };
        let mut m = vec![0f32; b * t * t];
        for bi in 0..b {
            for i in 0..t {
                for j in 0..t {
                    if j > i || keep[bi * t + j] == 0 {
                        m[(bi * t + i) * t + j] = MASKED;
                    }
                }
            }
        }
        Tensor::from_vec(m, (b, 1, t, t), &self.device)
    }

    /// Final hidden states (b, t, h) of token ids (b, t) at positions (b, t), differentiable
    /// with respect to the LoRA factors. `keep` (b, t), when given, masks padding keys.
    pub fn forward_hidden(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        keep: Option<&Tensor>,
        adapters: bool,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let rope = self.rope_angles(positions)?;
        let mask = self.causal_mask(b, t, keep)?;
        let ctx = FwdCtx {
            rope: &rope,
            mask: &mask,
            adapters,
        };
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
        adapters: bool,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let past = cache.len();
        for (row, k) in cache.keep.iter_mut().zip(keep) {
            row.extend_from_slice(k);
        }
        let s = past + t;
        let mut m = vec![0f32; b * t * s];
        for bi in 0..b {
            for i in 0..t {
                for j in 0..s {
                    if j > past + i || cache.keep[bi][j] == 0 {
                        m[(bi * t + i) * s + j] = MASKED;
                    }
                }
            }
        }
        let mask = Tensor::from_vec(m, (b, 1, t, s), &self.device)?;
        let rope = self.rope_angles(positions)?;
        let ctx = FwdCtx {
            rope: &rope,
            mask: &mask,
            adapters,
        };
        let mut x = self.embed.index_select(&ids.flatten_all()?, 0)?.reshape((
            b,
            t,
            self.cfg.hidden_size,
        ))?;
        for (l, c) in self.layers.iter().zip(cache.layers.iter_mut()) {
            x = l.forward_cached(&x, &ctx, c)?.detach();
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
        adapters: bool,
    ) -> Result<Tensor> {
        let h = self.forward_hidden(ids, positions, keep, adapters)?;
        h.broadcast_matmul(&self.lm_head().t()?)
    }

    /// Final hidden states as [`Qwen3::forward_hidden`] gives them, without any graph: the
    /// layers run one at a time and each output is detached, so at most one layer's graph
    /// exists at a time (log-probs of the old policy and of the reference).
    pub fn forward_hidden_nograd(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        keep: Option<&Tensor>,
        adapters: bool,
    ) -> Result<Tensor> {
        let (x, _) = self.layers_detached(ids, positions, keep, adapters, false)?;
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
        adapters: bool,
        snapshots: bool,
    ) -> Result<(Vec<Tensor>, Vec<RngSnapshot>)> {
        let (b, t) = ids.dims2()?;
        let rope = self.rope_angles(positions)?;
        let mask = self.causal_mask(b, t, keep)?;
        let ctx = FwdCtx {
            rope: &rope,
            mask: &mask,
            adapters,
        };
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
    /// differentiable only through the final norm, with what [`Qwen3::backward_checkpointed`]
    /// needs to carry a loss's gradient through the layers one at a time, recomputing each.
    /// Peak memory is one layer's graph plus one (b, t, h) tensor per layer, for one more
    /// forward of the layers.
    pub fn forward_hidden_checkpointed(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        keep: Option<&Tensor>,
        adapters: bool,
    ) -> Result<(Tensor, Checkpoint)> {
        let (mut xs, snaps) = self.layers_detached(ids, positions, keep, adapters, true)?;
        let last = candle_core::Var::from_tensor(&xs.pop().expect("the last output"))?;
        let h = ops::rms_norm(last.as_tensor(), &self.norm, self.cfg.rms_norm_eps)?;
        Ok((
            h,
            Checkpoint {
                ids: ids.clone(),
                positions: positions.clone(),
                keep: keep.cloned(),
                adapters,
                inputs: xs,
                snaps,
                last,
            },
        ))
    }

    /// Gradient checkpointing, backward half: `grads` is the backward of a loss computed from
    /// the hidden states of [`Qwen3::forward_hidden_checkpointed`]; adds the gradients of
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
        let (b, t) = ck.ids.dims2()?;
        let rope = self.rope_angles(&ck.positions)?;
        let mask = self.causal_mask(b, t, ck.keep.as_ref())?;
        let ctx = FwdCtx {
            rope: &rope,
            mask: &mask,
            adapters: ck.adapters,
        };
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
        m.insert("model.embed_tokens.weight".to_string(), self.embed.clone());
        m.insert("model.norm.weight".to_string(), self.norm.clone());
        if let Some(h) = &self.lm_head {
            m.insert("lm_head.weight".to_string(), h.clone());
        }
        for (i, l) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            m.insert(format!("{p}.input_layernorm.weight"), l.ln1.clone());
            m.insert(
                format!("{p}.post_attention_layernorm.weight"),
                l.ln2.clone(),
            );
            m.insert(
                format!("{p}.self_attn.q_norm.weight"),
                l.attn.q_norm.clone(),
            );
            m.insert(
                format!("{p}.self_attn.k_norm.weight"),
                l.attn.k_norm.clone(),
            );
            if let Ffn::Moe(moe) = &l.ffn {
                m.insert(format!("{p}.mlp.gate.weight"), moe.router().clone());
            }
        }
        for (name, lin) in self.linears() {
            let w = if merge {
                lin.merged_weight()?
            } else {
                lin.base.to_f32()?
            };
            m.insert(format!("{name}.weight"), w.detach());
        }
        Ok(m)
    }

    /// Every linear layer with its module path (as in the checkpoint, without `.weight`).
    pub fn linears(&self) -> Vec<(String, &Linear)> {
        let mut out = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            let a = &l.attn;
            for (n, lin) in [
                ("q_proj", &a.q),
                ("k_proj", &a.k),
                ("v_proj", &a.v),
                ("o_proj", &a.o),
            ] {
                out.push((format!("{p}.self_attn.{n}"), lin));
            }
            match &l.ffn {
                Ffn::Dense(m) => {
                    for (n, lin) in [
                        ("gate_proj", &m.gate),
                        ("up_proj", &m.up),
                        ("down_proj", &m.down),
                    ] {
                        out.push((format!("{p}.mlp.{n}"), lin));
                    }
                }
                Ffn::Moe(m) => {
                    for (e, x) in m.experts.iter().enumerate() {
                        for (n, lin) in [
                            ("gate_proj", &x.gate),
                            ("up_proj", &x.up),
                            ("down_proj", &x.down),
                        ] {
                            out.push((format!("{p}.mlp.experts.{e}.{n}"), lin));
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
            let a = &mut l.attn;
            for (n, lin) in [
                ("q_proj", &mut a.q),
                ("k_proj", &mut a.k),
                ("v_proj", &mut a.v),
                ("o_proj", &mut a.o),
            ] {
                out.push((format!("{p}.self_attn.{n}"), lin));
            }
            match &mut l.ffn {
                Ffn::Dense(m) => {
                    for (n, lin) in [
                        ("gate_proj", &mut m.gate),
                        ("up_proj", &mut m.up),
                        ("down_proj", &mut m.down),
                    ] {
                        out.push((format!("{p}.mlp.{n}"), lin));
                    }
                }
                Ffn::Moe(m) => {
                    for (e, x) in m.experts.iter_mut().enumerate() {
                        for (n, lin) in [
                            ("gate_proj", &mut x.gate),
                            ("up_proj", &mut x.up),
                            ("down_proj", &mut x.down),
                        ] {
                            out.push((format!("{p}.mlp.experts.{e}.{n}"), lin));
                        }
                    }
                }
            }
        }
        out
    }
}
