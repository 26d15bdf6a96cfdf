//! Training settings. Key names follow TRL's `GRPOConfig` and the seed's `GSPOConfig`, so a
//! TOML file reads like the Python people already write:
//!
//! ```toml
//! importance_sampling_level = "sequence"
//! beta = 0.1
//! num_generations = 8          # alias: group_size
//! learning_rate = 1e-5
//! lora_rank = 16
//! [[reward]]
//! kind = "exact"
//! weight = 1.0
//! ```
//!
//! Precedence, lowest first: defaults, the file, the seed's environment variables
//! (`MODEL_NAME`, `USE_4BIT`, `IMPORTANCE_SAMPLING_LEVEL`, `GSPO_BETA`), command-line flags
//! (applied by the command layer). [`TrainConfig::validate`] checks the result as a whole.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::gspo::{IsLevel, LossType, ScaleRewards};
use super::scoring::ScoreSpec;
use crate::core::error::{Classify, ErrorClass};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("environment variable {name}={value:?}: {reason}")]
    Env {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error("invalid setting {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

impl Classify for ConfigError {
    fn class(&self) -> ErrorClass {
        match self {
            ConfigError::Io { .. } => ErrorClass::Io,
            ConfigError::Env { .. } | ConfigError::Invalid { .. } => ErrorClass::Usage,
            ConfigError::Parse { .. } => ErrorClass::Malformed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    Constant,
    Linear,
    Cosine,
}

/// Every setting of a training run. Unknown keys in a file are errors (a typo must not be
/// silently ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Hugging Face model folder; None: the bundled tiny Qwen3.
    #[serde(alias = "model_name")]
    pub model: Option<PathBuf>,
    /// Prompt JSONL; None: the bundled toy task.
    #[serde(alias = "dataset")]
    pub data: Option<PathBuf>,
    /// Hub datasets: the split to train on (TRL's name).
    pub dataset_train_split: String,
    /// Hub datasets: the configuration (first folder) when the split exists in several.
    pub dataset_config: Option<String>,
    /// The data column holding the prompt (a string) or the messages; None: `prompt`/`messages`.
    pub prompt_column: Option<String>,
    /// The data column holding the reference answer; None: `answer`.
    pub answer_column: Option<String>,
    /// Pass `enable_thinking=true` to the model's chat template for `messages` rows (Qwen3).
    pub enable_thinking: bool,
    pub seed: u64,

    // --- GSPO / GRPO (TRL names)
    pub importance_sampling_level: IsLevel,
    pub loss_type: LossType,
    pub scale_rewards: ScaleRewards,
    pub beta: f64,
    #[serde(alias = "group_size")]
    pub num_generations: usize,
    pub epsilon: f64,
    /// None: same as `epsilon`.
    pub epsilon_high: Option<f64>,
    pub num_iterations: usize,
    /// None: same as `gradient_accumulation_steps`.
    pub steps_per_generation: Option<usize>,
    pub per_device_train_batch_size: usize,
    pub gradient_accumulation_steps: usize,
    pub mask_truncated_completions: bool,
    /// Recompute each layer's forward during the backward instead of keeping its activations
    /// (TRL's default is true; gym's false: faster, more memory).
    pub gradient_checkpointing: bool,

    // --- sampling
    pub max_prompt_length: Option<usize>,
    pub max_completion_length: usize,
    /// No end-of-sequence token before this many tokens (transformers' `min_new_tokens`,
    /// which TRL takes through `generation_kwargs`).
    pub min_completion_length: usize,
    pub temperature: f64,
    pub top_p: f64,
    pub top_k: usize,

    // --- optimiser
    pub learning_rate: f64,
    pub lr_scheduler_type: Schedule,
    pub warmup_steps: usize,
    pub warmup_ratio: f64,
    pub weight_decay: f64,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_epsilon: f64,
    pub max_grad_norm: f64,
    pub max_steps: usize,

    // --- QLoRA
    pub use_4bit: bool,
    pub lora_rank: usize,
    pub lora_alpha: f64,
    pub lora_dropout: f64,
    /// "all-linear" or a list of module names.
    pub lora_target_modules: Vec<String>,

    // --- outputs
    /// Steps between signed deltas of the LoRA update (the seed's aggregation interval).
    pub aggregate_interval: usize,
    /// Steps between resumable states and PEFT checkpoints.
    pub save_steps: usize,
    /// Rows of logits computed at a time in the LM head (memory bound of the log-probs).
    pub logit_chunk: usize,

    /// Scorer, combined by weight.
    pub reward: Vec<ScoreSpec>,

    // --- norm bound and differential privacy (docs/validation.md)
    /// L2 bound C on each delta's update (factors minus the round's start), applied before
    /// signing; validators refuse larger updates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_delta_norm: Option<f64>,
    /// Clip norm C of differential privacy (the bound is the smaller of this and
    /// `max_delta_norm`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dp_clip: Option<f64>,
    /// Noise multiplier z: Gaussian noise σ = z·C on every coordinate of the clipped update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dp_noise_multiplier: Option<f64>,
    /// δ of the (ε, δ) the accountant reports (default 1e-5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dp_delta: Option<f64>,
    /// ε budget: a delta whose release would take ε past it is not written; training stops.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dp_epsilon: Option<f64>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            model: None,
            data: None,
            dataset_train_split: "train".into(),
            dataset_config: None,
            prompt_column: None,
            answer_column: None,
            enable_thinking: false,
            seed: 42,
            importance_sampling_level: IsLevel::Sequence,
            loss_type: LossType::Grpo,
            scale_rewards: ScaleRewards::Group,
            beta: 0.1,
            num_generations: 8,
            epsilon: 3e-4,
            epsilon_high: Some(4e-4),
            num_iterations: 1,
            steps_per_generation: None,
            per_device_train_batch_size: 8,
            gradient_accumulation_steps: 1,
            mask_truncated_completions: false,
            gradient_checkpointing: false,
            max_prompt_length: Some(512),
            max_completion_length: 256,
            min_completion_length: 0,
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            learning_rate: 1e-5,
            lr_scheduler_type: Schedule::Linear,
            warmup_steps: 0,
            warmup_ratio: 0.0,
            weight_decay: 0.0,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            max_grad_norm: 1.0,
            max_steps: 100,
            use_4bit: true,
            lora_rank: 16,
            lora_alpha: 32.0,
            lora_dropout: 0.0,
            lora_target_modules: vec!["all-linear".into()],
            aggregate_interval: 50,
            save_steps: 50,
            logit_chunk: 64,
            reward: Vec::new(),
            max_delta_norm: None,
            dp_clip: None,
            dp_noise_multiplier: None,
            dp_delta: None,
            dp_epsilon: None,
        }
    }
}

/// The bundled default task: the tiny model learns to answer in digits.
pub const TOY_DATA: &str = include_str!("../../../testdata/toy/digits.jsonl");
pub const TOY_REWARD: &str = "coverage:[0-9]";

impl TrainConfig {
    /// The settings of the bundled demo (`gym train` with no model and no data): small
    /// batches, short completions and a learning rate at which the tiny random model visibly
    /// learns within a minute on a laptop CPU.
    pub fn toy() -> Self {
        TrainConfig {
            num_generations: 8,
            per_device_train_batch_size: 16,
            max_completion_length: 16,
            learning_rate: 5e-3,
            lr_scheduler_type: Schedule::Constant,
            beta: 0.0,
            max_steps: 40,
            aggregate_interval: 10,
            save_steps: 10,
            lora_rank: 8,
            lora_alpha: 16.0,
            ..TrainConfig::default()
        }
    }

    /// Reads a TOML file on top of `base`: keys present in the file replace `base`'s values.
    pub fn from_toml_file(path: &Path, base: &TrainConfig) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, path, base)
    }

    pub fn from_toml(text: &str, path: &Path, base: &TrainConfig) -> Result<Self, ConfigError> {
        let parse = |reason: String| ConfigError::Parse {
            path: path.to_path_buf(),
            reason,
        };
        let file: toml::Table = toml::from_str(text).map_err(|e| parse(e.to_string()))?;
        // overlay the file on the serialised base, so absent keys keep base's values
        let mut merged = toml::Table::try_from(base).map_err(|e| parse(e.to_string()))?;
        let aliases = [
            ("group_size", "num_generations"),
            ("model_name", "model"),
            ("dataset", "data"),
        ];
        for (k, v) in file {
            let key = aliases
                .iter()
                .find(|(a, _)| *a == k)
                .map(|(_, t)| t.to_string())
                .unwrap_or(k);
            merged.insert(key, v);
        }
        let cfg: TrainConfig = merged
            .try_into()
            .map_err(|e: toml::de::Error| parse(e.to_string().trim_end().replace('\n', " ")))?;
        Ok(cfg)
    }

    /// Applies the seed's environment variables.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = get("MODEL_NAME")
            && !v.is_empty()
        {
            self.model = Some(PathBuf::from(v));
        }
        if let Some(v) = get("USE_4BIT") {
            self.use_4bit = match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => {
                    return Err(ConfigError::Env {
                        name: "USE_4BIT",
                        value: v,
                        reason: "expected true/false/1/0".into(),
                    });
                }
            };
        }
        if let Some(v) = get("IMPORTANCE_SAMPLING_LEVEL") {
            self.importance_sampling_level = serde_json::from_value(serde_json::Value::String(
                v.to_ascii_lowercase(),
            ))
            .map_err(|_| ConfigError::Env {
                name: "IMPORTANCE_SAMPLING_LEVEL",
                value: v.clone(),
                reason: "expected token, sequence or sequence_token".into(),
            })?;
        }
        if let Some(v) = get("GSPO_BETA") {
            self.beta = v.trim().parse().map_err(|_| ConfigError::Env {
                name: "GSPO_BETA",
                value: v.clone(),
                reason: "expected a number".into(),
            })?;
        }
        Ok(())
    }

    pub fn epsilon_high(&self) -> f64 {
        self.epsilon_high.unwrap_or(self.epsilon)
    }

    pub fn steps_per_generation(&self) -> usize {
        self.steps_per_generation
            .unwrap_or(self.gradient_accumulation_steps)
    }

    /// Completions generated per rollout batch.
    pub fn generation_batch(&self) -> usize {
        self.per_device_train_batch_size * self.steps_per_generation()
    }

    /// Distinct prompts per rollout batch.
    pub fn prompts_per_generation(&self) -> usize {
        self.generation_batch() / self.num_generations
    }

    /// Optimiser steps taken on each rollout batch.
    pub fn steps_per_rollout(&self) -> usize {
        self.steps_per_generation() * self.num_iterations / self.gradient_accumulation_steps
    }

    pub fn warmup(&self) -> usize {
        if self.warmup_steps > 0 {
            self.warmup_steps
        } else {
            (self.warmup_ratio * self.max_steps as f64).ceil() as usize
        }
    }

    /// Takes the model's sampling defaults (`generation_config.json`: temperature, top_p,
    /// top_k) into these settings; called on the built-in defaults before the settings file,
    /// the environment and the flags are layered on top.
    pub fn apply_generation_config(&mut self, g: &crate::core::model::config::GenerationConfig) {
        let (temperature, top_p, top_k) = g.sampling();
        if let Some(t) = temperature {
            self.temperature = t;
        }
        if let Some(p) = top_p {
            self.top_p = p;
        }
        if let Some(k) = top_k {
            self.top_k = k;
        }
    }

    /// The group, batch, accumulation and iteration sizes: non-zero, and the rollout batch
    /// splits into whole optimiser steps and whole groups.
    fn validate_batch_shape(&self) -> Result<(), ConfigError> {
        let bad = |key: &'static str, reason: String| Err(ConfigError::Invalid { key, reason });
        if self.num_generations < 2 {
            return bad(
                "num_generations",
                format!(
                    "{} (at least 2: advantages compare completions within a group)",
                    self.num_generations
                ),
            );
        }
        if self.per_device_train_batch_size == 0 {
            return bad("per_device_train_batch_size", "0".into());
        }
        if self.gradient_accumulation_steps == 0 {
            return bad("gradient_accumulation_steps", "0".into());
        }
        if self.num_iterations == 0 {
            return bad("num_iterations", "0".into());
        }
        let steps = self.steps_per_generation();
        if steps == 0 || !steps.is_multiple_of(self.gradient_accumulation_steps) {
            return bad(
                "steps_per_generation",
                format!(
                    "{steps} must be a positive multiple of gradient_accumulation_steps ({})",
                    self.gradient_accumulation_steps
                ),
            );
        }
        if !self.generation_batch().is_multiple_of(self.num_generations) {
            return bad(
                "num_generations",
                format!(
                    "the rollout batch (per_device_train_batch_size {} × steps_per_generation {steps} = {}) must be divisible by num_generations {}",
                    self.per_device_train_batch_size,
                    self.generation_batch(),
                    self.num_generations
                ),
            );
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &'static str, reason: String| Err(ConfigError::Invalid { key, reason });
        self.validate_batch_shape()?;
        for (key, v) in [
            ("epsilon", self.epsilon),
            ("epsilon_high", self.epsilon_high()),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(key, format!("{v} (must be ≥ 0)"));
            }
        }
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return bad("beta", format!("{} (must be ≥ 0)", self.beta));
        }
        if self.min_completion_length > self.max_completion_length {
            return bad(
                "min_completion_length",
                format!(
                    "{} exceeds max_completion_length {}",
                    self.min_completion_length, self.max_completion_length
                ),
            );
        }
        if self.max_completion_length == 0 {
            return bad("max_completion_length", "0".into());
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return bad(
                "temperature",
                format!("{} (must be > 0 for sampling)", self.temperature),
            );
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p", format!("{} (must be in (0, 1])", self.top_p));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad("learning_rate", format!("{}", self.learning_rate));
        }
        if !(0.0..1.0).contains(&self.adam_beta1) || !(0.0..1.0).contains(&self.adam_beta2) {
            return bad(
                "adam_beta1/adam_beta2",
                format!(
                    "{}, {} (must be in [0, 1))",
                    self.adam_beta1, self.adam_beta2
                ),
            );
        }
        if self.max_steps == 0 {
            return bad("max_steps", "0".into());
        }
        if self.lora_rank == 0 {
            return bad("lora_rank", "0".into());
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return bad(
                "lora_dropout",
                format!("{} (must be in [0, 1))", self.lora_dropout),
            );
        }
        if self.lora_target_modules.is_empty() {
            return bad("lora_target_modules", "empty".into());
        }
        if self.aggregate_interval == 0 {
            return bad("aggregate_interval", "0".into());
        }
        if self.save_steps == 0 {
            return bad("save_steps", "0".into());
        }
        if self.logit_chunk == 0 {
            return bad("logit_chunk", "0".into());
        }
        if !(0.0..=1.0).contains(&self.warmup_ratio) {
            return bad("warmup_ratio", format!("{}", self.warmup_ratio));
        }
        self.validate_privacy()?;
        if self.reward.is_empty() {
            return bad(
                "reward",
                "no reward: give --reward (e.g. exact) or [[reward]] in the config".into(),
            );
        }
        Ok(())
    }

    /// The most tokens (prompt + completion, as `compute.tokens` counts them) one delta's
    /// `aggregate_interval` steps can train on: steps × rows per step × the longest prompt
    /// and completion. None without a `max_prompt_length`.
    pub fn max_tokens_per_delta(&self) -> Option<u64> {
        let p = self.max_prompt_length?;
        let rows = self.per_device_train_batch_size * self.gradient_accumulation_steps;
        Some((self.aggregate_interval * rows * (p + self.max_completion_length)) as u64)
    }

    /// The clip norm C in effect (the smaller of `max_delta_norm` and `dp_clip`), if any.
    pub fn clip_norm(&self) -> Option<f64> {
        match (self.max_delta_norm, self.dp_clip) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn validate_privacy(&self) -> Result<(), ConfigError> {
        let bad = |key: &'static str, reason: String| Err(ConfigError::Invalid { key, reason });
        for (key, v) in [
            ("max_delta_norm", self.max_delta_norm),
            ("dp_clip", self.dp_clip),
            ("dp_epsilon", self.dp_epsilon),
        ] {
            if let Some(x) = v
                && !(x.is_finite() && x > 0.0)
            {
                return bad(key, format!("{x} (must be a positive number)"));
            }
        }
        if let Some(z) = self.dp_noise_multiplier {
            if !(z.is_finite() && z >= 0.0) {
                return bad("dp_noise_multiplier", format!("{z} (must be ≥ 0)"));
            }
            if self.dp_clip.is_none() {
                return bad(
                    "dp_noise_multiplier",
                    "needs dp_clip (the noise is σ = z·dp_clip)".into(),
                );
            }
        }
        if let Some(d) = self.dp_delta
            && !(d > 0.0 && d < 1.0)
        {
            return bad("dp_delta", format!("{d} (must be in (0, 1))"));
        }
        if self.dp_epsilon.is_some() && self.dp_noise_multiplier.unwrap_or(0.0) <= 0.0 {
            return bad(
                "dp_epsilon",
                "a budget needs dp_noise_multiplier > 0 (without noise ε is infinite)".into(),
            );
        }
        Ok(())
    }

    /// The settings that change results, for delta metadata and for refusing a `--resume`
    /// with different settings (paths and output cadence excluded).
    pub fn fingerprint(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut v = serde_json::to_value(self).expect("config serialises");
        let m = v.as_object_mut().expect("object");
        m.remove("save_steps");
        m.remove("max_steps");
        m.remove("aggregate_interval");
        m.clone()
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_overrides_defaults_and_aliases_work() {
        let text = "group_size = 4\nbeta = 0.0\nimportance_sampling_level = \"token\"\nlearning_rate = 5e-6\n[[reward]]\nkind = \"exact\"\nweight = 1.0\n";
        let c = TrainConfig::from_toml(text, Path::new("c.toml"), &TrainConfig::default()).unwrap();
        assert_eq!(c.num_generations, 4);
        assert_eq!(c.beta, 0.0);
        assert_eq!(c.importance_sampling_level, IsLevel::Token);
        assert_eq!(c.learning_rate, 5e-6);
        assert_eq!(c.lora_rank, 16); // default kept
        assert_eq!(c.reward.len(), 1);
    }

    #[test]
    fn unknown_keys_and_bad_types_name_the_file() {
        let e = TrainConfig::from_toml(
            "lerning_rate = 1.0\n",
            Path::new("c.toml"),
            &TrainConfig::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("c.toml") && e.contains("lerning_rate"), "{e}");
        let e = TrainConfig::from_toml(
            "beta = \"x\"\n",
            Path::new("c.toml"),
            &TrainConfig::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("beta"), "{e}");
    }

    #[test]
    fn seed_environment_variables() {
        let mut c = TrainConfig::default();
        let env = |k: &str| match k {
            "MODEL_NAME" => Some("/m".to_string()),
            "USE_4BIT" => Some("false".to_string()),
            "IMPORTANCE_SAMPLING_LEVEL" => Some("token".to_string()),
            "GSPO_BETA" => Some("0.04".to_string()),
            _ => None,
        };
        c.apply_env(env).unwrap();
        assert_eq!(c.model.as_deref(), Some(Path::new("/m")));
        assert!(!c.use_4bit);
        assert_eq!(c.importance_sampling_level, IsLevel::Token);
        assert_eq!(c.beta, 0.04);
        let e = c
            .apply_env(|k| (k == "GSPO_BETA").then(|| "much".to_string()))
            .unwrap_err();
        assert!(e.to_string().contains("GSPO_BETA"));
    }

    #[test]
    fn validation_names_the_key() {
        let mut c = TrainConfig::toy();
        c.reward = vec!["exact".parse().unwrap()];
        c.validate().unwrap();
        c.per_device_train_batch_size = 7;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("num_generations"), "{e}");
        let mut c = TrainConfig::toy();
        assert!(c.validate().unwrap_err().to_string().contains("reward"));
        c.reward = vec!["exact".parse().unwrap()];
        c.temperature = 0.0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("temperature")
        );
    }

    #[test]
    fn generation_config_sampling_defaults_apply_unless_greedy() {
        use crate::core::model::config::GenerationConfig;
        let g: GenerationConfig = serde_json::from_str(
            r#"{"do_sample": true, "eos_token_id": [151645, 151643], "pad_token_id": 151643,
                "temperature": 0.6, "top_k": 20, "top_p": 0.95}"#,
        )
        .unwrap();
        let mut c = TrainConfig::default();
        c.apply_generation_config(&g);
        assert_eq!((c.temperature, c.top_p, c.top_k), (0.6, 0.95, 20));
        let greedy = GenerationConfig {
            do_sample: Some(false),
            ..g
        };
        let mut c = TrainConfig::default();
        c.apply_generation_config(&greedy);
        let d = TrainConfig::default();
        assert_eq!(
            (c.temperature, c.top_p, c.top_k),
            (d.temperature, d.top_p, d.top_k)
        );
    }
}
