//! Mixtral (transformers' `MixtralForCausalLM`, `model_type` `mixtral`): Mistral's attention
//! (every layer through `sliding_window` when set) with every MLP a sparse mixture of
//! `num_local_experts` SwiGLU experts of `intermediate_size`: softmax over the router logits,
//! the top `num_experts_per_tok`, their weights renormalised to sum to 1. Checkpoints name the
//! experts `block_sparse_moe.experts.{e}.w1` (gate), `w3` (up), `w2` (down), which are also the
//! module names PEFT used for them; transformers 5's fused `mlp.experts.gate_up_proj` is read
//! too. Training-time fields gym does not implement (`router_jitter_noise`, the router loss of
//! `output_router_logits`) are refused.

use std::path::Path;

use serde::Deserialize;

use super::decoder::{Config, Spec};
use super::qwen3_moe::MoeConfig;
use super::{ModelError, config};

/// The `mixtral` fields beyond [`Config`].
#[derive(Debug, Clone, Deserialize)]
struct MixtralExtra {
    num_local_experts: usize,
    num_experts_per_tok: usize,
    #[serde(default)]
    router_jitter_noise: f64,
    #[serde(default)]
    output_router_logits: bool,
}

/// What a `mixtral` config asks of the decoder, and its experts.
pub fn spec(cfg: &Config, path: &Path, text: &str) -> Result<(Spec, MoeConfig), ModelError> {
    let x: MixtralExtra = config::parse(path, text)?;
    super::mistral::no_layer_types(cfg, "mixtral")?;
    if x.router_jitter_noise != 0.0 {
        return Err(ModelError::Unsupported(format!(
            "router_jitter_noise {} (gym implements 0)",
            x.router_jitter_noise
        )));
    }
    if x.output_router_logits {
        return Err(ModelError::Unsupported(
            "output_router_logits = true (gym's loss has no router auxiliary loss)".into(),
        ));
    }
    let moe = MoeConfig {
        num_experts: x.num_local_experts,
        num_experts_per_tok: x.num_experts_per_tok,
        moe_intermediate_size: cfg.intermediate_size,
        norm_topk_prob: true,
        decoder_sparse_step: 1,
        mlp_only_layers: Vec::new(),
        block: "block_sparse_moe",
        names: ["w1", "w3", "w2"],
        shared_expert_intermediate_size: None,
    };
    moe.validate()?;
    let spec = Spec {
        qk_norm: false,
        qkv_bias: false,
        o_bias: false,
        mlp_bias: false,
        windows: vec![cfg.sliding_window; cfg.num_hidden_layers],
        rope: cfg.rope_freqs()?,
        next: None,
    };
    Ok((spec, moe))
}
