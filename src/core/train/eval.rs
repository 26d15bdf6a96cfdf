//! Evaluation of a policy on a prompt set: greedy completions scored by the run's rewards
//! (mean reward; accuracy = share of exact final-answer matches where answers exist) and the
//! validation negative log-likelihood of the reference answers (teacher forcing, temperature
//! 1, nats per answer token). Validators use it to measure a delta's quality.

use std::path::Path;

use candle_core::{Device, Tensor};
use serde::Serialize;

use super::data::Example;
use super::scoring::{Sample, Scorer};
use super::trainer::{Result, TrainError};
use crate::core::delta::{self, FileSource, VerifyOptions};
use crate::core::model::generate::{self, SamplingParams};
use crate::core::model::{Qwen3, Role, logprob, lora};

#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub max_new_tokens: usize,
    pub batch: usize,
    pub max_prompt_length: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalSample {
    pub line: usize,
    pub prompt: String,
    pub completion: String,
    pub reward: f32,
    pub correct: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub examples: usize,
    pub reward_mean: f64,
    pub reward_std: f64,
    /// Mean of each reward component.
    pub rewards: serde_json::Map<String, serde_json::Value>,
    /// Share of examples with an answer whose greedy completion's final answer matches it.
    pub accuracy: Option<f64>,
    pub answered: usize,
    /// Mean NLL per reference-answer token (nats), and the number of tokens.
    pub nll: Option<f64>,
    pub nll_tokens: usize,
    pub completion_len: f64,
    pub samples: Vec<EvalSample>,
}

fn encode(tok: &tokenizers::Tokenizer, text: &str, max: Option<usize>) -> Result<Vec<u32>> {
    let enc = tok
        .encode(text, false)
        .map_err(|e| TrainError::Tokenizer(format!("encoding {text:?}: {e}")))?;
    let mut ids = enc.get_ids().to_vec();
    if let Some(m) = max
        && ids.len() > m
    {
        ids.drain(..ids.len() - m);
    }
    Ok(ids)
}

/// Runs the evaluation. `exact` scores answers for accuracy (the built-in `exact` reward).
pub fn evaluate(
    model: &Qwen3,
    tok: &tokenizers::Tokenizer,
    data: &[Example],
    scorer: &mut Scorer,
    exact: &mut Scorer,
    o: &EvalOptions,
) -> Result<EvalReport> {
    let (eos, pad) = super::trainer::eos_and_pad(&model.cfg);
    let mut samples = Vec::new();
    let mut comp_tokens = 0usize;
    let mut components: Vec<(String, f64)> = Vec::new();
    for chunk in data.chunks(o.batch.max(1)) {
        let prompts: Vec<Vec<u32>> = chunk
            .iter()
            .map(|e| encode(tok, &e.prompt, o.max_prompt_length))
            .collect::<Result<_>>()?;
        let p = SamplingParams {
            temperature: 0.0,
            max_new_tokens: o.max_new_tokens,
            eos: eos.clone(),
            pad,
            ..SamplingParams::default()
        };
        let g = generate::generate(model, &prompts, &p, Role::Policy)?;
        let texts: Vec<String> = g
            .tokens
            .iter()
            .map(|t| {
                tok.decode(t, true)
                    .map_err(|e| TrainError::Tokenizer(format!("decoding: {e}")))
            })
            .collect::<Result<_>>()?;
        comp_tokens += g.tokens.iter().map(Vec::len).sum::<usize>();
        let ss: Vec<Sample> = chunk
            .iter()
            .zip(&texts)
            .map(|(e, c)| Sample {
                prompt: &e.prompt,
                completion: c,
                answer: e.answer.as_deref(),
                extra: &e.extra,
            })
            .collect();
        let sc = scorer.score(&ss)?;
        for (name, v) in &sc.components {
            let s: f64 = v.iter().map(|&x| x as f64).sum();
            match components.iter_mut().find(|(n, _)| n == name) {
                Some(c) => c.1 += s,
                None => components.push((name.clone(), s)),
            }
        }
        // accuracy only over examples that have an answer
        let with: Vec<usize> = (0..chunk.len())
            .filter(|&i| chunk[i].answer.is_some())
            .collect();
        let mut correct = vec![None; chunk.len()];
        if !with.is_empty() {
            let sub: Vec<Sample> = with
                .iter()
                .map(|&i| Sample {
                    prompt: ss[i].prompt,
                    completion: ss[i].completion,
                    answer: ss[i].answer,
                    extra: ss[i].extra,
                })
                .collect();
            let ex = exact.score(&sub)?;
            for (k, &i) in with.iter().enumerate() {
                correct[i] = Some(ex.total[k] >= 1.0);
            }
        }
        for (i, e) in chunk.iter().enumerate() {
            samples.push(EvalSample {
                line: e.line,
                prompt: e.prompt.clone(),
                completion: texts[i].clone(),
                reward: sc.total[i],
                correct: correct[i],
            });
        }
    }
    let n = samples.len().max(1) as f64;
    let reward_mean = samples.iter().map(|s| s.reward as f64).sum::<f64>() / n;
    let reward_std = if samples.len() > 1 {
        (samples
            .iter()
            .map(|s| (s.reward as f64 - reward_mean).powi(2))
            .sum::<f64>()
            / (n - 1.0))
            .sqrt()
    } else {
        0.0
    };
    let answered = samples.iter().filter(|s| s.correct.is_some()).count();
    let accuracy = (answered > 0).then(|| {
        samples.iter().filter(|s| s.correct == Some(true)).count() as f64 / answered as f64
    });
    let (nll, nll_tokens) = answer_nll(model, tok, data, o)?;
    Ok(EvalReport {
        examples: samples.len(),
        reward_mean,
        reward_std,
        rewards: components
            .into_iter()
            .map(|(k, s)| (k, (s / n).into()))
            .collect(),
        accuracy,
        answered,
        nll,
        nll_tokens,
        completion_len: comp_tokens as f64 / n,
        samples,
    })
}

/// Mean NLL per token of the reference answers given their prompts.
pub fn answer_nll(
    model: &Qwen3,
    tok: &tokenizers::Tokenizer,
    data: &[Example],
    o: &EvalOptions,
) -> Result<(Option<f64>, usize)> {
    let dev: Device = model.device().clone();
    let (mut total, mut count) = (0f64, 0usize);
    for e in data {
        let Some(ans) = &e.answer else { continue };
        let p = encode(tok, &e.prompt, o.max_prompt_length)?;
        let a = encode(tok, ans, None)?;
        if p.is_empty() || a.is_empty() {
            continue;
        }
        let ids: Vec<u32> = p.iter().chain(&a).copied().collect();
        let l = ids.len();
        let pos: Vec<u32> = (0..l as u32).collect();
        let ids_t = Tensor::from_vec(ids, (1, l), &dev)?;
        let pos_t = Tensor::from_vec(pos, (1, l), &dev)?;
        let h = model.forward_hidden(&ids_t, &pos_t, None, Role::Policy)?;
        let d = h.dim(2)?;
        let h = h.narrow(1, p.len() - 1, a.len())?.reshape((a.len(), d))?;
        let tg = Tensor::from_vec(a.clone(), a.len(), &dev)?;
        let lp = logprob::token_logprobs(&h, model.lm_head(), &tg, 1.0, 64)?.detach();
        total -= lp.sum_all()?.to_scalar::<f32>()? as f64;
        count += a.len();
    }
    Ok(((count > 0).then(|| total / count as f64), count))
}

/// Verifies a delta written by `gym train` (or any delta holding a PEFT adapter) and attaches
/// its factors to `model`. Returns the verification report.
pub fn load_delta_adapter(
    model: &mut Qwen3,
    path: &Path,
    opts: &VerifyOptions,
) -> Result<delta::VerifyReport> {
    let io = |e: std::io::Error| TrainError::Io(format!("{}: {e}", path.display()));
    let src = FileSource::open(path).map_err(io)?;
    let report = delta::verify(&src, opts)?;
    let d = &report.delta;
    let Some(ac) = &d.metadata.adapter_config else {
        return Err(TrainError::State(format!(
            "{}: carries no adapter_config, so it is not a LoRA adapter delta",
            path.display()
        )));
    };
    let tmp = tempfile::tempdir().map_err(io)?;
    let mut tensors = std::collections::HashMap::new();
    for t in &d.tensors {
        if t.dtype != delta::Dtype::F32 {
            return Err(TrainError::State(format!(
                "{}: tensor {} is {}, expected f32",
                path.display(),
                t.name,
                t.dtype.name()
            )));
        }
        let mut bytes = Vec::with_capacity(t.raw_len as usize);
        delta::read_tensor(&src, d, t, |b| bytes.extend_from_slice(b))?;
        let v: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let shape: Vec<usize> = t.shape.iter().map(|&s| s as usize).collect();
        tensors.insert(
            t.name.clone(),
            Tensor::from_vec(v, shape, &candle_core::Device::Cpu)?,
        );
    }
    candle_core::safetensors::save(&tensors, tmp.path().join("adapter_model.safetensors"))?;
    let text = serde_json::to_string_pretty(ac).map_err(|e| TrainError::State(e.to_string()))?;
    std::fs::write(tmp.path().join("adapter_config.json"), text).map_err(io)?;
    lora::load_peft(model, tmp.path())?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn td(rel: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(rel)
    }

    /// The adapter of a `gym train` delta (unpacked with `gym delta unpack`) gives the same
    /// logits in gym as in peft (tools/reference/peft_train_delta.py), and an adapter unpacked
    /// from a fresh delta has the same tensors and config as that committed one.
    #[test]
    fn peft_loads_the_adapter_of_a_training_delta() {
        let dev = Device::Cpu;
        let r =
            candle_core::safetensors::load(td("model-ref/tiny-qwen3.safetensors"), &dev).unwrap();
        let u32s = |t: &Tensor| t.to_dtype(candle_core::DType::U32).unwrap();
        let (ids, pos, keep) = (u32s(&r["ids"]), u32s(&r["positions"]), u32s(&r["keep"]));
        let mut m = crate::core::model::load(&td("tiny-qwen3"), &dev).unwrap();
        lora::load_peft(&mut m, &td("train-ref/toy-adapter")).unwrap();
        let got = m.forward(&ids, &pos, Some(&keep), Role::Policy).unwrap();
        let want =
            &candle_core::safetensors::load(td("train-ref/toy-adapter-logits.safetensors"), &dev)
                .unwrap()["logits"];
        let k: Vec<Vec<i64>> = r["keep"].to_vec2().unwrap();
        let a: Vec<Vec<Vec<f32>>> = got.to_vec3().unwrap();
        let b: Vec<Vec<Vec<f32>>> = want.to_vec3().unwrap();
        let mut worst = 0f32;
        for (bi, row) in k.iter().enumerate() {
            for (ti, &kv) in row.iter().enumerate() {
                if kv == 1 {
                    for (x, y) in a[bi][ti].iter().zip(&b[bi][ti]) {
                        worst = worst.max((x - y).abs());
                    }
                }
            }
        }
        assert!(worst <= 1e-4, "max |gym − peft| = {worst}");
        // and the adapter actually changes the model
        let base = m.forward(&ids, &pos, Some(&keep), Role::Reference).unwrap();
        let d = (base - got)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d > 1.0, "{d}");
    }
}
