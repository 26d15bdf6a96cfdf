//! Writes the seed corpora of the network-decoder fuzz targets (`fuzz/corpus/ring_wire/`,
//! `fuzz/corpus/ring_handshake/`), from real frames:
//! - `ring_wire`: a real 3-member ring on loopback (plain, then hybrid) runs one all-reduce;
//!   its agreed transcript gives the signed commits, sketches and verdicts (receipts) exactly
//!   as they crossed the sockets, and its exact sum the payload of data messages; reveals and
//!   a view change carrying a commit as evidence complete the kinds.
//! - `ring_handshake`: `Hello`, `Accept`, `Finish` and a `Reject` from the handshake state
//!   machines with the fixture's fixed entropy (`gym::fuzzing`), so the targets can replay them.
//!
//! Run: `cargo run --example fuzz-seeds [OUT_DIR]` (default `fuzz/corpus`).
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gym::core::keys::Identity;
use gym::core::ring::config::{Member, RingSpec};
use gym::core::ring::crypto::{HandshakeError, reject_frame};
use gym::core::ring::fixed::Values;
use gym::core::ring::net::{JoinOptions, join_blocking};
use gym::core::ring::proto::{Input, Outcome};
use gym::core::ring::wire::{self, Body, DataHeader, Signed};
use gym::fuzzing;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("fuzz/corpus"));
    let wire_dir = out.join("ring_wire");
    let hs_dir = out.join("ring_handshake");
    std::fs::create_dir_all(&wire_dir)?;
    std::fs::create_dir_all(&hs_dir)?;
    let mut written = 0;
    for hybrid in [false, true] {
        let tag = if hybrid { "hybrid" } else { "plain" };
        let r = real_round(hybrid)?;
        for (name, m) in wire_messages(&r.ring, &r.ids, &r.outcome) {
            let mut b = vec![u8::from(hybrid)];
            b.extend_from_slice(&wire::encode(&m));
            write(&wire_dir, &format!("{tag}-{name}"), &b)?;
            written += 1;
        }
        for (name, b) in handshake_messages(hybrid) {
            write(&hs_dir, &format!("{tag}-{name}"), &b)?;
            written += 1;
        }
    }
    eprintln!("wrote {written} seeds under {}", out.display());
    Ok(())
}

fn write(dir: &Path, name: &str, b: &[u8]) -> std::io::Result<()> {
    std::fs::write(dir.join(name), b)
}

/// A finished round: its ring, the members' keys, member 0's outcome.
struct Round {
    ring: RingSpec,
    ids: Vec<Arc<Identity>>,
    outcome: Outcome,
}

/// One all-reduce of a small input among 3 members on loopback, each member on its own thread
/// over real sockets; returns member 0's agreed outcome.
fn real_round(hybrid: bool) -> Result<Round, Box<dyn std::error::Error>> {
    let fx = fuzzing::fixture(hybrid);
    let base = 20000 + (std::process::id() % 20000) as u16 + if hybrid { 10 } else { 0 };
    let members = fx
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| Member {
            id: id.public().worker_id(),
            address: format!("127.0.0.1:{}", base + i as u16),
            public: id.public(),
        })
        .collect();
    let ring = Arc::new(RingSpec::new(1, 64, members)?);
    let threads: Vec<_> = (0..fuzzing::MEMBERS)
        .map(|i| {
            let (ring, id) = (ring.clone(), fx.ids[i].clone());
            let values: Vec<f32> = (0..200)
                .map(|k| (k as f32 - 100.0) * 0.01 + i as f32)
                .collect();
            let input = Arc::new(Input {
                values: Values::F32(values),
                weight: 1 + i as u64,
                layout: [1; 32],
                input_digest: [i as u8 + 1; 32],
                timestamp: "2026-12-05T00:00:00Z".into(),
            });
            std::thread::spawn(move || {
                join_blocking(
                    ring,
                    i,
                    id,
                    input,
                    JoinOptions::default(),
                    Arc::new(|_: String| {}),
                )
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in threads {
        outcomes.push(t.join().expect("member thread")?.outcome);
    }
    let outcome = outcomes.swap_remove(0);
    Ok(Round {
        ring: (*ring).clone(),
        ids: fx.ids.clone(),
        outcome,
    })
}

/// Every kind of ring message: the transcript's own, plus data, reveal and view change signed
/// the way the protocol signs them.
fn wire_messages(ring: &RingSpec, ids: &[Arc<Identity>], o: &Outcome) -> Vec<(String, Signed)> {
    let digest = ring.digest();
    let hybrid = ring.is_hybrid();
    let mut v: Vec<(String, Signed)> = Vec::new();
    for (i, m) in o.commits.iter().enumerate() {
        v.push((format!("commit-{i}"), m.clone()));
    }
    for (i, m) in o.sketches.iter().enumerate() {
        v.push((format!("sketch-{i}"), m.clone()));
    }
    for (i, m) in o.receipts.iter().enumerate() {
        v.push((format!("verdict-{i}"), m.clone()));
    }
    let sign = |who: usize, body: Body, payload: Vec<i64>| {
        Signed::sign(
            &ids[who], &digest, hybrid, who as u16, o.view, body, payload,
        )
    };
    for (i, nonce) in o.nonces.iter().enumerate() {
        v.push((
            format!("reveal-{i}"),
            sign(i, Body::Reveal { nonce: *nonce }, vec![]),
        ));
    }
    for (phase, step) in [(wire::PHASE_SCATTER, 0u16), (wire::PHASE_GATHER, 1)] {
        let payload = o.sum[..64usize.min(o.sum.len())].to_vec();
        let header = DataHeader {
            phase,
            step,
            segment: 0,
            chunk: 1,
            digest: wire::payload_digest(&payload),
        };
        v.push((
            format!("data-{phase}"),
            sign(0, Body::Data(header), payload),
        ));
    }
    let evidence = vec![o.commits[2].header_only()];
    v.push((
        "view-change".into(),
        sign(1, Body::ViewChange { evidence }, vec![]),
    ));
    v
}

/// The handshake's messages as the fixture replays them, with their selector bytes.
fn handshake_messages(hybrid: bool) -> Vec<(String, Vec<u8>)> {
    let fx = fuzzing::fixture(hybrid);
    let h = if hybrid { fuzzing::HYBRID } else { 0 };
    let (ini, hello) = fuzzing::initiator(fx);
    let (_, accept) = fuzzing::responder(fx);
    let (finish, _) = ini.on_accept(&accept).expect("the fixture's accept");
    let reject = reject_frame(&HandshakeError::NotMember {
        key: "AAAA".into(),
        index: 7,
    });
    let with = |step: u8, b: &[u8]| {
        let mut v = vec![step | h];
        v.extend_from_slice(b);
        v
    };
    vec![
        ("hello".into(), with(fuzzing::STEP_HELLO, &hello)),
        ("accept".into(), with(fuzzing::STEP_ACCEPT, &accept)),
        ("reject".into(), with(fuzzing::STEP_ACCEPT, &reject)),
        ("finish".into(), with(fuzzing::STEP_FINISH, &finish)),
    ]
}
