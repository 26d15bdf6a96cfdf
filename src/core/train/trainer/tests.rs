use super::*;
use crate::core::model::embedded;
use crate::core::train::config::{TOY_DATA, TOY_REWARD};
use crate::core::train::data::{ChatTemplate, parse_jsonl};

fn toy(cfg: TrainConfig) -> Trainer {
    let (m, tok) = embedded::tiny_qwen3(&Device::Cpu).unwrap();
    let data = parse_jsonl(TOY_DATA, "toy", ChatTemplate::None).unwrap();
    let scorer = Scorer::new(&[TOY_REWARD.parse().unwrap()]).unwrap();
    Trainer::new(cfg, m, tok, data, scorer).unwrap()
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
        let mut rollout = t.rollout().unwrap();
        // make the batch off-policy: old log-probs from a shifted policy
        let vars = lora::trainable(&t.model);
        let orig: Vec<Tensor> = vars
            .iter()
            .map(|(_, v)| v.as_tensor().copy().unwrap())
            .collect();
        for (_, v) in &vars {
            v.set(&(v.as_tensor() * 1.05).unwrap()).unwrap();
        }
        let all: Vec<usize> = (0..rollout.completions.len()).collect();
        rollout.old_logp = Some(t.fixed_logp(&rollout, &all, Role::Policy).unwrap());
        for ((_, v), o) in vars.iter().zip(&orig) {
            v.set(o).unwrap();
        }
        rollout.ref_logp = Some(t.fixed_logp(&rollout, &all, Role::Reference).unwrap());
        let rows = all;
        let lp = t.loss_params();
        let loss_at = |t: &Trainer| -> (Tensor, f64) {
            let mb = t.batch(&rollout, &rows).unwrap();
            let (logp, _) = t.logp(&mb, Role::Policy).unwrap();
            let dev = Device::Cpu;
            let old = Trainer::rows_tensor(rollout.old_logp.as_ref().unwrap(), &rows, mb.c, &dev)
                .unwrap();
            let rf = Trainer::rows_tensor(rollout.ref_logp.as_ref().unwrap(), &rows, mb.c, &dev)
                .unwrap();
            let adv = Tensor::from_vec(rollout.advantages.clone(), rows.len(), &dev).unwrap();
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
    let scorer = Scorer::new(&[TOY_REWARD.parse().unwrap()]).unwrap();
    let mut t = Trainer::new(cfg, m, tok, data, scorer).unwrap();
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
    let rollout = t.rollout().unwrap();
    let all: Vec<usize> = (0..rollout.completions.len()).collect();
    let fwd = t.fixed_logp(&rollout, &all, Role::Policy).unwrap();
    let mut worst = 0f32;
    for (a, b) in fwd.iter().zip(&rollout.gen_logp) {
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
    let scorer = Scorer::new(&[TOY_REWARD.parse().unwrap()]).unwrap();
    let mut t = Trainer::new(cfg, m, tok, data, scorer).unwrap();
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
