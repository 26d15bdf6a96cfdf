//! AdamW over the LoRA factors (PyTorch's `torch.optim.AdamW` update, decoupled weight decay),
//! learning-rate schedules as in transformers (`get_{constant,linear,cosine}_schedule_with_warmup`)
//! and global-norm gradient clipping (`clip_grad_norm_`). The moments are plain tensors so the
//! whole optimiser state can be saved and restored exactly.

use candle_core::{Result, Tensor, Var};

use super::config::Schedule;

#[derive(Debug, Clone)]
pub struct AdamWParams {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

pub struct AdamW {
    pub vars: Vec<Var>,
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
    /// Updates taken so far (bias correction uses step + 1 for the next one).
    pub step: u64,
    pub p: AdamWParams,
}

impl AdamW {
    pub fn new(vars: Vec<Var>, p: AdamWParams) -> Result<Self> {
        let m = vars
            .iter()
            .map(|v| v.as_tensor().zeros_like())
            .collect::<Result<Vec<_>>>()?;
        let v = m.clone();
        Ok(AdamW {
            vars,
            m,
            v,
            step: 0,
            p,
        })
    }

    /// One update with gradients `grads` (same order as the variables) at learning rate `lr`.
    pub fn update(&mut self, grads: &[Tensor], lr: f64) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let (b1, b2) = (self.p.beta1, self.p.beta2);
        let bc1 = 1.0 - b1.powi(t);
        let bc2 = 1.0 - b2.powi(t);
        for (i, var) in self.vars.iter().enumerate() {
            let g = &grads[i];
            let mut theta = var.as_tensor().detach();
            if self.p.weight_decay != 0.0 {
                theta = (theta * (1.0 - lr * self.p.weight_decay))?;
            }
            let m = ((&self.m[i] * b1)? + (g * (1.0 - b1))?)?;
            let v = ((&self.v[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            // torch: denom = sqrt(v)/sqrt(bc2) + eps; step = lr/bc1 · m/denom
            let denom = ((v.sqrt()? / bc2.sqrt())? + self.p.eps)?;
            let upd = ((m.div(&denom))? * (lr / bc1))?;
            var.set(&(theta - upd)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }
}

/// Global L2 norm of `grads`; when it exceeds `max_norm` (> 0), every gradient is scaled by
/// max_norm / (norm + 1e-6) as `torch.nn.utils.clip_grad_norm_` does. Returns the norm before
/// clipping.
pub fn clip_grad_norm(grads: &mut [Tensor], max_norm: f64) -> Result<f64> {
    let mut sq = 0f64;
    for g in grads.iter() {
        sq += g
            .to_dtype(candle_core::DType::F64)?
            .sqr()?
            .sum_all()?
            .to_scalar::<f64>()?;
    }
    let norm = sq.sqrt();
    if max_norm > 0.0 {
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            for g in grads.iter_mut() {
                *g = (&*g * coef)?;
            }
        }
    }
    Ok(norm)
}

/// The learning rate for optimiser step `step` (0-based) of `total`, after `warmup` linear
/// warm-up steps (transformers' schedules with warm-up).
pub fn lr_at(base: f64, sched: Schedule, step: usize, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        return base * step as f64 / warmup.max(1) as f64;
    }
    let rest = total.saturating_sub(warmup).max(1) as f64;
    let progress = (step - warmup) as f64 / rest;
    match sched {
        Schedule::Constant => base,
        Schedule::Linear => base * (1.0 - progress).max(0.0),
        Schedule::Cosine => base * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()).max(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The first two AdamW steps worked by hand (PyTorch's formula) on one scalar.
    #[test]
    fn adamw_matches_the_pytorch_update() {
        let v = Var::new(&[1.0f32], &Device::Cpu).unwrap();
        let p = AdamWParams {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        };
        let mut o = AdamW::new(vec![v.clone()], p).unwrap();
        let g = Tensor::new(&[0.5f32], &Device::Cpu).unwrap();
        o.update(std::slice::from_ref(&g), 0.1).unwrap();
        // theta = 1·(1 − 0.1·0.01) = 0.999; m̂ = 0.5, v̂ = 0.25 → step = 0.1·0.5/0.5 = 0.1
        let x = v.as_tensor().to_vec1::<f32>().unwrap()[0];
        assert!((x - 0.899).abs() < 1e-6, "{x}");
        let g2 = Tensor::new(&[-1.0f32], &Device::Cpu).unwrap();
        o.update(std::slice::from_ref(&g2), 0.1).unwrap();
        let (b1, b2) = (0.9f64, 0.999f64);
        let m = b1 * (0.1 * 0.5) + -0.1;
        let vv = b2 * (0.001 * 0.25) + 0.001 * 1.0;
        let want = 0.899f64 * (1.0 - 0.001)
            - 0.1 / (1.0 - b1 * b1) * m / ((vv).sqrt() / (1.0 - b2 * b2).sqrt() + 1e-8);
        let x = v.as_tensor().to_vec1::<f32>().unwrap()[0] as f64;
        assert!((x - want).abs() < 1e-6, "{x} vs {want}");
    }

    #[test]
    fn clipping_scales_to_max_norm() {
        let mut g = vec![
            Tensor::new(&[3.0f32], &Device::Cpu).unwrap(),
            Tensor::new(&[4.0f32], &Device::Cpu).unwrap(),
        ];
        let n = clip_grad_norm(&mut g, 1.0).unwrap();
        assert!((n - 5.0).abs() < 1e-9);
        let a = g[0].to_vec1::<f32>().unwrap()[0];
        assert!((a - 0.6).abs() < 1e-5, "{a}");
        let mut small = vec![Tensor::new(&[0.1f32], &Device::Cpu).unwrap()];
        clip_grad_norm(&mut small, 1.0).unwrap();
        assert_eq!(small[0].to_vec1::<f32>().unwrap()[0], 0.1);
    }

    #[test]
    fn schedules_follow_transformers() {
        assert_eq!(lr_at(1.0, Schedule::Linear, 0, 2, 10), 0.0);
        assert_eq!(lr_at(1.0, Schedule::Linear, 1, 2, 10), 0.5);
        assert_eq!(lr_at(1.0, Schedule::Linear, 2, 2, 10), 1.0);
        assert!((lr_at(1.0, Schedule::Linear, 6, 2, 10) - 0.5).abs() < 1e-12);
        assert!((lr_at(1.0, Schedule::Cosine, 6, 2, 10) - 0.5).abs() < 1e-12);
        assert!(lr_at(1.0, Schedule::Cosine, 10, 2, 10).abs() < 1e-12);
        assert_eq!(lr_at(1.0, Schedule::Constant, 9, 0, 10), 1.0);
    }
}
