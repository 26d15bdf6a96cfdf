//! Differentiable fused ops for the training forward: RMS norm, rotary embedding, softmax,
//! SwiGLU. candle 0.11's fused versions (`ops::rms_norm`, `rotary_emb::rope`,
//! `softmax_last_dim`) run forward but silently cut the autograd graph, and the compositions
//! that keep it are slow; these are candle `CustomOp`s with a hand-written backward, each checked
//! against finite differences in the tests below.
//!
//! On a GPU (the `cuda` feature) the same ops run gym's own kernels (kernels/ops.cu, launched
//! by `cuda_fwd` through kernels.rs), each mirroring the CPU function of its op: RMS norm, the
//! q/k norm-and-rotation, rotary embedding, SwiGLU and softmax, forward and backward, all in
//! f32. The attention op runs there as on the CPU, a composition (cuBLAS products and the
//! softmax kernel) whose probabilities are recomputed in the backward rather than kept. Any
//! other device or dtype falls back to the equivalent composition of stock tensor ops, which is
//! correct and differentiable everywhere.

use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, D, DType, Device, Layout, Result, Shape, Storage, Tensor,
    bail,
};
use rayon::prelude::*;

use super::attn_cpu;
#[cfg(feature = "cuda")]
use super::kernels;
use super::vexp;
use crate::core::blas;
#[cfg(feature = "cuda")]
use candle_core::CudaStorage;

/// The contiguous f32 data of an op's input.
fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let v = match s {
        CpuStorage::F32(v) => v.as_slice(),
        _ => bail!("{what}: expected f32, got {:?}", s.dtype()),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => bail!("{what}: expected a contiguous input"),
    }
}

/// The contiguous f32 data of a constant input of an op (a weight, rotation angles), which
/// the op holds as a tensor on its device: here the CPU.
fn with_cpu_f32<R>(t: &Tensor, what: &str, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let (s, l) = t.storage_and_layout();
    match &*s {
        Storage::Cpu(c) => f(f32_slice(c, l, what)?),
        _ => bail!("{what}: expected a tensor on the CPU"),
    }
}

/// Whether the custom ops (and their kernels) serve `x`: f32 on the CPU or on a CUDA GPU.
pub(crate) fn custom_ops_for(x: &Tensor) -> bool {
    x.dtype() == DType::F32 && (x.device().is_cpu() || x.device().is_cuda())
}

/// A constant input of an op as the op holds it: f32, contiguous, on `dev`.
fn op_param(t: &Tensor, dev: &Device) -> Result<Tensor> {
    t.to_dtype(DType::F32)?.to_device(dev)?.contiguous()
}

/// Rows of at least this many elements get one rayon task each; smaller rows are grouped.
fn rows_per_task(row: usize) -> usize {
    (16384 / row.max(1)).max(1)
}

// ------------------------------------------------------------------------------------ rms norm

/// y = x / sqrt(mean(x²) + eps) * w over the last dimension. `w` is frozen (gym trains LoRA
/// factors only), so the backward returns the input gradient alone.
struct RmsNorm {
    /// (d,), f32, on the op's device.
    w: Tensor,
    eps: f32,
}

/// y = x / sqrt(mean(x²) + eps) * w over rows of w.len().
fn rms_norm_rows(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let d = w.len();
    let mut out = vec![0f32; x.len()];
    let k = rows_per_task(d);
    out.par_chunks_mut(d * k)
        .zip(x.par_chunks(d * k))
        .for_each(|(o, x)| {
            for (o, x) in o.chunks_mut(d).zip(x.chunks(d)) {
                let ms = x.iter().map(|v| v * v).sum::<f32>() / d as f32;
                let r = 1.0 / (ms + eps).sqrt();
                for ((o, x), w) in o.iter_mut().zip(x).zip(w) {
                    *o = x * r * w;
                }
            }
        });
    out
}

impl CustomOp1 for RmsNorm {
    fn name(&self) -> &'static str {
        "gym-rms-norm"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "rms_norm")?;
        let out = with_cpu_f32(&self.w, "rms_norm weight", |w| {
            Ok(rms_norm_rows(x, w, self.eps))
        })?;
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        let out = kernels::rms_norm(s, l, &self.w, self.eps)?;
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let g = g.contiguous()?;
        let x = x.contiguous()?;
        Ok(Some(x.apply_op2_no_bwd(
            &g,
            &RmsNormBwd {
                w: self.w.clone(),
                eps: self.eps,
            },
        )?))
    }
}

/// dx = r·(w⊙g) − x·r³·mean(x⊙w⊙g), with r = 1/sqrt(mean(x²)+eps).
struct RmsNormBwd {
    w: Tensor,
    eps: f32,
}

/// dx of `rms_norm_rows` for rows x, output gradient g.
fn rms_norm_bwd_rows(x: &[f32], g: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let d = w.len();
    let mut out = vec![0f32; x.len()];
    let k = rows_per_task(d);
    out.par_chunks_mut(d * k)
        .zip(x.par_chunks(d * k).zip(g.par_chunks(d * k)))
        .for_each(|(o, (x, g))| {
            for ((o, x), g) in o.chunks_mut(d).zip(x.chunks(d)).zip(g.chunks(d)) {
                let ms = x.iter().map(|v| v * v).sum::<f32>() / d as f32;
                let r = 1.0 / (ms + eps).sqrt();
                let dot = x
                    .iter()
                    .zip(g)
                    .zip(w)
                    .map(|((x, g), w)| x * g * w)
                    .sum::<f32>()
                    / d as f32;
                let c = r * r * r * dot;
                for (((o, x), g), w) in o.iter_mut().zip(x).zip(g).zip(w) {
                    *o = r * w * g - x * c;
                }
            }
        });
    out
}

impl CustomOp2 for RmsNormBwd {
    fn name(&self) -> &'static str {
        "gym-rms-norm-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "rms_norm bwd")?;
        let g = f32_slice(s2, l2, "rms_norm bwd")?;
        let out = with_cpu_f32(&self.w, "rms_norm weight", |w| {
            Ok(rms_norm_bwd_rows(x, g, w, self.eps))
        })?;
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let out = kernels::rms_norm_bwd(s1, l1, s2, l2, &self.w, self.eps)?;
        Ok((out, l1.shape().clone()))
    }
}

/// RMS norm over the last dimension with a frozen weight `w` (its gradient is not computed).
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    if custom_ops_for(x) {
        let op = RmsNorm {
            w: op_param(w, x.device())?,
            eps: eps as f32,
        };
        x.contiguous()?.apply_op1(op)
    } else {
        let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
        x.broadcast_div(&(ms + eps)?.sqrt()?)?
            .broadcast_mul(&w.detach())
    }
}

// ------------------------------------------------------------------------------------ softmax

/// Softmax over the last dimension.
struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "gym-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "softmax")?;
        let d = l.dims().last().copied().unwrap_or(1);
        let mut out = vec![0f32; x.len()];
        let k = rows_per_task(d);
        out.par_chunks_mut(d * k)
            .zip(x.par_chunks(d * k))
            .for_each(|(o, x)| {
                for (o, x) in o.chunks_mut(d).zip(x.chunks(d)) {
                    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    o.copy_from_slice(x);
                    let inv = 1.0 / vexp::exp_shifted_sum(o, m);
                    o.iter_mut().for_each(|o| *o *= inv);
                }
            });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        Ok((kernels::softmax(s, l)?, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            y.contiguous()?
                .apply_op2_no_bwd(&g.contiguous()?, &SoftmaxBwd)?,
        ))
    }
}

/// dx = y ⊙ (g − Σ g⊙y).
struct SoftmaxBwd;

impl CustomOp2 for SoftmaxBwd {
    fn name(&self) -> &'static str {
        "gym-softmax-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let y = f32_slice(s1, l1, "softmax bwd")?;
        let g = f32_slice(s2, l2, "softmax bwd")?;
        let d = l1.dims().last().copied().unwrap_or(1);
        let mut out = vec![0f32; y.len()];
        let k = rows_per_task(d);
        out.par_chunks_mut(d * k)
            .zip(y.par_chunks(d * k).zip(g.par_chunks(d * k)))
            .for_each(|(o, (y, g))| {
                for ((o, y), g) in o.chunks_mut(d).zip(y.chunks(d)).zip(g.chunks(d)) {
                    let dot: f32 = y.iter().zip(g).map(|(y, g)| y * g).sum();
                    for ((o, y), g) in o.iter_mut().zip(y).zip(g) {
                        *o = y * (g - dot);
                    }
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        Ok((kernels::softmax_bwd(s1, l1, s2, l2)?, l1.shape().clone()))
    }
}

/// Softmax over the last dimension.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if custom_ops_for(x) {
        x.contiguous()?.apply_op1(Softmax)
    } else {
        candle_nn::ops::softmax(x, D::Minus1)
    }
}

// ------------------------------------------------------------------------------- attention

/// softmax(q·kᵀ·scale + mask)·v for q (b, nh, t, hd) and k, v (b, nkv, s, hd) as composed
/// ops, without a graph (the GPU's path, and other dtypes; f32 on the CPU goes by blocks,
/// `attn_cpu`): the query heads sharing a key/value head are folded into the row dimension,
/// so k and v are never repeated. Returns the probabilities (b, nkv, rep·t, s) and the output
/// (b, nh, t, hd).
fn attention_plain(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    scale: f64,
) -> Result<(Tensor, Tensor)> {
    let (b, nh, t, hd) = q.dims4()?;
    let (nkv, s) = (k.dim(1)?, k.dim(2)?);
    let rep = nh / nkv;
    let q = q.reshape((b, nkv, rep * t, hd))?;
    let scores = blas::matmul(&q, &k.t()?)?;
    let scores = (scores * scale)?
        .reshape((b, nh, t, s))?
        .broadcast_add(mask)?;
    let p = softmax_last_dim(&scores)?.reshape((b, nkv, rep * t, s))?;
    let o = blas::matmul(&p, v)?.reshape((b, nh, t, hd))?;
    Ok((p, o))
}

/// Attention as one op for training: the graph keeps q, k, v and the output, plus on the CPU
/// the probabilities of the blocks the mask keeps when they are small ([`KEEP_ATTENTION_PROBS`]);
/// otherwise the backward recomputes them. The composed ops kept four (b, nh, t, s) tensors
/// per layer (raw, scaled and masked scores, probabilities) until the backward.
struct Attention {
    /// Additive mask (b, 1, t, s), a constant.
    mask: Tensor,
    scale: f64,
    /// The CPU forward's probabilities (its blocks', see `attn_cpu`), kept for the backward
    /// when they have at most [`KEEP_ATTENTION_PROBS`] elements (else the backward recomputes
    /// them).
    probs: std::sync::Mutex<Option<Vec<f32>>>,
}

/// At most this many attention probabilities (b·nh·t·s) per layer are kept from the forward
/// for the backward: 16 MiB, sequences up to 1,024 tokens with 4 heads or 512 with 16.
const KEEP_ATTENTION_PROBS: usize = 1 << 22;

impl Attention {
    fn kept(&self) -> Result<std::sync::MutexGuard<'_, Option<Vec<f32>>>> {
        self.probs
            .lock()
            .map_err(|_| candle_core::Error::Msg("attention: poisoned".into()))
    }
}

/// The blocked CPU attention's shapes for q (b, nh, t, hd), k (b, nkv, s, hd) and the mask
/// (b or 1, 1, t, s), or an error naming the one that does not fit.
fn blocked_dims(q: &[usize], k: &[usize], mask: &[usize]) -> Result<attn_cpu::Dims> {
    let (&[b, nh, t, hd], &[kb, nkv, s, khd]) = (q, k) else {
        bail!("attention: q {q:?} and k {k:?} must be 4-D")
    };
    if kb != b || khd != hd || nkv == 0 || nh % nkv != 0 {
        bail!("attention: k {k:?} does not fit q {q:?}")
    }
    let &[mb, 1, mt, ms] = mask else {
        bail!("attention: mask {mask:?} is not (b, 1, t, s)")
    };
    if (mb != b && mb != 1) || mt != t || ms != s {
        bail!("attention: mask {mask:?} does not fit q {q:?} and k {k:?}")
    }
    Ok(attn_cpu::Dims {
        b,
        nh,
        nkv,
        t,
        s,
        hd,
        mb,
    })
}

/// The mask's values and the blocks of an attention over these shapes.
fn blocked_plan(mask: &Tensor, dims: attn_cpu::Dims) -> Result<(Vec<f32>, attn_cpu::Plan)> {
    let m = mask.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
    let plan = attn_cpu::Plan::new(&m, dims, attn_cpu::BLOCK);
    Ok((m, plan))
}

/// The blocked CPU forward for f32 tensors: the output (b, nh, t, hd), and the probabilities
/// when `keep`.
fn attention_cpu(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    scale: f64,
    keep: bool,
) -> Result<(Tensor, Option<Vec<f32>>)> {
    let dims = blocked_dims(q.dims(), k.dims(), mask.dims())?;
    let (m, plan) = blocked_plan(mask, dims)?;
    let vals = |t: &Tensor| t.contiguous()?.flatten_all()?.to_vec1::<f32>();
    let (qv, kv, vv) = (vals(q)?, vals(k)?, vals(v)?);
    let (o, p) = attn_cpu::forward(&qv, &kv, &vv, &m, scale as f32, &plan, keep);
    Ok((Tensor::from_vec(o, q.dims(), &candle_core::Device::Cpu)?, p))
}

/// Whether the blocked CPU attention applies: f32 tensors on the CPU.
fn blocked_cpu(ts: &[&Tensor]) -> bool {
    ts.iter()
        .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}

/// A GPU op input as a tensor with no graph (a device copy of its storage).
#[cfg(feature = "cuda")]
pub(crate) fn cuda_tensor(s: &CudaStorage, l: &Layout, what: &str) -> Result<Tensor> {
    let Some((a, b)) = l.contiguous_offsets() else {
        bail!("{what}: expected a contiguous input")
    };
    let len = s.as_cuda_slice::<f32>()?.len();
    let full = Tensor::from_storage(
        Storage::Cuda(s.try_clone(l)?),
        len,
        candle_core::op::BackpropOp::none(),
        false,
    );
    full.narrow(0, a, b - a)?.reshape(l.dims())
}

/// A GPU tensor's values as an op output: a copy of its storage when the tensor spans all of
/// it, else of a compact copy's.
#[cfg(feature = "cuda")]
pub(crate) fn cuda_output(t: &Tensor) -> Result<CudaStorage> {
    fn whole(t: &Tensor) -> Result<Option<CudaStorage>> {
        let (s, l) = t.storage_and_layout();
        match &*s {
            Storage::Cuda(c) => {
                let whole = l.is_contiguous()
                    && l.start_offset() == 0
                    && c.as_cuda_slice::<f32>()?.len() == l.shape().elem_count();
                whole.then(|| c.try_clone(l)).transpose()
            }
            _ => bail!("expected a tensor on the GPU"),
        }
    }
    match whole(t)? {
        Some(c) => Ok(c),
        None => match whole(&t.affine(1.0, 0.0)?)? {
            Some(c) => Ok(c),
            None => bail!("cannot take the storage of a {:?} GPU tensor", t.dims()),
        },
    }
}

impl candle_core::CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "gym-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (q, k, v) = (
            f32_slice(s1, l1, "attention q")?,
            f32_slice(s2, l2, "attention k")?,
            f32_slice(s3, l3, "attention v")?,
        );
        let dims = blocked_dims(l1.dims(), l2.dims(), self.mask.dims())?;
        if l3.dims() != l2.dims() {
            bail!(
                "attention: v {:?} does not fit k {:?}",
                l3.dims(),
                l2.dims()
            )
        }
        let (m, plan) = blocked_plan(&self.mask, dims)?;
        let keep = plan.probs_len() <= KEEP_ATTENTION_PROBS;
        let (o, p) = attn_cpu::forward(q, k, v, &m, self.scale as f32, &plan, keep);
        *self.kept()? = p;
        Ok((CpuStorage::F32(o), l1.shape().clone()))
    }

    /// The same composition on the GPU (cuBLAS products, gym's softmax kernel), on device
    /// copies of q, k and v; as on the CPU, the probabilities are not kept for the backward.
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
        s3: &CudaStorage,
        l3: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let q = cuda_tensor(s1, l1, "attention q")?;
        let k = cuda_tensor(s2, l2, "attention k")?;
        let v = cuda_tensor(s3, l3, "attention v")?;
        let (_, o) = attention_plain(&q, &k, &v, &self.mask, self.scale)?;
        Ok((cuda_output(&o)?, o.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _o: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (q, k, v, g) = (q.detach(), k.detach(), v.detach(), g.detach());
        if blocked_cpu(&[&q, &k, &v, &g]) {
            return self.cpu_backward(&q, &k, &v, &g);
        }
        let (b, nh, t, hd) = q.dims4()?;
        let nkv = k.dim(1)?;
        let rep = nh / nkv;
        let p = attention_plain(&q, &k, &v, &self.mask, self.scale)?.0;
        let g = g.contiguous()?.reshape((b, nkv, rep * t, hd))?;
        let dv = blas::matmul(&p.t()?, &g)?;
        let dp = blas::matmul(&g, &v.t()?)?;
        // dscores = p ⊙ (dp − Σ dp ⊙ p), the softmax backward
        let ds = p.apply_op2_no_bwd(&dp.contiguous()?, &SoftmaxBwd)?;
        let dq = (blas::matmul(&ds, &k)? * self.scale)?.reshape((b, nh, t, hd))?;
        let qf = q.reshape((b, nkv, rep * t, hd))?;
        let dk = (blas::matmul(&ds.t()?, &qf)? * self.scale)?;
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}

impl Attention {
    /// The backward on the CPU, by the forward's blocks (`attn_cpu`), from the kept
    /// probabilities or recomputing them.
    fn cpu_backward(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dims = blocked_dims(q.dims(), k.dims(), self.mask.dims())?;
        let (m, plan) = blocked_plan(&self.mask, dims)?;
        let kept = self.kept()?.take();
        let vals = |t: &Tensor| t.contiguous()?.flatten_all()?.to_vec1::<f32>();
        let (qv, kv, vv, gv) = (vals(q)?, vals(k)?, vals(v)?, vals(g)?);
        let scale = self.scale as f32;
        let (dq, dk, dv) = attn_cpu::backward(&qv, &kv, &vv, &m, scale, &plan, kept, &gv);
        let cpu = &candle_core::Device::Cpu;
        Ok((
            Some(Tensor::from_vec(dq, q.dims(), cpu)?),
            Some(Tensor::from_vec(dk, k.dims(), cpu)?),
            Some(Tensor::from_vec(dv, v.dims(), cpu)?),
        ))
    }
}

/// softmax(q·kᵀ·scale + mask)·v for q (b, nh, t, hd), k and v (b, nkv, s, hd) (grouped-query:
/// nh a multiple of nkv) and an additive mask (b, 1, t, s). When a gradient can flow (training)
/// on the CPU or a CUDA GPU (f32) this is one op with a hand-written backward (on the CPU by
/// blocks of queries over the keys their mask keeps, `attn_cpu`, keeping the probabilities
/// when they are small; on the GPU recomputing them). Without a gradient (decoding, reference
/// passes) f32 on the CPU takes the same blocks, other devices the composed ops.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    let tracked = q.track_op() || k.track_op() || v.track_op();
    if tracked && custom_ops_for(q) {
        let op = Attention {
            mask: mask.detach().contiguous()?,
            scale,
            probs: std::sync::Mutex::new(None),
        };
        q.contiguous()?
            .apply_op3(&k.contiguous()?, &v.contiguous()?, op)
    } else if !tracked && blocked_cpu(&[q, k, v, mask]) {
        Ok(attention_cpu(q, k, v, mask, scale, false)?.0)
    } else {
        Ok(attention_plain(q, k, v, mask, scale)?.1)
    }
}

// ------------------------------------------------------------------------------------ rope

/// Rotary embedding, "rotate half" layout (as transformers' Qwen3): for x of shape (b, h, t, d)
/// and cos/sin of shape (b, t, d/2), out[:d/2] = x1·cos − x2·sin, out[d/2:] = x2·cos + x1·sin.
/// cos/sin are constants; the backward is the rotation by the opposite angle.
struct Rope {
    /// (b, t, d/2) each, f32, contiguous, on the op's device.
    cos: Tensor,
    sin: Tensor,
    /// (b, h, t, d)
    dims: (usize, usize, usize, usize),
    /// true in the backward: rotate by −θ.
    inverse: bool,
}

impl Rope {
    /// The rotation of the opposite direction (the backward).
    fn inverted(&self) -> Rope {
        Rope {
            cos: self.cos.clone(),
            sin: self.sin.clone(),
            dims: self.dims,
            inverse: !self.inverse,
        }
    }

    /// +1, or −1 for the inverse rotation.
    fn sign(&self) -> f32 {
        if self.inverse { -1f32 } else { 1f32 }
    }

    fn apply(&self, x: &[f32]) -> Result<Vec<f32>> {
        with_cpu_f32(&self.cos, "rope cos", |cos| {
            with_cpu_f32(
                &self.sin,
                "rope sin",
                |sin| Ok(self.apply_with(x, cos, sin)),
            )
        })
    }

    fn apply_with(&self, x: &[f32], cos: &[f32], sin: &[f32]) -> Vec<f32> {
        let (_b, h, t, d) = self.dims;
        let half = d / 2;
        let mut out = vec![0f32; x.len()];
        let sign = self.sign();
        // one task per (batch, head): the angle rows of batch bi are cos[bi*t*half ..]
        out.par_chunks_mut(t * d)
            .zip(x.par_chunks(t * d))
            .enumerate()
            .for_each(|(bh, (o, x))| {
                let bi = bh / h;
                for ti in 0..t {
                    let a = (bi * t + ti) * half;
                    let (c, s) = (&cos[a..a + half], &sin[a..a + half]);
                    let x = &x[ti * d..(ti + 1) * d];
                    let o = &mut o[ti * d..(ti + 1) * d];
                    for i in 0..half {
                        let (x1, x2) = (x[i], x[i + half]);
                        let si = sign * s[i];
                        o[i] = x1 * c[i] - x2 * si;
                        o[i + half] = x2 * c[i] + x1 * si;
                    }
                }
            });
        out
    }
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "gym-rope"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "rope")?;
        Ok((CpuStorage::F32(self.apply(x)?), l.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        let out = kernels::rope(s, l, &self.cos, &self.sin, self.dims, self.sign())?;
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(g.contiguous()?.apply_op1_no_bwd(&self.inverted())?))
    }
}

/// Swaps the two middle axes of a contiguous (a, m, n, d) array: (a, n, m, d) out. Used both
/// ways, (b, t, h, d) → (b, h, t, d) and back.
fn swap_middle_axes(x: &[f32], (a, m, n, d): (usize, usize, usize, usize)) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for ai in 0..a {
        for mi in 0..m {
            for ni in 0..n {
                let src = ((ai * m + mi) * n + ni) * d;
                let dst = ((ai * n + ni) * m + mi) * d;
                out[dst..dst + d].copy_from_slice(&x[src..src + d]);
            }
        }
    }
    out
}

/// rope(rms_norm(x).transpose(1, 2)) for the per-head q/k norm of x (b, t, h, d), as one graph
/// node: the composed graph kept the normed, the transposed copy and the rotated tensors, this
/// keeps x and the output only (the normed values are recomputed in the backward).
struct NormRope {
    norm: RmsNorm,
    rope: Rope,
}

impl CustomOp1 for NormRope {
    fn name(&self) -> &'static str {
        "gym-norm-rope"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, h, t, d) = self.rope.dims;
        if l.dims() != [b, t, h, d] {
            bail!(
                "norm-rope: input {:?}, expected ({b}, {t}, {h}, {d})",
                l.dims()
            )
        }
        let (normed, _) = self.norm.cpu_fwd(s, l)?;
        let CpuStorage::F32(normed) = normed else {
            bail!("norm-rope: expected f32")
        };
        let moved = swap_middle_axes(&normed, (b, t, h, d));
        drop(normed);
        Ok((
            CpuStorage::F32(self.rope.apply(&moved)?),
            Shape::from((b, h, t, d)),
        ))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        let (b, h, t, d) = self.rope.dims;
        let (norm, rope) = (&self.norm, &self.rope);
        let out = kernels::norm_rope(
            s,
            l,
            (&norm.w, norm.eps),
            (&rope.cos, &rope.sin, rope.sign()),
            rope.dims,
        )?;
        Ok((out, Shape::from((b, h, t, d))))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let (b, h, t, d) = self.rope.dims;
        let gr = g.contiguous()?.apply_op1_no_bwd(&self.rope.inverted())?;
        let gt = if gr.device().is_cpu() {
            let gr = gr.flatten_all()?.to_vec1::<f32>()?;
            Tensor::from_vec(
                swap_middle_axes(&gr, (b, h, t, d)),
                (b, t, h, d),
                g.device(),
            )?
        } else {
            gr.transpose(1, 2)?.contiguous()?
        };
        self.norm.bwd(x, _res, &gt)
    }
}

/// rope(rms_norm(x, w).transpose(1, 2)) for x (b, t, h, d): the q/k head norm and rotation of
/// attention, (b, h, t, d) out, keeping only x and the output for the backward on the CPU.
pub fn norm_rope(x: &Tensor, w: &Tensor, eps: f64, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (b, t, h, d) = x.dims4()?;
    if custom_ops_for(x)
        && cos.dims() == [b, t, d / 2]
        && sin.dims() == [b, t, d / 2]
        && d.is_multiple_of(2)
    {
        let op = NormRope {
            norm: RmsNorm {
                w: op_param(w, x.device())?,
                eps: eps as f32,
            },
            rope: Rope {
                cos: op_param(cos, x.device())?,
                sin: op_param(sin, x.device())?,
                dims: (b, h, t, d),
                inverse: false,
            },
        };
        x.contiguous()?.apply_op1(op)
    } else {
        rope(
            &rms_norm(x, w, eps)?.transpose(1, 2)?.contiguous()?,
            cos,
            sin,
        )
    }
}

/// Rotary embedding of x (b, h, t, d) with per-row angles cos/sin (b, t, d/2).
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (b, h, t, d) = x.dims4()?;
    if cos.dims() != [b, t, d / 2] || sin.dims() != [b, t, d / 2] || !d.is_multiple_of(2) {
        bail!(
            "rope: x {:?} needs cos/sin of shape ({b}, {t}, {}), got {:?}/{:?}",
            x.dims(),
            d / 2,
            cos.dims(),
            sin.dims()
        )
    }
    if custom_ops_for(x) {
        let op = Rope {
            cos: op_param(cos, x.device())?,
            sin: op_param(sin, x.device())?,
            dims: (b, h, t, d),
            inverse: false,
        };
        x.contiguous()?.apply_op1(op)
    } else {
        let (c, s) = (cos.unsqueeze(1)?, sin.unsqueeze(1)?);
        let x1 = x.narrow(D::Minus1, 0, d / 2)?;
        let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
        let o1 = (x1.broadcast_mul(&c)? - x2.broadcast_mul(&s)?)?;
        let o2 = (x2.broadcast_mul(&c)? + x1.broadcast_mul(&s)?)?;
        Tensor::cat(&[o1, o2], D::Minus1)
    }
}

// ------------------------------------------------------------------------------------ swiglu

/// silu(gate) ⊙ up.
struct SwiGlu;

/// Values per σ pass of SwiGLU's loops (a stack buffer).
const SIG_CHUNK: usize = 1024;

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "gym-swiglu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = f32_slice(s1, l1, "swiglu")?;
        let u = f32_slice(s2, l2, "swiglu")?;
        if l1.shape() != l2.shape() {
            bail!("swiglu: shapes {:?} and {:?}", l1.dims(), l2.dims())
        }
        let mut out = vec![0f32; g.len()];
        out.par_chunks_mut(16384)
            .zip(g.par_chunks(16384).zip(u.par_chunks(16384)))
            .for_each(|(o, (g, u))| {
                let mut sig = [0f32; SIG_CHUNK];
                for ((o, g), u) in o
                    .chunks_mut(SIG_CHUNK)
                    .zip(g.chunks(SIG_CHUNK))
                    .zip(u.chunks(SIG_CHUNK))
                {
                    let sig = &mut sig[..g.len()];
                    vexp::sigmoid_into(g, sig);
                    for (((o, g), u), s) in o.iter_mut().zip(g).zip(u).zip(sig.iter()) {
                        *o = g * s * u;
                    }
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        Ok((kernels::swiglu(s1, l1, s2, l2)?, l1.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // one pass computing both gradients, stacked on a new leading dimension
        let d = if gate.device().is_cpu() {
            let (g, u) = (gate.contiguous()?, up.contiguous()?);
            g.apply_op3_no_bwd(&u, &grad.contiguous()?, &SwiGluGrads)?
        } else {
            let both = Tensor::stack(&[gate.contiguous()?, up.contiguous()?], 0)?;
            both.apply_op2_no_bwd(&grad.contiguous()?, &SwiGluBwd)?
        };
        Ok((Some(d.get(0)?), Some(d.get(1)?)))
    }
}

/// stack(d gate, d up) for the output gradient dy: d up = dy·silu(g), d gate =
/// dy·u·σ(g)·(1 + g·(1 − σ(g))), in one pass.
fn swiglu_grads(g: &[f32], u: &[f32], dy: &[f32]) -> Vec<f32> {
    let n = dy.len();
    let mut out = vec![0f32; 2 * n];
    let (dg, du) = out.split_at_mut(n);
    dg.par_chunks_mut(16384)
        .zip(du.par_chunks_mut(16384))
        .zip(
            g.par_chunks(16384)
                .zip(u.par_chunks(16384))
                .zip(dy.par_chunks(16384)),
        )
        .for_each(|((dg, du), ((g, u), dy))| {
            let mut sig = [0f32; SIG_CHUNK];
            for (start, g) in (0..).step_by(SIG_CHUNK).zip(g.chunks(SIG_CHUNK)) {
                let sig = &mut sig[..g.len()];
                vexp::sigmoid_into(g, sig);
                for (j, &s) in sig.iter().enumerate() {
                    let (i, g) = (start + j, g[j]);
                    let silu = g * s;
                    du[i] = dy[i] * silu;
                    dg[i] = dy[i] * u[i] * s * (1.0 + g * (1.0 - s));
                }
            }
        });
    out
}

/// The CPU's SwiGLU backward from gate, up and the output gradient as three inputs (no
/// stacked copy of gate and up); output: stack(d gate, d up).
struct SwiGluGrads;

impl candle_core::CustomOp3 for SwiGluGrads {
    fn name(&self) -> &'static str {
        "gym-swiglu-grads"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if l1.shape() != l2.shape() || l1.shape() != l3.shape() {
            bail!(
                "swiglu bwd: shapes {:?}, {:?}, {:?}",
                l1.dims(),
                l2.dims(),
                l3.dims()
            )
        }
        let g = f32_slice(s1, l1, "swiglu bwd gate")?;
        let u = f32_slice(s2, l2, "swiglu bwd up")?;
        let dy = f32_slice(s3, l3, "swiglu bwd gradient")?;
        let mut dims = vec![2];
        dims.extend_from_slice(l1.dims());
        Ok((CpuStorage::F32(swiglu_grads(g, u, dy)), Shape::from(dims)))
    }
}

/// Input: stack(gate, up) and the output gradient; output: stack(d gate, d up).
struct SwiGluBwd;

impl CustomOp2 for SwiGluBwd {
    fn name(&self) -> &'static str {
        "gym-swiglu-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let gu = f32_slice(s1, l1, "swiglu bwd")?;
        let dy = f32_slice(s2, l2, "swiglu bwd")?;
        let (g, u) = gu.split_at(dy.len());
        let out = swiglu_grads(g, u, dy);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        Ok((kernels::swiglu_bwd(s1, l1, s2, l2)?, l1.shape().clone()))
    }
}

/// silu(gate) ⊙ up, differentiable in both.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if custom_ops_for(gate) && up.dtype() == DType::F32 {
        gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)
    } else {
        gate.silu()? * up
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    /// Max relative error between autograd and central finite differences of
    /// L(x) = Σ f(x) ⊙ r, on `k` coordinates (f64 accumulation of the difference quotient).
    /// Equal values, bit for bit, when the builtin products run; within f32 rounding of the
    /// summation order (1e-5 of the largest magnitude) when a system BLAS runs some of them.
    pub fn assert_same_values(got: &[f32], want: &[f32], what: &str) {
        if !crate::core::blas::is_system() {
            assert_eq!(got, want, "{what}");
            return;
        }
        assert_eq!(got.len(), want.len(), "{what}");
        let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
        let worst = got
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            worst <= 1e-5 * scale,
            "{what}: differs by {worst} (scale {scale})"
        );
    }

    pub fn fd_check(x0: &Tensor, f: &dyn Fn(&Tensor) -> Result<Tensor>, k: usize) -> f32 {
        let x = Var::from_tensor(x0).unwrap();
        let y = f(x.as_tensor()).unwrap();
        let r = Tensor::randn(0f32, 1., y.shape(), &Device::Cpu).unwrap();
        let grads = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g = grads
            .get(x.as_tensor())
            .expect("input receives a gradient")
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let xv = x0.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let loss = |v: Vec<f32>| -> f64 {
            let t = Tensor::from_vec(v, x0.shape(), &Device::Cpu).unwrap();
            let y = f(&t).unwrap().to_dtype(DType::F64).unwrap();
            (y * r.to_dtype(DType::F64).unwrap())
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        let eps = 1e-2f32;
        let mut worst = 0f32;
        for j in 0..k.min(xv.len()) {
            let i = (j * 7919 + 13) % xv.len();
            let mut p = xv.clone();
            p[i] += eps;
            let mut m = xv.clone();
            m[i] -= eps;
            let fd = ((loss(p) - loss(m)) / (2.0 * eps as f64)) as f32;
            let rel = (fd - g[i]).abs() / fd.abs().max(g[i].abs()).max(1e-1);
            worst = worst.max(rel);
        }
        worst
    }

    fn randn(shape: &[usize]) -> Tensor {
        Tensor::randn(0f32, 1., shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn rms_norm_matches_composition_and_finite_differences() {
        let x = randn(&[3, 5, 16]);
        let w = (randn(&[16]) * 0.3).unwrap().affine(1., 1.).unwrap();
        let fast = rms_norm(&x, &w, 1e-6).unwrap();
        let slow = candle_nn::ops::rms_norm_slow(&x, &w, 1e-6).unwrap();
        let d = (fast - slow).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-5);
        let e = fd_check(&x, &|t| rms_norm(t, &w, 1e-6), 40);
        assert!(e < 1e-2, "rms_norm grad rel err {e}");
    }

    #[test]
    fn softmax_matches_composition_and_finite_differences() {
        let x = randn(&[2, 3, 4, 7]);
        let fast = softmax_last_dim(&x).unwrap();
        let slow = candle_nn::ops::softmax(&x, D::Minus1).unwrap();
        let d = (fast - slow).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-6);
        let e = fd_check(&x, &|t| softmax_last_dim(t), 40);
        assert!(e < 1e-2, "softmax grad rel err {e}");
    }

    #[test]
    fn rope_matches_composition_and_finite_differences() {
        let x = randn(&[2, 3, 5, 8]);
        let ang = randn(&[2, 5, 4]);
        let (c, s) = (ang.cos().unwrap(), ang.sin().unwrap());
        let fast = rope(&x, &c, &s).unwrap();
        // the composition (used off the CPU)
        let (cu, su) = (c.unsqueeze(1).unwrap(), s.unsqueeze(1).unwrap());
        let x1 = x.narrow(3, 0, 4).unwrap();
        let x2 = x.narrow(3, 4, 4).unwrap();
        let o1 = (x1.broadcast_mul(&cu).unwrap() - x2.broadcast_mul(&su).unwrap()).unwrap();
        let o2 = (x2.broadcast_mul(&cu).unwrap() + x1.broadcast_mul(&su).unwrap()).unwrap();
        let slow = Tensor::cat(&[o1, o2], 3).unwrap();
        let d = (fast - slow).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-6);
        let e = fd_check(&x, &|t| rope(t, &c, &s), 40);
        assert!(e < 1e-2, "rope grad rel err {e}");
    }

    #[test]
    fn norm_rope_matches_the_composed_ops_and_their_gradient() {
        let (b, t, h, d) = (2, 5, 3, 8);
        let x = randn(&[b, t, h, d]);
        let w = randn(&[d]);
        let ang = randn(&[b, t, d / 2]);
        let (cos, sin) = (ang.cos().unwrap(), ang.sin().unwrap());
        let composed = |x: &Tensor| {
            rope(
                &rms_norm(x, &w, 1e-6)?.transpose(1, 2)?.contiguous()?,
                &cos,
                &sin,
            )
        };
        let fused = |x: &Tensor| norm_rope(x, &w, 1e-6, &cos, &sin);
        let flat = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(flat(fused(&x).unwrap()), flat(composed(&x).unwrap()));
        let xv = Var::from_tensor(&x).unwrap();
        let r = randn(&[b, h, t, d]);
        let grad = |f: &dyn Fn(&Tensor) -> Result<Tensor>| {
            let gs = (f(xv.as_tensor()).unwrap() * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            flat(gs.get(xv.as_tensor()).unwrap().clone())
        };
        assert_eq!(grad(&fused), grad(&composed));
        let e = fd_check(&x, &fused, 40);
        assert!(e < 1e-2, "norm-rope grad rel err {e}");
    }

    #[test]
    fn swiglu_matches_composition_and_finite_differences() {
        let g = randn(&[4, 9]);
        let u = randn(&[4, 9]);
        let fast = swiglu(&g, &u).unwrap();
        let slow = (g.silu().unwrap() * &u).unwrap();
        let d = (fast - slow).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-6);
        let e = fd_check(&g, &|t| swiglu(t, &u), 36);
        assert!(e < 1e-2, "swiglu d gate rel err {e}");
        let e = fd_check(&u, &|t| swiglu(&g, t), 36);
        assert!(e < 1e-2, "swiglu d up rel err {e}");
    }

    #[test]
    fn attention_op_matches_the_composed_ops_and_finite_differences() {
        let (b, nh, nkv, t, hd) = (2, 4, 2, 5, 8);
        let q = randn(&[b, nh, t, hd]);
        let k = randn(&[b, nkv, t, hd]);
        let v = randn(&[b, nkv, t, hd]);
        // causal mask with the first position of batch 1 padded out
        let mut m = vec![0f32; b * t * t];
        for bi in 0..b {
            for i in 0..t {
                for j in 0..t {
                    if j > i || (bi == 1 && j == 0 && i > 0) {
                        m[(bi * t + i) * t + j] = -1e9;
                    }
                }
            }
        }
        let mask = Tensor::from_vec(m, (b, 1, t, t), &Device::Cpu).unwrap();
        let scale = 1.0 / (hd as f64).sqrt();
        let flat = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // composed ops with autograd (the path this op replaces)
        let composed = |q: &Tensor, k: &Tensor, v: &Tensor| {
            let qf = q.reshape((b, nkv, 2 * t, hd))?;
            let s = (qf.matmul(&k.t()?)? * scale)?
                .reshape((b, nh, t, t))?
                .broadcast_add(&mask)?;
            let p = softmax_last_dim(&s)?.reshape((b, nkv, 2 * t, t))?;
            p.matmul(v)?.reshape((b, nh, t, hd))
        };
        let (qv, kv, vv) = (
            Var::from_tensor(&q).unwrap(),
            Var::from_tensor(&k).unwrap(),
            Var::from_tensor(&v).unwrap(),
        );
        let fused =
            attention(qv.as_tensor(), kv.as_tensor(), vv.as_tensor(), &mask, scale).unwrap();
        let plain = composed(qv.as_tensor(), kv.as_tensor(), vv.as_tensor()).unwrap();
        assert_same_values(&flat(fused.clone()), &flat(plain.clone()), "attention");
        let r = randn(&[b, nh, t, hd]);
        let gf = (fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gp = (plain * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for x in [&qv, &kv, &vv] {
            let a = flat(gf.get(x.as_tensor()).unwrap().clone());
            let c = flat(gp.get(x.as_tensor()).unwrap().clone());
            let d = a
                .iter()
                .zip(&c)
                .map(|(a, c)| (a - c).abs())
                .fold(0f32, f32::max);
            assert!(
                d < 1e-5,
                "attention grad differs from the composed ops by {d}"
            );
        }
        let e = fd_check(&q, &|t| attention(t, &k, &v, &mask, scale), 40);
        assert!(e < 1e-2, "attention d q rel err {e}");
        let e = fd_check(&k, &|t| attention(&q, t, &v, &mask, scale), 40);
        assert!(e < 1e-2, "attention d k rel err {e}");
        let e = fd_check(&v, &|t| attention(&q, &k, t, &mask, scale), 40);
        assert!(e < 1e-2, "attention d v rel err {e}");
    }

    /// An additive mask (mb, 1, t, s) for t queries after s − t cached keys: causal, keys
    /// outside a sliding `window` hidden, batch 1's first key padded out, and with `empty_row`
    /// batch 1's first query hiding every key.
    fn test_mask(
        mb: usize,
        t: usize,
        s: usize,
        window: Option<usize>,
        empty_row: bool,
    ) -> Vec<f32> {
        let mut m = vec![0f32; mb * t * s];
        for bi in 0..mb {
            for i in 0..t {
                let q = s - t + i;
                for j in 0..s {
                    let hidden = j > q
                        || window.is_some_and(|w| q >= j + w)
                        || (bi == 1 && j == 0)
                        || (bi == 1 && i == 0 && empty_row);
                    if hidden {
                        m[(bi * t + i) * s + j] = -1e9;
                    }
                }
            }
        }
        m
    }

    /// The blocked CPU attention (`attn_cpu`), forward and backward, against the composed
    /// candle ops and their autograd on the masks the models build — causal, sliding window,
    /// padding, a row hiding every key, queries after cached keys, one mask for all batches —
    /// with blocks of 1, 2, 3 and the default size, grouped and plain heads; and a causal mask
    /// must leave out the masked blocks' scores.
    #[test]
    fn blocked_attention_matches_the_composed_ops_on_every_mask() {
        let cases = [
            // (b, nh, nkv, t, s, mb, window, empty_row)
            (2, 4, 2, 7, 7, 2, None, false),
            (2, 4, 2, 7, 7, 2, Some(3), false),
            (2, 2, 2, 6, 9, 2, None, true),
            (2, 6, 2, 5, 5, 1, Some(2), false),
            (1, 3, 1, 1, 4, 1, None, false),
        ];
        for (b, nh, nkv, t, s, mb, window, empty_row) in cases {
            let hd = 8;
            let (q, k, v) = (
                randn(&[b, nh, t, hd]),
                randn(&[b, nkv, s, hd]),
                randn(&[b, nkv, s, hd]),
            );
            let m = test_mask(mb, t, s, window, empty_row);
            let mask = Tensor::from_vec(m.clone(), (mb, 1, t, s), &Device::Cpu).unwrap();
            let scale = 1.0 / (hd as f64).sqrt();
            let r = randn(&[b, nh, t, hd]);
            let rep = nh / nkv;
            let composed = |x: &[Tensor]| {
                let qf = x[0].reshape((b, nkv, rep * t, hd))?;
                let sc = (qf.matmul(&x[1].t()?)? * scale)?
                    .reshape((b, nh, t, s))?
                    .broadcast_add(&mask)?;
                let p = softmax_last_dim(&sc)?.reshape((b, nkv, rep * t, s))?;
                p.matmul(&x[2])?.reshape((b, nh, t, hd))
            };
            let (want, wgrads) = value_and_grads(&Device::Cpu, &[&q, &k, &v], &r, &composed);
            let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let (qv, kv, vv, rv) = (flat(&q), flat(&k), flat(&v), flat(&r));
            let dims = blocked_dims(q.dims(), k.dims(), mask.dims()).unwrap();
            for block in [1, 2, 3, attn_cpu::BLOCK] {
                let what =
                    format!("b{b} nh{nh} nkv{nkv} t{t} s{s} mb{mb} {window:?} block {block}");
                let plan = attn_cpu::Plan::new(&m, dims, block);
                let (o, p) = attn_cpu::forward(&qv, &kv, &vv, &m, scale as f32, &plan, true);
                assert_close(&format!("{what}: output"), &o, &want, 1e-5);
                for probs in [p, None] {
                    let (dq, dk, dv) =
                        attn_cpu::backward(&qv, &kv, &vv, &m, scale as f32, &plan, probs, &rv);
                    for (name, got, want) in [
                        ("dq", &dq, &wgrads[0]),
                        ("dk", &dk, &wgrads[1]),
                        ("dv", &dv, &wgrads[2]),
                    ] {
                        assert_close(&format!("{what}: {name}"), got, want, 1e-5);
                    }
                }
            }
        }
        // degenerate shapes: no queries, no keys, empty heads — empty or zero results
        for (t, s, hd) in [(0, 0, 4), (0, 3, 4), (2, 0, 4), (2, 2, 0)] {
            let dims = blocked_dims(&[1, 2, t, hd], &[1, 1, s, hd], &[1, 1, t, s]).unwrap();
            let m = vec![0f32; t * s];
            let plan = attn_cpu::Plan::new(&m, dims, 2);
            let q = vec![1f32; 2 * t * hd];
            let kv = vec![1f32; s * hd];
            let (o, p) = attn_cpu::forward(&q, &kv, &kv, &m, 1.0, &plan, true);
            assert!(o.iter().all(|&x| x == 0.0) && o.len() == q.len());
            let (dq, dk, dv) = attn_cpu::backward(&q, &kv, &kv, &m, 1.0, &plan, p, &q);
            assert!(dq.iter().chain(&dk).chain(&dv).all(|&x| x == 0.0));
            assert_eq!(
                (dq.len(), dk.len(), dv.len()),
                (q.len(), kv.len(), kv.len())
            );
        }
        // causal over 64 positions by blocks of 8: (64 + 8)/128 of the scores, not all
        let (t, hd) = (64, 4);
        let m = test_mask(1, t, t, None, false);
        let dims = blocked_dims(&[1, 2, t, hd], &[1, 2, t, hd], &[1, 1, t, t]).unwrap();
        let plan = attn_cpu::Plan::new(&m, dims, 8);
        assert_eq!(
            plan.probs_len(),
            2 * 8 * (8 + 16 + 24 + 32 + 40 + 48 + 56 + 64)
        );
        // a 16-key window: each block of 8 sees at most 8 + 15 keys
        let m = test_mask(1, t, t, Some(16), false);
        let plan = attn_cpu::Plan::new(&m, dims, 8);
        assert!(plan.probs_len() <= 2 * t * 23, "{}", plan.probs_len());
    }

    /// Output and input gradients of `f` on `dev`: f(x) and d/dx Σ f(x) ⊙ r, as CPU vectors.
    fn value_and_grads(
        dev: &Device,
        xs: &[&Tensor],
        r: &Tensor,
        f: &dyn Fn(&[Tensor]) -> Result<Tensor>,
    ) -> (Vec<f32>, Vec<Vec<f32>>) {
        let vars: Vec<Var> = xs
            .iter()
            .map(|x| Var::from_tensor(&x.to_device(dev).unwrap()).unwrap())
            .collect();
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let y = f(&ts).unwrap();
        assert!(y.device().same_device(dev));
        let gs = (&y * r.to_device(dev).unwrap())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let flat = |t: &Tensor| {
            t.to_device(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        let grads = ts.iter().map(|t| flat(gs.get(t).unwrap())).collect();
        (flat(&y), grads)
    }

    /// |a − b| ≤ tol · max(1, max |b|) everywhere.
    fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        let scale = b.iter().fold(1f32, |m, x| m.max(x.abs()));
        let d = a
            .iter()
            .zip(b)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(d <= tol * scale, "{what}: max |Δ| = {d} (scale {scale})");
    }

    /// Every custom op, forward and backward, on the test device (`GYM_TEST_DEVICE`; on a GPU
    /// these are gym's kernels: kernels/ops.cu) against the CPU op: f32, |Δ| ≤ 1e-5·max(1, |ref|)
    /// (the kernels sum rows in another order, and expf is within 2 ulp of the CPU's exp).
    /// Shapes are Qwen3-like rows (d = 128, 1024) so the row kernels loop over their threads.
    #[test]
    fn custom_ops_on_the_test_device_match_the_cpu() {
        let dev = crate::core::device::test_device();
        let (b, t, h, d) = (2, 5, 3, 128);
        let x = randn(&[b, t, h, d]);
        let w = randn(&[d]).affine(0.3, 1.0).unwrap();
        let ang = randn(&[b, t, d / 2]);
        let (cos, sin) = (ang.cos().unwrap(), ang.sin().unwrap());
        let hidden = randn(&[b, t, 1024]);
        let wh = randn(&[1024]).affine(0.3, 1.0).unwrap();
        let up = randn(&[b, t, 1024]);
        // grouped-query attention: 4 query heads over 2 key/value heads, a causal mask with
        // batch 1's first position padded out
        let (q, kv, vv) = (
            randn(&[b, 4, t, d]),
            randn(&[b, 2, t, d]),
            randn(&[b, 2, t, d]),
        );
        let mask: Vec<f32> = (0..b * t * t)
            .map(|i| {
                let (bi, r, c) = (i / (t * t), (i / t) % t, i % t);
                if c > r || (bi == 1 && c == 0 && r > 0) {
                    -1e9
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, (b, 1, t, t), &Device::Cpu).unwrap();
        let scale = 1.0 / (d as f64).sqrt();
        let (h2, lm) = (randn(&[10, d]), randn(&[300, d]).affine(0.1, 0.0).unwrap());
        let tg = Tensor::new(&[3u32, 0, 299, 7, 7, 12, 30, 150, 1, 2], &Device::Cpu).unwrap();
        let on = |t: &Tensor, dev: &Device| t.to_device(dev).unwrap();
        type Case<'a> = (
            &'a str,
            Vec<&'a Tensor>,
            Vec<usize>,
            Box<dyn Fn(&[Tensor], &Device) -> Result<Tensor> + 'a>,
        );
        let x_bhtd = x.transpose(1, 2).unwrap().contiguous().unwrap();
        let cases: Vec<Case> = vec![
            (
                "rms_norm",
                vec![&hidden],
                vec![b, t, 1024],
                Box::new(|v, dev| rms_norm(&v[0], &on(&wh, dev), 1e-6)),
            ),
            (
                "norm_rope",
                vec![&x],
                vec![b, h, t, d],
                Box::new(|v, dev| {
                    norm_rope(&v[0], &on(&w, dev), 1e-6, &on(&cos, dev), &on(&sin, dev))
                }),
            ),
            (
                "rope",
                vec![&x_bhtd],
                vec![b, h, t, d],
                Box::new(|v, dev| rope(&v[0], &on(&cos, dev), &on(&sin, dev))),
            ),
            (
                "swiglu",
                vec![&hidden, &up],
                vec![b, t, 1024],
                Box::new(|v, _| swiglu(&v[0], &v[1])),
            ),
            (
                "attention",
                vec![&q, &kv, &vv],
                vec![b, 4, t, d],
                Box::new(|v, dev| attention(&v[0], &v[1], &v[2], &on(&mask, dev), scale)),
            ),
            (
                "token_logprobs (chunked, LM head 300 × 128)",
                vec![&h2],
                vec![10],
                Box::new(|v, dev| {
                    super::super::logprob::token_logprobs(
                        &v[0],
                        &on(&lm, dev),
                        &on(&tg, dev),
                        0.7,
                        4,
                    )
                }),
            ),
            (
                "softmax",
                vec![&hidden],
                vec![b, t, 1024],
                Box::new(|v, _| softmax_last_dim(&(&v[0] * 3.0)?)),
            ),
        ];
        for (name, xs, out_shape, f) in &cases {
            let r = randn(out_shape);
            let on_dev = value_and_grads(&dev, xs, &r, &|v| f(v, &dev));
            let on_cpu = value_and_grads(&Device::Cpu, xs, &r, &|v| f(v, &Device::Cpu));
            assert_close(
                &format!("{name} forward on {dev:?}"),
                &on_dev.0,
                &on_cpu.0,
                1e-5,
            );
            for (i, (a, c)) in on_dev.1.iter().zip(&on_cpu.1).enumerate() {
                assert_close(&format!("{name} d input {i} on {dev:?}"), a, c, 1e-5);
            }
        }
    }
}
