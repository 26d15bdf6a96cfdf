//! The packed encoding of a data message's integers (docs/ring-protocol.md, "Packed
//! payloads", protocol version 4): lossless, exact, and unique.
//!
//! A stream is `u32 count ‖ block*`. The `count` elements are cut into blocks of [`BLOCK`]
//! (the last one shorter). A block is `u8 width w ‖ u8 shift s ‖ ⌈m·w/8⌉ bytes`, where the
//! bytes hold the block's `m` values `v_i = zigzag(x_i >> s)` as `w`-bit fields, least
//! significant bit first, the last byte's unused bits zero. The encoder picks `s` as the
//! number of trailing zero bits common to the block (fixed-point values of `f32` inputs carry
//! dozens) and `w` as the bit length of the largest `v_i`; an all-zero block is `0 ‖ 0`. The
//! decoder accepts exactly what the encoder writes (smallest `w`, largest `s`, no overflow of
//! `v << s`, zero padding, no trailing bytes), so every integer vector has one encoding and
//! `encode(decode(b)) == b` for every `b` that decodes.

/// Elements per block: `64 · w` bits, a whole number of 64-bit words for a full block.
pub const BLOCK: usize = 64;

/// Bytes of a block's header (`width ‖ shift`).
const HEADER: usize = 2;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("packed payload truncated reading {what} of block {block}")]
    Truncated { what: &'static str, block: usize },
    #[error("packed payload announces {count} elements but has only {bytes} bytes")]
    CountTooLarge { count: u64, bytes: usize },
    #[error("packed payload block {block}: width {width} bits (at most 64)")]
    Width { block: usize, width: u8 },
    #[error("packed payload block {block}: shift {shift} (at most 63; 0 for an empty width)")]
    Shift { block: usize, shift: u8 },
    #[error("packed payload block {block} is not in canonical form: {what}")]
    NotCanonical { block: usize, what: &'static str },
    #[error("packed payload block {block}: a value shifted by {shift} overflows 64 bits")]
    Overflow { block: usize, shift: u8 },
    #[error("{count} trailing bytes after the packed payload")]
    Trailing { count: usize },
    #[error("packed payload has {got} elements where {want} were announced")]
    Count { got: usize, want: usize },
}

#[inline]
fn zigzag(x: i64) -> u64 {
    ((x << 1) ^ (x >> 63)) as u64
}

#[inline]
fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Upper bound of the encoded size of `count` elements.
pub fn max_encoded_len(count: usize) -> usize {
    4 + count.div_ceil(BLOCK) * HEADER + 8 * count
}

/// Appends the packed stream of `values` to `out`.
pub fn encode_into(values: &[i64], out: &mut Vec<u8>) {
    out.extend_from_slice(&(values.len() as u32).to_le_bytes());
    for block in values.chunks(BLOCK) {
        encode_block(block, out);
    }
}

/// The packed stream of `values`.
pub fn encode(values: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(max_encoded_len(values.len()));
    encode_into(values, &mut out);
    out
}

/// Appends the packed stream of the integers whose little-endian bytes are `le`
/// (`le.len()` a multiple of 8): the same bytes as [`encode_into`] of those integers.
pub fn encode_le_into(le: &[u8], out: &mut Vec<u8>) {
    debug_assert!(le.len().is_multiple_of(8));
    let count = le.len() / 8;
    out.extend_from_slice(&(count as u32).to_le_bytes());
    let mut buf = [0i64; BLOCK];
    for block in le.chunks(BLOCK * 8) {
        let m = block.len() / 8;
        for (d, c) in buf.iter_mut().zip(block.chunks_exact(8)) {
            *d = i64::from_le_bytes(c.try_into().expect("8 bytes"));
        }
        encode_block(&buf[..m], out);
    }
}

fn encode_block(block: &[i64], out: &mut Vec<u8>) {
    let or_x = block.iter().fold(0u64, |a, &x| a | x as u64);
    if or_x == 0 {
        out.extend_from_slice(&[0, 0]);
        return;
    }
    let shift = or_x.trailing_zeros();
    let or_v = block.iter().fold(0u64, |a, &x| a | zigzag(x >> shift));
    let width = 64 - or_v.leading_zeros();
    out.extend_from_slice(&[width as u8, shift as u8]);
    let mut acc: u128 = 0;
    let mut bits = 0u32;
    for &x in block {
        acc |= (zigzag(x >> shift) as u128) << bits;
        bits += width;
        if bits >= 64 {
            out.extend_from_slice(&(acc as u64).to_le_bytes());
            acc >>= 64;
            bits -= 64;
        }
    }
    let tail = bits.div_ceil(8) as usize;
    out.extend_from_slice(&(acc as u64).to_le_bytes()[..tail]);
}

/// The integers of a packed stream (the whole of `bytes`). Allocates at most 256 bytes per
/// input byte, whatever `count` says.
pub fn decode(bytes: &[u8]) -> Result<Vec<i64>, CodecError> {
    let (count, body) = split_count(bytes)?;
    let mut out = vec![0i64; count];
    decode_body(body, &mut out)?;
    Ok(out)
}

/// Decodes a packed stream into the little-endian bytes `out` (`8 · count` bytes, the count
/// of the stream; [`CodecError::Count`] otherwise).
pub fn decode_le_into(bytes: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
    let (count, body) = split_count(bytes)?;
    if count * 8 != out.len() {
        return Err(CodecError::Count {
            got: count,
            want: out.len() / 8,
        });
    }
    let mut buf = [0i64; BLOCK];
    let mut rest = body;
    for (b, dst) in out.chunks_mut(BLOCK * 8).enumerate() {
        let m = dst.len() / 8;
        rest = decode_block(rest, b, &mut buf[..m])?;
        for (o, x) in dst.chunks_exact_mut(8).zip(&buf[..m]) {
            o.copy_from_slice(&x.to_le_bytes());
        }
    }
    if !rest.is_empty() {
        return Err(CodecError::Trailing { count: rest.len() });
    }
    Ok(())
}

/// The count of a packed stream, without decoding it.
pub fn count_of(bytes: &[u8]) -> Result<usize, CodecError> {
    Ok(split_count(bytes)?.0)
}

fn split_count(bytes: &[u8]) -> Result<(usize, &[u8]), CodecError> {
    let (c, body) = bytes
        .split_first_chunk::<4>()
        .ok_or(CodecError::Truncated {
            what: "count",
            block: 0,
        })?;
    let count = u32::from_le_bytes(*c) as usize;
    // Every block takes at least its header: refuse before allocating.
    if count.div_ceil(BLOCK) * HEADER > body.len() {
        return Err(CodecError::CountTooLarge {
            count: count as u64,
            bytes: bytes.len(),
        });
    }
    Ok((count, body))
}

fn decode_body(body: &[u8], out: &mut [i64]) -> Result<(), CodecError> {
    let mut rest = body;
    for (b, dst) in out.chunks_mut(BLOCK).enumerate() {
        rest = decode_block(rest, b, dst)?;
    }
    if !rest.is_empty() {
        return Err(CodecError::Trailing { count: rest.len() });
    }
    Ok(())
}

/// Decodes block number `b` of `out.len()` elements from the start of `bytes`; returns the
/// bytes after it.
fn decode_block<'a>(bytes: &'a [u8], b: usize, out: &mut [i64]) -> Result<&'a [u8], CodecError> {
    let Some((&[width, shift], rest)) = bytes.split_first_chunk::<2>() else {
        return Err(CodecError::Truncated {
            what: "header",
            block: b,
        });
    };
    if width > 64 {
        return Err(CodecError::Width { block: b, width });
    }
    if shift > 63 || (width == 0 && shift != 0) {
        return Err(CodecError::Shift { block: b, shift });
    }
    let len = (out.len() * width as usize).div_ceil(8);
    let (packed, rest) = rest.split_at_checked(len).ok_or(CodecError::Truncated {
        what: "values",
        block: b,
    })?;
    if width == 0 {
        out.fill(0);
        return Ok(rest);
    }
    let w = width as u32;
    let mask = u64::MAX >> (64 - w);
    let (mut acc, mut bits, mut pos) = (0u128, 0u32, 0usize);
    let (mut or_v, mut or_y, mut over) = (0u64, 0u64, false);
    for o in out.iter_mut() {
        if bits < w {
            let (word, take) = match packed.get(pos..pos + 8) {
                Some(b) => (u64::from_le_bytes(b.try_into().expect("8 bytes")), 8),
                None => {
                    let mut word = [0u8; 8];
                    let take = packed.len() - pos;
                    word[..take].copy_from_slice(&packed[pos..]);
                    (u64::from_le_bytes(word), take)
                }
            };
            acc |= (word as u128) << bits;
            bits += 8 * take as u32;
            pos += take;
        }
        let v = acc as u64 & mask;
        acc >>= w;
        bits -= w;
        let y = unzigzag(v);
        let x = y << shift;
        over |= (x >> shift) != y;
        or_v |= v;
        or_y |= y as u64;
        *o = x;
    }
    if over {
        return Err(CodecError::Overflow { block: b, shift });
    }
    if or_v >> (w - 1) != 1 {
        return Err(CodecError::NotCanonical {
            block: b,
            what: "width larger than the values need",
        });
    }
    if or_y & 1 == 0 {
        return Err(CodecError::NotCanonical {
            block: b,
            what: "shift smaller than the values allow",
        });
    }
    if acc != 0 || pos != packed.len() {
        return Err(CodecError::NotCanonical {
            block: b,
            what: "non-zero padding bits",
        });
    }
    Ok(rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(v: &[i64]) {
        let b = encode(v);
        assert!(b.len() <= max_encoded_len(v.len()));
        assert_eq!(decode(&b).unwrap(), v, "{v:?}");
        let le: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        let mut b2 = Vec::new();
        encode_le_into(&le, &mut b2);
        assert_eq!(b2, b);
        let mut back = vec![0u8; le.len()];
        decode_le_into(&b, &mut back).unwrap();
        assert_eq!(back, le);
        assert_eq!(count_of(&b).unwrap(), v.len());
    }

    /// Adversarial streams: empty, single, odd sizes, all zeros, the extremes, alternating
    /// signs, single bits at every position, values that need every width and shift.
    #[test]
    fn adversarial_streams_round_trip() {
        for n in [0usize, 1, 2, 63, 64, 65, 127, 129, 1000] {
            round_trip(&vec![0; n]);
            round_trip(&vec![i64::MIN; n]);
            round_trip(&vec![i64::MAX; n]);
            round_trip(&vec![-1; n]);
            let alt: Vec<i64> = (0..n)
                .map(|k| if k % 2 == 0 { i64::MAX } else { i64::MIN })
                .collect();
            round_trip(&alt);
            let alt: Vec<i64> = (0..n as i64)
                .map(|k| if k % 2 == 0 { k } else { -k })
                .collect();
            round_trip(&alt);
        }
        for bit in 0..64 {
            round_trip(&[1i64 << bit]);
            round_trip(&[1i64 << bit, 0, -(1i64 << bit)]);
            round_trip(&[(1i64 << bit).wrapping_sub(1), i64::MIN >> bit]);
        }
    }

    #[test]
    fn fixed_point_floats_take_fewer_bytes() {
        // f32-like values at a fixed-point scale: 24 significant bits each.
        let v: Vec<i64> = (0..4096i64)
            .map(|k| ((k * 7919 % 1000) - 500) * (1 << 30) + (k % 3) * (1 << 40))
            .collect();
        let b = encode(&v);
        assert!(b.len() * 2 < v.len() * 8, "{} bytes", b.len());
        round_trip(&v);
    }

    #[test]
    fn every_non_canonical_or_broken_block_is_a_typed_error() {
        let v = [3i64, -8, 12, 0, 5];
        let good = encode(&v);
        // good = count(4) ‖ width ‖ shift ‖ values
        assert_eq!(good[4..6], [5, 0]);
        // [1] with width 3 instead of 2.
        let wide = [1u8, 0, 0, 0, 3, 0, 2];
        assert_eq!(
            decode(&wide),
            Err(CodecError::NotCanonical {
                block: 0,
                what: "width larger than the values need"
            })
        );
        let mut w65 = good.clone();
        w65[4] = 65;
        assert_eq!(
            decode(&w65),
            Err(CodecError::Width {
                block: 0,
                width: 65
            })
        );
        let mut s64 = good.clone();
        s64[5] = 64;
        assert_eq!(
            decode(&s64),
            Err(CodecError::Shift {
                block: 0,
                shift: 64
            })
        );
        // Zero width with a shift.
        let z = [1u8, 0, 0, 0, 0, 1];
        assert_eq!(decode(&z), Err(CodecError::Shift { block: 0, shift: 1 }));
        // A shift that the values allow to be larger: encode [2, 4] as shift 0.
        let mut small_shift = vec![2, 0, 0, 0, 4, 0];
        small_shift.push((zigzag(2) | zigzag(4) << 4) as u8);
        assert!(matches!(
            decode(&small_shift),
            Err(CodecError::NotCanonical { .. })
        ));
        // Overflow: 1 shifted by 63 is fine (i64::MIN >> 63 = -1 round trips), but 1 << 63
        // read as +1 << 63 is not representable: zigzag value 2 (y = 1) with shift 63.
        let over = [1u8, 0, 0, 0, 2, 63, 2];
        assert_eq!(
            decode(&over),
            Err(CodecError::Overflow {
                block: 0,
                shift: 63
            })
        );
        // Padding bits.
        let mut pad = good.clone();
        *pad.last_mut().unwrap() |= 0x80;
        assert!(decode(&pad).is_err());
        // Trailing, truncated, and counts that the bytes cannot hold.
        let mut trail = good.clone();
        trail.push(0);
        assert_eq!(decode(&trail), Err(CodecError::Trailing { count: 1 }));
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "cut {cut}");
        }
        let huge = [0xff, 0xff, 0xff, 0xff, 0, 0];
        assert!(matches!(
            decode(&huge),
            Err(CodecError::CountTooLarge { .. })
        ));
        let mut out = vec![0u8; 8];
        assert_eq!(
            decode_le_into(&good, &mut out),
            Err(CodecError::Count { got: 5, want: 1 })
        );
    }

    /// testdata/ring/codec.json, written by tools/reference/ring_codec_kat.py from the
    /// specification alone.
    #[test]
    fn kat() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/ring/codec.json");
        let kat: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(kat["block"], BLOCK as u64);
        let cases = kat["cases"].as_array().unwrap();
        assert!(cases.len() >= 10);
        for c in cases {
            let name = c["name"].as_str().unwrap();
            let values: Vec<i64> = c["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().parse().unwrap())
                .collect();
            let packed = hex::decode(c["packed"].as_str().unwrap()).unwrap();
            assert_eq!(encode(&values), packed, "{name}");
            assert_eq!(decode(&packed).unwrap(), values, "{name}");
        }
        for c in kat["invalid"].as_array().unwrap() {
            let name = c["name"].as_str().unwrap();
            let packed = hex::decode(c["packed"].as_str().unwrap()).unwrap();
            let e = decode(&packed).unwrap_err();
            let want = c["error"].as_str().unwrap();
            assert!(
                format!("{e:?}").starts_with(want),
                "{name}: {e:?}, want {want}"
            );
        }
    }

    proptest! {
        #[test]
        fn random_streams_round_trip(
            v in proptest::collection::vec(any::<i64>(), 0..300),
            shift in 0u32..64,
            bits in 1u32..64,
        ) {
            round_trip(&v);
            // The same with common trailing zeros and few significant bits.
            let w: Vec<i64> = v.iter().map(|x| (x >> (64 - bits)).wrapping_shl(shift)).collect();
            round_trip(&w);
        }

        #[test]
        fn corrupted_streams_never_panic_and_reencode(
            v in proptest::collection::vec(any::<i64>(), 0..200),
            flips in proptest::collection::vec((any::<usize>(), 0u8..8), 1..4),
        ) {
            let mut b = encode(&v);
            for (i, bit) in flips {
                let n = b.len();
                b[i % n] ^= 1 << bit;
            }
            if let Ok(back) = decode(&b) {
                // Unique encoding: whatever decodes is what the encoder writes.
                prop_assert_eq!(encode(&back), b);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(back) = decode(&b) {
                prop_assert_eq!(encode(&back), b);
            }
        }
    }
}
