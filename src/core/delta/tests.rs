//! Crafted-bytes tests (one per error variant not already covered by a test vector), a
//! property-based round trip, and cross-checks between the two encoders.

use proptest::prelude::*;

use super::vectors::{RawDelta, RawTensor, signer_a, signer_b_hybrid};
use super::*;
use crate::core::error::{Classify, ErrorClass};
use crate::core::keys;

fn base() -> RawDelta {
    let mut m = Metadata::new("w");
    m.timestamp = "2024-01-01T00:00:00Z".into();
    RawDelta {
        magic: MAGIC.to_vec(),
        version: VERSION,
        compression: 1,
        flags: 0,
        metadata: m.to_json().unwrap(),
        chunk_size: 256,
        tensors: vec![RawTensor::new(
            "t",
            Dtype::F32,
            &[100],
            &[7u8; 400],
            256,
            true,
        )],
        signature: vec![],
        trailing: vec![],
    }
}

fn err_of(bytes: &[u8]) -> DeltaError {
    read_bytes(bytes, &VerifyOptions::default()).expect_err("must fail")
}

/// Scans, then decodes every tensor into fresh buffers through [`decode_into`].
fn decode_all(bytes: &[u8]) -> Result<(VerifyReport, Vec<Vec<u8>>), DeltaError> {
    let src = bytes;
    let delta = Delta::scan(&src)?;
    let mut bufs: Vec<Vec<u8>> = delta
        .tensors
        .iter()
        .map(|t| vec![0u8; t.raw_len as usize])
        .collect();
    let mut dests: Vec<&mut [u8]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
    let report = decode_into(&src, delta, &VerifyOptions::default(), &mut dests)?;
    Ok((report, bufs))
}

fn kind_of(raw: &RawDelta) -> &'static str {
    err_of(&raw.encode()).kind()
}

#[test]
fn base_is_valid() {
    let r = read_bytes(&base().encode(), &VerifyOptions::default()).unwrap();
    assert_eq!(r.delta.tensors[0].raw_len, 400);
    assert_eq!(r.delta.chunks.len(), 2);
}

#[test]
fn metadata_too_long() {
    let mut b = base().encode();
    b[24..28].copy_from_slice(&(MAX_METADATA_LEN + 1).to_le_bytes());
    assert_eq!(err_of(&b).kind(), "metadata_too_long");
}

#[test]
fn metadata_not_json_and_bad_fields() {
    for bad in [
        &b"not json"[..],
        br#"{"timestamp":"2024-01-01T00:00:00+01:00","epoch":1,"seq":1,"worker_id":"w"}"#,
        br#"{"timestamp":"2024-01-01T00:00:00Z","epoch":1,"seq":1,"worker_id":""}"#,
        br#"{"timestamp":"2024-01-01T00:00:00Z","epoch":-1,"seq":1,"worker_id":"w"}"#,
        br#"{"timestamp":"2024-01-01T00:00:00Z","epoch":1,"seq":1,"worker_id":"w","base_hash":"ABC"}"#,
        br#"{"timestamp":"2024-01-01T00:00:00Z","epoch":1,"seq":1,"worker_id":"w","attestation":{"type":"none","evidence":"x"}}"#,
        br#"{"timestamp":"2024-01-01T00:00:00Z","epoch":1,"seq":1,"worker_id":"w","compute":{"flops":-1}}"#,
    ] {
        let mut r = base();
        r.metadata = bad.to_vec();
        assert_eq!(kind_of(&r), "metadata", "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn too_many_tensors() {
    let r = base();
    let mut b = r.encode();
    let off = 24 + 4 + r.metadata.len() + 4;
    b[off..off + 4].copy_from_slice(&(MAX_TENSORS + 1).to_le_bytes());
    assert_eq!(err_of(&b).kind(), "too_many_tensors");
}

#[test]
fn name_length_zero_and_over_limit() {
    let mut r = base();
    r.tensors[0].name = vec![];
    assert_eq!(kind_of(&r), "name_length");
    let mut r = base();
    r.tensors[0].name = vec![b'x'; MAX_NAME_LEN as usize + 1];
    assert_eq!(kind_of(&r), "name_length");
}

#[test]
fn not_byte_aligned() {
    let mut r = base();
    r.tensors = vec![RawTensor::new("f4", Dtype::F4, &[3], &[0u8; 2], 256, false)];
    assert_eq!(kind_of(&r), "not_byte_aligned");
}

#[test]
fn data_length_mismatch() {
    let mut r = base();
    r.tensors[0].data_len = Some(1000);
    r.trailing = vec![0; 1000];
    assert_eq!(kind_of(&r), "data_length");
}

#[test]
fn chunk_raw_length_wrong() {
    let mut r = base();
    r.tensors[0].chunks[1].0 = 100;
    assert_eq!(kind_of(&r), "chunk_raw_length");
}

#[test]
fn chunk_stored_length_rules() {
    // Stored longer than raw.
    let mut r = base();
    let c = &mut r.tensors[0].chunks[1];
    c.1 = c.0 + 1;
    c.2.resize(c.1 as usize, 0);
    assert_eq!(kind_of(&r), "chunk_stored_length");
    // Stored zero.
    let mut r = base();
    r.tensors[0].chunks[1].1 = 0;
    r.tensors[0].chunks[1].2.clear();
    assert_eq!(kind_of(&r), "chunk_stored_length");
    // Compressed chunk in an uncompressed file.
    let mut r = base();
    r.compression = 0;
    assert_eq!(kind_of(&r), "chunk_stored_length");
}

#[test]
fn corrupt_lz4_with_valid_checksum_is_malformed() {
    let mut r = base();
    let c = &mut r.tensors[0].chunks[0];
    assert!(c.1 < c.0, "first chunk is compressed");
    for b in c.2.iter_mut() {
        *b = 0xff;
    }
    let e = err_of(&r.encode());
    assert!(
        matches!(e.kind(), "decompress" | "decompressed_size"),
        "{e}"
    );
    assert_eq!(e.class(), ErrorClass::Malformed);
}

#[test]
fn corrupt_lz4_without_valid_checksum_is_a_checksum_error() {
    let mut r = base();
    let good = r.encode();
    let d = r.digest();
    r.tensors[0].chunks[0].2[0] ^= 0x55;
    let bad = r.encode_with_checksum(&d[..16]);
    assert_ne!(good, bad);
    assert_eq!(err_of(&bad).kind(), "checksum");
}

#[test]
fn bad_public_key_in_signature() {
    let mut r = base();
    r.sign(&signer_a());
    // A public key that is not a curve point (y = 2 is not on the curve).
    let mut pk = [0u8; 32];
    pk[0] = 2;
    r.signature[..32].copy_from_slice(&pk);
    assert_eq!(kind_of(&r), "bad_public_key");
}

#[test]
fn trusted_pq_key_must_match() {
    // Signer A trusted with B's ML-DSA key: the delta has none.
    let a = signer_a().public();
    let b = signer_b_hybrid().public();
    let text = format!(
        "{} mldsa87:{}\n",
        a.ed25519_base64(),
        keys::b64(&b.ml_dsa_bytes().unwrap())
    );
    let trusted = keys::TrustedKeys::parse(&text, std::path::Path::new("t")).unwrap();
    let mut r = base();
    r.sign(&signer_a());
    let opts = VerifyOptions {
        trusted: Some(trusted),
        ..Default::default()
    };
    let e = read_bytes(&r.encode(), &opts).unwrap_err();
    assert_eq!(e.kind(), "trusted_pq_mismatch");
    assert_eq!(e.class(), ErrorClass::Untrusted);
}

#[test]
fn signature_cannot_move_to_another_delta() {
    let mut a = base();
    a.sign(&signer_a());
    let mut other = base();
    other.tensors[0] = RawTensor::new("t", Dtype::F32, &[100], &[8u8; 400], 256, true);
    other.flags = a.flags;
    other.signature = a.signature.clone();
    assert_eq!(kind_of(&other), "bad_signature");
}

#[test]
fn every_truncation_is_an_error_never_a_panic() {
    let mut r = base();
    r.sign(&signer_b_hybrid());
    let full = r.encode();
    assert!(read_bytes(&full, &VerifyOptions::default()).is_ok());
    for n in 0..full.len() {
        let e = err_of(&full[..n]);
        assert_eq!(e.class(), ErrorClass::Malformed, "cut at {n}: {e}");
        assert!(decode_all(&full[..n]).is_err(), "cut at {n}");
    }
}

#[test]
fn decode_into_matches_verify_and_fills_every_byte() {
    let mut r = base();
    // A second tensor with an incompressible (stored raw) chunk next to the compressed ones.
    let noise: Vec<u8> = (0..600u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    r.tensors
        .push(RawTensor::new("n", Dtype::U8, &[600], &noise, 256, true));
    r.sign(&signer_a());
    let bytes = r.encode();
    let want = read_bytes(&bytes, &VerifyOptions::default()).unwrap();
    assert!(want.delta.chunks.iter().any(|c| c.is_raw()));
    assert!(want.delta.chunks.iter().any(|c| !c.is_raw()));
    let (got, bufs) = decode_all(&bytes).unwrap();
    assert_eq!(got.digest, want.digest);
    assert_eq!(
        got.signer.map(|s| s.worker_id()),
        want.signer.map(|s| s.worker_id())
    );
    assert_eq!(bufs, vec![vec![7u8; 400], noise]);
}

#[test]
fn decode_into_refuses_wrong_destinations() {
    let bytes = base().encode();
    let src = bytes.as_slice();
    let opts = VerifyOptions::default();
    let mut short = vec![0u8; 399];
    let mut dests = [short.as_mut_slice()];
    let e = decode_into(&src, Delta::scan(&src).unwrap(), &opts, &mut dests).unwrap_err();
    assert!(e.to_string().contains("399 bytes"), "{e}");
    let e = decode_into(&src, Delta::scan(&src).unwrap(), &opts, &mut []).unwrap_err();
    assert!(
        e.to_string()
            .contains("0 destination buffers for 1 tensors"),
        "{e}"
    );
}

#[test]
fn every_single_bit_flip_is_detected() {
    let mut r = base();
    r.sign(&signer_a());
    let full = r.encode();
    for i in 0..full.len() {
        for bit in [0u8, 3, 7] {
            let mut b = full.clone();
            b[i] ^= 1 << bit;
            let e = read_bytes(&b, &VerifyOptions::default())
                .expect_err(&format!("flip of bit {bit} at {i} went unnoticed"));
            let d = decode_all(&b).expect_err("decode_into must refuse what verify refuses");
            assert_eq!(d.kind(), e.kind(), "flip of bit {bit} at {i}");
        }
    }
}

#[test]
fn pack_and_raw_encoder_agree() {
    // The streaming writer and the field-by-field encoder produce identical bytes.
    let data: Vec<u8> = (0..3000u32)
        .flat_map(|i| ((i % 97) as f32).to_le_bytes())
        .collect();
    let mut meta = Metadata::new("w");
    meta.timestamp = "2024-01-01T00:00:00Z".into();
    for id in [None, Some(signer_a()), Some(signer_b_hybrid())] {
        let inputs = vec![PackInput {
            name: "x".into(),
            dtype: Dtype::F32,
            shape: vec![3000],
            data: TensorSource::Bytes(&data),
        }];
        let opts = PackOptions {
            compression: Compression::Lz4,
            chunk_size: 1024,
            metadata: meta.clone(),
            identity: id.as_ref(),
        };
        let (packed, summary) = pack_to_vec(&inputs, &opts).unwrap();
        let mut raw = RawDelta {
            magic: MAGIC.to_vec(),
            version: 1,
            compression: 1,
            flags: 0,
            metadata: meta.to_json().unwrap(),
            chunk_size: 1024,
            tensors: vec![RawTensor::new("x", Dtype::F32, &[3000], &data, 1024, true)],
            signature: vec![],
            trailing: vec![],
        };
        if let Some(id) = &id {
            raw.sign(id);
        }
        assert_eq!(packed, raw.encode());
        assert_eq!(summary.file_bytes as usize, packed.len());
        let rep = read_bytes(&packed, &VerifyOptions::default()).unwrap();
        assert_eq!(rep.digest, summary.digest);
    }
}

fn arb_dtype() -> impl Strategy<Value = Dtype> {
    (0..Dtype::all().len()).prop_map(|i| Dtype::all()[i])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// Any set of tensors packs, verifies, and unpacks to the same bytes.
    #[test]
    fn round_trip(
        tensors in prop::collection::vec((arb_dtype(), prop::collection::vec(0u64..6, 0..4), any::<u64>(), any::<bool>()), 0..6),
        chunk_log in 8u32..12,
        lz4 in any::<bool>(),
        sign in 0u8..3,
    ) {
        let cs = 1u32 << chunk_log;
        let mut datas = Vec::new();
        let mut specs = Vec::new();
        for (i, (dt, shape, seed, compressible)) in tensors.iter().enumerate() {
            let mut shape = shape.clone();
            let elements: u64 = shape.iter().product();
            // Sub-byte types need an even element count (F4) or a multiple of 4 (F6).
            let n = match dt.bits() { 4 => elements * 2, 6 => elements * 4, _ => elements };
            if n != elements { shape.push(if dt.bits() == 4 { 2 } else { 4 }); }
            let len = dt.byte_len(n).unwrap() as usize;
            let bytes: Vec<u8> = (0..len).map(|k| if *compressible { (k % 3) as u8 } else { (seed.wrapping_mul(k as u64 + 1) >> 17) as u8 }).collect();
            datas.push(bytes);
            specs.push((format!("tensor.{i}"), *dt, shape));
        }
        let inputs: Vec<PackInput<'_>> = specs.iter().zip(&datas).map(|((n, d, s), b)| PackInput {
            name: n.clone(), dtype: *d, shape: s.clone(), data: TensorSource::Bytes(b),
        }).collect();
        let ids = [None, Some(signer_a()), Some(signer_b_hybrid())];
        let mut meta = Metadata::new("prop");
        meta.timestamp = "2025-05-05T05:05:05Z".into();
        let opts = PackOptions {
            compression: if lz4 { Compression::Lz4 } else { Compression::None },
            chunk_size: cs,
            metadata: meta,
            identity: ids[sign as usize].as_ref(),
        };
        let (bytes, _) = pack_to_vec(&inputs, &opts).unwrap();
        let rep = read_bytes(&bytes, &VerifyOptions { require_signature: sign > 0, ..Default::default() }).unwrap();
        prop_assert_eq!(rep.delta.tensors.len(), inputs.len());
        let mut st = Vec::new();
        unpack_to_safetensors(&bytes.as_slice(), &VerifyOptions::default(), &mut st, &|_| {}).unwrap();
        let (direct, bufs) = decode_all(&bytes).unwrap();
        prop_assert_eq!(direct.digest, rep.digest);
        prop_assert_eq!(&bufs, &datas);
        let parsed = safetensors::SafeTensors::deserialize(&st).unwrap();
        for ((n, d, s), b) in specs.iter().zip(&datas) {
            let v = parsed.tensor(n).unwrap();
            prop_assert_eq!(v.data(), b.as_slice());
            prop_assert_eq!(Dtype::from_safetensors(v.dtype()), Some(*d));
            prop_assert_eq!(v.shape().iter().map(|&x| x as u64).collect::<Vec<_>>(), s.clone());
        }
    }

    /// Arbitrary bytes never panic the reader.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = read_bytes(&bytes, &VerifyOptions::default());
    }

    /// Mutations of a valid file never panic and are (almost always) rejected.
    #[test]
    fn mutated_files_never_panic(pos in any::<prop::sample::Index>(), val in any::<u8>()) {
        let mut b = base().encode();
        let i = pos.index(b.len());
        b[i] = val;
        let _ = read_bytes(&b, &VerifyOptions::default());
    }
}
