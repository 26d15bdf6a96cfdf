//! Worker identities: an Ed25519 key pair, optionally with an ML-DSA-87 key pair for hybrid
//! (classical + post-quantum) signatures.
//!
//! On disk a key file is PEM holding one or two PKCS#8 `PRIVATE KEY` blocks: the Ed25519 key
//! first (so `openssl pkey -in key.pem -pubout` reads it and prints the same public key), then,
//! for a hybrid identity, the ML-DSA-87 key (FIPS 204 seed form).

use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _};
use ml_dsa::{KeyExport as _, Keypair as _, MlDsa87};
use sha3::{Digest, Sha3_256};
use zeroize::Zeroizing;

use crate::core::atomic;
use crate::core::error::{Classify, ErrorClass};

pub const ED25519_PUBLIC_LEN: usize = 32;
pub const ED25519_SIGNATURE_LEN: usize = 64;
pub const MLDSA87_PUBLIC_LEN: usize = 2592;
pub const MLDSA87_SIGNATURE_LEN: usize = 4627;

/// Domain tag for worker ids.
const WORKER_ID_DOMAIN: &[u8] = b"gym-worker-id-v1\0";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("reading key {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("key {path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`")]
    Permissions { path: PathBuf, mode: u32 },
    #[error(transparent)]
    Write(#[from] atomic::AtomicError),
    #[error("public key {input:?}: {reason}")]
    PublicKey { input: String, reason: String },
}

impl Classify for KeyError {
    fn class(&self) -> ErrorClass {
        match self {
            KeyError::Read { .. } => ErrorClass::Io,
            KeyError::Parse { .. } | KeyError::PublicKey { .. } => ErrorClass::Malformed,
            KeyError::Permissions { .. } => ErrorClass::Policy,
            KeyError::Write(e) => e.class(),
        }
    }
}

/// A worker's secret keys. `Debug` shows only public parts; secrets are zeroized on drop by the
/// underlying types.
pub struct Identity {
    ed: ed25519_dalek::SigningKey,
    pq: Option<Box<ml_dsa::SigningKey<MlDsa87>>>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("public", &self.public())
            .finish_non_exhaustive()
    }
}

/// The public half of an [`Identity`].
#[derive(Clone, PartialEq)]
pub struct PublicIdentity {
    pub ed25519: ed25519_dalek::VerifyingKey,
    pub ml_dsa_87: Option<Box<ml_dsa::VerifyingKey<MlDsa87>>>,
}

impl std::fmt::Debug for PublicIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicIdentity")
            .field("worker_id", &self.worker_id())
            .field("hybrid", &self.ml_dsa_87.is_some())
            .finish()
    }
}

fn random_32() -> Zeroizing<[u8; 32]> {
    use rand::RngCore;
    let mut b = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(&mut b[..]);
    b
}

impl Identity {
    /// A fresh identity from the operating system's random generator.
    pub fn generate(pq: bool) -> Self {
        let seed = random_32();
        let pq_seed = if pq { Some(random_32()) } else { None };
        Self::from_seeds(&seed, pq_seed.as_deref())
    }

    /// A deterministic identity (test vectors, tests). Never use fixed seeds for real keys.
    pub fn from_seeds(ed_seed: &[u8; 32], pq_seed: Option<&[u8; 32]>) -> Self {
        let ed = ed25519_dalek::SigningKey::from_bytes(ed_seed);
        let pq = pq_seed.map(|s| {
            let seed = ml_dsa::Seed::from(*s);
            Box::new(ml_dsa::SigningKey::<MlDsa87>::from_seed(&seed))
        });
        Identity { ed, pq }
    }

    pub fn is_hybrid(&self) -> bool {
        self.pq.is_some()
    }

    pub fn public(&self) -> PublicIdentity {
        PublicIdentity {
            ed25519: self.ed.verifying_key(),
            ml_dsa_87: self.pq.as_ref().map(|k| Box::new(k.verifying_key())),
        }
    }

    /// Ed25519 signature over `msg`.
    pub fn sign_ed25519(&self, msg: &[u8]) -> [u8; ED25519_SIGNATURE_LEN] {
        use ed25519_dalek::Signer as _;
        self.ed.sign(msg).to_bytes()
    }

    /// ML-DSA-87 signature over `msg` with FIPS 204 context string `ctx` (deterministic variant).
    pub fn sign_ml_dsa(&self, msg: &[u8], ctx: &[u8]) -> Option<Vec<u8>> {
        let k = self.pq.as_ref()?;
        let sig = k.expanded_key().sign_deterministic(msg, ctx).ok()?;
        Some(sig.encode().to_vec())
    }

    /// PEM text: the Ed25519 PKCS#8 block, then the ML-DSA-87 block for a hybrid identity.
    pub fn to_pem(&self) -> Result<Zeroizing<String>, String> {
        let mut out = Zeroizing::new(String::new());
        out.push_str(&ed25519_pkcs8_v1_pem(&self.ed.to_bytes()));
        if let Some(k) = &self.pq {
            use pkcs8_mldsa::EncodePrivateKey as _;
            let pq = k
                .to_pkcs8_pem(pkcs8_mldsa::LineEnding::LF)
                .map_err(|e| e.to_string())?;
            out.push_str(&pq);
        }
        Ok(out)
    }

    pub fn from_pem(text: &str, path: &Path) -> Result<Self, KeyError> {
        let err = |reason: String| KeyError::Parse {
            path: path.to_path_buf(),
            reason,
        };
        let blocks = pem_blocks(text);
        let private: Vec<&String> = blocks
            .iter()
            .filter(|(label, _)| label == "PRIVATE KEY")
            .map(|(_, b)| b)
            .collect();
        if private.is_empty() {
            return Err(err(
                "no PEM `PRIVATE KEY` block found (expected a PKCS#8 Ed25519 key)".into(),
            ));
        }
        if private.len() > 2 {
            return Err(err(format!(
                "{} private key blocks; expected 1 or 2",
                private.len()
            )));
        }
        let ed = ed25519_dalek::SigningKey::from_pkcs8_pem(private[0]).map_err(|e| {
            err(format!(
                "first PRIVATE KEY block is not a PKCS#8 Ed25519 key: {e}"
            ))
        })?;
        let pq = match private.get(1) {
            None => None,
            Some(block) => {
                use pkcs8_mldsa::DecodePrivateKey as _;
                let k = ml_dsa::SigningKey::<MlDsa87>::from_pkcs8_pem(block).map_err(|e| {
                    err(format!(
                        "second PRIVATE KEY block is not a PKCS#8 ML-DSA-87 key: {e}"
                    ))
                })?;
                Some(Box::new(k))
            }
        };
        Ok(Identity { ed, pq })
    }

    /// Loads a key file, refusing one that other users can read.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|source| KeyError::Read {
                    path: path.to_path_buf(),
                    source,
                })?,
            );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(path) {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(KeyError::Permissions {
                        path: path.to_path_buf(),
                        mode,
                    });
                }
            }
        }
        Self::from_pem(&text, path)
    }

    /// Writes the key file atomically with mode 0600; never replaces an existing file unless
    /// `force`.
    pub fn save(&self, path: &Path, force: bool) -> Result<(), KeyError> {
        let pem = self.to_pem().map_err(|reason| KeyError::Parse {
            path: path.to_path_buf(),
            reason,
        })?;
        atomic::write_file(path, pem.as_bytes(), force, Some(0o600))?;
        Ok(())
    }
}

/// RFC 8410 PKCS#8 v1 (`OneAsymmetricKey` version 0, no public key field) of an Ed25519 seed,
/// as `openssl genpkey -algorithm ed25519` writes it. OpenSSL 3.0 does not read the v2 form
/// (with the public key) that ed25519-dalek emits, so gym writes this one; it reads both.
fn ed25519_pkcs8_v1_pem(seed: &[u8; 32]) -> Zeroizing<String> {
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let mut der = Zeroizing::new(Vec::with_capacity(48));
    der.extend_from_slice(&PREFIX);
    der.extend_from_slice(seed);
    let b = Zeroizing::new(b64(&der));
    let mut pem = Zeroizing::new(String::from("-----BEGIN PRIVATE KEY-----\n"));
    for line in b.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

/// Splits PEM text into (label, whole block text) pairs.
fn pem_blocks(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(String, String)> = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(label) = t
            .strip_prefix("-----BEGIN ")
            .and_then(|r| r.strip_suffix("-----"))
        {
            cur = Some((label.to_string(), format!("{t}\n")));
        } else if let Some(label) = t
            .strip_prefix("-----END ")
            .and_then(|r| r.strip_suffix("-----"))
        {
            if let Some((l, mut body)) = cur.take()
                && l == label
            {
                body.push_str(t);
                body.push('\n');
                out.push((l, body));
            }
        } else if let Some((_, body)) = cur.as_mut() {
            body.push_str(t);
            body.push('\n');
        }
    }
    out
}

/// The worker id derived from an Ed25519 public key: `gym1` followed by 20 lowercase base32
/// characters (the first 100 bits of SHA3-256("gym-worker-id-v1\0" ‖ key)).
pub fn worker_id(ed25519_public: &[u8; 32]) -> String {
    let mut h = Sha3_256::new();
    h.update(WORKER_ID_DOMAIN);
    h.update(ed25519_public);
    let d = h.finalize();
    let enc = data_encoding::BASE32_NOPAD
        .encode(&d[..12])
        .to_ascii_lowercase();
    format!("gym1{}", &enc[..20])
}

impl PublicIdentity {
    pub fn worker_id(&self) -> String {
        worker_id(self.ed25519.as_bytes())
    }

    pub fn ed25519_base64(&self) -> String {
        b64(self.ed25519.as_bytes())
    }

    pub fn ed25519_pem(&self) -> String {
        self.ed25519
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .unwrap_or_default()
    }

    pub fn ml_dsa_bytes(&self) -> Option<Vec<u8>> {
        self.ml_dsa_87.as_ref().map(|k| k.to_bytes().to_vec())
    }

    pub fn ml_dsa_base64(&self) -> Option<String> {
        self.ml_dsa_bytes().map(|b| b64(&b))
    }

    pub fn from_raw(ed: &[u8], pq: Option<&[u8]>) -> Result<Self, String> {
        let ed_arr: [u8; 32] = ed
            .try_into()
            .map_err(|_| format!("Ed25519 public key must be 32 bytes, got {}", ed.len()))?;
        let ed25519 = ed25519_dalek::VerifyingKey::from_bytes(&ed_arr)
            .map_err(|_| "not a valid Ed25519 public key (not a curve point)".to_string())?;
        let ml_dsa_87 = match pq {
            None => None,
            Some(b) => Some(Box::new(decode_ml_dsa_public(b)?)),
        };
        Ok(PublicIdentity { ed25519, ml_dsa_87 })
    }

    /// Verifies an Ed25519 signature with `verify_strict` (rejects small-order keys and
    /// non-canonical encodings).
    pub fn verify_ed25519(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Ok(arr) = <[u8; 64]>::try_from(sig) else {
            return false;
        };
        let sig = ed25519_dalek::Signature::from_bytes(&arr);
        self.ed25519.verify_strict(msg, &sig).is_ok()
    }

    pub fn verify_ml_dsa(&self, msg: &[u8], ctx: &[u8], sig: &[u8]) -> bool {
        let Some(k) = &self.ml_dsa_87 else {
            return false;
        };
        let Ok(sig) = ml_dsa::Signature::<MlDsa87>::try_from(sig) else {
            return false;
        };
        k.verify_with_context(msg, ctx, &sig)
    }
}

pub fn decode_ml_dsa_public(b: &[u8]) -> Result<ml_dsa::VerifyingKey<MlDsa87>, String> {
    let enc = ml_dsa::EncodedVerifyingKey::<MlDsa87>::try_from(b).map_err(|_| {
        format!(
            "ML-DSA-87 public key must be {MLDSA87_PUBLIC_LEN} bytes, got {}",
            b.len()
        )
    })?;
    Ok(ml_dsa::VerifyingKey::<MlDsa87>::decode(&enc))
}

pub fn b64(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

pub fn unb64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
}

/// Parses a public key written as base64 or hex (64 hex digits), optionally prefixed `ed25519:`.
pub fn parse_ed25519_public(s: &str) -> Result<[u8; 32], KeyError> {
    let bad = |reason: &str| KeyError::PublicKey {
        input: s.to_string(),
        reason: reason.to_string(),
    };
    let t = s.trim().strip_prefix("ed25519:").unwrap_or(s.trim());
    let bytes = if t.len() == 64 && t.bytes().all(|c| c.is_ascii_hexdigit()) {
        hex::decode(t).map_err(|_| bad("bad hex"))?
    } else {
        unb64(t).ok_or_else(|| bad("neither base64 nor 64 hex digits"))?
    };
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| bad("an Ed25519 public key is 32 bytes"))?;
    ed25519_dalek::VerifyingKey::from_bytes(&arr).map_err(|_| bad("not a valid Ed25519 point"))?;
    Ok(arr)
}

/// A set of trusted signers, read from a file of lines. Each non-empty line not starting with
/// `#` is either a JSON object as printed by `gym key show --json` (fields `ed25519` and optional
/// `ml_dsa_87`, both base64), or whitespace-separated words: the Ed25519 public key (base64 or hex,
/// optional `ed25519:` prefix), an optional `mldsa87:<base64>` key, and an optional label.
#[derive(Debug, Default, Clone)]
pub struct TrustedKeys {
    entries: Vec<TrustedEntry>,
}

#[derive(Debug, Clone)]
pub struct TrustedEntry {
    pub ed25519: [u8; 32],
    pub ml_dsa_87: Option<Vec<u8>>,
    pub label: Option<String>,
}

impl TrustedKeys {
    pub fn parse(text: &str, path: &Path) -> Result<Self, KeyError> {
        let mut entries = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |reason: String| KeyError::Parse {
                path: path.to_path_buf(),
                reason: format!("line {}: {reason}", i + 1),
            };
            if line.starts_with('{') {
                let v: serde_json::Value =
                    serde_json::from_str(line).map_err(|e| err(format!("invalid JSON: {e}")))?;
                let ed = v
                    .get("ed25519")
                    .and_then(|x| x.as_str())
                    .ok_or_else(|| err("JSON entry has no string field `ed25519`".into()))?;
                let ed25519 = parse_ed25519_public(ed).map_err(|e| err(e.to_string()))?;
                let ml_dsa_87 = match v.get("ml_dsa_87").and_then(|x| x.as_str()) {
                    Some(s) => Some(parse_mldsa_public(s).map_err(&err)?),
                    None => None,
                };
                let label = v
                    .get("worker_id")
                    .and_then(|x| x.as_str())
                    .map(str::to_string);
                entries.push(TrustedEntry {
                    ed25519,
                    ml_dsa_87,
                    label,
                });
                continue;
            }
            let mut words = line.split_whitespace();
            let first = words.next().unwrap_or_default();
            let ed25519 = parse_ed25519_public(first).map_err(|e| err(e.to_string()))?;
            let mut ml_dsa_87 = None;
            let mut label = Vec::new();
            for w in words {
                if let Some(k) = w.strip_prefix("mldsa87:") {
                    ml_dsa_87 = Some(parse_mldsa_public(k).map_err(&err)?);
                } else {
                    label.push(w);
                }
            }
            let label = if label.is_empty() {
                None
            } else {
                Some(label.join(" "))
            };
            entries.push(TrustedEntry {
                ed25519,
                ml_dsa_87,
                label,
            });
        }
        Ok(TrustedKeys { entries })
    }

    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn find(&self, ed25519: &[u8; 32]) -> Option<&TrustedEntry> {
        self.entries.iter().find(|e| &e.ed25519 == ed25519)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn parse_mldsa_public(s: &str) -> Result<Vec<u8>, String> {
    let b = unb64(s).ok_or_else(|| "ML-DSA-87 key is not base64".to_string())?;
    decode_ml_dsa_public(&b)?;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_hybrid() {
        let id = Identity::from_seeds(&[1; 32], Some(&[2; 32]));
        let pem = id.to_pem().unwrap();
        assert_eq!(pem.matches("BEGIN PRIVATE KEY").count(), 2);
        let back = Identity::from_pem(&pem, Path::new("k.pem")).unwrap();
        assert_eq!(back.public(), id.public());
        let msg = b"hello";
        let sig = back.sign_ml_dsa(msg, b"ctx").unwrap();
        assert_eq!(sig.len(), MLDSA87_SIGNATURE_LEN);
        assert!(id.public().verify_ml_dsa(msg, b"ctx", &sig));
        assert!(!id.public().verify_ml_dsa(msg, b"other", &sig));
        assert_eq!(
            id.public().ml_dsa_bytes().unwrap().len(),
            MLDSA87_PUBLIC_LEN
        );
    }

    #[test]
    fn rfc8032_test_vector_1() {
        // RFC 8032 section 7.1, TEST 1 (empty message).
        let sk: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        let id = Identity::from_seeds(&sk, None);
        assert_eq!(
            hex::encode(id.public().ed25519.as_bytes()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let sig = id.sign_ed25519(b"");
        assert_eq!(
            hex::encode(sig),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        assert!(id.public().verify_ed25519(b"", &sig));
    }

    #[test]
    fn worker_id_shape() {
        let id = worker_id(&[0u8; 32]);
        assert!(id.starts_with("gym1"));
        assert_eq!(id.len(), 24);
    }
}
