//! The checks on a received message that need no protocol state: decoding, the sender, the
//! signature, and for a data message its payload digest. The driver runs them on each
//! connection's reader task, so that they overlap with the machine's reduce work.

use std::ops::Range;
use std::sync::Arc;

use super::Refused;
use crate::core::ring::config::RingSpec;
use crate::core::ring::wire::{self, Body, Signed};

/// The stateless checks of [`super::Machine`]'s messages.
#[derive(Clone)]
pub struct Verifier {
    ring: Arc<RingSpec>,
    rd: [u8; 32],
}

/// A message that passed [`Verifier::check`]; only `check` makes one.
#[derive(Debug)]
pub struct Checked {
    from: usize,
    /// The message; a data message's payload stays in `payload` (not copied out).
    msg: Signed,
    payload: Payload,
}

impl Checked {
    pub(super) fn into_parts(self) -> (usize, Signed, Payload) {
        (self.from, self.msg, self.payload)
    }
}

/// A checked data message's payload, unpacked: its bytes in a raw frame ([`wire::data_frame`]
/// layout), and its leaf digests (the tree under the checked payload digest). Empty for other kinds.
#[derive(Debug, Default)]
pub(super) struct Payload {
    pub(super) frame: Vec<u8>,
    pub(super) range: Range<usize>,
    pub(super) leaves: Vec<[u8; 32]>,
}

impl Payload {
    /// Elements.
    pub(super) fn len(&self) -> usize {
        self.range.len() / 8
    }
}

impl Verifier {
    pub fn new(ring: Arc<RingSpec>) -> Self {
        Verifier {
            rd: ring.digest(),
            ring,
        }
    }

    pub fn check(&self, from: usize, bytes: &[u8]) -> Result<Checked, Refused> {
        self.check_frame(from, bytes.to_vec())
    }

    /// [`Verifier::check`] of a frame it keeps: a data message's packed payload is unpacked
    /// into a raw frame ([`wire::unpack_frame`]) that the machine reduces and forwards in place.
    pub fn check_frame(&self, from: usize, frame: Vec<u8>) -> Result<Checked, Refused> {
        let (m, range) = wire::decode_split(&frame, self.ring.is_hybrid())
            .map_err(|error| Refused::Decode { from, error })?;
        if m.sender as usize != from {
            return Err(Refused::WrongSender {
                from,
                sender: m.sender,
            });
        }
        let Some(member) = self.ring.members.get(from) else {
            return Err(Refused::NotInView {
                sender: from,
                view: m.view,
            });
        };
        if !m.verify(&self.rd, &member.public) {
            return Err(Refused::BadSignature {
                sender: from,
                kind: m.body.name(),
            });
        }
        let mut payload = Payload::default();
        if let Body::Data(h) = &m.body {
            // The integers are signed, not their packing: unpack, then check the digest.
            let hybrid = self.ring.is_hybrid();
            let frame = wire::unpack_frame(&frame, range, hybrid).map_err(|e| Refused::Decode {
                from,
                error: e.into(),
            })?;
            let range = wire::data_prefix(hybrid)..frame.len();
            let leaves = wire::leaves_of_bytes(&frame[range.clone()]);
            if wire::digest_of_leaves(range.len() / 8, &leaves) != h.digest {
                return Err(Refused::Unexpected {
                    sender: from,
                    view: m.view,
                    what: "data whose payload does not match its digest".into(),
                });
            }
            payload = Payload {
                frame,
                range,
                leaves,
            };
        }
        Ok(Checked {
            from,
            msg: m,
            payload,
        })
    }
}
