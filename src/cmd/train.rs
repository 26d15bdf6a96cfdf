//! `gym train`: GSPO fine-tuning of a Qwen3 folder (or the bundled tiny model) with LoRA over
//! an NF4 base. Settings come from defaults, `--config FILE.toml`, the seed's environment
//! variables and flags, in that order; `--print-config` shows the result.
//!
//! Summary (`--json`, format `gym-train/1`):
//! ```json
//! {"format": "gym-train/1", "output": "runs/x", "steps": 30, "reward_first_quarter": 0.1,
//!  "reward_last_quarter": 0.6, "deltas": [{"path": "…", "seq": 1, "step": 10, "digest": "…"}],
//!  "adapter": "runs/x/adapter", "worker_id": "gym1…"}
//! ```

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use serde_json::json;

use super::out::{self, Ctx};
use crate::core::chat::ChatTemplate;
use crate::core::device::DeviceSpec;
use crate::core::keys::Identity;
use crate::core::model;
use crate::core::train::checkpoint::{self, DeltaWritten, RunDir};
use crate::core::train::config::{Schedule, TOY_DATA, TOY_REWARD, TrainConfig};
use crate::core::train::data;
use crate::core::train::dataset::Columns;
use crate::core::train::gspo::{IsLevel, LossType, ScaleRewards};
use crate::core::train::scoring::{ScoreSpec, Scorer};
use crate::core::train::tensorboard;
use crate::core::train::trainer::{self, StepMetrics, Trainer};

/// Where `--report-to` sends metrics (TRL's `report_to` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportTo {
    None,
    Tensorboard,
}

#[derive(Debug, Args, Default)]
pub struct TrainArgs {
    /// Settings file (TOML, TRL/seed key names); flags override it.
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// Hugging Face model folder, or a hub id ORG/NAME[@REVISION] resolved through the Hugging
    /// Face cache (HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE; downloads from HF_ENDPOINT with
    /// HF_TOKEN) (default: the bundled tiny Qwen3). Env: MODEL_NAME.
    #[arg(long, value_name = "DIR|ORG/NAME")]
    pub model: Option<PathBuf>,
    /// Prompts: a JSONL, JSON or Parquet file with `prompt` or `messages`, optional `answer`,
    /// or a hub dataset id ORG/NAME[@REVISION] (its --split's Parquet or JSON files) (default:
    /// the bundled toy task, answering in digits).
    #[arg(long, value_name = "FILE|ORG/NAME")]
    pub data: Option<PathBuf>,
    /// Hub datasets: the split to train on [default: train].
    #[arg(long, value_name = "NAME")]
    pub split: Option<String>,
    /// Hub datasets: the configuration (first folder, e.g. `main`) when the split exists in
    /// several.
    #[arg(long, value_name = "NAME")]
    pub data_config: Option<String>,
    /// The data column holding the prompt (a string, or a list of messages) [default: prompt
    /// or messages].
    #[arg(long, value_name = "COLUMN")]
    pub prompt_column: Option<String>,
    /// The data column holding the reference answer [default: answer].
    #[arg(long, value_name = "COLUMN")]
    pub answer_column: Option<String>,
    /// Output folder (metrics, checkpoints, deltas). Default: runs/train-<UTC time>.
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Worker key that signs the deltas (default: OUTPUT/worker.key, created if missing).
    #[arg(long, value_name = "KEY.pem")]
    pub key: Option<PathBuf>,
    /// Average with other workers: every aggregate_interval steps, join this ring (TOML, as
    /// `gym ring plan` writes; needs --key, a member's key) with the update since the last
    /// agreed mean (deltas/update-<seq>.delta; the mean update is deltas/ring-<seq>.delta) and
    /// continue from the new mean (deltas/avg-<seq>.delta).
    #[arg(long, value_name = "RING.toml", requires = "key")]
    pub ring: Option<PathBuf>,
    /// With --ring: seconds without progress before a member is dropped from a round.
    #[arg(long, value_name = "S", default_value_t = 30.0)]
    pub ring_timeout: f64,
    /// With --ring: seconds to wait for every member to connect at each round.
    #[arg(long, value_name = "S", default_value_t = 300.0)]
    pub ring_connect_timeout: f64,
    /// With --ring: expect quantized averaging at BITS bits per element (2 to 16); refused
    /// unless the ring file says `quantize = BITS` (`gym ring plan --quantize`).
    #[arg(long, value_name = "BITS", requires = "ring", value_parser = super::ring::parse_bits)]
    pub ring_quantize: Option<crate::core::ring::quant::Bits>,
    /// Continue the run in --output from its last saved state.
    #[arg(long)]
    pub resume: bool,
    /// Start afresh in an output folder that holds an earlier run.
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// Print the resolved settings (TOML) and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Where the model runs: cpu, cuda (GPU 0) or cuda:N; a GPU needs a build with the `cuda`
    /// feature and an NVIDIA driver (else exit code 22).
    #[arg(long, env = "GYM_DEVICE", default_value = "cpu", value_name = "DEVICE", value_parser = DeviceSpec::parse_arg)]
    pub device: DeviceSpec,
    /// Print a JSON summary at the end (format `gym-train/1`).
    #[arg(long)]
    pub json: bool,
    /// Reward `KIND[:ARG][@WEIGHT]` (repeat to combine): exact, math, math_format, regex:PAT,
    /// coverage:PAT, length:N, format, cmd:COMMAND.
    #[arg(long, value_name = "SPEC")]
    pub reward: Vec<ScoreSpec>,
    /// External scorer: gets JSON lines on stdin, prints one number per line (weight 1).
    #[arg(long, value_name = "CMD")]
    pub reward_cmd: Option<String>,
    /// Also log each step's metrics here: `tensorboard` writes event files to OUTPUT/runs/
    /// (TRL's tag names; view with `tensorboard --logdir OUTPUT/runs`).
    #[arg(long, value_enum, value_name = "TARGET")]
    pub report_to: Vec<ReportTo>,

    /// Optimiser steps to run.
    #[arg(long, value_name = "N")]
    pub max_steps: Option<usize>,
    /// Seed of sampling, shuffling and the LoRA initialisation.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Peak learning rate of AdamW.
    #[arg(long, value_name = "LR")]
    pub learning_rate: Option<f64>,
    /// How the learning rate decays after the warm-up.
    #[arg(long, value_enum)]
    pub lr_scheduler_type: Option<Schedule>,
    /// Steps over which the learning rate rises linearly from 0.
    #[arg(long, value_name = "N")]
    pub warmup_steps: Option<usize>,
    /// KL coefficient. Env: GSPO_BETA.
    #[arg(long, value_name = "B")]
    pub beta: Option<f64>,
    /// Completions per prompt (group size).
    #[arg(long, alias = "group-size", value_name = "G")]
    pub num_generations: Option<usize>,
    /// Env: IMPORTANCE_SAMPLING_LEVEL.
    #[arg(long, value_enum)]
    pub importance_sampling_level: Option<IsLevel>,
    /// How the per-token losses of a micro-batch are averaged.
    #[arg(long, value_enum)]
    pub loss_type: Option<LossType>,
    /// Which standard deviation divides the group-centred rewards.
    #[arg(long, value_enum)]
    pub scale_rewards: Option<ScaleRewards>,
    /// Lower clipping range of the importance ratio (1 - epsilon).
    #[arg(long, value_name = "E")]
    pub epsilon: Option<f64>,
    /// Upper clipping range of the importance ratio (1 + epsilon_high; default: epsilon).
    #[arg(long, value_name = "E")]
    pub epsilon_high: Option<f64>,
    /// Completions per micro-batch.
    #[arg(long, value_name = "N")]
    pub per_device_train_batch_size: Option<usize>,
    /// Micro-batches per rollout (default: gradient_accumulation_steps).
    #[arg(long, value_name = "N")]
    pub steps_per_generation: Option<usize>,
    /// Micro-batches whose gradients add up to one optimiser step.
    #[arg(long, value_name = "N")]
    pub gradient_accumulation_steps: Option<usize>,
    /// Passes over each rollout (GRPO's mu).
    #[arg(long, value_name = "N")]
    pub num_iterations: Option<usize>,
    /// Longest completion, in tokens.
    #[arg(long, value_name = "N")]
    pub max_completion_length: Option<usize>,
    /// No end-of-sequence token before this many tokens.
    #[arg(long, value_name = "N")]
    pub min_completion_length: Option<usize>,
    /// Sampling temperature of the rollouts.
    #[arg(long, value_name = "T")]
    pub temperature: Option<f64>,
    /// Nucleus sampling: keep the most likely tokens up to this probability mass (1: all).
    #[arg(long, value_name = "P")]
    pub top_p: Option<f64>,
    /// Sample among the K most likely tokens only (0: all).
    #[arg(long, value_name = "K")]
    pub top_k: Option<usize>,
    /// Zero the loss of completions that hit max_completion_length without ending.
    #[arg(long)]
    pub mask_truncated_completions: bool,
    /// Rank of the LoRA factors.
    #[arg(long, value_name = "R")]
    pub lora_rank: Option<usize>,
    /// LoRA scaling numerator (the update is scaled by alpha / rank).
    #[arg(long, value_name = "A")]
    pub lora_alpha: Option<f64>,
    /// Recompute each layer in the backward instead of keeping its activations (less memory,
    /// one more forward of the layers per step).
    #[arg(long, value_name = "BOOL")]
    pub gradient_checkpointing: Option<bool>,
    /// NF4 base (true) or f32 base (false). Env: USE_4BIT.
    #[arg(long, value_name = "BOOL")]
    pub use_4bit: Option<bool>,
    /// Steps between signed deltas.
    #[arg(long, value_name = "N")]
    pub aggregate_interval: Option<usize>,
    /// Steps between resumable states and PEFT checkpoints.
    #[arg(long, value_name = "N")]
    pub save_steps: Option<usize>,
}

/// Resolves the settings on top of `base`: file, environment, flags. `TrainArgs` is taken
/// apart without `..`, so a new flag fails to compile until it is either applied here or named
/// as a run option; a setting bound here and not applied fails `-D warnings` (unused variable).
fn resolve(a: &TrainArgs, base: &TrainConfig) -> anyhow::Result<TrainConfig> {
    let TrainArgs {
        config,
        model,
        data,
        split,
        data_config,
        prompt_column,
        answer_column,
        reward,
        reward_cmd,
        max_steps,
        seed,
        learning_rate,
        lr_scheduler_type,
        warmup_steps,
        beta,
        num_generations,
        importance_sampling_level,
        loss_type,
        scale_rewards,
        epsilon,
        epsilon_high,
        per_device_train_batch_size,
        steps_per_generation,
        gradient_accumulation_steps,
        num_iterations,
        max_completion_length,
        min_completion_length,
        temperature,
        top_p,
        top_k,
        mask_truncated_completions,
        lora_rank,
        lora_alpha,
        gradient_checkpointing,
        use_4bit,
        aggregate_interval,
        save_steps,
        // run options, not settings of the run's config.toml
        output: _,
        key: _,
        ring: _,
        ring_timeout: _,
        ring_connect_timeout: _,
        ring_quantize: _,
        resume: _,
        force: _,
        print_config: _,
        json: _,
        report_to: _,
        device: _,
    } = a;
    let mut cfg = match config {
        Some(p) => TrainConfig::from_toml_file(p, base)?,
        None => base.clone(),
    };
    cfg.apply_env(|k| std::env::var(k).ok())?;
    // A flag given replaces the setting (`Option` settings take `Some`).
    macro_rules! set {
        ($($f:ident $(=> $wrap:path)?),* $(,)?) => {$(
            if let Some(v) = $f.clone() {
                cfg.$f = $($wrap)?(v);
            }
        )*};
    }
    set!(
        model => Some,
        data => Some,
        max_steps,
        seed,
        learning_rate,
        lr_scheduler_type,
        warmup_steps,
        beta,
        num_generations,
        importance_sampling_level,
        loss_type,
        scale_rewards,
        epsilon,
        epsilon_high => Some,
        per_device_train_batch_size,
        steps_per_generation => Some,
        gradient_accumulation_steps,
        num_iterations,
        max_completion_length,
        min_completion_length,
        temperature,
        top_p,
        top_k,
        lora_rank,
        lora_alpha,
        use_4bit,
        gradient_checkpointing,
        aggregate_interval,
        save_steps,
    );
    if *mask_truncated_completions {
        cfg.mask_truncated_completions = true;
    }
    if let Some(v) = split {
        cfg.dataset_train_split = v.clone();
    }
    for (flag, slot) in [
        (data_config, &mut cfg.dataset_config),
        (prompt_column, &mut cfg.prompt_column),
        (answer_column, &mut cfg.answer_column),
    ] {
        if flag.is_some() {
            slot.clone_from(flag);
        }
    }
    if !reward.is_empty() {
        cfg.reward = reward.clone();
    }
    if let Some(c) = reward_cmd {
        cfg.reward.push(format!("cmd:{c}").parse()?);
    }
    Ok(cfg)
}

/// The full resolution: the bundled toy task's defaults apply when neither a model nor data
/// is named anywhere.
pub fn resolve_config(ctx: &Ctx, a: &TrainArgs) -> anyhow::Result<TrainConfig> {
    // a resumed run starts from the settings it was started with
    if a.resume
        && let Some(o) = &a.output
    {
        let saved = o.join("config.toml");
        if saved.exists() && a.config.is_none() {
            let base = TrainConfig::from_toml_file(&saved, &TrainConfig::default())?;
            let cfg = resolve(a, &base)?;
            cfg.validate()?;
            return Ok(cfg);
        }
    }
    let cfg = resolve(a, &TrainConfig::default())?;
    // the model's generation_config.json sits between the built-in defaults and everything the
    // run sets (docs/training.md, "Precedence")
    // (a hub id is looked up through the cache, fetched if missing: the same folder `run` loads)
    let model_dir = match cfg.model.as_deref() {
        Some(spec) => Some(super::download::model_dir(ctx, spec)?.0),
        None => None,
    };
    let cfg = match model_dir
        .as_deref()
        .map(model::config::GenerationConfig::load)
    {
        Some(Ok(Some(g))) => {
            let mut base = TrainConfig::default();
            base.apply_generation_config(&g);
            resolve(a, &base)?
        }
        Some(Err(e)) => return Err(e.into()),
        _ => cfg,
    };
    let mut cfg = if cfg.model.is_none() && cfg.data.is_none() {
        resolve(a, &TrainConfig::toy())?
    } else {
        cfg
    };
    if cfg.data.is_none() && cfg.reward.is_empty() {
        cfg.reward = vec![TOY_REWARD.parse()?];
    }
    cfg.validate()?;
    Ok(cfg)
}

fn default_output() -> PathBuf {
    let t = crate::core::timefmt::now_rfc3339()
        .replace([':', '-'], "")
        .replace('T', "-")
        .trim_end_matches('Z')
        .to_string();
    PathBuf::from("runs").join(format!("train-{t}"))
}

fn load_identity(a: &TrainArgs, out: &Path, ctx: &Ctx) -> anyhow::Result<Identity> {
    if let Some(p) = &a.key {
        return Identity::load(p).with_context(|| format!("loading signing key {}", p.display()));
    }
    let p = out.join("worker.key");
    if p.exists() {
        return Identity::load(&p).with_context(|| format!("loading {}", p.display()));
    }
    let id = Identity::generate(false);
    id.save(&p, false)?;
    ctx.note(format!(
        "created worker key {} (worker id {}); pass --key to sign with your own",
        p.display(),
        id.public().worker_id()
    ));
    Ok(id)
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

pub fn run(ctx: &Ctx, a: TrainArgs) -> anyhow::Result<()> {
    let cfg = resolve_config(ctx, &a)?;
    if a.print_config {
        return out::print(&cfg.to_toml()).map_err(Into::into); // to_toml ends with a newline
    }
    let dev = a.device.open()?;
    let output = prepare_output(&a)?;

    let model_dir = match &cfg.model {
        Some(spec) => Some(super::download::model_dir(ctx, spec)?),
        None => None,
    };
    let (m, tok, base_hash, model_name) = load_model(&cfg, &dev, &model_dir)?;
    let (examples, data_name) = load_examples(ctx, &cfg, &model_dir)?;
    let scorer = Scorer::new(&cfg.reward)?;
    let identity = std::sync::Arc::new(load_identity(&a, &output, ctx)?);
    checkpoint::write_config(&output, &cfg)?;
    ctx.note(format!(
        "training {model_name} on {data_name}: {} examples, reward {}, {} steps, output {}",
        examples.len(),
        scorer.describe(),
        cfg.max_steps,
        output.display()
    ));
    let mut t = Trainer::new(cfg, m, tok, examples, scorer)?;

    let bar = if !ctx.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()) && !a.json {
        let pb = indicatif::ProgressBar::new(t.cfg.max_steps as u64);
        pb.set_style(
            indicatif::ProgressStyle::with_template("step {pos}/{len} [{bar:30}] {msg} eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Some(pb)
    } else {
        None
    };
    let mut tensorboard =
        if a.report_to.contains(&ReportTo::Tensorboard) {
            let dir = output.join("runs");
            Some(tensorboard::EventWriter::create(&dir).with_context(|| {
                format!("creating a TensorBoard event file in {}", dir.display())
            })?)
        } else {
            None
        };
    let mut tensorboard_err: Option<std::io::Error> = None;
    let quiet = ctx.quiet;
    let interval = (t.cfg.max_steps / 20).max(1);
    let mut on_step = |m: &StepMetrics, d: Option<&DeltaWritten>| {
        if let Some(w) = tensorboard.as_mut()
            && let Err(e) = w.scalars(m.step as i64, &tensorboard::step_scalars(m))
        {
            tensorboard_err.get_or_insert(e);
            tensorboard = None;
        }
        let line = format!(
            "reward {:.3} loss {:+.4} kl {:.4} clip {:.3} len {:.1} {:.0} tok/s",
            m.reward_mean, m.loss, m.kl, m.clip_frac, m.completion_len, m.tokens_per_s
        );
        if let Some(pb) = &bar {
            pb.set_position(m.step as u64);
            pb.set_message(line);
            if let Some(d) = d {
                pb.println(format!(
                    "step {}: wrote {}{}",
                    d.step,
                    d.path.display(),
                    dp_note(d)
                ));
            }
        } else if !quiet {
            if m.step.is_multiple_of(interval) || m.step == 1 {
                eprintln!("step {}: {line}", m.step);
            }
            if let Some(d) = d {
                eprintln!("step {}: wrote {}{}", d.step, d.path.display(), dp_note(d));
            }
        }
    };
    let device = crate::core::device::DeviceInfo::of(&dev).label();
    let plan = match &a.ring {
        None => None,
        Some(rp) => Some(ring_plan(ctx, &a, rp, &t, &identity)?),
    };
    if let Some(p) = &plan {
        t.set_stream(p.me as u64 + 1);
    }
    let mut run = RunDir::new(&output, &identity, base_hash, device, &t, &mut on_step);
    run.set_ring(plan, &t)?;
    run.privacy = checkpoint::Privacy::new(&t.cfg, &t)?;
    if a.resume {
        run.resume(&mut t)?;
        if !quiet {
            eprintln!("resuming {} at step {}", output.display(), t.step);
        }
    }
    t.run(&mut run)?;
    run.save_state(&t)?;
    let outputs = Outputs {
        adapter: run.save_adapter(&t, "adapter")?,
        deltas: run.deltas.clone(),
        aggregated: run.aggregated.clone(),
    };
    drop(run);
    if let Some(pb) = &bar {
        pb.finish_and_clear();
    }
    if let Some(e) = tensorboard_err {
        ctx.note(format!(
            "warning: TensorBoard logging stopped: writing {}: {e}",
            output.join("runs").display()
        ));
    }
    report(ctx, &a, &output, &t, &identity, &outputs)
}

/// The run folder: checked (a saved state to resume, or no earlier run unless `--force`),
/// created, and with `--force` cleared of an earlier run's outputs.
fn prepare_output(a: &TrainArgs) -> anyhow::Result<PathBuf> {
    let output = a.output.clone().unwrap_or_else(default_output);
    if a.resume {
        if !output.join("state").join("state.json").exists() {
            return Err(super::Failure::new(
                crate::core::error::ErrorClass::Io,
                format!(
                    "{}: no saved state to resume (state/state.json is missing)",
                    output.display()
                ),
            )
            .into());
        }
    } else {
        checkpoint::check_fresh(&output, a.force)
            .context("the output folder holds an earlier run (--resume to continue it, --force to start afresh)")?;
    }
    std::fs::create_dir_all(&output).with_context(|| format!("creating {}", output.display()))?;
    if a.force {
        {
            let f = "metrics.jsonl";
            let _ = std::fs::remove_file(output.join(f));
        }
        let _ = std::fs::remove_dir_all(output.join("state"));
        let _ = std::fs::remove_dir_all(output.join("deltas"));
        let _ = std::fs::remove_dir_all(output.join("runs"));
    }
    Ok(output)
}

/// The model folder the settings name (downloaded when it is a Hub id), or none for the
/// bundled model.
type ModelDir = Option<(PathBuf, String)>;

/// The model (an NF4 base quantized while loading), its tokenizer, its base hash and the name
/// to show.
fn load_model(
    cfg: &TrainConfig,
    dev: &candle_core::Device,
    model_dir: &ModelDir,
) -> anyhow::Result<(model::Qwen3, tokenizers::Tokenizer, String, String)> {
    Ok(match model_dir {
        Some((dir, shown)) => (
            // an NF4 base is quantized while loading: the f32 linear weights never all exist
            model::load_with(
                dir,
                dev,
                model::LoadOptions {
                    nf4: cfg.use_4bit,
                    double_quant: trainer::NF4_DOUBLE_QUANT,
                },
            )
            .with_context(|| format!("loading {}", dir.display()))?,
            model::load_tokenizer(dir)?,
            trainer::base_hash_dir(dir)?,
            shown.clone(),
        ),
        None => {
            let (m, t) = model::embedded::tiny_qwen3(dev)?;
            let h = trainer::base_hash_files(&[(
                "model.safetensors".into(),
                model::embedded::TINY_WEIGHTS.to_vec(),
            )]);
            (m, t, h, "bundled tiny-qwen3".into())
        }
    })
}

/// The training examples (the settings' data, else the bundled toy task) in the model's chat
/// template, and the name to show.
fn load_examples(
    ctx: &Ctx,
    cfg: &TrainConfig,
    model_dir: &ModelDir,
) -> anyhow::Result<(crate::core::train::dataset::Examples, String)> {
    let chat_template = match model_dir {
        Some((dir, _)) => ChatTemplate::from_model_dir(dir)?,
        None => Some(ChatTemplate::qwen3()),
    };
    let template = data::ChatTemplate::from_model(chat_template.as_ref(), cfg.enable_thinking);
    Ok(match &cfg.data {
        Some(p) => super::download::load_data(
            ctx,
            &super::download::DataSpec {
                spec: p,
                split: &cfg.dataset_train_split,
                config: cfg.dataset_config.as_deref(),
                columns: Columns {
                    prompt: cfg.prompt_column.clone(),
                    answer: cfg.answer_column.clone(),
                },
            },
            template,
        )?,
        None => (
            data::parse_jsonl(TOY_DATA, "<bundled toy task>", template)?.into(),
            "bundled toy task (digits)".to_string(),
        ),
    })
}

/// The ring this run averages in (`--ring`): the ring file, this member's index, and the
/// join options; `aggregate_interval` must fall on rollout boundaries.
fn ring_plan(
    ctx: &Ctx,
    a: &TrainArgs,
    rp: &std::path::Path,
    t: &Trainer,
    identity: &std::sync::Arc<crate::core::keys::Identity>,
) -> anyhow::Result<checkpoint::RingPlan> {
    let quiet = ctx.quiet;
    use crate::core::ring::{config, net};
    if !t
        .cfg
        .aggregate_interval
        .is_multiple_of(t.cfg.steps_per_rollout())
    {
        return Err(super::Failure::new(
            crate::core::error::ErrorClass::Usage,
            format!(
                "with --ring, aggregate_interval ({}) must be a multiple of the optimiser steps per rollout ({})",
                t.cfg.aggregate_interval,
                t.cfg.steps_per_rollout()
            ),
        )
        .into());
    }
    let spec = config::RingSpec::load(rp)?;
    spec.check_quantize_flag("--ring-quantize", a.ring_quantize, rp)?;
    let me = spec.member_index(identity, rp)?;
    let progress: net::Progress = std::sync::Arc::new(move |m: String| {
        if !quiet {
            eprintln!("ring member {me}: {m}");
        }
    });
    ctx.note(format!(
        "ring {}: {} members, this is member {me}; averaging every {} steps{}",
        rp.display(),
        spec.len(),
        t.cfg.aggregate_interval,
        spec.quantize
            .map_or(String::new(), |b| format!(", quantized to {b} bits"))
    ));
    Ok(checkpoint::RingPlan {
        spec,
        me,
        identity: identity.clone(),
        opts: net::JoinOptions {
            step_timeout: super::seconds(a.ring_timeout, "ring-timeout")?,
            connect_timeout: super::seconds(a.ring_connect_timeout, "ring-connect-timeout")?,
            listen: None,
        },
        progress,
    })
}

/// What a finished run wrote.
struct Outputs {
    adapter: PathBuf,
    deltas: Vec<DeltaWritten>,
    aggregated: Vec<checkpoint::Aggregated>,
}

/// The closing report: steps, the reward trend over the whole run (steps before a resume
/// included, from `metrics.jsonl`), the adapter and the deltas; `--json` as `gym-train/1`.
fn report(
    ctx: &Ctx,
    a: &TrainArgs,
    output: &Path,
    t: &Trainer,
    identity: &Identity,
    o: &Outputs,
) -> anyhow::Result<()> {
    let all: Vec<StepMetrics> = std::fs::read_to_string(output.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let r: Vec<f64> = all.iter().map(|m| m.reward_mean).collect();
    let q = (r.len() / 4).max(1);
    let first = mean(&r[..q.min(r.len())]);
    let last = mean(&r[r.len().saturating_sub(q)..]);
    if a.json {
        return out::json(&json!({
            "format": "gym-train/1",
            "output": output.display().to_string(),
            "steps": t.step,
            "reward_first_quarter": first,
            "reward_last_quarter": last,
            "deltas": o.deltas,
            "aggregated": o.aggregated,
            "adapter": o.adapter.display().to_string(),
            "worker_id": identity.public().worker_id(),
        }));
    }
    ctx.note(format!(
        "done: {} steps; mean reward {:.3} over the first quarter → {:.3} over the last; adapter {}; {} delta(s) in {}",
        t.step,
        first,
        last,
        o.adapter.display(),
        o.deltas.len(),
        output.join("deltas").display()
    ));
    Ok(())
}

/// ", update norm 0.12 clipped to 0.1, ε = 3.2 at δ = 1e-5 after 4 releases".
fn dp_note(d: &DeltaWritten) -> String {
    let Some(p) = &d.privacy else {
        return String::new();
    };
    let mut s = format!(", update norm {:.4} (bound {})", p.update_norm, p.clip);
    if let Some(e) = &p.spent {
        s += &format!(
            ", DP σ = {:.4}: ε = {:.3} at δ = {} after {} releases",
            p.sigma, e.epsilon, e.delta, e.rounds
        );
    }
    s
}
