//! A linear layer with a frozen base weight (f32 or NF4) and an optional LoRA adapter.
//!
//! The base product runs as a candle `CustomOp1` whose backward returns only the input
//! gradient: candle would otherwise compute (and keep) the gradient of every frozen weight.
//! An NF4 base is dequantized into an f32 matrix inside the op, in forward and again in
//! backward, so at most one layer's full weight exists at a time; that matrix is a per-thread
//! buffer reused from product to product ([`with_cpu_weight`]).
//!
//! With an adapter (and no active dropout) the whole layer, base and LoRA, is one `CustomOp3`
//! over (x, A, B): the graph then keeps only x, A, B and the output, where the composed graph
//! kept four (tokens × out) tensors per layer (base product, B·A·x, its scaled copy, the sum),
//! about half of all activations kept for backward in a Qwen3 block. The backward recomputes
//! the rank-r product x·Aᵀ.

use candle_core::{
    CpuStorage, CustomOp1, CustomOp3, D, DType, Layout, Result, Shape, Storage, Tensor, Var, bail,
};

use super::decoder::Role;
use super::nf4::Nf4Tensor;
use super::ops::custom_ops_for;
#[cfg(feature = "cuda")]
use super::ops::{cuda_output, cuda_tensor};
use crate::core::blas;
#[cfg(feature = "cuda")]
use candle_core::CudaStorage;

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

    /// The full weight as `dtype` (an NF4 base dequantized straight into it on a GPU).
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        match self {
            Base::F32(w) => w.to_dtype(dtype),
            Base::Nf4(q) => q.dequantize_as(dtype),
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
    /// The frozen bias (out,), added after the base and adapter products.
    pub bias: Option<Tensor>,
    pub lora: Option<Lora>,
}

/// y = x·Wᵀ over the last dimension of x, for a frozen W.
struct FrozenLinear {
    base: Base,
}

thread_local! {
    /// This thread's f32 copy of the NF4 weight being multiplied (see [`with_cpu_weight`]).
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on the base weight (out, in) as contiguous CPU storage: an f32 base's own, or an
/// NF4 base dequantized into this thread's reusable buffer (a fresh buffer per product cost
/// page faults on every expert and layer, forward and backward).
fn with_cpu_weight<R>(base: &Base, f: impl FnOnce(&CpuStorage, &Layout) -> Result<R>) -> Result<R> {
    match base {
        Base::Nf4(q) if q.device.is_cpu() => {
            let mut buf = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
            q.dequantize_into(&mut buf);
            let storage = CpuStorage::F32(buf);
            let out = f(&storage, &Layout::contiguous(q.shape));
            if let CpuStorage::F32(buf) = storage {
                SCRATCH.with(|s| *s.borrow_mut() = buf);
            }
            out
        }
        _ => {
            let w = base.to_f32()?;
            let (ws, wl) = w.storage_and_layout();
            let Storage::Cpu(wc) = &*ws else {
                bail!("frozen linear: weight is not on the CPU")
            };
            f(wc, wl)
        }
    }
}

/// The frozen base's product on the CPU: x (m, k) · Wᵀ for W (n, k) when `b_t` (the
/// forward), or g (m, n_w) · W (the input gradient; `dims` = (m, k_w, n_w)) when not. An NF4
/// base is dequantized piece by piece inside the product (`blas::product_by_pieces`): the
/// forward's pieces are rows of W, the backward's column slabs, each made in cache.
fn frozen_product(
    base: &Base,
    a: (&CpuStorage, &Layout),
    dims: (usize, usize, usize),
    b_t: bool,
) -> Result<CpuStorage> {
    let offsets = a.1.contiguous_offsets();
    if let (Base::Nf4(q), CpuStorage::F32(av), Some((s, _))) = (base, a.0, offsets)
        && q.device.is_cpu()
        && av.len() >= s + dims.0 * dims.2
    {
        let am = q.absmax.values();
        let (rows, cols) = q.shape;
        let fill = |part: std::ops::Range<usize>, buf: &mut [f32]| {
            if b_t {
                q.dequantize_rect(&am, part, 0..cols, buf)
            } else {
                q.dequantize_rect(&am, 0..rows, part, buf)
            }
        };
        let av = &av[s..s + dims.0 * dims.2];
        return Ok(CpuStorage::F32(blas::product_by_pieces(
            av, dims, b_t, &fill,
        )));
    }
    with_cpu_weight(base, |wc, wl| blas::product(a, (wc, wl), dims, b_t))
}

/// g·W over the last dimension of g (…, out) for a frozen W (out, in): the input gradient of
/// a frozen product, outside the graph.
struct ByWeight {
    base: Base,
}

impl CustomOp1 for ByWeight {
    fn name(&self) -> &'static str {
        "gym-by-frozen-weight"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, k) = self.base.dims();
        let dims = l.dims();
        if !l.is_contiguous() || dims.last() != Some(&n) {
            bail!("frozen linear backward: gradient {dims:?} is not contiguous over {n}")
        }
        let m = l.shape().elem_count() / n;
        let gl = Layout::contiguous_with_offset((m, n), l.start_offset());
        let out = frozen_product(&self.base, (s, &gl), (m, k, n), false)?;
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("non-empty") = k;
        Ok((out, Shape::from(out_dims)))
    }
}

/// g·W for the base W of a frozen product (its input gradient).
fn by_weight(base: &Base, g: &Tensor) -> Result<Tensor> {
    if g.device().is_cpu() && g.dtype() == DType::F32 {
        g.contiguous()?
            .apply_op1_no_bwd(&ByWeight { base: base.clone() })
    } else {
        g.broadcast_matmul(&base.to_f32()?)
    }
}

impl FrozenLinear {
    /// (m, n, k) of the product for an input layout (rows m of k), and the output shape.
    fn product_dims(&self, l: &Layout) -> Result<(usize, usize, usize, Shape)> {
        Self::dims_for(&self.base, l)
    }

    fn dims_for(base: &Base, l: &Layout) -> Result<(usize, usize, usize, Shape)> {
        if !l.is_contiguous() {
            bail!("frozen linear: expected a contiguous input")
        }
        let (n, k) = base.dims();
        let dims = l.dims();
        if dims.last() != Some(&k) {
            bail!("frozen linear: input {dims:?} does not end in {k}")
        }
        let m = l.shape().elem_count() / k;
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("non-empty") = n;
        Ok((m, n, k, Shape::from(out_dims)))
    }
}

/// x (m, k) · Wᵀ with W (n, k) given as storage and layout (on the GPU: cuBLAS).
#[cfg(feature = "cuda")]
fn matmul_t<S: candle_core::backend::BackendStorage>(
    x: &S,
    xl: &Layout,
    m: usize,
    w: &S,
    wl: &Layout,
    n: usize,
    k: usize,
) -> Result<S> {
    let xl = Layout::contiguous_with_offset((m, k), xl.start_offset());
    let wt = wl.transpose(0, 1)?;
    x.matmul(w, (1, m, n, k), &xl, &wt)
}

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "gym-frozen-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (m, n, k, out) = self.product_dims(l)?;
        let y = frozen_product(&self.base, (s, l), (m, n, k), true)?;
        Ok((y, out))
    }

    /// On the GPU: the weight dequantized by gym's kernel into a transient f32 tensor, one
    /// cuBLAS product on the input's storage; the graph keeps x, not the weight.
    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        let (m, n, k, out) = self.product_dims(l)?;
        let w = self.base.to_dtype(DType::F32)?;
        let (ws, wl) = w.storage_and_layout();
        let Storage::Cuda(wc) = &*ws else {
            bail!("frozen linear: weight is not on the GPU")
        };
        Ok((matmul_t(s, l, m, wc, wl, n, k)?, out))
    }

    /// g·W, unless x has no gradient to receive (the first layer's input: the frozen
    /// embedding's rows), where that product would be thrown away.
    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        if !x.track_op() {
            return Ok(None);
        }
        Ok(Some(by_weight(&self.base, g)?))
    }
}

/// y = x·Wᵀ + scale·(x·Aᵀ)·Bᵀ for a frozen W, as one graph node over (x, A, B).
struct LoraLinear {
    base: Base,
    scale: f64,
}

/// A contiguous CPU f32 storage's values.
fn f32s<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        _ => bail!("lora linear: {what} is not contiguous f32"),
    }
}

impl LoraLinear {
    /// The forward as a composed graph (the GPU's path; the CPU test's reference).
    #[cfg(any(feature = "cuda", test))]
    fn compose(&self, x: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let base = x.apply_op1(FrozenLinear {
            base: self.base.clone(),
        })?;
        let h = x.broadcast_matmul(&a.t()?)?;
        let d = h.broadcast_matmul(&b.t()?)?;
        base + (d * self.scale)?
    }
}

impl CustomOp3 for LoraLinear {
    fn name(&self) -> &'static str {
        "gym-lora-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        as_: &CpuStorage,
        al: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, a, b) = (f32s(xs, xl, "x")?, f32s(as_, al, "A")?, f32s(bs, bl, "B")?);
        let (m, n, k, out) = FrozenLinear::dims_for(&self.base, xl)?;
        let r = al.dims()[0];
        if al.dims() != [r, k] || bl.dims() != [n, r] {
            bail!(
                "lora linear: A {:?} / B {:?} do not fit {k} → {n}",
                al.dims(),
                bl.dims()
            )
        }
        let y = frozen_product(&self.base, (xs, xl), (m, n, k), true)?;
        let CpuStorage::F32(mut y) = y else {
            bail!("lora linear: expected an f32 product")
        };
        let mut h = vec![0f32; m * r];
        let t = blas::Transposed { a: false, b: true };
        blas::accumulate(&mut h, x, a, (m, r, k), t, 1.0);
        blas::accumulate(&mut y, &h, b, (m, n, r), t, self.scale as f32);
        Ok((CpuStorage::F32(y), out))
    }

    /// The same composition on the GPU, on device copies of x, A and B.
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &CudaStorage,
        xl: &Layout,
        as_: &CudaStorage,
        al: &Layout,
        bs: &CudaStorage,
        bl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let x = cuda_tensor(xs, xl, "lora linear x")?;
        let a = cuda_tensor(as_, al, "lora linear A")?;
        let b = cuda_tensor(bs, bl, "lora linear B")?;
        let y = self.compose(&x, &a, &b)?;
        Ok((cuda_output(&y)?, y.shape().clone()))
    }

    /// The gradients of the composed graph, with the batch dimensions folded into the rows
    /// (one product each instead of one per batch entry and a sum over the batch):
    /// dx = g·W + (s·g)·B·A, dB = (s·g)ᵀ·h, dA = ((s·g)·B)ᵀ·x, where h = x·Aᵀ is recomputed.
    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // the first layer's input (the frozen embedding's rows) receives no gradient: its
        // frozen product g·W, the largest of the backward, is skipped
        let need_dx = x.track_op();
        let (x, a, b) = (x.detach(), a.detach(), b.detach());
        let cpu = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32;
        if cpu(&x) && cpu(&a) && cpu(&b) && cpu(g) {
            let (dx, da, db) = self.cpu_backward(&x, &a, &b, g, need_dx)?;
            return Ok((dx, Some(da), Some(db)));
        }
        let dx_base = by_weight(&self.base, g)?;
        let (k, n) = (x.dim(D::Minus1)?, g.dim(D::Minus1)?);
        let x2 = x.reshape(((), k))?; // (M, in)
        let g2 = (g.reshape(((), n))? * self.scale)?; // (M, out)
        let h2 = x2.matmul(&a.t()?)?; // (M, r)
        let dh2 = g2.matmul(&b)?; // (M, r)
        let db = g2.t()?.matmul(&h2)?; // (out, r)
        let da = dh2.t()?.matmul(&x2)?; // (r, in)
        let dx_lora = dh2.matmul(&a)?.reshape(x.shape())?;
        Ok((Some((dx_base + dx_lora)?), Some(da), Some(db)))
    }
}

impl LoraLinear {
    /// The same gradients on the CPU with the scale folded into the products and each
    /// product accumulated into its destination (no scaled copy of g, no separate sum):
    /// dx = g·W, then dx += dh·A; dh = s·g·B; dB = s·gᵀ·h; dA = dhᵀ·x; h = x·Aᵀ recomputed.
    /// dx only when `need_dx`.
    fn cpu_backward(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        g: &Tensor,
        need_dx: bool,
    ) -> Result<(Option<Tensor>, Tensor, Tensor)> {
        let (x, a, b, g) = (
            x.contiguous()?,
            a.contiguous()?,
            b.contiguous()?,
            g.contiguous()?,
        );
        let ((r, k), n) = (a.dims2()?, g.dim(D::Minus1)?);
        let m = x.elem_count() / k.max(1);
        let (xs, xl) = x.storage_and_layout();
        let (as_, al) = a.storage_and_layout();
        let (bs, bl) = b.storage_and_layout();
        let (gs, gl) = g.storage_and_layout();
        let (Storage::Cpu(xs), Storage::Cpu(as_), Storage::Cpu(bs), Storage::Cpu(gs)) =
            (&*xs, &*as_, &*bs, &*gs)
        else {
            bail!("lora linear backward: expected CPU tensors")
        };
        let (xv, av, bv, gv) = (
            f32s(xs, xl, "x")?,
            f32s(as_, al, "A")?,
            f32s(bs, bl, "B")?,
            f32s(gs, gl, "g")?,
        );
        let s = self.scale as f32;
        let plain = blas::Transposed { a: false, b: false };
        let (mut h, mut dh) = (vec![0f32; m * r], vec![0f32; m * r]);
        blas::accumulate(
            &mut h,
            xv,
            av,
            (m, r, k),
            blas::Transposed { a: false, b: true },
            1.0,
        );
        blas::accumulate(&mut dh, gv, bv, (m, r, n), plain, s);
        let (mut db, mut da) = (vec![0f32; n * r], vec![0f32; r * k]);
        let at = blas::Transposed { a: true, b: false };
        blas::accumulate(&mut db, gv, &h, (n, r, m), at, s);
        blas::accumulate(&mut da, &dh, xv, (r, k, m), at, 1.0);
        let dev = x.device();
        let dx = if need_dx {
            let gl2 = Layout::contiguous_with_offset((m, n), gl.start_offset());
            let CpuStorage::F32(mut dx) = frozen_product(&self.base, (gs, &gl2), (m, k, n), false)?
            else {
                bail!("lora linear backward: expected an f32 product")
            };
            blas::accumulate(&mut dx, &dh, av, (m, k, r), plain, 1.0);
            Some(Tensor::from_vec(dx, x.shape(), dev)?)
        } else {
            None
        };
        Ok((
            dx,
            Tensor::from_vec(da, (r, k), dev)?,
            Tensor::from_vec(db, (n, r), dev)?,
        ))
    }
}

impl Linear {
    pub fn new(base: Base) -> Self {
        Linear {
            base,
            bias: None,
            lora: None,
        }
    }

    /// x·Wᵀ (+ scale·x·Aᵀ·Bᵀ when the adapter exists and `role` is the policy) (+ bias).
    pub fn forward(&self, x: &Tensor, role: Role) -> Result<Tensor> {
        let y = self.forward_unbiased(x, role)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }

    fn forward_unbiased(&self, x: &Tensor, role: Role) -> Result<Tensor> {
        let adapters = role.adapters();
        if let (Some(l), true) = (&self.lora, adapters) {
            let no_dropout = l.train_rng.is_none() || l.dropout <= 0.0;
            let (a, b) = (l.a.as_tensor(), l.b.as_tensor());
            if no_dropout && custom_ops_for(x) && a.dtype() == DType::F32 && b.dtype() == DType::F32
            {
                return x.contiguous()?.apply_op3(
                    &a.contiguous()?,
                    &b.contiguous()?,
                    LoraLinear {
                        base: self.base.clone(),
                        scale: l.scale,
                    },
                );
            }
        }
        let base = if custom_ops_for(x) {
            x.contiguous()?.apply_op1(FrozenLinear {
                base: self.base.clone(),
            })?
        } else {
            let w = self.base.to_dtype(x.dtype())?.detach();
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The fused layer gives the composed graph's output bit for bit and its gradients (up to
    /// summation order) in x, A and B, for 3-D and 2-D inputs and f32 and NF4 bases.
    #[test]
    fn fused_lora_matches_the_composed_graph() {
        let d = Device::Cpu;
        for nf4 in [false, true] {
            let w = Tensor::randn(0f32, 0.5, (24, 64), &d).unwrap();
            let base = if nf4 {
                Base::Nf4(std::sync::Arc::new(
                    super::super::nf4::Nf4Tensor::quantize(&w, true).unwrap(),
                ))
            } else {
                Base::F32(w)
            };
            let a = Var::from_tensor(&Tensor::randn(0f32, 0.3, (4, 64), &d).unwrap()).unwrap();
            let b = Var::from_tensor(&Tensor::randn(0f32, 0.3, (24, 4), &d).unwrap()).unwrap();
            let mut lin = Linear::new(base);
            lin.lora = Some(Lora::new(a.clone(), b.clone(), 2.0, 0.0));
            for shape in [vec![3usize, 5, 64], vec![7, 64]] {
                let x =
                    Var::from_tensor(&Tensor::randn(0f32, 1.0, &shape[..], &d).unwrap()).unwrap();
                let r = Tensor::randn(
                    0f32,
                    1.0,
                    &[&shape[..shape.len() - 1], &[24]].concat()[..],
                    &d,
                )
                .unwrap();
                let fused = lin.forward(x.as_tensor(), Role::Policy).unwrap();
                let op = LoraLinear {
                    base: lin.base.clone(),
                    scale: 2.0,
                };
                let composed = op
                    .compose(
                        &x.as_tensor().contiguous().unwrap(),
                        a.as_tensor(),
                        b.as_tensor(),
                    )
                    .unwrap();
                let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let what = format!("{shape:?} nf4={nf4}");
                super::super::ops::tests::assert_same_values(
                    &flat(&fused),
                    &flat(&composed),
                    &what,
                );
                let gf = (fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
                let gc = (composed * &r)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                for v in [x.as_tensor(), a.as_tensor(), b.as_tensor()] {
                    let (p, q) = (gf.get(v).unwrap(), gc.get(v).unwrap());
                    assert_eq!(p.dims(), q.dims());
                    let scale = flat(q).iter().fold(0f32, |m, x| m.max(x.abs()));
                    let diff = flat(&(p - q).unwrap())
                        .iter()
                        .fold(0f32, |m, x| m.max(x.abs()));
                    assert!(scale > 0.0 && diff <= 1e-5 * scale, "{diff} vs {scale}");
                }
            }
        }
    }

    /// An input that receives no gradient (the first layer's: the frozen embedding's rows)
    /// gets none computed: the ops' backward skips its frozen product g·W and returns None for
    /// it, and the adapter's gradients are the same bits as with a tracked input.
    #[test]
    fn an_untracked_input_gets_no_frozen_product_in_the_backward() {
        let d = Device::Cpu;
        let w = Tensor::randn(0f32, 0.5, (24, 64), &d).unwrap();
        let base = Base::Nf4(std::sync::Arc::new(
            super::super::nf4::Nf4Tensor::quantize(&w, true).unwrap(),
        ));
        let a = Var::from_tensor(&Tensor::randn(0f32, 0.3, (4, 64), &d).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f32, 0.3, (24, 4), &d).unwrap()).unwrap();
        let plain = Tensor::randn(0f32, 1.0, (7, 64), &d).unwrap();
        let tracked = Var::from_tensor(&plain).unwrap();
        let g = Tensor::randn(0f32, 1.0, (7, 24), &d).unwrap();
        let op = LoraLinear {
            base: base.clone(),
            scale: 2.0,
        };
        let (at, bt) = (a.as_tensor(), b.as_tensor());
        let y = plain
            .apply_op3(
                at,
                bt,
                LoraLinear {
                    base: base.clone(),
                    scale: 2.0,
                },
            )
            .unwrap();
        let (dx, da, db) = op.bwd(&plain, at, bt, &y, &g).unwrap();
        let (dx2, da2, db2) = op.bwd(tracked.as_tensor(), at, bt, &y, &g).unwrap();
        assert!(dx.is_none() && dx2.is_some());
        let bits = |t: Option<Tensor>| {
            let v = t.unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            v.iter().map(|f| f.to_bits()).collect::<Vec<_>>()
        };
        assert_eq!(bits(da), bits(da2));
        assert_eq!(bits(db), bits(db2));
        let frozen = FrozenLinear { base };
        assert!(frozen.bwd(&plain, &y, &g).unwrap().is_none());
        assert!(frozen.bwd(tracked.as_tensor(), &y, &g).unwrap().is_some());
    }

    /// The frozen and LoRA linear ops on the test device (`GYM_TEST_DEVICE`; on a GPU: the NF4
    /// kernel, cuBLAS on the op's storages) against the CPU: outputs and the gradients of x, A
    /// and B, f32 and NF4 bases, 3-D and 2-D inputs; |Δ| ≤ 1e-5 · max(1, max |ref|).
    #[test]
    fn linear_layers_on_the_test_device_match_the_cpu() {
        let dev = crate::core::device::test_device();
        let cpu = Device::Cpu;
        let w = Tensor::randn(0f32, 0.5, (48, 64), &cpu).unwrap();
        let a0 = Tensor::randn(0f32, 0.3, (4, 64), &cpu).unwrap();
        let b0 = Tensor::randn(0f32, 0.3, (48, 4), &cpu).unwrap();
        let flat = |t: &Tensor| {
            t.to_device(&cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        // (output, [dx, dA, dB]) of Σ layer(x) ⊙ r on `d`
        let run = |d: &Device, nf4: bool, role: Role, x0: &Tensor, r: &Tensor| {
            let base = if nf4 {
                let mut q = super::super::nf4::Nf4Tensor::quantize(&w, true).unwrap();
                q.device = d.clone(); // packed copied to `d` at the first use
                Base::Nf4(std::sync::Arc::new(q))
            } else {
                Base::F32(w.to_device(d).unwrap())
            };
            let a = Var::from_tensor(&a0.to_device(d).unwrap()).unwrap();
            let b = Var::from_tensor(&b0.to_device(d).unwrap()).unwrap();
            let x = Var::from_tensor(&x0.to_device(d).unwrap()).unwrap();
            let mut lin = Linear::new(base);
            lin.lora = Some(Lora::new(a.clone(), b.clone(), 2.0, 0.0));
            let y = lin.forward(x.as_tensor(), role).unwrap();
            let gs = (&y * r.to_device(d).unwrap())
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let grads: Vec<Vec<f32>> = [x.as_tensor(), a.as_tensor(), b.as_tensor()]
                .iter()
                .map(|v| gs.get(v).map(&flat).unwrap_or_default())
                .collect();
            (flat(&y), grads)
        };
        let close = |what: String, a: &[f32], b: &[f32]| {
            assert_eq!(a.len(), b.len(), "{what}");
            let scale = b.iter().fold(1f32, |m, x| m.max(x.abs()));
            let d = a
                .iter()
                .zip(b)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(d <= 1e-5 * scale, "{what}: max |Δ| = {d} (scale {scale})");
        };
        for nf4 in [false, true] {
            for role in [Role::Policy, Role::Reference] {
                for shape in [vec![3usize, 5, 64], vec![7, 64]] {
                    let x0 = Tensor::randn(0f32, 1.0, &shape[..], &cpu).unwrap();
                    let out: Vec<usize> = [&shape[..shape.len() - 1], &[48]].concat();
                    let r = Tensor::randn(0f32, 1.0, &out[..], &cpu).unwrap();
                    let (yd, gd) = run(&dev, nf4, role, &x0, &r);
                    let (yc, gc) = run(&cpu, nf4, role, &x0, &r);
                    let case = format!("nf4={nf4} {role:?} {shape:?} on {dev:?}");
                    let factors = !gc[1].is_empty() && !gc[2].is_empty();
                    assert_eq!(factors, role == Role::Policy, "{case}: factor gradients");
                    close(format!("output {case}"), &yd, &yc);
                    for (i, (a, c)) in gd.iter().zip(&gc).enumerate() {
                        close(format!("gradient {i} {case}"), a, c);
                    }
                }
            }
        }
    }
}
