//! Per-token log-probabilities of given tokens through the LM head, chunked over the sequence:
//! out[i] = log_softmax(h[i]·Wᵀ / T)[target[i]]. The forward never holds more than `chunk` rows
//! of logits; the backward recomputes them chunk by chunk and returns only dh (the LM head is
//! frozen). A naive graph over a 152k vocabulary keeps several (n, V) tensors alive for the
//! backward (3.0 GB at n = 256 measured); this keeps O(chunk·V).

use candle_core::{CpuStorage, CustomOp1, D, DType, Layout, Result, Shape, Tensor, bail};

use super::ops;

struct SelectiveLogprob {
    w: Tensor,
    targets: Tensor,
    inv_t: f64,
    chunk: usize,
}

impl SelectiveLogprob {
    fn forward_t(&self, h: &Tensor) -> Result<Tensor> {
        let n = h.dim(0)?;
        let mut outs = Vec::new();
        for s in (0..n).step_by(self.chunk) {
            let l = self.chunk.min(n - s);
            let logits = (h.narrow(0, s, l)?.matmul(&self.w.t()?)? * self.inv_t)?;
            let m = logits.max_keepdim(D::Minus1)?;
            let lse = (logits
                .broadcast_sub(&m)?
                .exp()?
                .sum_keepdim(D::Minus1)?
                .log()?
                + &m)?;
            let picked = logits.gather(&self.targets.narrow(0, s, l)?.unsqueeze(1)?, 1)?;
            outs.push((picked - lse)?.squeeze(1)?);
        }
        Tensor::cat(&outs, 0)
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
        let out = self.forward_t(&h)?;
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
        let out = self.forward_t(&h)?;
        Ok((ops::cuda_output(&out)?, out.shape().clone()))
    }

    fn bwd(&self, h: &Tensor, _res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let n = h.dim(0)?;
        let h = h.detach();
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
        w: w.detach(),
        targets: targets.to_dtype(DType::U32)?,
        inv_t,
        chunk: chunk.max(1),
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
}
