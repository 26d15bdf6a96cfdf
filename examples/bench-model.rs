//! Forward+backward throughput and peak RSS of a LoRA training step (NF4 base, LoRA on every
//! linear layer, chunked log-prob loss), for bench/model.sh.
//!
//! Run: `cargo run --release --example bench-model -- MODEL SEQ RANK ITERS`
//! with MODEL `tiny` (the bundled model) or a model folder (bench/model.sh writes a random
//! Qwen3-0.6B-shaped one), quantized to NF4 tensor by tensor while loading as `gym train` does.
//! Prints one JSON line: tokens/s of forward+backward and the peak RSS during the steps
//! (VmHWM after resetting it once the model is built).

/// The allocator of the gym binary (see src/bin/gym.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::time::Instant;

use candle_core::{Device, Tensor};
use gym::core::model::{logprob, lora};

fn peak_rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// As the gym binary (src/bin/gym.rs `keep_freed_memory`): mimalloc's purge delay 60 s.
fn keep_freed_memory() {
    // SAFETY: a plain setter of a global option, called first in main (no other thread yet).
    unsafe { libmimalloc_sys::mi_option_set(15, 60_000) };
}

fn main() -> candle_core::Result<()> {
    keep_freed_memory();
    // as the gym binary (src/bin/gym.rs `set_thread_env`): element-wise ops on one thread unless
    // CANDLE_NUM_THREADS says otherwise; candle's own pool would otherwise spin beside the
    // matrix products' threads
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: first thing in main, before any other thread exists.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
    // as the gym binary's --blas / GYM_BLAS (auto: a system OpenBLAS when installed)
    let blas = std::env::var("GYM_BLAS").unwrap_or_default();
    gym::core::blas::select(blas.parse().expect("infallible")).expect("GYM_BLAS");
    let args: Vec<String> = std::env::args().collect();
    let shape = args.get(1).map(String::as_str).unwrap_or("tiny");
    let seq: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(256);
    let rank: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(16);
    let iters: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(3);
    let dev = Device::Cpu;
    let mut model = match shape {
        "tiny" => {
            gym::core::model::embedded::tiny_qwen3(&dev)
                .expect("bundled model")
                .0
        }
        dir => {
            // a model folder: quantized to NF4 tensor by tensor as it is read (`gym train`'s path)
            let opts = gym::core::model::LoadOptions {
                nf4: std::env::var_os("BENCH_F32").is_none(),
                double_quant: true,
            };
            gym::core::model::load_with(std::path::Path::new(dir), &dev, opts)
                .expect("model folder")
        }
    };
    if std::env::var_os("BENCH_F32").is_none() {
        model.quantize_nf4(true)?; // no-op for weights already quantized on load
    }
    let mut cfg = lora::LoraConfig::new(rank, 2.0 * rank as f64);
    // BENCH_TARGETS=q_proj,k_proj,… adapts those modules instead of the default seven
    if let Ok(t) = std::env::var("BENCH_TARGETS") {
        cfg.target_modules = lora::Targets::List(t.split(',').map(str::to_string).collect());
    }
    lora::attach(&mut model, &cfg, 0).expect("lora");
    let vocab = model.cfg.vocab_size as u32;
    let ids: Vec<u32> = (0..seq as u32).map(|i| (i * 7919 + 13) % vocab).collect();
    let ids = Tensor::from_vec(ids, (1, seq), &dev)?;
    let pos = Tensor::arange(0u32, seq as u32, &dev)?.unsqueeze(0)?;
    let targets = ids.narrow(1, 1, seq - 1)?.flatten_all()?;
    let verbose = std::env::var_os("BENCH_VERBOSE").is_some();
    let step = || -> candle_core::Result<f32> {
        let t0 = Instant::now();
        let h = model.forward_hidden(&ids, &pos, None, gym::core::model::Role::Policy)?;
        let h = h.narrow(1, 0, seq - 1)?.squeeze(0)?;
        let t1 = Instant::now();
        let lp = logprob::token_logprobs(&h, model.lm_head(), &targets, 1.0, 64)?;
        let loss = lp.mean_all()?.neg()?;
        let t2 = Instant::now();
        let g = loss.backward()?;
        drop(g);
        if verbose {
            eprintln!(
                "layers fwd {:.2}s, LM head fwd {:.2}s, backward {:.2}s",
                (t1 - t0).as_secs_f64(),
                (t2 - t1).as_secs_f64(),
                t2.elapsed().as_secs_f64()
            );
        }
        loss.to_scalar::<f32>()
    };
    step()?; // warm-up
    // reset the peak RSS so it measures the training steps, not building the model
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    if verbose {
        eprintln!(
            "RSS after the warm-up step: {:.0} MiB",
            peak_rss_kib() as f64 / 1024.0
        );
    }
    let t = Instant::now();
    let mut loss = 0.0;
    for _ in 0..iters {
        loss = step()?;
    }
    let dt = t.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "impl": "gym", "shape": shape, "seq": seq, "rank": rank, "iters": iters,
            "threads": rayon::current_num_threads(), "loss": loss,
            "blas": gym::core::blas::describe(),
            "tokens_per_s": (seq * iters) as f64 / dt, "peak_rss_mib": peak_rss_kib() as f64 / 1024.0,
        })
    );
    Ok(())
}
