//! Time of the training attention op alone, forward and forward+backward, on one layer's
//! shapes (default: the mid-size models' 16 query heads, 4 key/value heads of 64, 256
//! positions), causal or with a sliding window; best of 30.
//!
//! Run: `GYM_BLAS=… RAYON_NUM_THREADS=2 cargo run --release --example bench-attention -- [WINDOW]`

/// The allocator of the gym binary (see src/bin/gym.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::time::Instant;

use candle_core::{Device, Tensor, Var};

fn main() -> candle_core::Result<()> {
    // as the gym binary: freed memory kept 60 s, candle's element-wise ops on one thread
    // SAFETY: first thing in main, before any other thread exists.
    unsafe {
        libmimalloc_sys::mi_option_set(15, 60_000);
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    let blas = std::env::var("GYM_BLAS").unwrap_or_default();
    gym::core::blas::select(blas.parse().expect("infallible")).expect("GYM_BLAS");
    let window: Option<usize> = std::env::args().nth(1).and_then(|w| w.parse().ok());
    let (nh, nkv, t, hd) = (16, 4, 256, 64);
    let dev = Device::Cpu;
    let var = |heads| Var::from_tensor(&Tensor::randn(0f32, 1., (1, heads, t, hd), &dev)?);
    let (q, k, v) = (var(nh)?, var(nkv)?, var(nkv)?);
    let mut m = vec![0f32; t * t];
    for i in 0..t {
        for j in 0..t {
            if j > i || window.is_some_and(|w| i >= j + w) {
                m[i * t + j] = gym::core::model::decoder::MASKED;
            }
        }
    }
    let mask = Tensor::from_vec(m, (1, 1, t, t), &dev)?;
    let r = Tensor::randn(0f32, 1., (1, nh, t, hd), &dev)?;
    let (mut fwd, mut both) = (f64::MAX, f64::MAX);
    for _ in 0..30 {
        let t0 = Instant::now();
        let (qt, kt, vt) = (q.as_tensor(), k.as_tensor(), v.as_tensor());
        let o = gym::core::model::ops::attention(qt, kt, vt, &mask, 1.0 / (hd as f64).sqrt())?;
        fwd = fwd.min(t0.elapsed().as_secs_f64());
        drop((o * &r)?.sum_all()?.backward()?);
        both = both.min(t0.elapsed().as_secs_f64());
    }
    println!(
        "{}",
        serde_json::json!({
            "heads": nh, "kv_heads": nkv, "seq": t, "head_dim": hd, "window": window,
            "blas": gym::core::blas::describe(),
            "forward_ms": fwd * 1e3, "forward_backward_ms": both * 1e3,
        })
    );
    Ok(())
}
