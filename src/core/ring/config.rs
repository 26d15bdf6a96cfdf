//! The ring file (TOML, format `gym-ring/1`): members, addresses, keys; and its digest `R`.

use std::path::{Path, PathBuf};

use sha3::{Digest, Sha3_256};

use crate::core::error::{Classify, ErrorClass};
use crate::core::keys::{self, PublicIdentity};

pub const FORMAT: &str = "gym-ring/1";
pub const DEFAULT_CHUNK_ELEMENTS: u32 = 1 << 16;
pub const MAX_MEMBERS: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum RingFileError {
    #[error("reading ring file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ring file {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("key {worker_id} is not a member of ring file {path}")]
    NotMember { worker_id: String, path: PathBuf },
}

impl Classify for RingFileError {
    fn class(&self) -> ErrorClass {
        match self {
            RingFileError::Read { .. } => ErrorClass::Io,
            RingFileError::Invalid { .. } => ErrorClass::Malformed,
            RingFileError::NotMember { .. } => ErrorClass::Untrusted,
        }
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RingToml {
    format: String,
    #[serde(default)]
    round: u64,
    #[serde(default = "default_chunk")]
    chunk_elements: u32,
    #[serde(default, rename = "member")]
    members: Vec<MemberToml>,
}

fn default_chunk() -> u32 {
    DEFAULT_CHUNK_ELEMENTS
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberToml {
    id: String,
    address: String,
    ed25519: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ml_dsa_87: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub address: String,
    pub public: PublicIdentity,
}

/// A parsed, validated ring file.
#[derive(Debug, Clone)]
pub struct RingSpec {
    pub round: u64,
    pub chunk_elements: u32,
    pub members: Vec<Member>,
    digest: [u8; 32],
}

impl RingSpec {
    pub fn new(round: u64, chunk_elements: u32, members: Vec<Member>) -> Result<Self, String> {
        if members.len() < 2 || members.len() > MAX_MEMBERS {
            return Err(format!(
                "a ring needs 2 to {MAX_MEMBERS} members, this one has {}",
                members.len()
            ));
        }
        if chunk_elements == 0 || chunk_elements > (1 << 24) {
            return Err(format!(
                "chunk_elements must be 1 to 16777216, got {chunk_elements}"
            ));
        }
        for (i, m) in members.iter().enumerate() {
            if m.id != m.public.worker_id() {
                return Err(format!(
                    "member {i}: id {} does not match its key (worker id {})",
                    m.id,
                    m.public.worker_id()
                ));
            }
            if members[..i]
                .iter()
                .any(|o| o.public.ed25519 == m.public.ed25519)
            {
                return Err(format!("member {i}: key {} is listed twice", m.id));
            }
            if m.address.is_empty() || m.address.len() > 255 {
                return Err(format!("member {i}: address must be 1 to 255 bytes"));
            }
        }
        let mut h = Sha3_256::new();
        h.update(b"gym-ring-v2/ring\0");
        h.update(round.to_le_bytes());
        h.update(chunk_elements.to_le_bytes());
        h.update((members.len() as u32).to_le_bytes());
        for m in &members {
            h.update((m.id.len() as u16).to_le_bytes());
            h.update(m.id.as_bytes());
            h.update((m.address.len() as u16).to_le_bytes());
            h.update(m.address.as_bytes());
            h.update(m.public.ed25519.as_bytes());
            let pq = m.public.ml_dsa_bytes().unwrap_or_default();
            h.update((pq.len() as u32).to_le_bytes());
            h.update(&pq);
        }
        Ok(RingSpec {
            round,
            chunk_elements,
            members,
            digest: h.finalize().into(),
        })
    }

    /// The ring digest `R`.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn index_of(&self, ed25519: &[u8; 32]) -> Option<usize> {
        self.members
            .iter()
            .position(|m| m.public.ed25519.as_bytes() == ed25519)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, RingFileError> {
        let invalid = |reason: String| RingFileError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let t: RingToml = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if t.format != FORMAT {
            return Err(invalid(format!(
                "format is {:?}, expected {FORMAT:?}",
                t.format
            )));
        }
        let mut members = Vec::new();
        for (i, m) in t.members.into_iter().enumerate() {
            let ed = keys::parse_ed25519_public(&m.ed25519)
                .map_err(|e| invalid(format!("member {i}: {e}")))?;
            let pq = match &m.ml_dsa_87 {
                Some(s) => Some(
                    keys::unb64(s)
                        .ok_or_else(|| invalid(format!("member {i}: ml_dsa_87 is not base64")))?,
                ),
                None => None,
            };
            let public = PublicIdentity::from_raw(&ed, pq.as_deref())
                .map_err(|e| invalid(format!("member {i}: {e}")))?;
            members.push(Member {
                id: m.id,
                address: m.address,
                public,
            });
        }
        RingSpec::new(t.round, t.chunk_elements, members).map_err(invalid)
    }

    pub fn load(path: &Path) -> Result<Self, RingFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| RingFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn to_toml(&self) -> String {
        let t = RingToml {
            format: FORMAT.into(),
            round: self.round,
            chunk_elements: self.chunk_elements,
            members: self
                .members
                .iter()
                .map(|m| MemberToml {
                    id: m.id.clone(),
                    address: m.address.clone(),
                    ed25519: m.public.ed25519_base64(),
                    ml_dsa_87: m.public.ml_dsa_base64(),
                })
                .collect(),
        };
        toml::to_string(&t).unwrap_or_default()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::core::keys::Identity;

    pub fn spec(n: usize) -> (RingSpec, Vec<Identity>) {
        let ids: Vec<Identity> = (0..n)
            .map(|i| Identity::from_seeds(&[i as u8 + 1; 32], None))
            .collect();
        let members = ids
            .iter()
            .enumerate()
            .map(|(i, id)| Member {
                id: id.public().worker_id(),
                address: format!("127.0.0.1:{}", 7000 + i),
                public: id.public(),
            })
            .collect();
        (RingSpec::new(0, 64, members).unwrap(), ids)
    }

    #[test]
    fn toml_round_trip_keeps_the_digest() {
        let (s, _) = spec(3);
        let text = s.to_toml();
        let back = RingSpec::parse(&text, Path::new("r.toml")).unwrap();
        assert_eq!(back.digest(), s.digest());
        let other = text.replace("round = 0", "round = 1");
        let moved = RingSpec::parse(&other, Path::new("r.toml")).unwrap();
        assert_ne!(moved.digest(), s.digest());
    }

    #[test]
    fn rejects_bad_files() {
        let (s, _) = spec(2);
        let text = s.to_toml();
        let wrong_id = text.replacen("id = \"gym1", "id = \"gym2", 1);
        assert!(RingSpec::parse(&wrong_id, Path::new("r")).is_err());
        assert!(RingSpec::parse("format = \"x\"", Path::new("r")).is_err());
    }
}
