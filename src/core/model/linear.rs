//! A linear layer with a frozen base weight (f32 or NF4) and an optional LoRA adapter.
//!
//! The base product runs as a candle `CustomOp1` whose backward returns only the input
//! gradient: candle would otherwise compute (and keep) the gradient of every frozen weight.
//! An NF4 base is dequantized into a transient f32 matrix inside the op, in forward and again
//! in backward, so at most one layer's full weight exists at a time.

use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CustomOp1, DType, Layout, Result, Shape, Storage, Tensor, Var, bail,
};

use super::nf4::Nf4Tensor;

/// The frozen weight of a linear layer, (out, in) as in PyTorch.
#[derive(Clone)]
pub enum Base {
    F32(Tensor),
    Nf4(std::sync::Arc<Nf4Tensor>),
}

impl Base {
    pub fn dims(&self) -> (usize, usize) {
        match self {
            Base::F32(w) => {
                let d = w.dims();
                (d[0], d[1])
            }
            Base::Nf4(q) => q.shape,
        }
    }

    /// The full f32 weight (dequantized for NF4).
    pub fn to_f32(&self) -> Result<Tensor> {
        match self {
            Base::F32(w) => Ok(w.clone()),
            Base::Nf4(q) => q.dequantize(),
        }
    }
}

/// The two LoRA factors: A (r, in) and B (out, r); the update is scale · B·A(dropout(x)).
pub struct Lora {
    pub a: Var,
    pub b: Var,
    pub scale: f64,
    /// Dropout probability on the adapter's input (PEFT's `lora_dropout`), applied only while
    /// `train_rng` is set (see `Qwen3::set_training`).
    pub dropout: f64,
    pub train_rng: Option<Box<std::sync::Mutex<rand::rngs::StdRng>>>,
}

impl Lora {
    pub fn new(a: Var, b: Var, scale: f64, dropout: f64) -> Self {
        Lora {
            a,
            b,
            scale,
            dropout,
            train_rng: None,
        }
    }

    /// x with each element zeroed with probability p and the rest scaled by 1/(1−p), from the
    /// layer's seeded generator; x itself outside training or when p = 0.
    fn dropout(&self, x: &Tensor) -> Result<Tensor> {
        use rand::Rng;
        let Some(rng) = &self.train_rng else {
            return Ok(x.clone());
        };
        if self.dropout <= 0.0 {
            return Ok(x.clone());
        }
        let p = self.dropout;
        let keep = (1.0 / (1.0 - p)) as f32;
        let mut rng = rng
            .lock()
            .map_err(|_| candle_core::Error::Msg("dropout rng poisoned".into()))?;
        let mask: Vec<f32> = (0..x.elem_count())
            .map(|_| if rng.r#gen::<f64>() < p { 0.0 } else { keep })
            .collect();
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        x * mask
    }
}

pub struct Linear {
    pub base: Base,
    pub lora: Option<Lora>,
}

/// y = x·Wᵀ over the last dimension of x, for a frozen W.
struct FrozenLinear {
    base: Base,
}

/// x (m, k) · Wᵀ with W (n, k) given as CPU storage and layout.
fn matmul_t(
    x: &CpuStorage,
    xl: &Layout,
    m: usize,
    w: &CpuStorage,
    wl: &Layout,
    n: usize,
    k: usize,
) -> Result<CpuStorage> {
    let xl = Layout::contiguous_with_offset((m, k), xl.start_offset());
    let wt = wl.transpose(0, 1)?;
    x.matmul(w, (1, m, n, k), &xl, &wt)
}

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "gym-frozen-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        if !l.is_contiguous() {
            bail!("frozen linear: expected a contiguous input")
        }
        let (n, k) = self.base.dims();
        let dims = l.dims();
        if dims.last() != Some(&k) {
            bail!("frozen linear: input {dims:?} does not end in {k}")
        }
        let m = l.shape().elem_count() / k;
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("non-empty") = n;
        let w = self.base.to_f32()?;
        let (ws, wl) = w.storage_and_layout();
        let Storage::Cpu(wc) = &*ws else {
            bail!("frozen linear: weight is not on the CPU")
        };
        Ok((matmul_t(s, l, m, wc, wl, n, k)?, Shape::from(out_dims)))
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let w = self.base.to_f32()?;
        Ok(Some(g.broadcast_matmul(&w)?))
    }
}

impl Linear {
    pub fn new(base: Base) -> Self {
        Linear { base, lora: None }
    }

    /// x·Wᵀ (+ scale·x·Aᵀ·Bᵀ when the adapter exists and `adapters` is true).
    pub fn forward(&self, x: &Tensor, adapters: bool) -> Result<Tensor> {
        let base = if x.device().is_cpu() && x.dtype() == DType::F32 {
            x.contiguous()?.apply_op1(FrozenLinear {
                base: self.base.clone(),
            })?
        } else {
            let w = self.base.to_f32()?.to_dtype(x.dtype())?.detach();
            x.broadcast_matmul(&w.t()?)?
        };
        match (&self.lora, adapters) {
            (Some(l), true) => {
                let h = l.dropout(x)?.broadcast_matmul(&l.a.as_tensor().t()?)?;
                let d = h.broadcast_matmul(&l.b.as_tensor().t()?)?;
                base + (d * l.scale)?
            }
            _ => Ok(base),
        }
    }

    /// W + scale·B·A as a plain f32 tensor (for merging an adapter into the base).
    pub fn merged_weight(&self) -> Result<Tensor> {
        let w = self.base.to_f32()?;
        match &self.lora {
            None => Ok(w),
            Some(l) => w + (l.b.as_tensor().matmul(l.a.as_tensor())? * l.scale)?,
        }
    }
}
