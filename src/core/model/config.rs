//! `config.json` as transformers writes it, for the architectures gym runs.

use std::path::Path;

use serde::Deserialize;

use super::ModelError;

/// transformers 5 writes `rope_parameters: {"rope_type": "default", "rope_theta": …}`; 4.x wrote
/// a top-level `rope_theta` and a `rope_scaling` object with the same scaling fields. Both are
/// read; `rope.rs` turns them into frequencies or refuses the type.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct RopeParameters {
    #[serde(default = "default_rope_type", alias = "type")]
    pub rope_type: String,
    pub rope_theta: Option<f64>,
    pub factor: Option<f64>,
    pub original_max_position_embeddings: Option<usize>,
    /// `llama3`
    pub low_freq_factor: Option<f64>,
    pub high_freq_factor: Option<f64>,
    /// `yarn`
    pub attention_factor: Option<f64>,
    pub beta_fast: Option<f64>,
    pub beta_slow: Option<f64>,
    pub mscale: Option<f64>,
    pub mscale_all_dim: Option<f64>,
    pub truncate: Option<bool>,
    /// Qwen3-Next and others: rotate only this fraction of each head.
    pub partial_rotary_factor: Option<f64>,
}

fn default_rope_type() -> String {
    "default".into()
}

/// `eos_token_id` is an integer or a list of them.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            TokenIds::One(i) => vec![*i],
            TokenIds::Many(v) => v.clone(),
        }
    }
}

/// The parts of `generation_config.json` gym uses: what transformers' `generate` falls back on
/// when a call does not say. `eos_token_id` and `pad_token_id` override config.json's (Qwen3
/// lists two end-of-sequence ids there, `<|im_end|>` and `<|endoftext|>`); the sampling values
/// are defaults under a run's own settings, and only when `do_sample` is not false.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct GenerationConfig {
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    #[serde(default)]
    pub do_sample: Option<bool>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub top_k: Option<usize>,
}

impl GenerationConfig {
    /// Reads `dir/generation_config.json`; `None` when the folder has none.
    pub fn load(dir: &Path) -> Result<Option<GenerationConfig>, ModelError> {
        let path = dir.join("generation_config.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => parse(&path, &text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ModelError::Io { path, source }),
        }
    }

    /// The sampling defaults it sets, as (temperature, top_p, top_k); all `None` when
    /// `do_sample` is false (greedy decoding has no sampling parameters).
    pub fn sampling(&self) -> (Option<f64>, Option<f64>, Option<usize>) {
        if self.do_sample == Some(false) {
            return (None, None, None);
        }
        (self.temperature, self.top_p, self.top_k)
    }
}

/// Which model class a folder holds, from `model_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    Qwen3,
    Qwen3Moe,
    Qwen2,
    Llama,
    Mistral,
    Mixtral,
    Qwen3Next,
}

impl Arch {
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Qwen3 => "qwen3",
            Arch::Qwen3Moe => "qwen3_moe",
            Arch::Qwen2 => "qwen2",
            Arch::Llama => "llama",
            Arch::Mistral => "mistral",
            Arch::Mixtral => "mixtral",
            Arch::Qwen3Next => "qwen3_next",
        }
    }
}

/// Reads just `model_type` (and `architectures`, for the error message).
pub fn detect_arch(path: &Path, text: &str) -> Result<Arch, ModelError> {
    #[derive(Deserialize)]
    struct Probe {
        model_type: Option<String>,
        #[serde(default)]
        architectures: Vec<String>,
    }
    let p: Probe = serde_json::from_str(text).map_err(|e| ModelError::Config {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    match p.model_type.as_deref() {
        Some("qwen3") => Ok(Arch::Qwen3),
        Some("qwen3_moe") => Ok(Arch::Qwen3Moe),
        Some("qwen2") => Ok(Arch::Qwen2),
        Some("llama") => Ok(Arch::Llama),
        Some("mistral") => Ok(Arch::Mistral),
        Some("mixtral") => Ok(Arch::Mixtral),
        Some("qwen3_next") => Ok(Arch::Qwen3Next),
        other => Err(ModelError::UnsupportedArch {
            model_type: other.unwrap_or("(none)").to_string(),
            architectures: p.architectures.join(", "),
        }),
    }
}

/// Parses a config file's text into `T`, naming the file on failure.
pub fn parse<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, ModelError> {
    serde_json::from_str(text).map_err(|e| ModelError::Config {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}
