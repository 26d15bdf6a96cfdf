//! Generation throughput on the bundled tiny model, fast decode path vs the composed candle
//! path, with the benchmark's rollout shape (2 prompts × 8 generations × 32 tokens, LoRA r16
//! on every linear layer, the adapter made non-zero).
//!
//! Run: `cargo run --release --example bench-generate -- [ITERS] [nf4]` (`nf4`: the base
//! quantized to NF4, as `gym train --use-4bit true`); prints one JSON line with
//! the mean seconds per rollout of each path (`BENCH_FAST_ONLY=1`: the fast path alone, for
//! profiling).

/// The allocator of the gym binary (see src/bin/gym.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::time::Instant;

use candle_core::{Device, Tensor};
use gym::core::model::generate::{SamplingParams, generate, generate_composed};
use gym::core::model::lora;

fn main() -> candle_core::Result<()> {
    let iters: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let dev = Device::Cpu;
    let mut model = gym::core::model::embedded::tiny_qwen3(&dev)
        .expect("bundled model")
        .0;
    let nf4 = std::env::args().nth(2).as_deref() == Some("nf4");
    if nf4 {
        model.quantize_nf4(true)?;
    }
    lora::attach(&mut model, &lora::LoraConfig::new(16, 32.0), 0).expect("lora");
    for (_, v) in lora::trainable(&model) {
        v.set(&Tensor::randn(0f32, 0.02, v.dims(), &dev)?)?;
    }
    let prompts: Vec<Vec<u32>> = [
        vec![40u32, 70, 75, 73, 68, 5, 60, 5, 77],
        vec![30, 76, 80, 5, 71],
    ]
    .iter()
    .flat_map(|p| std::iter::repeat_n(p.clone(), 8))
    .collect();
    let p = SamplingParams {
        max_new_tokens: 32,
        min_new_tokens: 32,
        eos: vec![0],
        ..Default::default()
    };
    let time = |f: &dyn Fn(u64) -> candle_core::Result<()>| -> candle_core::Result<f64> {
        f(0)?;
        let t = Instant::now();
        for i in 0..iters {
            f(i as u64)?;
        }
        Ok(t.elapsed().as_secs_f64() / iters as f64)
    };
    let fast = time(&|s| {
        generate(
            &model,
            &prompts,
            &SamplingParams {
                seed: s,
                ..p.clone()
            },
            gym::core::model::Role::Policy,
        )
        .map(drop)
    })?;
    if std::env::var_os("BENCH_FAST_ONLY").is_some() {
        println!(
            "{}",
            serde_json::json!({"iters": iters, "nf4": nf4, "fast_s": fast})
        );
        return Ok(());
    }
    let composed = time(&|s| {
        generate_composed(
            &model,
            &prompts,
            &SamplingParams {
                seed: s,
                ..p.clone()
            },
            gym::core::model::Role::Policy,
        )
        .map(drop)
    })?;
    println!(
        "{}",
        serde_json::json!({"rows": prompts.len(), "nf4": nf4, "tokens": 32, "iters": iters,
            "fast_s": fast, "composed_s": composed, "speedup": composed / fast})
    );
    Ok(())
}
