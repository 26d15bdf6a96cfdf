//! The gated delta rule of Qwen3-Next's DeltaNet layers as one CPU op with a hand-written
//! backward (`qwen3_next.rs` states the equations).
//!
//! Per lane (batch row × value head), from the state S₀ (dk × dv), for each token t:
//!
//!   S′ = exp(g_t)·S;  u = S′ᵀk_t;  δ = β_t (v_t − u);  S_t = S′ + k_t δᵀ;  o_t = S_tᵀ q_t
//!
//! Composed from candle ops the recurrence keeps about five (dk × dv) tensors per token and
//! lane for the backward (hundreds of MiB per layer for a 256-token sequence of a real model)
//! and runs ~10 small ops per token. The op keeps only the state before every `chunk`-th token
//! (t/chunk states per lane; when they are missing, as in a second backward over the same
//! graph, the backward runs the recurrence again to get them); then per chunk, from the last,
//! the backward recomputes the states inside the chunk and walks it backwards:
//!
//!   dS += q do_tᵀ;  dq = S_t do_t;  dδ = dSᵀk;  dk = dS δ;  dβ = dδ·(v − u);  dv = β dδ;
//!   du = −β dδ;  dS′ = dS + k duᵀ;  dk += S′ du;  dg = ⟨dS′, S′⟩;  dS ← exp(g) dS′.
//!
//! Inputs travel packed (one tensor per lane row `[q | k | v | g | β]`, so the op has two
//! inputs) and the output is packed too (`[o_1 … o_t | S_t]` rows), both split by narrow/cat
//! whose own backward candle carries. Off the CPU the composed form runs.
//!
//! Each lane's loops run under `pulp::Arch::dispatch`, compiled for the widest vector
//! instructions the CPU has (AVX-512, AVX2 or the baseline), and the backward's sums over the
//! value dimension keep 16 partial sums ([`sum3`]) so that they vectorize too.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

/// Tokens between the states the backward keeps.
const CHUNK: usize = 32;

/// The gated delta rule over q, k (b, H, t, dk), v (b, H, t, dv), log-decays g and β (b, H, t)
/// from the state s0 (b, H, dk, dv): the outputs (b, H, t, dv) and the last state.
pub fn gated_delta_rule(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    g: &Tensor,
    beta: &Tensor,
    s0: &Tensor,
) -> Result<(Tensor, Tensor)> {
    if q.device().is_cpu() && q.dtype() == DType::F32 {
        fused(q, k, v, g, beta, s0, CHUNK)
    } else {
        composed(q, k, v, g, beta, s0)
    }
}

fn fused(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    g: &Tensor,
    beta: &Tensor,
    s0: &Tensor,
    chunk: usize,
) -> Result<(Tensor, Tensor)> {
    let (_, _, t, dk) = q.dims4()?;
    let dv = v.dim(3)?;
    let x = Tensor::cat(
        &[
            &q.contiguous()?,
            &k.contiguous()?,
            &v.contiguous()?,
            &g.unsqueeze(3)?.contiguous()?,
            &beta.unsqueeze(3)?.contiguous()?,
        ],
        3,
    )?;
    let op = DeltaRule {
        dk,
        dv,
        chunk,
        marks: std::sync::Mutex::new(None),
    };
    let out = x.apply_op2(&s0.contiguous()?, op)?;
    Ok((out.narrow(2, 0, t)?, out.narrow(2, t, dk)?))
}

/// The same recurrence as composed candle ops (autograd carries it): the reference the op is
/// tested against, and the path off the CPU.
pub fn composed(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    g: &Tensor,
    beta: &Tensor,
    s0: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let t = q.dim(2)?;
    let decay = g.exp()?.unsqueeze(3)?.unsqueeze(4)?; // (b, H, t, 1, 1)
    let beta = beta.unsqueeze(3)?; // (b, H, t, 1)
    let mut s = s0.clone();
    let mut outs = Vec::with_capacity(t);
    for i in 0..t {
        let q_i = q.narrow(2, i, 1)?; // (b, H, 1, dk)
        let k_i = k.narrow(2, i, 1)?;
        let v_i = v.narrow(2, i, 1)?; // (b, H, 1, dv)
        s = s.broadcast_mul(&decay.narrow(2, i, 1)?.squeeze(2)?)?;
        let kv = k_i.matmul(&s)?; // (b, H, 1, dv)
        let delta = (v_i - kv)?.broadcast_mul(&beta.narrow(2, i, 1)?)?;
        s = (s + k_i.transpose(2, 3)?.matmul(&delta)?)?;
        outs.push(q_i.matmul(&s)?);
    }
    Ok((Tensor::cat(&outs, 2)?, s))
}

/// Σ f(a_i, b_i, c_i) over the common length, in 16 interleaved partial sums so that the loop
/// vectorizes (a single running sum would pin it to one lane).
#[inline(always)]
fn sum3(a: &[f32], b: &[f32], c: &[f32], f: impl Fn(f32, f32, f32) -> f32) -> f32 {
    const L: usize = 16;
    let n = a.len().min(b.len()).min(c.len());
    let whole = n / L * L;
    let mut acc = [0f32; L];
    for ((x, y), z) in a[..whole]
        .chunks_exact(L)
        .zip(b[..whole].chunks_exact(L))
        .zip(c[..whole].chunks_exact(L))
    {
        for i in 0..L {
            acc[i] += f(x[i], y[i], z[i]);
        }
    }
    let mut s: f32 = acc.iter().sum();
    for i in whole..n {
        s += f(a[i], b[i], c[i]);
    }
    s
}

/// The op: x (b, H, t, 2dk + dv + 2) packed `[q | k | v | g | β]`, s0 (b, H, dk, dv) →
/// (b, H, t + dk, dv), the outputs followed by the last state.
struct DeltaRule {
    dk: usize,
    dv: usize,
    chunk: usize,
    /// The forward's state before every `chunk`-th token of every lane (lane by lane), which
    /// the backward would otherwise recompute by running the recurrence again: t/chunk states
    /// of dk × dv per lane (9 MiB per layer for Qwen3-Next-mid at 256 tokens).
    marks: std::sync::Mutex<Option<Vec<f32>>>,
}

/// One token's inputs, borrowed from a packed row.
struct Token<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    g: f32,
    beta: f32,
}

fn contiguous<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let v = match s {
        CpuStorage::F32(v) => v.as_slice(),
        _ => bail!("{what}: expected f32, got {:?}", s.dtype()),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => bail!("{what}: expected a contiguous input"),
    }
}

impl DeltaRule {
    fn kept(&self) -> Result<std::sync::MutexGuard<'_, Option<Vec<f32>>>> {
        self.marks
            .lock()
            .map_err(|_| candle_core::Error::Msg("delta rule: poisoned".into()))
    }

    #[inline(always)]
    fn width(&self) -> usize {
        2 * self.dk + self.dv + 2
    }

    #[inline(always)]
    fn token<'a>(&self, row: &'a [f32]) -> Token<'a> {
        let (dk, dv) = (self.dk, self.dv);
        Token {
            q: &row[..dk],
            k: &row[dk..2 * dk],
            v: &row[2 * dk..2 * dk + dv],
            g: row[2 * dk + dv],
            beta: row[2 * dk + dv + 1],
        }
    }

    /// One step on the state s (dk × dv, row-major); writes o_t into `o` when given. `u` is
    /// scratch of dv.
    #[inline(always)]
    fn step(&self, s: &mut [f32], x: &Token, u: &mut [f32], o: Option<&mut [f32]>) {
        let dv = self.dv;
        let a = x.g.exp();
        u.fill(0.0);
        for (row, &kr) in s.chunks_mut(dv).zip(x.k) {
            for (sc, uc) in row.iter_mut().zip(u.iter_mut()) {
                *sc *= a;
                *uc += kr * *sc;
            }
        }
        // u becomes δ = β (v − u)
        for (uc, &vc) in u.iter_mut().zip(x.v) {
            *uc = x.beta * (vc - *uc);
        }
        match o {
            Some(o) => {
                o.fill(0.0);
                for ((row, &kr), &qr) in s.chunks_mut(dv).zip(x.k).zip(x.q) {
                    for ((sc, &dc), oc) in row.iter_mut().zip(u.iter()).zip(o.iter_mut()) {
                        *sc += kr * dc;
                        *oc += qr * *sc;
                    }
                }
            }
            None => {
                for (row, &kr) in s.chunks_mut(dv).zip(x.k) {
                    for (sc, &dc) in row.iter_mut().zip(u.iter()) {
                        *sc += kr * dc;
                    }
                }
            }
        }
    }

    /// The backward of one step: `prev` is the state before it, `ds` (in: the gradient of the
    /// state after it, out: of the state before it), `go` the output's gradient; writes the
    /// gradients of the packed row into `dx`.
    #[inline(always)]
    fn step_bwd(&self, prev: &[f32], x: &Token, ds: &mut [f32], go: &[f32], dx: &mut [f32]) {
        let (dk, dv) = (self.dk, self.dv);
        let a = x.g.exp();
        // u = S′ᵀk with S′ = a·prev; δ = β (v − u)
        let mut u = vec![0f32; dv];
        for (row, &kr) in prev.chunks(dv).zip(x.k) {
            for (uc, &pc) in u.iter_mut().zip(row) {
                *uc += kr * a * pc;
            }
        }
        let delta: Vec<f32> = u.iter().zip(x.v).map(|(u, v)| x.beta * (v - u)).collect();
        let (dq, rest) = dx.split_at_mut(dk);
        let (dkk, rest) = rest.split_at_mut(dk);
        let (dvv, rest) = rest.split_at_mut(dv);
        let mut ddelta = vec![0f32; dv];
        for r in 0..dk {
            let (p, d) = (&prev[r * dv..(r + 1) * dv], &mut ds[r * dv..(r + 1) * dv]);
            let (kr, qr) = (x.k[r], x.q[r]);
            // dq_r = Σ S_t·do with S_t = a·prev + k δᵀ
            dq[r] = sum3(p, &delta, go, |pc, dc, gc| (a * pc + kr * dc) * gc);
            for ((dc, &gc), ddc) in d.iter_mut().zip(go).zip(ddelta.iter_mut()) {
                *dc += qr * gc;
                *ddc += *dc * kr;
            }
            dkk[r] = sum3(d, &delta, &delta, |dc, ec, _| dc * ec);
        }
        let mut dbeta = 0f32;
        let mut du = vec![0f32; dv];
        for c in 0..dv {
            let (vc, uc) = (x.v[c], u[c]);
            dbeta += ddelta[c] * (vc - uc);
            dvv[c] = x.beta * ddelta[c];
            du[c] = -x.beta * ddelta[c];
        }
        let mut dg = 0f32;
        for r in 0..dk {
            let (p, d) = (&prev[r * dv..(r + 1) * dv], &mut ds[r * dv..(r + 1) * dv]);
            let kr = x.k[r];
            // with S′ = a·prev and dS′ = dS + k duᵀ: dk += S′ du, dg += ⟨dS′, S′⟩, dS ← a·dS′
            dkk[r] += sum3(p, &du, &du, |pc, uc, _| a * pc * uc);
            dg += sum3(p, d, &du, |pc, dc, uc| a * pc * (dc + kr * uc));
            for (dc, &uc) in d.iter_mut().zip(&du) {
                *dc = a * (*dc + kr * uc);
            }
        }
        rest[0] = dg;
        rest[1] = dbeta;
    }

    /// Forward of one lane: x (t × width), s0 (dk × dv) → out ((t + dk) × dv); the state
    /// before every `chunk`-th token into `marks` (⌈t/chunk⌉ × dk × dv).
    #[inline(always)]
    fn lane_fwd(&self, x: &[f32], s0: &[f32], out: &mut [f32], marks: &mut [f32]) {
        let (w, dv, n) = (self.width(), self.dv, s0.len());
        let (t, c) = (x.len() / w, self.chunk.max(1));
        let (outs, last) = out.split_at_mut(t * dv);
        last.copy_from_slice(s0);
        let mut u = vec![0f32; dv];
        for (i, (row, o)) in x.chunks(w).zip(outs.chunks_mut(dv)).enumerate() {
            if i % c == 0 {
                marks[(i / c) * n..][..n].copy_from_slice(last);
            }
            self.step(last, &self.token(row), &mut u, Some(o));
        }
    }

    /// The state before every `chunk`-th token, by running the recurrence again (when the
    /// forward's were not kept).
    fn recompute_marks(&self, x: &[f32], s0: &[f32]) -> Vec<f32> {
        let (w, dv, n) = (self.width(), self.dv, s0.len());
        let c = self.chunk.max(1);
        let mut marks = Vec::with_capacity((x.len() / w).div_ceil(c) * n);
        let mut s = s0.to_vec();
        let mut u = vec![0f32; dv];
        for (i, row) in x.chunks(w).enumerate() {
            if i % c == 0 {
                marks.extend_from_slice(&s);
            }
            self.step(&mut s, &self.token(row), &mut u, None);
        }
        marks
    }

    /// Backward of one lane: writes dx (t × width) and ds0 (dk × dv) from the output's
    /// gradient go ((t + dk) × dv).
    #[inline(always)]
    fn lane_bwd(&self, x: &[f32], s0: &[f32], go: &[f32], dx: &mut [f32], ds0: &mut [f32]) {
        let marks = self.recompute_marks(x, s0);
        self.lane_bwd_from(x, &marks, go, dx, ds0)
    }

    /// [`Self::lane_bwd`] from the states before every `chunk`-th token (`marks`).
    #[inline(always)]
    fn lane_bwd_from(&self, x: &[f32], marks: &[f32], go: &[f32], dx: &mut [f32], ds0: &mut [f32]) {
        let (w, dv, n) = (self.width(), self.dv, ds0.len());
        let t = x.len() / w;
        let c = self.chunk.max(1);
        let marks: Vec<&[f32]> = marks.chunks(n).collect();
        let mut u = vec![0f32; dv];
        ds0.copy_from_slice(&go[t * dv..]);
        let mut states = vec![0f32; c * n];
        for (ci, mark) in marks.iter().enumerate().rev() {
            let (a, b) = (ci * c, ((ci + 1) * c).min(t));
            states[..n].copy_from_slice(mark);
            for i in a..b - 1 {
                let (done, next) = states.split_at_mut((i - a + 1) * n);
                next[..n].copy_from_slice(&done[(i - a) * n..]);
                self.step(&mut next[..n], &self.token(&x[i * w..][..w]), &mut u, None);
            }
            for i in (a..b).rev() {
                let prev = &states[(i - a) * n..][..n];
                let tok = self.token(&x[i * w..][..w]);
                self.step_bwd(prev, &tok, ds0, &go[i * dv..][..dv], &mut dx[i * w..][..w]);
            }
        }
    }
}

impl CustomOp2 for DeltaRule {
    fn name(&self) -> &'static str {
        "gym-gated-delta-rule"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(s1, l1, "delta rule x")?;
        let s0 = contiguous(s2, l2, "delta rule state")?;
        let (b, h, t, w) = l1.shape().dims4()?;
        let (dk, dv) = (self.dk, self.dv);
        if w != self.width() || l2.shape().dims() != [b, h, dk, dv] {
            bail!(
                "delta rule: packed input {:?} and state {:?} for dk {dk}, dv {dv}",
                l1.shape(),
                l2.shape()
            );
        }
        let mut out = vec![0f32; b * h * (t + dk) * dv];
        let per_lane = t.div_ceil(self.chunk.max(1)) * dk * dv;
        let mut marks = vec![0f32; b * h * per_lane.max(1)];
        let arch = pulp::Arch::new();
        out.par_chunks_mut((t + dk) * dv)
            .zip(marks.par_chunks_mut(per_lane.max(1)))
            .zip(x.par_chunks(t * w).zip(s0.par_chunks(dk * dv)))
            .for_each(|((o, m), (x, s))| arch.dispatch(|| self.lane_fwd(x, s, o, m)));
        *self.kept()? = Some(marks);
        Ok((CpuStorage::F32(out), Shape::from((b, h, t + dk, dv))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        s0: &Tensor,
        _out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (b, h, t, w) = x.dims4()?;
        let (dk, dv) = (self.dk, self.dv);
        let xs = x.detach().contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let ss = s0.detach().contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let gs = grad
            .detach()
            .contiguous()?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let mut dx = vec![0f32; xs.len()];
        let mut ds0 = vec![0f32; ss.len()];
        let arch = pulp::Arch::new();
        let per_lane = t.div_ceil(self.chunk.max(1)) * dk * dv;
        let kept = self
            .kept()?
            .take()
            .filter(|m| m.len() == b * h * per_lane && per_lane > 0);
        match kept {
            // the forward's states (the same values the recurrence would give again)
            Some(marks) => dx
                .par_chunks_mut(t * w)
                .zip(ds0.par_chunks_mut(dk * dv))
                .zip(xs.par_chunks(t * w))
                .zip(marks.par_chunks(per_lane).zip(gs.par_chunks((t + dk) * dv)))
                .for_each(|(((dx, ds), x), (m, g))| {
                    arch.dispatch(|| self.lane_bwd_from(x, m, g, dx, ds))
                }),
            None => dx
                .par_chunks_mut(t * w)
                .zip(ds0.par_chunks_mut(dk * dv))
                .zip(xs.par_chunks(t * w))
                .zip(ss.par_chunks(dk * dv).zip(gs.par_chunks((t + dk) * dv)))
                .for_each(|(((dx, ds), x), (s, g))| {
                    arch.dispatch(|| self.lane_bwd(x, s, g, dx, ds))
                }),
        }
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, (b, h, t, w), dev)?),
            Some(Tensor::from_vec(ds0, (b, h, dk, dv), dev)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn randn(seed: u64, shape: &[usize], std: f32) -> Tensor {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| {
                let (u1, u2): (f32, f32) = (rng.r#gen::<f32>().max(1e-7), rng.r#gen());
                std * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// The inputs of a small problem: unit-norm q and k, g ≤ 0, β in (0, 1).
    fn problem(t: usize) -> Vec<Tensor> {
        let (b, h, dk, dv) = (2, 3, 4, 5);
        let unit = |x: Tensor| {
            x.broadcast_div(&x.sqr().unwrap().sum_keepdim(3).unwrap().sqrt().unwrap())
                .unwrap()
        };
        vec![
            unit(randn(1, &[b, h, t, dk], 1.0)),
            unit(randn(2, &[b, h, t, dk], 1.0)),
            randn(3, &[b, h, t, dv], 1.0),
            randn(4, &[b, h, t], 0.5).abs().unwrap().neg().unwrap(),
            (randn(5, &[b, h, t], 1.0).neg().unwrap().exp().unwrap() + 1.0)
                .unwrap()
                .recip()
                .unwrap(),
            randn(6, &[b, h, dk, dv], 0.5),
        ]
    }

    /// The op's outputs and the gradients of every input (through a random weighting of the
    /// outputs and the last state) equal the composed ops', across chunk boundaries of its
    /// backward (chunk 3 over 8 tokens: chunks of 3, 3 and 2).
    #[test]
    fn fused_op_equals_the_composed_ops_with_gradients() {
        let xs = problem(8);
        let vars: Vec<Var> = xs.iter().map(|x| Var::from_tensor(x).unwrap()).collect();
        let t: Vec<&Tensor> = vars.iter().map(|v| v.as_tensor()).collect();
        let wo = randn(7, &[2, 3, 8, 5], 1.0);
        let ws = randn(8, &[2, 3, 4, 5], 1.0);
        let run = |f: &dyn Fn() -> Result<(Tensor, Tensor)>| {
            let (o, s) = f().unwrap();
            let loss = ((&o * &wo).unwrap().sum_all().unwrap()
                + (&s * &ws).unwrap().sum_all().unwrap())
            .unwrap();
            let g = loss.backward().unwrap();
            let grads: Vec<Tensor> = t.iter().map(|x| g.get(x).unwrap().clone()).collect();
            (o, s, grads)
        };
        let (o1, s1, g1) = run(&|| fused(t[0], t[1], t[2], t[3], t[4], t[5], 3));
        let (o2, s2, g2) = run(&|| composed(t[0], t[1], t[2], t[3], t[4], t[5]));
        assert!(max_diff(&o1, &o2) < 1e-5 && max_diff(&s1, &s2) < 1e-5);
        for (i, (a, b)) in g1.iter().zip(&g2).enumerate() {
            let d = max_diff(a, b);
            assert!(d < 1e-4, "input {i}: gradients differ by {d}");
        }
        // a second backward over the same graph finds the forward's states taken and runs
        // the recurrence again: the same gradients, bit for bit
        let (o, s) = fused(t[0], t[1], t[2], t[3], t[4], t[5], 3).unwrap();
        let loss = ((&o * &wo).unwrap().sum_all().unwrap()
            + (&s * &ws).unwrap().sum_all().unwrap())
        .unwrap();
        let (first, again) = (loss.backward().unwrap(), loss.backward().unwrap());
        for x in &t {
            let (a, b) = (first.get(x).unwrap(), again.get(x).unwrap());
            assert_eq!(max_diff(a, b), 0.0, "kept and recomputed states differ");
        }
    }

    /// The op's gradients against central finite differences (in f64 of the f32 op), every
    /// input, and resuming from a state equals one run.
    #[test]
    fn fused_op_gradients_match_finite_differences_and_it_resumes() {
        let xs = problem(5);
        let (o, s) = fused(&xs[0], &xs[1], &xs[2], &xs[3], &xs[4], &xs[5], 2).unwrap();
        let cut = |a: usize, n: usize| -> Vec<Tensor> {
            xs[..5].iter().map(|x| x.narrow(2, a, n).unwrap()).collect()
        };
        let (p, r) = (cut(0, 2), cut(2, 3));
        let (o1, s1) = fused(&p[0], &p[1], &p[2], &p[3], &p[4], &xs[5], 2).unwrap();
        let (o2, s2) = fused(&r[0], &r[1], &r[2], &r[3], &r[4], &s1, 2).unwrap();
        assert!(max_diff(&o, &Tensor::cat(&[&o1, &o2], 2).unwrap()) < 1e-6);
        assert!(max_diff(&s, &s2) < 1e-6);
        for which in 0..xs.len() {
            let f = |x: &Tensor| -> Result<Tensor> {
                let mut a = xs.clone();
                a[which] = x.clone();
                let (o, s) = fused(&a[0], &a[1], &a[2], &a[3], &a[4], &a[5], 2)?;
                Tensor::cat(&[&o.flatten_all()?, &s.flatten_all()?], 0)
            };
            let err = super::super::ops::tests::fd_check(&xs[which], &f, 16);
            assert!(err < 1e-2, "input {which}: relative error {err}");
        }
    }
}
