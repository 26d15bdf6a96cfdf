//! Qwen3-MoE (transformers' `Qwen3MoeForCausalLM`): the Qwen3 block with its MLP replaced, on
//! the layers `decoder_sparse_step`/`mlp_only_layers` select, by a sparse mixture of experts:
//! a linear router, softmax, top-k, optional renormalisation of the k weights
//! (`norm_topk_prob`), and a weighted sum of the chosen experts' SwiGLU MLPs.

use candle_core::{DType, Result, Tensor};
use serde::Deserialize;

use super::ModelError;
use super::decoder::{MLP_NAMES, Mlp, MlpNames, Role};
use super::linear::{Base, Linear};
use super::ops;
use super::weights::Weights;

/// The MoE fields of a `qwen3_moe` `config.json` (the rest is [`super::decoder::Config`]);
/// Mixtral's are mapped onto it by `mixtral.rs`.
#[derive(Debug, Clone, Deserialize)]
pub struct MoeConfig {
    #[serde(alias = "num_local_experts")]
    pub num_experts: usize,
    pub num_experts_per_tok: usize,
    pub moe_intermediate_size: usize,
    #[serde(default)]
    pub norm_topk_prob: bool,
    #[serde(default = "one")]
    pub decoder_sparse_step: usize,
    #[serde(default)]
    pub mlp_only_layers: Vec<usize>,
    /// The module holding the router and experts in a layer (`mlp`; Mixtral's
    /// `block_sparse_moe`) and the experts' projection names.
    #[serde(skip, default = "mlp_block")]
    pub block: &'static str,
    #[serde(skip, default = "mlp_names")]
    pub names: MlpNames,
    /// Qwen3-Next: a shared expert SwiGLU MLP of this width beside the routed ones, scaled by
    /// σ(`shared_expert_gate` · x) (`qwen3_next.rs`).
    #[serde(skip)]
    pub shared_expert_intermediate_size: Option<usize>,
}

fn mlp_block() -> &'static str {
    "mlp"
}

fn mlp_names() -> MlpNames {
    MLP_NAMES
}

fn one() -> usize {
    1
}

impl MoeConfig {
    /// As transformers: sparse unless listed in `mlp_only_layers`, and every
    /// `decoder_sparse_step`-th layer (counting from 1).
    pub fn is_sparse_layer(&self, i: usize) -> bool {
        !self.mlp_only_layers.contains(&i)
            && self.num_experts > 0
            && self.decoder_sparse_step > 0
            && (i + 1).is_multiple_of(self.decoder_sparse_step)
    }

    pub fn validate(&self) -> std::result::Result<(), ModelError> {
        if self.num_experts_per_tok == 0 || self.num_experts_per_tok > self.num_experts {
            return Err(ModelError::Unsupported(format!(
                "num_experts_per_tok {} with {} experts",
                self.num_experts_per_tok, self.num_experts
            )));
        }
        Ok(())
    }
}

/// Qwen3-Next's shared expert: an MLP every token goes through, scaled by σ(gate · x).
pub struct SharedExpert {
    pub mlp: Mlp,
    /// The gate (1, hidden), frozen.
    pub gate: Tensor,
}

pub struct SparseMoe {
    /// Router (num_experts, hidden), frozen.
    router: Tensor,
    pub experts: Vec<Mlp>,
    pub shared: Option<SharedExpert>,
    /// Module and projection names, from [`MoeConfig`].
    pub block: &'static str,
    pub names: MlpNames,
    top_k: usize,
    norm_topk_prob: bool,
}

impl SparseMoe {
    /// The MoE of layer `p` (`model.layers.{i}`): per-expert weights under `{p}.{block}`
    /// (`experts.{e}.{names}`), or transformers 5's fused `{p}.mlp.experts.gate_up_proj` and
    /// `down_proj` with the router at `{p}.mlp.gate`.
    pub fn new(
        cfg: &MoeConfig,
        hidden: usize,
        w: &mut Weights,
        p: &str,
    ) -> std::result::Result<Self, ModelError> {
        cfg.validate()?;
        let (e, inter) = (cfg.num_experts, cfg.moe_intermediate_size);
        let fused = format!("{p}.mlp.experts.gate_up_proj");
        let (router, experts) = if w.contains(&fused) {
            // transformers 5 layout: gate_up_proj (E, 2I, h) with gate first, down_proj (E, h, I)
            let router = w.take(&format!("{p}.mlp.gate.weight"), &[e, hidden])?;
            let gu = w.take(&fused, &[e, 2 * inter, hidden])?;
            let dn = w.take(&format!("{p}.mlp.experts.down_proj"), &[e, hidden, inter])?;
            let experts = (0..e)
                .map(|i| {
                    let gu = gu.get(i)?;
                    Ok(Mlp {
                        gate: Linear::new(Base::F32(gu.narrow(0, 0, inter)?.contiguous()?)),
                        up: Linear::new(Base::F32(gu.narrow(0, inter, inter)?.contiguous()?)),
                        down: Linear::new(Base::F32(dn.get(i)?.contiguous()?)),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            (router, experts)
        } else {
            let q = format!("{p}.{}", cfg.block);
            let router = w.take(&format!("{q}.gate.weight"), &[e, hidden])?;
            let experts = (0..e)
                .map(|i| {
                    let x = format!("{q}.experts.{i}");
                    Mlp::new(w, &x, (hidden, inter), cfg.names, false)
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            (router, experts)
        };
        let shared = match cfg.shared_expert_intermediate_size {
            Some(n) => Some(SharedExpert {
                mlp: Mlp::new(
                    w,
                    &format!("{p}.mlp.shared_expert"),
                    (hidden, n),
                    MLP_NAMES,
                    false,
                )?,
                gate: w.take(&format!("{p}.mlp.shared_expert_gate.weight"), &[1, hidden])?,
            }),
            None => None,
        };
        Ok(SparseMoe {
            router,
            experts,
            shared,
            block: cfg.block,
            names: cfg.names,
            top_k: cfg.num_experts_per_tok,
            norm_topk_prob: cfg.norm_topk_prob,
        })
    }

    /// The router weight (num_experts, hidden).
    pub fn router(&self) -> &Tensor {
        &self.router
    }

    /// x (b, t, h) → (b, t, h). Differentiable in x through the routing weights and the
    /// experts (the choice of experts itself is discrete).
    pub fn forward(&self, x: &Tensor, role: Role) -> Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        let n = b * t;
        let xs = x.reshape((n, h))?;
        let router = Linear::new(Base::F32(self.router.clone()));
        let logits = router.forward(&xs, role)?; // the router has no adapter
        let probs = ops::softmax_last_dim(&logits)?; // (n, E)
        // top-k on the CPU copy; ties go to the lower expert index, as torch.topk does on CPU
        let pv: Vec<f32> = probs.detach().flatten_all()?.to_vec1()?;
        let ne = self.experts.len();
        let mut chosen = Vec::with_capacity(n * self.top_k);
        for row in pv.chunks(ne) {
            let mut idx: Vec<usize> = (0..ne).collect();
            idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
            chosen.extend(idx[..self.top_k].iter().map(|&i| i as u32));
        }
        let sel = Tensor::from_vec(chosen.clone(), (n, self.top_k), x.device())?;
        let mut wts = probs.gather(&sel, 1)?; // (n, k)
        if self.norm_topk_prob {
            wts = wts.broadcast_div(&wts.sum_keepdim(1)?)?;
        }
        // every expert's weighted rows, then one index_add into zeros: a chain of index_adds
        // copied the whole (n, h) output per expert forward, and added a whole (n, h) gradient
        // per expert backward; same sums in the same order (expert by expert per row)
        let (mut parts, mut all_rows) = (Vec::new(), Vec::new());
        for (e, expert) in self.experts.iter().enumerate() {
            let mut rows = Vec::new();
            let mut slots = Vec::new();
            for (i, c) in chosen.iter().enumerate() {
                if *c as usize == e {
                    rows.push((i / self.top_k) as u32);
                    slots.push(i as u32);
                }
            }
            if rows.is_empty() {
                continue;
            }
            let r = Tensor::new(rows.as_slice(), x.device())?;
            let s = Tensor::new(slots.as_slice(), x.device())?;
            let xe = xs.index_select(&r, 0)?.unsqueeze(0)?;
            let ye = expert.forward(&xe, role)?.squeeze(0)?;
            let we = wts.flatten_all()?.index_select(&s, 0)?.unsqueeze(1)?;
            parts.push(ye.broadcast_mul(&we)?);
            all_rows.extend(rows);
        }
        let mut out = xs.zeros_like()?;
        if !parts.is_empty() {
            let idx = Tensor::new(all_rows.as_slice(), x.device())?;
            out = out.index_add(&idx, &Tensor::cat(&parts, 0)?, 0)?;
        }
        if let Some(sh) = &self.shared {
            let gate = Linear::new(Base::F32(sh.gate.clone())).forward(&xs, role)?;
            let y = sh.mlp.forward(&xs.unsqueeze(0)?, role)?.squeeze(0)?;
            out = (out + y.broadcast_mul(&super::qwen3_next::sigmoid(&gate)?)?)?;
        }
        debug_assert_eq!(out.dtype(), DType::F32);
        out.reshape((b, t, h))
    }
}

/// What a `qwen3_moe` config asks of the decoder: Qwen3's attention, with the sliding window
/// (when `use_sliding_window`) on every layer, as transformers' Qwen3-MoE applies it.
pub fn spec(cfg: &super::decoder::Config) -> std::result::Result<super::decoder::Spec, ModelError> {
    super::mistral::no_layer_types(cfg, "qwen3_moe")?;
    let w = cfg.sliding_window.filter(|_| cfg.use_sliding_window);
    Ok(super::decoder::Spec {
        qk_norm: true,
        qkv_bias: cfg.attention_bias,
        o_bias: cfg.attention_bias,
        mlp_bias: false,
        windows: vec![w; cfg.num_hidden_layers],
        rope: cfg.rope_freqs()?,
        next: None,
    })
}
