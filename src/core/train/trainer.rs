//! The GSPO training loop: rollouts (grouped sampling), rewards, advantages, old/reference
//! log-probs, minibatch updates of the LoRA factors, metrics, checkpoints and signed deltas.
//!
//! A rollout batch is `per_device_train_batch_size × steps_per_generation` completions
//! (`prompts × num_generations`); it is shuffled, split into `steps_per_generation`
//! minibatches and gone through `num_iterations` times, `gradient_accumulation_steps`
//! minibatches per optimiser step — TRL's `GRPOTrainer` scheme, so that after the first
//! optimiser step the policy is off the one that sampled and the ratio and clipping act.
//!
//! Every random choice (sampling, shuffling, dropout) is seeded from (seed, rollout index,
//! step), not from a running generator, so a run resumed from a saved state continues exactly
//! as an uninterrupted one.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};
use sha3::{Digest, Sha3_256};

use super::config::TrainConfig;
use super::data::{Example, Sampler};
use super::dataset::Examples;
use super::gspo::{self, IsLevel, LossParams};
use super::optim::{self, AdamW, AdamWParams};
use super::scoring::{Sample, Scorer};
use super::split;
use crate::core::model::config::TokenIds;
use crate::core::model::generate::{self, SamplingParams};
use crate::core::model::{ModelError, Qwen3, Role, logprob, lora};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("tensor computation: {0}")]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Scoring(#[from] super::scoring::ScoringError),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    State(String),
    #[error(transparent)]
    Output(#[from] crate::core::atomic::AtomicError),
    #[error(transparent)]
    Delta(#[from] crate::core::delta::DeltaError),
    #[error("{0}")]
    Ring(String),
    #[error("the loss is not finite at step {step} ({value}); lower learning_rate?")]
    NonFinite { step: usize, value: f64 },
    /// Releasing the next delta would exceed the job's differential-privacy budget.
    #[error("{0}")]
    PrivacyBudget(String),
}

impl crate::core::error::Classify for TrainError {
    fn class(&self) -> crate::core::error::ErrorClass {
        use crate::core::error::ErrorClass;
        match self {
            TrainError::Model(e) => e.class(),
            TrainError::Scoring(e) => e.class(),
            TrainError::Invalid(_) => ErrorClass::Usage,
            TrainError::Io(_) => ErrorClass::Io,
            TrainError::State(_) => ErrorClass::Malformed,
            TrainError::Output(e) => e.class(),
            TrainError::Delta(e) => e.class(),
            TrainError::Ring(_) => ErrorClass::Ring,
            TrainError::NonFinite { .. } => ErrorClass::Training,
            TrainError::PrivacyBudget(_) => ErrorClass::Policy,
            _ => ErrorClass::Other,
        }
    }
}

pub type Result<T> = std::result::Result<T, TrainError>;

/// One line of `metrics.jsonl`: one optimiser step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    pub step: usize,
    /// Rollout batch this step trained on (0-based) and the data epoch it came from.
    pub rollout: usize,
    pub data_epoch: u64,
    pub loss: f64,
    pub reward_mean: f64,
    pub reward_std: f64,
    /// Mean of each reward component over the rollout batch (unweighted).
    pub rewards: serde_json::Map<String, serde_json::Value>,
    pub kl: f64,
    pub clip_frac: f64,
    pub clip_low: f64,
    pub clip_high: f64,
    pub ratio_mean: f64,
    pub grad_norm: f64,
    pub lr: f64,
    /// Mean completion length in tokens, and the fraction of completions that ended with an
    /// end-of-sequence token.
    pub completion_len: f64,
    pub stopped_frac: f64,
    /// Completion tokens per second over the rollout and its share of training.
    pub tokens_per_s: f64,
    pub step_time_s: f64,
    /// Seconds the rollout batch of this step took to sample, score and get its fixed
    /// log-probs (shared by the steps trained on it; included in step_time_s pro rata).
    #[serde(default)]
    pub rollout_s: f64,
}

impl StepMetrics {
    /// The fields that a resumed run must reproduce exactly (everything but timings).
    pub fn deterministic(&self) -> StepMetrics {
        StepMetrics {
            tokens_per_s: 0.0,
            step_time_s: 0.0,
            rollout_s: 0.0,
            ..self.clone()
        }
    }
}

/// A tokenized rollout batch with everything the loss needs.
pub(super) struct Rollout {
    /// Per completion: prompt ids, completion ids, mask row (1 for tokens that count).
    prompts: Vec<Vec<u32>>,
    completions: Vec<Vec<u32>>,
    mask: Vec<Vec<f32>>,
    advantages: Vec<f32>,
    /// The sampler's log-prob of each completion token under the policy's full distribution
    /// at the sampling temperature (the policy that generated: π_old).
    gen_logp: Vec<Vec<f32>>,
    old_logp: Option<Vec<Vec<f32>>>,
    /// Which rows of `old_logp` are filled (the first optimiser step's rows are filled when
    /// they are first trained).
    old_known: Vec<bool>,
    ref_logp: Option<Vec<Vec<f32>>>,
    reward_mean: f64,
    reward_std: f64,
    components: serde_json::Map<String, serde_json::Value>,
    completion_len: f64,
    stopped_frac: f64,
    completion_tokens: usize,
    gen_time: f64,
    data_epoch: u64,
}

/// What the loop reports to its caller after each optimiser step.
pub trait Observer {
    fn step(&mut self, m: &StepMetrics, t: &Trainer) -> Result<()>;
    /// Called after each rollout batch (a safe point to save a resumable state).
    fn rollout_done(&mut self, _t: &Trainer) -> Result<()> {
        Ok(())
    }
}

pub struct Trainer {
    pub cfg: TrainConfig,
    pub model: Qwen3,
    pub tokenizer: tokenizers::Tokenizer,
    pub data: Examples,
    pub scorer: Scorer,
    pub sampler: Sampler,
    pub opt: AdamW,
    pub lora_cfg: lora::LoraConfig,
    /// Optimiser steps taken.
    pub step: usize,
    /// Rollout batches generated.
    pub rollouts: usize,
    /// Tokens that went through training forward/backward since the start (for compute records).
    pub train_tokens: u64,
    pub gen_tokens: u64,
    pub eos: Vec<u32>,
    pub pad: u32,
    /// Number of base-model parameters (for FLOP estimates).
    pub params: u64,
    /// 0 for a lone worker; ring member index + 1 in a ring, so that members sample different
    /// data and completions while starting from the same LoRA initialisation.
    pub stream: u64,
}

/// Mixes (seed, a, b) into one 64-bit seed (splitmix64 finaliser).
pub fn derive_seed(seed: u64, a: u64, b: u64) -> u64 {
    let mut z = seed
        .wrapping_add(a.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(b.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The LoRA configuration a training config asks for (PEFT's `adapter_config.json`).
pub fn lora_config(cfg: &TrainConfig) -> lora::LoraConfig {
    let mut l = lora::LoraConfig::new(cfg.lora_rank, cfg.lora_alpha);
    l.lora_dropout = cfg.lora_dropout;
    l.target_modules =
        if cfg.lora_target_modules.len() == 1 && cfg.lora_target_modules[0] == "all-linear" {
            lora::Targets::Special("all-linear".into())
        } else {
            lora::Targets::List(cfg.lora_target_modules.clone())
        };
    l
}

/// The end-of-sequence tokens of a model's config and its padding token (`pad_token_id`, else
/// the first end-of-sequence token, else 0).
pub fn eos_and_pad(cfg: &crate::core::model::decoder::Config) -> (Vec<u32>, u32) {
    let eos = cfg
        .eos_token_id
        .as_ref()
        .map(TokenIds::to_vec)
        .unwrap_or_default();
    let pad = cfg.pad_token_id.or(eos.first().copied()).unwrap_or(0);
    (eos, pad)
}

/// Base-model parameter count from the loaded model (linear layers, embeddings, norms).
fn count_params(model: &Qwen3) -> u64 {
    let mut n = 0u64;
    for (_, lin) in model.linears() {
        let (o, i) = lin.base.dims();
        n += (o * i) as u64;
    }
    let c = &model.cfg;
    n += (c.vocab_size * c.hidden_size) as u64;
    if !c.tie_word_embeddings {
        n += (c.vocab_size * c.hidden_size) as u64;
    }
    n
}

/// Whether an NF4 base double-quantizes its absmax (as QLoRA / bitsandbytes' default in TRL).
pub const NF4_DOUBLE_QUANT: bool = true;

impl Trainer {
    /// Sets up a fresh run: quantizes the base (if `use_4bit`), attaches LoRA factors seeded
    /// from the run's seed, and an optimiser with zero moments.
    pub fn new(
        cfg: TrainConfig,
        mut model: Qwen3,
        tokenizer: tokenizers::Tokenizer,
        data: impl Into<Examples>,
        scorer: Scorer,
    ) -> Result<Self> {
        let data: Examples = data.into();
        if data.is_empty() {
            return Err(TrainError::Invalid("the dataset has no examples".into()));
        }
        if cfg.use_4bit {
            // a no-op for a model loaded with `LoadOptions { nf4: true, .. }`
            model.quantize_nf4(NF4_DOUBLE_QUANT)?;
        }
        let lora_cfg = lora_config(&cfg);
        let n = lora::attach(&mut model, &lora_cfg, derive_seed(cfg.seed, 0, 0))?;
        if n == 0 {
            return Err(TrainError::Invalid(format!(
                "lora_target_modules {:?} matches no linear layer of the model",
                cfg.lora_target_modules
            )));
        }
        let vars: Vec<Var> = lora::trainable(&model)
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        let opt = AdamW::new(
            vars,
            AdamWParams {
                lr: cfg.learning_rate,
                beta1: cfg.adam_beta1,
                beta2: cfg.adam_beta2,
                eps: cfg.adam_epsilon,
                weight_decay: cfg.weight_decay,
            },
        )?;
        let (eos, pad) = eos_and_pad(&model.cfg);
        let params = count_params(&model);
        let sampler = Sampler::new(data.len(), cfg.seed);
        Ok(Trainer {
            cfg,
            model,
            tokenizer,
            data,
            scorer,
            sampler,
            opt,
            lora_cfg,
            step: 0,
            rollouts: 0,
            train_tokens: 0,
            gen_tokens: 0,
            eos,
            pad,
            params,
            stream: 0,
        })
    }

    /// Gives this worker its own random stream (data order, sampling, shuffling, dropout);
    /// the LoRA initialisation still comes from the run's seed.
    pub fn set_stream(&mut self, stream: u64) {
        self.stream = stream;
        self.sampler = Sampler::new(self.data.len(), self.seed());
    }

    /// The seed of this worker's random stream.
    fn seed(&self) -> u64 {
        if self.stream == 0 {
            self.cfg.seed
        } else {
            derive_seed(self.cfg.seed, 5, self.stream)
        }
    }

    fn dev(&self) -> Device {
        self.model.device().clone()
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| TrainError::Tokenizer(format!("encoding {text:?}: {e}")))?;
        let mut ids = enc.get_ids().to_vec();
        if let Some(max) = self.cfg.max_prompt_length
            && ids.len() > max
        {
            // keep the end of the prompt, as TRL truncates on the left
            ids.drain(..ids.len() - max);
        }
        if ids.is_empty() {
            return Err(TrainError::Invalid(format!(
                "prompt {text:?} encodes to no tokens"
            )));
        }
        Ok(ids)
    }

    /// Samples a rollout batch, scores it and computes advantages and the fixed log-probs.
    fn rollout(&mut self) -> Result<Rollout> {
        let t0 = Instant::now();
        let g = self.cfg.num_generations;
        let idx = self.sampler.next_batch(self.cfg.prompts_per_generation());
        let data_epoch = self.sampler.epoch;
        let exs: Vec<Example> = idx
            .iter()
            .map(|&i| self.data.get(i).map(|e| e.into_owned()))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| TrainError::Io(e.to_string()))?;
        let mut prompts = Vec::new();
        let mut which = Vec::new();
        for (k, ex) in exs.iter().enumerate() {
            let ids = self.encode(&ex.prompt)?;
            for _ in 0..g {
                prompts.push(ids.clone());
                which.push(k);
            }
        }
        let params = SamplingParams {
            temperature: self.cfg.temperature,
            top_p: self.cfg.top_p,
            top_k: self.cfg.top_k,
            max_new_tokens: self.cfg.max_completion_length,
            min_new_tokens: self.cfg.min_completion_length,
            seed: derive_seed(self.seed(), 1, self.rollouts as u64),
            eos: self.eos.clone(),
            pad: self.pad,
        };
        self.model.set_training(None);
        let out = generate::generate(&self.model, &prompts, &params, Role::Policy)?;
        let texts: Vec<String> = out
            .tokens
            .iter()
            .map(|t| {
                self.tokenizer
                    .decode(t, true)
                    .map_err(|e| TrainError::Tokenizer(format!("decoding: {e}")))
            })
            .collect::<Result<_>>()?;
        let samples: Vec<Sample> = which
            .iter()
            .zip(&texts)
            .map(|(&k, c)| Sample {
                prompt: &exs[k].prompt,
                completion: c,
                answer: exs[k].answer.as_deref(),
                extra: &exs[k].extra,
            })
            .collect();
        let scores = self.scorer.score(&samples)?;
        let r = &scores.total;
        let n = r.len() as f64;
        let reward_mean = r.iter().map(|&x| x as f64).sum::<f64>() / n;
        let reward_std = if r.len() > 1 {
            (r.iter()
                .map(|&x| (x as f64 - reward_mean).powi(2))
                .sum::<f64>()
                / (n - 1.0))
                .sqrt()
        } else {
            0.0
        };
        let mut components = serde_json::Map::new();
        for (name, v) in &scores.components {
            let m = v.iter().map(|&x| x as f64).sum::<f64>() / v.len().max(1) as f64;
            components.insert(name.clone(), m.into());
        }
        let advantages = gspo::advantages(r, g, self.cfg.scale_rewards);
        let mask: Vec<Vec<f32>> = out
            .tokens
            .iter()
            .zip(&out.stopped)
            .map(|(t, &stopped)| {
                let v = if self.cfg.mask_truncated_completions && !stopped {
                    0.0
                } else {
                    1.0
                };
                vec![v; t.len()]
            })
            .collect();
        let completion_tokens: usize = out.tokens.iter().map(Vec::len).sum();
        let stopped_frac =
            out.stopped.iter().filter(|&&s| s).count() as f64 / out.stopped.len() as f64;
        let mut rollout = Rollout {
            prompts,
            completions: out.tokens,
            gen_logp: out.policy_logprobs,
            mask,
            advantages,
            old_logp: None,
            old_known: Vec::new(),
            ref_logp: None,
            reward_mean,
            reward_std,
            components,
            completion_len: completion_tokens as f64 / n,
            stopped_frac,
            completion_tokens,
            gen_time: 0.0,
            data_epoch,
        };
        // (old log-probs: see `run`, they are needed only for rows trained after an update)
        if self.cfg.beta != 0.0 {
            let all: Vec<usize> = (0..rollout.completions.len()).collect();
            rollout.ref_logp = Some(self.fixed_logp(&rollout, &all, Role::Reference)?);
        }
        self.gen_tokens += completion_tokens as u64;
        rollout.gen_time = t0.elapsed().as_secs_f64();
        Ok(rollout)
    }

    /// Builds (ids, positions, keep, targets, mask) for the rows `rows` of a rollout: prompts
    /// left-padded to the longest prompt, completions right-padded to the longest completion.
    pub(super) fn batch(&self, rollout: &Rollout, rows: &[usize]) -> Result<MiniBatch> {
        let p = rows
            .iter()
            .map(|&i| rollout.prompts[i].len())
            .max()
            .unwrap_or(1);
        let c = rows
            .iter()
            .map(|&i| rollout.completions[i].len())
            .max()
            .unwrap_or(0)
            .max(1);
        let b = rows.len();
        let (mut ids, mut pos, mut keep) = (Vec::new(), Vec::new(), Vec::new());
        let (mut tgt, mut mask) = (Vec::new(), Vec::new());
        for &i in rows {
            let (pr, co) = (&rollout.prompts[i], &rollout.completions[i]);
            let lp = p - pr.len();
            ids.extend(std::iter::repeat_n(self.pad, lp));
            ids.extend_from_slice(pr);
            ids.extend_from_slice(co);
            ids.extend(std::iter::repeat_n(self.pad, c - co.len()));
            keep.extend(std::iter::repeat_n(0u32, lp));
            keep.extend(std::iter::repeat_n(1u32, pr.len() + co.len()));
            keep.extend(std::iter::repeat_n(0u32, c - co.len()));
            pos.extend(std::iter::repeat_n(0u32, lp));
            pos.extend(0..(pr.len() + co.len()) as u32);
            pos.extend(std::iter::repeat_n(0u32, c - co.len()));
            tgt.extend_from_slice(co);
            tgt.extend(std::iter::repeat_n(self.pad, c - co.len()));
            mask.extend_from_slice(&rollout.mask[i]);
            mask.extend(std::iter::repeat_n(0f32, c - co.len()));
        }
        let dev = self.dev();
        Ok(MiniBatch {
            ids: Tensor::from_vec(ids, (b, p + c), &dev)?,
            pos: Tensor::from_vec(pos, (b, p + c), &dev)?,
            keep: Tensor::from_vec(keep, (b, p + c), &dev)?,
            targets: Tensor::from_vec(tgt, b * c, &dev)?,
            mask: Tensor::from_vec(mask, (b, c), &dev)?,
            p,
            c,
            tokens: rows
                .iter()
                .map(|&i| rollout.prompts[i].len() + rollout.completions[i].len())
                .sum(),
        })
    }

    /// Per-token log-probs (b, c) of the completions of a minibatch, differentiable in the
    /// LoRA factors when `role` is the policy. With `gradient_checkpointing` the graph reaches
    /// only the final norm, and the returned checkpoint carries the gradient through the layers
    /// after the loss's backward (`Qwen3::backward_checkpointed`).
    pub(super) fn logp(
        &self,
        mb: &MiniBatch,
        role: Role,
    ) -> Result<(Tensor, Option<crate::core::model::decoder::Checkpoint>)> {
        let keep = Some(&mb.keep);
        if self.cfg.gradient_checkpointing {
            let (h, checkpoint) = self
                .model
                .forward_hidden_checkpointed(&mb.ids, &mb.pos, keep, role)?;
            Ok((self.logp_of_hidden(mb, h)?, Some(checkpoint)))
        } else {
            let h = self.model.forward_hidden(&mb.ids, &mb.pos, keep, role)?;
            Ok((self.logp_of_hidden(mb, h)?, None))
        }
    }

    /// Log-probs (b, c) of the completion tokens from the final hidden states (b, t, h).
    fn logp_of_hidden(&self, mb: &MiniBatch, h: Tensor) -> Result<Tensor> {
        let (b, _, d) = h.dims3()?;
        // hidden state at position t predicts token t+1
        let h = h.narrow(1, mb.p - 1, mb.c)?.reshape((b * mb.c, d))?;
        let lp = logprob::token_logprobs(
            &h,
            self.model.lm_head(),
            &mb.targets,
            self.cfg.temperature,
            self.cfg.logit_chunk,
        )?;
        Ok(lp.reshape((b, mb.c))?)
    }

    /// Log-probs of the completions `rows` of the rollout, without gradient: the current policy
    /// (`Role::Policy`: the "old" policy that sampled) or the frozen base (the reference).
    /// Returns one entry per completion of the rollout, empty for the rows not asked for.
    fn fixed_logp(&self, rollout: &Rollout, rows: &[usize], role: Role) -> Result<Vec<Vec<f32>>> {
        let mut out = vec![Vec::new(); rollout.completions.len()];
        for chunk in rows.chunks(self.cfg.per_device_train_batch_size) {
            let mb = self.batch(rollout, chunk)?;
            // no graph: the layers run one at a time, detached
            let h = self
                .model
                .forward_hidden_nograd(&mb.ids, &mb.pos, Some(&mb.keep), role)?;
            let lp = self.logp_of_hidden(&mb, h)?.detach().to_vec2::<f32>()?;
            for (k, &i) in chunk.iter().enumerate() {
                out[i] = lp[k][..rollout.completions[i].len()].to_vec();
            }
        }
        Ok(out)
    }

    /// The (rows, c) tensor of per-completion values `v`, zero-padded to `c` columns.
    fn rows_tensor(v: &[Vec<f32>], rows: &[usize], c: usize, dev: &Device) -> Result<Tensor> {
        let mut flat = Vec::with_capacity(rows.len() * c);
        for &i in rows {
            let row = &v[i][..v[i].len().min(c)];
            flat.extend_from_slice(row);
            flat.extend(std::iter::repeat_n(0f32, c - row.len()));
        }
        Ok(Tensor::from_vec(flat, (rows.len(), c), dev)?)
    }

    fn loss_params(&self) -> LossParams {
        LossParams {
            level: self.cfg.importance_sampling_level,
            loss_type: self.cfg.loss_type,
            epsilon_low: self.cfg.epsilon,
            epsilon_high: self.cfg.epsilon_high(),
            beta: self.cfg.beta,
            max_completion_length: self.cfg.max_completion_length,
        }
    }

    /// Runs until `max_steps` optimiser steps have been taken, reporting to `obs`.
    pub fn run(&mut self, obs: &mut dyn Observer) -> Result<()> {
        while self.step < self.cfg.max_steps {
            let mut rollout = self.rollout()?;
            let minibatches = self.shuffled_minibatches(rollout.completions.len());
            self.prefill_old_logp(&mut rollout, &minibatches);
            self.train_on_rollout(&mut rollout, &minibatches, obs)?;
            self.rollouts += 1;
            obs.rollout_done(self)?;
        }
        self.model.set_training(None);
        Ok(())
    }

    /// The `n` completions of a rollout shuffled, then split into `steps_per_generation`
    /// minibatches (as TRL).
    fn shuffled_minibatches(&self, n: usize) -> Vec<Vec<usize>> {
        use rand::{SeedableRng, seq::SliceRandom};
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng =
            rand::rngs::StdRng::seed_from_u64(derive_seed(self.seed(), 2, self.rollouts as u64));
        order.shuffle(&mut rng);
        let minibatches: Vec<Vec<usize>> = order
            .chunks(self.cfg.per_device_train_batch_size)
            .map(|c| c.to_vec())
            .collect();
        debug_assert_eq!(minibatches.len(), self.cfg.steps_per_generation());
        minibatches
    }

    /// Fills the π_old rows (the policy that sampled) that are known before training.
    ///
    /// π_old is needed only when the policy moves before the rollout is used up. The
    /// minibatches of the first optimiser step are trained before any update: their π_old is
    /// the training forward's own value (detached, so their ratio is exactly 1), recorded when
    /// they are first trained ([`Self::old_logp_rows`]). The later ones take the sampler's
    /// log-probs under the same policy's full distribution (`Generation::policy_logprobs`),
    /// which saves a forward over them.
    fn prefill_old_logp(&self, rollout: &mut Rollout, minibatches: &[Vec<usize>]) {
        if self.cfg.steps_per_rollout() <= 1 {
            return;
        }
        let n = rollout.completions.len();
        let first_step = self
            .cfg
            .gradient_accumulation_steps
            .min(self.cfg.steps_per_generation());
        let mut old = vec![Vec::new(); n];
        rollout.old_known = vec![false; n];
        for &i in minibatches[first_step..].iter().flatten() {
            old[i] = rollout.gen_logp[i].clone();
            rollout.old_known[i] = true;
        }
        rollout.old_logp = Some(old);
    }

    /// The optimiser steps on one rollout: `num_iterations` passes over its minibatches,
    /// `gradient_accumulation_steps` minibatches a step, until `max_steps`.
    fn train_on_rollout(
        &mut self,
        rollout: &mut Rollout,
        minibatches: &[Vec<usize>],
        obs: &mut dyn Observer,
    ) -> Result<()> {
        let steps_per_pass = self.cfg.steps_per_generation() / self.cfg.gradient_accumulation_steps;
        let mut next_minibatch = 0usize;
        for _pass in 0..self.cfg.num_iterations {
            for _ in 0..steps_per_pass {
                if self.step >= self.cfg.max_steps {
                    return Ok(());
                }
                let metrics = self.optimizer_step(rollout, minibatches, &mut next_minibatch)?;
                obs.step(&metrics, self)?;
            }
        }
        Ok(())
    }

    /// One optimiser step: accumulates the gradients of the next minibatches, clips them,
    /// updates the LoRA factors and returns the step's metrics.
    fn optimizer_step(
        &mut self,
        rollout: &mut Rollout,
        minibatches: &[Vec<usize>],
        next_minibatch: &mut usize,
    ) -> Result<StepMetrics> {
        let started = Instant::now();
        self.model
            .set_training(Some(derive_seed(self.seed(), 3, self.step as u64)));
        let mut acc = Accumulated::default();
        for _ in 0..self.cfg.gradient_accumulation_steps {
            let rows = &minibatches[*next_minibatch % self.cfg.steps_per_generation()];
            *next_minibatch += 1;
            let mb = self.minibatch_gradients(rollout, rows)?;
            let tokens = mb.tokens;
            acc.add(mb)?;
            self.train_tokens += tokens as u64;
        }
        let mut grads = acc.grads.take().expect("at least one minibatch");
        let grad_norm = optim::clip_grad_norm(&mut grads, self.cfg.max_grad_norm)?;
        let lr = optim::lr_at(
            self.cfg.learning_rate,
            self.cfg.lr_scheduler_type,
            self.step,
            self.cfg.warmup(),
            self.cfg.max_steps,
        );
        self.opt.update(&grads, lr)?;
        self.step += 1;
        Ok(self.step_metrics(rollout, &acc, grad_norm, lr, started))
    }

    /// The metrics line of the step just taken.
    fn step_metrics(
        &self,
        rollout: &Rollout,
        acc: &Accumulated,
        grad_norm: f64,
        lr: f64,
        started: Instant,
    ) -> StepMetrics {
        let per_rollout = self.cfg.steps_per_rollout() as f64;
        let step_time = started.elapsed().as_secs_f64() + rollout.gen_time / per_rollout;
        let token_share = rollout.completion_tokens as f64 / per_rollout;
        StepMetrics {
            step: self.step,
            rollout: self.rollouts,
            data_epoch: rollout.data_epoch,
            loss: acc.loss,
            reward_mean: rollout.reward_mean,
            reward_std: rollout.reward_std,
            rewards: rollout.components.clone(),
            kl: acc.mean_stat(|s| s.kl),
            clip_frac: acc.mean_stat(|s| s.clip_region),
            clip_low: acc.mean_stat(|s| s.clip_low),
            clip_high: acc.mean_stat(|s| s.clip_high),
            ratio_mean: acc.mean_stat(|s| s.ratio_mean),
            grad_norm,
            lr,
            completion_len: rollout.completion_len,
            stopped_frac: rollout.stopped_frac,
            tokens_per_s: token_share / step_time.max(1e-9),
            step_time_s: step_time,
            rollout_s: rollout.gen_time,
        }
    }

    /// The loss of the minibatch `rows` (scaled for accumulation) and its gradient for every
    /// trainable variable (zeros where the loss does not reach one).
    fn minibatch_gradients(
        &self,
        rollout: &mut Rollout,
        rows: &[usize],
    ) -> Result<MinibatchGradients> {
        let dev = self.dev();
        let mb = self.batch(rollout, rows)?;
        let (logp, checkpoint, halves) = if split::should_split(self, rows.len()) {
            let (logp, halves) = split::forward(self, rollout, rows, mb.c)?;
            (logp, None, Some(halves))
        } else {
            let (logp, checkpoint) = self.logp(&mb, Role::Policy)?;
            (logp, checkpoint, None)
        };
        let old = Self::old_logp_rows(rollout, rows, &logp, mb.c, &dev)?;
        let reference = match &rollout.ref_logp {
            Some(r) => Some(Self::rows_tensor(r, rows, mb.c, &dev)?),
            None => None,
        };
        let adv: Vec<f32> = rows.iter().map(|&i| rollout.advantages[i]).collect();
        let adv = Tensor::from_vec(adv, rows.len(), &dev)?;
        let out = gspo::loss(
            &logp,
            &old,
            reference.as_ref(),
            &adv,
            &mb.mask,
            &self.loss_params(),
        )?;
        let loss = (out.loss / self.cfg.gradient_accumulation_steps as f64)?;
        let loss_value = loss.to_scalar::<f32>()? as f64;
        if !loss_value.is_finite() {
            return Err(TrainError::NonFinite {
                step: self.step + 1,
                value: loss_value,
            });
        }
        let mut grads = loss.backward()?;
        if let Some(checkpoint) = checkpoint {
            self.model.backward_checkpointed(checkpoint, &mut grads)?;
        }
        if let Some(halves) = halves {
            split::backward(&self.model, halves, &self.opt.vars, &mut grads)?;
        }
        let per_var = self
            .opt
            .vars
            .iter()
            .map(|v| match grads.get(v.as_tensor()) {
                Some(g) => Ok(g.clone()),
                None => v.as_tensor().zeros_like(),
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(MinibatchGradients {
            loss: loss_value,
            stats: out.stats,
            grads: per_var,
            tokens: mb.tokens,
        })
    }

    /// π_old of the minibatch `rows` as a (rows, c) tensor. On a rollout trained once (no
    /// `old_logp`), and on rows trained for the first time before any update, it is the
    /// training forward's own `logp` detached; the latter are kept for the later passes.
    fn old_logp_rows(
        rollout: &mut Rollout,
        rows: &[usize],
        logp: &Tensor,
        c: usize,
        dev: &Device,
    ) -> Result<Tensor> {
        match &mut rollout.old_logp {
            Some(old) if rows.iter().all(|&i| rollout.old_known[i]) => {
                Self::rows_tensor(old, rows, c, dev)
            }
            Some(old) => {
                let detached = logp.detach();
                for (row, &i) in detached.to_vec2::<f32>()?.into_iter().zip(rows) {
                    old[i] = row[..rollout.completions[i].len()].to_vec();
                    rollout.old_known[i] = true;
                }
                Ok(detached)
            }
            None => Ok(logp.detach()),
        }
    }

    /// Estimated training FLOPs of `tokens` tokens (6 · parameters · tokens).
    pub fn flops(&self, tokens: u64) -> f64 {
        6.0 * self.params as f64 * tokens as f64
    }

    /// The importance-sampling level in use (for reports).
    pub fn level(&self) -> IsLevel {
        self.cfg.importance_sampling_level
    }
}

pub(super) struct MiniBatch {
    ids: Tensor,
    pos: Tensor,
    keep: Tensor,
    targets: Tensor,
    mask: Tensor,
    p: usize,
    pub(super) c: usize,
    tokens: usize,
}

/// SHA3-256 (hex) identifying a base model: over the names and SHA3-256 digests of its
/// safetensors files in name order, so the bundled model and the same files on disk agree.
pub fn base_hash_files(files: &[(String, Vec<u8>)]) -> String {
    combine_file_digests(
        files
            .iter()
            .map(|(n, b)| (n.clone(), hex::encode(Sha3_256::digest(b))))
            .collect(),
    )
}

/// The base hash from each file's name and hex SHA3-256 digest.
fn combine_file_digests(mut files: Vec<(String, String)>) -> String {
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut h = Sha3_256::new();
    h.update(b"gym-base-model-v1\n");
    for (name, digest) in files {
        h.update(name.as_bytes());
        h.update(b"\n");
        h.update(digest.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// [`base_hash_files`] of the `*.safetensors` files of a model folder, each file hashed as it
/// is read (never held in memory whole).
pub fn base_hash_dir(dir: &Path) -> std::result::Result<String, ModelError> {
    let rd = std::fs::read_dir(dir).map_err(|source| ModelError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".safetensors") {
            let p: PathBuf = e.path();
            let io = |source| ModelError::Io {
                path: p.clone(),
                source,
            };
            let mut f = std::fs::File::open(&p).map_err(io)?;
            let mut h = Sha3_256::new();
            std::io::copy(&mut f, &mut h).map_err(io)?;
            files.push((name, hex::encode(h.finalize())));
        }
    }
    Ok(combine_file_digests(files))
}

/// (name, f32 data, shape).
pub type NamedTensor = (String, Vec<f32>, Vec<usize>);

/// The LoRA factors as (PEFT name, f32 data, shape), in the stable order of
/// [`lora::trainable`].
pub fn lora_tensors(model: &Qwen3) -> Result<Vec<NamedTensor>> {
    let mut out = Vec::new();
    for (name, v) in lora::trainable(model) {
        let t = v.as_tensor().to_dtype(DType::F32)?;
        let shape = t.dims().to_vec();
        out.push((name, t.flatten_all()?.to_vec1::<f32>()?, shape));
    }
    Ok(out)
}

/// One minibatch's share of an optimiser step.
struct MinibatchGradients {
    /// The loss divided by `gradient_accumulation_steps`.
    loss: f64,
    stats: gspo::LossStats,
    /// One gradient per trainable variable, in the optimiser's order.
    grads: Vec<Tensor>,
    tokens: usize,
}

/// The gradients, loss and statistics of the minibatches of one optimiser step, summed.
#[derive(Default)]
struct Accumulated {
    grads: Option<Vec<Tensor>>,
    loss: f64,
    stats: Vec<gspo::LossStats>,
}

impl Accumulated {
    fn add(&mut self, mb: MinibatchGradients) -> Result<()> {
        self.loss += mb.loss;
        self.stats.push(mb.stats);
        self.grads = Some(match self.grads.take() {
            None => mb.grads,
            Some(acc) => acc
                .iter()
                .zip(&mb.grads)
                .map(|(a, b)| a + b)
                .collect::<candle_core::Result<Vec<_>>>()?,
        });
        Ok(())
    }

    /// The mean of one loss statistic over the minibatches; NaN (e.g. KL without a reference)
    /// is logged as 0.
    fn mean_stat(&self, f: impl Fn(&gspo::LossStats) -> f32) -> f64 {
        let v = self.stats.iter().map(|s| f(s) as f64).sum::<f64>() / self.stats.len() as f64;
        if v.is_finite() { v } else { 0.0 }
    }
}

#[cfg(test)]
mod tests;
