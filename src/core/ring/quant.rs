//! Quantized averaging (docs/ring-protocol.md, "Quantized averaging"): a ring whose file sets
//! `quantize = BITS` rounds each member's input, per block of [`BLOCK`] elements, to `BITS`-bit
//! signed multiples of a power of two before the exact fixed-point sum. The rounding is a
//! deterministic function of the input, `BITS` and the agreed scale `F`, so every member (and
//! `gym ring audit`) computes the same contribution from the same input.

use super::fixed;

/// Elements per quantization block (blocks are cut from the flattened input, from element 0).
pub const BLOCK: usize = 64;
/// The supported range of `BITS`.
pub const MIN_BITS: u8 = 2;
pub const MAX_BITS: u8 = 16;

/// A validated number of bits per quantized element, `MIN_BITS..=MAX_BITS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bits(u8);

impl Bits {
    pub fn new(bits: u64) -> Result<Self, String> {
        if (MIN_BITS as u64..=MAX_BITS as u64).contains(&bits) {
            Ok(Bits(bits as u8))
        } else {
            Err(format!(
                "quantize must be {MIN_BITS} to {MAX_BITS} bits, got {bits}"
            ))
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl std::fmt::Display for Bits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The step exponent `t` of a block whose largest magnitude is `max` (finite, `≥ 0`):
/// `t = max(e_b − BITS + 1, −F)` where `e_b` is the smallest integer with
/// `max < (1 − 2^−BITS) · 2^e_b`, so that every element rounds to `|q| ≤ 2^(BITS−1) − 1`.
/// `None` for an all-zero block.
pub fn step_exponent(max: f64, bits: Bits, scale: u32) -> Option<i32> {
    if max == 0.0 || max.is_nan() {
        return None;
    }
    let floor = -(scale as i32);
    let b = bits.0 as i32;
    // The smallest e0 with max < 2^e0, from the f64 exponent field; a subnormal `max` is below
    // 2^-1022, where every block step is the grid's own (t = −F, F ≤ 60) anyway.
    let field = ((max.to_bits() >> 52) & 0x7ff) as i32;
    if field == 0 {
        return Some(floor);
    }
    let e0 = field - 1022;
    // (1 − 2^−BITS) · 2^e0 is exact in f64 (BITS ≤ 16, e0 ≤ 1025 only for ∞, excluded).
    let limit = (1.0 - pow2(-b)) * pow2(e0 - 1) * 2.0;
    let eb = if max < limit { e0 } else { e0 + 1 };
    Some((eb - b + 1).max(floor))
}

fn pow2(e: i32) -> f64 {
    2f64.powi(e)
}

/// Rounds `xs` (one block) in place to its quantized values `q · 2^t`, `q = round_half_even(x ·
/// 2^−t)` with the block's step exponent `t` ([`step_exponent`]). Every result is a multiple of
/// `2^−F`, so its fixed-point value `x̃ · 2^F` is an exact integer (no second rounding).
pub fn quantize_block(xs: &mut [f64], bits: Bits, scale: u32) {
    // The magnitude's bits order like the magnitudes (finite values); one integer max, which
    // vectorizes. A NaN (never in an honest input: its exponent is checked) is above them all.
    let top = xs.iter().fold(0u64, |m, x| m.max(x.to_bits() & !(1 << 63)));
    let max = f64::from_bits(top);
    let Some(t) = step_exponent(max, bits, scale) else {
        return;
    };
    // 2^−t and 2^t separately: t ≤ 1024 − 1 keeps 2^−t ≥ 2^−1023 (no flush to zero).
    let (down, up) = (pow2(-t), pow2(t));
    for x in xs.iter_mut() {
        *x = fixed::round_half_even(*x * down) * up;
    }
}

/// The quantized values of a whole input (reference for tests and the known-answer vectors).
pub fn quantize(xs: &[f64], bits: Bits, scale: u32) -> Vec<f64> {
    let mut out = xs.to_vec();
    for b in out.chunks_mut(BLOCK) {
        quantize_block(b, bits, scale);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bits(b: u64) -> Bits {
        Bits::new(b).unwrap()
    }

    #[test]
    fn bits_outside_2_to_16_are_refused_by_name() {
        for b in [0, 1, 17, 64, 256] {
            let e = Bits::new(b).unwrap_err();
            assert!(e.contains("quantize must be 2 to 16 bits"), "{e}");
        }
        assert_eq!(bits(8).get(), 8);
    }

    #[test]
    fn step_exponent_keeps_the_largest_element_inside_bits() {
        // 8 bits, |x| < 1: step 2^-7 unless max ≥ (1 − 2^-8) = 0.99609375.
        assert_eq!(step_exponent(0.5, bits(8), 60), Some(-7));
        assert_eq!(step_exponent(0.75, bits(8), 60), Some(-7));
        assert_eq!(step_exponent(0.99609374, bits(8), 60), Some(-7));
        assert_eq!(step_exponent(0.99609375, bits(8), 60), Some(-6));
        assert_eq!(step_exponent(1.0, bits(8), 60), Some(-6));
        // The grid's own step is the floor: no second rounding.
        assert_eq!(step_exponent(1e-30, bits(8), 20), Some(-20));
        assert_eq!(
            step_exponent(f64::MIN_POSITIVE / 4.0, bits(2), 60),
            Some(-60)
        );
        assert_eq!(step_exponent(0.0, bits(8), 20), None);
    }

    #[test]
    fn a_block_rounds_half_to_even_on_its_step() {
        // max 0.5 → step 2^-7 = 0.0078125 at 8 bits.
        let s = 0.0078125;
        let mut xs = [0.5, 1.5 * s, 2.5 * s, -2.5 * s, 0.3 * s, -0.0, 0.49];
        quantize_block(&mut xs, bits(8), 40);
        assert_eq!(xs, [0.5, 2.0 * s, 2.0 * s, -2.0 * s, 0.0, 0.0, 63.0 * s]);
    }

    #[test]
    fn any_window_of_a_quantized_contribution_is_that_window_of_the_whole() {
        use crate::core::ring::fixed::{self, Values};
        let xs: Vec<f32> = (0..300)
            .map(|k| ((k * 7919 % 1000) as f32 / 1000.0 - 0.5) * (1.0 + (k / 64) as f32))
            .collect();
        let wide: Vec<f64> = xs.iter().map(|&x| x as f64).collect();
        let (v32, v64) = (Values::F32(xs), Values::F64(wide.clone()));
        let b = Some(bits(5));
        let whole = v32.contribution_of(3, 40, b);
        assert_eq!(whole, v64.contribution_of(3, 40, b));
        assert_eq!(
            whole,
            fixed::contribution(&quantize(&wide, bits(5), 40), 3, 40)
        );
        assert_ne!(whole, v32.contribution(3, 40));
        for (start, len) in [(0, 300), (1, 63), (60, 10), (64, 64), (250, 50), (299, 1)] {
            let mut win = vec![0; len];
            v32.contribution_into(start, 3, 40, b, &mut win);
            assert_eq!(&win[..], &whole[start..start + len], "{start}+{len}");
        }
    }

    /// testdata/ring/quant.json, written by tools/reference/ring_quant_kat.py from the
    /// specification alone (exact rationals).
    #[test]
    fn kat() {
        use crate::core::keys::PublicIdentity;
        use crate::core::ring::config::{InputBounds, Member, RingSpec};
        use crate::core::ring::{codec, fixed};
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/ring/quant.json");
        let kat: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(kat["block"], BLOCK as u64);
        let f32s = |v: &serde_json::Value| -> Vec<f32> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| f32::from_bits(u32::from_str_radix(x.as_str().unwrap(), 16).unwrap()))
                .collect()
        };
        let i64s = |v: &serde_json::Value| -> Vec<i64> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().parse().unwrap())
                .collect()
        };
        let rings = kat["rings"].as_array().unwrap();
        assert_eq!(rings.len(), 6);
        for (i, r) in rings.iter().enumerate() {
            let members = r["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    let ed = hex::decode(m["ed25519_public"].as_str().unwrap()).unwrap();
                    let public = PublicIdentity::from_raw(&ed, None).unwrap();
                    Member {
                        id: m["id"].as_str().unwrap().into(),
                        address: m["address"].as_str().unwrap().into(),
                        public,
                    }
                })
                .collect();
            let mut spec = RingSpec::new(
                r["round"].as_u64().unwrap(),
                r["chunk_elements"].as_u64().unwrap() as u32,
                members,
            )
            .unwrap();
            if let Some(w) = r["max_weight"].as_u64() {
                let e = r["max_exponent"].as_i64().unwrap() as i32;
                let b = InputBounds {
                    max_weight: w,
                    max_exponent: e,
                };
                spec = spec.with_bounds(b).unwrap();
            }
            let q = Bits::new(r["quantize"].as_u64().unwrap()).unwrap();
            let spec = spec.with_quantize(Some(q));
            assert_eq!(
                hex::encode(spec.digest()),
                r["ring_digest"].as_str().unwrap(),
                "ring {i}"
            );
            // The ring file round-trips with its quantize field (and so its digest).
            let again = RingSpec::parse(&spec.to_toml(), std::path::Path::new("r")).unwrap();
            assert_eq!(again.digest(), spec.digest());
            assert_eq!(again.quantize, Some(q));
        }
        for c in kat["cases"].as_array().unwrap() {
            let name = c["name"].as_str().unwrap();
            let bits = Bits::new(c["bits"].as_u64().unwrap()).unwrap();
            let scale = c["scale"].as_u64().unwrap() as u32;
            let weight = c["weight"].as_u64().unwrap();
            let xs = f32s(&c["values"]);
            for (b, t) in xs.chunks(BLOCK).zip(c["steps"].as_array().unwrap()) {
                let max = b.iter().fold(0f64, |m, &x| m.max((x as f64).abs()));
                let want = t.as_i64().map(|t| t as i32);
                assert_eq!(step_exponent(max, bits, scale), want, "{name}");
            }
            let want = i64s(&c["contribution"]);
            let got = fixed::Values::F32(xs).contribution_of(weight, scale, Some(bits));
            assert_eq!(got, want, "{name}");
            let packed = codec::encode(&got);
            assert_eq!(
                hex::encode(&packed),
                c["packed"].as_str().unwrap(),
                "{name}"
            );
        }
        let s = &kat["sum"];
        let bits = Bits::new(s["bits"].as_u64().unwrap()).unwrap();
        let scale = s["scale"].as_u64().unwrap() as u32;
        let mut sum = vec![0i64; 256];
        for m in s["members"].as_array().unwrap() {
            let v = fixed::Values::F32(f32s(&m["values"]));
            fixed::add_into(
                &mut sum,
                &v.contribution_of(m["weight"].as_u64().unwrap(), scale, Some(bits)),
            );
        }
        assert_eq!(sum, i64s(&s["sum"]));
        assert_eq!(
            hex::encode(codec::encode(&sum)),
            s["packed"].as_str().unwrap()
        );
    }

    proptest! {
        #[test]
        fn quantized_values_fit_bits_the_grid_and_the_error_bound(
            xs in proptest::collection::vec(-4.0f64..4.0, 1..200),
            b in 2u64..=16, f in 0u32..=60,
        ) {
            let bits = bits(b);
            let q = quantize(&xs, bits, f);
            for (blk, qb) in xs.chunks(BLOCK).zip(q.chunks(BLOCK)) {
                let max = blk.iter().fold(0f64, |m, x| m.max(x.abs()));
                let Some(t) = step_exponent(max, bits, f) else {
                    prop_assert!(qb.iter().all(|&v| v == 0.0));
                    continue;
                };
                for (&x, &v) in blk.iter().zip(qb) {
                    let k = v * 2f64.powi(-t);
                    prop_assert_eq!(k, k.trunc(), "integral multiple of the step");
                    prop_assert!(k.abs() <= 2f64.powi(b as i32 - 1) - 1.0 || t == -(f as i32));
                    prop_assert!((v - x).abs() <= 2f64.powi(t - 1), "half a step");
                    // On the fixed-point grid: v · 2^F is an integer.
                    let g = v * 2f64.powi(f as i32);
                    prop_assert_eq!(g, g.trunc());
                    // Relative to the block max: ≤ 2^(1−BITS) / (1 − 2^−BITS) · max, or the
                    // grid's half step.
                    let rel = max * 2f64.powi(1 - b as i32) / (1.0 - 2f64.powi(-(b as i32)));
                    prop_assert!((v - x).abs() <= rel.max(2f64.powi(-(f as i32) - 1)));
                }
            }
        }
    }
}
