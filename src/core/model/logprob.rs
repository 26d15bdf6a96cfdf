//! Per-token log-probabilities of given tokens through the LM head, chunked over the sequence:
//! out[i] = log_softmax(h[i]·Wᵀ / T)[target[i]]. The forward never holds more than `chunk` rows
//! of logits; the backward recomputes them chunk by chunk and returns only dh (the LM head is
//! frozen). A naive graph over a 152k vocabulary keeps several (n, V) tensors alive for the
//! backward (3.0 GB at n = 256 measured); this keeps O(chunk·V). When all n·V probabilities
//! fit in [`KEEP_PROBS`] elements (64 MiB) the forward keeps them for the backward instead,
//! which then skips the second LM-head product (a seventh of a mid-size Mixtral step).

use candle_core::{CpuStorage, CustomOp1, D, DType, Layout, Result, Shape, Tensor, bail};

use super::ops;

/// At most this many probabilities (n·V) are kept from the forward for the backward.
const KEEP_PROBS: usize = 1 << 24;

struct SelectiveLogprob {
    w: Tensor,
    targets: Tensor,
    inv_t: f64,
    chunk: usize,
    /// The forward's softmax of each chunk, when kept (see [`KEEP_PROBS`]).
    probs: std::sync::Mutex<Vec<Tensor>>,
}

impl SelectiveLogprob {
    /// The log-probabilities; with `keep`, each chunk's softmax goes into `self.probs`.
    fn forward_t(&self, h: &Tensor, keep: bool) -> Result<Tensor> {
        let n = h.dim(0)?;
        let mut outs = Vec::new();
        let mut kept = Vec::new();
        for s in (0..n).step_by(self.chunk) {
            let l = self.chunk.min(n - s);
            let logits = (h.narrow(0, s, l)?.matmul(&self.w.t()?)? * self.inv_t)?;
            let m = logits.max_keepdim(D::Minus1)?;
            let e = logits.broadcast_sub(&m)?.exp()?;
            let sum = e.sum_keepdim(D::Minus1)?;
            if keep {
                kept.push(e.broadcast_div(&sum)?);
            }
            let lse = (sum.log()? + &m)?;
            let picked = logits.gather(&self.targets.narrow(0, s, l)?.unsqueeze(1)?, 1)?;
            outs.push((picked - lse)?.squeeze(1)?);
        }
        if keep {
            *self.kept()? = kept;
        }
        Tensor::cat(&outs, 0)
    }

    fn kept(&self) -> Result<std::sync::MutexGuard<'_, Vec<Tensor>>> {
        self.probs
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
        let h = Tensor::from_slice(&v[a..b], l.shape(), &candle_core::Device::Cpu)?;
        let keep = h.dim(0)? * self.w.dim(0)? <= KEEP_PROBS;
        let out = self.forward_t(&h, keep)?;
        let n = out.dim(0)?;
        Ok((CpuStorage::F32(out.to_vec1()?), Shape::from(n)))
    }

    /// The same chunks on the GPU, on a device copy of h.
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let h = ops::cuda_tensor(s, l, "selective logprob h")?;
        let out = self.forward_t(&h, false)?;
        Ok((ops::cuda_output(&out)?, out.shape().clone()))
    }

    fn bwd(&self, h: &Tensor, _res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let n = h.dim(0)?;
        let h = h.detach();
        let mut kept = std::mem::take(&mut *self.kept()?).into_iter();
        let mut outs = Vec::new();
        for s in (0..n).step_by(self.chunk) {
            let l = self.chunk.min(n - s);
            let p = match kept.next() {
                Some(p) if p.dim(0)? == l => p,
                _ => {
                    let logits = (h.narrow(0, s, l)?.matmul(&self.w.t()?)? * self.inv_t)?;
                    ops::softmax_last_dim(&logits)?.detach()
                }
            };
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
        w: w.detach(),
        targets: targets.to_dtype(DType::U32)?,
        inv_t,
        chunk: chunk.max(1),
        probs: std::sync::Mutex::new(Vec::new()),
    };
    if ops::custom_ops_for(h) {
        h.contiguous()?.apply_op1(op)
    } else {
        // other devices: the same chunks as a plain graph (correct, not memory-lean)
        op.forward_t(h, false)
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
            probs: std::sync::Mutex::new(Vec::new()),
        };
        let kept = op();
        let out = kept.forward_t(&h, true).unwrap();
        assert_eq!(kept.probs.lock().unwrap().len(), 3);
        let a = kept.bwd(&h, &out, &g).unwrap().unwrap();
        assert!(kept.probs.lock().unwrap().is_empty());
        let b = op().bwd(&h, &out, &g).unwrap().unwrap();
        let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-6);
    }
}
