//! The ring handshake and channel (docs/ring-protocol.md, "Transport"), as state machines
//! without I/O: X25519 + ML-KEM-768 → HKDF-SHA3-256 → AES-256-GCM, one key per direction,
//! counter nonces, mutual authentication with the members' Ed25519 keys (and their ML-DSA-87
//! keys too in a hybrid ring).

use std::sync::Arc;

use ml_kem::{Decapsulate as _, KeyExport as _, MlKem768};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use sha3::{Digest, Sha3_256};
use zeroize::Zeroizing;

use super::config::RingSpec;
use crate::core::error::{Classify, ErrorClass};
use crate::core::keys::{self, Identity, MLDSA87_SIGNATURE_LEN, PublicIdentity};

const TAG_HELLO: u8 = 1;
const TAG_ACCEPT: u8 = 2;
const TAG_FINISH: u8 = 3;
const TAG_REJECT: u8 = 4;

const X25519_LEN: usize = 32;
const EK_LEN: usize = 1184;
const CT_LEN: usize = 1088;
/// The exact size of a `Hello` (the only frame an unauthenticated peer sends first).
pub const HELLO_LEN: usize = 1 + 32 + 2 + 32 + X25519_LEN + EK_LEN;
/// `Accept` without its signatures.
const ACCEPT_UNSIGNED_LEN: usize = 1 + 2 + X25519_LEN + CT_LEN;

/// The signatures of a handshake message: Ed25519, then ML-DSA-87 in a hybrid ring.
const fn sigs_len(hybrid: bool) -> usize {
    64 + if hybrid { MLDSA87_SIGNATURE_LEN } else { 0 }
}

const fn accept_len(hybrid: bool) -> usize {
    ACCEPT_UNSIGNED_LEN + sigs_len(hybrid)
}

/// The exact size of a `Finish` in a ring that is `hybrid` or not.
pub const fn finish_len(hybrid: bool) -> usize {
    1 + sigs_len(hybrid)
}

/// The FIPS 204 context string of the handshake's ML-DSA-87 signatures (hybrid rings).
pub const MLDSA_HANDSHAKE_CONTEXT: &[u8] = b"gym-ring-v3/handshake";
/// The ring protocol version of docs/ring-protocol.md that this implementation speaks.
pub const PROTOCOL_VERSION: u32 = 4;
/// A direction stops after this many frames.
pub const MAX_FRAMES: u64 = 1 << 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error(
        "wrong ring file or round: peer has ring digest {theirs}, ours is {ours} (compare the ring files)"
    )]
    WrongRing { ours: String, theirs: String },
    #[error(
        "a member running ring protocol version {theirs} (an earlier gym) cannot join: this member \
         runs version {PROTOCOL_VERSION}; run the same gym version on every member"
    )]
    EarlierVersion { theirs: &'static str },
    #[error("key {key} (claiming member {index}) is not a member of this ring")]
    NotMember { key: String, index: u16 },
    #[error("expected member {expected}, but member {got} answered")]
    WrongPeer { expected: usize, got: usize },
    #[error(
        "handshake signature of member {peer} does not verify (a replayed, tampered or forged handshake)"
    )]
    BadSignature { peer: usize },
    #[error("malformed handshake message: {what}")]
    Malformed { what: String },
    #[error("the peer refused the connection: {reason}")]
    Rejected { class: ErrorClass, reason: String },
    #[error("frame {counter} does not decrypt (tampered, replayed or reordered)")]
    Decrypt { counter: u64 },
    #[error("channel exhausted after {MAX_FRAMES} frames")]
    Exhausted,
}

impl Classify for HandshakeError {
    fn class(&self) -> ErrorClass {
        match self {
            HandshakeError::WrongRing { .. }
            | HandshakeError::EarlierVersion { .. }
            | HandshakeError::Decrypt { .. } => ErrorClass::Policy,
            HandshakeError::NotMember { .. } | HandshakeError::WrongPeer { .. } => {
                ErrorClass::Untrusted
            }
            HandshakeError::Rejected { class, .. } => *class,
            HandshakeError::BadSignature { .. } => ErrorClass::Signature,
            HandshakeError::Malformed { .. } => ErrorClass::Malformed,
            HandshakeError::Exhausted => ErrorClass::Other,
        }
    }
}

fn malformed(what: impl Into<String>) -> HandshakeError {
    HandshakeError::Malformed { what: what.into() }
}

/// Fresh randomness from the operating system.
pub fn random<const N: usize>() -> Zeroizing<[u8; N]> {
    use rand::RngCore as _;
    let mut b = Zeroizing::new([0u8; N]);
    rand::rngs::OsRng.fill_bytes(&mut b[..]);
    b
}

/// A `Reject` frame, sent before closing a refused connection so the other side can say why:
/// `4 ‖ error class name ‖ 0 ‖ UTF-8 reason`.
pub fn reject_frame(e: &HandshakeError) -> Vec<u8> {
    let mut v = vec![TAG_REJECT];
    v.extend_from_slice(e.class().as_str().as_bytes());
    v.push(0);
    v.extend_from_slice(e.to_string().as_bytes());
    v
}

fn check_reject(b: &[u8]) -> Result<(), HandshakeError> {
    if b.first() == Some(&TAG_REJECT) {
        let rest = &b[1..];
        let (class, reason) = match rest.iter().position(|&c| c == 0) {
            Some(i) => (
                ErrorClass::parse(&String::from_utf8_lossy(&rest[..i])),
                &rest[i + 1..],
            ),
            None => (None, rest),
        };
        return Err(HandshakeError::Rejected {
            class: class.unwrap_or(ErrorClass::Untrusted),
            reason: String::from_utf8_lossy(reason).into_owned(),
        });
    }
    Ok(())
}

fn transcript(hello: &[u8], accept_unsigned: &[u8]) -> [u8; 32] {
    let mut h = Sha3_256::new();
    h.update(b"gym-ring-v1/hs-transcript\0");
    h.update(hello);
    h.update(accept_unsigned);
    h.finalize().into()
}

fn role_digest(domain: &[u8], t: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha3_256::new();
    h.update(domain);
    h.update(t);
    h.finalize().into()
}

const RESPONDER_DOMAIN: &[u8] = b"gym-ring-v1/hs-responder\0";
const INITIATOR_DOMAIN: &[u8] = b"gym-ring-v1/hs-initiator\0";

/// Appends the signatures of a handshake message over `d`: Ed25519, and in a hybrid ring
/// ML-DSA-87 (context [`MLDSA_HANDSHAKE_CONTEXT`]).
fn put_sigs(out: &mut Vec<u8>, id: &Identity, hybrid: bool, d: &[u8; 32]) {
    out.extend_from_slice(&id.sign_ed25519(d));
    if hybrid {
        // A member of a hybrid ring holds its ML-DSA-87 key (`RingSpec::member_index`); without
        // one the peer refuses the short message as malformed.
        if let Some(pq) = id.sign_ml_dsa(d, MLDSA_HANDSHAKE_CONTEXT) {
            out.extend_from_slice(&pq);
        }
    }
}

/// Whether the signatures `sigs` (of [`put_sigs`]) over `d` verify: both halves in a hybrid ring.
fn verify_sigs(key: &PublicIdentity, hybrid: bool, d: &[u8; 32], sigs: &[u8]) -> bool {
    if sigs.len() != sigs_len(hybrid) {
        return false;
    }
    let (ed, pq) = sigs.split_at(64);
    key.verify_ed25519(d, ed) && (!hybrid || key.verify_ml_dsa(d, MLDSA_HANDSHAKE_CONTEXT, pq))
}

/// The AEAD of one direction: AES-256-GCM as implemented by the `ring` crate (AES-NI/VAES with
/// CLMUL/VPCLMULQDQ assembly, stitched encryption and authentication, chosen at run time).
/// The same cipher as the specification's: ciphertexts are byte-identical to any other
/// AES-256-GCM implementation's (the tests compare with the `aes-gcm` crate).
pub type Cipher = LessSafeKey;

/// One direction of the channel.
pub struct Sealer {
    cipher: Cipher,
    counter: u64,
}

pub struct Opener {
    cipher: Cipher,
    counter: u64,
}

/// `u32 0 ‖ u64 counter (big-endian)`.
pub fn nonce_bytes(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    n
}

fn nonce(counter: u64) -> Nonce {
    Nonce::assume_unique_for_key(nonce_bytes(counter))
}

/// An AES-256-GCM key.
pub fn cipher(key: &[u8; 32]) -> Cipher {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("32-byte key"))
}

impl Sealer {
    /// Encrypts `buf` in place, appending the 16-byte tag.
    pub fn seal(&mut self, buf: &mut Vec<u8>) -> Result<(), HandshakeError> {
        if self.counter >= MAX_FRAMES {
            return Err(HandshakeError::Exhausted);
        }
        let aad = ((buf.len() + 16) as u64).to_le_bytes();
        self.cipher
            .seal_in_place_append_tag(nonce(self.counter), Aad::from(aad), buf)
            .map_err(|_| HandshakeError::Exhausted)?;
        self.counter += 1;
        Ok(())
    }
}

impl Opener {
    /// Decrypts a frame in place. A frame that does not decrypt with the next counter value
    /// (tampered, replayed, reordered, dropped before it) is an error.
    pub fn open(&mut self, buf: &mut Vec<u8>) -> Result<(), HandshakeError> {
        if self.counter >= MAX_FRAMES {
            return Err(HandshakeError::Exhausted);
        }
        let aad = (buf.len() as u64).to_le_bytes();
        let len = self
            .cipher
            .open_in_place(nonce(self.counter), Aad::from(aad), buf)
            .map_err(|_| HandshakeError::Decrypt {
                counter: self.counter,
            })?
            .len();
        buf.truncate(len);
        self.counter += 1;
        Ok(())
    }
}

/// An established, authenticated channel to member `peer`.
pub struct Session {
    pub peer: usize,
    pub send: Sealer,
    pub recv: Opener,
}

/// The two direction keys `(i2r, r2i)`: HKDF-SHA3-256 with salt `T` over `dh ‖ kem`.
type DirectionKeys = (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>);

fn session_keys(t: &[u8; 32], dh: &[u8; 32], kem: &[u8]) -> Result<DirectionKeys, HandshakeError> {
    let mut ikm = Zeroizing::new(Vec::with_capacity(64));
    ikm.extend_from_slice(dh);
    ikm.extend_from_slice(kem);
    let hk = hkdf::Hkdf::<Sha3_256>::new(Some(t), &ikm);
    let mut i2r = Zeroizing::new([0u8; 32]);
    let mut r2i = Zeroizing::new([0u8; 32]);
    hk.expand(b"gym-ring-v1/i2r", &mut i2r[..])
        .map_err(|_| malformed("hkdf"))?;
    hk.expand(b"gym-ring-v1/r2i", &mut r2i[..])
        .map_err(|_| malformed("hkdf"))?;
    Ok((i2r, r2i))
}

fn keys(t: &[u8; 32], dh: &[u8; 32], kem: &[u8]) -> Result<(Cipher, Cipher), HandshakeError> {
    let (i2r, r2i) = session_keys(t, dh, kem)?;
    Ok((cipher(&i2r), cipher(&r2i)))
}

/// The dialling side, after sending `Hello`.
pub struct Initiator {
    ring: Arc<RingSpec>,
    peer: usize,
    id: Arc<Identity>,
    x: x25519_dalek::StaticSecret,
    dk: ml_kem::DecapsulationKey<MlKem768>,
    hello: Vec<u8>,
}

impl Initiator {
    /// Starts a handshake from member `me` to member `peer`. `entropy`: 32 bytes for X25519
    /// then 64 for the ML-KEM seed, from [`random`].
    pub fn start(
        ring: Arc<RingSpec>,
        me: usize,
        id: Arc<Identity>,
        peer: usize,
        entropy: &[u8; 96],
    ) -> (Self, Vec<u8>) {
        let xb: [u8; 32] = entropy[..32].try_into().expect("32");
        let x = x25519_dalek::StaticSecret::from(xb);
        let seed = ml_kem::Seed::try_from(&entropy[32..]).expect("64 bytes");
        let dk = ml_kem::DecapsulationKey::<MlKem768>::from_seed(seed);
        let mut hello = Vec::with_capacity(HELLO_LEN);
        hello.push(TAG_HELLO);
        hello.extend_from_slice(&ring.digest());
        hello.extend_from_slice(&(me as u16).to_le_bytes());
        hello.extend_from_slice(id.public().ed25519.as_bytes());
        hello.extend_from_slice(x25519_dalek::PublicKey::from(&x).as_bytes());
        hello.extend_from_slice(&dk.encapsulation_key().to_bytes());
        debug_assert_eq!(hello.len(), HELLO_LEN);
        (
            Initiator {
                ring,
                peer,
                id,
                x,
                dk,
                hello: hello.clone(),
            },
            hello,
        )
    }

    /// Consumes `Accept`; returns `Finish` and the session.
    pub fn on_accept(self, b: &[u8]) -> Result<(Vec<u8>, Session), HandshakeError> {
        check_reject(b)?;
        let hybrid = self.ring.is_hybrid();
        let want = accept_len(hybrid);
        if b.len() != want || b[0] != TAG_ACCEPT {
            return Err(malformed(format!(
                "accept of {} bytes (expected {want})",
                b.len()
            )));
        }
        let got = u16::from_le_bytes([b[1], b[2]]) as usize;
        if got != self.peer {
            return Err(HandshakeError::WrongPeer {
                expected: self.peer,
                got,
            });
        }
        let xr: [u8; 32] = b[3..35].try_into().expect("32");
        let ct = &b[35..35 + CT_LEN];
        let sigs = &b[ACCEPT_UNSIGNED_LEN..];
        let t = transcript(&self.hello, &b[..ACCEPT_UNSIGNED_LEN]);
        let key = &self.ring.members[self.peer].public;
        if !verify_sigs(key, hybrid, &role_digest(RESPONDER_DOMAIN, &t), sigs) {
            return Err(HandshakeError::BadSignature { peer: self.peer });
        }
        let ct =
            ml_kem::Ciphertext::<MlKem768>::try_from(ct).map_err(|_| malformed("ciphertext"))?;
        let kem = self.dk.decapsulate(&ct);
        let dh = self.x.diffie_hellman(&x25519_dalek::PublicKey::from(xr));
        let (i2r, r2i) = keys(&t, dh.as_bytes(), kem.as_slice())?;
        let mut fin = Vec::with_capacity(finish_len(hybrid));
        fin.push(TAG_FINISH);
        put_sigs(
            &mut fin,
            &self.id,
            hybrid,
            &role_digest(INITIATOR_DOMAIN, &t),
        );
        Ok((
            fin,
            Session {
                peer: self.peer,
                send: Sealer {
                    cipher: i2r,
                    counter: 0,
                },
                recv: Opener {
                    cipher: r2i,
                    counter: 0,
                },
            },
        ))
    }
}

/// The accepting side, after sending `Accept`.
pub struct Responder {
    ring: Arc<RingSpec>,
    peer: usize,
    t: [u8; 32],
    i2r: Cipher,
    r2i: Cipher,
}

impl Responder {
    /// Consumes `Hello` at member `me`; returns `Accept`. On error the driver sends
    /// [`reject_frame`] and closes: nothing else flows. `entropy`: 32 bytes for X25519, then 32
    /// for the ML-KEM encapsulation.
    pub fn on_hello(
        ring: Arc<RingSpec>,
        me: usize,
        id: &Identity,
        b: &[u8],
        entropy: &[u8; 64],
    ) -> Result<(Self, Vec<u8>), HandshakeError> {
        if b.len() != HELLO_LEN || b[0] != TAG_HELLO {
            return Err(malformed(format!(
                "hello of {} bytes (expected {HELLO_LEN})",
                b.len()
            )));
        }
        let theirs = &b[1..33];
        if let Some(theirs) = ring.earlier_version(theirs) {
            return Err(HandshakeError::EarlierVersion { theirs });
        }
        if theirs != ring.digest() {
            return Err(HandshakeError::WrongRing {
                ours: hex::encode(ring.digest()),
                theirs: hex::encode(theirs),
            });
        }
        let index = u16::from_le_bytes([b[33], b[34]]);
        let ed: [u8; 32] = b[35..67].try_into().expect("32");
        let listed = ring.members.get(index as usize);
        if listed.is_none_or(|m| m.public.ed25519.as_bytes() != &ed) || index as usize == me {
            return Err(HandshakeError::NotMember {
                key: keys::b64(&ed),
                index,
            });
        }
        let xi: [u8; 32] = b[67..99].try_into().expect("32");
        let ek_bytes = ml_kem::Key::<ml_kem::EncapsulationKey<MlKem768>>::try_from(&b[99..])
            .map_err(|_| malformed("encapsulation key"))?;
        let ek = ml_kem::EncapsulationKey::<MlKem768>::new(&ek_bytes)
            .map_err(|_| malformed("encapsulation key"))?;
        let m = ml_kem::B32::try_from(&entropy[32..]).expect("32");
        let (ct, kem) = ek.encapsulate_deterministic(&m);
        let xb: [u8; 32] = entropy[..32].try_into().expect("32");
        let x = x25519_dalek::StaticSecret::from(xb);
        let hybrid = ring.is_hybrid();
        let mut acc = Vec::with_capacity(accept_len(hybrid));
        acc.push(TAG_ACCEPT);
        acc.extend_from_slice(&(me as u16).to_le_bytes());
        acc.extend_from_slice(x25519_dalek::PublicKey::from(&x).as_bytes());
        acc.extend_from_slice(ct.as_slice());
        let t = transcript(b, &acc);
        put_sigs(&mut acc, id, hybrid, &role_digest(RESPONDER_DOMAIN, &t));
        let dh = x.diffie_hellman(&x25519_dalek::PublicKey::from(xi));
        let (i2r, r2i) = keys(&t, dh.as_bytes(), kem.as_slice())?;
        Ok((
            Responder {
                ring,
                peer: index as usize,
                t,
                i2r,
                r2i,
            },
            acc,
        ))
    }

    /// Consumes `Finish`: the initiator proved it holds its member key.
    pub fn on_finish(self, b: &[u8]) -> Result<Session, HandshakeError> {
        check_reject(b)?;
        let hybrid = self.ring.is_hybrid();
        if b.len() != finish_len(hybrid) || b[0] != TAG_FINISH {
            return Err(malformed("finish"));
        }
        let key = &self.ring.members[self.peer].public;
        if !verify_sigs(
            key,
            hybrid,
            &role_digest(INITIATOR_DOMAIN, &self.t),
            &b[1..],
        ) {
            return Err(HandshakeError::BadSignature { peer: self.peer });
        }
        Ok(Session {
            peer: self.peer,
            send: Sealer {
                cipher: self.r2i,
                counter: 0,
            },
            recv: Opener {
                cipher: self.i2r,
                counter: 0,
            },
        })
    }

    pub fn peer(&self) -> usize {
        self.peer
    }
}

#[cfg(test)]
mod kat;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ring::config::tests::{hybrid_spec, spec};

    #[test]
    fn the_channel_cipher_is_standard_aes_256_gcm() {
        // Same key, nonce and AAD as a channel frame: the `aes-gcm` crate's output, byte for
        // byte, and each side opens the other's.
        use aes_gcm::aead::{AeadInPlace, KeyInit};
        let key = [0x5au8; 32];
        let reference = aes_gcm::Aes256Gcm::new_from_slice(&key).unwrap();
        let mut sealer = Sealer {
            cipher: cipher(&key),
            counter: 0,
        };
        let mut opener = Opener {
            cipher: cipher(&key),
            counter: 0,
        };
        for (i, len) in [0usize, 1, 15, 16, 17, 255, 4096, 100_003]
            .into_iter()
            .enumerate()
        {
            let plain: Vec<u8> = (0..len).map(|k| (k * 31 + i) as u8).collect();
            let mut ours = plain.clone();
            sealer.seal(&mut ours).unwrap();
            let mut theirs = plain.clone();
            let aad = ((len + 16) as u64).to_le_bytes();
            reference
                .encrypt_in_place((&nonce_bytes(i as u64)).into(), &aad, &mut theirs)
                .unwrap();
            assert_eq!(ours, theirs, "length {len}");
            opener.open(&mut theirs).unwrap();
            assert_eq!(theirs, plain);
        }
    }

    fn pair() -> (Arc<RingSpec>, Vec<Arc<Identity>>) {
        let (s, ids) = spec(3);
        (Arc::new(s), ids.into_iter().map(Arc::new).collect())
    }

    fn handshake(
        ring: &Arc<RingSpec>,
        ids: &[Arc<Identity>],
    ) -> Result<(Session, Session), HandshakeError> {
        let (ini, hello) = Initiator::start(ring.clone(), 0, ids[0].clone(), 1, &[1; 96]);
        let (resp, accept) = Responder::on_hello(ring.clone(), 1, &ids[1], &hello, &[2; 64])?;
        let (fin, a) = ini.on_accept(&accept)?;
        let b = resp.on_finish(&fin)?;
        Ok((a, b))
    }

    #[test]
    fn members_agree_on_keys_and_frames_flow_both_ways() {
        let (ring, ids) = pair();
        let (mut a, mut b) = handshake(&ring, &ids).unwrap();
        assert_eq!((a.peer, b.peer), (1, 0));
        for i in 0..3u8 {
            let mut f = vec![i; 100];
            a.send.seal(&mut f).unwrap();
            assert_ne!(&f[..100], &[i; 100][..]);
            b.recv.open(&mut f).unwrap();
            assert_eq!(f, vec![i; 100]);
            let mut g = vec![i; 5];
            b.send.seal(&mut g).unwrap();
            a.recv.open(&mut g).unwrap();
            assert_eq!(g, vec![i; 5]);
        }
    }

    #[test]
    fn replayed_or_tampered_frames_fail() {
        let (ring, ids) = pair();
        let (mut a, mut b) = handshake(&ring, &ids).unwrap();
        let mut f = b"hello".to_vec();
        a.send.seal(&mut f).unwrap();
        let copy = f.clone();
        b.recv.open(&mut f).unwrap();
        let mut replay = copy.clone();
        assert_eq!(
            b.recv.open(&mut replay),
            Err(HandshakeError::Decrypt { counter: 1 })
        );
        let mut g = b"x".to_vec();
        a.send.seal(&mut g).unwrap();
        g[0] ^= 1;
        assert!(b.recv.open(&mut g).is_err());
    }

    #[test]
    fn a_non_member_key_is_refused_before_any_data() {
        let (ring, ids) = pair();
        let outsider = Arc::new(Identity::from_seeds(&[77; 32], None));
        // Claims to be member 0 but holds another key.
        let (_, hello) = Initiator::start(ring.clone(), 0, outsider.clone(), 1, &[1; 96]);
        let e = Responder::on_hello(ring.clone(), 1, &ids[1], &hello, &[2; 64])
            .err()
            .unwrap();
        assert!(
            matches!(e, HandshakeError::NotMember { index: 0, .. }),
            "{e}"
        );
        assert!(String::from_utf8_lossy(&reject_frame(&e)).contains("not a member"));
        // The initiator turns the reject frame into a clear error.
        let (ini, _) = Initiator::start(ring.clone(), 0, outsider, 1, &[1; 96]);
        let r = ini.on_accept(&reject_frame(&e)).err().unwrap();
        assert!(matches!(r, HandshakeError::Rejected { .. }));
    }

    #[test]
    fn a_stolen_hello_without_the_key_fails_at_finish() {
        // An attacker replays member 0's hello but cannot sign the finish.
        let (ring, ids) = pair();
        let (_, hello) = Initiator::start(ring.clone(), 0, ids[0].clone(), 1, &[1; 96]);
        let (resp, _) = Responder::on_hello(ring.clone(), 1, &ids[1], &hello, &[2; 64]).unwrap();
        let mut fin = vec![TAG_FINISH];
        fin.extend_from_slice(&[0u8; 64]);
        assert!(matches!(
            resp.on_finish(&fin),
            Err(HandshakeError::BadSignature { peer: 0 })
        ));
    }

    #[test]
    fn a_wrong_ring_file_is_refused() {
        let (ring, ids) = pair();
        let other = Arc::new(RingSpec::new(5, ring.chunk_elements, ring.members.clone()).unwrap());
        let (_, hello) = Initiator::start(other, 0, ids[0].clone(), 1, &[1; 96]);
        let e = Responder::on_hello(ring, 1, &ids[1], &hello, &[2; 64])
            .err()
            .unwrap();
        assert!(matches!(e, HandshakeError::WrongRing { .. }), "{e}");
    }

    /// A member of protocol version 2 or 3 (the earlier ring digest domain) is refused by
    /// name, and the reason reaches it in the reject frame.
    #[test]
    fn an_earlier_protocol_version_is_refused_by_name() {
        let (ring, ids) = pair();
        let (_, mut hello) = Initiator::start(ring.clone(), 0, ids[0].clone(), 1, &[1; 96]);
        // Recompute the old R by hand from the same fields (the domain is all that changed).
        let old = ring.digest_with_domain_for_tests(b"gym-ring-v2/ring\0");
        assert_ne!(old, ring.digest());
        hello[1..33].copy_from_slice(&old);
        let e = Responder::on_hello(ring.clone(), 1, &ids[1], &hello, &[2; 64])
            .err()
            .unwrap();
        assert_eq!(e, HandshakeError::EarlierVersion { theirs: "2 or 3" });
        let reason = String::from_utf8_lossy(&reject_frame(&e)).into_owned();
        assert!(reason.contains("ring protocol version 2 or 3"), "{reason}");
        assert!(reason.contains("version 4"), "{reason}");
    }

    #[test]
    fn an_impostor_responder_is_detected() {
        let (ring, ids) = pair();
        let (ini, hello) = Initiator::start(ring.clone(), 0, ids[0].clone(), 1, &[1; 96]);
        // Member 2 answers in place of member 1.
        let (_, accept) = Responder::on_hello(ring.clone(), 2, &ids[2], &hello, &[2; 64]).unwrap();
        assert!(matches!(
            ini.on_accept(&accept),
            Err(HandshakeError::WrongPeer {
                expected: 1,
                got: 2
            })
        ));
    }

    #[test]
    fn hybrid_members_sign_both_halves_and_a_bad_ml_dsa_half_fails() {
        let (s, ids) = hybrid_spec(3);
        let (ring, ids): (Arc<RingSpec>, Vec<Arc<Identity>>) =
            (Arc::new(s), ids.into_iter().map(Arc::new).collect());
        let (mut a, mut b) = handshake(&ring, &ids).unwrap();
        let mut f = b"hybrid".to_vec();
        a.send.seal(&mut f).unwrap();
        b.recv.open(&mut f).unwrap();
        assert_eq!(f, b"hybrid");

        let (ini, hello) = Initiator::start(ring.clone(), 0, ids[0].clone(), 1, &[1; 96]);
        let (resp, accept) =
            Responder::on_hello(ring.clone(), 1, &ids[1], &hello, &[2; 64]).unwrap();
        assert_eq!(
            accept.len(),
            ACCEPT_UNSIGNED_LEN + 64 + MLDSA87_SIGNATURE_LEN
        );
        // A flipped bit in the responder's ML-DSA-87 signature (its Ed25519 one intact).
        let mut bad = accept.clone();
        *bad.last_mut().unwrap() ^= 0x01;
        assert!(matches!(
            ini.on_accept(&bad),
            Err(HandshakeError::BadSignature { peer: 1 })
        ));
        // An Ed25519-only accept (a member without hybrid signatures) is malformed here.
        let (ini, _) = Initiator::start(ring.clone(), 0, ids[0].clone(), 1, &[1; 96]);
        assert!(matches!(
            ini.on_accept(&accept[..ACCEPT_UNSIGNED_LEN + 64]),
            Err(HandshakeError::Malformed { .. })
        ));
        let (ini, _) = Initiator::start(ring.clone(), 0, ids[0].clone(), 1, &[1; 96]);
        let (fin, _) = ini.on_accept(&accept).unwrap();
        assert_eq!(fin.len(), 1 + 64 + MLDSA87_SIGNATURE_LEN);
        // The initiator's ML-DSA-87 signature, flipped.
        let mut bad = fin.clone();
        bad[100] ^= 0x10;
        assert!(matches!(
            resp.on_finish(&bad),
            Err(HandshakeError::BadSignature { peer: 0 })
        ));
        // A member holding only the Ed25519 half cannot complete a hybrid handshake.
        let ed_only = Arc::new(Identity::from_seeds(&[1; 32], None));
        let (ini, hello) = Initiator::start(ring.clone(), 0, ed_only, 1, &[1; 96]);
        let (resp, accept) =
            Responder::on_hello(ring.clone(), 1, &ids[1], &hello, &[2; 64]).unwrap();
        let (fin, _) = ini.on_accept(&accept).unwrap();
        assert!(matches!(
            resp.on_finish(&fin),
            Err(HandshakeError::Malformed { .. })
        ));
        // Members of the same keys in a ring without ML-DSA keys have another ring digest.
        let (plain, _) = spec(3);
        let (_, hello) = Initiator::start(Arc::new(plain), 0, ids[0].clone(), 1, &[1; 96]);
        assert!(matches!(
            Responder::on_hello(ring, 1, &ids[1], &hello, &[2; 64]),
            Err(HandshakeError::WrongRing { .. })
        ));
    }
}
