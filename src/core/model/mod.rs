//! Language models in candle: Qwen3 dense and MoE loaded from a Hugging Face folder, a frozen
//! base (f32 or NF4) with trainable LoRA factors, differentiable forward with fused custom ops,
//! PEFT adapter files.
//!
//! Layout: `config.rs` (config.json), `weights.rs` (safetensors, single or sharded), `ops.rs`
//! (custom ops with hand-written backward; `attn_cpu.rs` their CPU attention by blocks of
//! queries, `vexp.rs` a vectorized exp), `linear.rs` (frozen linear + LoRA), `nf4.rs`
//! (bitsandbytes-compatible 4-bit), `qwen3.rs` / `qwen3_moe.rs` (one file per architecture),
//! `lora.rs` (LoRA config, initialisation, PEFT adapter folders).

mod attn_cpu;
pub mod config;
pub mod decode;
pub mod decoder;
pub mod delta_rule;
pub mod embedded;
pub mod generate;
pub mod kernels;
pub mod linear;
pub mod llama;
pub mod logprob;
pub mod lora;
pub mod mistral;
pub mod mixtral;
pub mod nf4;
pub mod nf4_resident;
pub mod ops;
pub mod qwen2;
pub mod qwen3;
pub mod qwen3_moe;
pub mod qwen3_next;
pub mod rope;
pub mod summary;
mod vexp;
pub mod weights;

use std::path::{Path, PathBuf};

use candle_core::Device;

use crate::core::error::{Classify, ErrorClass};
pub use config::Arch;
pub use decoder::{CausalLm, Role};

/// The model type the rest of gym names (kept while the callers move to [`CausalLm`]).
pub type Qwen3 = CausalLm;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path} is missing")]
    MissingFile { path: PathBuf },
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error(
        "unsupported architecture: model_type {model_type:?} ({architectures}); gym runs qwen3, qwen3_moe, qwen3_next, qwen2, llama, mistral and mixtral"
    )]
    UnsupportedArch {
        model_type: String,
        architectures: String,
    },
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("{path}: {reason}")]
    Weights { path: PathBuf, reason: String },
    #[error("tensor {name} is missing from the weights in {dir}")]
    MissingTensor { name: String, dir: PathBuf },
    #[error("tensor {name} has shape {got:?}, the config implies {expected:?}")]
    Shape {
        name: String,
        expected: Vec<usize>,
        got: Vec<usize>,
    },
    #[error("tokenizer {path}: {reason}")]
    Tokenizer { path: PathBuf, reason: String },
    #[error("adapter {path}: {reason}")]
    Adapter { path: PathBuf, reason: String },
    #[error("tensor computation: {0}")]
    Candle(#[from] candle_core::Error),
}

impl Classify for ModelError {
    fn class(&self) -> ErrorClass {
        match self {
            ModelError::MissingFile { .. } | ModelError::Io { .. } => ErrorClass::Io,
            ModelError::Config { .. }
            | ModelError::Weights { .. }
            | ModelError::MissingTensor { .. }
            | ModelError::Shape { .. }
            | ModelError::Tokenizer { .. }
            | ModelError::Adapter { .. } => ErrorClass::Malformed,
            ModelError::UnsupportedArch { .. } | ModelError::Unsupported(_) => {
                ErrorClass::Unsupported
            }
            ModelError::Candle(_) => ErrorClass::Other,
        }
    }
}

/// Reads a text file, mapping "not found" to [`ModelError::MissingFile`].
pub(crate) fn read_text(path: &Path) -> Result<String, ModelError> {
    std::fs::read_to_string(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ModelError::MissingFile {
                path: path.to_path_buf(),
            }
        } else {
            ModelError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// The parsed `config.json` of a model folder.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub arch: Arch,
    pub base: decoder::Config,
    pub moe: Option<qwen3_moe::MoeConfig>,
    /// What the architecture asks of the shared decoder.
    pub spec: decoder::Spec,
}

impl ModelConfig {
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join("config.json");
        let text = read_text(&path)?;
        let mut cfg = Self::parse(&path, &text)?;
        // generation_config.json's end-of-sequence list and pad id replace config.json's
        if let Some(g) = config::GenerationConfig::load(dir)? {
            if g.eos_token_id.is_some() {
                cfg.base.eos_token_id = g.eos_token_id;
            }
            if g.pad_token_id.is_some() {
                cfg.base.pad_token_id = g.pad_token_id;
            }
        }
        Ok(cfg)
    }

    /// Parses the text of `path` (a `config.json`), refusing what gym does not implement.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ModelError> {
        let arch = config::detect_arch(path, text)?;
        let base: decoder::Config = config::parse(path, text)?;
        base.validate()?;
        let (spec, moe) = match arch {
            Arch::Qwen3 => (qwen3::spec(&base)?, None),
            Arch::Qwen3Moe => {
                let m = config::parse::<qwen3_moe::MoeConfig>(path, text)?;
                m.validate()?;
                (qwen3_moe::spec(&base)?, Some(m))
            }
            Arch::Qwen2 => (qwen2::spec(&base)?, None),
            Arch::Llama => (llama::spec(&base, path, text)?, None),
            Arch::Mistral => (mistral::spec(&base)?, None),
            Arch::Mixtral => {
                let (spec, m) = mixtral::spec(&base, path, text)?;
                (spec, Some(m))
            }
            Arch::Qwen3Next => qwen3_next::spec(&base, path, text)?,
        };
        if let Some(f) = base.rope()?.partial_rotary_factor
            && f != 1.0
            && arch != Arch::Qwen3Next
        {
            return Err(ModelError::Unsupported(format!(
                "rope_parameters.partial_rotary_factor {f} (gym rotates part of a head only in qwen3_next)"
            )));
        }
        Ok(ModelConfig {
            arch,
            base,
            moe,
            spec,
        })
    }
}

/// How [`load_with`] places the base weights.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Quantize the linear layers' weights to NF4 as they are read (what
    /// [`Qwen3::quantize_nf4`] does after a plain load, without ever holding every f32 weight).
    pub nf4: bool,
    /// With `nf4`: double-quantize the absmax (bitsandbytes' `compress_statistics`).
    pub double_quant: bool,
}

/// Loads a Hugging Face model folder (config.json + safetensors) onto `dev`, every weight f32.
pub fn load(dir: &Path, dev: &Device) -> Result<Qwen3, ModelError> {
    load_with(dir, dev, LoadOptions::default())
}

/// Loads a model folder as [`load`] does, with the linear layers quantized on the way when
/// `opts.nf4` is set: the same model as `load` followed by `quantize_nf4(opts.double_quant)`
/// (the same NF4 bytes), with a peak of one f32 linear weight instead of all of them.
pub fn load_with(dir: &Path, dev: &Device, opts: LoadOptions) -> Result<Qwen3, ModelError> {
    let cfg = ModelConfig::load(dir)?;
    let w = weights::Weights::load_with(dir, dev, opts)?;
    let mut m = CausalLm::new(cfg, w)?;
    if opts.nf4 {
        // what was not stored one weight per layer (fused MoE experts) is quantized here
        m.quantize_nf4(opts.double_quant)?;
    }
    Ok(m)
}

/// Loads `dir/tokenizer.json`.
pub fn load_tokenizer(dir: &Path) -> Result<tokenizers::Tokenizer, ModelError> {
    let path = dir.join("tokenizer.json");
    if !path.exists() {
        return Err(ModelError::MissingFile { path });
    }
    tokenizers::Tokenizer::from_file(&path).map_err(|e| ModelError::Tokenizer {
        path,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests;
