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
use super::rewards::{Rewards, Sample};
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
    Reward(#[from] super::rewards::RewardError),
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
}

impl crate::core::error::Classify for TrainError {
    fn class(&self) -> crate::core::error::ErrorClass {
        use crate::core::error::ErrorClass;
        match self {
            TrainError::Model(e) => e.class(),
            TrainError::Reward(e) => e.class(),
            TrainError::Invalid(_) => ErrorClass::Usage,
            TrainError::Io(_) => ErrorClass::Io,
            TrainError::State(_) => ErrorClass::Malformed,
            TrainError::Output(e) => e.class(),
            TrainError::Delta(e) => e.class(),
            TrainError::Ring(_) => ErrorClass::Ring,
            TrainError::NonFinite { .. } => ErrorClass::Training,
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
struct Rollout {
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
    pub rewards: Rewards,
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
        rewards: Rewards,
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
        let eos = model
            .cfg
            .eos_token_id
            .as_ref()
            .map(TokenIds::to_vec)
            .unwrap_or_default();
        let pad = model.cfg.pad_token_id.or(eos.first().copied()).unwrap_or(0);
        let params = count_params(&model);
        let sampler = Sampler::new(data.len(), cfg.seed);
        Ok(Trainer {
            cfg,
            model,
            tokenizer,
            data,
            rewards,
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
        let scores = self.rewards.score(&samples)?;
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
        let mut ro = Rollout {
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
            let all: Vec<usize> = (0..ro.completions.len()).collect();
            ro.ref_logp = Some(self.fixed_logp(&ro, &all, Role::Reference)?);
        }
        self.gen_tokens += completion_tokens as u64;
        ro.gen_time = t0.elapsed().as_secs_f64();
        Ok(ro)
    }

    /// Builds (ids, positions, keep, targets, mask) for the rows `rows` of a rollout: prompts
    /// left-padded to the longest prompt, completions right-padded to the longest completion.
    fn batch(&self, ro: &Rollout, rows: &[usize]) -> Result<MiniBatch> {
        let p = rows.iter().map(|&i| ro.prompts[i].len()).max().unwrap_or(1);
        let c = rows
            .iter()
            .map(|&i| ro.completions[i].len())
            .max()
            .unwrap_or(0)
            .max(1);
        let b = rows.len();
        let (mut ids, mut pos, mut keep) = (Vec::new(), Vec::new(), Vec::new());
        let (mut tgt, mut mask) = (Vec::new(), Vec::new());
        for &i in rows {
            let (pr, co) = (&ro.prompts[i], &ro.completions[i]);
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
            mask.extend_from_slice(&ro.mask[i]);
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
                .map(|&i| ro.prompts[i].len() + ro.completions[i].len())
                .sum(),
        })
    }

    /// Per-token log-probs (b, c) of the completions of a minibatch, differentiable in the
    /// LoRA factors when `role` is the policy. With `gradient_checkpointing` the graph reaches
    /// only the final norm, and the returned checkpoint carries the gradient through the layers
    /// after the loss's backward (`Qwen3::backward_checkpointed`).
    fn logp(
        &self,
        mb: &MiniBatch,
        role: Role,
    ) -> Result<(Tensor, Option<crate::core::model::decoder::Checkpoint>)> {
        let keep = Some(&mb.keep);
        if self.cfg.gradient_checkpointing {
            let (h, ck) = self
                .model
                .forward_hidden_checkpointed(&mb.ids, &mb.pos, keep, role)?;
            Ok((self.logp_of_hidden(mb, h)?, Some(ck)))
        } else {
            let h = self.model.forward_hidden(&mb.ids, &mb.pos, keep, role)?;
            Ok((self.logp_of_hidden(mb, h)?, None))
        }
    }

    /// Whether a minibatch is split in two halves run on two threads: with at least two
    /// threads and no active LoRA dropout (whose generators are shared by the halves, so the
    /// draws would depend on thread timing).
    fn split_minibatches(&self) -> bool {
        rayon::current_num_threads() >= 2
            && self.cfg.lora_dropout <= 0.0
            && self.model.device().is_cpu()
    }

    /// The differentiable log-probs of the completions `rows`, and a leaf standing for them
    /// zero-padded to `c` columns (what the loss sees).
    fn half_logp(&self, ro: &Rollout, rows: &[usize], c: usize) -> Result<Half> {
        let mb = self.batch(ro, rows)?;
        let (logp, ck) = self.logp(&mb, Role::Policy)?;
        let leaf = Var::from_tensor(&logp.detach())?;
        let padded = leaf.as_tensor().pad_with_zeros(1, 0, c - mb.c)?;
        Ok(Half {
            logp,
            leaf,
            padded,
            ck,
        })
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
    fn fixed_logp(&self, ro: &Rollout, rows: &[usize], role: Role) -> Result<Vec<Vec<f32>>> {
        let mut out = vec![Vec::new(); ro.completions.len()];
        for chunk in rows.chunks(self.cfg.per_device_train_batch_size) {
            let mb = self.batch(ro, chunk)?;
            // no graph: the layers run one at a time, detached
            let h = self
                .model
                .forward_hidden_nograd(&mb.ids, &mb.pos, Some(&mb.keep), role)?;
            let lp = self.logp_of_hidden(&mb, h)?.detach().to_vec2::<f32>()?;
            for (k, &i) in chunk.iter().enumerate() {
                out[i] = lp[k][..ro.completions[i].len()].to_vec();
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
        let dev = self.dev();
        let lp = self.loss_params();
        let spg = self.cfg.steps_per_generation();
        let ga = self.cfg.gradient_accumulation_steps;
        let per_rollout = self.cfg.steps_per_rollout();
        let vars: Vec<Var> = self.opt.vars.clone();
        while self.step < self.cfg.max_steps {
            let mut ro = self.rollout()?;
            let n = ro.completions.len();
            // shuffle, then split into steps_per_generation minibatches (as TRL)
            let mut order: Vec<usize> = (0..n).collect();
            {
                use rand::{SeedableRng, seq::SliceRandom};
                let mut rng = rand::rngs::StdRng::seed_from_u64(derive_seed(
                    self.seed(),
                    2,
                    self.rollouts as u64,
                ));
                order.shuffle(&mut rng);
            }
            let per = self.cfg.per_device_train_batch_size;
            let minibatches: Vec<Vec<usize>> = order.chunks(per).map(|c| c.to_vec()).collect();
            debug_assert_eq!(minibatches.len(), spg);
            // Old log-probs (π_old, the policy that sampled) are needed when the policy moves
            // before the rollout is used up. The minibatches of the first optimiser step are
            // trained before any update: their π_old is the training forward's own value
            // (detached, so their ratio is exactly 1), recorded when they are first trained.
            // The later ones take the sampler's log-probs under the same policy's full
            // distribution (`Generation::policy_logprobs`), which saves a forward over them.
            if per_rollout > 1 {
                let later: Vec<usize> = minibatches[ga.min(spg)..].concat();
                let mut old = vec![Vec::new(); n];
                ro.old_known = vec![false; n];
                for &i in &later {
                    old[i] = ro.gen_logp[i].clone();
                    ro.old_known[i] = true;
                }
                ro.old_logp = Some(old);
            }
            let gen_share = ro.gen_time / per_rollout as f64;
            let tok_share = ro.completion_tokens as f64 / per_rollout as f64;
            let mut k = 0usize; // minibatch counter within the rollout
            for _iter in 0..self.cfg.num_iterations {
                for _ in 0..spg / ga {
                    if self.step >= self.cfg.max_steps {
                        break;
                    }
                    let t0 = Instant::now();
                    self.model
                        .set_training(Some(derive_seed(self.seed(), 3, self.step as u64)));
                    let mut grads: Option<Vec<Tensor>> = None;
                    let mut loss_sum = 0f64;
                    let mut stats = Vec::new();
                    for _ in 0..ga {
                        let rows = &minibatches[k % spg];
                        k += 1;
                        let mb = self.batch(&ro, rows)?;
                        // Two halves of the minibatch run forward and backward on two threads
                        // (small models leave the second core idle inside candle's ops). The
                        // loss sees the halves' log-probs as leaves; their gradients are then
                        // carried through each half's graph in parallel: the same chain rule.
                        let split = self.split_minibatches() && rows.len() >= 2;
                        let (logp, ck, halves) = if split {
                            let (r0, r1) = rows.split_at(rows.len() / 2);
                            let (h0, h1) = rayon::join(
                                || self.half_logp(&ro, r0, mb.c),
                                || self.half_logp(&ro, r1, mb.c),
                            );
                            let (h0, h1) = (h0?, h1?);
                            let logp = Tensor::cat(&[&h0.padded, &h1.padded], 0)?;
                            (logp, None, Some((h0, h1)))
                        } else {
                            let (logp, ck) = self.logp(&mb, Role::Policy)?;
                            (logp, ck, None)
                        };
                        let old = match &mut ro.old_logp {
                            Some(o) if rows.iter().all(|&i| ro.old_known[i]) => {
                                Self::rows_tensor(o, rows, mb.c, &dev)?
                            }
                            // first use, before any update: on-policy, keep it for the
                            // next iterations over this rollout
                            Some(o) => {
                                let d = logp.detach();
                                for (r, &i) in d.to_vec2::<f32>()?.into_iter().zip(rows) {
                                    o[i] = r[..ro.completions[i].len()].to_vec();
                                    ro.old_known[i] = true;
                                }
                                d
                            }
                            None => logp.detach(),
                        };
                        let refl = match &ro.ref_logp {
                            Some(r) => Some(Self::rows_tensor(r, rows, mb.c, &dev)?),
                            None => None,
                        };
                        let adv: Vec<f32> = rows.iter().map(|&i| ro.advantages[i]).collect();
                        let adv = Tensor::from_vec(adv, rows.len(), &dev)?;
                        let out = gspo::loss(&logp, &old, refl.as_ref(), &adv, &mb.mask, &lp)?;
                        let l = (out.loss / ga as f64)?;
                        let lv = l.to_scalar::<f32>()? as f64;
                        if !lv.is_finite() {
                            return Err(TrainError::NonFinite {
                                step: self.step + 1,
                                value: lv,
                            });
                        }
                        loss_sum += lv;
                        stats.push(out.stats);
                        let mut gs = l.backward()?;
                        if let Some(ck) = ck {
                            self.model.backward_checkpointed(ck, &mut gs)?;
                        }
                        if let Some((h0, h1)) = halves {
                            let model = &self.model;
                            let (g0, g1) =
                                rayon::join(|| h0.backward(model, &gs), || h1.backward(model, &gs));
                            let (g0, g1) = (g0?, g1?);
                            for v in &vars {
                                let t = v.as_tensor();
                                let sum = match (
                                    g0.as_ref().and_then(|g| g.get(t)),
                                    g1.as_ref().and_then(|g| g.get(t)),
                                ) {
                                    (Some(a), Some(b)) => Some((a + b)?),
                                    (Some(a), None) | (None, Some(a)) => Some(a.clone()),
                                    (None, None) => None,
                                };
                                if let Some(d) = sum {
                                    gs.insert(t, d);
                                }
                            }
                        }
                        let mut these = Vec::with_capacity(vars.len());
                        for v in &vars {
                            these.push(match gs.get(v.as_tensor()) {
                                Some(g) => g.clone(),
                                None => v.as_tensor().zeros_like()?,
                            });
                        }
                        grads = Some(match grads {
                            None => these,
                            Some(acc) => acc
                                .iter()
                                .zip(&these)
                                .map(|(a, b)| a + b)
                                .collect::<candle_core::Result<Vec<_>>>()?,
                        });
                        self.train_tokens += mb.tokens as u64;
                    }
                    let mut grads = grads.expect("at least one minibatch");
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
                    // NaN (e.g. KL without a reference) is logged as 0
                    let mean = |f: &dyn Fn(&gspo::LossStats) -> f32| {
                        let v = stats.iter().map(|s| f(s) as f64).sum::<f64>() / stats.len() as f64;
                        if v.is_finite() { v } else { 0.0 }
                    };
                    let step_time = t0.elapsed().as_secs_f64() + gen_share;
                    let m = StepMetrics {
                        step: self.step,
                        rollout: self.rollouts,
                        data_epoch: ro.data_epoch,
                        loss: loss_sum,
                        reward_mean: ro.reward_mean,
                        reward_std: ro.reward_std,
                        rewards: ro.components.clone(),
                        kl: mean(&|s| s.kl),
                        clip_frac: mean(&|s| s.clip_region),
                        clip_low: mean(&|s| s.clip_low),
                        clip_high: mean(&|s| s.clip_high),
                        ratio_mean: mean(&|s| s.ratio_mean),
                        grad_norm,
                        lr,
                        completion_len: ro.completion_len,
                        stopped_frac: ro.stopped_frac,
                        tokens_per_s: tok_share / step_time.max(1e-9),
                        step_time_s: step_time,
                        rollout_s: ro.gen_time,
                    };
                    obs.step(&m, self)?;
                }
            }
            self.rollouts += 1;
            obs.rollout_done(self)?;
        }
        self.model.set_training(None);
        Ok(())
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

/// One half of a split minibatch: its log-probs with their graph, the leaf the loss used in
/// their place, and that leaf padded to the minibatch's width.
struct Half {
    logp: Tensor,
    leaf: Var,
    padded: Tensor,
    /// With gradient checkpointing: what carries the gradient through the layers.
    ck: Option<crate::core::model::decoder::Checkpoint>,
}

impl Half {
    /// Carries the loss's gradient at the leaf through this half's graph (and its layers, when
    /// checkpointed).
    fn backward(
        self,
        model: &Qwen3,
        gs: &candle_core::backprop::GradStore,
    ) -> Result<Option<candle_core::backprop::GradStore>> {
        let Some(g) = gs.get(self.leaf.as_tensor()) else {
            return Ok(None);
        };
        let mut out = (&self.logp * g.detach())?.sum_all()?.backward()?;
        if let Some(ck) = self.ck {
            model.backward_checkpointed(ck, &mut out)?;
        }
        Ok(Some(out))
    }
}

struct MiniBatch {
    ids: Tensor,
    pos: Tensor,
    keep: Tensor,
    targets: Tensor,
    mask: Tensor,
    p: usize,
    c: usize,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::embedded;
    use crate::core::train::config::{TOY_DATA, TOY_REWARD};
    use crate::core::train::data::{ChatTemplate, parse_jsonl};

    fn toy(cfg: TrainConfig) -> Trainer {
        let (m, tok) = embedded::tiny_qwen3(&Device::Cpu).unwrap();
        let data = parse_jsonl(TOY_DATA, "toy", ChatTemplate::None).unwrap();
        let rewards = Rewards::new(&[TOY_REWARD.parse().unwrap()]).unwrap();
        Trainer::new(cfg, m, tok, data, rewards).unwrap()
    }

    /// The streamed hash of a model folder equals the hash of its files read whole, and
    /// changes when a weight file changes.
    #[test]
    fn base_hash_dir_streams_the_same_hash() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/tiny-qwen3");
        let dir = tempfile::tempdir().unwrap();
        let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
        std::fs::write(dir.path().join("model.safetensors"), &bytes).unwrap();
        std::fs::write(dir.path().join("config.json"), b"{}").unwrap();
        let whole = base_hash_files(&[("model.safetensors".into(), bytes.clone())]);
        assert_eq!(base_hash_dir(dir.path()).unwrap(), whole);
        let mut other = bytes;
        *other.last_mut().unwrap() ^= 1;
        std::fs::write(dir.path().join("model.safetensors"), &other).unwrap();
        assert_ne!(base_hash_dir(dir.path()).unwrap(), whole);
    }

    /// d(GSPO loss)/d(LoRA factors) by autograd equals central finite differences of the same
    /// loss through the whole path (NF4 base, chunked log-probs, off-policy ratio, KL), for each
    /// importance-sampling level.
    #[test]
    fn gspo_loss_gradient_matches_finite_differences() {
        for level in [IsLevel::Sequence, IsLevel::Token, IsLevel::SequenceToken] {
            let mut cfg = TrainConfig::toy();
            cfg.reward = vec![TOY_REWARD.parse().unwrap()];
            cfg.beta = 0.05;
            cfg.epsilon = 0.2;
            cfg.epsilon_high = Some(0.28);
            cfg.importance_sampling_level = level;
            cfg.max_completion_length = 6;
            cfg.num_generations = 4;
            cfg.per_device_train_batch_size = 8;
            let mut t = toy(cfg);
            // non-zero B so that every factor has a gradient, then a rollout
            {
                use rand::{Rng, SeedableRng};
                let mut rng = rand::rngs::StdRng::seed_from_u64(7);
                for (n, v) in lora::trainable(&t.model) {
                    if n.contains("lora_B") {
                        let d: Vec<f32> = (0..v.elem_count())
                            .map(|_| rng.gen_range(-0.2f32..0.2))
                            .collect();
                        v.set(&Tensor::from_vec(d, v.dims(), &Device::Cpu).unwrap())
                            .unwrap();
                    }
                }
            }
            let mut ro = t.rollout().unwrap();
            // make the batch off-policy: old log-probs from a shifted policy
            let vars = lora::trainable(&t.model);
            let orig: Vec<Tensor> = vars
                .iter()
                .map(|(_, v)| v.as_tensor().copy().unwrap())
                .collect();
            for (_, v) in &vars {
                v.set(&(v.as_tensor() * 1.05).unwrap()).unwrap();
            }
            let all: Vec<usize> = (0..ro.completions.len()).collect();
            ro.old_logp = Some(t.fixed_logp(&ro, &all, Role::Policy).unwrap());
            for ((_, v), o) in vars.iter().zip(&orig) {
                v.set(o).unwrap();
            }
            ro.ref_logp = Some(t.fixed_logp(&ro, &all, Role::Reference).unwrap());
            let rows = all;
            let lp = t.loss_params();
            let loss_at = |t: &Trainer| -> (Tensor, f64) {
                let mb = t.batch(&ro, &rows).unwrap();
                let (logp, _) = t.logp(&mb, Role::Policy).unwrap();
                let dev = Device::Cpu;
                let old =
                    Trainer::rows_tensor(ro.old_logp.as_ref().unwrap(), &rows, mb.c, &dev).unwrap();
                let rf =
                    Trainer::rows_tensor(ro.ref_logp.as_ref().unwrap(), &rows, mb.c, &dev).unwrap();
                let adv = Tensor::from_vec(ro.advantages.clone(), rows.len(), &dev).unwrap();
                let out = gspo::loss(&logp, &old, Some(&rf), &adv, &mb.mask, &lp).unwrap();
                let v = out.loss.to_scalar::<f32>().unwrap() as f64;
                (out.loss, v)
            };
            let (l, _) = loss_at(&t);
            let grads = l.backward().unwrap();
            let mut worst = 0f64;
            for (name, v) in vars.iter().filter(|(n, _)| n.contains("layers.1")) {
                let g = grads
                    .get(v.as_tensor())
                    .unwrap_or_else(|| panic!("{name}: no gradient"));
                let gn = g
                    .sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    .sqrt();
                assert!(gn > 0.0, "{name}: zero gradient");
                let u = (g / gn as f64).unwrap();
                let want = gn as f64; // derivative along the unit gradient
                let o = v.as_tensor().copy().unwrap();
                let eps = 1e-2;
                v.set(&(&o + (&u * eps).unwrap()).unwrap()).unwrap();
                let (_, lp_) = loss_at(&t);
                v.set(&(&o - (&u * eps).unwrap()).unwrap()).unwrap();
                let (_, lm_) = loss_at(&t);
                v.set(&o).unwrap();
                let fd = (lp_ - lm_) / (2.0 * eps);
                let rel = (fd - want).abs() / want.abs().max(1e-6);
                worst = worst.max(rel);
                assert!(
                    rel < 3e-2,
                    "{level:?} {name}: autograd {want} vs finite differences {fd}"
                );
            }
            assert!(worst.is_finite());
        }
    }
}

#[cfg(test)]
mod checkpointing_tests {
    use super::*;
    use crate::core::model::embedded;
    use crate::core::train::config::{TOY_DATA, TOY_REWARD};
    use crate::core::train::data::{ChatTemplate, parse_jsonl};

    struct Losses(Vec<f64>);

    impl Observer for Losses {
        fn step(&mut self, m: &StepMetrics, _t: &Trainer) -> Result<()> {
            self.0.push(m.loss);
            Ok(())
        }
    }

    /// π_old from the sampler (`Generation::policy_logprobs`) is the training forward's
    /// log-prob of the same tokens under the same policy, also with EOS suppressed while
    /// sampling (`min_completion_length`) and a temperature.
    #[test]
    fn sampler_policy_logprobs_equal_the_training_forward() {
        let mut cfg = TrainConfig::toy();
        cfg.min_completion_length = 4;
        cfg.temperature = 0.7;
        let (m, tok) = embedded::tiny_qwen3(&Device::Cpu).unwrap();
        let data = parse_jsonl(TOY_DATA, "toy", ChatTemplate::None).unwrap();
        let rewards = Rewards::new(&[TOY_REWARD.parse().unwrap()]).unwrap();
        let mut t = Trainer::new(cfg, m, tok, data, rewards).unwrap();
        // a non-zero adapter, so the policy differs from the base
        let mut k = 0f32;
        for (n, v) in lora::trainable(&t.model) {
            if n.contains("lora_B") {
                k += 1.0;
                v.set(
                    &v.as_tensor()
                        .ones_like()
                        .unwrap()
                        .affine(0.05, k as f64 * 1e-3)
                        .unwrap(),
                )
                .unwrap();
            }
        }
        let ro = t.rollout().unwrap();
        let all: Vec<usize> = (0..ro.completions.len()).collect();
        let fwd = t.fixed_logp(&ro, &all, Role::Policy).unwrap();
        let mut worst = 0f32;
        for (a, b) in fwd.iter().zip(&ro.gen_logp) {
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(b) {
                worst = worst.max((x - y).abs());
            }
        }
        assert!(
            worst < 1e-4,
            "sampler vs training log-probs differ by {worst}"
        );
    }

    fn toy_run(ckpt: bool, dropout: f64) -> (Vec<f64>, Vec<Vec<f32>>) {
        let mut cfg = TrainConfig::toy();
        cfg.max_steps = 4;
        cfg.steps_per_generation = Some(2);
        cfg.per_device_train_batch_size = 8;
        cfg.lora_dropout = dropout;
        cfg.gradient_checkpointing = ckpt;
        let (m, tok) = embedded::tiny_qwen3(&Device::Cpu).unwrap();
        let data = parse_jsonl(TOY_DATA, "toy", ChatTemplate::None).unwrap();
        let rewards = Rewards::new(&[TOY_REWARD.parse().unwrap()]).unwrap();
        let mut t = Trainer::new(cfg, m, tok, data, rewards).unwrap();
        let mut obs = Losses(Vec::new());
        t.run(&mut obs).unwrap();
        let w: Vec<Vec<f32>> = lora::trainable(&t.model)
            .iter()
            .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
            .collect();
        (obs.0, w)
    }

    fn assert_close(a: &(Vec<f64>, Vec<Vec<f32>>), b: &(Vec<f64>, Vec<Vec<f32>>)) {
        assert_eq!(a.0.len(), 4);
        for (x, y) in a.0.iter().zip(&b.0) {
            assert!((x - y).abs() <= 1e-5 * x.abs().max(1e-3), "loss {x} vs {y}");
        }
        let mut moved = 0f32;
        for (p, q) in a.1.iter().zip(&b.1) {
            for (x, y) in p.iter().zip(q) {
                assert!(
                    (x - y).abs() <= 1e-4 * x.abs().max(1e-2),
                    "weight {x} vs {y}"
                );
                moved = moved.max(x.abs());
            }
        }
        assert!(moved > 0.0, "training moved no weight");
    }

    /// The same run with and without gradient checkpointing: same losses and LoRA weights up to
    /// rounding (off-policy minibatches and LoRA dropout included).
    #[test]
    fn gradient_checkpointing_trains_the_same_weights() {
        assert_close(&toy_run(false, 0.1), &toy_run(true, 0.1));
    }

    /// Without dropout, minibatches run as two halves on two threads (with or without
    /// checkpointing): the same training as one piece (a one-thread pool never splits), and
    /// deterministic.
    #[test]
    fn split_minibatches_train_the_same_weights_deterministically() {
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let two = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        for ckpt in [false, true] {
            let whole = one.install(|| toy_run(ckpt, 0.0));
            let split = two.install(|| toy_run(ckpt, 0.0));
            assert_close(&split, &whole);
            let again = two.install(|| toy_run(ckpt, 0.0));
            assert_eq!(split.0, again.0, "losses differ between identical runs");
            assert_eq!(split.1, again.1, "weights differ between identical runs");
        }
    }
}
