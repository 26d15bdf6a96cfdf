//! Mistral (transformers' `MistralForCausalLM`, `model_type` `mistral`): Llama's block without
//! biases, with every layer attending through a `sliding_window` when the config sets one.
//! transformers' Mistral ignores `layer_types` (with a warning); gym refuses a config that has
//! them rather than guess which was meant.

use super::ModelError;
use super::decoder::{Config, Spec};

/// Refuses `layer_types`, which Mistral does not read.
pub(super) fn no_layer_types(cfg: &Config, arch: &str) -> Result<(), ModelError> {
    match &cfg.layer_types {
        Some(t) if t.iter().any(|t| t != "full_attention") => {
            Err(ModelError::Unsupported(format!(
                "layer_types in a {arch} config (transformers' {arch} ignores them; \
                 sliding_window applies to every layer)"
            )))
        }
        _ => Ok(()),
    }
}

/// What a `mistral` config asks of the decoder.
pub fn spec(cfg: &Config) -> Result<Spec, ModelError> {
    no_layer_types(cfg, "mistral")?;
    Ok(Spec {
        qk_norm: false,
        qkv_bias: false,
        o_bias: false,
        mlp_bias: false,
        windows: vec![cfg.sliding_window; cfg.num_hidden_layers],
        rope: cfg.rope_freqs()?,
        next: None,
    })
}
