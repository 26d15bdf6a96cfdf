//! The linearly homomorphic checksum of docs/ring-protocol.md, "Sketch" and "Soundness":
//! `σ_r(y) = Σ_k y[k] · r^k mod p` with `p = 2^61 − 1`. Linear in `y`, so the sketch of a
//! partial sum equals the sum of its contributors' sketches; a wrong partial sum (values in
//! `(−2^59, 2^59)`) matches with probability at most `(len − 1)/p` over a random `r`.

use sha3::{Digest, Sha3_256};

/// The Mersenne prime `2^61 − 1`.
pub const P: u64 = (1 << 61) - 1;

fn reduce(x: u128) -> u64 {
    // x < 2^122: fold twice.
    let lo = (x as u64) & P;
    let hi = (x >> 61) as u64;
    let s = lo + (hi & P) + ((hi >> 61) & P);
    let s = (s & P) + (s >> 61);
    if s >= P { s - P } else { s }
}

pub fn mul(a: u64, b: u64) -> u64 {
    reduce(a as u128 * b as u128)
}

pub fn add(a: u64, b: u64) -> u64 {
    let s = a + b;
    if s >= P { s - P } else { s }
}

/// A signed integer as a field element.
pub fn to_field(v: i64) -> u64 {
    // |v| < 2^64: one fold by the Mersenne structure instead of a division.
    let m = reduce(v.unsigned_abs() as u128);
    if v < 0 && m != 0 { P - m } else { m }
}

/// `σ_r(y)`, by Horner's rule from the last element.
pub fn sketch(y: &[i64], r: u64) -> u64 {
    let mut acc = 0u64;
    for &v in y.iter().rev() {
        acc = add(mul(acc, r), to_field(v));
    }
    acc
}

/// Sum of sketches mod p.
pub fn sum(sketches: impl IntoIterator<Item = u64>) -> u64 {
    sketches.into_iter().fold(0, add)
}

/// The evaluation point of segment `g` for seed `seed`: uniform in `[1, p)` (rejection
/// sampling over SHA3-256 outputs).
pub fn point(seed: &[u8; 32], segment: u32) -> u64 {
    let mut ctr = 0u32;
    loop {
        let mut h = Sha3_256::new();
        h.update(b"gym-ring-v1/point\0");
        h.update(seed);
        h.update(segment.to_le_bytes());
        h.update(ctr.to_le_bytes());
        let d = h.finalize();
        let v = u64::from_le_bytes(d[..8].try_into().expect("8 bytes")) >> 3;
        // Rejection sampling: uniform in [1, P).
        if v != 0 && v < P {
            return v;
        }
        ctr += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ring::fixed;
    use proptest::prelude::*;

    #[test]
    fn field_basics() {
        assert_eq!(to_field(-1), P - 1);
        assert_eq!(add(to_field(-5), to_field(5)), 0);
        assert_eq!(mul(P - 1, P - 1), 1);
        assert_eq!(sketch(&[1, 2, 3], 10), 321);
    }

    proptest! {
        #[test]
        fn sketch_is_linear(
            a in proptest::collection::vec(-(1i64 << 57)..(1i64 << 57), 1..64),
            seed in any::<[u8; 32]>(),
        ) {
            let b: Vec<i64> = a.iter().map(|x| x / 3 - 7).collect();
            let r = point(&seed, 0);
            let mut s = a.clone();
            fixed::add_into(&mut s, &b);
            prop_assert_eq!(sketch(&s, r), add(sketch(&a, r), sketch(&b, r)));
        }

        #[test]
        fn corrupted_partial_sum_is_caught(
            a in proptest::collection::vec(-(1i64 << 57)..(1i64 << 57), 1..64),
            at in any::<prop::sample::Index>(),
            delta in prop_oneof![Just(1i64), Just(-1), Just(P as i64), 1i64..(1 << 58)],
            seed in any::<[u8; 32]>(),
        ) {
            let r = point(&seed, 3);
            let mut bad = a.clone();
            let k = at.index(a.len());
            bad[k] = bad[k].wrapping_add(delta);
            // Either the range check or the sketch catches it.
            let caught = fixed::out_of_range(&bad).is_some() || sketch(&bad, r) != sketch(&a, r);
            prop_assert!(caught);
        }
    }
}
