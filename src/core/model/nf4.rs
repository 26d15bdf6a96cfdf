//! NF4 4-bit storage of frozen weights, compatible with bitsandbytes (`quantize_4bit` with
//! `quant_type="nf4"`, `blocksize=64`, `compress_statistics=True`):
//!
//! - the tensor is flattened row-major and cut into blocks of 64; each block keeps its absmax;
//! - each value is scaled by 1/absmax (a multiplication by the f32 reciprocal, as bitsandbytes),
//!   clamped to [-1, 1] and mapped to the NF4 code whose interval holds it: the boundaries are
//!   the f32 midpoints of neighbouring codes, a value on a boundary takes the lower code
//!   (`torch.bucketize`, right=False);
//! - two codes per byte, the first element in the high nibble;
//! - double quantization: offset = mean(absmax); absmax − offset is quantized blockwise to 8 bits
//!   (blocksize 256) with bitsandbytes' signed dynamic code, each 256-block keeping its own
//!   absmax. The 8-bit index follows bitsandbytes' CPU kernel: the scaled value indexes a
//!   65536-entry table built from the code's midpoints.
//!
//! Dequantization: absmax_i = code8[q_i] · absmax2_{i/256} + offset; w = NF4[c] · absmax_{j/64}.
//! It is a rayon pass over the blocks (the stock tensor-op composition measured ~40× slower).

use candle_core::{Device, Result, Tensor};
use rayon::prelude::*;

/// bitsandbytes' NF4 code (`get_4bit_type("nf4")`).
#[allow(clippy::excessive_precision)] // the literals as bitsandbytes writes them
pub const NF4: [f32; 16] = [
    -1.0,
    -0.6961928009986877,
    -0.5250730514526367,
    -0.39491748809814453,
    -0.28444138169288635,
    -0.18477343022823334,
    -0.09105003625154495,
    0.0,
    0.07958029955625534,
    0.16093020141124725,
    0.24611230194568634,
    0.33791524171829224,
    0.44070982933044434,
    0.5626170039176941,
    0.7229568362236023,
    1.0,
];

pub const BLOCK: usize = 64;
/// Lanes of PyTorch's vectorized f32 sum on the machine that made the reference (see
/// `torch_sum_f32`).
const TORCH_LANES: usize = 8;
pub const BLOCK2: usize = 256;

/// bitsandbytes' signed dynamic 8-bit code (`create_dynamic_map(signed=True)`), as f32 bits,
/// copied from the code the reference run used (testdata/model-ref/nf4.safetensors `code8`).
const CODE8_BITS: [u32; 256] = [
    0xbf7e3333, 0xbf7a999a, 0xbf770000, 0xbf736666, 0xbf6fcccd, 0xbf6c3333, 0xbf68999a, 0xbf650000,
    0xbf616666, 0xbf5dcccd, 0xbf5a3333, 0xbf56999a, 0xbf530000, 0xbf4f6666, 0xbf4bcccd, 0xbf483333,
    0xbf44999a, 0xbf410000, 0xbf3d6666, 0xbf39cccd, 0xbf363334, 0xbf32999a, 0xbf2f0000, 0xbf2b6666,
    0xbf27cccd, 0xbf243334, 0xbf20999a, 0xbf1d0000, 0xbf196666, 0xbf15cccd, 0xbf123334, 0xbf0e999a,
    0xbf0b0000, 0xbf076666, 0xbf03cccc, 0xbf003333, 0xbef93332, 0xbef20000, 0xbeeacccc, 0xbee3999a,
    0xbedc6666, 0xbed53333, 0xbece0000, 0xbec6cccc, 0xbebf999a, 0xbeb86666, 0xbeb13333, 0xbeaa0000,
    0xbea2cccc, 0xbe9b999a, 0xbe946666, 0xbe8d3334, 0xbe860000, 0xbe7d9999, 0xbe6f3333, 0xbe60cccd,
    0xbe526666, 0xbe440000, 0xbe35999a, 0xbe273333, 0xbe18cccd, 0xbe0a6666, 0xbdf80000, 0xbddb3334,
    0xbdc9eb85, 0xbdc428f7, 0xbdbe6667, 0xbdb8a3d7, 0xbdb2e148, 0xbdad1eb8, 0xbda75c2a, 0xbda1999a,
    0xbd9bd70a, 0xbd96147b, 0xbd9051eb, 0xbd8a8f5d, 0xbd84cccd, 0xbd7e147b, 0xbd728f5d, 0xbd670a3d,
    0xbd5b851f, 0xbd500000, 0xbd447ae1, 0xbd38f5c3, 0xbd2d70a3, 0xbd21eb85, 0xbd166667, 0xbd0ae148,
    0xbcfeb852, 0xbce7ae15, 0xbcd0a3d7, 0xbcb9999a, 0xbca28f5d, 0xbc8b851f, 0xbc68f5c3, 0xbc3ae148,
    0xbc1f3b64, 0xbc160418, 0xbc0ccccd, 0xbc039581, 0xbbf4bc6a, 0xbbe24dd3, 0xbbcfdf3b, 0xbbbd70a4,
    0xbbab020d, 0xbb989374, 0xbb8624dd, 0xbb676c8a, 0xbb428f5c, 0xbb1db22d, 0xbaf1a9fc, 0xbaa7ef9d,
    0xba7765ff, 0xba59e83e, 0xba3c6a80, 0xba1eecc1, 0xba016f01, 0xb9c7e283, 0xb98ce705, 0xb923d70b,
    0xb8ba1f4b, 0xb88aefb3, 0xb8378034, 0xb7b24206, 0xb70205ff, 0xb65a1a94, 0xb513a3b7, 0x00000000,
    0x3513a3b7, 0x365a1a94, 0x370205ff, 0x37b24206, 0x38378034, 0x388aefb3, 0x38ba1f4b, 0x3923d70b,
    0x398ce705, 0x39c7e283, 0x3a016f01, 0x3a1eecc1, 0x3a3c6a80, 0x3a59e83e, 0x3a7765ff, 0x3aa7ef9d,
    0x3af1a9fc, 0x3b1db22d, 0x3b428f5c, 0x3b676c8a, 0x3b8624dd, 0x3b989374, 0x3bab020d, 0x3bbd70a4,
    0x3bcfdf3b, 0x3be24dd3, 0x3bf4bc6a, 0x3c039581, 0x3c0ccccd, 0x3c160418, 0x3c1f3b64, 0x3c3ae148,
    0x3c68f5c3, 0x3c8b851f, 0x3ca28f5d, 0x3cb9999a, 0x3cd0a3d7, 0x3ce7ae15, 0x3cfeb852, 0x3d0ae148,
    0x3d166667, 0x3d21eb85, 0x3d2d70a3, 0x3d38f5c3, 0x3d447ae1, 0x3d500000, 0x3d5b851f, 0x3d670a3d,
    0x3d728f5d, 0x3d7e147b, 0x3d84cccd, 0x3d8a8f5d, 0x3d9051eb, 0x3d96147b, 0x3d9bd70a, 0x3da1999a,
    0x3da75c2a, 0x3dad1eb8, 0x3db2e148, 0x3db8a3d7, 0x3dbe6667, 0x3dc428f7, 0x3dc9eb85, 0x3ddb3334,
    0x3df80000, 0x3e0a6666, 0x3e18cccd, 0x3e273333, 0x3e35999a, 0x3e440000, 0x3e526666, 0x3e60cccd,
    0x3e6f3333, 0x3e7d9999, 0x3e860000, 0x3e8d3334, 0x3e946666, 0x3e9b999a, 0x3ea2cccc, 0x3eaa0000,
    0x3eb13333, 0x3eb86666, 0x3ebf999a, 0x3ec6cccc, 0x3ece0000, 0x3ed53333, 0x3edc6666, 0x3ee3999a,
    0x3eeacccc, 0x3ef20000, 0x3ef93332, 0x3f003333, 0x3f03cccc, 0x3f076666, 0x3f0b0000, 0x3f0e999a,
    0x3f123334, 0x3f15cccd, 0x3f196666, 0x3f1d0000, 0x3f20999a, 0x3f243334, 0x3f27cccd, 0x3f2b6666,
    0x3f2f0000, 0x3f32999a, 0x3f363334, 0x3f39cccd, 0x3f3d6666, 0x3f410000, 0x3f44999a, 0x3f483333,
    0x3f4bcccd, 0x3f4f6666, 0x3f530000, 0x3f56999a, 0x3f5a3333, 0x3f5dcccd, 0x3f616666, 0x3f650000,
    0x3f68999a, 0x3f6c3333, 0x3f6fcccd, 0x3f736666, 0x3f770000, 0x3f7a999a, 0x3f7e3333, 0x3f800000,
];

pub fn code8() -> [f32; 256] {
    CODE8_BITS.map(f32::from_bits)
}

/// The per-block scales of an NF4 tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum Absmax {
    /// One f32 per block of 64.
    Plain(Vec<f32>),
    /// Double quantization: 8-bit codes, one f32 per 256 codes, and the offset.
    Double {
        q: Vec<u8>,
        absmax2: Vec<f32>,
        offset: f32,
    },
}

impl Absmax {
    /// The f32 absmax of every block.
    pub fn values(&self) -> Vec<f32> {
        match self {
            Absmax::Plain(v) => v.clone(),
            Absmax::Double { q, absmax2, offset } => {
                let c = code8();
                q.chunks(BLOCK2)
                    .zip(absmax2)
                    .flat_map(|(qs, &a2)| qs.iter().map(move |&b| c[b as usize] * a2 + offset))
                    .collect()
            }
        }
    }

    pub fn bytes(&self) -> usize {
        match self {
            Absmax::Plain(v) => 4 * v.len(),
            Absmax::Double { q, absmax2, .. } => q.len() + 4 * absmax2.len() + 4,
        }
    }
}

/// A frozen 2-D weight in NF4.
#[derive(Debug, Clone)]
pub struct Nf4Tensor {
    /// (rows, cols), as the f32 weight it replaces.
    pub shape: (usize, usize),
    /// ceil(n/2) bytes.
    pub packed: Vec<u8>,
    pub absmax: Absmax,
    pub device: Device,
    /// On a GPU: the packed codes and scales copied there at the first use, dequantized there.
    pub resident: std::sync::OnceLock<super::nf4_resident::Resident>,
}

/// The two NF4 values of each packed byte (high nibble first), unscaled.
const PAIRS: [[f32; 2]; 256] = {
    let mut t = [[0f32; 2]; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = [NF4[b >> 4], NF4[b & 15]];
        b += 1;
    }
    t
};

/// Whole blocks: `o` (64 values per block) from their packed bytes `p` (32 per block) and
/// absmaxes `a`, through the AVX-512 kernel where the CPU has one. Same products, same bits.
fn dequantize_blocks(o: &mut [f32], p: &[u8], a: &[f32]) {
    debug_assert!(o.len() == BLOCK * a.len() && p.len() == BLOCK / 2 * a.len());
    #[cfg(target_arch = "x86_64")]
    if simd::blocks(o, p, a) {
        return;
    }
    for ((o, p), &a) in o
        .chunks_exact_mut(BLOCK)
        .zip(p.chunks_exact(BLOCK / 2))
        .zip(a)
    {
        dequantize_block(o, p, a);
    }
}

/// The NF4 lookup as one AVX-512 permute: a block's 32 bytes become 64 codes in order (high
/// nibble first), each code picks its value from the 16 in one register, times the absmax.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod simd {
    use std::arch::x86_64::*;

    /// The whole blocks of `o`, `p`, `a` (64 values, 32 bytes, 1 absmax each) when the CPU has
    /// AVX-512F/BW; false (nothing written) when it has not.
    pub fn blocks(o: &mut [f32], p: &[u8], a: &[f32]) -> bool {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let has = *HAS.get_or_init(|| {
            is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")
        });
        if has {
            // SAFETY: the CPU has the features `blocks_avx512` is compiled for.
            unsafe { blocks_avx512(o, p, a) };
        }
        has
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    fn blocks_avx512(o: &mut [f32], p: &[u8], a: &[f32]) {
        // SAFETY (the loads and stores below): NF4 has 16 f32; each `p` chunk has 32 bytes and
        // each `o` chunk 64 f32 (`chunks_exact`), of which a store writes 16 at 16·j, j < 4.
        let lut = unsafe { _mm512_loadu_ps(super::NF4.as_ptr()) };
        let low = _mm512_set1_epi16(15);
        for ((o, p), &a) in o.chunks_exact_mut(64).zip(p.chunks_exact(32)).zip(a) {
            let scale = _mm512_set1_ps(a);
            // 32 bytes → 32 u16 lanes; lane = hi | lo << 8, so the bytes read hi0 lo0 hi1 …
            let w = _mm512_cvtepu8_epi16(unsafe { _mm256_loadu_si256(p.as_ptr().cast()) });
            let hi = _mm512_srli_epi16::<4>(w);
            let codes = _mm512_or_si512(hi, _mm512_slli_epi16::<8>(_mm512_and_si512(w, low)));
            let quarters = [
                _mm512_castsi512_si128(codes),
                _mm512_extracti32x4_epi32::<1>(codes),
                _mm512_extracti32x4_epi32::<2>(codes),
                _mm512_extracti32x4_epi32::<3>(codes),
            ];
            for (j, q) in quarters.into_iter().enumerate() {
                let v = _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(q), lut);
                let x = _mm512_mul_ps(v, scale);
                unsafe { _mm512_storeu_ps(o.as_mut_ptr().add(16 * j), x) };
            }
        }
    }
}

/// Elements `start..start + o.len()` of the flattened tensor into `o`: partial blocks at the
/// ends element by element, whole blocks through [`dequantize_blocks`]. `am`: every block's
/// absmax ([`Absmax::values`]).
fn dequantize_span(o: &mut [f32], packed: &[u8], am: &[f32], start: usize) {
    let one = |i: usize| {
        let b = packed[i / 2];
        let c = if i.is_multiple_of(2) { b >> 4 } else { b & 15 };
        NF4[c as usize] * am[i / BLOCK]
    };
    let end = start + o.len();
    let first = start.next_multiple_of(BLOCK).min(end);
    let last = (end / BLOCK * BLOCK).max(first);
    let (head, rest) = o.split_at_mut(first - start);
    let (body, tail) = rest.split_at_mut(last - first);
    head.iter_mut().zip(start..).for_each(|(x, i)| *x = one(i));
    let blocks = first / BLOCK..last / BLOCK;
    dequantize_blocks(
        body,
        &packed[first / 2..last / 2],
        &am[blocks.start..blocks.end],
    );
    tail.iter_mut().zip(last..).for_each(|(x, i)| *x = one(i));
}

/// One block: `o` (up to 64 values) from its packed bytes `p` and its absmax `a`.
fn dequantize_block(o: &mut [f32], p: &[u8], a: f32) {
    let mut pairs = o.chunks_exact_mut(2);
    for (pair, &b) in (&mut pairs).zip(p) {
        let c = PAIRS[b as usize];
        pair[0] = c[0] * a;
        pair[1] = c[1] * a;
    }
    // an odd final block ends in the high nibble of its last byte
    if let ([last], Some(&b)) = (pairs.into_remainder(), p.last()) {
        *last = NF4[(b >> 4) as usize] * a;
    }
}

/// NF4 code of a scaled value in [-1, 1]: the number of f32 midpoints strictly below it.
fn nf4_code(x: f32, mids: &[f32; 15]) -> u8 {
    mids.iter().filter(|&&m| m < x).count() as u8
}

fn nf4_mids() -> [f32; 15] {
    std::array::from_fn(|i| (NF4[i] + NF4[i + 1]) / 2.0)
}

/// bitsandbytes' 65536-entry quantization table for an 8-bit code.
fn lut8(code: &[f32; 256]) -> Vec<u8> {
    const N: usize = 65536;
    let mids: Vec<f32> = (0..255).map(|i| 0.5f32 * (code[i] + code[i + 1])).collect();
    let mut lut = vec![0u8; N];
    let mut c = 0usize;
    for (i, l) in lut.iter_mut().enumerate() {
        let val = -1.0f32 + (2.0f32 * i as f32) / (N - 1) as f32;
        while c < 255 && mids[c] < val {
            c += 1;
        }
        *l = c as u8;
    }
    lut
}

/// bitsandbytes' blockwise 8-bit quantization (CPU kernel): codes and one absmax per block.
pub fn quantize_blockwise_8bit(x: &[f32], blocksize: usize) -> (Vec<u8>, Vec<f32>) {
    let code = code8();
    let lut = lut8(&code);
    let mut q = vec![0u8; x.len()];
    let mut absmax = Vec::with_capacity(x.len().div_ceil(blocksize));
    for (blk, out) in x.chunks(blocksize).zip(q.chunks_mut(blocksize)) {
        let am = blk.iter().fold(0f32, |a, v| a.max(v.abs()));
        absmax.push(am);
        if am == 0.0 {
            continue; // codes stay 0, as bitsandbytes
        }
        let inv = 1.0f32 / am;
        for (o, v) in out.iter_mut().zip(blk) {
            let s = (v * inv).clamp(-1.0, 1.0);
            let idx = ((s + 1.0) * 0.5 * 65535.0 + 0.5) as u16;
            *o = lut[idx as usize];
        }
    }
    (q, absmax)
}

/// PyTorch's f32 `sum` of a contiguous vector on x86 CPUs (`cascade_sum` →
/// `vectorized_inner_sum` in ATen's SumKernel.cpp), transcribed so that the double-quantization
/// offset, `absmax.mean()` in bitsandbytes, comes out bit-identical. `LANES` is the width of
/// ATen's `Vectorized<float>` for the sum kernel (8: AVX2).
pub fn torch_sum_f32<const LANES: usize>(x: &[f32]) -> f32 {
    fn ceil_log2(x: usize) -> usize {
        if x <= 2 {
            1
        } else {
            (usize::BITS - (x - 1).leading_zeros()) as usize
        }
    }
    /// ATen's multi_row_sum over `size` steps of `NROWS` accumulators of lanes.
    fn multi_row_sum<const L: usize>(
        load: &dyn Fn(usize, usize) -> [f32; L],
        nrows: usize,
        size: usize,
    ) -> Vec<[f32; L]> {
        const LEVELS: usize = 4;
        let power = 4.max(ceil_log2(size) / LEVELS);
        let step = 1usize << power;
        let mask = step - 1;
        let mut acc = vec![vec![[0f32; L]; nrows]; LEVELS];
        let add = |a: &mut [f32; L], b: &[f32; L]| a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
        let mut i = 0;
        while i + step <= size {
            for _ in 0..step {
                for (k, a) in acc[0].iter_mut().enumerate() {
                    add(a, &load(i, k));
                }
                i += 1;
            }
            for j in 1..LEVELS {
                let (lo, hi) = acc.split_at_mut(j);
                for (cur, prev) in hi[0].iter_mut().zip(lo[j - 1].iter_mut()) {
                    add(cur, prev);
                    *prev = [0f32; L];
                }
                if i & (mask << (j * power)) != 0 {
                    break;
                }
            }
        }
        while i < size {
            for (k, a) in acc[0].iter_mut().enumerate() {
                add(a, &load(i, k));
            }
            i += 1;
        }
        let (first, rest) = acc.split_at_mut(1);
        for level in rest.iter() {
            for (a, b) in first[0].iter_mut().zip(level) {
                add(a, b);
            }
        }
        acc.swap_remove(0)
    }
    /// ATen's row_sum: 4 interleaved accumulators, tail into the first, then folded.
    fn row_sum<const L: usize>(load: &dyn Fn(usize) -> [f32; L], size: usize) -> [f32; L] {
        const ILP: usize = 4;
        let size_ilp = size / ILP;
        let mut p = multi_row_sum::<L>(&|i, k| load(i * ILP + k), ILP, size_ilp);
        for i in size_ilp * ILP..size {
            let v = load(i);
            p[0].iter_mut().zip(&v).for_each(|(a, b)| *a += b);
        }
        for k in 1..ILP {
            let v = p[k];
            p[0].iter_mut().zip(&v).for_each(|(a, b)| *a += b);
        }
        p[0]
    }
    if x.len() < LANES {
        return row_sum::<1>(&|i| [x[i]], x.len())[0];
    }
    let nvec = x.len() / LANES;
    let v = row_sum::<LANES>(&|i| std::array::from_fn(|l| x[i * LANES + l]), nvec);
    let mut acc = 0f32;
    for &t in &x[nvec * LANES..] {
        acc += t;
    }
    for l in v {
        acc += l;
    }
    acc
}

impl Nf4Tensor {
    /// Quantizes an f32 weight of shape (rows, cols); `double` selects double quantization of
    /// the absmax (bitsandbytes' `compress_statistics`).
    pub fn quantize(w: &Tensor, double: bool) -> Result<Self> {
        let (r, c) = w.dims2()?;
        let v: Vec<f32> = w
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        Ok(Self::quantize_slice(&v, (r, c), double, w.device()))
    }

    pub fn quantize_slice(v: &[f32], shape: (usize, usize), double: bool, dev: &Device) -> Self {
        let mids = nf4_mids();
        let nblocks = v.len().div_ceil(BLOCK);
        let mut absmax = vec![0f32; nblocks];
        let mut packed = vec![0u8; v.len().div_ceil(2)];
        packed
            .par_chunks_mut(BLOCK / 2)
            .zip(v.par_chunks(BLOCK))
            .zip(absmax.par_iter_mut())
            .enumerate()
            .for_each(|(bi, ((p, blk), am))| {
                let m = blk.iter().fold(0f32, |a, x| a.max(x.abs()));
                *am = m;
                let full = blk.len() == BLOCK;
                // full blocks multiply by the reciprocal, a final partial block divides
                // (bitsandbytes' default kernel); absmax is clamped to 1e-38 there
                let m = m.max(1e-38);
                let inv = 1.0f32 / m;
                let code = |x: f32| {
                    let s = if full { x * inv } else { x / m };
                    nf4_code(s.clamp(-1.0, 1.0), &mids)
                };
                let _ = bi;
                for (j, pair) in blk.chunks(2).enumerate() {
                    let hi = code(pair[0]);
                    let lo = if pair.len() > 1 {
                        code(pair[1])
                    } else {
                        nf4_code(0.0, &mids)
                    };
                    p[j] = (hi << 4) | lo;
                }
            });
        let absmax = if double {
            let offset = torch_sum_f32::<TORCH_LANES>(&absmax) / absmax.len().max(1) as f32;
            let centred: Vec<f32> = absmax.iter().map(|a| a - offset).collect();
            let (q, absmax2) = quantize_blockwise_8bit(&centred, BLOCK2);
            Absmax::Double { q, absmax2, offset }
        } else {
            Absmax::Plain(absmax)
        };
        Nf4Tensor {
            shape,
            packed,
            absmax,
            device: dev.clone(),
            resident: std::sync::OnceLock::new(),
        }
    }

    /// Storage in bytes (codes and scales).
    pub fn bytes(&self) -> usize {
        self.packed.len() + self.absmax.bytes()
    }

    /// The dequantized f32 values, row-major.
    pub fn dequantize_vec(&self) -> Vec<f32> {
        let mut out = Vec::new();
        self.dequantize_into(&mut out);
        out
    }

    /// The dequantized f32 values, row-major, written over `out` (resized to the element
    /// count), so that a caller can reuse one buffer: a fresh one per product was faulted in
    /// from the kernel page by page. Each value is `NF4[code] · absmax` as before, read two
    /// codes per byte from [`PAIRS`].
    pub fn dequantize_into(&self, out: &mut Vec<f32>) {
        /// Blocks per rayon task.
        const GROUP: usize = 16;
        let n = self.shape.0 * self.shape.1;
        out.resize(n, 0.0);
        let am = self.absmax.values();
        out.par_chunks_mut(BLOCK * GROUP)
            .zip(self.packed.par_chunks(BLOCK / 2 * GROUP))
            .zip(am.par_chunks(GROUP))
            .for_each(|((o, p), a)| {
                let whole = o.len() / BLOCK;
                let (body, tail) = o.split_at_mut(whole * BLOCK);
                dequantize_blocks(body, &p[..whole * BLOCK / 2], &a[..whole]);
                if !tail.is_empty() {
                    dequantize_block(tail, &p[whole * BLOCK / 2..], a[whole]);
                }
            });
    }

    /// Rows `rows` and columns `cols` of the dequantized (rows, cols) weight into `out`, a
    /// row-major (rows.len(), cols.len()) rectangle: what one piece of a product multiplies
    /// (see `blas::product_by_pieces`). `am` is [`Absmax::values`], computed once per product.
    pub fn dequantize_rect(
        &self,
        am: &[f32],
        rows: std::ops::Range<usize>,
        cols: std::ops::Range<usize>,
        out: &mut [f32],
    ) {
        let (w, width) = (self.shape.1, cols.len());
        assert!(rows.end <= self.shape.0 && cols.end <= w && out.len() == rows.len() * width);
        if width == 0 {
            return;
        }
        if width == w {
            return dequantize_span(out, &self.packed, am, rows.start * w);
        }
        for (o, r) in out.chunks_exact_mut(width).zip(rows) {
            dequantize_span(o, &self.packed, am, r * w + cols.start);
        }
    }

    /// The dequantized weight as an f32 tensor of `shape` on the tensor's device.
    /// Off the CPU, from the codes kept packed on the device (`nf4_resident`), same bits.
    pub fn dequantize(&self) -> Result<Tensor> {
        self.dequantize_as(candle_core::DType::F32)
    }

    /// The dequantized weight as `dtype` (the f32 values rounded once), on the tensor's device;
    /// on a CUDA GPU written in that dtype by gym's kernel, with no f32 copy for bf16.
    pub fn dequantize_as(&self, dtype: candle_core::DType) -> Result<Tensor> {
        if self.device.is_cpu() {
            return Tensor::from_vec(self.dequantize_vec(), self.shape, &Device::Cpu)?
                .to_dtype(dtype);
        }
        if let Some(r) = self.resident.get() {
            return r.dequantize_as(self.shape, dtype);
        }
        let r = super::nf4_resident::Resident::new(self, &self.device)?;
        self.resident
            .get_or_init(|| r)
            .dequantize_as(self.shape, dtype)
    }
}

/// The deterministic test matrix of tools/reference/nf4.py (a 32-bit LCG; f32 arithmetic).
pub fn lcg_matrix(rows: usize, cols: usize, seed: u32) -> Vec<f32> {
    let mut s = seed;
    let mut out: Vec<f32> = (0..rows * cols)
        .map(|i| {
            s = s.wrapping_mul(1664525).wrapping_add(1013904223);
            let u = (s >> 8) as f32 / 16777216.0f32;
            let scale = (1 + (i / 64) % 7) as f32 * 0.01f32;
            (u * 2.0f32 - 1.0f32) * scale
        })
        .collect();
    if out.len() >= 18 * 64 {
        out[17 * 64..18 * 64].iter_mut().for_each(|v| *v = 0.0);
    }
    let m = out[..64.min(out.len())]
        .iter()
        .fold(0f32, |a, v| a.max(v.abs()));
    if out.len() > 5 {
        out[5] = -m;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn reference() -> HashMap<String, Tensor> {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/model-ref/nf4.safetensors"
        );
        candle_core::safetensors::load(p, &Device::Cpu).expect("reference file")
    }

    #[test]
    fn generator_matches_the_reference_script() {
        let r = reference();
        let head: Vec<f32> = r["input_head"].to_vec1().unwrap();
        let x = lcg_matrix(100, 192, 12345);
        assert_eq!(&x[..256], &head[..]);
    }

    #[test]
    fn torch_mean_transcription_is_bit_exact() {
        let r = reference();
        let x: Vec<f32> = lcg_matrix(100, 192, 12345)
            .iter()
            .map(|v| v.abs())
            .collect();
        let lengths: Vec<i64> = r["mean_lengths"].to_vec1().unwrap();
        let means: Vec<f32> = r["means"].to_vec1().unwrap();
        for (n, want) in lengths.iter().zip(means) {
            let n = *n as usize;
            let got = torch_sum_f32::<TORCH_LANES>(&x[..n]) / n as f32;
            assert_eq!(got.to_bits(), want.to_bits(), "n = {n}: {got} vs {want}");
        }
    }

    #[test]
    fn code8_is_the_one_bitsandbytes_used() {
        let r = reference();
        let c: Vec<f32> = r["code8"].to_vec1().unwrap();
        assert_eq!(c, code8().to_vec());
    }

    #[test]
    fn quantize_is_bit_exact_with_bitsandbytes() {
        let r = reference();
        let x = lcg_matrix(100, 192, 12345);
        let plain = Nf4Tensor::quantize_slice(&x, (100, 192), false, &Device::Cpu);
        let packed: Vec<u8> = r["packed"].to_vec1().unwrap();
        assert_eq!(plain.packed, packed, "packed NF4 codes");
        let am: Vec<f32> = r["absmax"].to_vec1().unwrap();
        assert_eq!(plain.absmax, Absmax::Plain(am), "absmax");
        let dq = Nf4Tensor::quantize_slice(&x, (100, 192), true, &Device::Cpu);
        assert_eq!(dq.packed, packed);
        let Absmax::Double { q, absmax2, offset } = &dq.absmax else {
            panic!("double quantization expected")
        };
        let rq: Vec<u8> = r["qabsmax"].to_vec1().unwrap();
        let mismatches: Vec<usize> = (0..q.len()).filter(|&i| q[i] != rq[i]).collect();
        assert!(
            mismatches.is_empty(),
            "8-bit absmax codes differ at {mismatches:?}"
        );
        assert_eq!(absmax2, &r["absmax2"].to_vec1::<f32>().unwrap());
        assert_eq!(*offset, r["offset"].to_vec1::<f32>().unwrap()[0]);
        // dequantization equals bitsandbytes' dequantize_4bit exactly
        let want: Vec<f32> = r["dequant"].to_vec1().unwrap();
        assert_eq!(dq.dequantize_vec(), want);
    }

    #[test]
    fn dequantize_error_is_within_half_the_widest_code_gap() {
        let x = lcg_matrix(64, 256, 7);
        let q = Nf4Tensor::quantize_slice(&x, (64, 256), true, &Device::Cpu);
        let d = q.dequantize_vec();
        let am_q = q.absmax.values();
        let Absmax::Double { absmax2, .. } = &q.absmax else {
            panic!()
        };
        // error ≤ half the widest code gap (NF4: between −1 and −0.696) plus the absmax error
        let half_gap = NF4.windows(2).map(|w| w[1] - w[0]).fold(0f32, f32::max) / 2.0;
        let c8 = code8();
        let half_gap8 = c8.windows(2).map(|w| w[1] - w[0]).fold(0f32, f32::max) / 2.0;
        for (b, (xs, ds)) in x.chunks(BLOCK).zip(d.chunks(BLOCK)).enumerate() {
            let am = xs.iter().fold(0f32, |a, v| a.max(v.abs()));
            let am_err = (am_q[b] - am).abs();
            assert!(
                am_err <= half_gap8 * absmax2[b / BLOCK2] * 1.001 + 1e-7,
                "block {b}: absmax {am} -> {}",
                am_q[b]
            );
            for (xv, dv) in xs.iter().zip(ds) {
                assert!(
                    (xv - dv).abs() <= am * half_gap + am_err + 1e-6,
                    "block {b}: {xv} -> {dv} (absmax {am})"
                );
            }
        }
    }

    /// The pair-table kernel gives the per-element formula's bits for odd sizes (a final
    /// block of odd length) and when writing over a longer or shorter reused buffer.
    #[test]
    fn dequantize_into_matches_the_per_element_formula() {
        let mut buf = vec![7f32; 5000];
        for (rows, cols, double) in [(3, 37, true), (40, 64, false), (1, 1, true), (9, 301, true)] {
            let x = lcg_matrix(rows, cols, 11);
            let q = Nf4Tensor::quantize_slice(&x, (rows, cols), double, &Device::Cpu);
            let am = q.absmax.values();
            let want: Vec<f32> = (0..rows * cols)
                .map(|j| {
                    let b = q.packed[j / 2];
                    let c = if j % 2 == 0 { b >> 4 } else { b & 15 };
                    NF4[c as usize] * am[j / BLOCK]
                })
                .collect();
            q.dequantize_into(&mut buf);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&buf), bits(&want), "{rows}x{cols}");
            // every rectangle a product's piece asks for, whole rows or a column slab, at
            // offsets inside blocks and inside bytes
            let rects = [
                (0..rows, 0..cols),
                (rows / 2..rows, 0..cols),
                (0..rows, cols / 3..cols),
            ];
            for (r, c) in rects.into_iter().chain([(0..rows, 1..cols.min(2))]) {
                let mut out = vec![f32::NAN; r.len() * c.len()];
                q.dequantize_rect(&am, r.clone(), c.clone(), &mut out);
                let want_rect: Vec<f32> = r
                    .clone()
                    .flat_map(|i| c.clone().map(move |j| (i, j)))
                    .map(|(i, j)| want[i * cols + j])
                    .collect();
                assert_eq!(bits(&out), bits(&want_rect), "{rows}x{cols} {r:?} {c:?}");
            }
        }
    }

    /// The AVX-512 block kernel (where the CPU has one) writes the same bits as the scalar
    /// table, for every byte value and several absmaxes.
    #[test]
    fn the_simd_blocks_equal_the_scalar_blocks() {
        let p: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect(); // 16 blocks
        let a: Vec<f32> = (0..16).map(|i| 0.37 * (i as f32 + 1.0) - 2.0).collect();
        let mut scalar = vec![0f32; 16 * BLOCK];
        for ((o, p), &a) in scalar.chunks_mut(BLOCK).zip(p.chunks(BLOCK / 2)).zip(&a) {
            dequantize_block(o, p, a);
        }
        let mut fast = vec![f32::NAN; 16 * BLOCK];
        dequantize_blocks(&mut fast, &p, &a);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&fast), bits(&scalar));
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512bw") {
            let mut direct = vec![f32::NAN; 16 * BLOCK];
            assert!(
                simd::blocks(&mut direct, &p, &a),
                "AVX-512 kernel not taken"
            );
            assert_eq!(bits(&direct), bits(&scalar));
        }
    }
}
