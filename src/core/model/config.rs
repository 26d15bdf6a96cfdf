//! `config.json` as transformers writes it, for the architectures gym runs.

use std::path::Path;

use serde::Deserialize;

use super::ModelError;

/// transformers 5 writes `rope_parameters: {"rope_type": "default", "rope_theta": …}`; 4.x wrote
/// a top-level `rope_theta` (and `rope_scaling`). Both are read; only the default rope is run.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RopeParameters {
    #[serde(default = "default_rope_type", alias = "type")]
    pub rope_type: String,
    pub rope_theta: Option<f64>,
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
}

impl Arch {
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Qwen3 => "qwen3",
            Arch::Qwen3Moe => "qwen3_moe",
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
        other => Err(ModelError::UnsupportedArch {
            model_type: other.unwrap_or("(none)").to_string(),
            architectures: p.architectures.join(", "),
        }),
    }
}

/// The rope base frequency, from `rope_parameters.rope_theta`, `rope_theta`, or 10000.
pub fn rope_theta(
    rope_theta: Option<f64>,
    params: Option<&RopeParameters>,
    scaling: Option<&RopeParameters>,
) -> Result<f64, ModelError> {
    for p in [params, scaling].into_iter().flatten() {
        if p.rope_type != "default" {
            return Err(ModelError::Unsupported(format!(
                "rope type {:?} (only the default rotary embedding is implemented)",
                p.rope_type
            )));
        }
    }
    Ok(params
        .and_then(|p| p.rope_theta)
        .or(rope_theta)
        .unwrap_or(10000.0))
}

/// Parses a config file's text into `T`, naming the file on failure.
pub fn parse<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, ModelError> {
    serde_json::from_str(text).map_err(|e| ModelError::Config {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}
