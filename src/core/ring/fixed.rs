//! Exact fixed-point weighted sums (docs/ring-protocol.md, "Fixed-point arithmetic").
//!
//! Inputs are scaled by `2^F` and rounded once to `i64`; sums of those integers are exact, so
//! the reduced vector does not depend on the order of the additions, and every member turns
//! it back into the same floating-point bytes.

use super::quant::{self, Bits};

/// Receivers reject any partial-sum element with `|v| >= BOUND`.
pub const BOUND: i64 = 1 << 59;
/// Honest partial sums stay below `2^HEADROOM`.
pub const HEADROOM: i32 = 58;
/// Largest scale used.
pub const MAX_SCALE: u32 = 60;
/// Exponent used for an all-zero input, and the clamp range of exponents.
pub const MIN_EXPONENT: i32 = -126;
pub const MAX_EXPONENT: i32 = 64;
/// Largest weight a member may give.
pub const MAX_WEIGHT: u64 = 1 << 32;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FixedError {
    #[error(
        "inputs too large for exact summation: largest |x| < 2^{exponent}, total weight {total_weight}"
    )]
    TooLarge { exponent: i32, total_weight: u128 },
    #[error("element {index} is not finite ({value})")]
    NotFinite { index: usize, value: f64 },
    #[error("weight {weight} is outside 1..={MAX_WEIGHT}")]
    Weight { weight: u64 },
}

/// The smallest `e` with `|x| < 2^e` for every element, clamped to
/// `[MIN_EXPONENT, MAX_EXPONENT]`.
pub fn exponent(xs: &[f64]) -> Result<i32, FixedError> {
    // The magnitude's bits (sign cleared) order like the magnitudes for finite values, and
    // every infinity or NaN is above them: one integer max, which vectorizes (f64::max does not).
    const ABS: u64 = !(1 << 63);
    const INF: u64 = 0x7ff0_0000_0000_0000;
    let top = xs.iter().fold(0u64, |m, v| m.max(v.to_bits() & ABS));
    if top >= INF {
        let index = xs
            .iter()
            .position(|v| !v.is_finite())
            .expect("a non-finite element");
        return Err(FixedError::NotFinite {
            index,
            value: xs[index],
        });
    }
    let max = f64::from_bits(top);
    if max == 0.0 {
        return Ok(MIN_EXPONENT);
    }
    // frexp: max = m · 2^e with 0.5 <= m < 1, so max < 2^e.
    let mut e = max.log2().floor() as i32 + 1;
    // log2 may round; fix up exactly with powers of two.
    while max >= pow2(e) {
        e += 1;
    }
    while e > MIN_EXPONENT && max < pow2(e - 1) {
        e -= 1;
    }
    Ok(e.clamp(MIN_EXPONENT, MAX_EXPONENT))
}

fn pow2(e: i32) -> f64 {
    2f64.powi(e)
}

/// Bits of `n`: the smallest `b` with `n < 2^b`.
pub fn bitlen(n: u128) -> i32 {
    128 - n.leading_zeros() as i32
}

/// The scale `F` every member derives from the published exponents and weights.
pub fn scale_bits(exponents: &[i32], weights: &[u64]) -> Result<u32, FixedError> {
    let e = exponents.iter().copied().max().unwrap_or(MIN_EXPONENT);
    let total: u128 = weights.iter().map(|&w| w as u128).sum();
    let f = HEADROOM - e - bitlen(total);
    if f < 0 {
        return Err(FixedError::TooLarge {
            exponent: e,
            total_weight: total,
        });
    }
    Ok((f as u32).min(MAX_SCALE))
}

pub fn check_weight(weight: u64) -> Result<u64, FixedError> {
    if weight == 0 || weight > MAX_WEIGHT {
        return Err(FixedError::Weight { weight });
    }
    Ok(weight)
}

/// `c[k] = w · round_half_even(x[k] · 2^F)`. The caller guarantees (through [`scale_bits`]) that
/// no product leaves `(-2^58, 2^58)`; a value that would is clamped to the largest multiple of
/// `w` an `i64` holds, which only an input that lied about its exponent can cause (and which
/// every receiver refuses, being far outside `(−B, B)`).
pub fn contribution<T: Element>(xs: &[T], weight: u64, scale: u32) -> Vec<i64> {
    let mut out = vec![0; xs.len()];
    contribution_into(xs, weight, scale, &mut out);
    out
}

/// [`contribution`] of `xs` written into `out` (`out.len() == xs.len()`).
pub fn contribution_into<T: Element>(xs: &[T], weight: u64, scale: u32, out: &mut [i64]) {
    debug_assert_eq!(xs.len(), out.len());
    T::contribution_into(xs, &Kernel::new(weight, scale), out);
}

/// An input element type: `f32` (every input without `f64` tensors) has an AVX-512 kernel.
pub trait Element: Copy + Into<f64> {
    #[doc(hidden)]
    fn contribution_into(xs: &[Self], k: &Kernel, out: &mut [i64]);
}

impl Element for f32 {
    fn contribution_into(xs: &[f32], k: &Kernel, out: &mut [i64]) {
        #[cfg(target_arch = "x86_64")]
        if x86::contribution_f32(xs, k, out) {
            return;
        }
        k.run(xs, out);
    }
}

impl Element for f64 {
    fn contribution_into(xs: &[f64], k: &Kernel, out: &mut [i64]) {
        k.run(xs, out);
    }
}

/// The constants of [`contribution`] for one weight and scale.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct Kernel {
    s: f64,
    w: i64,
    /// `|round(x · s)|` is clamped to this, so that `· w` cannot overflow.
    lim: f64,
}

impl Kernel {
    fn new(weight: u64, scale: u32) -> Self {
        let w = weight.max(1) as i64;
        // The largest f64 ≤ i64::MAX / w (rounding toward zero), so that q · w fits.
        let mut lim = (i64::MAX / w) as f64;
        if lim as i128 * w as i128 > i64::MAX as i128 {
            lim = f64::from_bits(lim.to_bits() - 1);
        }
        Kernel {
            s: pow2(scale as i32),
            w,
            lim,
        }
    }

    /// One element: `w · round_half_even(x · s)`. Branch-free, so the loop vectorizes where
    /// the CPU converts f64 to i64 and multiplies i64 in SIMD lanes (AVX-512DQ).
    #[inline(always)]
    fn one(&self, x: f64) -> i64 {
        let q = round_half_even(x * self.s).clamp(-self.lim, self.lim);
        (q as i64).wrapping_mul(self.w)
    }

    #[inline(always)]
    fn run<T: Into<f64> + Copy>(&self, xs: &[T], out: &mut [i64]) {
        for (o, &x) in out.iter_mut().zip(xs) {
            *o = self.one(x.into());
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use std::arch::x86_64::*;

    use super::Kernel;

    /// [`Kernel::run`] on `f32` elements with AVX-512 (F + DQ) when the CPU has it; `false`
    /// (nothing done) otherwise. The same IEEE operations per element as the scalar loop
    /// (widen, multiply by `2^F`, round half to even, clamp, convert, multiply by `w`), so the
    /// same values; a NaN gives 0 as Rust's `as` does (an honest input has none: its
    /// exponent is checked first).
    pub(super) fn contribution_f32(xs: &[f32], k: &Kernel, out: &mut [i64]) -> bool {
        if !(crate::core::cpu::simd_allowed()
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512dq"))
        {
            return false;
        }
        // SAFETY: the CPU reports AVX-512F and AVX-512DQ.
        unsafe { run_f32_avx512(xs, k, out) };
        true
    }

    #[target_feature(enable = "avx512f,avx512dq")]
    unsafe fn run_f32_avx512(xs: &[f32], k: &Kernel, out: &mut [i64]) {
        assert_eq!(xs.len(), out.len());
        let whole = xs.len() / 8 * 8;
        let s = _mm512_set1_pd(k.s);
        let (lo, hi) = (_mm512_set1_pd(-k.lim), _mm512_set1_pd(k.lim));
        let w = _mm512_set1_epi64(k.w);
        for i in (0..whole).step_by(8) {
            // SAFETY: i + 8 <= whole <= xs.len() == out.len().
            let x = unsafe { _mm256_loadu_ps(xs.as_ptr().add(i)) };
            let v = _mm512_mul_pd(_mm512_cvtps_pd(x), s);
            let r = _mm512_roundscale_pd::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
            let q = _mm512_cvttpd_epi64(_mm512_min_pd(_mm512_max_pd(r, lo), hi));
            let q = _mm512_maskz_mov_epi64(_mm512_cmp_pd_mask::<_CMP_ORD_Q>(v, v), q);
            let c = _mm512_mullo_epi64(q, w);
            // SAFETY: as above.
            unsafe { _mm512_storeu_si512(out.as_mut_ptr().add(i).cast(), c) };
        }
        k.run(&xs[whole..], &mut out[whole..]);
    }
}

/// A member's flattened input. `f16`, `bf16` and `f32` elements widen exactly to `f32`, so an
/// input without `f64` tensors is kept as `f32`: half the memory of `f64`, and the same
/// fixed-point values (`f32 → f64` is exact).
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    F32(Vec<f32>),
    F64(Vec<f64>),
    /// A group's exact sum (a leader's input in a hierarchical round): its integers are the
    /// contribution as they are.
    Sum(ExactSum),
}

/// A group's exact integer sum `Σ wᵢ·round(xᵢ·2^F)` at the round's scale `F`, with its weight
/// total (docs/ring-protocol.md "Hierarchical rounds"). It enters a leader ring's sum as it
/// is: its weight is already in the integers.
#[derive(Debug, Clone, PartialEq)]
pub struct ExactSum {
    sum: Vec<i64>,
    scale: u32,
    total_weight: u64,
    exponent: i32,
}

impl ExactSum {
    /// A sum whose every element is inside `(−BOUND, BOUND)`, at a scale of at most
    /// [`MAX_SCALE`], with a weight total of 1 to [`MAX_WEIGHT`] (the caller checks all three).
    /// Its exponent is that of its mean `max|s| / (Σw · 2^F)`: what the leader commits, so the
    /// ring's `max_exponent` bounds a group's mean as it bounds a member's delta.
    pub fn new(sum: Vec<i64>, scale: u32, total_weight: u64) -> Self {
        let top = sum.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
        let m = Mean::new(total_weight as u128, scale).of(top.min(i64::MAX as u64) as i64);
        let exponent = exponent(&[m]).unwrap_or(MAX_EXPONENT);
        ExactSum {
            sum,
            scale,
            total_weight,
            exponent,
        }
    }

    pub fn scale(&self) -> u32 {
        self.scale
    }

    pub fn total_weight(&self) -> u64 {
        self.total_weight
    }

    pub fn sum(&self) -> &[i64] {
        &self.sum
    }
}

impl From<Vec<f64>> for Values {
    fn from(v: Vec<f64>) -> Self {
        Values::F64(v)
    }
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::F64(v) => v.len(),
            Values::Sum(s) => s.sum.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `k` as `f64`.
    pub fn get(&self, k: usize) -> f64 {
        match self {
            Values::F32(v) => v[k] as f64,
            Values::F64(v) => v[k],
            Values::Sum(s) => mean(s.sum[k], s.total_weight as u128, s.scale),
        }
    }

    /// [`exponent`] of the elements.
    pub fn exponent(&self) -> Result<i32, FixedError> {
        match self {
            Values::F32(v) => exponent_f32(v),
            Values::F64(v) => exponent(v),
            Values::Sum(s) => Ok(s.exponent),
        }
    }

    /// [`contribution`] of every element.
    pub fn contribution(&self, weight: u64, scale: u32) -> Vec<i64> {
        self.contribution_of(weight, scale, None)
    }

    /// [`contribution`] of elements `start .. start + out.len()`, into `out`: the
    /// contribution is made chunk by chunk where it is used instead of kept whole. With
    /// `quant`, the contribution of the quantized input ([`quant`](super::quant)): each
    /// element's block (of the whole input, from element 0) is read to find its step.
    pub fn contribution_into(
        &self,
        start: usize,
        weight: u64,
        scale: u32,
        quant: Option<Bits>,
        out: &mut [i64],
    ) {
        let r = start..start + out.len();
        match (self, quant) {
            (Values::F32(v), None) => contribution_into(&v[r], weight, scale, out),
            (Values::F64(v), None) => contribution_into(&v[r], weight, scale, out),
            (Values::F32(v), Some(b)) => quantized_into(v, start, weight, scale, b, out),
            (Values::F64(v), Some(b)) => quantized_into(v, start, weight, scale, b, out),
            // Already weighted and scaled (the machine checks the scale is the ring's); a sum
            // of quantized contributions is on the grid already, so it is never quantized again.
            (Values::Sum(s), _) => out.copy_from_slice(&s.sum[r]),
        }
    }

    /// [`Values::contribution_into`] of every element.
    pub fn contribution_of(&self, weight: u64, scale: u32, quant: Option<Bits>) -> Vec<i64> {
        let mut out = vec![0; self.len()];
        self.contribution_into(0, weight, scale, quant, &mut out);
        out
    }
}

/// The contribution of the quantized elements `start .. start + out.len()` of `xs`: every
/// block of [`quant::BLOCK`] elements overlapping the window is quantized whole, then only its
/// part inside the window goes through the fixed-point kernel (exact: the quantized values lie
/// on the grid).
fn quantized_into<T: Element>(
    xs: &[T],
    start: usize,
    weight: u64,
    scale: u32,
    bits: Bits,
    out: &mut [i64],
) {
    let k = Kernel::new(weight, scale);
    let end = start + out.len();
    let mut buf = [0f64; quant::BLOCK];
    let mut b0 = start / quant::BLOCK * quant::BLOCK;
    while b0 < end {
        let b1 = (b0 + quant::BLOCK).min(xs.len());
        let blk = &mut buf[..b1 - b0];
        for (d, &x) in blk.iter_mut().zip(&xs[b0..b1]) {
            *d = x.into();
        }
        quant::quantize_block(blk, bits, scale);
        let (lo, hi) = (start.max(b0), end.min(b1));
        k.run(&blk[lo - b0..hi - b0], &mut out[lo - start..hi - start]);
        b0 = b1;
    }
}

/// [`exponent`] of `f32` elements (the same value as for the elements widened to `f64`).
pub fn exponent_f32(xs: &[f32]) -> Result<i32, FixedError> {
    const ABS: u32 = !(1 << 31);
    const INF: u32 = 0x7f80_0000;
    let top = xs.iter().fold(0u32, |m, v| m.max(v.to_bits() & ABS));
    if top >= INF {
        let index = xs
            .iter()
            .position(|v| !v.is_finite())
            .expect("a non-finite element");
        return Err(FixedError::NotFinite {
            index,
            value: xs[index] as f64,
        });
    }
    exponent(&[f32::from_bits(top) as f64])
}

/// `v.round_ties_even()` without a libm call, so that [`contribution`] vectorizes on baseline
/// x86-64 (no SSE4.1 `roundsd`). For `|v| < 2^52`, `v ± 2^52` lands in a binade whose spacing is
/// 1, so the IEEE addition (round to nearest, ties to even) rounds `v` to an integer and the
/// subtraction is exact; larger magnitudes (and NaN/∞) are already integral and pass through.
/// (A negative `v` that rounds to zero gives `+0.0`; the caller converts to an integer.)
#[inline(always)]
pub fn round_half_even(v: f64) -> f64 {
    const TWO52: f64 = 4_503_599_627_370_496.0;
    let m = TWO52.copysign(v);
    let r = (v + m) - m;
    if v.abs() < TWO52 { r } else { v }
}

/// `acc[k] += c[k]`, exact while both stay within the bound.
pub fn add_into(acc: &mut [i64], c: &[i64]) {
    for (a, &b) in acc.iter_mut().zip(c) {
        *a = a.wrapping_add(b);
    }
}

/// Index of the first element outside `(-BOUND, BOUND)`.
pub fn out_of_range(v: &[i64]) -> Option<usize> {
    v.iter().position(|&x| x <= -BOUND || x >= BOUND)
}

/// The weighted mean of element `sum`: `sum / (total_weight · 2^F)`, in f64.
pub fn mean(sum: i64, total_weight: u128, scale: u32) -> f64 {
    Mean::new(total_weight, scale).of(sum)
}

/// [`mean`] with its constants computed once.
#[derive(Debug, Clone, Copy)]
pub struct Mean {
    total: f64,
    /// `2^−F`: multiplying by it is exactly dividing by `2^F` (both give the correctly rounded
    /// `x · 2^−F`).
    inv: f64,
}

impl Mean {
    pub fn new(total_weight: u128, scale: u32) -> Self {
        Mean {
            total: total_weight as f64,
            inv: pow2(-(scale as i32)),
        }
    }

    #[inline(always)]
    pub fn of(&self, sum: i64) -> f64 {
        (sum as f64) / self.total * self.inv
    }
}

/// The exact sum of contributions, computed directly (reference for tests and audits).
pub fn direct_sum(inputs: &[(&[f64], u64)], scale: u32) -> Vec<i64> {
    direct_sum_of(inputs, scale, None)
}

/// [`direct_sum`] of the inputs quantized with `quant` (computed through [`quant::quantize`]).
pub fn direct_sum_of(inputs: &[(&[f64], u64)], scale: u32, quant: Option<Bits>) -> Vec<i64> {
    let len = inputs.first().map_or(0, |(x, _)| x.len());
    let mut acc = vec![0i64; len];
    for (x, w) in inputs {
        let c = match quant {
            None => contribution(x, *w, scale),
            Some(b) => contribution(&quant::quantize(x, b, scale), *w, scale),
        };
        add_into(&mut acc, &c);
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exponent_is_tight() {
        assert_eq!(exponent(&[0.0]).unwrap(), MIN_EXPONENT);
        assert_eq!(exponent(&[0.5]).unwrap(), 0);
        assert_eq!(exponent(&[1.0]).unwrap(), 1);
        assert_eq!(exponent(&[-0.75, 0.1]).unwrap(), 0);
        assert_eq!(exponent(&[3.0]).unwrap(), 2);
        assert!(matches!(
            exponent(&[1.0, f64::NAN]),
            Err(FixedError::NotFinite { index: 1, .. })
        ));
    }

    #[test]
    fn f32_values_give_the_f64_exponent_and_contribution() {
        let xs: Vec<f32> = vec![0.0, -1.5e-3, 3.25, -7.0e-20, 1.0e30, -0.5, 2.5e-45];
        let wide: Vec<f64> = xs.iter().map(|&x| x as f64).collect();
        let (a, b) = (Values::F32(xs.clone()), Values::F64(wide.clone()));
        assert_eq!(a.exponent().unwrap(), exponent(&wide).unwrap());
        assert_eq!(
            a.exponent().unwrap(),
            MAX_EXPONENT,
            "1e30 is above the clamp"
        );
        let small = Values::F32(xs[..6].iter().map(|&x| x.min(4.0)).collect());
        let e = small.exponent().unwrap();
        assert_eq!(e, 3);
        let f = scale_bits(&[e, e], &[3, 5]).unwrap();
        let small64: Vec<f64> = match &small {
            Values::F32(v) => v.iter().map(|&x| x as f64).collect(),
            _ => unreachable!(),
        };
        assert_eq!(small.contribution(3, f), contribution(&small64, 3, f));
        assert_eq!(b.contribution(1, 10), contribution(&wide, 1, 10));
        // A window of the contribution is that window of the whole.
        let mut win = vec![0; 3];
        small.contribution_into(2, 3, f, None, &mut win);
        assert_eq!(&win[..], &small.contribution(3, f)[2..5]);
        assert_eq!(exponent_f32(&[0.0, -0.0]).unwrap(), MIN_EXPONENT);
        assert!(matches!(
            exponent_f32(&[1.0, f32::INFINITY]),
            Err(FixedError::NotFinite { index: 1, .. })
        ));
        assert!(matches!(
            Values::F32(vec![f32::NAN]).exponent(),
            Err(FixedError::NotFinite { index: 0, .. })
        ));
    }

    #[test]
    fn scale_respects_headroom() {
        // 8 members of weight 1, |x| < 1: b = 4, F = 58 - 0 - 4 = 54.
        assert_eq!(scale_bits(&[0; 8], &[1; 8]).unwrap(), 54);
        assert_eq!(scale_bits(&[-126], &[1]).unwrap(), MAX_SCALE);
        assert!(matches!(
            scale_bits(&[64], &[1 << 32, 1 << 32]),
            Err(FixedError::TooLarge { .. })
        ));
    }

    fn inputs() -> impl Strategy<Value = Vec<(Vec<f64>, u64)>> {
        (1usize..40, 2usize..9).prop_flat_map(|(len, n)| {
            proptest::collection::vec(
                (
                    proptest::collection::vec(-4.0f64..4.0, len),
                    1u64..1_000_000,
                ),
                n,
            )
        })
    }

    fn scale_of(ins: &[(Vec<f64>, u64)]) -> u32 {
        let e: Vec<i32> = ins.iter().map(|(x, _)| exponent(x).unwrap()).collect();
        let w: Vec<u64> = ins.iter().map(|(_, w)| *w).collect();
        scale_bits(&e, &w).unwrap()
    }

    #[test]
    fn round_half_even_matches_std_at_the_edges() {
        let two52 = 4_503_599_627_370_496.0f64;
        let mut vs = vec![
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            -2.5,
            0.49999999999999994,
        ];
        for b in [two52, two52 / 2.0, two52 * 2.0, 1e300] {
            for d in [-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5] {
                vs.push(b + d);
                vs.push(-(b + d));
                vs.push(b / 2.0 + d);
            }
        }
        vs.extend([f64::MAX, f64::MIN, f64::MIN_POSITIVE, f64::EPSILON]);
        for v in vs {
            // Equal as numbers (a negative input rounding to zero may give +0.0 instead of
            // −0.0; both convert to the integer 0).
            assert_eq!(round_half_even(v), v.round_ties_even(), "{v}");
        }
    }

    #[test]
    fn contribution_clamps_instead_of_overflowing() {
        // An input that lied about its exponent: the product is clamped, far outside the bound.
        let c = contribution(&[1.0e30f64, -1.0e30, 3.0], 3, 58);
        // (The clamp is the largest f64 ≤ i64::MAX / 3, whose spacing there is 512.)
        assert!(c[0] >= i64::MAX - 3 * 512 && c[0] % 3 == 0, "{}", c[0]);
        assert!(c[1] <= -(i64::MAX - 3 * 512) && c[1] % 3 == 0, "{}", c[1]);
        assert_eq!(c[2], 3 * (3i64 << 58));
        let k = Kernel::new(1 << 32, 0);
        assert!((k.lim as i128) * (1i128 << 32) <= i64::MAX as i128);
    }

    proptest! {
        #[test]
        fn simd_and_scalar_contributions_agree(xs in proptest::collection::vec(any::<f32>(), 0..200), w in 1u64..=MAX_WEIGHT, f in 0u32..=60) {
            // Finite values, and infinities and NaN too: the kernels agree on every input.
            let xs: Vec<f32> = xs.into_iter().chain([f32::NAN, f32::INFINITY, -f32::INFINITY, -0.0, 0.5, 1.5, -2.5]).collect();
            let k = Kernel::new(w, f);
            let mut scalar = vec![0; xs.len()];
            k.run(&xs, &mut scalar);
            let mut dispatched = vec![0; xs.len()];
            contribution_into(&xs, w, f, &mut dispatched);
            prop_assert_eq!(&dispatched, &scalar);
            // The definition, element by element, where no clamp applies.
            for (&x, &c) in xs.iter().zip(&scalar) {
                let q = (x as f64 * 2f64.powi(f as i32)).round_ties_even();
                if q.abs() < 2f64.powi(62 - 32) {
                    prop_assert_eq!(c, q as i64 * w as i64);
                }
            }
        }

        #[test]
        fn mean_multiplies_by_the_inverse_scale_exactly(s in any::<i64>(), tw in 1u128..1u128 << 40, f in 0u32..=60) {
            let reference = (s as f64) / (tw as f64) / 2f64.powi(f as i32);
            prop_assert_eq!(mean(s, tw, f).to_bits(), reference.to_bits());
        }

        #[test]
        fn round_half_even_matches_std(bits in any::<u64>(), k in -60i32..60) {
            let v = f64::from_bits(bits);
            prop_assume!(v.is_finite());
            let v = v * 2f64.powi(k);
            prop_assert_eq!(round_half_even(v), v.round_ties_even());
            let h = (v * 2.0).trunc() / 2.0; // half-integers
            prop_assert_eq!(round_half_even(h), h.round_ties_even());
        }

        #[test]
        fn sums_are_order_independent_and_in_range(ins in inputs(), rot in 0usize..8) {
            let f = scale_of(&ins);
            let fwd: Vec<(&[f64], u64)> = ins.iter().map(|(x, w)| (x.as_slice(), *w)).collect();
            let mut rev = fwd.clone();
            rev.reverse();
            let k = rot % rev.len();
            rev.rotate_left(k);
            let a = direct_sum(&fwd, f);
            let b = direct_sum(&rev, f);
            prop_assert_eq!(&a, &b);
            // Every partial sum stays inside the bound receivers enforce.
            let mut acc = vec![0i64; a.len()];
            for (x, w) in &fwd {
                add_into(&mut acc, &contribution(x, *w, f));
                prop_assert!(out_of_range(&acc).is_none());
            }
        }

        #[test]
        fn mean_is_within_the_stated_bound(ins in inputs()) {
            let f = scale_of(&ins);
            let fwd: Vec<(&[f64], u64)> = ins.iter().map(|(x, w)| (x.as_slice(), *w)).collect();
            let s = direct_sum(&fwd, f);
            let total: u128 = ins.iter().map(|(_, w)| *w as u128).sum();
            let e = ins.iter().map(|(x, _)| exponent(x).unwrap()).max().unwrap();
            for (k, &sk) in s.iter().enumerate() {
                let exact: f64 = ins.iter().map(|(x, w)| x[k] * *w as f64).sum::<f64>() / total as f64;
                let got = mean(sk, total, f);
                // 2^-(F+1) quantization + f64 rounding of S and of the reference.
                let bound = 2f64.powi(-(f as i32) - 1) + 2f64.powi(e - 50);
                prop_assert!((got - exact).abs() <= bound, "{got} vs {exact}, bound {bound}");
            }
        }
    }
}
