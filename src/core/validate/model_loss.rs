//! The validator's held-out loss: the mean NLL per reference-answer token (teacher forcing,
//! the validation loss of `gym eval`) of the model with given adapter factors.

use std::path::Path;

use candle_core::{Tensor, Var};

use super::{Member, ValidateError};
use crate::core::delta::VerifyOptions;
use crate::core::model::{Qwen3, lora};
use crate::core::train::data::Example;
use crate::core::train::eval::{self, EvalOptions};
use crate::core::train::trainer::TrainError;

/// A model with an adapter attached whose factors are swapped in before each evaluation.
pub struct ModelLoss<'a> {
    model: Qwen3,
    tok: &'a tokenizers::Tokenizer,
    data: &'a [Example],
    /// The adapter's factors in the members' layout order, with their element counts.
    vars: Vec<(Var, Vec<usize>)>,
    opts: EvalOptions,
    /// Number of evaluations run.
    pub evaluations: usize,
}

impl<'a> ModelLoss<'a> {
    /// Attaches the adapter of the delta `shape_from` (its `adapter_config` and tensor
    /// names) to `model`; `layout` is the order factors will be given in.
    pub fn new(
        mut model: Qwen3,
        tok: &'a tokenizers::Tokenizer,
        data: &'a [Example],
        shape_from: &Path,
        layout: &[(String, Vec<u64>)],
    ) -> Result<Self, ValidateError> {
        if !data.iter().any(|e| e.answer.is_some()) {
            return Err(ValidateError::Usage(
                "the held-out data has no `answer` fields, so there is no loss to compare".into(),
            ));
        }
        eval::load_delta_adapter(&mut model, shape_from, &VerifyOptions::default())?;
        let named: std::collections::HashMap<String, Var> =
            lora::trainable(&model).into_iter().collect();
        let mut vars = Vec::new();
        for (name, shape) in layout {
            let v = named.get(name).ok_or_else(|| ValidateError::Input {
                file: shape_from.display().to_string(),
                reason: format!("tensor {name} is not a LoRA factor of the model"),
            })?;
            vars.push((v.clone(), shape.iter().map(|&d| d as usize).collect()));
        }
        if vars.len() != named.len() {
            return Err(ValidateError::Input {
                file: shape_from.display().to_string(),
                reason: "the delta does not cover every LoRA factor of its adapter".into(),
            });
        }
        Ok(ModelLoss {
            model,
            tok,
            data,
            vars,
            opts: EvalOptions {
                max_new_tokens: 0,
                batch: 16,
                max_prompt_length: Some(512),
            },
            evaluations: 0,
        })
    }

    /// A model whose adapter is already attached (e.g. freshly initialised as a trainer
    /// initialises it); `layout` is the order factors will be given in.
    pub fn attached(
        model: Qwen3,
        tok: &'a tokenizers::Tokenizer,
        data: &'a [Example],
        layout: &[(String, Vec<u64>)],
    ) -> Result<Self, ValidateError> {
        let named: std::collections::HashMap<String, Var> =
            lora::trainable(&model).into_iter().collect();
        let mut vars = Vec::new();
        for (name, shape) in layout {
            let v = named.get(name).ok_or_else(|| ValidateError::Input {
                file: "<the round's deltas>".into(),
                reason: format!("tensor {name} is not a LoRA factor of the model"),
            })?;
            vars.push((v.clone(), shape.iter().map(|&d| d as usize).collect()));
        }
        Ok(ModelLoss {
            model,
            tok,
            data,
            vars,
            opts: EvalOptions {
                max_new_tokens: 0,
                batch: 16,
                max_prompt_length: Some(512),
            },
            evaluations: 0,
        })
    }

    /// The factors the model holds now, in layout order.
    pub fn factors(&self) -> Result<Vec<f32>, TrainError> {
        let mut out = Vec::new();
        for (v, _) in &self.vars {
            out.extend(v.as_tensor().flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }

    /// Builds it from the first member of a round.
    pub fn for_round(
        model: Qwen3,
        tok: &'a tokenizers::Tokenizer,
        data: &'a [Example],
        first: &Member,
    ) -> Result<Self, ValidateError> {
        Self::new(model, tok, data, Path::new(&first.file), &first.layout)
    }

    /// The held-out loss with `factors` (flattened in layout order).
    pub fn loss(&mut self, factors: &[f32]) -> Result<f64, TrainError> {
        let dev = self.model.device().clone();
        let mut k = 0usize;
        for (v, shape) in &self.vars {
            let n: usize = shape.iter().product();
            let part = factors.get(k..k + n).ok_or_else(|| {
                TrainError::Invalid(format!(
                    "{} factors given, the adapter has more",
                    factors.len()
                ))
            })?;
            v.set(&Tensor::from_slice(part, shape.as_slice(), &dev)?)?;
            k += n;
        }
        self.evaluations += 1;
        let (nll, _) = eval::answer_nll(&self.model, self.tok, self.data, &self.opts)?;
        nll.ok_or_else(|| TrainError::Invalid("no answer tokens in the held-out data".into()))
    }
}
