//! Signed requests. Every worker request carries four headers:
//!
//! | header          | value                                              |
//! |-----------------|----------------------------------------------------|
//! | `gym-key`       | the sender's Ed25519 public key, base64            |
//! | `gym-time`      | milliseconds since the Unix epoch                  |
//! | `gym-nonce`     | 16 random bytes, hex                               |
//! | `gym-signature` | Ed25519 over the digest below, base64              |
//!
//! ```text
//! SHA3-256("gym-orch-request-v1\0" ‖ job_id ‖ "\0" ‖ METHOD ‖ "\0" ‖ PATH ‖ "\0" ‖
//!          time ‖ "\0" ‖ nonce ‖ "\0" ‖ SHA3-256(body))
//! ```
//!
//! The domain tag keeps the signature from being valid as any other gym signature, the job id
//! from being replayed against another job, method and path against another endpoint. The
//! server refuses a time more than [`MAX_SKEW_MS`] from its clock and a nonce it has seen within
//! that window ([`NonceCache`]), so a captured request cannot be sent again.

use std::collections::{BTreeMap, VecDeque};

use crate::core::hash::sha3_256;
use crate::core::keys::{Identity, PublicIdentity, b64, unb64};

const DOMAIN: &[u8] = b"gym-orch-request-v1\0";

/// Largest accepted difference between a request's time and the server's clock.
pub const MAX_SKEW_MS: u64 = 60_000;

pub const H_KEY: &str = "gym-key";
pub const H_TIME: &str = "gym-time";
pub const H_NONCE: &str = "gym-nonce";
pub const H_SIG: &str = "gym-signature";

/// The four header values of a signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub key: String,
    pub time_ms: u64,
    pub nonce: String,
    pub signature: String,
}

/// Why a request's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("unsigned request: header {0} is missing")]
    Missing(&'static str),
    #[error("header {header}: {reason}")]
    Malformed {
        header: &'static str,
        reason: String,
    },
    #[error(
        "request time {time_ms} is more than {MAX_SKEW_MS} ms from the server's clock {now_ms}"
    )]
    Stale { time_ms: u64, now_ms: u64 },
    #[error("the signature does not verify")]
    BadSignature,
    #[error("nonce {0} was already used (replayed request)")]
    Replayed(String),
}

fn digest(
    job_id: &str,
    method: &str,
    path: &str,
    time_ms: u64,
    nonce: &str,
    body: &[u8],
) -> [u8; 32] {
    let mut m = Vec::with_capacity(256);
    m.extend_from_slice(DOMAIN);
    for part in [job_id, method, path, &time_ms.to_string(), nonce] {
        m.extend_from_slice(part.as_bytes());
        m.push(0);
    }
    m.extend_from_slice(&sha3_256(body));
    sha3_256(&m)
}

/// Signs a request.
pub fn sign(
    key: &Identity,
    job_id: &str,
    method: &str,
    path: &str,
    body: &[u8],
    time_ms: u64,
) -> Envelope {
    let nonce = hex::encode(rand::random::<[u8; 16]>());
    let d = digest(job_id, method, path, time_ms, &nonce, body);
    Envelope {
        key: b64(key.public().ed25519.as_bytes()),
        time_ms,
        nonce,
        signature: b64(&key.sign_ed25519(&d)),
    }
}

/// Parses the headers (`get` looks one up by name).
pub fn parse<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Envelope, AuthError> {
    let need = |h: &'static str| get(h).ok_or(AuthError::Missing(h));
    let time = need(H_TIME)?;
    let time_ms = time.parse().map_err(|_| AuthError::Malformed {
        header: H_TIME,
        reason: format!("{time:?} is not a number of milliseconds"),
    })?;
    let nonce = need(H_NONCE)?;
    if nonce.len() != 32 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AuthError::Malformed {
            header: H_NONCE,
            reason: "expected 32 hex digits".into(),
        });
    }
    Ok(Envelope {
        key: need(H_KEY)?.to_string(),
        time_ms,
        nonce: nonce.to_ascii_lowercase(),
        signature: need(H_SIG)?.to_string(),
    })
}

/// Checks the time window and the signature; returns the signer. The nonce is checked (and
/// recorded) separately, by [`NonceCache::check_and_insert`], only once everything else passed.
pub fn verify(
    env: &Envelope,
    job_id: &str,
    method: &str,
    path: &str,
    body: &[u8],
    now_ms: u64,
) -> Result<PublicIdentity, AuthError> {
    if env.time_ms.abs_diff(now_ms) > MAX_SKEW_MS {
        return Err(AuthError::Stale {
            time_ms: env.time_ms,
            now_ms,
        });
    }
    let raw = unb64(&env.key).ok_or(AuthError::Malformed {
        header: H_KEY,
        reason: "not base64".into(),
    })?;
    let public = PublicIdentity::from_raw(&raw, None).map_err(|reason| AuthError::Malformed {
        header: H_KEY,
        reason,
    })?;
    let sig = unb64(&env.signature).ok_or(AuthError::Malformed {
        header: H_SIG,
        reason: "not base64".into(),
    })?;
    let d = digest(job_id, method, path, env.time_ms, &env.nonce, body);
    if !public.verify_ed25519(&d, &sig) {
        return Err(AuthError::BadSignature);
    }
    Ok(public)
}

/// The nonces seen within the time window.
#[derive(Debug, Default)]
pub struct NonceCache {
    seen: BTreeMap<String, u64>,
    order: VecDeque<(u64, String)>,
}

impl NonceCache {
    /// Refuses a nonce seen before; records it otherwise. Forgets nonces older than twice the
    /// window (their requests are refused as stale anyway).
    pub fn check_and_insert(&mut self, nonce: &str, now_ms: u64) -> Result<(), AuthError> {
        while let Some((t, n)) = self.order.front() {
            if now_ms.saturating_sub(*t) <= 2 * MAX_SKEW_MS {
                break;
            }
            self.seen.remove(n);
            self.order.pop_front();
        }
        if self.seen.contains_key(nonce) {
            return Err(AuthError::Replayed(nonce.into()));
        }
        self.seen.insert(nonce.into(), now_ms);
        self.order.push_back((now_ms, nonce.into()));
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(e: &Envelope) -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            (H_KEY, e.key.clone()),
            (H_TIME, e.time_ms.to_string()),
            (H_NONCE, e.nonce.clone()),
            (H_SIG, e.signature.clone()),
        ])
    }

    #[test]
    fn signed_requests_verify_only_unchanged() {
        let k = Identity::from_seeds(&[1; 32], None);
        let e = sign(&k, "job", "POST", "/v1/report", b"{}", 1_000_000);
        let h = headers(&e);
        let parsed = parse(|n| h.get(n).map(String::as_str)).unwrap();
        let who = verify(&parsed, "job", "POST", "/v1/report", b"{}", 1_000_500).unwrap();
        assert_eq!(who.worker_id(), k.public().worker_id());
        for (job, method, path, body) in [
            ("job2", "POST", "/v1/report", &b"{}"[..]),
            ("job", "PUT", "/v1/report", b"{}"),
            ("job", "POST", "/v1/result", b"{}"),
            ("job", "POST", "/v1/report", b"{ }"),
        ] {
            assert_eq!(
                verify(&parsed, job, method, path, body, 1_000_500),
                Err(AuthError::BadSignature)
            );
        }
        assert!(matches!(
            verify(
                &parsed,
                "job",
                "POST",
                "/v1/report",
                b"{}",
                1_000_000 + MAX_SKEW_MS + 1
            ),
            Err(AuthError::Stale { .. })
        ));
        let mut h2 = h.clone();
        h2.remove(H_SIG);
        assert_eq!(
            parse(|n| h2.get(n).map(String::as_str)),
            Err(AuthError::Missing(H_SIG))
        );
    }

    #[test]
    fn nonces_are_single_use() {
        let mut c = NonceCache::default();
        c.check_and_insert("a", 0).unwrap();
        assert_eq!(
            c.check_and_insert("a", 10),
            Err(AuthError::Replayed("a".into()))
        );
        c.check_and_insert("b", 10).unwrap();
        c.check_and_insert("c", 3 * MAX_SKEW_MS).unwrap();
        assert_eq!(c.len(), 1);
    }
}
