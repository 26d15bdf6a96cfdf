//! Rings of real members on loopback: tokio driver, TCP, handshake, AEAD, delta files.

use std::sync::Arc;
use std::time::Duration;

use super::config::{Member, RingSpec};
use super::io::{load_input, write_output};
use super::net::{JoinOptions, join};
use crate::core::delta::{
    self, Compression, Dtype, Metadata, PackInput, PackOptions, TensorSource,
};
use crate::core::keys::Identity;

/// A port for a member to listen on. Taken below the kernel's ephemeral range (32768 and up on
/// Linux), so that no other test's `bind(0)` can be handed it between this check and the member's
/// own bind; spread by process id so concurrent test processes do not pick the same ones.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port =
            10_000 + (std::process::id().wrapping_mul(7919).wrapping_add(n * 13) % 22_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Two tensors: f32 [3, 5] and bf16 [7]; values depend on the member.
fn write_delta(dir: &std::path::Path, i: usize, id: &Identity) -> (std::path::PathBuf, Vec<f64>) {
    let a: Vec<f32> = (0..15)
        .map(|k| ((k * 7 + i * 13) % 23) as f32 / 16.0 - 0.6)
        .collect();
    let b: Vec<half::bf16> = (0..7)
        .map(|k| half::bf16::from_f32(((k + 3 * i) % 5) as f32 * 0.125 - 0.25))
        .collect();
    let ab: Vec<u8> = a.iter().flat_map(|v| v.to_le_bytes()).collect();
    let bb: Vec<u8> = b.iter().flat_map(|v| v.to_le_bytes()).collect();
    let inputs = vec![
        PackInput {
            name: "lora.a".into(),
            dtype: Dtype::F32,
            shape: vec![3, 5],
            data: TensorSource::Bytes(&ab),
        },
        PackInput {
            name: "lora.b".into(),
            dtype: Dtype::Bf16,
            shape: vec![7],
            data: TensorSource::Bytes(&bb),
        },
    ];
    let mut meta = Metadata::new(id.public().worker_id());
    meta.timestamp = format!("2024-01-0{}T00:00:00Z", i % 9 + 1);
    let opts = PackOptions {
        compression: Compression::Lz4,
        chunk_size: delta::DEFAULT_CHUNK_SIZE,
        metadata: meta,
        identity: Some(id),
    };
    let (bytes, _) = delta::pack_to_vec(&inputs, &opts).unwrap();
    let p = dir.join(format!("in{i}.delta"));
    std::fs::write(&p, bytes).unwrap();
    let mut vals: Vec<f64> = a.iter().map(|&v| v as f64).collect();
    vals.extend(b.iter().map(|v| v.to_f64()));
    (p, vals)
}

fn ring(n: usize) -> (Arc<RingSpec>, Vec<Arc<Identity>>) {
    ring_of(n, false)
}

/// A ring of `n` on loopback; `hybrid`: the same Ed25519 keys with ML-DSA-87 halves.
fn ring_of(n: usize, hybrid: bool) -> (Arc<RingSpec>, Vec<Arc<Identity>>) {
    let ids: Vec<Arc<Identity>> = (0..n)
        .map(|i| {
            let pq = [i as u8 + 140; 32];
            Arc::new(Identity::from_seeds(
                &[i as u8 + 40; 32],
                hybrid.then_some(&pq),
            ))
        })
        .collect();
    let members = ids
        .iter()
        .map(|id| Member {
            id: id.public().worker_id(),
            address: format!("127.0.0.1:{}", free_port()),
            public: id.public(),
        })
        .collect();
    (Arc::new(RingSpec::new(3, 4, members).unwrap()), ids)
}

/// A member's input values and its weight.
type Weighted = (Vec<f64>, u64);

/// Runs a round of `spec` on loopback with the inputs of [`write_delta`] (member `i` with
/// weight `i + 1`); returns every member's output file and the inputs' values and weights.
fn run_loopback(
    rt: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    spec: &Arc<RingSpec>,
    ids: &[Arc<Identity>],
) -> (Vec<Vec<u8>>, Vec<Weighted>) {
    let n = spec.len();
    let mut handles = Vec::new();
    let mut expected_vals = Vec::new();
    let mut layouts = Vec::new();
    #[allow(clippy::needless_range_loop)] // i is the member index
    for i in 0..n {
        let (p, vals) = write_delta(dir, i, &ids[i]);
        let w = i as u64 + 1;
        expected_vals.push((vals, w));
        let (input, layout) = load_input(&p, w).unwrap();
        layouts.push(layout);
        let opts = JoinOptions {
            step_timeout: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(20),
            listen: None,
        };
        handles.push(rt.spawn(join(
            spec.clone(),
            i,
            ids[i].clone(),
            Arc::new(input),
            opts,
            Arc::new(|_| {}),
        )));
    }
    let mut files = Vec::new();
    for (i, h) in handles.into_iter().enumerate() {
        let o = rt.block_on(h).unwrap().unwrap().outcome;
        assert_eq!(o.members, (0..n).collect::<Vec<_>>());
        let out = dir.join(format!("out{i}.delta"));
        write_output(&out, false, spec, &layouts[i], &o).unwrap();
        files.push(std::fs::read(&out).unwrap());
    }
    (files, expected_vals)
}

/// The tensors of a delta file: (name, dtype, shape, bytes).
fn tensors(file: &[u8]) -> Vec<(String, Dtype, Vec<u64>, Vec<u8>)> {
    let report = delta::read_bytes(file, &Default::default()).unwrap();
    let d = &report.delta;
    let src: &[u8] = file;
    d.tensors
        .iter()
        .map(|t| {
            let mut raw = Vec::new();
            delta::read_tensor(&src, d, t, |b| raw.extend_from_slice(b)).unwrap();
            (t.name.clone(), t.dtype, t.shape.clone(), raw)
        })
        .collect()
}

#[test]
fn loopback_rings_write_identical_exact_means() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for n in [2usize, 3, 5, 8] {
        let dir = tempfile::tempdir().unwrap();
        let (spec, ids) = ring(n);
        let (files, expected_vals) = run_loopback(&rt, dir.path(), &spec, &ids);
        for f in &files[1..] {
            assert_eq!(f, &files[0], "ring of {n}: outputs differ");
        }
        // The output equals the weighted mean, rounded once to each tensor's dtype.
        let report = delta::read_bytes(&files[0], &Default::default()).unwrap();
        let tw: f64 = expected_vals.iter().map(|(_, w)| *w as f64).sum();
        let mean: Vec<f64> = (0..22)
            .map(|k| {
                expected_vals
                    .iter()
                    .map(|(v, w)| v[k] * *w as f64)
                    .sum::<f64>()
                    / tw
            })
            .collect();
        let d = &report.delta;
        let src: &[u8] = &files[0];
        let mut got = Vec::new();
        for t in &d.tensors {
            delta::read_tensor(&src, d, t, |raw| {
                let w = (t.dtype.bits() / 8) as usize;
                got.extend(raw.chunks_exact(w).map(|e| t.dtype.element_f64(e).unwrap()));
            })
            .unwrap();
        }
        for k in 0..15 {
            assert_eq!(got[k], mean[k] as f32 as f64, "ring of {n}, element {k}");
        }
        for k in 15..22 {
            assert_eq!(
                got[k],
                half::bf16::from_f64(mean[k]).to_f64(),
                "element {k}"
            );
        }
        let ring = &d.metadata.extra.as_ref().unwrap()["ring"];
        assert_eq!(ring["members"].as_array().unwrap().len(), n);
        assert_eq!(ring["view"], 0);
    }
}

#[test]
fn an_outsider_is_refused_over_tcp_before_any_data() {
    use super::crypto::HandshakeError;
    use super::net::{RingNetError, connect};
    use crate::core::error::{Classify, ErrorClass};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (spec, ids) = ring(2);
    let (p, _) = write_delta(dir.path(), 0, &ids[0]);
    let (input, _) = load_input(&p, 1).unwrap();
    let opts = JoinOptions {
        step_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(3),
        listen: None,
    };
    let member = rt.spawn(join(
        spec.clone(),
        0,
        ids[0].clone(),
        Arc::new(input),
        opts,
        Arc::new(|_| {}),
    ));
    // An outsider claims to be member 1 and dials member 0.
    let outsider = Arc::new(Identity::from_seeds(&[99; 32], None));
    // It uses the real ring file (same digest), so only its key gives it away.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let e = rt
        .block_on(connect(spec.clone(), 1, outsider, 0, deadline))
        .err()
        .expect("refused");
    match &e {
        RingNetError::Handshake {
            source: HandshakeError::Rejected { class, reason },
            ..
        } => {
            assert_eq!(*class, ErrorClass::Untrusted);
            assert!(reason.contains("not a member"), "{reason}");
        }
        other => panic!("{other}"),
    }
    assert_eq!(e.class(), ErrorClass::Untrusted);
    // Member 0 never reached member 1 and says why (the refusal, or the failed dial).
    let r = rt.block_on(member).unwrap();
    assert!(
        matches!(
            r,
            Err(RingNetError::Refused { .. } | RingNetError::Connect { member: 1, .. })
        ),
        "{r:?}"
    );
}

/// Member 0 is driven by hand: it runs an honest machine, but corrupts the payload of its first
/// data message after signing it, then crashes. The other members check it on their reader
/// tasks, refuse it (the round's state is untouched), see the connection drop and finish
/// without member 0.
#[test]
fn a_tampered_data_frame_is_refused_on_the_reader_task_and_the_ring_goes_on() {
    use super::net::{Event, connect, spawn_connection};
    use super::proto::{Machine, Verifier};
    use super::wire::{self, Body};
    use tokio::sync::mpsc;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let n = 4;
    let dir = tempfile::tempdir().unwrap();
    let (spec, ids) = ring(n);
    let notes: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let mut inputs = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let (p, _) = write_delta(dir.path(), i, id);
        inputs.push(Arc::new(load_input(&p, 1).unwrap().0));
    }
    let opts = JoinOptions {
        step_timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(30),
        listen: None,
    };
    let honest: Vec<_> = (1..n)
        .map(|i| {
            let notes = notes.clone();
            rt.spawn(join(
                spec.clone(),
                i,
                ids[i].clone(),
                inputs[i].clone(),
                opts,
                Arc::new(move |s| notes.lock().unwrap().push(s)),
            ))
        })
        .collect();
    rt.block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<Event>();
        let verifier = Verifier::new(spec.clone());
        let mut senders = std::collections::HashMap::new();
        let mut writers = Vec::new();
        for peer in 1..n {
            let (stream, session) = connect(spec.clone(), 0, ids[0].clone(), peer, deadline)
                .await
                .unwrap();
            let (tx, w) = spawn_connection(stream, session, verifier.clone(), ev_tx.clone());
            senders.insert(peer, tx);
            writers.push(w);
        }
        let mut m =
            Machine::new(spec.clone(), 0, ids[0].clone(), inputs[0].clone(), [9; 32]).unwrap();
        let mut outs = m.start();
        'run: loop {
            for o in outs.drain(..) {
                if let Body::Data(_) = wire::decode(&o.bytes, false).unwrap().body {
                    let mut bad = o.bytes.to_vec();
                    *bad.last_mut().unwrap() ^= 0x40;
                    senders[&o.to].send(Arc::new(bad)).unwrap();
                    break 'run;
                }
                senders[&o.to].send(o.bytes).unwrap();
            }
            match ev_rx.recv().await {
                Some(Event::Msg(c)) => outs = m.handle_checked((*c).unwrap()).unwrap(),
                other => panic!("member 0 lost the ring early: {}", other.is_some()),
            }
        }
        // Crash: the queued frames (the tampered one last) go out, then the sockets close.
        drop(senders);
        for w in writers {
            w.await.unwrap();
        }
    });
    let mut digests = Vec::new();
    for h in honest {
        let o = rt.block_on(h).unwrap().unwrap().outcome;
        assert_eq!(o.members, vec![1, 2, 3]);
        assert!(o.excluded.iter().any(|e| e.member == 0), "{:?}", o.excluded);
        digests.push(o.result_digest);
    }
    assert!(digests.iter().all(|d| *d == digests[0]));
    let notes = notes.lock().unwrap();
    assert!(
        notes
            .iter()
            .any(|s| s.starts_with("refused:") && s.contains("does not match its digest")),
        "{notes:?}"
    );
}

#[test]
fn a_hybrid_loopback_ring_writes_the_same_tensors_as_an_ed25519_ring() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let n = 3;
    let (plain_dir, hybrid_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (plain, plain_ids) = ring_of(n, false);
    let (hybrid, hybrid_ids) = ring_of(n, true);
    assert!(hybrid.is_hybrid() && !plain.is_hybrid());
    let (plain_files, _) = run_loopback(&rt, plain_dir.path(), &plain, &plain_ids);
    let (hybrid_files, _) = run_loopback(&rt, hybrid_dir.path(), &hybrid, &hybrid_ids);
    for f in &hybrid_files[1..] {
        assert_eq!(f, &hybrid_files[0], "hybrid ring: outputs differ");
    }
    // The same inputs (signed by the same Ed25519 keys), the same mean: only the record differs.
    let t = tensors(&hybrid_files[0]);
    assert_eq!(t.len(), 2);
    assert_eq!(t, tensors(&plain_files[0]));
    // The record keeps every receipt's ML-DSA-87 signature, and the audit verifies both halves.
    let report = delta::read_bytes(&hybrid_files[0], &Default::default()).unwrap();
    let rec = &report.delta.metadata.extra.as_ref().unwrap()["ring"];
    for m in rec["members"].as_array().unwrap() {
        let pq = crate::core::keys::unb64(m["receipt_ml_dsa_87"].as_str().unwrap()).unwrap();
        assert_eq!(pq.len(), crate::core::keys::MLDSA87_SIGNATURE_LEN);
    }
    let path = hybrid_dir.path().join("out0.delta");
    let rep = super::audit::audit(&path, Some((&hybrid, std::path::Path::new("r"))), &[]).unwrap();
    assert!(rep.ok(), "{:?}", rep.findings);
    assert_eq!(rep.receipts_verified, n);
}
