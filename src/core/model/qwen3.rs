//! Qwen3 (transformers' `Qwen3ForCausalLM`, `model_type` `qwen3`): an RMS norm on each query
//! and key head before the rotation, biases on q/k/v/o only with `attention_bias`, a SwiGLU MLP
//! without biases, and sliding-window layers as `layer_types` (or `use_sliding_window` from
//! layer `max_window_layers` on) say. The decoder itself is `decoder.rs`; `qwen3_moe.rs` adds
//! the sparse MoE of `qwen3_moe`.

use super::ModelError;
use super::decoder::{Config, Spec};

/// What a `qwen3` config asks of the decoder.
pub fn spec(cfg: &Config) -> Result<Spec, ModelError> {
    Ok(Spec {
        qk_norm: true,
        qkv_bias: cfg.attention_bias,
        o_bias: cfg.attention_bias,
        mlp_bias: false,
        windows: cfg.qwen_windows()?,
        rope: cfg.rope_freqs()?,
        next: None,
    })
}
