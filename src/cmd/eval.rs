//! `gym eval`: greedy completions of a prompt set scored by rewards (mean reward, accuracy of
//! final answers) and the NLL of reference answers, for a model with an optional adapter
//! (a PEFT folder or a verified delta).
//!
//! JSON (`--json`, format `gym-eval/1`): the fields of `core::train::eval::EvalReport` plus
//! `format`, `model`, `adapter`; per-sample completions with `--samples`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use serde_json::json;

use super::out::{self, Ctx};
use crate::core::chat::ChatTemplate;
use crate::core::delta::VerifyOptions;
use crate::core::device::DeviceSpec;
use crate::core::keys::TrustedKeys;
use crate::core::model::lora;
use crate::core::train::config::{TOY_DATA, TOY_REWARD};
use crate::core::train::data;
use crate::core::train::dataset::Columns;
use crate::core::train::eval::{self, EvalOptions};
use crate::core::train::scoring::{ScoreSpec, Scorer};

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Hugging Face model folder, or a hub id ORG/NAME[@REVISION] resolved through the Hugging
    /// Face cache, as for `gym train` (default: the bundled tiny Qwen3).
    #[arg(long, value_name = "DIR|ORG/NAME")]
    pub model: Option<PathBuf>,
    /// PEFT adapter folder to apply.
    #[arg(long, value_name = "DIR", conflicts_with = "delta")]
    pub adapter: Option<PathBuf>,
    /// A signed delta holding a LoRA adapter (as `gym train` writes); verified before use.
    #[arg(long, value_name = "FILE")]
    pub delta: Option<PathBuf>,
    /// With --delta: the signer must be listed here.
    #[arg(long, value_name = "FILE", requires = "delta")]
    pub trusted_keys: Option<PathBuf>,
    /// Prompts: a JSONL, JSON or Parquet file, or a hub dataset id ORG/NAME[@REVISION] (default:
    /// the bundled toy task).
    #[arg(long, value_name = "FILE|ORG/NAME")]
    pub data: Option<PathBuf>,
    /// Hub datasets: the split to evaluate on.
    #[arg(long, value_name = "NAME", default_value = "test")]
    pub split: String,
    /// Hub datasets: the configuration (first folder) when the split exists in several.
    #[arg(long, value_name = "NAME")]
    pub data_config: Option<String>,
    /// The data column holding the prompt [default: prompt or messages].
    #[arg(long, value_name = "COLUMN")]
    pub prompt_column: Option<String>,
    /// The data column holding the reference answer [default: answer].
    #[arg(long, value_name = "COLUMN")]
    pub answer_column: Option<String>,
    /// Reward `KIND[:ARG][@WEIGHT]` (repeat to combine; default: exact, or the toy task's).
    #[arg(long, value_name = "SPEC")]
    pub reward: Vec<ScoreSpec>,
    /// Quantize the base to NF4 (as training with use_4bit does).
    #[arg(long)]
    pub nf4: bool,
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub max_completion_length: usize,
    /// Evaluate only the first N examples.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Pass `enable_thinking=true` to the model's chat template for `messages` rows (Qwen3).
    #[arg(long)]
    pub enable_thinking: bool,
    /// Include every completion in the output.
    #[arg(long)]
    pub samples: bool,
    /// Where the model runs: cpu, cuda (GPU 0) or cuda:N; a GPU needs a build with the `cuda`
    /// feature and an NVIDIA driver (else exit code 22).
    #[arg(long, env = "GYM_DEVICE", default_value = "cpu", value_name = "DEVICE", value_parser = DeviceSpec::parse_arg)]
    pub device: DeviceSpec,
    /// Print JSON (format `gym-eval/1`).
    #[arg(long)]
    pub json: bool,
    /// With --delta: also judge it as a validator does (docs/validation.md) and write the
    /// signed `gym-eval-report/1` here; --data must have `answer` fields.
    #[arg(long, value_name = "FILE.json", requires_all = ["delta", "key", "data"])]
    pub report: Option<PathBuf>,
    /// Validator key that signs the report.
    #[arg(long, value_name = "FILE", requires = "report")]
    pub key: Option<PathBuf>,
    /// With --report: the delta's start (its parent); without it the "without" model is the
    /// bare model.
    #[arg(long, value_name = "DELTA", requires = "report")]
    pub start: Option<PathBuf>,
    /// With --report: the L2 bound on the delta's update.
    #[arg(long, value_name = "C", requires = "report")]
    pub max_norm: Option<f64>,
    /// Overwrite the report.
    #[arg(long, requires = "report")]
    pub force: bool,
}

/// `--report`: the validator's judgement of the one delta, signed and written.
fn write_report(ctx: &Ctx, a: &EvalArgs, examples: &[data::Example]) -> anyhow::Result<()> {
    use crate::core::validate::{Policy, offline};
    let (Some(path), Some(key), Some(d)) = (&a.report, &a.key, &a.delta) else {
        return Ok(());
    };
    crate::core::atomic::check_writable(path, a.force)?;
    let id = crate::core::keys::Identity::load(key)
        .with_context(|| format!("loading key {}", key.display()))?;
    let verify = VerifyOptions {
        trusted: match &a.trusted_keys {
            Some(p) => Some(TrustedKeys::load(p)?),
            None => None,
        },
        require_signature: true,
        ..VerifyOptions::default()
    };
    let (members, start, refused) =
        offline::load_round(std::slice::from_ref(d), a.start.as_deref(), &verify)?;
    if let Some(r) = refused.first() {
        return Err(super::Failure::new(r.class, r.error.clone()).into());
    }
    let (m, tok, base_hash) = super::validate::load_model(a.model.as_deref(), a.nf4)?;
    let policy = Policy {
        max_norm: a.max_norm,
        base_hash: Some(base_hash),
        ..Policy::default()
    };
    let (j, _) = offline::judge_with_model(m, &tok, examples, &members, start.as_ref(), &policy)?;
    let f = &j.findings[0];
    super::validate::write_reports(ctx, &j.findings, &id, path, a.force)?;
    ctx.note(format!(
        "report: {} (loss {:.5} without, {:.5} with), written to {}",
        f.verdict.name(),
        f.loss_without.unwrap_or(f64::NAN),
        f.loss_with.unwrap_or(f64::NAN),
        path.display()
    ));
    Ok(())
}

/// Loads `--adapter` (PEFT folder) or `--delta` (a verified, signed delta) onto the model;
/// returns what was loaded, for the report (null when nothing).
fn load_adapter(
    a: &EvalArgs,
    m: &mut crate::core::model::Qwen3,
) -> anyhow::Result<serde_json::Value> {
    let mut adapter = serde_json::Value::Null;
    if let Some(ad) = &a.adapter {
        lora::load_peft(m, ad).with_context(|| format!("loading adapter {}", ad.display()))?;
        adapter = json!({"peft": ad.display().to_string()});
    }
    if let Some(d) = &a.delta {
        let opts = VerifyOptions {
            trusted: match &a.trusted_keys {
                Some(p) => Some(TrustedKeys::load(p)?),
                None => None,
            },
            require_signature: true,
            min_seq: None,
            base_hash: None,
        };
        let r = eval::load_delta_adapter(m, d, &opts)
            .with_context(|| format!("loading delta {}", d.display()))?;
        adapter = json!({
            "delta": d.display().to_string(),
            "digest": r.digest_hex(),
            "worker_id": r.delta.metadata.worker_id,
            "seq": r.delta.metadata.seq,
            "step": r.delta.metadata.step,
        });
    }
    Ok(adapter)
}

/// The human-readable report: model, adapter, reward, accuracy, NLL, completion length.
fn report_table(
    rep: &eval::EvalReport,
    name: String,
    adapter: &serde_json::Value,
    reward_spec: &str,
) -> comfy_table::Table {
    let mut t = out::table(&["metric", "value"]);
    t.add_row(vec!["model".to_string(), name]);
    if !adapter.is_null() {
        t.add_row(vec!["adapter".to_string(), adapter.to_string()]);
    }
    t.add_row(vec!["examples".to_string(), rep.examples.to_string()]);
    t.add_row(vec![
        format!("reward ({reward_spec})"),
        format!("{:.4} ± {:.4}", rep.reward_mean, rep.reward_std),
    ]);
    for (k, v) in &rep.rewards {
        t.add_row(vec![
            format!("  {k}"),
            format!("{:.4}", v.as_f64().unwrap_or(0.0)),
        ]);
    }
    t.add_row(vec![
        "accuracy (greedy, exact answer)".to_string(),
        match rep.accuracy {
            Some(x) => format!("{:.4} ({} answered)", x, rep.answered),
            None => "– (no answers in the data)".to_string(),
        },
    ]);
    t.add_row(vec![
        "answer NLL (nats/token)".to_string(),
        match rep.nll {
            Some(x) => format!("{:.4} over {} tokens", x, rep.nll_tokens),
            None => "–".to_string(),
        },
    ]);
    t.add_row(vec![
        "completion length (tokens)".to_string(),
        format!("{:.1}", rep.completion_len),
    ]);
    t
}

pub fn run(ctx: &Ctx, a: EvalArgs) -> anyhow::Result<()> {
    let dev = a.device.open()?;
    let (mut m, tok, name, model_dir) =
        super::model::load_or_bundled(ctx, a.model.as_deref(), &dev)?;
    if a.nf4 {
        m.quantize_nf4(true)?;
    }
    let adapter = load_adapter(&a, &mut m)?;
    let chat_template = match &model_dir {
        Some(dir) => ChatTemplate::from_model_dir(dir)?,
        None => Some(ChatTemplate::qwen3()),
    };
    let template = data::ChatTemplate::from_model(chat_template.as_ref(), a.enable_thinking);
    let (mut examples, default_reward) = match &a.data {
        Some(p) => {
            let spec = super::download::DataSpec {
                spec: p,
                split: &a.split,
                config: a.data_config.as_deref(),
                columns: Columns {
                    prompt: a.prompt_column.clone(),
                    answer: a.answer_column.clone(),
                },
            };
            let (ex, _) = super::download::load_data(ctx, &spec, template)?;
            let n = a.limit.unwrap_or(usize::MAX);
            (ex.first(n)?, "exact")
        }
        None => (
            data::parse_jsonl(TOY_DATA, "<bundled toy task>", template)?,
            TOY_REWARD,
        ),
    };
    if let Some(n) = a.limit {
        examples.truncate(n);
    }
    let specs = if a.reward.is_empty() {
        vec![default_reward.parse()?]
    } else {
        a.reward.clone()
    };
    let mut scorer = Scorer::new(&specs)?;
    let mut exact = Scorer::new(&["exact".parse()?])?;
    let opts = EvalOptions {
        max_new_tokens: a.max_completion_length,
        batch: 16,
        max_prompt_length: Some(512),
    };
    let mut rep = eval::evaluate(&m, &tok, &examples, &mut scorer, &mut exact, &opts)?;
    write_report(ctx, &a, &examples)?;
    if !a.samples {
        rep.samples.clear();
    }
    if a.json {
        let mut v = serde_json::to_value(&rep)?;
        let o = v.as_object_mut().expect("object");
        o.insert("format".into(), "gym-eval/1".into());
        o.insert("model".into(), name.into());
        o.insert("adapter".into(), adapter);
        o.insert("reward_spec".into(), scorer.describe().into());
        if !a.samples {
            o.remove("samples");
        }
        return out::json(&v);
    }
    let t = report_table(&rep, name, &adapter, &scorer.describe());
    out::println(&t.to_string())?;
    for s in &rep.samples {
        out::println(&format!(
            "line {}: reward {:.3}: {:?}",
            s.line, s.reward, s.completion
        ))?;
    }
    Ok(())
}
