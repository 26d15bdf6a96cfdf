//! The bundled tiny random Qwen3 (testdata/tiny-qwen3, made by tools/reference/make_tiny.py),
//! compiled into the binary so demos and tests need no download.

use candle_core::Device;

use super::{ModelConfig, ModelError, Qwen3, weights::Weights};

const CONFIG: &str = include_str!("../../../testdata/tiny-qwen3/config.json");
pub const TINY_WEIGHTS: &[u8] = include_bytes!("../../../testdata/tiny-qwen3/model.safetensors");
const TOKENIZER: &[u8] = include_bytes!("../../../testdata/tiny-qwen3/tokenizer.json");

/// The bundled tiny Qwen3 and its character-level tokenizer.
pub fn tiny_qwen3(dev: &Device) -> Result<(Qwen3, tokenizers::Tokenizer), ModelError> {
    let here = std::path::Path::new("<bundled tiny-qwen3>");
    let cfg = ModelConfig::parse(&here.join("config.json"), CONFIG)?;
    let w = Weights::from_bytes(TINY_WEIGHTS, here, dev)?;
    let tok = tokenizers::Tokenizer::from_bytes(TOKENIZER).map_err(|e| ModelError::Tokenizer {
        path: here.join("tokenizer.json"),
        reason: e.to_string(),
    })?;
    Ok((Qwen3::new(cfg, w)?, tok))
}

/// Writes the bundled model's config.json and tokenizer.json into `dir` (next to weights
/// written from it, so the folder loads as a model).
pub fn write_files(dir: &std::path::Path) -> Result<(), ModelError> {
    for (name, bytes) in [
        ("config.json", CONFIG.as_bytes()),
        ("tokenizer.json", TOKENIZER),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|source| ModelError::Io { path, source })?;
    }
    Ok(())
}
