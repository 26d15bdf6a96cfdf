//! `gym model inspect DIR`: architecture, parameter counts, memory in f32/bf16/NF4 and the size
//! of a LoRA adapter, from a Hugging Face model folder's `config.json` (no weights are loaded).
//!
//! JSON output (`--json`), format `gym-model/1`:
//! ```json
//! {"format": "gym-model/1", "path": "testdata/tiny-qwen3", "architecture": "qwen3",
//!  "layers": 2, "hidden_size": 64, "intermediate_size": 128, "attention_heads": 4,
//!  "key_value_heads": 2, "head_dim": 32, "vocab_size": 128, "tied_embeddings": true,
//!  "rope_theta": 10000.0, "experts": 0, "experts_per_token": 0, "moe_layers": 0,
//!  "parameters": 107712, "linear_parameters": 98304, "bytes_f32": 430848,
//!  "bytes_bf16": 215424, "bytes_nf4": …, "lora_rank": 16, "lora_parameters": …}
//! ```

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::out::{self, Ctx};
use crate::core::model::{self, ModelConfig, summary::Summary};

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Show a model folder's architecture, parameters, memory and LoRA size.
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A Hugging Face model folder (config.json; weights are not read).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// LoRA rank for the adapter size.
    #[arg(long, default_value_t = 16, value_name = "R")]
    pub rank: usize,
    /// Print JSON (format `gym-model/1`).
    #[arg(long)]
    pub json: bool,
}

pub fn run(_ctx: &Ctx, c: ModelCommand) -> anyhow::Result<()> {
    match c {
        ModelCommand::Inspect(a) => inspect(a),
    }
}

fn inspect(a: InspectArgs) -> anyhow::Result<()> {
    let cfg =
        ModelConfig::load(&a.dir).with_context(|| format!("inspecting {}", a.dir.display()))?;
    let s = Summary::new(&cfg, a.rank);
    if a.json {
        let mut v = serde_json::to_value(&s)?;
        let o = v.as_object_mut().expect("a struct serializes to an object");
        o.insert("path".into(), a.dir.display().to_string().into());
        let mut full = serde_json::Map::new();
        full.insert("format".into(), "gym-model/1".into());
        full.extend(o.clone());
        return out::json(&full);
    }
    let mut t = out::table(&["property", "value"]);
    let mb = |b: u64| out::human_bytes(b);
    let mut rows: Vec<(String, String)> = vec![
        ("architecture".into(), s.architecture_str().into()),
        ("layers".into(), s.layers.to_string()),
        ("hidden size".into(), s.hidden_size.to_string()),
        ("intermediate size".into(), s.intermediate_size.to_string()),
        (
            "attention heads (kv)".into(),
            format!(
                "{} ({}), head dim {}",
                s.attention_heads, s.key_value_heads, s.head_dim
            ),
        ),
        ("vocabulary".into(), s.vocab_size.to_string()),
        ("tied embeddings".into(), s.tied_embeddings.to_string()),
        ("rope theta".into(), s.rope_theta.to_string()),
    ];
    if s.experts > 0 {
        rows.push((
            "experts".into(),
            format!(
                "{} per layer, {} per token, {} MoE layers",
                s.experts, s.experts_per_token, s.moe_layers
            ),
        ));
    }
    rows.extend([
        ("parameters".into(), s.parameters.to_string()),
        ("  in linear layers".into(), s.linear_parameters.to_string()),
        ("memory f32".into(), mb(s.bytes_f32)),
        ("memory bf16".into(), mb(s.bytes_bf16)),
        ("memory NF4 (rest bf16)".into(), mb(s.bytes_nf4)),
        (
            format!("LoRA r{} parameters", s.lora_rank),
            s.lora_parameters.to_string(),
        ),
    ]);
    for (k, v) in rows {
        t.add_row(vec![k, v]);
    }
    out::println(&t.to_string())?;
    Ok(())
}

/// The model and tokenizer of `dir`, or the bundled tiny Qwen3 without one, with the name to
/// show for it (`gym eval`, `gym generate`).
pub(crate) fn load_or_bundled(
    ctx: &Ctx,
    spec: Option<&std::path::Path>,
    dev: &candle_core::Device,
) -> anyhow::Result<(
    model::Qwen3,
    tokenizers::Tokenizer,
    String,
    Option<std::path::PathBuf>,
)> {
    use anyhow::Context as _;
    Ok(match spec {
        Some(spec) => {
            let (dir, shown) = super::download::model_dir(ctx, spec)?;
            (
                model::load(&dir, dev).with_context(|| format!("loading {}", dir.display()))?,
                model::load_tokenizer(&dir)?,
                shown,
                Some(dir),
            )
        }
        None => {
            let (m, t) = model::embedded::tiny_qwen3(dev)?;
            (m, t, "bundled tiny-qwen3".to_string(), None)
        }
    })
}
