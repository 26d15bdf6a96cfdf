//! Attention on the CPU by blocks of query positions, computing only the key columns each
//! block's mask leaves open: softmax(q·kᵀ·scale + mask)·v and its backward.
//!
//! The mask decides the blocks' key ranges: for the query positions i0..i1 of a block, the
//! columns from the first to the last one any of its rows keeps (mask above [`HIDDEN`]). A
//! causal mask gives block j the keys 0..i1 — about half the scores of the whole square are
//! never multiplied, exponentiated or stored, in the forward and the backward — and a sliding
//! window only the window's. Inside a range the mask still applies entry by entry; a row that
//! hides every key attends over all of them, as the unblocked softmax does.
//!
//! Grouped-query heads are laid out position-major inside their key/value head (row
//! i·rep + j for position i of query head j of the group), so a block's rows of all `rep`
//! heads are one contiguous matrix and each block is two products for the forward
//! (scores = q·kᵀ, out = p·v) and four for the backward, on one thread each; blocks and heads
//! run over rayon's threads.
//!
//! Entries outside the ranges would have weight exactly 0 in the unblocked softmax (their
//! masked score is at least 10⁸ below the row's maximum), so results differ from it only by
//! the products' f32 summation order.

use rayon::prelude::*;

use crate::core::blas::{self, Mat};

/// Query positions per block: a causal sequence of t positions multiplies about
/// (t + BLOCK)/2t of its scores.
pub(super) const BLOCK: usize = 32;

/// A mask entry at or below this hides its key (`decoder::MASKED` is −10⁹).
const HIDDEN: f32 = -1e8;

/// Shapes: q (b, nh, t, hd), k and v (b, nkv, s, hd), the mask (mb, 1, t, s) with mb 1 or b.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dims {
    pub b: usize,
    pub nh: usize,
    pub nkv: usize,
    pub t: usize,
    pub s: usize,
    pub hd: usize,
    pub mb: usize,
}

impl Dims {
    fn rep(&self) -> usize {
        self.nh / self.nkv
    }

    fn units(&self) -> usize {
        self.b * self.nkv
    }
}

/// The blocks of one attention: each (mask batch, block)'s key range, and where each
/// (batch, key/value head, block)'s probabilities start in the flat buffer of all of them.
pub(super) struct Plan {
    dims: Dims,
    block: usize,
    blocks: usize,
    /// (lo, hi) per mask batch and block.
    ranges: Vec<(usize, usize)>,
    /// Start of each (unit, block)'s probabilities, and the total at the end.
    offsets: Vec<usize>,
}

/// One block's place: its unit (batch, key/value head), its positions and key columns.
#[derive(Debug, Clone, Copy)]
struct Block {
    unit: usize,
    i0: usize,
    i1: usize,
    lo: usize,
    hi: usize,
}

impl Block {
    fn rows(&self, rep: usize) -> usize {
        (self.i1 - self.i0) * rep
    }

    fn width(&self) -> usize {
        self.hi - self.lo
    }
}

impl Plan {
    pub(super) fn new(mask: &[f32], dims: Dims, block: usize) -> Plan {
        let Dims { t, s, mb, .. } = dims;
        let block = block.max(1);
        let blocks = t.div_ceil(block);
        let mut ranges = Vec::with_capacity(mb * blocks);
        for mbi in 0..mb {
            for bl in 0..blocks {
                let rows = bl * block..((bl + 1) * block).min(t);
                ranges.push(key_range(mask, (mbi * t, s), rows));
            }
        }
        let mut plan = Plan {
            dims,
            block,
            blocks,
            ranges,
            offsets: Vec::new(),
        };
        let mut at = 0;
        for unit in 0..dims.units() {
            for bl in 0..blocks {
                plan.offsets.push(at);
                let b = plan.block_at(unit, bl);
                at += b.rows(dims.rep()) * b.width();
            }
        }
        plan.offsets.push(at);
        plan
    }

    /// How many probabilities the blocks hold in all.
    pub(super) fn probs_len(&self) -> usize {
        self.offsets.last().copied().unwrap_or(0)
    }

    fn block_at(&self, unit: usize, bl: usize) -> Block {
        let mbi = if self.dims.mb == 1 {
            0
        } else {
            unit / self.dims.nkv
        };
        let (lo, hi) = self.ranges[mbi * self.blocks + bl];
        let i0 = bl * self.block;
        Block {
            unit,
            i0,
            i1: (i0 + self.block).min(self.dims.t),
            lo,
            hi,
        }
    }

    fn all_blocks(&self) -> Vec<Block> {
        (0..self.dims.units())
            .flat_map(|u| (0..self.blocks).map(move |bl| (u, bl)))
            .map(|(u, bl)| self.block_at(u, bl))
            .collect()
    }

    /// The blocks' parts of a flat per-block buffer laid out as the probabilities are.
    fn split<'a>(&self, buf: &'a mut [f32]) -> Vec<&'a mut [f32]> {
        let mut rest = buf;
        let mut parts = Vec::with_capacity(self.offsets.len());
        for w in self.offsets.windows(2) {
            let (head, tail) = rest.split_at_mut(w[1] - w[0]);
            parts.push(head);
            rest = tail;
        }
        parts
    }
}

/// The key columns [lo, hi) that the mask rows `rows` of one batch (first row `base`, rows of
/// `s`) keep; all of them when some row keeps none.
fn key_range(
    mask: &[f32],
    (base, s): (usize, usize),
    rows: std::ops::Range<usize>,
) -> (usize, usize) {
    let (mut lo, mut hi) = (s, 0);
    for i in rows {
        let row = &mask[(base + i) * s..(base + i + 1) * s];
        match row.iter().position(|&m| m > HIDDEN) {
            Some(f) => {
                let l = row.iter().rposition(|&m| m > HIDDEN).unwrap_or(f);
                lo = lo.min(f);
                hi = hi.max(l + 1);
            }
            None => return (0, s),
        }
    }
    if lo >= hi { (0, s) } else { (lo, hi) }
}

/// (b, nh, t, hd) → position-major groups (b, nkv, t, rep, hd), or back when `back`.
fn regroup(x: &[f32], d: &Dims, back: bool) -> Vec<f32> {
    let (rep, t, hd) = (d.rep(), d.t, d.hd);
    if rep == 1 || x.is_empty() {
        return x.to_vec();
    }
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(rep * t * hd)
        .zip(x.par_chunks(rep * t * hd))
        .for_each(|(o, x)| {
            for j in 0..rep {
                for i in 0..t {
                    let head_major = (j * t + i) * hd;
                    let pos_major = (i * rep + j) * hd;
                    let (to, from) = if back {
                        (head_major, pos_major)
                    } else {
                        (pos_major, head_major)
                    };
                    o[to..to + hd].copy_from_slice(&x[from..from + hd]);
                }
            }
        });
    out
}

/// The inputs of one attention, q regrouped position-major.
pub(super) struct Inputs<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub mask: &'a [f32],
    pub scale: f32,
}

/// The rows (positions i0..i1 of all heads of the unit) of a position-major (b, nkv, t·rep,
/// hd) buffer.
fn rows_of<'a>(x: &'a [f32], d: &Dims, b: &Block) -> &'a [f32] {
    let (rep, hd) = (d.rep(), d.hd);
    let start = (b.unit * d.t + b.i0) * rep * hd;
    &x[start..start + b.rows(rep) * hd]
}

/// The keys (or values) lo..hi of a block's unit in (b, nkv, s, hd).
fn keys_of<'a>(x: &'a [f32], d: &Dims, b: &Block) -> &'a [f32] {
    let start = (b.unit * d.s + b.lo) * d.hd;
    &x[start..start + b.width() * d.hd]
}

/// One block's probabilities p (rows × width) and its output rows o (rows × hd).
fn forward_block(inp: &Inputs, d: &Dims, b: &Block, p: &mut [f32], o: &mut [f32]) {
    let (rep, hd, w) = (d.rep(), d.hd, b.width());
    if w == 0 || hd == 0 {
        // no keys (or empty heads): nothing to attend to, a zero output as p·v gives
        o.fill(0.0);
        return;
    }
    let m = b.rows(rep);
    let q = Mat {
        v: rows_of(inp.q, d, b),
        ld: hd,
        t: false,
    };
    let k = Mat {
        v: keys_of(inp.k, d, b),
        ld: hd,
        t: true,
    };
    blas::gemm_here(p, w, q, k, (m, w, hd), (inp.scale, 0.0));
    let mbi = if d.mb == 1 { 0 } else { b.unit / d.nkv };
    for (r, row) in p.chunks_mut(w).enumerate() {
        let i = b.i0 + r / rep;
        let at = (mbi * d.t + i) * d.s + b.lo;
        softmax_masked(row, &inp.mask[at..at + w]);
    }
    let v = Mat {
        v: keys_of(inp.v, d, b),
        ld: hd,
        t: false,
    };
    let pm = Mat {
        v: p,
        ld: w,
        t: false,
    };
    blas::gemm_here(o, hd, pm, v, (m, hd, w), (1.0, 0.0));
}

/// softmax(row + mask) in place, for a row of scaled scores.
fn softmax_masked(row: &mut [f32], mask: &[f32]) {
    let mut m = f32::NEG_INFINITY;
    for (x, mk) in row.iter_mut().zip(mask) {
        *x += mk;
        m = m.max(*x);
    }
    let inv = 1.0 / super::vexp::exp_shifted_sum(row, m);
    row.iter_mut().for_each(|x| *x *= inv);
}

/// The forward: the output (b, nh, t, hd) and, when `keep`, every block's probabilities (laid
/// out by [`Plan`]) for the backward. `q` is (b, nh, t, hd), as the op receives it.
pub(super) fn forward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: &[f32],
    scale: f32,
    plan: &Plan,
    keep: bool,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let d = &plan.dims;
    let qg = regroup(q, d, false);
    let inp = Inputs {
        q: &qg,
        k,
        v,
        mask,
        scale,
    };
    let mut o = vec![0f32; q.len()];
    let blocks = plan.all_blocks();
    let o_parts = split_rows(&mut o, d, &blocks);
    let mut probs = keep.then(|| vec![0f32; plan.probs_len()]);
    match probs.as_mut() {
        Some(p) => blocks
            .par_iter()
            .zip(plan.split(p))
            .zip(o_parts)
            .for_each(|((b, p), o)| forward_block(&inp, d, b, p, o)),
        None => blocks.par_iter().zip(o_parts).for_each(|(b, o)| {
            let mut p = vec![0f32; b.rows(d.rep()) * b.width()];
            forward_block(&inp, d, b, &mut p, o)
        }),
    }
    (regroup(&o, d, true), probs)
}

/// Each block's output rows of a position-major (b, nkv, t·rep, hd) buffer (blocks in
/// [`Plan::all_blocks`] order: they tile the buffer).
fn split_rows<'a>(x: &'a mut [f32], d: &Dims, blocks: &[Block]) -> Vec<&'a mut [f32]> {
    let mut rest = x;
    blocks
        .iter()
        .map(|b| {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(b.rows(d.rep()) * d.hd);
            rest = tail;
            head
        })
        .collect()
}

/// The backward for the output gradient g (b, nh, t, hd), given the forward's probabilities
/// (recomputed when None): (dq (b, nh, t, hd), dk, dv (b, nkv, s, hd)).
#[allow(clippy::too_many_arguments)]
pub(super) fn backward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: &[f32],
    scale: f32,
    plan: &Plan,
    probs: Option<Vec<f32>>,
    g: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let d = &plan.dims;
    let probs = match probs {
        Some(p) => p,
        None => forward(q, k, v, mask, scale, plan, true)
            .1
            .unwrap_or_default(),
    };
    let (qg, gg) = (regroup(q, d, false), regroup(g, d, false));
    let blocks = plan.all_blocks();
    // per block: ds = p ⊙ (g·vᵀ − rowsum(g·vᵀ ⊙ p)), dq rows = scale·ds·k
    let mut ds = vec![0f32; probs.len()];
    let mut dq = vec![0f32; q.len()];
    let dq_parts = split_rows(&mut dq, d, &blocks);
    let p_parts: Vec<&[f32]> = plan
        .offsets
        .windows(2)
        .map(|w| &probs[w[0]..w[1]])
        .collect();
    blocks
        .par_iter()
        .zip(plan.split(&mut ds))
        .zip(p_parts.par_iter().zip(dq_parts))
        .for_each(|((b, ds), (p, dq))| {
            let gb = rows_of(&gg, d, b);
            score_grads(
                d,
                b,
                (gb, keys_of(v, d, b), keys_of(k, d, b)),
                p,
                ds,
                dq,
                scale,
            );
        });
    // per unit, over its blocks in turn: dv += pᵀ·g, dk += scale·dsᵀ·q
    let (mut dk, mut dv) = (vec![0f32; k.len()], vec![0f32; v.len()]);
    let per_unit = (d.s * d.hd).max(1);
    dk.par_chunks_mut(per_unit)
        .zip(dv.par_chunks_mut(per_unit))
        .enumerate()
        .for_each(|(unit, (dk, dv))| {
            for bl in 0..plan.blocks {
                let b = plan.block_at(unit, bl);
                let at = plan.offsets[unit * plan.blocks + bl];
                let n = b.rows(d.rep()) * b.width();
                let (p, ds) = (&probs[at..at + n], &ds[at..at + n]);
                let rows = (rows_of(&gg, d, &b), rows_of(&qg, d, &b));
                key_grads(d, &b, rows, (p, ds), (dk, dv), scale);
            }
        });
    (regroup(&dq, d, true), dk, dv)
}

/// One block's score gradient ds (rows × width) and its rows of dq (rows × hd), from its rows
/// of g and its keys' v and k.
fn score_grads(
    d: &Dims,
    b: &Block,
    (g, v, k): (&[f32], &[f32], &[f32]),
    p: &[f32],
    ds: &mut [f32],
    dq: &mut [f32],
    scale: f32,
) {
    let (hd, w) = (d.hd, b.width());
    if w == 0 || hd == 0 {
        dq.fill(0.0);
        return;
    }
    let m = b.rows(d.rep());
    let gm = Mat {
        v: g,
        ld: hd,
        t: false,
    };
    let vt = Mat { v, ld: hd, t: true };
    blas::gemm_here(ds, w, gm, vt, (m, w, hd), (1.0, 0.0));
    for (dsr, pr) in ds.chunks_mut(w).zip(p.chunks(w)) {
        let dot: f32 = dsr.iter().zip(pr).map(|(a, b)| a * b).sum();
        for (x, p) in dsr.iter_mut().zip(pr) {
            *x = p * (*x - dot);
        }
    }
    let dsm = Mat {
        v: ds,
        ld: w,
        t: false,
    };
    let km = Mat {
        v: k,
        ld: hd,
        t: false,
    };
    blas::gemm_here(dq, hd, dsm, km, (m, hd, w), (scale, 0.0));
}

/// One block's part of its unit's dk and dv (s × hd each): dv[lo..hi] += pᵀ·g,
/// dk[lo..hi] += scale·dsᵀ·q, from the block's rows of g and q.
fn key_grads(
    d: &Dims,
    b: &Block,
    (g, q): (&[f32], &[f32]),
    (p, ds): (&[f32], &[f32]),
    (dk, dv): (&mut [f32], &mut [f32]),
    scale: f32,
) {
    let (hd, w) = (d.hd, b.width());
    if w == 0 || hd == 0 {
        return;
    }
    let m = b.rows(d.rep());
    let keys = b.lo * hd..b.hi * hd;
    let pt = Mat {
        v: p,
        ld: w,
        t: true,
    };
    let gm = Mat {
        v: g,
        ld: hd,
        t: false,
    };
    blas::gemm_here(&mut dv[keys.clone()], hd, pt, gm, (w, hd, m), (1.0, 1.0));
    let dst = Mat {
        v: ds,
        ld: w,
        t: true,
    };
    let qm = Mat {
        v: q,
        ld: hd,
        t: false,
    };
    blas::gemm_here(&mut dk[keys], hd, dst, qm, (w, hd, m), (scale, 1.0));
}
