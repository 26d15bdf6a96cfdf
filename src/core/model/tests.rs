//! Model tests against the committed transformers + peft reference outputs
//! (tools/reference/logits.py → testdata/model-ref/).

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor, Var};

use super::*;

fn td(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(rel)
}

fn reference(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(td(&format!("model-ref/{name}.safetensors")), &Device::Cpu)
        .expect("reference outputs")
}

/// Seeded normal samples (candle's CPU `randn` cannot be seeded, and an unlucky draw can move
/// an MoE router across a top-k boundary inside a finite-difference step).
fn randn_seeded(rng: &mut rand::rngs::StdRng, std: f32, shape: &[usize]) -> Tensor {
    use rand::Rng;
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            let (u1, u2): (f32, f32) = (rng.gen_range(f32::EPSILON..1.0), rng.r#gen());
            std * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn u32s(t: &Tensor) -> Tensor {
    t.to_dtype(DType::U32).unwrap()
}

/// Max |a − b| over the rows (b, t) where keep is 1 (padding queries are not compared).
fn max_diff_kept(a: &Tensor, b: &Tensor, keep: &Tensor) -> f32 {
    let k: Vec<Vec<i64>> = keep.to_vec2().unwrap();
    let a: Vec<Vec<Vec<f32>>> = a.to_vec3().unwrap();
    let b: Vec<Vec<Vec<f32>>> = b.to_vec3().unwrap();
    let mut m = 0f32;
    for (bi, row) in k.iter().enumerate() {
        for (ti, &kv) in row.iter().enumerate() {
            if kv == 1 {
                for (x, y) in a[bi][ti].iter().zip(&b[bi][ti]) {
                    m = m.max((x - y).abs());
                }
            }
        }
    }
    m
}

fn check_logits(name: &str) {
    let r = reference(name);
    let mut model = load(&td(name), &Device::Cpu).unwrap();
    let (ids, pos, keep) = (u32s(&r["ids"]), u32s(&r["positions"]), u32s(&r["keep"]));
    let base = model
        .forward(&ids, &pos, Some(&keep), Role::Policy)
        .unwrap();
    let d = max_diff_kept(&base, &r["logits"], &r["keep"]);
    assert!(d <= 1e-4, "{name}: max |logits - transformers| = {d}");

    lora::load_peft(&mut model, &td(&format!("{name}-lora"))).unwrap();
    let with = model
        .forward(&ids, &pos, Some(&keep), Role::Policy)
        .unwrap();
    let d = max_diff_kept(&with, &r["logits_lora"], &r["keep"]);
    assert!(d <= 1e-4, "{name}: max |logits with adapter - peft| = {d}");
    // adapters disabled: the base model again
    let off = model
        .forward(&ids, &pos, Some(&keep), Role::Reference)
        .unwrap();
    let d = max_diff_kept(&off, &r["logits"], &r["keep"]);
    assert!(
        d <= 1e-4,
        "{name}: adapters disabled differ from the base by {d}"
    );
}

#[test]
fn dense_logits_match_transformers_with_and_without_adapter() {
    check_logits("tiny-qwen3");
}

#[test]
fn moe_logits_match_transformers_with_and_without_adapter() {
    check_logits("tiny-qwen3-moe");
}

#[test]
fn qwen2_logits_match_transformers_with_and_without_adapter() {
    check_logits("tiny-qwen2");
}

#[test]
fn llama_logits_match_transformers_with_and_without_adapter() {
    check_logits("tiny-llama");
}

#[test]
fn mistral_logits_match_transformers_with_and_without_adapter() {
    check_logits("tiny-mistral");
}

#[test]
fn mixtral_logits_match_transformers_with_and_without_adapter() {
    check_logits("tiny-mixtral");
}

#[test]
fn qwen3_next_logits_match_transformers_with_and_without_adapter() {
    check_logits("tiny-qwen3-next");
}

/// Qwen3-Next's config: the layer kinds, the DeltaNet shape, partial rotary, the shared expert;
/// a config without `layer_types` takes them from `full_attention_interval`.
#[test]
fn qwen3_next_spec_follows_its_config() {
    let c = ModelConfig::load(&td("tiny-qwen3-next")).unwrap();
    assert_eq!(c.arch, Arch::Qwen3Next);
    let n = c.spec.next.as_ref().unwrap();
    assert_eq!(n.linear, vec![true, false]);
    assert_eq!(
        (n.key_heads, n.value_heads, n.key_dim, n.value_dim),
        (2, 4, 8, 8)
    );
    assert_eq!(c.spec.rope.inv_freq.len(), 4); // 16 · 0.5 rotated dimensions
    let moe = c.moe.as_ref().unwrap();
    assert_eq!(moe.shared_expert_intermediate_size, Some(24));
    assert!(!moe.is_sparse_layer(0) && moe.is_sparse_layer(1));
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(td("tiny-qwen3-next/config.json")).unwrap())
            .unwrap();
    v.as_object_mut().unwrap().remove("layer_types");
    v["num_hidden_layers"] = serde_json::json!(8);
    v["full_attention_interval"] = serde_json::json!(4);
    let c = ModelConfig::parse(std::path::Path::new("config.json"), &v.to_string()).unwrap();
    let kinds = c.spec.next.unwrap().linear;
    assert_eq!(kinds, [true, true, true, false, true, true, true, false]);
    // partial rotary stays refused where transformers rotates whole heads
    let mut l: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(td("tiny-llama/config.json")).unwrap())
            .unwrap();
    l["rope_parameters"]["partial_rotary_factor"] = serde_json::json!(0.5);
    let e = ModelConfig::parse(std::path::Path::new("config.json"), &l.to_string()).unwrap_err();
    assert!(e.to_string().contains("partial_rotary_factor"), "{e}");
}

/// The decode path (prompt, then one token at a time through the conv/recurrent states and
/// the KV cache) gives the logits of full forwards, left padding included.
#[test]
fn qwen3_next_cached_steps_match_full_forwards() {
    let r = reference("tiny-qwen3-next");
    let mut model = load(&td("tiny-qwen3-next"), &Device::Cpu).unwrap();
    lora::load_peft(&mut model, &td("tiny-qwen3-next-lora")).unwrap();
    let (ids, pos, keep) = (u32s(&r["ids"]), u32s(&r["positions"]), u32s(&r["keep"]));
    let t = ids.dim(1).unwrap();
    let full = model
        .forward(&ids, &pos, Some(&keep), Role::Policy)
        .unwrap();
    let keep_rows: Vec<Vec<u32>> = keep.to_vec2().unwrap();
    let mut cache = crate::core::model::decoder::KvCache::new(model.layers.len(), 2);
    let p = 12;
    let cut = |x: &Tensor, a: usize, n: usize| x.narrow(1, a, n).unwrap();
    let rows = |a: usize, n: usize| -> Vec<Vec<u32>> {
        keep_rows.iter().map(|k| k[a..a + n].to_vec()).collect()
    };
    let mut last = model
        .forward_step(
            &cut(&ids, 0, p),
            &cut(&pos, 0, p),
            &rows(0, p),
            &mut cache,
            Role::Policy,
        )
        .unwrap();
    for i in p..=t {
        let want = full.narrow(1, i - 1, 1).unwrap().squeeze(1).unwrap();
        let d = (&last - &want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-4, "position {}: {d}", i - 1);
        if i < t {
            last = model
                .forward_step(
                    &cut(&ids, i, 1),
                    &cut(&pos, i, 1),
                    &rows(i, 1),
                    &mut cache,
                    Role::Policy,
                )
                .unwrap();
        }
    }
}

/// gym writes back the weights it read (zero-centred norms included, up to the f32 rounding
/// of 1 + w), so merged exports of Qwen3-Next load in transformers as they were.
#[test]
fn qwen3_next_state_dict_gives_back_the_checkpoint() {
    let dir = td("tiny-qwen3-next");
    let model = load(&dir, &Device::Cpu).unwrap();
    let sd = model.state_dict(false).unwrap();
    let w = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut a: Vec<_> = w.keys().collect();
    let mut b: Vec<_> = sd.keys().collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    for (k, t) in &w {
        let d = (t - &sd[k])
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d <= 2e-7, "{k}: {d}");
    }
}

/// What each tiny model's config asks of the decoder: the fields that change the computation
/// are read, not defaulted (the reference logits above would not match otherwise, but this
/// names the field that went wrong).
#[test]
fn architecture_specs_follow_their_configs() {
    let spec = |name: &str| ModelConfig::load(&td(name)).unwrap();
    let q2 = spec("tiny-qwen2");
    assert_eq!(q2.arch, Arch::Qwen2);
    assert!(!q2.spec.qk_norm && q2.spec.qkv_bias && !q2.spec.o_bias);
    assert_eq!(q2.spec.windows, vec![None, Some(4)]); // max_window_layers = 1
    assert!((q2.spec.rope.attention_factor - 1.138_629_4).abs() < 1e-6); // YaRN
    let l = spec("tiny-llama");
    assert_eq!(l.spec.windows, vec![None, None]);
    assert!(!l.base.tie_word_embeddings);
    let m = spec("tiny-mistral");
    assert_eq!(m.spec.windows, vec![Some(4), Some(4)]);
    let x = spec("tiny-mixtral");
    let moe = x.moe.unwrap();
    assert_eq!((moe.num_experts, moe.num_experts_per_tok), (4, 2));
    assert_eq!(
        (moe.block, moe.names),
        ("block_sparse_moe", ["w1", "w3", "w2"])
    );
    assert!(spec("tiny-qwen3").spec.qk_norm);
}

/// Fields that change the computation and are not implemented are refused by name.
#[test]
fn unimplemented_fields_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, serde_json::Value, &str); 7] = [
        (
            "tiny-llama",
            "hidden_act",
            serde_json::json!("gelu"),
            "hidden_act",
        ),
        (
            "tiny-llama",
            "attention_dropout",
            serde_json::json!(0.1),
            "attention_dropout",
        ),
        (
            "tiny-llama",
            "rope_parameters",
            serde_json::json!({"rope_type": "longrope", "rope_theta": 1e4}),
            "rope_type",
        ),
        (
            "tiny-qwen2",
            "layer_types",
            serde_json::json!(["full_attention", "chunked_attention"]),
            "layer_types",
        ),
        (
            "tiny-mistral",
            "layer_types",
            serde_json::json!(["full_attention", "sliding_attention"]),
            "layer_types",
        ),
        (
            "tiny-mixtral",
            "router_jitter_noise",
            serde_json::json!(0.01),
            "router_jitter_noise",
        ),
        (
            "tiny-mixtral",
            "output_router_logits",
            serde_json::json!(true),
            "output_router_logits",
        ),
    ];
    for (model, field, value, named) in cases {
        let mut cfg: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(td(&format!("{model}/config.json"))).unwrap(),
        )
        .unwrap();
        cfg[field] = value;
        std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
        let e = ModelConfig::load(dir.path()).unwrap_err();
        assert!(
            matches!(e, ModelError::Unsupported(_)),
            "{model} {field}: {e}"
        );
        assert!(e.to_string().contains(named), "{model} {field}: {e}");
    }
}

/// gym writes the adapter peft wrote back with the same tensor names and values (so peft loads
/// gym's adapters for these architectures as its own), and targets Mixtral's experts under the
/// module names PEFT used for them.
#[test]
fn peft_adapters_round_trip_for_every_architecture() {
    for name in [
        "tiny-qwen2",
        "tiny-llama",
        "tiny-mistral",
        "tiny-mixtral",
        "tiny-qwen3-next",
    ] {
        let mut model = load(&td(name), &Device::Cpu).unwrap();
        let src = td(&format!("{name}-lora"));
        let cfg = lora::load_peft(&mut model, &src).unwrap();
        let dir = tempfile::tempdir().unwrap();
        lora::save_peft(&model, &cfg, dir.path()).unwrap();
        let theirs =
            candle_core::safetensors::load(src.join("adapter_model.safetensors"), &Device::Cpu)
                .unwrap();
        let ours = candle_core::safetensors::load(
            dir.path().join("adapter_model.safetensors"),
            &Device::Cpu,
        )
        .unwrap();
        let mut a: Vec<_> = theirs.keys().collect();
        let mut b: Vec<_> = ours.keys().collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "{name}: tensor names");
        for (k, t) in &theirs {
            let d = (t - &ours[k]).unwrap().abs().unwrap().max_all().unwrap();
            assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0, "{name} {k}");
        }
    }
    let mut model = load(&td("tiny-mixtral"), &Device::Cpu).unwrap();
    let mut cfg = lora::LoraConfig::new(2, 4.0);
    cfg.target_modules = lora::Targets::Special("all-linear".into());
    lora::attach(&mut model, &cfg, 1).unwrap();
    let names: Vec<String> = lora::trainable(&model)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(
        names.contains(
            &"base_model.model.model.layers.1.block_sparse_moe.experts.3.w2.lora_B.weight"
                .to_string()
        ),
        "{names:?}"
    );
}

/// Σ logits ⊙ r over the kept rows, in f64.
fn loss64(model: &Qwen3, ids: &Tensor, pos: &Tensor, keep: &Tensor, r: &Tensor) -> f64 {
    let l = model.forward(ids, pos, Some(keep), Role::Policy).unwrap();
    (l.to_dtype(DType::F64).unwrap() * r)
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

fn lora_grads_match_finite_differences(name: &str) {
    let r = reference(name);
    let mut model = load(&td(name), &Device::Cpu).unwrap();
    model.quantize_nf4(true).unwrap();
    // every linear layer adapted, with random non-zero B (PEFT's B = 0 would zero dL/dA)
    let mut cfg = lora::LoraConfig::new(2, 4.0);
    cfg.target_modules = lora::Targets::Special("all-linear".into());
    lora::attach(&mut model, &cfg, 3).unwrap();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(20261126);
    for (n, v) in lora::trainable(&model) {
        if n.contains("lora_B") {
            v.set(&randn_seeded(&mut rng, 0.3, v.dims())).unwrap();
        }
    }
    // a short sequence keeps this fast; padding row included
    let ids = u32s(&r["ids"]).narrow(1, 8, 11).unwrap();
    let keep = u32s(&r["keep"]).narrow(1, 8, 11).unwrap();
    let keep_i64: Vec<Vec<u32>> = keep.to_vec2().unwrap();
    let pos: Vec<u32> = keep_i64
        .iter()
        .flat_map(|row| {
            let mut p = 0u32;
            row.iter()
                .map(|&k| {
                    let v = p;
                    if k == 1 {
                        p += 1;
                    }
                    if k == 1 { v } else { 0 }
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let pos = Tensor::from_vec(pos, ids.shape(), &Device::Cpu).unwrap();
    let logits = model
        .forward(&ids, &pos, Some(&keep), Role::Policy)
        .unwrap();
    // weights: random, zero on padding queries
    let kf = keep.to_dtype(DType::F32).unwrap().unsqueeze(2).unwrap();
    let rw = randn_seeded(&mut rng, 1.0, logits.dims())
        .broadcast_mul(&kf)
        .unwrap();
    let loss = (logits * &rw).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let r64 = rw.to_dtype(DType::F64).unwrap();
    let vars = lora::trainable(&model);
    assert!(!vars.is_empty());
    // Finite differences of the f32 forward are noisy for single coordinates (the loss sums
    // thousands of logits); each factor is checked along two directions of unit norm instead:
    // the gradient itself (derivative |g|) and the gradient mixed with a random direction.
    let mut worst = (0f32, String::new());
    for (name_v, var) in &vars {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name_v} has no gradient"))
            .clone();
        let gn = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .sqrt()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(gn > 0.0, "{name_v}: zero gradient");
        let orig = var.as_tensor().copy().unwrap();
        let rnd = randn_seeded(&mut rng, 1.0, g.dims());
        let rn = rnd
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .sqrt()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let u1 = (&g / gn as f64).unwrap();
        let u2 = ((&u1 + (&rnd / rn as f64).unwrap()).unwrap() / 2f64.sqrt()).unwrap();
        for (label, u) in [("along the gradient", u1), ("mixed direction", u2)] {
            let want = (&g * &u)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            // small steps: the MoE routing (top-k) is piecewise constant
            let eps = 1e-3;
            let eval = |s: f64| {
                var.set(&(&orig + (&u * s).unwrap()).unwrap()).unwrap();
                loss64(&model, &ids, &pos, &keep, &r64)
            };
            let fd = ((eval(eps) - eval(-eps)) / (2.0 * eps)) as f32;
            var.set(&orig).unwrap();
            let rel = (fd - want).abs() / fd.abs().max(want.abs());
            if rel > worst.0 {
                worst = (rel, format!("{name_v} {label}: autograd {want} vs fd {fd}"));
            }
        }
    }
    assert!(
        worst.0 <= 1e-2,
        "{name}: worst relative error {} at {}",
        worst.0,
        worst.1
    );
}

#[test]
fn dense_lora_grads_match_finite_differences_with_nf4_base() {
    lora_grads_match_finite_differences("tiny-qwen3");
}

#[test]
fn moe_lora_grads_match_finite_differences_with_nf4_base() {
    lora_grads_match_finite_differences("tiny-qwen3-moe");
}

#[test]
fn qwen2_lora_grads_match_finite_differences_with_nf4_base() {
    lora_grads_match_finite_differences("tiny-qwen2");
}

#[test]
fn llama_lora_grads_match_finite_differences_with_nf4_base() {
    lora_grads_match_finite_differences("tiny-llama");
}

#[test]
fn mistral_lora_grads_match_finite_differences_with_nf4_base() {
    lora_grads_match_finite_differences("tiny-mistral");
}

#[test]
fn mixtral_lora_grads_match_finite_differences_with_nf4_base() {
    lora_grads_match_finite_differences("tiny-mixtral");
}

/// Every LoRA factor of Qwen3-Next (attention, DeltaNet projections, dense MLP, routed and
/// shared experts) against finite differences through the NF4 base.
#[test]
fn qwen3_next_lora_grads_match_finite_differences_with_nf4_base() {
    lora_grads_match_finite_differences("tiny-qwen3-next");
}

#[test]
fn adapter_disabled_forward_ignores_trained_factors() {
    let mut model = load(&td("tiny-qwen3"), &Device::Cpu).unwrap();
    let ids = Tensor::new(&[[5u32, 6, 7, 8]], &Device::Cpu).unwrap();
    let pos = Tensor::new(&[[0u32, 1, 2, 3]], &Device::Cpu).unwrap();
    let base = model.forward(&ids, &pos, None, Role::Policy).unwrap();
    let n = lora::attach(&mut model, &lora::LoraConfig::new(4, 8.0), 1).unwrap();
    assert_eq!(
        n,
        2 * 4 * ((64 + 128) + (64 + 64) * 2 + (128 + 64) + (64 + 128) * 2 + (128 + 64))
    );
    // fresh adapters (B = 0) change nothing
    let fresh = model.forward(&ids, &pos, None, Role::Policy).unwrap();
    let d = (&fresh - &base)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(d, 0.0);
    for (_, v) in lora::trainable(&model) {
        v.set(&Tensor::ones(v.shape(), DType::F32, &Device::Cpu).unwrap())
            .unwrap();
    }
    let off = model.forward(&ids, &pos, None, Role::Reference).unwrap();
    let d = (&off - &base)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(d, 0.0);
    let _unused: Option<Var> = None;
}

#[test]
fn missing_files_and_bad_configs_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let e = load(dir.path(), &Device::Cpu).err().unwrap();
    assert!(matches!(e, ModelError::MissingFile { .. }), "{e}");
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}"#,
    )
    .unwrap();
    let e = load(dir.path(), &Device::Cpu).err().unwrap();
    assert!(matches!(e, ModelError::UnsupportedArch { .. }), "{e}");
    assert!(e.to_string().contains("gpt2"));
    // a config whose shapes disagree with the weights names the tensor
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(td("tiny-qwen3/config.json")).unwrap())
            .unwrap();
    cfg["intermediate_size"] = serde_json::json!(96);
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    std::fs::copy(
        td("tiny-qwen3/model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    let e = load(dir.path(), &Device::Cpu).err().unwrap();
    assert!(matches!(e, ModelError::Shape { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("model.layers.0.mlp.gate_proj.weight"),
        "{e}"
    );
    // a rope type gym does not implement
    cfg["intermediate_size"] = serde_json::json!(128);
    cfg["rope_parameters"] =
        serde_json::json!({"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 4.0});
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    let e = load(dir.path(), &Device::Cpu).err().unwrap();
    assert!(matches!(e, ModelError::Unsupported(_)), "{e}");
}

#[test]
fn sharded_bf16_and_top_level_rope_theta_load() {
    // rewrite the dense model as two bf16 shards + index, with transformers 4's rope_theta
    let dir = tempfile::tempdir().unwrap();
    let w =
        candle_core::safetensors::load(td("tiny-qwen3/model.safetensors"), &Device::Cpu).unwrap();
    let mut names: Vec<&String> = w.keys().collect();
    names.sort();
    let (a, b) = names.split_at(names.len() / 2);
    let mut map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", a),
        ("model-00002-of-00002.safetensors", b),
    ] {
        let m: HashMap<String, Tensor> = part
            .iter()
            .map(|n| ((*n).clone(), w[*n].to_dtype(DType::BF16).unwrap()))
            .collect();
        candle_core::safetensors::save(&m, dir.path().join(file)).unwrap();
        for n in part {
            map.insert((*n).clone(), serde_json::json!(file));
        }
    }
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        serde_json::json!({"metadata": {}, "weight_map": map}).to_string(),
    )
    .unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(td("tiny-qwen3/config.json")).unwrap())
            .unwrap();
    let theta = cfg["rope_parameters"]["rope_theta"].clone();
    cfg.as_object_mut().unwrap().remove("rope_parameters");
    cfg["rope_theta"] = theta;
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    let m = load(dir.path(), &Device::Cpu).unwrap();
    let r = reference("tiny-qwen3");
    let (ids, pos, keep) = (u32s(&r["ids"]), u32s(&r["positions"]), u32s(&r["keep"]));
    let l = m.forward(&ids, &pos, Some(&keep), Role::Policy).unwrap();
    // bf16 weights: close to the f32 reference, not equal
    let d = max_diff_kept(&l, &r["logits"], &r["keep"]);
    assert!(d < 0.5, "bf16 shards: max diff {d}");
}

/// Saves a deterministic adapter with gym, exports the merged model, and checks both against
/// what peft / transformers computed from those very files (tools/reference/peft_roundtrip.py).
/// With GYM_WRITE_REF=1 it (re)writes the files for that script instead of comparing.
#[test]
fn peft_round_trip() {
    let mut model = load(&td("tiny-qwen3"), &Device::Cpu).unwrap();
    let mut cfg = lora::LoraConfig::new(4, 16.0);
    cfg.base_model_name_or_path = Some("testdata/tiny-qwen3".into());
    lora::attach(&mut model, &cfg, 11).unwrap();
    for (i, (_, v)) in lora::trainable(&model).into_iter().enumerate() {
        let n = v.elem_count();
        let x = nf4::lcg_matrix(1, n, 1000 + i as u32);
        let t = (Tensor::from_vec(x, v.shape(), &Device::Cpu).unwrap() * 10.0).unwrap();
        v.set(&t).unwrap();
    }
    let r = reference("tiny-qwen3");
    let (ids, pos, keep) = (u32s(&r["ids"]), u32s(&r["positions"]), u32s(&r["keep"]));
    let ours = model
        .forward(&ids, &pos, Some(&keep), Role::Policy)
        .unwrap();
    let adir = td("model-ref/gym-adapter");
    let mdir = td("model-ref/gym-merged");
    if std::env::var_os("GYM_WRITE_REF").is_some() {
        lora::save_peft(&model, &cfg, &adir).unwrap();
        lora::export_merged(&model, &td("tiny-qwen3"), &mdir).unwrap();
        return;
    }
    // what gym writes now is what peft read
    let tmp = tempfile::tempdir().unwrap();
    lora::save_peft(&model, &cfg, tmp.path()).unwrap();
    let a =
        candle_core::safetensors::load(tmp.path().join("adapter_model.safetensors"), &Device::Cpu)
            .unwrap();
    let b = candle_core::safetensors::load(adir.join("adapter_model.safetensors"), &Device::Cpu)
        .unwrap();
    assert_eq!(a.len(), b.len());
    for (k, t) in &a {
        let d = (t - &b[k])
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(d, 0.0, "{k}");
    }
    let rt = reference("gym-roundtrip");
    let d = max_diff_kept(&ours, &rt["logits_adapter"], &r["keep"]);
    assert!(d <= 1e-4, "gym vs peft loading gym's adapter: {d}");
    let d = max_diff_kept(&ours, &rt["logits_merged"], &r["keep"]);
    assert!(
        d <= 1e-4,
        "gym vs transformers loading gym's merged export: {d}"
    );
    // and gym reads its own adapter back
    let mut again = load(&td("tiny-qwen3"), &Device::Cpu).unwrap();
    lora::load_peft(&mut again, &adir).unwrap();
    let l = again
        .forward(&ids, &pos, Some(&keep), Role::Policy)
        .unwrap();
    assert!(max_diff_kept(&l, &ours.to_dtype(DType::F32).unwrap(), &r["keep"]) < 1e-6);
}

#[test]
fn lora_dropout_is_seeded_and_off_outside_training() {
    let mut model = load(&td("tiny-qwen3"), &Device::Cpu).unwrap();
    lora::load_peft(&mut model, &td("tiny-qwen3-lora")).unwrap();
    for (_, lin) in model.linears_mut() {
        if let Some(l) = &mut lin.lora {
            l.dropout = 0.5;
        }
    }
    let ids = Tensor::new(&[[5u32, 6, 7, 8]], &Device::Cpu).unwrap();
    let pos = Tensor::new(&[[0u32, 1, 2, 3]], &Device::Cpu).unwrap();
    let eval = model.forward(&ids, &pos, None, Role::Policy).unwrap();
    let run = |m: &mut Qwen3, seed| {
        m.set_training(Some(seed));
        let l = m.forward(&ids, &pos, None, Role::Policy).unwrap();
        m.set_training(None);
        l
    };
    let a = run(&mut model, 1);
    let b = run(&mut model, 1);
    let c = run(&mut model, 2);
    let diff = |x: &Tensor, y: &Tensor| {
        (x - y)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    assert_eq!(diff(&a, &b), 0.0, "same seed, same masks");
    assert!(diff(&a, &c) > 0.0, "another seed, other masks");
    assert!(diff(&a, &eval) > 0.0, "dropout acts in training");
    assert_eq!(
        diff(
            &model.forward(&ids, &pos, None, Role::Policy).unwrap(),
            &eval
        ),
        0.0,
        "and not after"
    );
}

/// Quantizing while loading gives the model that quantizing after a plain load gives: the same
/// NF4 bytes for every linear layer (plain and double-quantized absmax), every other weight
/// f32 and equal, and bit-identical logits.
#[test]
fn quantize_on_load_matches_load_then_quantize() {
    for dir in ["tiny-qwen3", "tiny-qwen3-moe"] {
        if !td(dir).join("config.json").exists() {
            continue;
        }
        for double in [false, true] {
            let mut a = load(&td(dir), &Device::Cpu).unwrap();
            a.quantize_nf4(double).unwrap();
            let opts = LoadOptions {
                nf4: true,
                double_quant: double,
            };
            let b = load_with(&td(dir), &Device::Cpu, opts).unwrap();
            let (la, lb) = (a.linears(), b.linears());
            assert_eq!(la.len(), lb.len());
            assert!(!la.is_empty());
            for ((na, x), (nb, y)) in la.iter().zip(&lb) {
                assert_eq!(na, nb);
                let (linear::Base::Nf4(x), linear::Base::Nf4(y)) = (&x.base, &y.base) else {
                    panic!("{na}: an f32 base after quantize-on-load ({dir})");
                };
                assert_eq!(x.shape, y.shape, "{na}");
                assert_eq!(x.packed, y.packed, "{na}");
                assert_eq!(x.absmax, y.absmax, "{na}");
            }
            // every other weight (embedding, norms, router) unchanged, and the model
            // quantize_nf4 leaves as it is
            let (sa, sb) = (a.state_dict(false).unwrap(), b.state_dict(false).unwrap());
            assert_eq!(sa.len(), sb.len());
            for (k, v) in &sa {
                let d = (v - &sb[k])
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert_eq!(d, 0.0, "{k} ({dir})");
            }
            let ids = Tensor::new(&[[1u32, 5, 9, 2], [7, 3, 3, 0]], &Device::Cpu).unwrap();
            let pos = Tensor::new(&[[0u32, 1, 2, 3], [0, 1, 2, 3]], &Device::Cpu).unwrap();
            let fa = a.forward(&ids, &pos, None, Role::Policy).unwrap();
            let fb = b.forward(&ids, &pos, None, Role::Policy).unwrap();
            assert_eq!(
                fa.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                fb.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                "{dir}"
            );
        }
    }
}

/// The tensor-by-tensor reader rejects a truncated checkpoint and a header that runs past the
/// file, naming the file.
#[test]
fn streamed_load_rejects_truncated_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(td("tiny-qwen3/config.json"), dir.path().join("config.json")).unwrap();
    let bytes = std::fs::read(td("tiny-qwen3/model.safetensors")).unwrap();
    let path = dir.path().join("model.safetensors");
    for cut in [bytes.len() - 1, 20, 4] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        for nf4 in [false, true] {
            let opts = LoadOptions {
                nf4,
                double_quant: true,
            };
            let e = load_with(dir.path(), &Device::Cpu, opts).err().unwrap();
            assert!(matches!(e, ModelError::Weights { .. }), "{cut}: {e}");
            assert!(e.to_string().contains("model.safetensors"), "{e}");
        }
    }
}

/// Gradient checkpointing gives the gradients of the plain backward (same dropout masks, NF4
/// base, padding), and the graph-free forward the same hidden states.
fn checkpointed_backward_matches_plain(name: &str) {
    let r = reference(name);
    let mut model = load(&td(name), &Device::Cpu).unwrap();
    model.quantize_nf4(true).unwrap();
    let mut cfg = lora::LoraConfig::new(2, 4.0);
    cfg.target_modules = lora::Targets::Special("all-linear".into());
    cfg.lora_dropout = 0.2;
    lora::attach(&mut model, &cfg, 3).unwrap();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
    for (n, v) in lora::trainable(&model) {
        if n.contains("lora_B") {
            v.set(&randn_seeded(&mut rng, 0.3, v.dims())).unwrap();
        }
    }
    let ids = u32s(&r["ids"]).narrow(1, 8, 11).unwrap();
    let keep = u32s(&r["keep"]).narrow(1, 8, 11).unwrap();
    let (b, t) = ids.dims2().unwrap();
    let pos = Tensor::arange(0u32, t as u32, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap()
        .repeat((b, 1))
        .unwrap();
    let head = model.lm_head().clone();
    let rw = randn_seeded(&mut rng, 1.0, &[b, t, head.dim(0).unwrap()]);
    let loss_of = |h: &Tensor| {
        (h.broadcast_matmul(&head.t().unwrap()).unwrap() * &rw)
            .unwrap()
            .sum_all()
            .unwrap()
    };
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();

    model.set_training(Some(11));
    let h = model
        .forward_hidden(&ids, &pos, Some(&keep), Role::Policy)
        .unwrap();
    let plain = loss_of(&h).backward().unwrap();
    let after_plain = model.layers[0].rng_snapshot();

    model.set_training(Some(11));
    let (hc, ck) = model
        .forward_hidden_checkpointed(&ids, &pos, Some(&keep), Role::Policy)
        .unwrap();
    assert_eq!(flat(&hc), flat(&h), "{name}: checkpointed forward differs");
    let mut grads = loss_of(&hc).backward().unwrap();
    model.backward_checkpointed(ck, &mut grads).unwrap();
    // the dropout generators end where the plain run left them
    let after_ck = model.layers[0].rng_snapshot();
    let draw = |s: Vec<Option<rand::rngs::StdRng>>| -> Vec<u64> {
        use rand::Rng;
        s.into_iter()
            .map(|r| r.expect("training").r#gen())
            .collect()
    };
    assert_eq!(draw(after_plain), draw(after_ck));

    let vars = lora::trainable(&model);
    assert!(!vars.is_empty());
    for (n, v) in &vars {
        let a = flat(plain.get(v.as_tensor()).unwrap());
        let c = flat(
            grads
                .get(v.as_tensor())
                .unwrap_or_else(|| panic!("{name}: {n} has no checkpointed gradient")),
        );
        let scale = a.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
        let d = a
            .iter()
            .zip(&c)
            .fold(0f32, |m, (a, c)| m.max((a - c).abs()));
        assert!(
            d <= 1e-5 * scale,
            "{name}: {n} differs by {d} (scale {scale})"
        );
    }

    model.set_training(None);
    let h0 = model
        .forward_hidden(&ids, &pos, Some(&keep), Role::Policy)
        .unwrap();
    let h1 = model
        .forward_hidden_nograd(&ids, &pos, Some(&keep), Role::Policy)
        .unwrap();
    assert_eq!(flat(&h0), flat(&h1));
    assert!(!h1.track_op());
}

#[test]
fn dense_checkpointed_backward_matches_plain() {
    checkpointed_backward_matches_plain("tiny-qwen3");
}

#[test]
fn moe_checkpointed_backward_matches_plain() {
    checkpointed_backward_matches_plain("tiny-qwen3-moe");
}

#[test]
fn qwen3_next_checkpointed_backward_matches_plain() {
    checkpointed_backward_matches_plain("tiny-qwen3-next");
}

/// generation_config.json's end-of-sequence list and pad id override config.json's.
#[test]
fn generation_config_overrides_eos_and_pad() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/tiny-qwen3");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("config.json"), dir.path().join("config.json")).unwrap();
    let plain = ModelConfig::load(dir.path()).unwrap();
    std::fs::write(
        dir.path().join("generation_config.json"),
        r#"{"eos_token_id": [3, 5], "pad_token_id": 7, "temperature": 0.6}"#,
    )
    .unwrap();
    let c = ModelConfig::load(dir.path()).unwrap();
    assert_eq!(
        c.base.eos_token_id,
        Some(config::TokenIds::Many(vec![3, 5]))
    );
    assert_eq!(c.base.pad_token_id, Some(7));
    assert_ne!(plain.base.eos_token_id, c.base.eos_token_id);
    std::fs::write(
        dir.path().join("generation_config.json"),
        "{\"eos_token_id\": \"x\"",
    )
    .unwrap();
    let e = ModelConfig::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("generation_config.json"), "{e}");
}

/// testdata/bpe: a byte-level BPE tokenizer of Qwen's design trained with the `tokenizers`
/// library, and its encodings by Python `tokenizers` and transformers
/// (tools/reference/bpe_tokenizer.py). gym's loader must give the same ids, tokens and
/// decodings on text with Unicode, special tokens, whitespace runs and control characters.
#[test]
fn byte_level_bpe_matches_python_tokenizers() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/bpe");
    let tok = load_tokenizer(&dir).unwrap();
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 15);
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let enc = tok.encode(text, false).unwrap();
        let ids: Vec<u32> = serde_json::from_value(c["ids"].clone()).unwrap();
        let tokens: Vec<String> = serde_json::from_value(c["tokens"].clone()).unwrap();
        assert_eq!(enc.get_ids(), &ids[..], "ids of {text:?}");
        assert_eq!(enc.get_tokens(), &tokens[..], "tokens of {text:?}");
        assert_eq!(
            tok.decode(&ids, false).unwrap(),
            c["decoded"].as_str().unwrap()
        );
        assert_eq!(
            tok.decode(&ids, true).unwrap(),
            c["decoded_skip_special"].as_str().unwrap()
        );
    }
    // the special tokens are single ids, never split
    let enc = tok.encode("<|im_start|>user<|im_end|>", false).unwrap();
    assert_eq!(
        enc.get_tokens().first().map(String::as_str),
        Some("<|im_start|>")
    );
    assert_eq!(
        enc.get_tokens().last().map(String::as_str),
        Some("<|im_end|>")
    );
}

/// PEFT loads the adapters gym writes for the other architectures and gives gym's logits
/// (references by `tools/reference/peft_roundtrip_arch.py`); transformers loads gym's merged
/// Qwen3-Next export (zero-centred norms written back as w) and gives them too.
#[test]
fn peft_loads_gym_adapters_of_the_other_architectures() {
    let attn = ["q_proj", "k_proj", "v_proj", "o_proj"];
    let dense = [&attn[..], &["gate_proj", "up_proj", "down_proj"]].concat();
    let next = [&attn[..], &["in_proj_qkvz", "in_proj_ba", "out_proj"]].concat();
    let cases: [(&str, Vec<&str>); 5] = [
        ("tiny-qwen2", dense.clone()),
        ("tiny-llama", dense.clone()),
        ("tiny-mistral", dense),
        // transformers 5 fuses the experts, which peft then does not adapt as modules
        ("tiny-mixtral", attn.to_vec()),
        ("tiny-qwen3-next", next),
    ];
    for (seed, (name, targets)) in cases.into_iter().enumerate() {
        let mut model = load(&td(name), &Device::Cpu).unwrap();
        let mut cfg = lora::LoraConfig::new(4, 16.0);
        cfg.base_model_name_or_path = Some(format!("testdata/{name}"));
        cfg.target_modules = lora::Targets::List(targets.iter().map(|s| s.to_string()).collect());
        lora::attach(&mut model, &cfg, 21 + seed as u64).unwrap();
        for (i, (_, v)) in lora::trainable(&model).into_iter().enumerate() {
            let x = nf4::lcg_matrix(1, v.elem_count(), 2000 + 100 * seed as u32 + i as u32);
            let t = (Tensor::from_vec(x, v.shape(), &Device::Cpu).unwrap() * 5.0).unwrap();
            v.set(&t).unwrap();
        }
        let r = reference(name);
        let (ids, pos, keep) = (u32s(&r["ids"]), u32s(&r["positions"]), u32s(&r["keep"]));
        let ours = model
            .forward(&ids, &pos, Some(&keep), Role::Policy)
            .unwrap();
        let adir = td(&format!("model-ref/gym-adapter-{name}"));
        let mdir = td(&format!("model-ref/gym-merged-{name}"));
        if std::env::var_os("GYM_WRITE_REF").is_some() {
            lora::save_peft(&model, &cfg, &adir).unwrap();
            if name == "tiny-qwen3-next" {
                lora::export_merged(&model, &td(name), &mdir).unwrap();
            }
            continue;
        }
        let rt = reference(&format!("gym-roundtrip-{name}"));
        let d = max_diff_kept(&ours, &rt["logits_adapter"], &r["keep"]);
        assert!(d <= 1e-4, "{name}: gym vs peft loading gym's adapter: {d}");
        let moved = max_diff_kept(&ours, &r["logits"], &r["keep"]);
        assert!(
            moved > 1e-2,
            "{name}: the adapter changes nothing ({moved})"
        );
        if let Some(m) = rt.get("logits_merged") {
            let d = max_diff_kept(&ours, m, &r["keep"]);
            assert!(
                d <= 1e-4,
                "{name}: gym vs transformers on gym's merged export: {d}"
            );
        }
        // what gym writes now is what peft read
        let tmp = tempfile::tempdir().unwrap();
        lora::save_peft(&model, &cfg, tmp.path()).unwrap();
        let file = "adapter_model.safetensors";
        let a = candle_core::safetensors::load(tmp.path().join(file), &Device::Cpu).unwrap();
        let b = candle_core::safetensors::load(adir.join(file), &Device::Cpu).unwrap();
        assert_eq!(a.len(), b.len(), "{name}");
        for (k, t) in &a {
            let d = (t - &b[k]).unwrap().abs().unwrap().max_all().unwrap();
            assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0, "{name} {k}");
        }
    }
}
