//! Signed JSON records (ring receipts, eval reports, reward claims).
//!
//! A record is never signed as JSON text. Its fields are encoded into a domain-separated binary
//! envelope, and both algorithms sign the 32-byte digest
//!
//! ```text
//! SHA3-256( domain ‖ 0x00 ‖ field_1 ‖ … ‖ field_n ‖ ed25519_public ‖ hybrid ‖ [ml_dsa_public] )
//! ```
//!
//! where each field is encoded by type: a string as its length (u32, big-endian) and UTF-8
//! bytes; an integer as u64 big-endian; a number as the 8 bytes of its IEEE-754 double,
//! big-endian; an optional value as 0x00 (absent) or 0x01 followed by the value. `hybrid` is one
//! byte, 0 or 1. The domain (`gym-ring-receipt-v1`, `gym-eval-report-v1`, `gym-reward-claim-v1`)
//! means a signature made for one purpose never verifies for another, nor as a delta signature.
//! Ed25519 is verified with `verify_strict`; ML-DSA-87 uses the domain as its FIPS 204 context.

use serde::{Deserialize, Serialize};
use sha3::{Digest, Sha3_256};

use super::RewardError;
use crate::core::keys::{self, Identity, PublicIdentity};

/// A record's fields being encoded for signing.
pub struct Envelope {
    h: Sha3_256,
}

impl Envelope {
    pub fn new(domain: &str) -> Self {
        let mut h = Sha3_256::new();
        h.update(domain.as_bytes());
        h.update([0u8]);
        Envelope { h }
    }

    pub fn str(mut self, s: &str) -> Self {
        self.h.update((s.len() as u32).to_be_bytes());
        self.h.update(s.as_bytes());
        self
    }

    pub fn u64(mut self, v: u64) -> Self {
        self.h.update(v.to_be_bytes());
        self
    }

    pub fn f64(mut self, v: f64) -> Self {
        self.h.update(v.to_bits().to_be_bytes());
        self
    }

    pub fn opt_str(mut self, v: Option<&str>) -> Self {
        match v {
            None => {
                self.h.update([0u8]);
                self
            }
            Some(s) => {
                self.h.update([1u8]);
                self.str(s)
            }
        }
    }

    pub fn opt_u64(mut self, v: Option<u64>) -> Self {
        match v {
            None => {
                self.h.update([0u8]);
                self
            }
            Some(x) => {
                self.h.update([1u8]);
                self.u64(x)
            }
        }
    }

    /// Binds the signer's public keys and returns the message both algorithms sign.
    pub fn finish(mut self, signer: &PublicIdentity) -> [u8; 32] {
        self.h.update(signer.ed25519.as_bytes());
        match signer.ml_dsa_bytes() {
            Some(pk) => {
                self.h.update([1u8]);
                self.h.update(&pk);
            }
            None => self.h.update([0u8]),
        }
        self.h.finalize().into()
    }
}

/// Who signed: public keys, base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignerJson {
    pub ed25519: String,
    #[serde(default)]
    pub ml_dsa_87: Option<String>,
}

/// The signatures, base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureJson {
    pub ed25519: String,
    #[serde(default)]
    pub ml_dsa_87: Option<String>,
}

/// Signs `fields` under `domain`; returns the signer and signature blocks to store.
pub fn sign(id: &Identity, domain: &str, fields: Envelope) -> (SignerJson, SignatureJson) {
    let public = id.public();
    let msg = fields.finish(&public);
    let ed = id.sign_ed25519(&msg);
    let pq = id.sign_ml_dsa(&msg, domain.as_bytes());
    (
        SignerJson {
            ed25519: public.ed25519_base64(),
            ml_dsa_87: public.ml_dsa_base64(),
        },
        SignatureJson {
            ed25519: keys::b64(&ed),
            ml_dsa_87: pq.map(|s| keys::b64(&s)),
        },
    )
}

/// Checks a record's signatures; returns the signer. `file` and `record` name it in errors.
pub fn verify(
    domain: &str,
    fields: Envelope,
    signer: Option<&SignerJson>,
    signature: Option<&SignatureJson>,
    file: &str,
    record: &str,
) -> Result<PublicIdentity, RewardError> {
    let (Some(signer), Some(signature)) = (signer, signature) else {
        return Err(RewardError::Unsigned {
            file: file.to_string(),
            record: record.to_string(),
        });
    };
    let bad = |reason: String| RewardError::Record {
        file: file.to_string(),
        record: record.to_string(),
        reason,
    };
    let ed =
        keys::unb64(&signer.ed25519).ok_or_else(|| bad("signer.ed25519 is not base64".into()))?;
    let pq = match &signer.ml_dsa_87 {
        Some(s) => {
            Some(keys::unb64(s).ok_or_else(|| bad("signer.ml_dsa_87 is not base64".into()))?)
        }
        None => None,
    };
    let public =
        PublicIdentity::from_raw(&ed, pq.as_deref()).map_err(|e| bad(format!("signer: {e}")))?;
    let msg = fields.finish(&public);
    let bad_sig = |algorithm| RewardError::BadSignature {
        file: file.to_string(),
        record: record.to_string(),
        algorithm,
    };
    let ed_sig = keys::unb64(&signature.ed25519)
        .ok_or_else(|| bad("signature.ed25519 is not base64".into()))?;
    if !public.verify_ed25519(&msg, &ed_sig) {
        return Err(bad_sig("Ed25519"));
    }
    match (&signer.ml_dsa_87, &signature.ml_dsa_87) {
        (None, None) => {}
        (Some(_), Some(s)) => {
            let sig =
                keys::unb64(s).ok_or_else(|| bad("signature.ml_dsa_87 is not base64".into()))?;
            if !public.verify_ml_dsa(&msg, domain.as_bytes(), &sig) {
                return Err(bad_sig("ML-DSA-87"));
            }
        }
        (Some(_), None) => {
            return Err(bad(
                "signer has an ML-DSA-87 key but there is no ML-DSA-87 signature".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(bad(
                "ML-DSA-87 signature without an ML-DSA-87 signer key".into()
            ));
        }
    }
    Ok(public)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(domain: &str, x: u64) -> Envelope {
        Envelope::new(domain)
            .str("subject")
            .u64(x)
            .f64(1.5)
            .opt_str(None)
            .opt_u64(Some(3))
    }

    #[test]
    fn sign_verify_tamper_and_domain() {
        for pq in [None, Some(&[9u8; 32])] {
            let id = Identity::from_seeds(&[7; 32], pq);
            let (signer, sig) = sign(&id, "gym-test-v1", fields("gym-test-v1", 1));
            let who = verify(
                "gym-test-v1",
                fields("gym-test-v1", 1),
                Some(&signer),
                Some(&sig),
                "f",
                "r",
            )
            .unwrap();
            assert_eq!(who, id.public());
            let e = verify(
                "gym-test-v1",
                fields("gym-test-v1", 2),
                Some(&signer),
                Some(&sig),
                "f",
                "r",
            )
            .unwrap_err();
            assert!(matches!(e, RewardError::BadSignature { .. }), "{e}");
            let e = verify(
                "gym-other-v1",
                fields("gym-other-v1", 1),
                Some(&signer),
                Some(&sig),
                "f",
                "r",
            )
            .unwrap_err();
            assert!(matches!(e, RewardError::BadSignature { .. }), "{e}");
            let e = verify(
                "gym-test-v1",
                fields("gym-test-v1", 1),
                None,
                None,
                "f",
                "r",
            )
            .unwrap_err();
            assert!(matches!(e, RewardError::Unsigned { .. }), "{e}");
        }
    }

    #[test]
    fn stripping_the_pq_signature_fails() {
        let id = Identity::from_seeds(&[7; 32], Some(&[9; 32]));
        let (signer, mut sig) = sign(&id, "gym-test-v1", fields("gym-test-v1", 1));
        sig.ml_dsa_87 = None;
        assert!(
            verify(
                "gym-test-v1",
                fields("gym-test-v1", 1),
                Some(&signer),
                Some(&sig),
                "f",
                "r"
            )
            .is_err()
        );
        // Dropping the PQ key too changes the envelope, so the Ed25519 signature fails.
        let mut signer2 = signer.clone();
        signer2.ml_dsa_87 = None;
        let e = verify(
            "gym-test-v1",
            fields("gym-test-v1", 1),
            Some(&signer2),
            Some(&sig),
            "f",
            "r",
        )
        .unwrap_err();
        assert!(matches!(e, RewardError::BadSignature { .. }), "{e}");
    }
}
