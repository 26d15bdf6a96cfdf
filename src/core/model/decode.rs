//! The decoding fast path of `generate` (no gradient): per layer and step a handful of matrix
//! products over merged weights, everything else in plain Rust over slices.
//!
//! On a small model every candle op of the composed decode path (`CausalLm::forward_step`, ~40 ops
//! per layer and token) is a few µs of allocation and dispatch around very little arithmetic.
//! Here, once per `generate` call:
//! - each linear layer's weight is merged with its adapter (W + s·B·A, an NF4 base
//!   dequantized), and q/k/v and gate/up are concatenated, so a layer's step is four matrix
//!   products (qkv, o, gate-up, down) run by candle's CPU matmul (gemm);
//! - the KV cache is preallocated to the longest prompt plus `max_new_tokens` positions and
//!   written in place; each row keeps its own length, so there is no padding and no mask;
//! - the prompt of a GSPO group (the same prompt G times) is prefilled once and its cache rows
//!   copied to the other members;
//! - q/k head norms (where the architecture has them), biases, rotary embedding (with YaRN's
//!   factor), attention over the cache (or its last `window` positions in a sliding layer),
//!   softmax, SwiGLU and RMS norms are loops over slices with the formulas of `ops.rs`;
//!   finished rows are not computed.
//!
//! The results equal the composed path up to floating-point summation order (the merged weight
//! rounds differently from base + adapter products, and the attention dot products are summed
//! in another order): log-probs agree to ~1e-6, and a sampled token can differ from the
//! composed path's only when a uniform draw falls within that distance of a bucket edge. The
//! path is deterministic: the same seed gives the same tokens.
//!
//! Used only on the CPU with f32 activations, for dense models whose merged linear weights fit
//! in [`MERGE_BUDGET_BYTES`] (a larger model would hold a second full-precision copy of its
//! weights), and while no LoRA dropout is active; otherwise `generate` runs the composed path.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Layout, Result, Storage, Tensor, bail};

use super::decoder::{CausalLm, Ffn, Mixer, Role};
use super::linear::Linear;

/// Largest total size of the merged f32 linear weights for which decoding takes the fast path.
pub const MERGE_BUDGET_BYTES: usize = 256 << 20;

/// A frozen (n, k) weight as CPU storage, applied as x·Wᵀ.
struct Mat {
    w: CpuStorage,
    /// The frozen biases of the stacked layers (zeros where a layer has none), if any has one.
    bias: Option<Vec<f32>>,
    /// The transposed layout of W: a (k, n) view of the (n, k) rows.
    wt: Layout,
    n: usize,
    k: usize,
}

impl Mat {
    /// The weights of `lins` (each (n_i, k), merged with the adapter for the policy) and their
    /// biases, stacked along the output dimension.
    fn stack(lins: &[&Linear], role: Role) -> Result<Mat> {
        let parts = lins
            .iter()
            .map(|l| weight(l, role))
            .collect::<Result<Vec<_>>>()?;
        let bias = if lins.iter().any(|l| l.bias.is_some()) {
            let mut b = Vec::new();
            for l in lins {
                match &l.bias {
                    Some(t) => b.extend(vec_f32(t)?),
                    None => b.extend(std::iter::repeat_n(0f32, l.base.dims().0)),
                }
            }
            Some(b)
        } else {
            None
        };
        let w = Tensor::cat(&parts, 0)?.contiguous()?;
        let (n, k) = w.dims2()?;
        let v = w.flatten_all()?.to_vec1::<f32>()?;
        Ok(Mat {
            w: CpuStorage::F32(v),
            bias,
            wt: Layout::contiguous((n, k)).transpose(0, 1)?,
            n,
            k,
        })
    }

    /// x (m, k) · Wᵀ → (m, n).
    fn apply(&self, x: Vec<f32>, m: usize) -> Result<Vec<f32>> {
        let mut y = matmul_t(CpuStorage::F32(x), m, &self.w, &self.wt, self.n, self.k)?;
        if let Some(b) = &self.bias {
            for row in y.chunks_mut(self.n) {
                for (v, b) in row.iter_mut().zip(b) {
                    *v += b;
                }
            }
        }
        Ok(y)
    }
}

/// x (m, k) · W(n, k)ᵀ with `wt` the transposed layout of W.
fn matmul_t(
    x: CpuStorage,
    m: usize,
    w: &CpuStorage,
    wt: &Layout,
    n: usize,
    k: usize,
) -> Result<Vec<f32>> {
    let y = x.matmul(w, (1, m, n, k), &Layout::contiguous((m, k)), wt)?;
    match y {
        CpuStorage::F32(v) => Ok(v),
        _ => bail!("decode: matmul did not return f32"),
    }
}

/// The f32 values of a small tensor (norm weights).
fn vec_f32(t: &Tensor) -> Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
}

/// x / sqrt(mean(x²) + eps) · w, as `ops::rms_norm`.
fn rms_norm_into(out: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
    let d = w.len();
    let ms = x.iter().map(|v| v * v).sum::<f32>() / d as f32;
    let r = 1.0 / (ms + eps).sqrt();
    for ((o, x), w) in out.iter_mut().zip(x).zip(w) {
        *o = x * r * w;
    }
}

/// Σ a·b with eight partial sums (vectorisable).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

struct Layer {
    qkv: Mat,
    o: Mat,
    gate_up: Mat,
    down: Mat,
    ln1: Vec<f32>,
    ln2: Vec<f32>,
    /// The q/k head norm weights (Qwen3), if the architecture has them.
    qk_norm: Option<(Vec<f32>, Vec<f32>)>,
    /// The sliding window: a token attends to at most this many positions, its own included.
    window: Option<usize>,
    /// (rows, kv heads, capacity, head_dim), written in place.
    k: Vec<f32>,
    v: Vec<f32>,
}

impl Layer {
    /// softmax(q·kᵀ/√d)·v for each token's query heads (from its row of `qkv`) over positions
    /// 0..=pos of the token's cached row (the last `window` of them in a sliding layer), for
    /// (heads, kv heads, head_dim, cache capacity) `dims`; `scores` is scratch of `cap`.
    fn attend(
        &self,
        qkv: &[f32],
        toks: &[Tok],
        (nh, nkv, hd, cap): (usize, usize, usize, usize),
        scores: &mut [f32],
    ) -> Vec<f32> {
        let (rep, nqkv) = (nh / nkv, (nh + 2 * nkv) * hd);
        // as candle's `scores * scale` (an affine op in f32)
        let scale = (1.0 / (hd as f64).sqrt()) as f32;
        let mut att = vec![0f32; toks.len() * nh * hd];
        for ((ar, r), t) in att.chunks_mut(nh * hd).zip(qkv.chunks(nqkv)).zip(toks) {
            let end = t.pos + 1;
            let start = self.window.map_or(0, |w| end.saturating_sub(w));
            let n = end - start;
            for (hq, (oh, qh)) in ar.chunks_mut(hd).zip(r.chunks(hd)).enumerate() {
                let base = (t.row * nkv + hq / rep) * cap * hd + start * hd;
                let (ks, vs) = (&self.k[base..base + n * hd], &self.v[base..base + n * hd]);
                let sc = &mut scores[..n];
                for (s, kj) in sc.iter_mut().zip(ks.chunks(hd)) {
                    *s = dot(qh, kj) * scale;
                }
                let mx = sc.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0f32;
                for s in sc.iter_mut() {
                    *s = (*s - mx).exp();
                    sum += *s;
                }
                let inv = 1.0 / sum;
                for (p, vj) in sc.iter().zip(vs.chunks(hd)) {
                    let p = p * inv;
                    for (o, v) in oh.iter_mut().zip(vj) {
                        *o += p * v;
                    }
                }
            }
        }
        att
    }
}

/// One token to run: its batch row, id and position (= its cache slot).
#[derive(Clone, Copy)]
pub(super) struct Tok {
    pub row: usize,
    pub id: u32,
    pub pos: usize,
}

/// A model prepared for decoding a batch of `rows` sequences of at most `cap` positions.
pub(super) struct Decoder<'a> {
    model: &'a CausalLm,
    layers: Vec<Layer>,
    norm: Vec<f32>,
    h: usize,
    heads: usize,
    kv_heads: usize,
    hd: usize,
    inter: usize,
    vocab: usize,
    eps: f32,
    cap: usize,
    /// cos, sin of position p at [p·hd/2 ..], as `CausalLm::rope_angles` computes them.
    cos: Vec<f32>,
    sin: Vec<f32>,
}

/// The weight a decode step uses for `lin`: merged with its adapter for the policy.
fn weight(lin: &Linear, role: Role) -> Result<Tensor> {
    if role.adapters() {
        lin.merged_weight()
    } else {
        lin.base.to_f32()
    }
}

impl<'a> Decoder<'a> {
    /// The fast path for this model, or None where it does not apply (see the module doc).
    pub fn new(model: &'a CausalLm, role: Role, rows: usize, cap: usize) -> Result<Option<Self>> {
        if !model.device().is_cpu() || model.embed.dtype() != DType::F32 {
            return Ok(None);
        }
        let mut bytes = 0usize;
        for (_, lin) in model.linears() {
            if let (Some(l), true) = (&lin.lora, role.adapters())
                && l.train_rng.is_some()
                && l.dropout > 0.0
            {
                return Ok(None);
            }
            let (o, i) = lin.base.dims();
            bytes += o * i * 4;
        }
        // MoE layers and Qwen3-Next (gated attention, DeltaNet) take the general path
        if bytes > MERGE_BUDGET_BYTES
            || model.spec.next.is_some()
            || model.layers.iter().any(|l| matches!(l.ffn, Ffn::Moe(_)))
        {
            return Ok(None);
        }

        let cfg = &model.cfg;
        let (h, hd, heads, kv_heads) = (
            cfg.hidden_size,
            cfg.head_dim(),
            cfg.num_attention_heads,
            cfg.kv_heads(),
        );
        let mut layers = Vec::with_capacity(model.layers.len());
        for (l, window) in model.layers.iter().zip(&model.spec.windows) {
            let Ffn::Dense(mlp) = &l.ffn else {
                return Ok(None);
            };
            let Mixer::Attention(a) = &l.mixer else {
                return Ok(None);
            };
            let cache = rows * kv_heads * cap * hd;
            layers.push(Layer {
                qkv: Mat::stack(&[&a.q, &a.k, &a.v], role)?,
                o: Mat::stack(&[&a.o], role)?,
                gate_up: Mat::stack(&[&mlp.gate, &mlp.up], role)?,
                down: Mat::stack(&[&mlp.down], role)?,
                ln1: vec_f32(&l.ln1)?,
                ln2: vec_f32(&l.ln2)?,
                qk_norm: match &a.qk_norm {
                    Some((q, k)) => Some((vec_f32(q)?, vec_f32(k)?)),
                    None => None,
                },
                window: *window,
                k: vec![0f32; cache],
                v: vec![0f32; cache],
            });
        }
        let half = hd / 2;
        let mut cos = Vec::with_capacity(cap * half);
        let mut sin = Vec::with_capacity(cap * half);
        for p in 0..cap {
            let scale = model.spec.rope.attention_factor;
            for &f in &model.spec.rope.inv_freq {
                let a = p as f32 * f;
                // as `CausalLm::rope_angles`: the factor (YaRN) multiplies cos and sin
                if scale == 1.0 {
                    cos.push(a.cos());
                    sin.push(a.sin());
                } else {
                    cos.push(a.cos() * scale);
                    sin.push(a.sin() * scale);
                }
            }
        }
        Ok(Some(Decoder {
            model,
            layers,
            norm: vec_f32(&model.norm)?,
            h,
            heads,
            kv_heads,
            hd,
            inter: cfg.intermediate_size,
            vocab: cfg.vocab_size,
            eps: cfg.rms_norm_eps as f32,
            cap,
            cos,
            sin,
        }))
    }

    /// Runs `toks` through the model, writing their keys and values into the cache; each token
    /// attends to the cached positions of its row up to its own. A row's earlier positions must
    /// be cached or come earlier in `toks`. Returns the logits (len(toks[i]) of `want`, vocab)
    /// of the tokens whose index is in `want`.
    pub fn forward(&mut self, toks: &[Tok], want: &[usize]) -> Result<Vec<f32>> {
        let (h, hd, nh, nkv) = (self.h, self.hd, self.heads, self.kv_heads);
        let m = toks.len();
        let cap = self.cap;
        if let Some(t) = toks.iter().find(|t| t.pos >= cap) {
            bail!("decode: position {} beyond the cache of {cap}", t.pos)
        }
        // embedding rows
        let mut x = vec![0f32; m * h];
        {
            let (s, l) = self.model.embed.storage_and_layout();
            let Storage::Cpu(CpuStorage::F32(e)) = &*s else {
                bail!("decode: embedding is not f32 on the CPU")
            };
            let Some((e0, _)) = l.contiguous_offsets() else {
                bail!("decode: embedding is not contiguous")
            };
            for (xr, t) in x.chunks_mut(h).zip(toks) {
                let a = e0 + t.id as usize * h;
                xr.copy_from_slice(&e[a..a + h]);
            }
        }
        let half = hd / 2;
        let nqkv = (nh + 2 * nkv) * hd;
        let mut scores = vec![0f32; cap];
        let mut normed = vec![0f32; hd];
        for l in &mut self.layers {
            // attention block
            let mut hn = vec![0f32; m * h];
            for (o, xr) in hn.chunks_mut(h).zip(x.chunks(h)) {
                rms_norm_into(o, xr, &l.ln1, self.eps);
            }
            let mut qkv = l.qkv.apply(hn, m)?;
            debug_assert_eq!(qkv.len(), m * nqkv);
            // q/k head norms and rotation; k and v into the cache
            for (r, t) in qkv.chunks_mut(nqkv).zip(toks) {
                let (c, s) = (
                    &self.cos[t.pos * half..(t.pos + 1) * half],
                    &self.sin[t.pos * half..(t.pos + 1) * half],
                );
                let (q, kv) = r.split_at_mut(nh * hd);
                let (k, v) = kv.split_at_mut(nkv * hd);
                let mut rotate = |x: &mut [f32], w: Option<&[f32]>| {
                    match w {
                        Some(w) => rms_norm_into(&mut normed, x, w, self.eps),
                        None => normed.copy_from_slice(x),
                    }
                    for i in 0..half {
                        let (x1, x2) = (normed[i], normed[i + half]);
                        x[i] = x1 * c[i] - x2 * s[i];
                        x[i + half] = x2 * c[i] + x1 * s[i];
                    }
                };
                for qh in q.chunks_mut(hd) {
                    rotate(qh, l.qk_norm.as_ref().map(|n| n.0.as_slice()));
                }
                for (g, (kh, vh)) in k.chunks_mut(hd).zip(v.chunks(hd)).enumerate() {
                    rotate(kh, l.qk_norm.as_ref().map(|n| n.1.as_slice()));
                    let at = ((t.row * nkv + g) * cap + t.pos) * hd;
                    l.k[at..at + hd].copy_from_slice(kh);
                    l.v[at..at + hd].copy_from_slice(vh);
                }
            }
            let att = l.attend(&qkv, toks, (nh, nkv, hd, cap), &mut scores);
            drop(qkv);
            let y = l.o.apply(att, m)?;
            for (x, y) in x.iter_mut().zip(&y) {
                *x += y;
            }
            // MLP block
            let mut hn = vec![0f32; m * h];
            for (o, xr) in hn.chunks_mut(h).zip(x.chunks(h)) {
                rms_norm_into(o, xr, &l.ln2, self.eps);
            }
            let gu = l.gate_up.apply(hn, m)?;
            let inter = self.inter;
            let mut a = vec![0f32; m * inter];
            for (ar, r) in a.chunks_mut(inter).zip(gu.chunks(2 * inter)) {
                let (g, u) = r.split_at(inter);
                for ((o, g), u) in ar.iter_mut().zip(g).zip(u) {
                    *o = g * (1.0 / (1.0 + (-g).exp())) * u;
                }
            }
            let y = l.down.apply(a, m)?;
            for (x, y) in x.iter_mut().zip(&y) {
                *x += y;
            }
        }
        // final norm of the wanted rows and the LM head
        let mut hn = vec![0f32; want.len() * h];
        for (o, &i) in hn.chunks_mut(h).zip(want) {
            rms_norm_into(o, &x[i * h..(i + 1) * h], &self.norm, self.eps);
        }
        let head = self.model.lm_head();
        let (s, l) = head.storage_and_layout();
        let Storage::Cpu(w) = &*s else {
            bail!("decode: LM head is not on the CPU")
        };
        let wt = l.transpose(0, 1)?;
        matmul_t(CpuStorage::F32(hn), want.len(), w, &wt, self.vocab, h)
    }

    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// Copies the cached positions 0..n of row `from` to row `to`.
    pub fn copy_row(&mut self, from: usize, to: usize, n: usize) {
        let (nkv, cap, hd) = (self.kv_heads, self.cap, self.hd);
        for l in &mut self.layers {
            for g in 0..nkv {
                let src = (from * nkv + g) * cap * hd;
                let dst = (to * nkv + g) * cap * hd;
                l.k.copy_within(src..src + n * hd, dst);
                l.v.copy_within(src..src + n * hd, dst);
            }
        }
    }
}
