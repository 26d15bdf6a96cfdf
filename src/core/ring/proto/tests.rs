//! N machines driven message by message in memory: no sockets, no clocks. A "timeout" is fired
//! by the harness when no message is left in flight.

use std::collections::VecDeque;

use super::*;
use crate::core::ring::config::tests::{hybrid_spec, spec};

pub(crate) fn input(member: usize, len: usize, weight: u64) -> Input {
    // Deterministic f32-representable values in (-1, 1), different per member.
    let mut x = 0x9e3779b97f4a7c15u64 ^ (member as u64 + 1).wrapping_mul(0xbf58476d1ce4e5b9);
    let values = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (((x >> 40) as f64 / (1u64 << 24) as f64) * 2.0 - 1.0) as f32
        })
        .collect();
    Input {
        values: fixed::Values::F32(values),
        weight,
        layout: [1; 32],
        input_digest: [member as u8; 32],
        timestamp: format!("2024-01-0{}T00:00:00Z", member % 9 + 1),
    }
}

struct Net {
    machines: Vec<Machine>,
    inputs: Vec<Arc<Input>>,
    queue: VecDeque<(usize, Out)>,
    /// Members whose traffic is dropped once `silent_after` messages have been delivered.
    silent: Vec<usize>,
    silent_after: usize,
    delivered: usize,
    refused: Vec<String>,
}

impl Net {
    fn new(n: usize, len: usize, chunk: u32) -> Self {
        Self::new_of(n, len, chunk, false)
    }

    /// [`Net::new`] of a hybrid ring when `hybrid` (the same Ed25519 keys, with ML-DSA-87).
    fn new_of(n: usize, len: usize, chunk: u32, hybrid: bool) -> Self {
        Self::new_quantized(n, len, chunk, hybrid, None)
    }

    /// [`Net::new_of`] of a ring that quantizes to `quant` bits.
    fn new_quantized(
        n: usize,
        len: usize,
        chunk: u32,
        hybrid: bool,
        quant: Option<crate::core::ring::quant::Bits>,
    ) -> Self {
        let (mut s, ids) = if hybrid { hybrid_spec(n) } else { spec(n) };
        s = RingSpec::new(0, chunk, s.members.clone())
            .unwrap()
            .with_quantize(quant);
        let ring = Arc::new(s);
        let inputs: Vec<Arc<Input>> = (0..n)
            .map(|i| Arc::new(input(i, len, i as u64 % 3 + 1)))
            .collect();
        let machines = ids
            .into_iter()
            .enumerate()
            .map(|(i, id)| {
                Machine::new(
                    ring.clone(),
                    i,
                    Arc::new(id),
                    inputs[i].clone(),
                    [i as u8 + 100; 32],
                )
                .unwrap()
            })
            .collect();
        Net {
            machines,
            inputs,
            queue: VecDeque::new(),
            silent: Vec::new(),
            silent_after: 0,
            delivered: 0,
            refused: Vec::new(),
        }
    }

    fn is_silent(&self, m: usize) -> bool {
        self.silent.contains(&m) && self.delivered >= self.silent_after
    }

    fn run(&mut self) {
        for i in 0..self.machines.len() {
            for o in self.machines[i].start() {
                self.queue.push_back((i, o));
            }
        }
        self.run_queue();
    }

    /// Delivers the queued messages (and fires timeouts) until every machine has finished.
    fn run_queue(&mut self) {
        for _round in 0..50 {
            while let Some((from, o)) = self.queue.pop_front() {
                if self.is_silent(from) || self.is_silent(o.to) {
                    continue;
                }
                self.delivered += 1;
                match self.machines[o.to].handle(from, &o.bytes) {
                    Ok(outs) => self.queue.extend(outs.into_iter().map(|x| (o.to, x))),
                    Err(e) => self.refused.push(e.to_string()),
                }
            }
            let live: Vec<usize> = (0..self.machines.len())
                .filter(|&i| !self.is_silent(i) && !self.machines[i].is_finished())
                .collect();
            if live.is_empty() {
                return;
            }
            for i in live {
                for o in self.machines[i].on_timeout() {
                    self.queue.push_back((i, o));
                }
            }
        }
        panic!("no outcome after 50 timeouts");
    }

    fn outcome(&self, i: usize) -> &Outcome {
        match self.machines[i].outcome() {
            Some(Ok(o)) => o,
            other => panic!("member {i}: {other:?}"),
        }
    }

    /// Every listed member has the same outcome, equal to the direct exact sum of `members`.
    fn check(&self, survivors: &[usize]) {
        let o0 = self.outcome(survivors[0]);
        assert_eq!(o0.members, survivors);
        let wide: Vec<Vec<f64>> = survivors
            .iter()
            .map(|&j| {
                let v = &self.inputs[j].values;
                (0..v.len()).map(|k| v.get(k)).collect()
            })
            .collect();
        let ins: Vec<(&[f64], u64)> = survivors
            .iter()
            .zip(&wide)
            .map(|(&j, v)| (v.as_slice(), self.inputs[j].weight))
            .collect();
        let quant = self.machines[0].member.ring.quantize;
        assert_eq!(
            o0.sum,
            fixed::direct_sum_of(&ins, o0.scale, quant),
            "exact sum"
        );
        let tw: u128 = ins.iter().map(|(_, w)| *w as u128).sum();
        assert_eq!(o0.total_weight, tw);
        // Lossless: the exact mean; quantized: within half a step of the largest block step
        // (inputs in (−1, 1): at most 2^(1−BITS)).
        let tol = quant.map_or(1e-12, |b| 2f64.powi(1 - b.get() as i32));
        for k in 0..o0.sum.len() {
            let exact = ins.iter().map(|(x, w)| x[k] * *w as f64).sum::<f64>() / tw as f64;
            assert!((o0.mean(k) - exact).abs() <= tol);
        }
        assert_eq!(o0.receipts.len(), survivors.len());
        for &i in survivors {
            let o = self.outcome(i);
            assert_eq!(o.sum, o0.sum);
            assert_eq!(o.result_digest, o0.result_digest);
            assert_eq!(o.view, o0.view);
            assert_eq!(o.seed, o0.seed);
        }
    }
}

#[test]
fn rings_of_2_3_5_8_agree_on_the_exact_mean() {
    for (n, len, chunk) in [
        (2, 10, 3),
        (3, 100, 7),
        (5, 1000, 64),
        (8, 37, 2),
        (4, 3, 1),
    ] {
        let mut net = Net::new(n, len, chunk);
        net.run();
        assert!(net.refused.is_empty(), "{:?}", net.refused);
        let all: Vec<usize> = (0..n).collect();
        net.check(&all);
        assert_eq!(net.outcome(0).view, 0);
    }
}

/// When every chunk starts on a leaf boundary, `D(S)` is assembled from the leaf digests of
/// the checked and sent all-gather payloads; it must be the digest of the whole sum.
#[test]
fn the_sum_digest_from_payload_leaves_is_the_digest_of_the_sum() {
    let leaf = wire::LEAF_ELEMENTS;
    for (n, len, chunk, from_leaves) in [
        (3, 3 * 2 * leaf, 2 * leaf as u32, true),
        (4, 4 * 3 * leaf, 2 * leaf as u32, true),
        // A ragged last leaf: segments 0..2048 and 2048..4097.
        (2, 2 * leaf + 1, leaf as u32, true),
        // Segment 1 starts inside a leaf: hashed from the bytes.
        (2, 2 * leaf + 200, leaf as u32, false),
        // Chunks of 1000 elements cut leaves: hashed from the bytes.
        (3, 3 * 2 * leaf, 1000, false),
    ] {
        let mut net = Net::new(n, len, chunk);
        net.run();
        assert!(net.refused.is_empty(), "{:?}", net.refused);
        let all: Vec<usize> = (0..n).collect();
        net.check(&all);
        for m in &net.machines {
            let o = m.outcome().unwrap().as_ref().unwrap();
            assert_eq!(
                o.sum_digest,
                wire::payload_digest(&o.sum),
                "n {n} len {len}"
            );
            let used = m.sum_digest_from_leaves;
            assert_eq!(used, from_leaves, "n {n} len {len} chunk {chunk}");
        }
    }
}

#[test]
fn a_corrupting_member_is_named_and_excluded() {
    for (n, bad) in [(3, 1), (4, 2), (5, 0), (2, 1)] {
        let mut net = Net::new(n, 50, 8);
        net.machines[bad].faults.corrupt_partial_sums = true;
        net.run();
        if n == 2 {
            // Nobody is left to average with.
            for i in 0..n {
                assert!(net.machines[i].outcome().unwrap().is_err());
            }
            continue;
        }
        let survivors: Vec<usize> = (0..n).filter(|&i| i != bad).collect();
        net.check(&survivors);
        let o = net.outcome(survivors[0]);
        assert_eq!(o.view, 1);
        assert_eq!(o.excluded.len(), 1, "{:?}", o.excluded);
        assert_eq!(o.excluded[0].member, bad);
        assert!(o.excluded[0].reason.contains("corrupted partial sum"));
        // The culprit itself learns it was excluded.
        assert!(matches!(
            net.machines[bad].outcome(),
            Some(Err(RingError::Excluded { view: 1 }))
        ));
    }
}

/// A quantized ring: every member reduces the quantized contributions (the exact sum of
/// `w · Q(x)`), and the sketch check still names a member that alters a partial sum.
#[test]
fn a_quantized_ring_sums_quantized_inputs_and_names_a_corrupting_member() {
    use crate::core::ring::quant::Bits;
    for (n, len, chunk, bits) in [(3, 200, 64, 8), (4, 130, 7, 2), (2, 64, 16, 16)] {
        let mut net = Net::new_quantized(n, len, chunk, false, Some(Bits::new(bits).unwrap()));
        net.run();
        assert!(net.refused.is_empty(), "{:?}", net.refused);
        let all: Vec<usize> = (0..n).collect();
        net.check(&all);
        // Quantization changed the sum (it is not the lossless one).
        let o = net.outcome(0);
        let wide: Vec<Vec<f64>> = (0..n)
            .map(|j| (0..len).map(|k| net.inputs[j].values.get(k)).collect())
            .collect();
        let ins: Vec<(&[f64], u64)> = (0..n)
            .map(|j| (wide[j].as_slice(), net.inputs[j].weight))
            .collect();
        assert_ne!(o.sum, fixed::direct_sum(&ins, o.scale));
    }
    for (n, bad) in [(3, 1), (4, 0)] {
        let mut net = Net::new_quantized(n, 300, 32, false, Some(Bits::new(8).unwrap()));
        net.machines[bad].faults.corrupt_partial_sums = true;
        net.run();
        let survivors: Vec<usize> = (0..n).filter(|&i| i != bad).collect();
        net.check(&survivors);
        let o = net.outcome(survivors[0]);
        assert_eq!(o.view, 1);
        assert_eq!(o.excluded.len(), 1, "{:?}", o.excluded);
        assert_eq!(o.excluded[0].member, bad);
        assert!(o.excluded[0].reason.contains("corrupted partial sum"));
    }
}

#[test]
fn a_silent_member_is_dropped_after_a_timeout() {
    // Silent from the start, and silent mid-reduce.
    for after in [0, 30] {
        let mut net = Net::new(4, 200, 16);
        net.silent = vec![2];
        net.silent_after = after;
        net.run();
        net.check(&[0, 1, 3]);
        let o = net.outcome(0);
        assert_eq!(o.view, 1);
        assert_eq!(o.excluded[0].member, 2);
    }
}

#[test]
fn a_lost_connection_triggers_a_view_change() {
    let mut net = Net::new(4, 200, 16);
    for i in 0..4 {
        for o in net.machines[i].start() {
            net.queue.push_back((i, o));
        }
    }
    // Deliver a few messages, then member 3 dies; everyone sees its connection break.
    for _ in 0..20 {
        let (from, o) = net.queue.pop_front().unwrap();
        if let Ok(outs) = net.machines[o.to].handle(from, &o.bytes) {
            net.queue.extend(outs.into_iter().map(|x| (o.to, x)));
        }
    }
    net.silent = vec![3];
    for i in 0..3 {
        for o in net.machines[i].peer_lost(3) {
            net.queue.push_back((i, o));
        }
    }
    while let Some((from, o)) = net.queue.pop_front() {
        if from == 3 || o.to == 3 {
            continue;
        }
        if let Ok(outs) = net.machines[o.to].handle(from, &o.bytes) {
            net.queue.extend(outs.into_iter().map(|x| (o.to, x)));
        }
    }
    net.check(&[0, 1, 2]);
    assert_eq!(net.outcome(0).excluded[0].reason, "connection lost");
}

#[test]
fn replays_stale_views_and_forgeries_are_refused() {
    let mut net = Net::new(3, 30, 4);
    let mut first: Vec<(usize, Out)> = Vec::new();
    for i in 0..3 {
        for o in net.machines[i].start() {
            first.push((i, o));
        }
    }
    // Deliver member 0's commit to member 1 twice.
    let (from, o) = first
        .iter()
        .find(|(f, o)| *f == 0 && o.to == 1)
        .unwrap()
        .clone();
    net.machines[1].handle(from, &o.bytes).unwrap();
    let e = net.machines[1].handle(from, &o.bytes).unwrap_err();
    assert!(matches!(e, Refused::Replay { sender: 0, .. }), "{e}");
    // The same bytes claimed by another member: refused.
    let e = net.machines[1].handle(2, &o.bytes).unwrap_err();
    assert!(matches!(e, Refused::WrongSender { .. }), "{e}");
    // A flipped bit breaks the signature.
    let mut bad = o.bytes.to_vec();
    bad[20] ^= 1;
    let e = net.machines[2].handle(0, &bad).unwrap_err();
    assert!(matches!(e, Refused::BadSignature { .. }), "{e}");
    // A data message whose payload was changed after signing: the signature (over the header
    // and its payload digest) still verifies, the digest check refuses it.
    let mut net3 = Net::new(3, 30, 4);
    let mut data = None;
    for i in 0..3 {
        for o in net3.machines[i].start() {
            net3.queue.push_back((i, o));
        }
    }
    while let Some((from, o)) = net3.queue.pop_front() {
        if data.is_none() && matches!(wire::decode(&o.bytes, false).unwrap().body, Body::Data(_)) {
            data = Some((from, o.clone()));
        }
        if let Ok(outs) = net3.machines[o.to].handle(from, &o.bytes) {
            net3.queue.extend(outs.into_iter().map(|x| (o.to, x)));
        }
        if data.is_some() {
            break;
        }
    }
    let (from, o) = data.expect("a data message");
    // A corrupted packed block is a typed decode error, before any state changes.
    let mut broken = o.bytes.to_vec();
    broken[wire::DATA_PREFIX] = 65;
    let e = net3.machines[o.to].handle(from, &broken).unwrap_err();
    assert!(
        matches!(
            &e,
            Refused::Decode {
                error: wire::WireError::Packed(crate::core::ring::codec::CodecError::Width {
                    block: 0,
                    width: 65
                }),
                ..
            }
        ),
        "{e}"
    );
    // Another payload under the same signed header.
    let mut m = wire::decode(&o.bytes, false).unwrap();
    m.payload[0] ^= 1;
    let tampered = wire::encode(&m);
    let e = Verifier::new(net3.machines[o.to].member.ring.clone())
        .check(from, &tampered)
        .unwrap_err();
    assert!(
        matches!(&e, Refused::Unexpected { what, .. } if what.contains("digest")),
        "{e}"
    );
    let e = net3.machines[o.to].handle(from, &tampered).unwrap_err();
    assert!(matches!(&e, Refused::Unexpected { .. }), "{e}");
    // A message of a ring with another digest (another ring file or round) does not verify.
    let (other, ids) = spec(3);
    let other = RingSpec::new(1, 4, other.members.clone()).unwrap();
    let forged = wire::Signed::sign(
        &ids[0],
        &other.digest(),
        false,
        0,
        0,
        Body::Reveal { nonce: [0; 32] },
        vec![],
    );
    let e = net.machines[2]
        .handle(0, &wire::encode(&forged))
        .unwrap_err();
    assert!(matches!(e, Refused::BadSignature { .. }), "{e}");

    // Run a round where member 1 dies, then replay an old-view message into view 1.
    let mut net = Net::new(4, 40, 4);
    net.silent = vec![1];
    net.run();
    net.check(&[0, 2, 3]);
    let (_, ids) = spec(4);
    let old = wire::Signed::sign(
        &ids[2],
        &net.machines[0].member.rd,
        false,
        2,
        0,
        Body::Reveal { nonce: [0; 32] },
        vec![],
    );
    let mut m = Machine::new(
        Arc::new(net.machines[0].member.ring.as_ref().clone()),
        0,
        Arc::new(Identity::from_seeds(&[1; 32], None)),
        net.inputs[0].clone(),
        [0; 32],
    )
    .unwrap();
    m.view.number = 1;
    let e = m.handle(2, &wire::encode(&old)).unwrap_err();
    assert!(
        matches!(
            e,
            Refused::Stale {
                view: 0,
                current: 1,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn a_hybrid_ring_gives_the_same_sum_and_refuses_a_bad_ml_dsa_half() {
    let (n, len, chunk) = (3, 50, 4);
    let mut plain = Net::new(n, len, chunk);
    plain.run();
    plain.check(&[0, 1, 2]);
    let mut hybrid = Net::new_of(n, len, chunk, true);
    hybrid.run();
    hybrid.check(&[0, 1, 2]);
    assert!(hybrid.refused.is_empty(), "{:?}", hybrid.refused);
    let (a, b) = (plain.outcome(0), hybrid.outcome(0));
    assert_eq!(a.sum, b.sum);
    assert_eq!(a.result_digest, b.result_digest);
    // Every kept message carries an ML-DSA-87 signature that verifies.
    let ring = hybrid.machines[0].member.ring.clone();
    for m in b.receipts.iter().chain(&b.commits).chain(&b.sketches) {
        assert_eq!(
            m.pq_sig.as_ref().map(Vec::len),
            Some(crate::core::keys::MLDSA87_SIGNATURE_LEN)
        );
        assert!(m.verify(&ring.digest(), &ring.members[m.sender as usize].public));
    }

    // A data frame whose Ed25519 signature is valid but whose ML-DSA-87 signature is not:
    // refused as a bad signature, and the machine's state is unchanged.
    let mut net = Net::new_of(n, 30, chunk, true);
    for i in 0..n {
        for o in net.machines[i].start() {
            net.queue.push_back((i, o));
        }
    }
    let mut data = None;
    while let Some((from, o)) = net.queue.pop_front() {
        if matches!(wire::decode(&o.bytes, true).unwrap().body, Body::Data(_)) {
            data = Some((from, o));
            break;
        }
        let outs = net.machines[o.to].handle(from, &o.bytes).unwrap();
        net.queue.extend(outs.into_iter().map(|x| (o.to, x)));
    }
    let (from, o) = data.expect("a data message");
    let mut bad = o.bytes.to_vec();
    // The last byte of the ML-DSA-87 signature, just before the payload count.
    bad[wire::DATA_PREFIX_HYBRID - 5] ^= 0x01;
    let m = wire::decode(&bad, true).unwrap();
    let d = wire::signing_digest(
        &ring.digest(),
        &wire::signed_part(m.sender, m.view, &m.body),
    );
    assert!(ring.members[from].public.verify_ed25519(&d, &m.sig));
    let e = net.machines[o.to].handle(from, &bad).unwrap_err();
    assert!(
        matches!(e, Refused::BadSignature { sender, kind: "data" } if sender == from),
        "{e}"
    );
    // The intact frame is still accepted (the refused one changed nothing), and the ring ends.
    let outs = net.machines[o.to].handle(from, &o.bytes).unwrap();
    net.queue.extend(outs.into_iter().map(|x| (o.to, x)));
    net.run_queue();
    net.check(&[0, 1, 2]);

    // A member of a hybrid ring needs its ML-DSA-87 key.
    let (spec, _) = hybrid_spec(2);
    let e = Machine::new(
        Arc::new(spec),
        1,
        Arc::new(Identity::from_seeds(&[2; 32], None)),
        Arc::new(input(1, 4, 1)),
        [0; 32],
    )
    .err()
    .unwrap();
    assert!(matches!(e, RingError::MlDsaKey { member: 1 }), "{e}");
}
