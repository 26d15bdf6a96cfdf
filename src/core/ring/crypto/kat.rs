//! Known-answer tests: gym's ring transport against `testdata/ring/kat.json`, written by
//! `tools/reference/ring_kat.py` with independent implementations (kyber-py for ML-KEM-768,
//! dilithium-py for ML-DSA-87, OpenSSL through `cryptography` for X25519, Ed25519 and
//! AES-256-GCM, RFC 5869 over hashlib's SHA3-256 for HKDF). See docs/ring-protocol.md, "Test
//! vectors".

use std::sync::Arc;

use ml_kem::{Decapsulate as _, KeyExport as _, MlKem768};
use serde_json::Value;
use sha3::{Digest, Sha3_256};

use super::*;
use crate::core::delta;
use crate::core::keys::{self, Identity};
use crate::core::ring::config::{Member, RingSpec};
use crate::core::ring::wire::{self, Body, MLDSA_MSG_CONTEXT, Signed};

fn kat() -> Value {
    serde_json::from_str(include_str!("../../../../testdata/ring/kat.json")).expect("kat.json")
}

fn hx(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("hex")
}

fn arr<const N: usize>(v: &Value) -> [u8; N] {
    hx(v).try_into().expect("length")
}

fn cases<'a>(k: &'a Value, name: &str) -> &'a [Value] {
    let c = k[name].as_array().expect(name);
    assert!(!c.is_empty(), "no {name} cases");
    c
}

fn sha3(b: &[u8]) -> Vec<u8> {
    Sha3_256::digest(b).to_vec()
}

#[test]
fn ml_kem_768_keygen_encaps_decaps_and_implicit_rejection_match_the_reference() {
    let k = kat();
    for (i, c) in cases(&k, "ml_kem_768").iter().enumerate() {
        // Key generation as `Initiator::start` does it: the 64-byte seed is d ‖ z.
        let mut seed = hx(&c["d"]);
        seed.extend_from_slice(&hx(&c["z"]));
        let dk = ml_kem::DecapsulationKey::<MlKem768>::from_seed(
            ml_kem::Seed::try_from(&seed[..]).unwrap(),
        );
        let ek = dk.encapsulation_key().to_bytes();
        assert_eq!(ek.as_slice(), &hx(&c["ek"])[..], "case {i}: ek");
        assert_eq!(sha3(&ek), hx(&c["ek_sha3_256"]), "case {i}: ek digest");
        // The FIPS 203 decapsulation key encoding dk_pke ‖ ek ‖ H(ek) ‖ z.
        #[allow(deprecated)]
        let expanded = ml_kem::ExpandedKeyEncoding::to_expanded_bytes(&dk);
        assert_eq!(
            sha3(&expanded),
            hx(&c["dk_sha3_256"]),
            "case {i}: dk digest"
        );

        // Encapsulation as `Responder::on_hello` does it, from the received key bytes.
        let key = ml_kem::Key::<ml_kem::EncapsulationKey<MlKem768>>::try_from(&ek[..]).unwrap();
        let ek = ml_kem::EncapsulationKey::<MlKem768>::new(&key).unwrap();
        let m = ml_kem::B32::try_from(&hx(&c["m"])[..]).unwrap();
        let (ct, ss) = ek.encapsulate_deterministic(&m);
        assert_eq!(ct.as_slice(), &hx(&c["ct"])[..], "case {i}: ciphertext");
        assert_eq!(ss.as_slice(), &hx(&c["ss"])[..], "case {i}: shared secret");

        // Decapsulation as `Initiator::on_accept` does it, of the reference ciphertext.
        let ct = ml_kem::Ciphertext::<MlKem768>::try_from(&hx(&c["ct"])[..]).unwrap();
        assert_eq!(
            dk.decapsulate(&ct).as_slice(),
            &hx(&c["ss"])[..],
            "case {i}: decaps"
        );

        // A modified ciphertext gives the implicit-rejection secret J(z ‖ c').
        let mut bad = hx(&c["ct"]);
        let at = c["reject_flip_index"].as_u64().unwrap() as usize;
        bad[at] ^= c["reject_flip_mask"].as_u64().unwrap() as u8;
        let bad = ml_kem::Ciphertext::<MlKem768>::try_from(&bad[..]).unwrap();
        let rejected = dk.decapsulate(&bad);
        assert_eq!(
            rejected.as_slice(),
            &hx(&c["reject_ss"])[..],
            "case {i}: rejection"
        );
        assert_ne!(rejected.as_slice(), &hx(&c["ss"])[..]);
    }
}

/// The accumulated test of C2SP CCTV (ML-KEM/README.md): d, z, m and an invalid ciphertext
/// drawn in turn from SHAKE-128 of the empty string; ek, dk, ct, k and the rejection secret
/// absorbed into a second SHAKE-128, whose first 32 bytes are returned.
fn accumulated(iterations: u64) -> Vec<u8> {
    use sha3::Shake128;
    use sha3::digest::{ExtendableOutput, Update, XofReader};
    let mut rng = Shake128::default().finalize_xof();
    let mut acc = Shake128::default();
    for i in 0..iterations {
        let mut seed = [0u8; 64];
        let mut m = [0u8; 32];
        let mut bad = [0u8; CT_LEN];
        rng.read(&mut seed);
        if i == 0 {
            assert_eq!(hex::encode(&seed[..16]), "7f9c2ba4e88f827d616045507605853e");
        }
        rng.read(&mut m);
        rng.read(&mut bad);
        let dk = ml_kem::DecapsulationKey::<MlKem768>::from_seed(seed.into());
        let ek = dk.encapsulation_key();
        let (ct, key) = ek.encapsulate_deterministic(&m.into());
        assert_eq!(dk.decapsulate(&ct), key);
        let bad = ml_kem::Ciphertext::<MlKem768>::try_from(&bad[..]).unwrap();
        acc.update(&ek.to_bytes());
        #[allow(deprecated)]
        acc.update(&ml_kem::ExpandedKeyEncoding::to_expanded_bytes(&dk));
        acc.update(&ct);
        acc.update(&key);
        acc.update(&dk.decapsulate(&bad));
    }
    let mut out = [0u8; 32];
    acc.finalize_xof().read(&mut out);
    out.to_vec()
}

#[test]
fn ml_kem_768_matches_the_first_100_accumulated_vectors() {
    let k = kat();
    let c = &k["accumulated_ml_kem_768"]["short"];
    assert_eq!(
        accumulated(c["iterations"].as_u64().unwrap()),
        hx(&c["expected"])
    );
}

/// All 10 000 tests against the published hash for final FIPS 203. About 4 minutes in a debug
/// build (ml-kem's generic code is compiled at the test crate's opt-level), so run on demand:
/// `cargo test --lib core::ring::crypto::kat -- --ignored`.
#[test]
#[ignore = "minutes in a debug build; run with -- --ignored"]
fn ml_kem_768_matches_the_published_accumulated_hash() {
    let k = kat();
    let c = &k["accumulated_ml_kem_768"]["full"];
    assert_eq!(
        accumulated(c["iterations"].as_u64().unwrap()),
        hx(&c["expected"])
    );
}

#[test]
fn x25519_matches_the_reference() {
    let k = kat();
    for c in cases(&k, "x25519") {
        let a = x25519_dalek::StaticSecret::from(arr::<32>(&c["a"]));
        let b = x25519_dalek::StaticSecret::from(arr::<32>(&c["b"]));
        let pa = x25519_dalek::PublicKey::from(&a);
        let pb = x25519_dalek::PublicKey::from(&b);
        let src = &c["source"];
        assert_eq!(pa.as_bytes(), &arr::<32>(&c["a_public"]), "{src}");
        assert_eq!(pb.as_bytes(), &arr::<32>(&c["b_public"]), "{src}");
        assert_eq!(
            a.diffie_hellman(&pb).as_bytes(),
            &arr::<32>(&c["shared"]),
            "{src}"
        );
        assert_eq!(
            b.diffie_hellman(&pa).as_bytes(),
            &arr::<32>(&c["shared"]),
            "{src}"
        );
    }
}

/// The handshake cases: rings without ML-DSA-87 keys, then hybrid rings.
fn handshakes(k: &Value) -> Vec<(String, &Value)> {
    let plain = cases(k, "handshake").iter().enumerate();
    let hybrid = cases(k, "hybrid_handshake").iter().enumerate();
    plain
        .map(|(i, c)| (format!("{i}"), c))
        .chain(hybrid.map(|(i, c)| (format!("hybrid {i}"), c)))
        .collect()
}

#[test]
fn transcript_and_key_schedule_match_the_reference() {
    let k = kat();
    for (i, c) in handshakes(&k) {
        let accept = hx(&c["accept"]);
        // `T` covers `Accept` without its signatures, in a hybrid ring too.
        let t = transcript(&hx(&c["hello"]), &accept[..ACCEPT_UNSIGNED_LEN]);
        assert_eq!(t, arr::<32>(&c["transcript"]), "case {i}: transcript");
        let (i2r, r2i) = session_keys(
            &t,
            &arr::<32>(&c["x25519_shared"]),
            &hx(&c["ml_kem_shared"]),
        )
        .unwrap();
        assert_eq!(*i2r, arr::<32>(&c["key_i2r"]), "case {i}: i2r key");
        assert_eq!(*r2i, arr::<32>(&c["key_r2i"]), "case {i}: r2i key");
    }
}

fn check_frames(i: &str, dir: &str, frames: &Value, send: &mut Sealer, recv: &mut Opener) {
    let frames = frames.as_array().unwrap();
    assert!(frames.len() >= 2, "case {i}: fewer than two {dir} frames");
    for (n, f) in frames.iter().enumerate() {
        assert_eq!(f["counter"].as_u64(), Some(n as u64));
        let plain = hx(&f["plaintext"]);
        let mut buf = plain.clone();
        send.seal(&mut buf).unwrap();
        assert_eq!(buf, hx(&f["sealed"]), "case {i}: {dir} frame {n}");
        recv.open(&mut buf).unwrap();
        assert_eq!(buf, plain, "case {i}: {dir} frame {n} opened");
    }
}

#[test]
fn sealed_frames_match_the_reference() {
    // The channel alone, keyed with the reference's direction keys.
    let k = kat();
    for (i, c) in handshakes(&k) {
        for dir in ["i2r", "r2i"] {
            let key = arr::<32>(&c[format!("key_{dir}")]);
            let mut send = Sealer {
                cipher: cipher(&key),
                counter: 0,
            };
            let mut recv = Opener {
                cipher: cipher(&key),
                counter: 0,
            };
            check_frames(&i, dir, &c[format!("frames_{dir}")], &mut send, &mut recv);
        }
    }
}

/// The reference's ring: identities from its seeds (with the ML-DSA-87 half when it lists
/// one), the worker ids and the digest `R` checked against it.
fn reference_ring(i: &str, c: &Value) -> (Arc<RingSpec>, Vec<Arc<Identity>>) {
    let mut ids = Vec::new();
    let mut members = Vec::new();
    for m in c["members"].as_array().unwrap() {
        let pq = m.get("ml_dsa_87_seed").map(arr::<32>);
        let id = Arc::new(Identity::from_seeds(
            &arr::<32>(&m["ed25519_seed"]),
            pq.as_ref(),
        ));
        let public = id.public();
        assert_eq!(public.ed25519.as_bytes(), &arr::<32>(&m["ed25519_public"]));
        assert_eq!(public.worker_id(), m["id"].as_str().unwrap());
        assert_eq!(
            keys::worker_id(public.ed25519.as_bytes()),
            public.worker_id()
        );
        assert_eq!(
            public.ml_dsa_bytes(),
            m.get("ml_dsa_87_public").map(hx),
            "case {i}: ML-DSA-87 public key"
        );
        members.push(Member {
            id: public.worker_id(),
            address: m["address"].as_str().unwrap().to_string(),
            public,
        });
        ids.push(id);
    }
    let ring = Arc::new(
        RingSpec::new(
            c["round"].as_u64().unwrap(),
            c["chunk_elements"].as_u64().unwrap() as u32,
            members,
        )
        .unwrap(),
    );
    assert_eq!(ring.digest(), arr::<32>(&c["ring_digest"]), "case {i}: R");
    (ring, ids)
}

#[test]
fn a_full_handshake_with_fixed_ephemerals_matches_the_reference_bytes() {
    let k = kat();
    for (i, c) in handshakes(&k) {
        let (ring, ids) = reference_ring(&i, c);
        let hybrid = c["members"][0].get("ml_dsa_87_seed").is_some();
        assert_eq!(ring.is_hybrid(), hybrid, "case {i}");
        let (ini, resp) = (
            c["initiator"].as_u64().unwrap() as usize,
            c["responder"].as_u64().unwrap() as usize,
        );
        let start = || {
            Initiator::start(
                ring.clone(),
                ini,
                ids[ini].clone(),
                resp,
                &arr::<96>(&c["initiator_entropy"]),
            )
        };
        let answer = |hello: &[u8]| {
            Responder::on_hello(
                ring.clone(),
                resp,
                &ids[resp],
                hello,
                &arr::<64>(&c["responder_entropy"]),
            )
            .unwrap()
        };
        let (initiator, hello) = start();
        assert_eq!(hello, hx(&c["hello"]), "case {i}: hello");
        let (responder, accept) = answer(&hello);
        assert_eq!(accept, hx(&c["accept"]), "case {i}: accept");
        assert_eq!(accept.len(), accept_len(hybrid), "case {i}: accept length");
        assert_eq!(responder.peer(), ini);
        let (finish, mut a) = initiator.on_accept(&accept).unwrap();
        assert_eq!(finish, hx(&c["finish"]), "case {i}: finish");
        assert_eq!(finish.len(), finish_len(hybrid), "case {i}: finish length");
        let mut b = responder.on_finish(&finish).unwrap();
        assert_eq!((a.peer, b.peer), (resp, ini));
        // The sessions' keys are the reference's: their first frames are its sealed bytes.
        check_frames(&i, "i2r", &c["frames_i2r"], &mut a.send, &mut b.recv);
        check_frames(&i, "r2i", &c["frames_r2i"], &mut b.send, &mut a.recv);

        if hybrid {
            // The signatures sign the reference's role digests, and gym's state machines refuse
            // the reference's Accept and Finish with one bit of the ML-DSA-87 signature flipped.
            let t = arr::<32>(&c["transcript"]);
            assert_eq!(
                role_digest(RESPONDER_DOMAIN, &t),
                arr::<32>(&c["responder_digest"])
            );
            assert_eq!(
                role_digest(INITIATOR_DOMAIN, &t),
                arr::<32>(&c["initiator_digest"])
            );
            let mut bad = hx(&c["accept"]);
            let at = ACCEPT_UNSIGNED_LEN + 64 + 1000;
            bad[at] ^= 0x10;
            assert!(start().0.on_accept(&bad).is_err(), "case {i}: bad accept");
            let mut bad = hx(&c["finish"]);
            bad[1 + 64 + 3000] ^= 0x04;
            let (responder, _) = answer(&hx(&c["hello"]));
            assert!(responder.on_finish(&bad).is_err(), "case {i}: bad finish");
            // The reference's own bytes do complete.
            let (responder, _) = answer(&hx(&c["hello"]));
            responder.on_finish(&hx(&c["finish"])).unwrap();
        }
    }
}

/// An ML-DSA-87-only identity (the Ed25519 half is irrelevant here).
fn ml_dsa_identity(seed: &Value) -> Identity {
    Identity::from_seeds(&[0x5a; 32], Some(&arr::<32>(seed)))
}

#[test]
fn ml_dsa_87_keys_and_deterministic_signatures_match_the_reference() {
    let k = kat();
    for (i, c) in cases(&k, "ml_dsa_87").iter().enumerate() {
        // Key generation from the 32-byte seed xi, as `Identity::from_seeds` does it.
        let id = ml_dsa_identity(&c["seed"]);
        let public = id.public();
        let pk = public.ml_dsa_bytes().unwrap();
        assert_eq!(pk, hx(&c["public"]), "case {i}: public key");
        assert_eq!(sha3(&pk), hx(&c["public_sha3_256"]), "case {i}: pk digest");
        // The FIPS 204 private key encoding of the same seed.
        let sk = ml_dsa::SigningKey::<ml_dsa::MlDsa87>::from_seed(&arr::<32>(&c["seed"]).into());
        #[allow(deprecated)]
        let expanded = sk.expanded_key().to_expanded();
        assert_eq!(
            sha3(&expanded),
            hx(&c["private_sha3_256"]),
            "case {i}: sk digest"
        );
        // The reference's public key, decoded by gym, verifies.
        let reference =
            keys::PublicIdentity::from_raw(public.ed25519.as_bytes(), Some(&hx(&c["public"])))
                .unwrap();
        for (n, s) in cases(c, "signatures").iter().enumerate() {
            let ctx = s["context"].as_str().unwrap().as_bytes();
            let msg = hx(&s["message"]);
            let want = hx(&s["signature"]);
            let sig = id.sign_ml_dsa(&msg, ctx).unwrap();
            assert_eq!(sig, want, "case {i}, signature {n}");
            assert!(
                reference.verify_ml_dsa(&msg, ctx, &want),
                "case {i}, signature {n}: verify"
            );
            let mut other = ctx.to_vec();
            other.push(b'!');
            assert!(!reference.verify_ml_dsa(&msg, &other, &want));
            let mut bad = want.clone();
            bad[s["bad_flip_index"].as_u64().unwrap() as usize] ^=
                s["bad_flip_mask"].as_u64().unwrap() as u8;
            assert!(
                !reference.verify_ml_dsa(&msg, ctx, &bad),
                "case {i}, signature {n}: modified signature verifies"
            );
        }
    }
}

#[test]
fn a_hybrid_ring_message_matches_the_reference_bytes() {
    let k = kat();
    for (i, c) in cases(&k, "hybrid_handshake").iter().enumerate() {
        let i = format!("hybrid {i}");
        let (ring, ids) = reference_ring(&i, c);
        let r = &c["reveal"];
        let sender = r["sender"].as_u64().unwrap() as u16;
        let view = r["view"].as_u64().unwrap() as u32;
        let body = Body::Reveal {
            nonce: arr::<32>(&r["nonce"]),
        };
        let d = wire::signing_digest(&ring.digest(), &wire::signed_part(sender, view, &body));
        assert_eq!(d, arr::<32>(&r["signing_digest"]), "case {i}: digest");
        let m = Signed::sign(
            &ids[sender as usize],
            &ring.digest(),
            ring.is_hybrid(),
            sender,
            view,
            body,
            Vec::new(),
        );
        let want = hx(&r["encoded"]);
        assert_eq!(wire::encode(&m), want, "case {i}: encoded reveal");
        // The reference's bytes decode to that message and verify; with one bit of the
        // ML-DSA-87 signature flipped they still decode but do not verify.
        let key = &ring.members[sender as usize].public;
        let back = wire::decode(&want, true).unwrap();
        assert_eq!(back, m);
        assert!(back.verify(&ring.digest(), key));
        let mut bad = want.clone();
        let at = bad.len() - 100;
        bad[at] ^= 0x01;
        let bad = wire::decode(&bad, true).unwrap();
        assert!(!bad.verify(&ring.digest(), key), "case {i}: bad signature");
        // The ML-DSA-87 half alone, with the message context.
        let pq = &want[want.len() - keys::MLDSA87_SIGNATURE_LEN..];
        assert!(key.verify_ml_dsa(&d, MLDSA_MSG_CONTEXT, pq));
        assert!(!key.verify_ml_dsa(&d, MLDSA_HANDSHAKE_CONTEXT, pq));
    }
}

/// A data message of protocol version 4: header, both signatures and the packed payload, as
/// the reference writes it; the same bytes as a member's raw frame packed for the wire.
#[test]
fn a_hybrid_data_message_matches_the_reference_bytes() {
    let k = kat();
    for (i, c) in cases(&k, "hybrid_handshake").iter().enumerate() {
        let i = format!("hybrid {i}");
        let (ring, ids) = reference_ring(&i, c);
        let r = &c["data"];
        let num = |f: &str| r[f].as_u64().unwrap();
        let (sender, view) = (num("sender") as u16, num("view") as u32);
        let payload: Vec<i64> = r["payload"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().parse().unwrap())
            .collect();
        let h = wire::DataHeader {
            phase: num("phase") as u8,
            step: num("step") as u16,
            segment: num("segment") as u16,
            chunk: num("chunk") as u32,
            digest: wire::payload_digest(&payload),
        };
        assert_eq!(h.digest, arr::<32>(&r["payload_digest"]), "case {i}: D");
        let body = Body::Data(h);
        let d = wire::signing_digest(&ring.digest(), &wire::signed_part(sender, view, &body));
        assert_eq!(d, arr::<32>(&r["signing_digest"]), "case {i}: digest");
        let m = Signed::sign(
            &ids[sender as usize],
            &ring.digest(),
            true,
            sender,
            view,
            body,
            payload.clone(),
        );
        let want = hx(&r["encoded"]);
        assert_eq!(wire::encode(&m), want, "case {i}: encoded data");
        let back = wire::decode(&want, true).unwrap();
        assert_eq!(back, m);
        assert!(back.verify(&ring.digest(), &ring.members[sender as usize].public));
        // A member's raw frame of the same message, packed for the wire.
        let mut raw = wire::data_frame(payload.len(), true, |b| wire::put_le(b, &payload));
        wire::put_data_prefix(&mut raw, sender, view, &h, &m.sig, m.pq_sig.as_deref());
        assert_eq!(wire::pack_frame(&raw, true), want, "case {i}: packed frame");
        let (_, range) = wire::decode_split(&want, true).unwrap();
        assert_eq!(wire::unpack_frame(&want, range, true).unwrap(), raw);
    }
}

#[test]
fn the_hybrid_delta_vector_signature_matches_the_reference() {
    let k = kat();
    let c = &k["delta_ml_dsa_87"];
    let bytes = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(c["file"].as_str().unwrap()),
    )
    .unwrap();
    assert_eq!(sha3(&bytes), hx(&c["file_sha3_256"]), "the file changed");
    // gym's reader: the body digest, the signature block and both signatures verify.
    let report = delta::read_bytes(&bytes, &delta::VerifyOptions::default()).unwrap();
    assert_eq!(report.digest, arr::<32>(&c["body_digest"]));
    let block = report.delta.signature.as_ref().unwrap();
    assert_eq!(block.ed25519_public, arr::<32>(&c["ed25519_public"]));
    assert_eq!(block.ed25519_signature, arr::<64>(&c["ed25519_signature"]));
    let (pk, sig) = block.ml_dsa_87.as_ref().unwrap();
    assert_eq!(pk, &hx(&c["ml_dsa_87_public"]));
    assert_eq!(sig, &hx(&c["ml_dsa_87_signature"]), "ML-DSA-87 signature");
    // gym's signing, as `pack` does it, from the seeds.
    let id = Identity::from_seeds(
        &arr::<32>(&c["ed25519_seed"]),
        Some(&arr::<32>(&c["ml_dsa_87_seed"])),
    );
    let msg = delta::signing_message(&report.digest, &block.ed25519_public, Some(pk));
    assert_eq!(msg, arr::<32>(&c["signing_message"]));
    assert_eq!(
        c["context"].as_str().unwrap().as_bytes(),
        delta::SIGNATURE_CONTEXT
    );
    assert_eq!(
        id.sign_ml_dsa(&msg, delta::SIGNATURE_CONTEXT).unwrap(),
        hx(&c["ml_dsa_87_signature"])
    );
    // One bit of the ML-DSA-87 signature flipped: the reader refuses the file.
    let mut bad = bytes.clone();
    let at =
        c["signature_offset"].as_u64().unwrap() as usize + 32 + 64 + keys::MLDSA87_PUBLIC_LEN + 7;
    bad[at] ^= 0x20;
    assert!(delta::read_bytes(&bad, &delta::VerifyOptions::default()).is_err());
}
