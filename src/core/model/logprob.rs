//! Per-token log-probabilities of given tokens through the LM head, chunked over the sequence:
//! out[i] = log_softmax(h[i]·Wᵀ / T)[target[i]]. The forward never holds more than `chunk` rows
//! of logits; the backward recomputes them chunk by chunk and returns only dh (the LM head is
//! frozen). A naive graph over a 152k vocabulary keeps several (n, V) tensors alive for the
//! backward (3.0 GB at n = 256 measured); this keeps O(chunk·V). When all n·V probabilities
//! fit in [`KEEP_PROBS`] elements (64 MiB) the forward keeps them for the backward instead,
//! which then skips the second LM-head product (a seventh of a mid-size Mixtral step); the rows
//! then form one chunk (one product of all rows, not n/chunk narrow ones).
//!
//! On the CPU both directions are fused loops over each row of logits, which stays in cache:
//! scale, max, exp and sum, normalise in place (forward); (onehot − p)·g/T in place
//! (backward), around one product each ([`crate::core::blas`]). The tensor-op composition
//! (`forward_t`) is the GPU's path. On mid-size Mistral this cut the LM head's forward from
//! 0.14 to 0.08 s per step (docs/benchmarks.md).

use candle_core::{CpuStorage, CustomOp1, D, DType, Layout, Result, Shape, Storage, Tensor, bail};
use rayon::prelude::*;

use super::ops;
use crate::core::blas;

/// At most this many probabilities (n·V) are kept from the forward for the backward.
const KEEP_PROBS: usize = 1 << 24;

struct SelectiveLogprob {
    w: Tensor,
    targets: Tensor,
    inv_t: f64,
    chunk: usize,
    /// The CPU forward's probabilities (all rows, one chunk), when kept (see [`KEEP_PROBS`]).
    cpu_probs: std::sync::Mutex<Option<Vec<f32>>>,
}

/// Turns a row of raw logits into its softmax at 1/`inv_t`, in place; returns log p(target).
/// Three passes over a row that stays in cache (scale and max, exp and sum, normalise).
fn softmax_row(row: &mut [f32], target: usize, inv_t: f32) -> f32 {
    let mut m = f32::NEG_INFINITY;
    for x in row.iter_mut() {
        *x *= inv_t;
        m = m.max(*x);
    }
    let picked = row[target];
    row.iter_mut().for_each(|x| *x -= m);
    super::vexp::exp_in_place(row);
    let sum: f64 = row.iter().map(|&x| x as f64).sum();
    let inv = (1.0 / sum) as f32;
    row.iter_mut().for_each(|x| *x *= inv);
    picked - ((sum.ln() as f32) + m)
}

/// A CPU tensor's contiguous f32 values, with its storage kept alive by the caller's guard.
fn cpu_f32<'a>(s: &'a Storage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) => Ok(&v[a..b]),
        _ => bail!("selective logprob: {what} is not contiguous f32 on the CPU"),
    }
}

impl SelectiveLogprob {
    /// The log-probabilities as tensor ops (the GPU's path, and any device's plain graph).
    fn forward_t(&self, h: &Tensor) -> Result<Tensor> {
        let n = h.dim(0)?;
        let mut outs = Vec::new();
        for s in (0..n).step_by(self.chunk) {
            let l = self.chunk.min(n - s);
            let logits = (h.narrow(0, s, l)?.matmul(&self.w.t()?)? * self.inv_t)?;
            let m = logits.max_keepdim(D::Minus1)?;
            let e = logits.broadcast_sub(&m)?.exp()?;
            let sum = e.sum_keepdim(D::Minus1)?;
            let lse = (sum.log()? + &m)?;
            let picked = logits.gather(&self.targets.narrow(0, s, l)?.unsqueeze(1)?, 1)?;
            outs.push((picked - lse)?.squeeze(1)?);
        }
        Tensor::cat(&outs, 0)
    }

    /// The targets as indices, each checked against the vocabulary.
    fn target_indices(&self) -> Result<Vec<usize>> {
        let v = self.w.dim(0)?;
        let t = self.targets.to_vec1::<u32>()?;
        match t.iter().find(|&&t| t as usize >= v) {
            Some(bad) => {
                bail!("selective logprob: target token {bad} is outside the vocabulary of {v}")
            }
            None => Ok(t.into_iter().map(|t| t as usize).collect()),
        }
    }

    /// Rows `s..s+l` of h (n, d) times the LM head's transpose: raw logits (l, V).
    fn cpu_logits(&self, h: &[f32], s: usize, l: usize) -> Result<Vec<f32>> {
        let (v, d) = self.w.dims2()?;
        let (ws, wl) = self.w.storage_and_layout();
        let Storage::Cpu(wc) = &*ws else {
            bail!("selective logprob: the LM head is not on the CPU")
        };
        let hs = CpuStorage::F32(h[s * d..(s + l) * d].to_vec());
        let hl = Layout::contiguous((l, d));
        match blas::product((&hs, &hl), (wc, wl), (l, v, d), true)? {
            CpuStorage::F32(z) => Ok(z),
            _ => bail!("selective logprob: expected f32 logits"),
        }
    }

    /// The CPU forward, fused: per chunk one product, then each row's softmax in place. When
    /// all n·V probabilities fit in [`KEEP_PROBS`] the rows form one chunk and are kept.
    fn cpu_forward(&self, h: &[f32], n: usize) -> Result<Vec<f32>> {
        let v = self.w.dim(0)?;
        let targets = self.target_indices()?;
        let keep = n * v <= KEEP_PROBS;
        let rows = if keep { n.max(1) } else { self.chunk };
        let inv_t = self.inv_t as f32;
        let mut out = vec![0f32; n];
        for s in (0..n).step_by(rows) {
            let l = rows.min(n - s);
            let mut z = self.cpu_logits(h, s, l)?;
            z.par_chunks_mut(v)
                .zip(out[s..s + l].par_iter_mut())
                .zip(&targets[s..s + l])
                .for_each(|((row, o), &t)| *o = softmax_row(row, t, inv_t));
            if keep {
                *self.cpu_kept()? = Some(z);
            }
        }
        Ok(out)
    }

    /// The CPU backward, fused: per chunk the probabilities (kept or recomputed), each row
    /// turned into d out/d logits = (onehot − p)·g/T in place, then one product with the head.
    fn cpu_backward(&self, h: &[f32], n: usize, g: &[f32]) -> Result<Vec<f32>> {
        let (v, d) = self.w.dims2()?;
        let targets = self.target_indices()?;
        let kept = self.cpu_kept()?.take().filter(|p| p.len() == n * v);
        let rows = if kept.is_some() { n.max(1) } else { self.chunk };
        let inv_t = self.inv_t as f32;
        let (ws, wl) = self.w.storage_and_layout();
        let Storage::Cpu(wc) = &*ws else {
            bail!("selective logprob: the LM head is not on the CPU")
        };
        let mut kept = kept;
        let mut dh = Vec::with_capacity(n * d);
        for s in (0..n).step_by(rows) {
            let l = rows.min(n - s);
            let mut p = match kept.take() {
                Some(p) => p,
                None => {
                    let mut z = self.cpu_logits(h, s, l)?;
                    z.par_chunks_mut(v)
                        .zip(&targets[s..s + l])
                        .for_each(|(row, &t)| {
                            softmax_row(row, t, inv_t);
                        });
                    z
                }
            };
            p.par_chunks_mut(v)
                .zip(&targets[s..s + l])
                .zip(&g[s..s + l])
                .for_each(|((row, &t), &gi)| {
                    let c = gi * inv_t;
                    row.iter_mut().for_each(|x| *x = -*x * c);
                    row[t] += c;
                });
            let dl = CpuStorage::F32(p);
            let part = blas::product(
                (&dl, &Layout::contiguous((l, v))),
                (wc, wl),
                (l, d, v),
                false,
            )?;
            let CpuStorage::F32(part) = part else {
                bail!("selective logprob: expected an f32 gradient")
            };
            dh.extend(part);
        }
        Ok(dh)
    }

    fn cpu_kept(&self) -> Result<std::sync::MutexGuard<'_, Option<Vec<f32>>>> {
        self.cpu_probs
            .lock()
            .map_err(|_| candle_core::Error::Msg("selective logprob: poisoned".into()))
    }
}

impl CustomOp1 for SelectiveLogprob {
    fn name(&self) -> &'static str {
        "gym-selective-logprob"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(v) = s else {
            bail!("selective logprob: expected f32")
        };
        let Some((a, b)) = l.contiguous_offsets() else {
            bail!("selective logprob: expected a contiguous input")
        };
        let n = l.dims().first().copied().unwrap_or(0);
        let out = self.cpu_forward(&v[a..b], n)?;
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }

    /// The same chunks on the GPU, on a device copy of h.
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let h = ops::cuda_tensor(s, l, "selective logprob h")?;
        let out = self.forward_t(&h)?;
        Ok((ops::cuda_output(&out)?, out.shape().clone()))
    }

    fn bwd(&self, h: &Tensor, _res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let n = h.dim(0)?;
        let h = h.detach();
        if h.device().is_cpu() && h.dtype() == DType::F32 {
            let (h, g) = (h.contiguous()?, g.to_dtype(DType::F32)?.to_vec1::<f32>()?);
            let (hs, hl) = h.storage_and_layout();
            let dh = self.cpu_backward(cpu_f32(&hs, hl, "h")?, n, &g)?;
            return Ok(Some(Tensor::from_vec(dh, h.shape(), h.device())?));
        }
        let mut outs = Vec::new();
        for s in (0..n).step_by(self.chunk) {
            let l = self.chunk.min(n - s);
            let logits = (h.narrow(0, s, l)?.matmul(&self.w.t()?)? * self.inv_t)?;
            let p = ops::softmax_last_dim(&logits)?.detach();
            let tg = self.targets.narrow(0, s, l)?.unsqueeze(1)?;
            let onehot = p.zeros_like()?.scatter_add(
                &tg,
                &Tensor::ones((l, 1), DType::F32, p.device())?,
                1,
            )?;
            // d out_i / d logits_i = (onehot − p)/T
            let dl =
                ((onehot - p)?.broadcast_mul(&g.narrow(0, s, l)?.unsqueeze(1)?)? * self.inv_t)?;
            outs.push(dl.matmul(&self.w)?);
        }
        Ok(Some(Tensor::cat(&outs, 0)?))
    }
}

/// log p(target_i) for hidden states h (n, d), a frozen LM head w (vocab, d), targets (n,) u32,
/// at temperature `temperature`, `chunk` rows of logits at a time. Differentiable in h.
pub fn token_logprobs(
    h: &Tensor,
    w: &Tensor,
    targets: &Tensor,
    temperature: f64,
    chunk: usize,
) -> Result<Tensor> {
    let inv_t = 1.0 / temperature;
    let op = SelectiveLogprob {
        w: w.detach().contiguous()?,
        targets: targets.to_dtype(DType::U32)?,
        inv_t,
        chunk: chunk.max(1),
        cpu_probs: std::sync::Mutex::new(None),
    };
    if ops::custom_ops_for(h) {
        h.contiguous()?.apply_op1(op)
    } else {
        // other devices: the same chunks as a plain graph (correct, not memory-lean)
        op.forward_t(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_log_softmax_gather_and_finite_differences() {
        let d = Device::Cpu;
        let h = Tensor::randn(0f32, 1., (7, 16), &d).unwrap();
        let w = Tensor::randn(0f32, 0.5, (50, 16), &d).unwrap();
        let tg = Tensor::new(&[3u32, 0, 49, 7, 7, 12, 30], &d).unwrap();
        let fast = token_logprobs(&h, &w, &tg, 0.7, 3).unwrap();
        let naive = candle_nn::ops::log_softmax(
            &(h.matmul(&w.t().unwrap()).unwrap() / 0.7).unwrap(),
            D::Minus1,
        )
        .unwrap()
        .gather(&tg.unsqueeze(1).unwrap(), 1)
        .unwrap()
        .squeeze(1)
        .unwrap();
        let diff = (fast - naive)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-5, "{diff}");
        let e = super::super::ops::tests::fd_check(&h, &|t| token_logprobs(t, &w, &tg, 0.7, 3), 40);
        assert!(e < 1e-2, "selective logprob grad rel err {e}");
    }

    /// The backward from the probabilities the forward kept equals the one that recomputes
    /// them (what runs when n·V exceeds KEEP_PROBS), chunk for chunk.
    #[test]
    fn kept_and_recomputed_probabilities_give_the_same_gradient() {
        let d = Device::Cpu;
        let h = Tensor::randn(0f32, 1., (7, 16), &d).unwrap();
        let w = Tensor::randn(0f32, 0.5, (50, 16), &d).unwrap();
        let tg = Tensor::new(&[3u32, 0, 49, 7, 7, 12, 30], &d).unwrap();
        let g = Tensor::randn(0f32, 1., 7, &d).unwrap();
        let op = || SelectiveLogprob {
            w: w.clone(),
            targets: tg.clone(),
            inv_t: 1.0 / 0.7,
            chunk: 3,
            cpu_probs: std::sync::Mutex::new(None),
        };
        let kept = op();
        let hv = h.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let out = Tensor::new(kept.cpu_forward(&hv, 7).unwrap(), &d).unwrap();
        assert_eq!(
            kept.cpu_probs.lock().unwrap().as_ref().map(Vec::len),
            Some(7 * 50)
        );
        let a = kept.bwd(&h, &out, &g).unwrap().unwrap();
        assert!(kept.cpu_probs.lock().unwrap().is_none());
        let b = op().bwd(&h, &out, &g).unwrap().unwrap();
        let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-6);
    }
}
