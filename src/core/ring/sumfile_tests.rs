use super::*;
use crate::core::ring::fixed::BOUND;

/// The known-answer sum file (testdata/ring/sum-kat.gymsum): two tensors, scale 2^20,
/// weight total 3, the sum of 1·round(x·2^20) and 2·round(y·2^20) for the values below.
fn kat() -> SumFile {
    let x = [0.5f64, -0.25, 1.0, 0.0, 0.125];
    let y = [0.25f64, 0.75, -1.0, 2.0, -0.5];
    let mut sum = fixed::contribution(&x, 1, 20);
    fixed::add_into(&mut sum, &fixed::contribution(&y, 2, 20));
    SumFile {
        layout: Layout {
            tensors: vec![
                ("a.lora_A.weight".into(), Dtype::F32, vec![2, 2]),
                ("b.lora_B.weight".into(), Dtype::Bf16, vec![1]),
            ],
            adapter_config: None,
            base_hash: Some("ab".repeat(32)),
        },
        scale: 20,
        total_weight: 3,
        timestamp: "2026-01-01T00:00:00Z".into(),
        round: 7,
        record: serde_json::json!({"format": "gym-ring-result/2"}),
        sum,
        digest: [0; 32],
    }
}

const KAT: &[u8] = include_bytes!("../../../testdata/ring/sum-kat.gymsum");

#[test]
fn the_known_answer_vector_encodes_and_decodes() {
    let k = kat();
    assert_eq!(k.sum, [1048576, 1310720, -1048576, 4194304, -917504]);
    let bytes = k.encode();
    if std::env::var_os("UPDATE_KAT").is_some() {
        std::fs::write("testdata/ring/sum-kat.gymsum", &bytes).unwrap();
    }
    assert_eq!(
        bytes, KAT,
        "encoding changed (UPDATE_KAT=1 rewrites the vector)"
    );
    let back = SumFile::decode(KAT, Path::new("kat")).unwrap();
    assert_eq!(back.sum, k.sum);
    assert_eq!((back.scale, back.total_weight, back.round), (20, 3, 7));
    assert_eq!(back.layout.digest(), k.layout.digest());
    assert_eq!(back.timestamp, k.timestamp);
    assert_eq!(
        hex::encode(back.digest),
        hex::encode(&KAT[KAT.len() - 32..])
    );
    let (input, _) = back.into_input(Path::new("kat")).unwrap();
    assert_eq!(input.weight, 3);
    // The mean of the largest element, 4194304 / (3 · 2^20) = 1.33…, is below 2^1.
    assert_eq!(input.values.exponent().unwrap(), 1);
    let mut c = vec![0; 5];
    input.values.contribution_into(0, 99, 33, None, &mut c);
    assert_eq!(c, k.sum, "a sum enters as it is, whatever weight and scale");
}

fn err(bytes: &[u8]) -> SumFileError {
    SumFile::decode(bytes, Path::new("s.gymsum")).unwrap_err()
}

/// `KAT` with its header replaced by `header` (and the digest recomputed).
fn with_header(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let h = u32::from_le_bytes(KAT[8..12].try_into().unwrap()) as usize;
    let mut v: serde_json::Value = serde_json::from_slice(&KAT[12..12 + h]).unwrap();
    edit(&mut v);
    let json = serde_json::to_vec(&v).unwrap();
    let mut b = MAGIC.to_vec();
    b.extend_from_slice(&(json.len() as u32).to_le_bytes());
    b.extend_from_slice(&json);
    b.extend_from_slice(&KAT[12 + h..KAT.len() - 32]);
    let d = digest_of(&b);
    b.extend_from_slice(&d);
    b
}

#[test]
fn every_error_has_its_crafted_input() {
    assert!(matches!(err(b"GYMS"), SumFileError::Truncated { .. }));
    assert!(matches!(
        err(b"GYMDELTA...."),
        SumFileError::NotSumFile { .. }
    ));
    assert!(matches!(err(&KAT[..10]), SumFileError::Truncated { .. }));
    assert!(matches!(
        err(&KAT[..KAT.len() - 1]),
        SumFileError::Truncated { .. }
    ));
    let mut long = KAT.to_vec();
    long.push(0);
    assert!(matches!(
        err(&long),
        SumFileError::Trailing { extra: 1, .. }
    ));
    let mut flipped = KAT.to_vec();
    let k = KAT.len() - 40;
    flipped[k] ^= 1;
    assert_eq!(err(&flipped).class(), ErrorClass::Checksum);
    let mut huge = KAT.to_vec();
    huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(err(&huge).to_string().contains("exceeds"));
    for (edit, what) in [
        (
            Box::new(|v: &mut serde_json::Value| v["format"] = "gym-ring-sum/9".into())
                as Box<dyn FnOnce(&mut serde_json::Value)>,
            "format",
        ),
        (Box::new(|v| v["scale_bits"] = 61.into()), "scale_bits 61"),
        (Box::new(|v| v["total_weight"] = "0".into()), "total_weight"),
        (Box::new(|v| v["elements"] = 6.into()), "5 elements"),
        (
            Box::new(|v| v["tensors"][1]["dtype"] = "I32".into()),
            "dtype",
        ),
        (
            Box::new(|v| v["tensors"][0]["shape"] = serde_json::json!([u64::MAX, 2])),
            "overflows",
        ),
        (Box::new(|v| v["surprise"] = 1.into()), "unknown field"),
    ] {
        let e = err(&with_header(edit));
        assert!(matches!(e, SumFileError::Header { .. }), "{what}: {e}");
        assert_eq!(e.class(), ErrorClass::Malformed);
        assert!(e.to_string().contains(what), "{what}: {e}");
    }
    // An element outside the bound (with a valid digest).
    let h = u32::from_le_bytes(KAT[8..12].try_into().unwrap()) as usize;
    let mut big = KAT[..KAT.len() - 32].to_vec();
    big[12 + h..12 + h + 8].copy_from_slice(&BOUND.to_le_bytes());
    let d = digest_of(&big);
    big.extend_from_slice(&d);
    assert!(matches!(
        err(&big),
        SumFileError::OutOfRange { index: 0, .. }
    ));
    // A weight total a leader cannot commit.
    let heavy = with_header(|v| v["total_weight"] = (1u64 << 40).to_string().into());
    let s = SumFile::decode(&heavy, Path::new("h")).unwrap();
    let e = s.into_input(Path::new("h")).unwrap_err();
    assert!(matches!(e, SumFileError::Weight { .. }), "{e}");
}

#[test]
fn writing_is_atomic_and_refuses_to_replace_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("g.gymsum");
    let d = kat().write(&p, false).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), KAT);
    assert_eq!(&d[..], &KAT[KAT.len() - 32..]);
    assert!(is_sum_file(&p));
    let e = kat().write(&p, false).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Exists);
    kat().write(&p, true).unwrap();
    assert!(!is_sum_file(dir.path()));
    assert_eq!(SumFile::read(&p).unwrap().sum, kat().sum);
}

proptest::proptest! {
    #[test]
    fn any_sum_round_trips(sum in proptest::collection::vec(-(BOUND - 1)..BOUND, 0..40),
                           scale in 0u32..=60, w in 1u64..=(1 << 32)) {
        let mut k = kat();
        k.layout.tensors = vec![("t".into(), Dtype::F64, vec![sum.len() as u64])];
        k.sum = sum;
        k.scale = scale;
        k.total_weight = w as u128;
        let b = k.encode();
        let back = SumFile::decode(&b, Path::new("p")).unwrap();
        proptest::prop_assert_eq!(back.encode(), b);
        proptest::prop_assert_eq!(back.sum, k.sum);
    }
}
