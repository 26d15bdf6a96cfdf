//! Encoding of ring messages (docs/ring-protocol.md, "Round structure"). Every message is
//! `kind u8 ‖ sender u16 ‖ view u32 ‖ body ‖ Ed25519 signature (64)`, in a hybrid ring then
//! `ML-DSA-87 signature (4627)` ("Hybrid signatures"), followed for data messages by the
//! packed payload of [`codec`] (`u32 count ‖ blocks`, protocol version 4). All integers
//! little-endian. Decoding uses checked reads only; the decoder is told whether the ring is
//! hybrid (the encoding does not say).
//!
//! Inside a member a data message's frame is *raw*: the same prefix, then `count × i64`
//! (what is hashed, signed, reduced and forwarded in place); [`pack_frame`] turns it into the
//! wire encoding before it is sent and [`unpack_frame`] back after it is received.

use std::borrow::Cow;

use sha3::{Digest, Sha3_256};

use crate::core::hash::multi::sha3_256_many;
use crate::core::ring::codec::{self, CodecError};

use crate::core::keys::{Identity, MLDSA87_SIGNATURE_LEN, PublicIdentity};

pub const KIND_COMMIT: u8 = 1;
pub const KIND_DATA: u8 = 2;
pub const KIND_REVEAL: u8 = 3;
pub const KIND_SKETCH: u8 = 4;
pub const KIND_VERDICT: u8 = 5;
pub const KIND_VIEW_CHANGE: u8 = 6;

pub const PHASE_SCATTER: u8 = 0;
pub const PHASE_GATHER: u8 = 1;

const MSG_DOMAIN: &[u8] = b"gym-ring-v1/msg\0";
/// The FIPS 204 context string of the ML-DSA-87 signature on a ring message (hybrid rings).
pub const MLDSA_MSG_CONTEXT: &[u8] = b"gym-ring-v3/msg";
const DATA_DOMAIN: &[u8] = b"gym-ring-v2/data\0";

/// Elements per leaf of the payload digest (16 KiB of `i64`).
pub const LEAF_ELEMENTS: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message truncated reading {what}")]
    Truncated { what: &'static str },
    #[error("unknown message kind {kind}")]
    UnknownKind { kind: u8 },
    #[error("{count} trailing bytes after the message")]
    Trailing { count: usize },
    #[error("invalid {what}: {value}")]
    Invalid { what: &'static str, value: u64 },
    #[error(transparent)]
    Packed(#[from] CodecError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub weight: u64,
    pub exponent: i32,
    pub layout: [u8; 32],
    pub input: [u8; 32],
    pub nonce_hash: [u8; 32],
    pub members: [u8; 32],
    pub timestamp: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DataHeader {
    pub phase: u8,
    pub step: u16,
    pub segment: u16,
    pub chunk: u32,
    pub digest: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Commit(Commit),
    Data(DataHeader),
    Reveal {
        nonce: [u8; 32],
    },
    Sketch {
        sketches: Vec<u64>,
    },
    /// `ok` with the result digest is a receipt; `evidence` holds signed data messages (with
    /// payload) that failed a check.
    Verdict {
        ok: bool,
        result: [u8; 32],
        evidence: Vec<Signed>,
    },
    ViewChange {
        evidence: Vec<Signed>,
    },
}

impl Body {
    pub fn kind(&self) -> u8 {
        match self {
            Body::Commit(_) => KIND_COMMIT,
            Body::Data(_) => KIND_DATA,
            Body::Reveal { .. } => KIND_REVEAL,
            Body::Sketch { .. } => KIND_SKETCH,
            Body::Verdict { .. } => KIND_VERDICT,
            Body::ViewChange { .. } => KIND_VIEW_CHANGE,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Body::Commit(_) => "commit",
            Body::Data(_) => "data",
            Body::Reveal { .. } => "reveal",
            Body::Sketch { .. } => "sketch",
            Body::Verdict { .. } => "verdict",
            Body::ViewChange { .. } => "view-change",
        }
    }
}

/// A signed message. `payload` is empty except for data messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub sender: u16,
    pub view: u32,
    pub body: Body,
    pub sig: [u8; 64],
    /// The ML-DSA-87 signature ([`MLDSA87_SIGNATURE_LEN`] bytes) over the same digest, with
    /// context [`MLDSA_MSG_CONTEXT`]: present exactly in hybrid rings.
    pub pq_sig: Option<Vec<u8>>,
    pub payload: Vec<i64>,
}

/// The little-endian bytes of `v`: a view of the slice itself on little-endian targets.
pub fn le_bytes(v: &[i64]) -> Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        Cow::Borrowed(bytemuck::cast_slice(v))
    } else {
        Cow::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }
}

/// The digest a data message's header carries for its payload (protocol v2): a two-level
/// SHA3-256 tree, `H("gym-ring-v2/data\0" ‖ u64 count ‖ H(leaf_0) ‖ … ‖ H(leaf_m−1))`, where the
/// leaves are consecutive runs of [`LEAF_ELEMENTS`] elements (the last one shorter) as
/// little-endian bytes. The leaves are hashed several at a time on the SIMD lanes of
/// [`sha3_256_many`]; the structure is fixed by `count`, so a collision of the tree is a
/// collision of SHA3-256.
pub fn payload_digest(payload: &[i64]) -> [u8; 32] {
    digest_of_leaves(payload.len(), &payload_leaves(payload))
}

/// The leaf digests `H(leaf_i)` of [`payload_digest`].
pub fn payload_leaves(payload: &[i64]) -> Vec<[u8; 32]> {
    leaves_of_bytes(&le_bytes(payload))
}

/// The leaf digests of a payload given as its little-endian bytes.
pub fn leaves_of_bytes(bytes: &[u8]) -> Vec<[u8; 32]> {
    let leaves: Vec<&[u8]> = bytes.chunks(LEAF_ELEMENTS * 8).collect();
    sha3_256_many(&leaves)
}

/// The root of the payload digest tree of `count` elements from its leaf digests. When a
/// vector's leaves are the leaves of several payloads (every payload starts at a multiple of
/// [`LEAF_ELEMENTS`] of the vector), the vector's digest needs no second pass over its bytes.
pub fn digest_of_leaves(count: usize, leaves: &[[u8; 32]]) -> [u8; 32] {
    debug_assert_eq!(leaves.len(), count.div_ceil(LEAF_ELEMENTS));
    let mut h = Sha3_256::new();
    h.update(DATA_DOMAIN);
    h.update((count as u64).to_le_bytes());
    for d in leaves {
        h.update(d);
    }
    h.finalize().into()
}

fn put_evidence(out: &mut Vec<u8>, ev: &[Signed]) {
    out.extend_from_slice(&(ev.len() as u32).to_le_bytes());
    for e in ev {
        let b = encode(e);
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(&b);
    }
}

/// `kind ‖ sender ‖ view ‖ body`: the part the signature covers.
pub fn signed_part(sender: u16, view: u32, body: &Body) -> Vec<u8> {
    let mut out = vec![body.kind()];
    out.extend_from_slice(&sender.to_le_bytes());
    out.extend_from_slice(&view.to_le_bytes());
    match body {
        Body::Commit(c) => {
            out.extend_from_slice(&c.weight.to_le_bytes());
            out.extend_from_slice(&c.exponent.to_le_bytes());
            out.extend_from_slice(&c.layout);
            out.extend_from_slice(&c.input);
            out.extend_from_slice(&c.nonce_hash);
            out.extend_from_slice(&c.members);
            out.extend_from_slice(&(c.timestamp.len() as u16).to_le_bytes());
            out.extend_from_slice(c.timestamp.as_bytes());
        }
        Body::Data(d) => {
            out.push(d.phase);
            out.extend_from_slice(&d.step.to_le_bytes());
            out.extend_from_slice(&d.segment.to_le_bytes());
            out.extend_from_slice(&d.chunk.to_le_bytes());
            out.extend_from_slice(&d.digest);
        }
        Body::Reveal { nonce } => out.extend_from_slice(nonce),
        Body::Sketch { sketches } => {
            out.extend_from_slice(&(sketches.len() as u16).to_le_bytes());
            for s in sketches {
                out.extend_from_slice(&s.to_le_bytes());
            }
        }
        Body::Verdict {
            ok,
            result,
            evidence,
        } => {
            out.push(*ok as u8);
            out.extend_from_slice(result);
            put_evidence(&mut out, evidence);
        }
        Body::ViewChange { evidence } => put_evidence(&mut out, evidence),
    }
    out
}

/// The 32-byte digest that is signed: `H("gym-ring-v1/msg\0" ‖ R ‖ signed part)`.
pub fn signing_digest(ring: &[u8; 32], signed_part: &[u8]) -> [u8; 32] {
    let mut h = Sha3_256::new();
    h.update(MSG_DOMAIN);
    h.update(ring);
    h.update(signed_part);
    h.finalize().into()
}

/// The signatures of a message over its signing digest `d`: Ed25519, and in a hybrid ring
/// ML-DSA-87 with context [`MLDSA_MSG_CONTEXT`] (`None` when `id` has no ML-DSA-87 key;
/// a member of a hybrid ring always has one, see `RingSpec::member_index`).
pub fn sign_digest(id: &Identity, hybrid: bool, d: &[u8; 32]) -> ([u8; 64], Option<Vec<u8>>) {
    let pq = if hybrid {
        id.sign_ml_dsa(d, MLDSA_MSG_CONTEXT)
    } else {
        None
    };
    (id.sign_ed25519(d), pq)
}

/// Whether the signatures of a message with signing digest `d` verify under `key`. A key with
/// an ML-DSA-87 half (a member of a hybrid ring) needs both signatures to verify; a key without
/// one accepts only a message without an ML-DSA-87 signature.
pub fn verify_digest(
    key: &PublicIdentity,
    d: &[u8; 32],
    sig: &[u8; 64],
    pq: Option<&[u8]>,
) -> bool {
    if !key.verify_ed25519(d, sig) {
        return false;
    }
    match (key.ml_dsa_87.is_some(), pq) {
        (true, Some(pq)) => key.verify_ml_dsa(d, MLDSA_MSG_CONTEXT, pq),
        (false, None) => true,
        _ => false,
    }
}

impl Signed {
    /// Signs a message for the ring with digest `ring`; `hybrid`: the ring is hybrid (then
    /// the message also gets an ML-DSA-87 signature).
    pub fn sign(
        id: &Identity,
        ring: &[u8; 32],
        hybrid: bool,
        sender: u16,
        view: u32,
        body: Body,
        payload: Vec<i64>,
    ) -> Self {
        let d = signing_digest(ring, &signed_part(sender, view, &body));
        let (sig, pq_sig) = sign_digest(id, hybrid, &d);
        Signed {
            sender,
            view,
            body,
            sig,
            pq_sig,
            payload,
        }
    }

    /// Whether the message's signatures verify under `key` ([`verify_digest`]: both halves
    /// when the key has an ML-DSA-87 half).
    pub fn verify(&self, ring: &[u8; 32], key: &PublicIdentity) -> bool {
        let d = signing_digest(ring, &signed_part(self.sender, self.view, &self.body));
        verify_digest(key, &d, &self.sig, self.pq_sig.as_deref())
    }

    /// The message without its payload (what is kept as a receipt).
    pub fn header_only(&self) -> Signed {
        Signed {
            payload: Vec::new(),
            ..self.clone()
        }
    }
}

/// Room left at the end of every encoded message for the transport's AEAD tag, so that sealing
/// in place does not reallocate.
pub const TRAILER_ROOM: usize = 16;

/// The encoding of `m`; with its ML-DSA-87 signature when it has one (hybrid rings).
pub fn encode(m: &Signed) -> Vec<u8> {
    let mut out = signed_part(m.sender, m.view, &m.body);
    let pq = m.pq_sig.as_deref().unwrap_or_default();
    out.reserve(64 + pq.len() + codec::max_encoded_len(m.payload.len()) + TRAILER_ROOM);
    out.extend_from_slice(&m.sig);
    out.extend_from_slice(pq);
    if let Body::Data(_) = m.body {
        codec::encode_into(&m.payload, &mut out);
    }
    out
}

/// The wire encoding of a raw data frame (of [`data_frame`], prefix written): the prefix up
/// to its `u32 count`, then the packed payload, with room for the AEAD tag. Equal to
/// [`encode`] of the same message.
pub fn pack_frame(raw: &[u8], hybrid: bool) -> Vec<u8> {
    let pre = data_prefix(hybrid);
    let payload = &raw[pre..];
    let mut out =
        Vec::with_capacity(pre - 4 + codec::max_encoded_len(payload.len() / 8) + TRAILER_ROOM);
    out.extend_from_slice(&raw[..pre - 4]);
    codec::encode_le_into(payload, &mut out);
    out
}

/// The raw frame of a received data message whose packed payload is `packed[range]` (the
/// range [`decode_split`] gives): the same prefix, then `count × i64` little-endian.
pub fn unpack_frame(
    packed: &[u8],
    range: std::ops::Range<usize>,
    hybrid: bool,
) -> Result<Vec<u8>, CodecError> {
    let stream = &packed[range.clone()];
    let count = codec::count_of(stream)?;
    let pre = data_prefix(hybrid);
    debug_assert_eq!(range.start, pre - 4);
    let mut raw = Vec::with_capacity(pre + 8 * count + TRAILER_ROOM);
    raw.extend_from_slice(&packed[..pre]);
    raw.resize(pre + 8 * count, 0);
    codec::decode_le_into(stream, &mut raw[pre..])?;
    Ok(raw)
}

/// Bytes of an encoded data message before its payload in a ring without ML-DSA-87 keys:
/// `kind ‖ sender ‖ view ‖ phase ‖ step ‖ segment ‖ chunk ‖ digest ‖ signature ‖ u32 count`.
pub const DATA_PREFIX: usize = 1 + 2 + 4 + 1 + 2 + 2 + 4 + 32 + 64 + 4;

/// [`DATA_PREFIX`] of a hybrid ring: the ML-DSA-87 signature follows the Ed25519 one.
pub const DATA_PREFIX_HYBRID: usize = DATA_PREFIX + MLDSA87_SIGNATURE_LEN;

/// Bytes of an encoded data message before its payload, in a hybrid ring or not.
pub const fn data_prefix(hybrid: bool) -> usize {
    if hybrid {
        DATA_PREFIX_HYBRID
    } else {
        DATA_PREFIX
    }
}

/// A data message's frame with room for its prefix ([`data_prefix`] of `hybrid`) and a
/// payload of `count` elements, whose little-endian bytes `fill` writes (it gets exactly
/// `8 · count` bytes). The prefix is written by [`put_data_prefix`] once the payload's digest
/// is signed. Building the frame this way writes the payload once, straight from the reduce,
/// instead of into a vector that [`encode`] then copies.
pub fn data_frame(count: usize, hybrid: bool, fill: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let pre = data_prefix(hybrid);
    let mut b = Vec::with_capacity(pre + 8 * count + TRAILER_ROOM);
    b.resize(pre + 8 * count, 0);
    fill(&mut b[pre..]);
    b
}

/// Writes the prefix of a data message into a frame of [`data_frame`] (made with `hybrid` =
/// `pq_sig.is_some()`): the result is byte-for-byte [`encode`] of the same signed message.
pub fn put_data_prefix(
    frame: &mut [u8],
    sender: u16,
    view: u32,
    h: &DataHeader,
    sig: &[u8; 64],
    pq_sig: Option<&[u8]>,
) {
    let pq = pq_sig.unwrap_or_default();
    let pre = data_prefix(pq_sig.is_some());
    debug_assert_eq!(pq.len(), pre - DATA_PREFIX);
    let count = ((frame.len() - pre) / 8) as u32;
    let head = signed_part(sender, view, &Body::Data(*h));
    debug_assert_eq!(head.len() + 64 + 4, DATA_PREFIX);
    let (head_dst, rest) = frame[..pre].split_at_mut(head.len());
    head_dst.copy_from_slice(&head);
    let (sig_dst, rest) = rest.split_at_mut(64);
    sig_dst.copy_from_slice(sig);
    let (pq_dst, count_dst) = rest.split_at_mut(pq.len());
    pq_dst.copy_from_slice(pq);
    count_dst.copy_from_slice(&count.to_le_bytes());
}

/// `dst[k] = v[k]` as little-endian bytes (`dst.len() == 8 · v.len()`).
#[inline]
pub fn put_le(dst: &mut [u8], v: &[i64]) {
    for (o, x) in dst.chunks_exact_mut(8).zip(v) {
        o.copy_from_slice(&x.to_le_bytes());
    }
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        let (h, t) = self
            .b
            .split_at_checked(n)
            .ok_or(WireError::Truncated { what })?;
        self.b = t;
        Ok(h)
    }
    fn arr<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        Ok(self.take(N, what)?.try_into().expect("length checked"))
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(self.arr(what)?))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.arr(what)?))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.arr(what)?))
    }
    fn evidence(&mut self, depth: u8, hybrid: bool) -> Result<Vec<Signed>, WireError> {
        let n = self.u32("evidence count")? as usize;
        if n > self.b.len() / 4 {
            return Err(WireError::Truncated { what: "evidence" });
        }
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let len = self.u32("evidence length")? as usize;
            let b = self.take(len, "evidence")?;
            v.push(decode_depth(b, depth + 1, true, hybrid)?.0);
        }
        Ok(v)
    }
}

/// Decodes a message of a ring that is `hybrid` (then it carries an ML-DSA-87 signature, and
/// so does every message of its evidence) or not (then none does).
pub fn decode(b: &[u8], hybrid: bool) -> Result<Signed, WireError> {
    Ok(decode_depth(b, 0, true, hybrid)?.0)
}

/// [`decode`] without decoding a data message's payload: the message comes back with an empty
/// `payload`, and the payload's packed bytes (`u32 count ‖ blocks`, [`codec`]) are `b[range]`
/// (an empty range for other kinds); [`unpack_frame`] decodes them.
pub fn decode_split(b: &[u8], hybrid: bool) -> Result<(Signed, std::ops::Range<usize>), WireError> {
    decode_depth(b, 0, false, hybrid)
}

/// `count` elements from their little-endian bytes.
#[inline]
pub fn get_le(bytes: &[u8]) -> impl ExactSizeIterator<Item = i64> + '_ {
    bytes
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
}

fn decode_depth(
    b: &[u8],
    depth: u8,
    copy_payload: bool,
    hybrid: bool,
) -> Result<(Signed, std::ops::Range<usize>), WireError> {
    let mut r = Reader { b };
    let kind = r.u8("kind")?;
    let sender = r.u16("sender")?;
    let view = r.u32("view")?;
    let body = match kind {
        KIND_COMMIT => {
            let weight = r.u64("weight")?;
            let exponent = r.u32("exponent")? as i32;
            let layout = r.arr("layout")?;
            let input = r.arr("input digest")?;
            let nonce_hash = r.arr("nonce hash")?;
            let members = r.arr("members digest")?;
            let tl = r.u16("timestamp length")? as usize;
            let ts = r.take(tl, "timestamp")?;
            let timestamp = String::from_utf8(ts.to_vec()).map_err(|_| WireError::Invalid {
                what: "timestamp (not UTF-8)",
                value: tl as u64,
            })?;
            Body::Commit(Commit {
                weight,
                exponent,
                layout,
                input,
                nonce_hash,
                members,
                timestamp,
            })
        }
        KIND_DATA => Body::Data(DataHeader {
            phase: r.u8("phase")?,
            step: r.u16("step")?,
            segment: r.u16("segment")?,
            chunk: r.u32("chunk")?,
            digest: r.arr("payload digest")?,
        }),
        KIND_REVEAL => Body::Reveal {
            nonce: r.arr("nonce")?,
        },
        KIND_SKETCH => {
            let n = r.u16("sketch count")? as usize;
            let mut sketches = Vec::with_capacity(n);
            for _ in 0..n {
                sketches.push(r.u64("sketch")?);
            }
            Body::Sketch { sketches }
        }
        KIND_VERDICT | KIND_VIEW_CHANGE if depth > 0 => {
            return Err(WireError::Invalid {
                what: "nested message kind",
                value: kind as u64,
            });
        }
        KIND_VERDICT => {
            let ok = match r.u8("ok")? {
                0 => false,
                1 => true,
                v => {
                    return Err(WireError::Invalid {
                        what: "ok flag",
                        value: v as u64,
                    });
                }
            };
            let result = r.arr("result digest")?;
            let evidence = r.evidence(depth, hybrid)?;
            Body::Verdict {
                ok,
                result,
                evidence,
            }
        }
        KIND_VIEW_CHANGE => Body::ViewChange {
            evidence: r.evidence(depth, hybrid)?,
        },
        kind => return Err(WireError::UnknownKind { kind }),
    };
    let sig = r.arr("signature")?;
    let pq_sig = if hybrid {
        Some(
            r.take(MLDSA87_SIGNATURE_LEN, "ML-DSA-87 signature")?
                .to_vec(),
        )
    } else {
        None
    };
    let mut payload = Vec::new();
    let mut range = 0..0;
    if kind == KIND_DATA {
        // The packed payload is the rest of the message.
        let start = b.len() - r.b.len();
        let bytes = r.take(r.b.len(), "payload")?;
        range = start..b.len();
        if copy_payload {
            payload = codec::decode(bytes)?;
        } else {
            codec::count_of(bytes)?;
        }
    }
    if !r.b.is_empty() {
        return Err(WireError::Trailing { count: r.b.len() });
    }
    Ok((
        Signed {
            sender,
            view,
            body,
            sig,
            pq_sig,
            payload,
        },
        range,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id() -> Identity {
        Identity::from_seeds(&[9; 32], None)
    }

    /// The same Ed25519 key with an ML-DSA-87 half.
    fn hybrid_id() -> Identity {
        Identity::from_seeds(&[9; 32], Some(&[10; 32]))
    }

    /// One message of every kind, signed by `id` for a ring that is `hybrid` or not.
    fn samples_of(id: &Identity, hybrid: bool) -> Vec<Signed> {
        let ring = [7u8; 32];
        let data = Signed::sign(
            id,
            &ring,
            hybrid,
            1,
            2,
            Body::Data(DataHeader {
                phase: PHASE_GATHER,
                step: 3,
                segment: 1,
                chunk: 9,
                digest: payload_digest(&[1, -2, 3]),
            }),
            vec![1, -2, 3],
        );
        vec![
            Signed::sign(
                id,
                &ring,
                hybrid,
                0,
                0,
                Body::Commit(Commit {
                    weight: 5,
                    exponent: -3,
                    layout: [1; 32],
                    input: [2; 32],
                    nonce_hash: [3; 32],
                    members: [4; 32],
                    timestamp: "2024-01-01T00:00:00Z".into(),
                }),
                vec![],
            ),
            data.clone(),
            Signed::sign(
                id,
                &ring,
                hybrid,
                1,
                2,
                Body::Reveal { nonce: [5; 32] },
                vec![],
            ),
            Signed::sign(
                id,
                &ring,
                hybrid,
                1,
                2,
                Body::Sketch {
                    sketches: vec![1, 2, 3],
                },
                vec![],
            ),
            Signed::sign(
                id,
                &ring,
                hybrid,
                1,
                2,
                Body::Verdict {
                    ok: false,
                    result: [6; 32],
                    evidence: vec![data.clone()],
                },
                vec![],
            ),
            Signed::sign(
                id,
                &ring,
                hybrid,
                1,
                2,
                Body::ViewChange {
                    evidence: vec![data],
                },
                vec![],
            ),
        ]
    }

    #[test]
    fn round_trip_and_signatures() {
        for (id, hybrid) in [(id(), false), (hybrid_id(), true)] {
            round_trip_and_signatures_of(&id, hybrid);
        }
    }

    fn round_trip_and_signatures_of(id: &Identity, hybrid: bool) {
        let key = id.public();
        for m in samples_of(id, hybrid) {
            assert_eq!(
                m.pq_sig.as_ref().map(Vec::len),
                hybrid.then_some(MLDSA87_SIGNATURE_LEN)
            );
            let b = encode(&m);
            let back = decode(&b, hybrid).unwrap();
            assert_eq!(back, m);
            // Read as the other kind of ring, the message does not decode.
            assert!(decode(&b, !hybrid).is_err());
            // The same message with its payload left in the frame.
            let (head, range) = decode_split(&b, hybrid).unwrap();
            assert!(head.payload.is_empty());
            if let Body::Data(_) = m.body {
                assert_eq!(range, data_prefix(hybrid) - 4..b.len());
                assert_eq!(codec::decode(&b[range.clone()]).unwrap(), m.payload);
                let raw = unpack_frame(&b, range.clone(), hybrid).unwrap();
                assert_eq!(
                    get_le(&raw[data_prefix(hybrid)..]).collect::<Vec<_>>(),
                    m.payload
                );
                assert_eq!(pack_frame(&raw, hybrid), b);
            } else {
                assert!(range.is_empty());
            }
            assert_eq!(
                Signed {
                    payload: m.payload.clone(),
                    ..head
                },
                m
            );
            assert!(back.verify(&[7; 32], &key));
            assert!(!back.verify(&[8; 32], &key), "bound to the ring digest");
            for cut in 0..b.len() {
                assert!(decode(&b[..cut], hybrid).is_err());
            }
        }
    }

    #[test]
    fn a_hybrid_message_needs_both_signatures() {
        let id = hybrid_id();
        let key = id.public();
        let ed_only = Identity::from_seeds(&[9; 32], None).public();
        for m in samples_of(&id, true) {
            assert!(m.verify(&[7; 32], &key));
            // Corrupt the ML-DSA-87 signature: the Ed25519 one still verifies, the message
            // does not, in memory and after a trip over the wire.
            let mut bad = m.clone();
            bad.pq_sig.as_mut().unwrap()[100] ^= 0x04;
            let d = signing_digest(&[7; 32], &signed_part(bad.sender, bad.view, &bad.body));
            assert!(key.verify_ed25519(&d, &bad.sig));
            assert!(!bad.verify(&[7; 32], &key), "{}", m.body.name());
            let back = decode(&encode(&bad), true).unwrap();
            assert!(!back.verify(&[7; 32], &key));
            // The ML-DSA-87 signature of another message does not do either.
            let mut swapped = m.clone();
            swapped.pq_sig = samples_of(&id, true)[0].pq_sig.clone();
            if m.body.kind() != KIND_COMMIT {
                assert!(!swapped.verify(&[7; 32], &key));
            }
            // Without its ML-DSA-87 signature, a member of a hybrid ring's message is refused;
            // with one, a message is refused under a key that has no ML-DSA-87 half.
            let stripped = Signed {
                pq_sig: None,
                ..m.clone()
            };
            assert!(!stripped.verify(&[7; 32], &key));
            assert!(stripped.verify(&[7; 32], &ed_only));
            assert!(!m.verify(&[7; 32], &ed_only));
        }
        // A valid Ed25519 signature with a corrupted ML-DSA-87 one, as a data frame.
        let payload = vec![4i64, -5, 6];
        let h = DataHeader {
            phase: PHASE_SCATTER,
            step: 0,
            segment: 0,
            chunk: 0,
            digest: payload_digest(&payload),
        };
        let m = Signed::sign(&id, &[7; 32], true, 1, 0, Body::Data(h), payload.clone());
        let mut frame = data_frame(3, true, |b| put_le(b, &payload));
        let mut pq = m.pq_sig.clone().unwrap();
        pq[MLDSA87_SIGNATURE_LEN - 1] ^= 0x80;
        put_data_prefix(&mut frame, 1, 0, &h, &m.sig, Some(&pq));
        let (got, _) = decode_split(&pack_frame(&frame, true), true).unwrap();
        assert_eq!(got.sig, m.sig);
        assert!(!got.verify(&[7; 32], &key));
    }

    #[test]
    fn a_data_frame_is_the_encoding_of_its_message() {
        for (id, hybrid) in [(id(), false), (hybrid_id(), true)] {
            a_data_frame_is_the_encoding_of_its_message_of(&id, hybrid);
        }
    }

    fn a_data_frame_is_the_encoding_of_its_message_of(id: &Identity, hybrid: bool) {
        for len in [0usize, 1, 3, LEAF_ELEMENTS + 9] {
            let payload: Vec<i64> = (0..len as i64).map(|k| k * -7_000_000_007 + 3).collect();
            let h = DataHeader {
                phase: PHASE_GATHER,
                step: 3,
                segment: 2,
                chunk: 11,
                digest: payload_digest(&payload),
            };
            let m = Signed::sign(id, &[7; 32], hybrid, 5, 9, Body::Data(h), payload.clone());
            let mut frame = data_frame(len, hybrid, |b| put_le(b, &payload));
            assert!(frame.capacity() >= frame.len() + TRAILER_ROOM);
            put_data_prefix(&mut frame, 5, 9, &h, &m.sig, m.pq_sig.as_deref());
            assert_eq!(pack_frame(&frame, hybrid), encode(&m), "len {len}");
            let leaves = leaves_of_bytes(&frame[data_prefix(hybrid)..]);
            assert_eq!(leaves, payload_leaves(&payload));
            assert_eq!(digest_of_leaves(len, &leaves), h.digest);
        }
    }

    /// The tree digest computed leaf by leaf with the `sha3` crate alone.
    fn payload_digest_reference(payload: &[i64]) -> [u8; 32] {
        let bytes: Vec<u8> = payload.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut h = Sha3_256::new();
        h.update(b"gym-ring-v2/data\0");
        h.update((payload.len() as u64).to_le_bytes());
        for leaf in bytes.chunks(LEAF_ELEMENTS * 8) {
            h.update(Sha3_256::digest(leaf));
        }
        h.finalize().into()
    }

    #[test]
    fn payload_digest_is_the_specified_tree() {
        let lens = [0, 1, 7, LEAF_ELEMENTS - 1, LEAF_ELEMENTS, LEAF_ELEMENTS + 1];
        let lens = lens
            .into_iter()
            .chain([9 * LEAF_ELEMENTS + 5, 17 * LEAF_ELEMENTS]);
        let mut seen = std::collections::HashSet::new();
        for len in lens {
            let v: Vec<i64> = (0..len as i64)
                .map(|k| k.wrapping_mul(0x1e37_79b9_7f4a_7c15))
                .collect();
            let d = payload_digest(&v);
            assert_eq!(d, payload_digest_reference(&v), "len {len}");
            assert!(seen.insert(d), "distinct lengths give distinct digests");
            if len > 0 {
                // Any changed element, in any leaf, changes the digest.
                for k in [0, len / 2, len - 1] {
                    let mut w = v.clone();
                    w[k] ^= 1 << (k % 64);
                    assert_ne!(payload_digest(&w), d, "len {len} element {k}");
                }
            }
        }
    }

    proptest! {
        #[test]
        fn decode_never_panics_and_reencodes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(m) = decode(&bytes, false) {
                prop_assert_eq!(encode(&m), bytes);
            }
        }
    }
}
