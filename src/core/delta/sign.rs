//! What a delta's signatures cover.
//!
//! Both signatures sign the same 32-byte message
//! `SHA3-256("gym-delta-v1/signature\0" ‖ body_digest ‖ ed25519_public ‖ hybrid ‖ ml_dsa_public)`,
//! where `body_digest` is the full SHA3-256 body digest (which covers the header's version,
//! compression and flags bytes, the metadata and every tensor), `hybrid` is one byte (0 or 1) and
//! `ml_dsa_public` is present only when hybrid. Binding both public keys means neither signature
//! can be stripped or swapped for another signer's; the domain tag means no other gym signature
//! (ring messages, reward claims) can be replayed as a delta signature. ML-DSA-87 additionally
//! uses the FIPS 204 context string [`SIGNATURE_CONTEXT`].

use sha3::{Digest, Sha3_256};

pub const SIGNATURE_CONTEXT: &[u8] = b"gym-delta-v1";
const ENVELOPE_DOMAIN: &[u8] = b"gym-delta-v1/signature\0";

/// The parsed signature section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureBlock {
    pub ed25519_public: [u8; 32],
    pub ed25519_signature: [u8; 64],
    /// (public key 2592 bytes, signature 4627 bytes) when hybrid.
    pub ml_dsa_87: Option<(Vec<u8>, Vec<u8>)>,
}

impl SignatureBlock {
    pub fn encoded_len(hybrid: bool) -> u64 {
        use crate::core::keys::*;
        let base = (ED25519_PUBLIC_LEN + ED25519_SIGNATURE_LEN) as u64;
        if hybrid {
            base + (MLDSA87_PUBLIC_LEN + MLDSA87_SIGNATURE_LEN) as u64
        } else {
            base
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::encoded_len(self.ml_dsa_87.is_some()) as usize);
        v.extend_from_slice(&self.ed25519_public);
        v.extend_from_slice(&self.ed25519_signature);
        if let Some((pk, sig)) = &self.ml_dsa_87 {
            v.extend_from_slice(pk);
            v.extend_from_slice(sig);
        }
        v
    }
}

/// The message both algorithms sign.
pub fn signing_message(
    body_digest: &[u8; 32],
    ed25519_public: &[u8; 32],
    ml_dsa_public: Option<&[u8]>,
) -> [u8; 32] {
    let mut h = Sha3_256::new();
    h.update(ENVELOPE_DOMAIN);
    h.update(body_digest);
    h.update(ed25519_public);
    match ml_dsa_public {
        Some(pk) => {
            h.update([1u8]);
            h.update(pk);
        }
        None => h.update([0u8]),
    }
    h.finalize().into()
}
