//! Exact fixed-point weighted sums (docs/ring-protocol.md, "Fixed-point arithmetic").
//!
//! Inputs are scaled by `2^F` and rounded once to `i64`; sums of those integers are exact, so
//! the reduced vector does not depend on the order of the additions, and every member turns
//! it back into the same floating-point bytes.

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
/// no product leaves `(-2^58, 2^58)`; a value that would is saturated, which only an input
/// that lied about its exponent can cause.
pub fn contribution(xs: &[f64], weight: u64, scale: u32) -> Vec<i64> {
    let s = pow2(scale as i32);
    let w = weight as i64;
    xs.iter()
        .map(|&x| {
            let q = round_half_even(x * s);
            let q = q.clamp(-((1u64 << 62) as f64), (1u64 << 62) as f64) as i64;
            q.saturating_mul(w)
        })
        .collect()
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
    (sum as f64) / (total_weight as f64) / pow2(scale as i32)
}

/// The exact sum of contributions, computed directly (reference for tests and audits).
pub fn direct_sum(inputs: &[(&[f64], u64)], scale: u32) -> Vec<i64> {
    let len = inputs.first().map_or(0, |(x, _)| x.len());
    let mut acc = vec![0i64; len];
    for (x, w) in inputs {
        add_into(&mut acc, &contribution(x, *w, scale));
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

    proptest! {
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
