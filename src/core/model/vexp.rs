//! eˣ over slices of f32, in a form the compiler vectorizes: the softmax rows of attention and
//! the LM head and the SiLU of the MLPs, where a libm call per value cost ~2 % of a training
//! step.
//!
//! Cephes' `expf` method: x = n·ln 2 + r with n = round(x·log₂e) (|r| ≤ ln 2 / 2, ln 2 split
//! in two parts so n·ln 2 is exact), eʳ by its degree-7 minimax polynomial, 2ⁿ built in the
//! exponent bits (as two factors, so 2¹²⁸ and 2⁻¹²⁶ need no special case). Within 2 ulp of the correctly rounded value (tested against f64 over the
//! whole range); below −87.3, where f32's exp leaves the normal range, the result is 0; NaN
//! stays NaN, +∞ (and anything above 88.72) gives +∞.
//!
//! On CPUs with AVX-512 (detected at run time) the same code is compiled for 16 lanes.

// runtime-detected target features: each `unsafe` block is commented
#![allow(unsafe_code)]

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 = LN2_HI + LN2_LO, LN2_HI with few enough bits that n·LN2_HI is exact.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Cephes' coefficients of (eʳ − 1 − r)/r² on |r| ≤ ln 2 / 2, highest degree first.
const P: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    0.166_666_65,
    0.5,
];
/// Adding and subtracting 1.5·2²³ rounds an f32 below 2²² to the nearest integer.
const ROUND: f32 = 12_582_912.0;
const LOW: f32 = -87.3;
const HIGH: f32 = 88.72;

/// eˣ for one value (inlined into the slice loops, where it vectorizes).
#[inline(always)]
fn exp1(x: f32) -> f32 {
    // max/min rather than clamp: NaN is handled by the select below, and these vectorize
    #[allow(clippy::manual_clamp)]
    let xc = x.max(LOW).min(HIGH);
    let shifted = xc * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let p = P[1..].iter().fold(P[0], |acc, c| acc * r + c);
    let y = p * (r * r) + r + 1.0;
    // n as an integer from the rounded sum's low bits (a float-to-int cast would not
    // vectorize); 2ⁿ as 2ᵃ·2ᵇ (a = ⌊n/2⌋, b = n − a), each a normal f32 over n's whole range
    // −126..=128
    let ni = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let (a, b) = (ni >> 1, ni - (ni >> 1));
    let pow2 = |k: i32| f32::from_bits((k.wrapping_add(127) as u32) << 23);
    if x.is_nan() {
        x
    } else if x < LOW {
        0.0
    } else if x > HIGH {
        f32::INFINITY
    } else {
        y * pow2(a) * pow2(b)
    }
}

/// xs ← e^xs, element by element.
pub fn exp_in_place(xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F (checked just above).
        unsafe { avx512::exp_in_place(xs) };
        return;
    }
    exp_in_place_plain(xs)
}

fn exp_in_place_plain(xs: &mut [f32]) {
    xs.iter_mut().for_each(|x| *x = exp1(*x));
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    /// [`super::exp_in_place`] compiled for AVX-512.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn exp_in_place(xs: &mut [f32]) {
        xs.iter_mut().for_each(|x| *x = super::exp1(*x));
    }
}

/// xs ← e^(xs − m), returning the sum of the results: a softmax row's exponentials.
pub fn exp_shifted_sum(xs: &mut [f32], m: f32) -> f32 {
    xs.iter_mut().for_each(|x| *x -= m);
    exp_in_place(xs);
    xs.iter().sum()
}

/// σ(x) = 1 / (1 + e⁻ˣ) into `out`, for xs of the same length.
pub fn sigmoid_into(xs: &[f32], out: &mut [f32]) {
    for (o, x) in out.iter_mut().zip(xs) {
        *o = -x;
    }
    exp_in_place(out);
    out.iter_mut().for_each(|e| *e = 1.0 / (1.0 + *e));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Units in the last place between an f32 result and the exact value.
    fn ulps(got: f32, want: f64) -> f64 {
        let w = want as f32;
        let ulp = (f32::from_bits(w.to_bits() + 1) - w).abs() as f64;
        (got as f64 - want).abs() / ulp
    }

    /// Every path (plain and, where the CPU has it, AVX-512) within 2 ulp of f64's exp over
    /// [−87.3, 88.7] (a dense grid and the range's edges), 0 below, ∞ above, NaN kept.
    #[test]
    fn exp_is_within_two_ulp_everywhere_on_every_path() {
        let mut xs: Vec<f32> = (0..200_001)
            .map(|i| LOW + (HIGH - 0.01 - LOW) * i as f32 / 200_000.0)
            .collect();
        xs.extend([0.0, -0.0, 1e-30, -1e-30, 0.5, -0.5, 1.0, -1.0, LOW, 88.7]);
        let edges = [
            f32::NEG_INFINITY,
            -1e9,
            -87.31,
            88.73,
            f32::INFINITY,
            f32::NAN,
        ];
        type Path = fn(&mut [f32]);
        let paths: [(&str, Path); 2] =
            [("plain", exp_in_place_plain), ("dispatched", exp_in_place)];
        for (name, f) in paths {
            let mut got = xs.clone();
            f(&mut got);
            let worst = got
                .iter()
                .zip(&xs)
                .map(|(g, x)| ulps(*g, (*x as f64).exp()))
                .fold(0f64, f64::max);
            assert!(worst <= 2.0, "{name}: {worst} ulp");
            let mut e = edges.to_vec();
            f(&mut e);
            assert_eq!(
                &e[..5],
                &[0.0, 0.0, 0.0, f32::INFINITY, f32::INFINITY],
                "{name}"
            );
            assert!(e[5].is_nan(), "{name}");
        }
        let mut row = vec![1.0f32, 2.0, 3.0];
        let sum = exp_shifted_sum(&mut row, 3.0);
        assert!((sum - (1.0 + (-1f32).exp() + (-2f32).exp())).abs() < 1e-6);
        let mut s = vec![0f32; 3];
        sigmoid_into(&[0.0, 100.0, -100.0], &mut s);
        assert_eq!(s[0], 0.5);
        assert!(s[1] == 1.0 && s[2] < 1e-38);
    }
}
