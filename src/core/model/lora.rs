//! LoRA adapters: configuration, PEFT's initialisation, and PEFT adapter folders
//! (`adapter_config.json` + `adapter_model.safetensors`, tensor names such as
//! `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Tensor, Var};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::linear::Lora;
use super::{CausalLm, ModelError};

/// The linear layers gym can adapt, by their module name.
pub const ALL_TARGETS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// Mixtral's expert projections (gate, down, up), which "all-linear" adapts as well; not in
/// the default target list, which stays the seven names above.
pub const EXPERT_TARGETS: [&str; 3] = ["w1", "w2", "w3"];

/// Qwen3-Next's DeltaNet projections, which "all-linear" adapts as well.
pub const DELTA_TARGETS: [&str; 3] = ["in_proj_qkvz", "in_proj_ba", "out_proj"];

/// `target_modules` of PEFT: a list of module names, or the string "all-linear".
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Targets {
    List(Vec<String>),
    Special(String),
}

impl Targets {
    pub fn matches(&self, module: &str) -> bool {
        let leaf = module.rsplit('.').next().unwrap_or(module);
        match self {
            Targets::List(v) => v.iter().any(|t| t == leaf || t == module),
            Targets::Special(s) => {
                s == "all-linear"
                    && (ALL_TARGETS.contains(&leaf)
                        || EXPERT_TARGETS.contains(&leaf)
                        || DELTA_TARGETS.contains(&leaf))
            }
        }
    }
}

/// LoRA hyper-parameters, serialised as PEFT's `adapter_config.json` (fields PEFT needs to load
/// the adapter; unknown fields are ignored on reading).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoraConfig {
    pub r: usize,
    pub lora_alpha: f64,
    #[serde(default)]
    pub lora_dropout: f64,
    #[serde(default)]
    pub use_rslora: bool,
    pub target_modules: Targets,
    #[serde(default = "peft_type")]
    pub peft_type: String,
    #[serde(default = "task_type")]
    pub task_type: Option<String>,
    #[serde(default = "bias_none")]
    pub bias: String,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    #[serde(default = "yes")]
    pub inference_mode: bool,
    #[serde(default)]
    pub use_dora: bool,
    /// Per-module ranks/alphas (PEFT); gym supports only the uniform form (empty maps).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub rank_pattern: serde_json::Map<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub alpha_pattern: serde_json::Map<String, serde_json::Value>,
}

fn peft_type() -> String {
    "LORA".into()
}
fn task_type() -> Option<String> {
    Some("CAUSAL_LM".into())
}
fn bias_none() -> String {
    "none".into()
}
fn yes() -> bool {
    true
}

impl LoraConfig {
    /// Rank `r`, `alpha`, all linear layers of attention and MLP (experts included).
    pub fn new(r: usize, alpha: f64) -> Self {
        LoraConfig {
            r,
            lora_alpha: alpha,
            lora_dropout: 0.0,
            use_rslora: false,
            target_modules: Targets::List(ALL_TARGETS.iter().map(|s| s.to_string()).collect()),
            peft_type: peft_type(),
            task_type: task_type(),
            bias: bias_none(),
            fan_in_fan_out: false,
            base_model_name_or_path: None,
            inference_mode: true,
            use_dora: false,
            rank_pattern: serde_json::Map::new(),
            alpha_pattern: serde_json::Map::new(),
        }
    }

    /// alpha/r, or alpha/√r with rsLoRA (as PEFT).
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.lora_alpha / (self.r as f64).sqrt()
        } else {
            self.lora_alpha / self.r as f64
        }
    }

    fn check(&self, path: &Path) -> Result<(), ModelError> {
        let bad = |reason: String| ModelError::Adapter {
            path: path.to_path_buf(),
            reason,
        };
        if self.peft_type != "LORA" {
            return Err(bad(format!(
                "peft_type {:?} (LORA expected)",
                self.peft_type
            )));
        }
        if self.r == 0 {
            return Err(bad("r = 0".into()));
        }
        if self.bias != "none" {
            return Err(bad(format!("bias {:?} is not supported", self.bias)));
        }
        if self.use_dora {
            return Err(bad("DoRA adapters are not supported".into()));
        }
        if !self.rank_pattern.is_empty() || !self.alpha_pattern.is_empty() {
            return Err(bad(
                "per-module rank_pattern/alpha_pattern are not supported".into(),
            ));
        }
        if self.fan_in_fan_out {
            return Err(bad("fan_in_fan_out is not supported".into()));
        }
        Ok(())
    }
}

/// PEFT's name of a LoRA factor: `base_model.model.<module>.lora_A.weight`.
pub fn peft_name(module: &str, factor: char) -> String {
    format!("base_model.model.{module}.lora_{factor}.weight")
}

/// Adds fresh adapters to every targeted linear layer: A ~ U(−1/√in, 1/√in) (PEFT's
/// `kaiming_uniform_(a=√5)`), B = 0, from `seed`. Returns the number of trainable parameters.
pub fn attach(model: &mut CausalLm, cfg: &LoraConfig, seed: u64) -> Result<usize, ModelError> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dev = model.device().clone();
    let mut n = 0;
    for (name, lin) in model.linears_mut() {
        if !cfg.target_modules.matches(&name) {
            continue;
        }
        let (out, inp) = lin.base.dims();
        let bound = 1.0 / (inp as f64).sqrt();
        let a: Vec<f32> = (0..cfg.r * inp)
            .map(|_| rng.gen_range(-bound..bound) as f32)
            .collect();
        let a = Var::from_tensor(&Tensor::from_vec(a, (cfg.r, inp), &dev)?)?;
        let b = Var::zeros((out, cfg.r), DType::F32, &dev)?;
        n += cfg.r * (inp + out);
        lin.lora = Some(Lora::new(a, b, cfg.scale(), cfg.lora_dropout));
    }
    Ok(n)
}

/// The trainable factors with their PEFT names, in a stable order (layer, module, A then B).
pub fn trainable(model: &CausalLm) -> Vec<(String, Var)> {
    let mut out = Vec::new();
    for (name, lin) in model.linears() {
        if let Some(l) = &lin.lora {
            out.push((peft_name(&name, 'A'), l.a.clone()));
            out.push((peft_name(&name, 'B'), l.b.clone()));
        }
    }
    out
}

/// Writes a PEFT adapter folder: `adapter_config.json` and `adapter_model.safetensors`.
pub fn save_peft(model: &CausalLm, cfg: &LoraConfig, dir: &Path) -> Result<(), ModelError> {
    let io = |source, path: &Path| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(e, dir))?;
    let tensors: HashMap<String, Tensor> = trainable(model)
        .into_iter()
        .map(|(n, v)| (n, v.as_tensor().detach()))
        .collect();
    let path = dir.join("adapter_model.safetensors");
    candle_core::safetensors::save(&tensors, &path)?;
    let text = serde_json::to_string_pretty(cfg).map_err(|e| ModelError::Adapter {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    let path = dir.join("adapter_config.json");
    std::fs::write(&path, text + "\n").map_err(|e| io(e, &path))?;
    Ok(())
}

/// Reads a PEFT adapter folder and attaches its factors to the model (replacing any adapter).
/// Every targeted layer must have both factors with the right shapes, and every tensor of the
/// file must belong to a layer of the model.
pub fn load_peft(model: &mut CausalLm, dir: &Path) -> Result<LoraConfig, ModelError> {
    let cpath = dir.join("adapter_config.json");
    let cfg: LoraConfig = super::config::parse(&cpath, &super::read_text(&cpath)?)?;
    cfg.check(&cpath)?;
    let wpath = dir.join("adapter_model.safetensors");
    if !wpath.exists() {
        return Err(ModelError::MissingFile { path: wpath });
    }
    let mut w = super::weights::Weights::load_file_map(&wpath, model.device())?;
    // PEFT writes names without the adapter name ("default"); accept either form.
    for (name, lin) in model.linears_mut() {
        lin.lora = None;
        let (an, bn) = (peft_name(&name, 'A'), peft_name(&name, 'B'));
        let (ad, bd) = (
            an.replace(".weight", ".default.weight"),
            bn.replace(".weight", ".default.weight"),
        );
        let pick = |w: &mut super::weights::Weights, a: &str, b: &str, shape: &[usize]| {
            if w.contains(a) {
                w.take(a, shape).map(Some)
            } else if w.contains(b) {
                w.take(b, shape).map(Some)
            } else {
                Ok(None)
            }
        };
        let (out, inp) = lin.base.dims();
        let a = pick(&mut w, &an, &ad, &[cfg.r, inp])?;
        let b = pick(&mut w, &bn, &bd, &[out, cfg.r])?;
        match (a, b) {
            (Some(a), Some(b)) => {
                lin.lora = Some(Lora::new(
                    Var::from_tensor(&a)?,
                    Var::from_tensor(&b)?,
                    cfg.scale(),
                    cfg.lora_dropout,
                ));
            }
            (None, None) => {}
            _ => {
                return Err(ModelError::Adapter {
                    path: wpath.clone(),
                    reason: format!("{name} has only one of lora_A and lora_B"),
                });
            }
        }
    }
    if let Some(extra) = w.names().next() {
        return Err(ModelError::Adapter {
            path: wpath,
            reason: format!("tensor {extra} does not belong to any linear layer of the model"),
        });
    }
    Ok(cfg)
}

/// Merges the model's adapters into its base and writes a model folder transformers loads:
/// `model.safetensors` (f32) plus config.json and the tokenizer files copied from `src`.
pub fn export_merged(model: &CausalLm, src: &Path, out: &Path) -> Result<(), ModelError> {
    let io = |source, path: &Path| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(out).map_err(|e| io(e, out))?;
    let sd = model.state_dict(true)?;
    candle_core::safetensors::save(&sd, out.join("model.safetensors"))?;
    for f in [
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        let from = src.join(f);
        if from.exists() {
            std::fs::copy(&from, out.join(f)).map_err(|e| io(e, &from))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_targets_and_peft_config_fields() {
        let mut c = LoraConfig::new(16, 32.0);
        assert_eq!(c.scale(), 2.0);
        c.use_rslora = true;
        assert_eq!(c.scale(), 8.0); // 32 / √16
        assert!(
            c.target_modules
                .matches("model.layers.3.mlp.experts.7.down_proj")
        );
        assert!(!c.target_modules.matches("model.layers.3.mlp.gate"));
        let all = Targets::Special("all-linear".into());
        assert!(all.matches("model.layers.0.self_attn.o_proj"));
        let only_q = Targets::List(vec!["q_proj".into()]);
        assert!(!only_q.matches("model.layers.0.self_attn.k_proj"));
        // PEFT's own file (many more fields) parses; DoRA is refused
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/tiny-qwen3-lora/adapter_config.json"
        ))
        .unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let c: LoraConfig = serde_json::from_value(v.clone()).unwrap();
        assert_eq!((c.r, c.lora_alpha), (4, 8.0));
        assert!(c.check(Path::new("x")).is_ok());
        v["use_dora"] = true.into();
        let c: LoraConfig = serde_json::from_value(v).unwrap();
        assert!(c.check(Path::new("x")).is_err());
    }
}
