//! Entry points of the network-decoder fuzz targets (`fuzz/fuzz_targets/ring_wire.rs`,
//! `ring_handshake.rs`). Each takes arbitrary bytes, drives one decoder as the ring's network
//! driver would, and panics only when a property fails. The same functions run over the
//! committed corpus (`fuzz/corpus/<target>/`) in `cargo test` on the stable toolchain, so the
//! corpus stays valid as the formats change. `cargo run --example fuzz-seeds` rewrites the
//! seeds from a real loopback ring.
//!
//! The first input byte selects the variant (hybrid ring or not, which handshake step); the
//! rest is the frame, exactly as it arrives in a length-prefixed frame on the socket (after
//! decryption, for ring messages).

use std::sync::{Arc, OnceLock};

use crate::core::keys::Identity;
use crate::core::ring::config::{Member, RingSpec};
use crate::core::ring::crypto::{Initiator, Responder};
use crate::core::ring::wire;

/// Members of the fuzzing ring (member 0 dials member 1).
pub const MEMBERS: usize = 3;
/// Entropy of the fixture's initiator (member 0) and responder (member 1): fixed, so that a
/// recorded `Accept` or `Finish` seed matches the state the target rebuilds.
pub const INITIATOR_ENTROPY: [u8; 96] = [7; 96];
pub const RESPONDER_ENTROPY: [u8; 64] = [9; 64];

/// Selector bit: the ring is hybrid (Ed25519 + ML-DSA-87).
pub const HYBRID: u8 = 0x80;
/// Handshake step selectors (low bits of the first byte, modulo 3).
pub const STEP_HELLO: u8 = 0;
pub const STEP_ACCEPT: u8 = 1;
pub const STEP_FINISH: u8 = 2;

/// A ring of [`MEMBERS`] with keys from fixed seeds.
pub struct Fixture {
    pub ring: Arc<RingSpec>,
    pub ids: Vec<Arc<Identity>>,
}

fn build(hybrid: bool) -> Fixture {
    let ids: Vec<Arc<Identity>> = (0..MEMBERS)
        .map(|i| {
            let pq = [i as u8 + 101; 32];
            Arc::new(Identity::from_seeds(
                &[i as u8 + 1; 32],
                hybrid.then_some(&pq),
            ))
        })
        .collect();
    let members = ids
        .iter()
        .enumerate()
        .map(|(i, id)| Member {
            id: id.public().worker_id(),
            address: format!("127.0.0.1:{}", 7000 + i),
            public: id.public(),
        })
        .collect();
    let ring = RingSpec::new(0, 64, members).expect("a valid fixture ring");
    Fixture {
        ring: Arc::new(ring),
        ids,
    }
}

/// The fuzzing ring, hybrid or not (built once).
pub fn fixture(hybrid: bool) -> &'static Fixture {
    static PLAIN: OnceLock<Fixture> = OnceLock::new();
    static HYB: OnceLock<Fixture> = OnceLock::new();
    if hybrid {
        HYB.get_or_init(|| build(true))
    } else {
        PLAIN.get_or_init(|| build(false))
    }
}

/// `ring_wire`: `flags ‖ frame`; bit 0 of `flags`: hybrid. Properties: decoding never panics;
/// a frame that decodes is canonical (re-encoding gives the same bytes); `decode_split` agrees
/// with `decode` and locates the payload; checking the signature never panics.
pub fn ring_wire(data: &[u8]) {
    let Some((&flags, frame)) = data.split_first() else {
        return;
    };
    let hybrid = flags & 1 == 1;
    let split = wire::decode_split(frame, hybrid);
    match wire::decode(frame, hybrid) {
        Ok(m) => {
            assert_eq!(
                wire::encode(&m),
                frame,
                "a decoded frame re-encodes unchanged"
            );
            let (header, range) = split.expect("decode_split accepts what decode accepts");
            assert_eq!(header, m.header_only());
            if range.is_empty() {
                assert!(m.payload.is_empty(), "only data messages carry a payload");
            } else {
                let raw = wire::unpack_frame(frame, range, hybrid)
                    .expect("a payload that decodes unpacks");
                assert_eq!(
                    wire::get_le(&raw[wire::data_prefix(hybrid)..]).collect::<Vec<_>>(),
                    m.payload,
                    "the unpacked frame holds the payload"
                );
            }
            let fx = fixture(hybrid);
            if let Some(member) = fx.ring.members.get(m.sender as usize) {
                let _ = m.verify(&fx.ring.digest(), &member.public);
            }
        }
        Err(e) => {
            // decode_split leaves the packed payload undecoded: it may accept a data frame
            // whose payload is corrupt, and then unpacking it must fail
            if let Ok((_, range)) = split {
                assert!(
                    !range.is_empty(),
                    "decode_split accepted what decode refused"
                );
                assert!(wire::unpack_frame(frame, range, hybrid).is_err());
            }
            assert!(!e.to_string().is_empty());
        }
    }
}

/// `ring_handshake`: `selector ‖ message`. The selector's top bit picks a hybrid ring; its
/// low bits (mod 3) the step: the responder (member 1) consuming a `Hello`, the initiator
/// (member 0, dialling member 1) consuming an `Accept`, or the responder consuming a `Finish`
/// after the fixture's own `Hello`. Properties: never a panic; what is accepted names the
/// expected peer.
pub fn ring_handshake(data: &[u8]) {
    let Some((&sel, msg)) = data.split_first() else {
        return;
    };
    let fx = fixture(sel & HYBRID != 0);
    match (sel & !HYBRID) % 3 {
        STEP_HELLO => {
            if let Ok((resp, accept)) =
                Responder::on_hello(fx.ring.clone(), 1, &fx.ids[1], msg, &RESPONDER_ENTROPY)
            {
                assert!(resp.peer() < MEMBERS && resp.peer() != 1);
                assert!(!accept.is_empty());
            }
        }
        STEP_ACCEPT => {
            let (ini, _) = initiator(fx);
            if let Ok((finish, session)) = ini.on_accept(msg) {
                assert_eq!(session.peer, 1);
                assert!(!finish.is_empty());
            }
        }
        _ => {
            let (resp, _) = responder(fx);
            if let Ok(session) = resp.on_finish(msg) {
                assert_eq!(session.peer, 0);
            }
        }
    }
}

/// Member 0 dialling member 1, with the fixed entropy: the initiator and its `Hello`.
pub fn initiator(fx: &Fixture) -> (Initiator, Vec<u8>) {
    Initiator::start(fx.ring.clone(), 0, fx.ids[0].clone(), 1, &INITIATOR_ENTROPY)
}

/// Member 1 after answering [`initiator`]'s `Hello`: the responder and its `Accept`.
pub fn responder(fx: &Fixture) -> (Responder, Vec<u8>) {
    let (_, hello) = initiator(fx);
    Responder::on_hello(fx.ring.clone(), 1, &fx.ids[1], &hello, &RESPONDER_ENTROPY)
        .expect("the fixture's own hello is accepted")
}

/// The `ring_sumfile` target: arbitrary bytes to the sum-file reader. No panic; anything it
/// accepts re-encodes to a file that decodes to the same content, and that re-encoding is
/// stable (the header's JSON may have been spelled differently).
pub fn ring_sumfile(data: &[u8]) {
    use crate::core::ring::sumfile::SumFile;
    let p = std::path::Path::new("fuzz");
    if let Ok(s) = SumFile::decode(data, p) {
        let again = s.encode();
        let back = SumFile::decode(&again, p).expect("a re-encoding decodes");
        assert_eq!(
            (&back.sum, back.scale, back.total_weight),
            (&s.sum, s.scale, s.total_weight)
        );
        assert_eq!(back.layout.digest(), s.layout.digest());
        assert_eq!(back.encode(), again);
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn corpus(target: &str) -> Vec<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(target);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("corpus entry").path())
            .collect();
        files.sort();
        files
    }

    /// Every committed seed runs through its target, and the seeds still reach the accepting
    /// paths (a format change that made them all invalid would leave the fuzzer blind).
    #[test]
    fn committed_wire_corpus_decodes() {
        let files = corpus("ring_wire");
        assert!(
            files.len() >= 8,
            "seeds: run `cargo run --example fuzz-seeds`"
        );
        let mut accepted = 0;
        for f in &files {
            let data = std::fs::read(f).unwrap();
            super::ring_wire(&data);
            accepted += usize::from(
                data.split_first()
                    .is_some_and(|(h, b)| crate::core::ring::wire::decode(b, h & 1 == 1).is_ok()),
            );
        }
        assert!(
            accepted >= 8,
            "only {accepted} seeds decode: regenerate with `cargo run --example fuzz-seeds`"
        );
    }

    #[test]
    fn committed_handshake_corpus_runs() {
        let files = corpus("ring_handshake");
        assert!(
            files.len() >= 6,
            "seeds: run `cargo run --example fuzz-seeds`"
        );
        for f in &files {
            super::ring_handshake(&std::fs::read(f).unwrap());
        }
    }

    /// The recorded handshake seeds are accepted by the state the target rebuilds: the fixed
    /// entropy makes `Accept` and `Finish` replayable.
    #[test]
    fn handshake_seeds_complete_a_handshake() {
        for hybrid in [false, true] {
            let fx = super::fixture(hybrid);
            let (ini, hello) = super::initiator(fx);
            let (resp, accept) = super::responder(fx);
            assert_eq!(hello.len(), crate::core::ring::crypto::HELLO_LEN);
            let (finish, s0) = ini.on_accept(&accept).expect("accept");
            let s1 = resp.on_finish(&finish).expect("finish");
            assert_eq!((s0.peer, s1.peer), (1, 0));
        }
    }

    #[test]
    fn committed_sumfile_corpus_decodes() {
        let files = corpus("ring_sumfile");
        assert!(!files.is_empty());
        for f in &files {
            let data = std::fs::read(f).unwrap();
            super::ring_sumfile(&data);
            let p = Path::new("seed");
            assert!(crate::core::ring::sumfile::SumFile::decode(&data, p).is_ok());
        }
    }
}
