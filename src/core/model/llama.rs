//! Llama 2 / 3.x (transformers' `LlamaForCausalLM`, `model_type` `llama`): no q/k head norms,
//! biases on q/k/v/o with `attention_bias` and on the MLP with `mlp_bias`, full attention in
//! every layer, a tied or untied head, and the `llama3` (or another of `rope.rs`) rope scaling.

use std::path::Path;

use serde::Deserialize;

use super::decoder::{Config, Spec};
use super::{ModelError, config};

/// The `llama` fields beyond [`Config`].
#[derive(Debug, Clone, Deserialize)]
struct LlamaExtra {
    #[serde(default)]
    mlp_bias: bool,
}

/// What a `llama` config asks of the decoder.
pub fn spec(cfg: &Config, path: &Path, text: &str) -> Result<Spec, ModelError> {
    let extra: LlamaExtra = config::parse(path, text)?;
    Ok(Spec {
        qk_norm: false,
        qkv_bias: cfg.attention_bias,
        o_bias: cfg.attention_bias,
        mlp_bias: extra.mlp_bias,
        windows: vec![None; cfg.num_hidden_layers],
        rope: cfg.rope_freqs()?,
        next: None,
    })
}
