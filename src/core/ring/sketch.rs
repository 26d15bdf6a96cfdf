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

/// Independent Horner chains of [`sketch`].
const LANES: usize = 8;

/// `x mod p` up to a multiple of `p`: for `x < 2^64` the result is `< 2^61 + 8`.
#[inline(always)]
fn fold(x: u64) -> u64 {
    (x & P) + (x >> 61)
}

/// `a · b` up to a multiple of `p`, for `a, b < 2^61 + 8`: the result is `< 2^62`.
#[inline(always)]
fn mul_lazy(a: u64, b: u64) -> u64 {
    let x = a as u128 * b as u128; // < 2^122.01
    ((x as u64) & P) + (x >> 61) as u64 // < 2^61 + 2^61.01
}

/// `r^e mod p`.
fn pow(mut r: u64, mut e: u64) -> u64 {
    let mut acc = 1u64;
    while e > 0 {
        if e & 1 == 1 {
            acc = mul(acc, r);
        }
        r = mul(r, r);
        e >>= 1;
    }
    acc
}

/// `Σ_{k<len} r^k mod p`, for `r < p`.
fn geometric(r: u64, len: usize) -> u64 {
    if r == 1 {
        return (len as u64) % P;
    }
    if r == 0 {
        return (len > 0) as u64; // 0^0 = 1
    }
    // (r^len − 1) / (r − 1), the inverse by Fermat: (r − 1)^(p − 2).
    let num = add(pow(r, len as u64), P - 1);
    mul(num, pow(r - 1, P - 2))
}

/// `σ_r(y) = Σ_k y[k] · r^k mod p`. Evaluated as `Σ_j r^j · Σ_m u[8m+j] · (r^8)^m − 4 · Σ_k r^k`
/// with `u[k] = y[k] + 2^63` (the `i64` with its sign bit flipped, an unsigned number): since
/// `2^63 = 4 · 2^61 ≡ 4 (mod p)`, `u[k] ≡ y[k] + 4`, and the constant is subtracted once at the
/// end instead of turning every signed element into a field element. Eight independent Horner
/// chains with lazy reduction (every intermediate stays below `2^63` and is congruent mod `p`),
/// so the loop is bound by multiplier throughput instead of one chain's latency. The value is
/// exactly the polynomial of the specification (`sketch_reference` in the tests evaluates it by
/// plain Horner).
pub fn sketch(y: &[i64], r: u64) -> u64 {
    const FLIP: u64 = 1 << 63;
    let r = r % P;
    let mut pows = [1u64; LANES];
    for j in 1..LANES {
        pows[j] = mul(pows[j - 1], r);
    }
    let r8 = mul(pows[LANES - 1], r);
    let mut acc = [0u64; LANES];
    let whole = y.len() / LANES * LANES;
    // The tail y[whole..] has the highest powers: it starts the chains (missing entries are 0,
    // and stay 0: they are not shifted by 2^63).
    for (a, &v) in acc.iter_mut().zip(&y[whole..]) {
        *a = fold(v as u64 ^ FLIP);
    }
    for block in y[..whole].chunks_exact(LANES).rev() {
        for j in 0..LANES {
            acc[j] = fold(mul_lazy(acc[j], r8) + fold(block[j] as u64 ^ FLIP));
        }
    }
    let mut s = 0u64;
    for j in 0..LANES {
        s = add(s, mul(reduce(acc[j] as u128), pows[j]));
    }
    // Remove the 4 · r^k that every element's shift added.
    add(s, P - mul(4, geometric(r, y.len())))
}

/// [`sketch`] of a vector of `len` elements that is produced block by block instead of held
/// whole: `fill(start, buf)` writes elements `start .. start + buf.len()`, blocks of `block`
/// elements (the last one shorter). `σ(y) = Σ_b r^(b·block) · σ(y_b)`.
pub fn sketch_blocks(
    len: usize,
    r: u64,
    block: usize,
    mut fill: impl FnMut(usize, &mut [i64]),
) -> u64 {
    let block = block.max(1);
    let r = r % P;
    let step = pow(r, block as u64);
    let mut buf = vec![0i64; block.min(len)];
    let (mut s, mut at, mut start) = (0u64, 1u64, 0usize);
    while start < len {
        let b = &mut buf[..block.min(len - start)];
        fill(start, b);
        s = add(s, mul(at, sketch(b, r)));
        at = mul(at, step);
        start += block;
    }
    s
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

    /// The specification's definition, by plain Horner from the last element.
    fn sketch_reference(y: &[i64], r: u64) -> u64 {
        let mut acc = 0u64;
        for &v in y.iter().rev() {
            acc = add(mul(acc, r), to_field(v));
        }
        acc
    }

    proptest! {
        #[test]
        fn block_sketches_equal_the_whole(y in proptest::collection::vec(any::<i64>(), 0..300), r in 0u64..u64::MAX, block in 1usize..70) {
            let whole = sketch_reference(&y, r % P);
            let got = sketch_blocks(y.len(), r, block, |start, buf| {
                buf.copy_from_slice(&y[start..start + buf.len()])
            });
            prop_assert_eq!(got, whole);
        }
    }

    #[test]
    fn fast_sketch_matches_the_definition_at_the_edges() {
        let extremes = [
            i64::MIN,
            i64::MAX,
            -1,
            0,
            1,
            P as i64,
            -(P as i64),
            1 << 62,
            -(1 << 62),
        ];
        for len in 0..40 {
            let y: Vec<i64> = (0..len).map(|k| extremes[k % extremes.len()]).collect();
            for r in [0, 1, 2, 3, P - 1, P - 2, 1 << 60, P, P + 5] {
                assert_eq!(sketch(&y, r), sketch_reference(&y, r), "len {len} r {r}");
            }
        }
    }

    #[test]
    fn field_basics() {
        assert_eq!(to_field(-1), P - 1);
        assert_eq!(add(to_field(-5), to_field(5)), 0);
        assert_eq!(mul(P - 1, P - 1), 1);
        assert_eq!(sketch(&[1, 2, 3], 10), 321);
    }

    proptest! {
        #[test]
        fn fast_sketch_matches_the_definition(
            y in proptest::collection::vec(any::<i64>(), 0..300),
            seed in any::<[u8; 32]>(),
        ) {
            let r = point(&seed, 1);
            prop_assert_eq!(sketch(&y, r), sketch_reference(&y, r));
        }

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
