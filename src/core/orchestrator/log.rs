//! The append-only decision log. Every [`Decision`] the machine takes is one [`LogEntry`]:
//! its sequence number, time, the digest of the previous entry (a hash chain) and an Ed25519
//! signature of the orchestrator's key over
//!
//! ```text
//! SHA3-256("gym-orch-log-v1\0" ‖ job_id ‖ "\0" ‖ JSON {seq, at_ms, prev, decision})
//! ```
//!
//! so a third party holding the log, the job file and the orchestrator's public key can check
//! every entry and replay the job ([`verify_log`], then `Machine::replay`).

use serde::{Deserialize, Serialize};

use super::machine::Decision;
use crate::core::hash::sha3_256;
use crate::core::keys::{Identity, PublicIdentity, b64, unb64};

const DOMAIN: &[u8] = b"gym-orch-log-v1\0";

/// The digest a log starts its chain from.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub seq: u64,
    pub at_ms: u64,
    /// Hex digest of the previous entry ([`GENESIS`] for the first).
    pub prev: String,
    pub decision: Decision,
    /// Base64 Ed25519 signature of [`LogEntry::digest`].
    pub signature: String,
}

#[derive(Serialize)]
struct Signed<'a> {
    seq: u64,
    at_ms: u64,
    prev: &'a str,
    decision: &'a Decision,
}

impl LogEntry {
    /// What the signature covers.
    pub fn digest(&self, job_id: &str) -> [u8; 32] {
        digest(job_id, self.seq, self.at_ms, &self.prev, &self.decision)
    }

    /// Signs a new entry.
    pub fn sign(
        key: &Identity,
        job_id: &str,
        seq: u64,
        at_ms: u64,
        prev: String,
        decision: Decision,
    ) -> Self {
        let d = digest(job_id, seq, at_ms, &prev, &decision);
        LogEntry {
            seq,
            at_ms,
            prev,
            decision,
            signature: b64(&key.sign_ed25519(&d)),
        }
    }
}

fn digest(job_id: &str, seq: u64, at_ms: u64, prev: &str, decision: &Decision) -> [u8; 32] {
    let body = serde_json::to_vec(&Signed {
        seq,
        at_ms,
        prev,
        decision,
    })
    .expect("a log entry serialises");
    let mut msg = Vec::with_capacity(DOMAIN.len() + job_id.len() + 1 + body.len());
    msg.extend_from_slice(DOMAIN);
    msg.extend_from_slice(job_id.as_bytes());
    msg.push(0);
    msg.extend_from_slice(&body);
    sha3_256(&msg)
}

/// A log that does not check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    #[error("log entry {index}: sequence number {seq}, expected {index}")]
    Sequence { index: u64, seq: u64 },
    #[error("log entry {seq}: prev {got} does not match the previous entry's digest {want}")]
    Chain { seq: u64, got: String, want: String },
    #[error("log entry {seq}: the orchestrator's signature does not verify")]
    Signature { seq: u64 },
    #[error("log entry {seq}: time {at_ms} is before the previous entry's {prev}")]
    Time { seq: u64, at_ms: u64, prev: u64 },
}

impl crate::core::error::Classify for LogError {
    fn class(&self) -> crate::core::error::ErrorClass {
        match self {
            LogError::Signature { .. } => crate::core::error::ErrorClass::Signature,
            _ => crate::core::error::ErrorClass::Malformed,
        }
    }
}

/// Checks sequence numbers, the hash chain, times and every signature; returns the digest of
/// the last entry (the next entry's `prev`).
pub fn verify_log(
    entries: &[LogEntry],
    job_id: &str,
    key: &PublicIdentity,
) -> Result<String, LogError> {
    let mut prev = GENESIS.to_string();
    let mut last_at = 0u64;
    for (i, e) in entries.iter().enumerate() {
        if e.seq != i as u64 {
            return Err(LogError::Sequence {
                index: i as u64,
                seq: e.seq,
            });
        }
        if e.prev != prev {
            return Err(LogError::Chain {
                seq: e.seq,
                got: e.prev.clone(),
                want: prev,
            });
        }
        if e.at_ms < last_at {
            return Err(LogError::Time {
                seq: e.seq,
                at_ms: e.at_ms,
                prev: last_at,
            });
        }
        let d = e.digest(job_id);
        let ok = unb64(&e.signature).is_some_and(|s| key.verify_ed25519(&d, &s));
        if !ok {
            return Err(LogError::Signature { seq: e.seq });
        }
        prev = hex::encode(d);
        last_at = e.at_ms;
    }
    Ok(prev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(key: &Identity, n: u64) -> Vec<LogEntry> {
        let mut prev = GENESIS.to_string();
        let mut out = Vec::new();
        for i in 0..n {
            let e = LogEntry::sign(
                key,
                "job",
                i,
                i * 10,
                prev.clone(),
                Decision::Evict {
                    worker: format!("w{i}"),
                    reason: "test".into(),
                },
            );
            prev = hex::encode(e.digest("job"));
            out.push(e);
        }
        out
    }

    #[test]
    fn entries_survive_a_json_round_trip_bit_exactly() {
        let key = Identity::from_seeds(&[7; 32], None);
        let d = Decision::Reported {
            round: 1,
            worker: "w".into(),
            object: "o".into(),
            weight: 3,
            reward: 0.1 + 0.2,
            loss: -1.0e-300 / 3.0,
        };
        let e = LogEntry::sign(&key, "job", 0, 5, GENESIS.into(), d);
        let back: LogEntry = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
        assert!(verify_log(&[back], "job", &key.public()).is_ok());
    }

    #[test]
    fn a_signed_log_verifies_and_every_tampering_is_caught() {
        let key = Identity::from_seeds(&[7; 32], None);
        let pk = key.public();
        let good = log(&key, 4);
        assert!(verify_log(&good, "job", &pk).is_ok());
        assert!(matches!(
            verify_log(&good, "other-job", &pk),
            Err(LogError::Signature { seq: 0 })
        ));
        let mut t = good.clone();
        t[2].decision = Decision::Stop;
        assert!(matches!(
            verify_log(&t, "job", &pk),
            Err(LogError::Signature { seq: 2 })
        ));
        let mut t = good.clone();
        t.remove(1);
        assert!(matches!(
            verify_log(&t, "job", &pk),
            Err(LogError::Sequence { .. })
        ));
        let mut t = good.clone();
        t[3].at_ms = 1;
        assert!(verify_log(&t, "job", &pk).is_err());
        let other = Identity::from_seeds(&[8; 32], None).public();
        assert!(verify_log(&good, "job", &other).is_err());
        // re-signed entry with a broken chain
        let mut t = good.clone();
        t[1] = LogEntry::sign(&key, "job", 1, 10, GENESIS.into(), t[1].decision.clone());
        assert!(matches!(
            verify_log(&t, "job", &pk),
            Err(LogError::Chain { seq: 1, .. })
        ));
    }
}
