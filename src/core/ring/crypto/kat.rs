//! Known-answer tests: gym's ring transport against `testdata/ring/kat.json`, written by
//! `tools/reference/ring_kat.py` with independent implementations (kyber-py for ML-KEM-768,
//! OpenSSL through `cryptography` for X25519, Ed25519 and AES-256-GCM, RFC 5869 over hashlib's
//! SHA3-256 for HKDF). See docs/ring-protocol.md, "Test vectors".

use std::sync::Arc;

use ml_kem::{Decapsulate as _, KeyExport as _, MlKem768};
use serde_json::Value;
use sha3::{Digest, Sha3_256};

use super::*;
use crate::core::keys::{self, Identity};
use crate::core::ring::config::{Member, RingSpec};

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

// The vectors are of rings without ML-DSA-87 keys.
const UNSIGNED_ACCEPT_LEN: usize = accept_len(false) - 64;

#[test]
fn transcript_and_key_schedule_match_the_reference() {
    let k = kat();
    for (i, c) in cases(&k, "handshake").iter().enumerate() {
        let accept = hx(&c["accept"]);
        let t = transcript(&hx(&c["hello"]), &accept[..UNSIGNED_ACCEPT_LEN]);
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

fn check_frames(i: usize, dir: &str, frames: &Value, send: &mut Sealer, recv: &mut Opener) {
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
    for (i, c) in cases(&k, "handshake").iter().enumerate() {
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
            check_frames(i, dir, &c[format!("frames_{dir}")], &mut send, &mut recv);
        }
    }
}

#[test]
fn a_full_handshake_with_fixed_ephemerals_matches_the_reference_bytes() {
    let k = kat();
    for (i, c) in cases(&k, "handshake").iter().enumerate() {
        // The ring file from the reference's members: worker ids and the digest R.
        let mut ids = Vec::new();
        let mut members = Vec::new();
        for m in c["members"].as_array().unwrap() {
            let id = Arc::new(Identity::from_seeds(&arr::<32>(&m["ed25519_seed"]), None));
            let public = id.public();
            assert_eq!(public.ed25519.as_bytes(), &arr::<32>(&m["ed25519_public"]));
            assert_eq!(public.worker_id(), m["id"].as_str().unwrap());
            assert_eq!(
                keys::worker_id(public.ed25519.as_bytes()),
                public.worker_id()
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

        let (ini, resp) = (
            c["initiator"].as_u64().unwrap() as usize,
            c["responder"].as_u64().unwrap() as usize,
        );
        let (initiator, hello) = Initiator::start(
            ring.clone(),
            ini,
            ids[ini].clone(),
            resp,
            &arr::<96>(&c["initiator_entropy"]),
        );
        assert_eq!(hello, hx(&c["hello"]), "case {i}: hello");
        let (responder, accept) = Responder::on_hello(
            ring.clone(),
            resp,
            &ids[resp],
            &hello,
            &arr::<64>(&c["responder_entropy"]),
        )
        .unwrap();
        assert_eq!(accept, hx(&c["accept"]), "case {i}: accept");
        assert_eq!(responder.peer(), ini);
        let (finish, mut a) = initiator.on_accept(&accept).unwrap();
        assert_eq!(finish, hx(&c["finish"]), "case {i}: finish");
        let mut b = responder.on_finish(&finish).unwrap();
        assert_eq!((a.peer, b.peer), (resp, ini));
        // The sessions' keys are the reference's: their first frames are its sealed bytes.
        check_frames(i, "i2r", &c["frames_i2r"], &mut a.send, &mut b.recv);
        check_frames(i, "r2i", &c["frames_r2i"], &mut b.send, &mut a.recv);
    }
}
