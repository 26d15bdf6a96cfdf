//! Multi-buffer SHA3-256: several equal-length messages hashed at once, one Keccak state per
//! SIMD lane (8 with AVX-512, 4 with AVX2). Delta chunks are hashed independently (the body
//! digest is a hash list), so this is where DELTA verification spends its time.
//!
//! Results are bit-identical to the `sha3` crate's SHA3-256; `tests` check it for many lengths
//! and lane counts. On other CPUs [`sha3_256_many`] falls back to the `sha3` crate.

/// SHA3-256 rate in bytes.
const RATE: usize = 136;

const RC: [u64; 24] = [
    0x0000_0000_0000_0001,
    0x0000_0000_0000_8082,
    0x8000_0000_0000_808a,
    0x8000_0000_8000_8000,
    0x0000_0000_0000_808b,
    0x0000_0000_8000_0001,
    0x8000_0000_8000_8081,
    0x8000_0000_0000_8009,
    0x0000_0000_0000_008a,
    0x0000_0000_0000_0088,
    0x0000_0000_8000_8009,
    0x0000_0000_8000_000a,
    0x0000_0000_8000_808b,
    0x8000_0000_0000_008b,
    0x8000_0000_0000_8089,
    0x8000_0000_0000_8003,
    0x8000_0000_0000_8002,
    0x8000_0000_0000_0080,
    0x0000_0000_0000_800a,
    0x8000_0000_8000_000a,
    0x8000_0000_8000_8081,
    0x8000_0000_0000_8080,
    0x0000_0000_8000_0001,
    0x8000_0000_8000_8008,
];

/// Rotation offsets r[x + 5y].
const RHO: [u32; 25] = [
    0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39, 41, 45, 15, 21, 8, 18, 2, 61, 56, 14,
];

/// The SHA3 padded final block of a message tail (`tail.len() < RATE`).
fn final_block(tail: &[u8]) -> [u8; RATE] {
    let mut b = [0u8; RATE];
    b[..tail.len()].copy_from_slice(tail);
    b[tail.len()] ^= 0x06;
    b[RATE - 1] ^= 0x80;
    b
}

/// SHA3-256 of every message, using SIMD lanes for groups of equal-length messages when the
/// CPU has them. Order of results follows the input.
pub fn sha3_256_many(msgs: &[&[u8]]) -> Vec<[u8; 32]> {
    let mut out = vec![[0u8; 32]; msgs.len()];
    #[cfg(target_arch = "x86_64")]
    {
        let lanes = x86::lanes();
        if lanes > 1 {
            // Group by length, then hash each group `lanes` at a time.
            let mut idx: Vec<usize> = (0..msgs.len()).collect();
            idx.sort_by_key(|&i| msgs[i].len());
            let mut start = 0;
            while start < idx.len() {
                let len = msgs[idx[start]].len();
                let mut end = start;
                while end < idx.len() && msgs[idx[end]].len() == len && end - start < lanes {
                    end += 1;
                }
                let group: Vec<&[u8]> = idx[start..end].iter().map(|&i| msgs[i]).collect();
                if group.len() == 1 {
                    out[idx[start]] = super::sha3_256(group[0]);
                } else {
                    let hashes = x86::hash_group(&group, lanes);
                    for (k, &i) in idx[start..end].iter().enumerate() {
                        out[i] = hashes[k];
                    }
                }
                start = end;
            }
            return out;
        }
    }
    for (o, m) in out.iter_mut().zip(msgs) {
        *o = super::sha3_256(m);
    }
    out
}

/// How many messages one call hashes at once on this CPU (1 when no SIMD path applies).
pub fn lanes() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        x86::lanes()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        1
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
// Lane-indexed loops mirror the Keccak specification's notation.
#[allow(clippy::needless_range_loop)]
mod x86 {
    use std::arch::x86_64::*;

    use super::{RATE, RC, RHO, final_block};

    pub fn lanes() -> usize {
        if !crate::core::cpu::simd_allowed() {
            return 1;
        }
        if is_x86_feature_detected!("avx512f") {
            8
        } else if is_x86_feature_detected!("avx2") {
            4
        } else {
            1
        }
    }

    /// Hashes 2..=lanes messages of equal length.
    pub fn hash_group(group: &[&[u8]], lanes: usize) -> Vec<[u8; 32]> {
        debug_assert!(group.len() <= lanes && group.iter().all(|m| m.len() == group[0].len()));
        if lanes == 8 {
            // SAFETY: lanes() returns 8 only when the CPU reports AVX-512F.
            unsafe { hash8(group) }
        } else {
            // SAFETY: lanes() returns 4 only when the CPU reports AVX2.
            unsafe { hash4(group) }
        }
    }

    #[inline(always)]
    fn lane(m: &[u8], off: usize) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&m[off..off + 8]);
        u64::from_le_bytes(a)
    }

    /// Keccak-f[1600] rounds on a state of SIMD vectors, generic over the lane operations.
    macro_rules! keccak_f {
        ($s:ident, $V:ty, $xor:expr, $xor3:expr, $chi:expr, $rol:expr, $splat:expr) => {{
            for rc in RC {
                // θ
                let mut c: [$V; 5] = [$s[0]; 5];
                for x in 0..5 {
                    let t = $xor3($s[x], $s[x + 5], $s[x + 10]);
                    c[x] = $xor3(t, $s[x + 15], $s[x + 20]);
                }
                for x in 0..5 {
                    let d = $xor(c[(x + 4) % 5], $rol(c[(x + 1) % 5], 1));
                    for y in 0..5 {
                        $s[x + 5 * y] = $xor($s[x + 5 * y], d);
                    }
                }
                // ρ and π: B[y, 2x+3y] = rot(A[x, y], r[x, y])
                let mut b: [$V; 25] = [$s[0]; 25];
                for x in 0..5 {
                    for y in 0..5 {
                        let r = RHO[x + 5 * y];
                        let v = if r == 0 {
                            $s[x + 5 * y]
                        } else {
                            $rol($s[x + 5 * y], r)
                        };
                        b[y + 5 * ((2 * x + 3 * y) % 5)] = v;
                    }
                }
                // χ
                for y in 0..5 {
                    for x in 0..5 {
                        $s[x + 5 * y] =
                            $chi(b[x + 5 * y], b[(x + 1) % 5 + 5 * y], b[(x + 2) % 5 + 5 * y]);
                    }
                }
                // ι
                $s[0] = $xor($s[0], $splat(rc));
            }
        }};
    }

    /// The SHA3-256 sponge over `$L` equal-length messages at once: absorb every full block,
    /// then the padded tail, and squeeze 32 bytes per lane. `$load` builds a vector from lane
    /// `i` of `$L` blocks; `$store` writes a vector out as `$L` u64s.
    macro_rules! sponge {
        ($L:literal, $V:ty, $group:ident, $zero:expr, $load:expr, $store:expr,
         $xor:expr, $xor3:expr, $chi:expr, $rol:expr, $splat:expr) => {{
            let n = $group.len();
            // Unused lanes repeat the last message; their results are dropped.
            let ms: [&[u8]; $L] = std::array::from_fn(|i| $group[i.min(n - 1)]);
            let full = ms[0].len() / RATE;
            let tails: [[u8; RATE]; $L] =
                std::array::from_fn(|k| final_block(&ms[k][full * RATE..]));
            let mut s: [$V; 25] = [$zero; 25];
            for j in 0..=full {
                let blocks: [&[u8]; $L] = std::array::from_fn(|k| {
                    if j < full {
                        &ms[k][j * RATE..(j + 1) * RATE]
                    } else {
                        &tails[k][..]
                    }
                });
                for i in 0..RATE / 8 {
                    s[i] = $xor(s[i], $load(blocks, i));
                }
                keccak_f!(s, $V, $xor, $xor3, $chi, $rol, $splat);
            }
            let mut lanes = [[0u64; $L]; 4];
            for (i, l) in lanes.iter_mut().enumerate() {
                $store(l, s[i]);
            }
            (0..n)
                .map(|k| {
                    let mut d = [0u8; 32];
                    for i in 0..4 {
                        d[8 * i..8 * i + 8].copy_from_slice(&lanes[i][k].to_le_bytes());
                    }
                    d
                })
                .collect()
        }};
    }

    /// 8 Keccak states in AVX-512 registers: rotate and three-input logic are single
    /// instructions (`vprolq`, `vpternlogq`).
    #[target_feature(enable = "avx512f")]
    unsafe fn hash8(group: &[&[u8]]) -> Vec<[u8; 32]> {
        let xor = |a: __m512i, b: __m512i| _mm512_xor_si512(a, b);
        let xor3 = |a: __m512i, b: __m512i, c: __m512i| _mm512_ternarylogic_epi64::<0x96>(a, b, c);
        // a ^ (!b & c)
        let chi = |a: __m512i, b: __m512i, c: __m512i| _mm512_ternarylogic_epi64::<0xD2>(a, b, c);
        let rol = |a: __m512i, r: u32| -> __m512i {
            // vprolq takes an immediate: dispatch over the 24 distinct offsets.
            macro_rules! r {
                ($($k:literal)*) => { match r { $($k => _mm512_rol_epi64::<$k>(a),)* _ => a } };
            }
            r!(1 2 3 6 8 10 14 15 18 20 21 25 27 28 36 39 41 43 44 45 55 56 61 62)
        };
        let splat = |v: u64| _mm512_set1_epi64(v as i64);
        let load = |b: [&[u8]; 8], i: usize| {
            let l = |k: usize| lane(b[k], 8 * i) as i64;
            _mm512_set_epi64(l(7), l(6), l(5), l(4), l(3), l(2), l(1), l(0))
        };
        // SAFETY: `l` is 64 bytes; storeu has no alignment requirement.
        let store =
            |l: &mut [u64; 8], v: __m512i| unsafe { _mm512_storeu_si512(l.as_mut_ptr().cast(), v) };
        sponge!(
            8,
            __m512i,
            group,
            _mm512_setzero_si512(),
            load,
            store,
            xor,
            xor3,
            chi,
            rol,
            splat
        )
    }

    /// 4 Keccak states in AVX2 registers.
    #[target_feature(enable = "avx2")]
    unsafe fn hash4(group: &[&[u8]]) -> Vec<[u8; 32]> {
        let xor = |a: __m256i, b: __m256i| _mm256_xor_si256(a, b);
        let xor3 = |a: __m256i, b: __m256i, c: __m256i| _mm256_xor_si256(_mm256_xor_si256(a, b), c);
        let chi =
            |a: __m256i, b: __m256i, c: __m256i| _mm256_xor_si256(a, _mm256_andnot_si256(b, c));
        let rol = |a: __m256i, r: u32| -> __m256i {
            let l = _mm_cvtsi32_si128(r as i32);
            let rr = _mm_cvtsi32_si128(64 - r as i32);
            _mm256_or_si256(_mm256_sll_epi64(a, l), _mm256_srl_epi64(a, rr))
        };
        let splat = |v: u64| _mm256_set1_epi64x(v as i64);
        let load = |b: [&[u8]; 4], i: usize| {
            let l = |k: usize| lane(b[k], 8 * i) as i64;
            _mm256_set_epi64x(l(3), l(2), l(1), l(0))
        };
        // SAFETY: `l` is 32 bytes; storeu has no alignment requirement.
        let store =
            |l: &mut [u64; 4], v: __m256i| unsafe { _mm256_storeu_si256(l.as_mut_ptr().cast(), v) };
        sponge!(
            4,
            __m256i,
            group,
            _mm256_setzero_si256(),
            load,
            store,
            xor,
            xor3,
            chi,
            rol,
            splat
        )
    }

    #[cfg(test)]
    pub fn hash_group_with(group: &[&[u8]], lanes: usize) -> Vec<[u8; 32]> {
        hash_group(group, lanes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(len: usize, n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|k| (0..len).map(|i| (i * 31 + k * 7 + len) as u8).collect())
            .collect()
    }

    #[test]
    fn matches_sha3_crate_for_many_lengths_and_counts() {
        for len in [
            0usize, 1, 7, 8, 135, 136, 137, 271, 272, 273, 1000, 4096, 65_537,
        ] {
            for n in 1..=9 {
                let m = msgs(len, n);
                let refs: Vec<&[u8]> = m.iter().map(|v| v.as_slice()).collect();
                let got = sha3_256_many(&refs);
                for (g, v) in got.iter().zip(&m) {
                    assert_eq!(*g, super::super::sha3_256(v), "len {len} n {n}");
                }
            }
        }
    }

    #[test]
    fn mixed_lengths_keep_their_order() {
        let m: Vec<Vec<u8>> = (0..20).map(|k| vec![k as u8; (k % 3) * 200]).collect();
        let refs: Vec<&[u8]> = m.iter().map(|v| v.as_slice()).collect();
        let got = sha3_256_many(&refs);
        for (g, v) in got.iter().zip(&m) {
            assert_eq!(*g, super::super::sha3_256(v));
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn each_simd_path_matches_when_available() {
        let m = msgs(1000, 8);
        let refs: Vec<&[u8]> = m.iter().map(|v| v.as_slice()).collect();
        let want: Vec<[u8; 32]> = m.iter().map(|v| super::super::sha3_256(v)).collect();
        if is_x86_feature_detected!("avx512f") {
            assert_eq!(x86::hash_group_with(&refs, 8), want);
        }
        if is_x86_feature_detected!("avx2") {
            assert_eq!(x86::hash_group_with(&refs[..4], 4), want[..4].to_vec());
        }
    }
}
