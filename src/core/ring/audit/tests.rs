//! Audits of real result files: members' signed input deltas on disk, a round run by N
//! machines in memory, the result written by `io::write_output`.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;
use crate::core::delta::{Compression, Dtype, Metadata, PackInput, PackOptions, TensorSource};
use crate::core::keys::Identity;
use crate::core::ring::config::tests::{hybrid_spec, spec};
use crate::core::ring::proto::Machine;

/// Member `i`'s values (f32, in (-0.5, 0.5)); `salt` makes a different delta.
fn values(i: usize, len: usize, salt: usize) -> Vec<f32> {
    (0..len)
        .map(|k| (((k * 2654435761 + i * 40503 + salt * 7) % 1000) as f32) / 1000.0 - 0.5)
        .collect()
}

fn write_input(path: &Path, id: &Identity, v: &[f32]) {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let inputs = [PackInput {
        name: "lora.w".into(),
        dtype: Dtype::F32,
        shape: vec![v.len() as u64],
        data: TensorSource::Bytes(&bytes),
    }];
    let opts = PackOptions {
        compression: Compression::None,
        chunk_size: delta::DEFAULT_CHUNK_SIZE,
        metadata: Metadata::new(id.public().worker_id()),
        identity: Some(id),
    };
    std::fs::write(path, delta::pack_to_vec(&inputs, &opts).unwrap().0).unwrap();
}

struct Round {
    _dir: tempfile::TempDir,
    ring: RingSpec,
    ids: Vec<Identity>,
    inputs: Vec<PathBuf>,
    result: PathBuf,
}

/// Runs one round of `n` members over `len` elements and writes the result.
fn round(n: usize, len: usize) -> Round {
    round_of(n, len, false)
}

/// [`round`] in a hybrid ring when `hybrid` (members with ML-DSA-87 keys).
fn round_of(n: usize, len: usize, hybrid: bool) -> Round {
    let dir = tempfile::tempdir().unwrap();
    let (s, ids) = if hybrid { hybrid_spec(n) } else { spec(n) };
    let ring = RingSpec::new(0, 16, s.members.clone()).unwrap();
    let shared = Arc::new(ring.clone());
    let mut inputs = Vec::new();
    let mut machines = Vec::new();
    let mut layout = None;
    for (i, id) in ids.iter().enumerate() {
        let p = dir.path().join(format!("in{i}.delta"));
        write_input(&p, id, &values(i, len, 0));
        let (input, l) = io::load_input(&p, i as u64 + 1).unwrap();
        layout = Some(l);
        // The same key as `ids[i]` (config::tests::spec_of).
        let pq = [i as u8 + 101; 32];
        let id = Identity::from_seeds(&[i as u8 + 1; 32], hybrid.then_some(&pq));
        machines.push(
            Machine::new(
                shared.clone(),
                i,
                Arc::new(id),
                Arc::new(input),
                [i as u8; 32],
            )
            .unwrap(),
        );
        inputs.push(p);
    }
    let mut queue = VecDeque::new();
    for (i, m) in machines.iter_mut().enumerate() {
        queue.extend(m.start().into_iter().map(|o| (i, o)));
    }
    while let Some((from, o)) = queue.pop_front() {
        let outs = machines[o.to].handle(from, &o.bytes).unwrap();
        queue.extend(outs.into_iter().map(|x| (o.to, x)));
    }
    let outcome = machines[0].take_outcome().unwrap().unwrap();
    let result = dir.path().join("out.delta");
    io::write_output(&result, false, &ring, &layout.unwrap(), &outcome).unwrap();
    Round {
        _dir: dir,
        ring,
        ids,
        inputs,
        result,
    }
}

/// Rewrites the result with `edit` applied to its ring record and `tensor` to its bytes, as a
/// valid (unsigned) delta file: what someone who edits a result and repacks it produces.
fn repack(path: &Path, edit: impl FnOnce(&mut serde_json::Value), tensor: impl FnOnce(&mut [u8])) {
    let bytes = std::fs::read(path).unwrap();
    let report = delta::read_bytes(&bytes, &Default::default()).unwrap();
    let d = &report.delta;
    let src: &[u8] = &bytes;
    let mut raw = Vec::new();
    delta::read_tensor(&src, d, &d.tensors[0], |b| raw.extend_from_slice(b)).unwrap();
    tensor(&mut raw);
    let mut meta = d.metadata.clone();
    edit(meta.extra.as_mut().unwrap().get_mut("ring").unwrap());
    let inputs = [PackInput {
        name: d.tensors[0].name.clone(),
        dtype: d.tensors[0].dtype,
        shape: d.tensors[0].shape.clone(),
        data: TensorSource::Bytes(&raw),
    }];
    let opts = PackOptions {
        compression: Compression::None,
        chunk_size: delta::DEFAULT_CHUNK_SIZE,
        metadata: meta,
        identity: None,
    };
    std::fs::write(path, delta::pack_to_vec(&inputs, &opts).unwrap().0).unwrap();
}

#[test]
fn an_honest_round_passes_with_every_input() {
    let r = round(3, 200);
    let rep = audit(
        &r.result,
        Some((&r.ring, Path::new("ring.toml"))),
        &r.inputs,
    )
    .unwrap();
    assert!(rep.ok(), "{:?}", rep.findings);
    assert_eq!(rep.keys, KeySource::RingFile);
    assert_eq!(rep.receipts_verified, 3);
    assert!(rep.exact_mean_checked);
    assert!(
        rep.members
            .iter()
            .all(|m| m.sketch_matches_input == Some(true))
    );
    // Without the ring file the recorded keys are used; without inputs no mean is checked.
    let rep = audit(&r.result, None, &[]).unwrap();
    assert!(rep.ok(), "{:?}", rep.findings);
    assert_eq!(rep.keys, KeySource::Record);
    assert!(!rep.exact_mean_checked);
    // One input: that member's sketch is checked, the mean is not.
    let rep = audit(&r.result, None, &r.inputs[1..2]).unwrap();
    assert!(rep.ok(), "{:?}", rep.findings);
    assert_eq!(rep.members[1].sketch_matches_input, Some(true));
    assert_eq!(rep.members[0].sketch_matches_input, None);
}

#[test]
fn a_false_sketch_signed_by_its_member_convicts_it() {
    let r = round(3, 200);
    // Member 2 publishes (and signs) a sketch that its committed input does not give: the
    // online check cannot tell this from a different input, the audit of its input can.
    let rd = r.ring.digest();
    let ids = &r.ids;
    repack(
        &r.result,
        |rec| {
            let m = &mut rec["members"][2];
            let b = keys::unb64(m["sketch"].as_str().unwrap()).unwrap();
            let mut msg = wire::decode(&b, false).unwrap();
            let Body::Sketch { mut sketches } = msg.body else {
                panic!("sketch")
            };
            sketches[1] = sketch::add(sketches[1], 1);
            msg = Signed::sign(
                &ids[2],
                &rd,
                false,
                2,
                msg.view,
                Body::Sketch { sketches },
                vec![],
            );
            m["sketch"] = keys::b64(&wire::encode(&msg)).into();
        },
        |_| {},
    );
    // Signatures and the record are fine; without inputs nothing shows.
    let rep = audit(&r.result, None, &[]).unwrap();
    assert!(rep.ok(), "{:?}", rep.findings);
    let rep = audit(&r.result, None, &r.inputs).unwrap();
    let err = rep.failure().unwrap();
    assert_eq!(err.class(), ErrorClass::Ring);
    let Finding::Convicted { index, path, .. } = &rep.findings[0] else {
        panic!("{:?}", rep.findings)
    };
    assert_eq!((*index, path), (2, &r.inputs[2]));
    assert!(err.to_string().contains("segment 1"), "{err}");
    assert_eq!(rep.members[2].sketch_matches_input, Some(false));
    assert_eq!(rep.members[0].sketch_matches_input, Some(true));
}

#[test]
fn another_signed_delta_of_a_member_convicts_it_and_strangers_are_named() {
    let r = round(2, 50);
    let dir = tempfile::tempdir().unwrap();
    let swapped = dir.path().join("other.delta");
    write_input(&swapped, &r.ids[1], &values(1, 50, 1));
    let rep = audit(&r.result, None, &[r.inputs[0].clone(), swapped.clone()]).unwrap();
    assert!(!rep.exact_mean_checked);
    assert!(
        matches!(&rep.findings[..], [Finding::Convicted { index: 1, path, .. }] if *path == swapped),
        "{:?}",
        rep.findings
    );
    // A delta signed by nobody in the ring: not a conviction, but the audit fails.
    let stranger = Identity::from_seeds(&[99; 32], None);
    write_input(&swapped, &stranger, &values(1, 50, 0));
    let rep = audit(&r.result, None, std::slice::from_ref(&swapped)).unwrap();
    assert!(matches!(&rep.findings[..], [Finding::UnknownInput { .. }]));
    assert_eq!(rep.failure().unwrap().class(), ErrorClass::Policy);
}

#[test]
fn tampered_receipts_records_and_tensors_are_found() {
    let r = round(3, 100);
    let original = std::fs::read(&r.result).unwrap();
    // A flipped receipt byte.
    repack(
        &r.result,
        |rec| {
            let m = &mut rec["members"][1];
            let mut b = keys::unb64(m["receipt"].as_str().unwrap()).unwrap();
            b[5] ^= 1;
            m["receipt"] = keys::b64(&b).into();
        },
        |_| {},
    );
    let rep = audit(&r.result, None, &[]).unwrap();
    assert_eq!(
        rep.findings,
        vec![Finding::BadSignature {
            index: 1,
            id: r.ring.members[1].id.clone(),
            message: "receipt"
        }]
    );
    assert_eq!(rep.failure().unwrap().class(), ErrorClass::Signature);
    // A changed weight in the record.
    std::fs::write(&r.result, &original).unwrap();
    repack(
        &r.result,
        |rec| rec["members"][0]["weight"] = 7.into(),
        |_| {},
    );
    let rep = audit(&r.result, None, &[]).unwrap();
    assert!(matches!(&rep.findings[..], [Finding::Inconsistent { .. }]));
    // Altered tensor data in a valid file: only the inputs show it.
    std::fs::write(&r.result, &original).unwrap();
    repack(&r.result, |_| {}, |b| b[4] ^= 0x40);
    assert!(audit(&r.result, None, &[]).unwrap().ok());
    let rep = audit(&r.result, None, &r.inputs).unwrap();
    assert!(
        matches!(&rep.findings[..], [Finding::Result { reason }] if reason.contains("element 1")),
        "{:?}",
        rep.findings
    );
    assert_eq!(rep.failure().unwrap().class(), ErrorClass::Checksum);
    // Altered bytes without repacking: the file itself fails to verify.
    let report = delta::read_bytes(&original, &Default::default()).unwrap();
    let mut data = Vec::new();
    let src: &[u8] = &original;
    delta::read_tensor(&src, &report.delta, &report.delta.tensors[0], |b| {
        data.extend_from_slice(b)
    })
    .unwrap();
    let at = original
        .windows(32)
        .position(|w| w == &data[..32])
        .expect("stored uncompressed");
    let mut raw = original.clone();
    raw[at + 8] ^= 1;
    std::fs::write(&r.result, &raw).unwrap();
    let err = audit(&r.result, None, &[]).unwrap_err();
    assert!(matches!(err, AuditError::Result { .. }), "{err}");
}

#[test]
fn wrong_ring_files_and_older_results_are_refused() {
    let r = round(2, 20);
    let (other, _) = spec(3);
    let err = audit(&r.result, Some((&other, Path::new("other.toml"))), &[]).unwrap_err();
    assert!(matches!(err, AuditError::WrongRing { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Policy);
    repack(
        &r.result,
        |rec| rec["format"] = "gym-ring-result/1".into(),
        |_| {},
    );
    let err = audit(&r.result, None, &[]).unwrap_err();
    assert!(err.to_string().contains("written by an older gym"), "{err}");
    assert_eq!(err.class(), ErrorClass::Unsupported);
}

#[test]
fn a_hybrid_round_audits_both_signature_halves() {
    let r = round_of(3, 100, true);
    let original = std::fs::read(&r.result).unwrap();
    let rep = audit(&r.result, Some((&r.ring, Path::new("r.toml"))), &r.inputs).unwrap();
    assert!(rep.ok(), "{:?}", rep.findings);
    assert_eq!(rep.receipts_verified, 3);
    assert!(rep.hybrid);
    assert!(rep.exact_mean_checked);
    let bad_sig = |index: usize, message: &'static str| Finding::BadSignature {
        index,
        id: r.ring.members[index].id.clone(),
        message,
    };
    // A flipped byte in a receipt's ML-DSA-87 signature (its Ed25519 signature intact).
    repack(
        &r.result,
        |rec| {
            let m = &mut rec["members"][2];
            let mut b = keys::unb64(m["receipt_ml_dsa_87"].as_str().unwrap()).unwrap();
            b[1000] ^= 0x20;
            m["receipt_ml_dsa_87"] = keys::b64(&b).into();
        },
        |_| {},
    );
    let rep = audit(&r.result, None, &[]).unwrap();
    assert_eq!(rep.findings, vec![bad_sig(2, "receipt")]);
    assert_eq!(rep.failure().unwrap().class(), ErrorClass::Signature);
    // A receipt without its ML-DSA-87 signature does not verify in a hybrid ring.
    std::fs::write(&r.result, &original).unwrap();
    repack(
        &r.result,
        |rec| {
            rec["members"][0]
                .as_object_mut()
                .unwrap()
                .remove("receipt_ml_dsa_87");
        },
        |_| {},
    );
    let rep = audit(&r.result, None, &[]).unwrap();
    assert_eq!(rep.findings, vec![bad_sig(0, "receipt")]);
    // A flipped byte in the ML-DSA-87 signature of a commit and of a sketch (wire encoding:
    // the last bytes of a commit or sketch message are its ML-DSA-87 signature).
    for (field, index) in [("commit", 1usize), ("sketch", 0)] {
        std::fs::write(&r.result, &original).unwrap();
        repack(
            &r.result,
            |rec| {
                let m = &mut rec["members"][index];
                let mut b = keys::unb64(m[field].as_str().unwrap()).unwrap();
                let at = b.len() - 10;
                b[at] ^= 0x01;
                m[field] = keys::b64(&b).into();
            },
            |_| {},
        );
        let rep = audit(&r.result, None, &[]).unwrap();
        assert!(
            rep.findings.contains(&bad_sig(index, field)),
            "{field}: {:?}",
            rep.findings
        );
        assert_eq!(rep.failure().unwrap().class(), ErrorClass::Signature);
    }
}
