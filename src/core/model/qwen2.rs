//! Qwen2 / Qwen2.5 / QwQ (transformers' `Qwen2ForCausalLM`, `model_type` `qwen2`): biases on
//! the q, k and v projections (none on o or the MLP), no q/k head norms, sliding-window layers
//! as `layer_types` (or `use_sliding_window` from layer `max_window_layers` on) say, and any
//! rope scaling of `rope.rs` (Qwen2.5 long-context configs use YaRN).

use super::ModelError;
use super::decoder::{Config, Spec};

/// What a `qwen2` config asks of the decoder.
pub fn spec(cfg: &Config) -> Result<Spec, ModelError> {
    Ok(Spec {
        qk_norm: false,
        qkv_bias: true,
        o_bias: false,
        mlp_bias: false,
        windows: cfg.qwen_windows()?,
        rope: cfg.rope_freqs()?,
        next: None,
    })
}
