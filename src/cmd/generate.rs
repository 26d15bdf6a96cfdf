//! `gym generate`: complete prompts with a model folder (or the bundled tiny Qwen3), optionally
//! with a PEFT adapter and an NF4 base, to try a model by hand.
//!
//! Text output: each completion on its own line (with `-n`, the group of completions per
//! prompt). JSON output (`--json`), format `gym-generate/1`:
//! ```json
//! {"format": "gym-generate/1", "model": "testdata/tiny-qwen3", "seed": 0,
//!  "completions": [{"prompt": "Hello", "text": "…", "tokens": [1, 2], "logprobs": [-0.1, -2.3],
//!                   "stopped": false}]}
//! ```

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use serde_json::json;

use super::out::{self, Ctx};
use crate::core::device::DeviceSpec;
use crate::core::model::{generate, lora};

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Hugging Face model folder (config.json, safetensors, tokenizer.json), or a hub id
    /// ORG/NAME[@REVISION] resolved through the Hugging Face cache; default: the bundled tiny
    /// random Qwen3 (for demos: its output is noise).
    #[arg(long, value_name = "DIR|ORG/NAME")]
    pub model: Option<PathBuf>,
    /// Prompt text (repeat for a batch).
    #[arg(long, required = true, value_name = "TEXT")]
    pub prompt: Vec<String>,
    /// PEFT adapter folder to apply.
    #[arg(long, value_name = "DIR")]
    pub adapter: Option<PathBuf>,
    /// Quantize the linear layers to NF4 (as QLoRA does).
    #[arg(long)]
    pub nf4: bool,
    /// Completions per prompt (a GSPO group).
    #[arg(short = 'n', long, default_value_t = 1, value_name = "G")]
    pub group: usize,
    /// Stop each completion after this many tokens (or at the end-of-sequence token).
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub max_new_tokens: usize,
    /// 0 for greedy decoding.
    #[arg(long, default_value_t = 1.0, value_name = "T")]
    pub temperature: f64,
    /// Nucleus sampling: keep the most likely tokens up to this probability mass.
    #[arg(long, default_value_t = 1.0, value_name = "P")]
    pub top_p: f64,
    /// 0 disables top-k.
    #[arg(long, default_value_t = 0, value_name = "K")]
    pub top_k: usize,
    /// Seed of the sampler: the same seed gives the same completions.
    #[arg(long, default_value_t = 0, value_name = "SEED")]
    pub seed: u64,
    /// Where the model runs: cpu, cuda (GPU 0) or cuda:N; a GPU needs a build with the `cuda`
    /// feature and an NVIDIA driver (else exit code 22).
    #[arg(long, env = "GYM_DEVICE", default_value = "cpu", value_name = "DEVICE", value_parser = DeviceSpec::parse_arg)]
    pub device: DeviceSpec,
    /// Print JSON (format `gym-generate/1`).
    #[arg(long)]
    pub json: bool,
}

pub fn run(ctx: &Ctx, a: GenerateArgs) -> anyhow::Result<()> {
    let dev = a.device.open()?;
    let (mut m, tok, name, _model_dir) =
        super::model::load_or_bundled(ctx, a.model.as_deref(), &dev)?;
    if a.nf4 {
        m.quantize_nf4(true)?;
    }
    if let Some(ad) = &a.adapter {
        lora::load_peft(&mut m, ad).with_context(|| format!("loading adapter {}", ad.display()))?;
    }
    let mut prompts = Vec::new();
    for p in &a.prompt {
        let enc = tok
            .encode(p.as_str(), false)
            .map_err(|e| anyhow::anyhow!("tokenizing {p:?}: {e}"))?;
        for _ in 0..a.group.max(1) {
            prompts.push(enc.get_ids().to_vec());
        }
    }
    let (eos, pad) = crate::core::train::trainer::eos_and_pad(&m.cfg);
    let params = generate::SamplingParams {
        temperature: a.temperature,
        top_p: a.top_p,
        top_k: a.top_k,
        max_new_tokens: a.max_new_tokens,
        min_new_tokens: 0,
        seed: a.seed,
        pad,
        eos,
    };
    let g = generate::generate(&m, &prompts, &params, crate::core::model::Role::Policy)?;
    let texts: Vec<String> = g
        .tokens
        .iter()
        .map(|t| {
            tok.decode(t, true)
                .map_err(|e| anyhow::anyhow!("decoding: {e}"))
        })
        .collect::<anyhow::Result<_>>()?;
    if a.json {
        let completions: Vec<_> = (0..prompts.len())
            .map(|i| {
                json!({
                    "prompt": a.prompt[i / a.group.max(1)],
                    "text": texts[i],
                    "tokens": g.tokens[i],
                    "logprobs": g.logprobs[i],
                    "stopped": g.stopped[i],
                })
            })
            .collect();
        return out::json(&json!({
            "format": "gym-generate/1",
            "model": name,
            "seed": a.seed,
            "completions": completions,
        }));
    }
    for t in texts {
        out::println(&t)?;
    }
    Ok(())
}
