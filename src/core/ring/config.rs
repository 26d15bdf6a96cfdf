//! The ring file (TOML, format `gym-ring/1`): members, addresses, keys; and its digest `R`.

use std::path::{Path, PathBuf};

use sha3::{Digest, Sha3_256};

use crate::core::error::{Classify, ErrorClass};
use crate::core::keys::{self, Identity, PublicIdentity};
use crate::core::ring::fixed;
use crate::core::ring::quant::Bits;

pub const FORMAT: &str = "gym-ring/1";
/// The format of a ring file with a fixed round scale or a sum output (hierarchical rounds,
/// docs/ring-protocol.md "Hierarchical rounds"): a gym that only knows [`FORMAT`] refuses it by
/// name instead of running a ring whose members disagree on what it computes.
pub const FORMAT_HIER: &str = "gym-ring/2";
pub const DEFAULT_CHUNK_ELEMENTS: u32 = 1 << 16;
/// `gym ring plan`'s default for a hybrid ring: an ML-DSA-87 signature costs ~1 ms to make and
/// check (an Ed25519 one ~50 µs), so a hybrid ring signs 4× fewer, larger data messages
/// (2 MiB of `i64`); on 64 MiB over 4 members the all-reduce took 1.47 s instead of 2.60 s.
pub const DEFAULT_HYBRID_CHUNK_ELEMENTS: u32 = 1 << 18;
pub const MAX_MEMBERS: usize = 1024;
/// The largest input exponent a member may commit unless the ring file says otherwise: every
/// element below `2^8 = 256` in magnitude (deltas are far smaller).
pub const DEFAULT_MAX_EXPONENT: i32 = 8;

/// What a member may commit (docs/ring-protocol.md, "Input bounds"): a commit above either
/// bound convicts its member, so that no member can drive the agreed scale down for the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputBounds {
    /// Largest weight, `1..=2^32`.
    pub max_weight: u64,
    /// Largest input exponent `e` (every element below `2^e` in magnitude).
    pub max_exponent: i32,
}

impl Default for InputBounds {
    fn default() -> Self {
        InputBounds {
            max_weight: fixed::MAX_WEIGHT,
            max_exponent: DEFAULT_MAX_EXPONENT,
        }
    }
}

impl InputBounds {
    /// The smallest scale `F` a ring of `members` within these bounds can agree on:
    /// `58 − max_exponent − bitlen(members · max_weight)`. Every honest member's elements are
    /// represented to within `2^-(F+1)`.
    pub fn min_scale(&self, members: usize) -> i32 {
        fixed::HEADROOM
            - self.max_exponent
            - fixed::bitlen(members as u128 * self.max_weight as u128)
    }

    fn check(&self, members: usize) -> Result<(), String> {
        if self.max_weight == 0 || self.max_weight > fixed::MAX_WEIGHT {
            return Err(format!(
                "max_weight must be 1 to {}, got {}",
                fixed::MAX_WEIGHT,
                self.max_weight
            ));
        }
        if !(fixed::MIN_EXPONENT..=fixed::MAX_EXPONENT).contains(&self.max_exponent) {
            return Err(format!(
                "max_exponent must be {} to {}, got {}",
                fixed::MIN_EXPONENT,
                fixed::MAX_EXPONENT,
                self.max_exponent
            ));
        }
        if self.min_scale(members) < 0 {
            return Err(format!(
                "max_weight {} and max_exponent {} leave no fixed-point scale for {members} \
                 members (58 − max_exponent − bitlen(members · max_weight) < 0): lower them",
                self.max_weight, self.max_exponent
            ));
        }
        Ok(())
    }
}

/// What a ring writes: the weighted mean as a DELTA file (every ring until hierarchical
/// rounds), or the exact integer sum and weight total before the division (a group ring of a
/// hierarchical round, docs/ring-protocol.md "Sum files").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Output {
    #[default]
    Mean = 0,
    Sum = 1,
}

/// A ring's part in a hierarchical round (docs/ring-protocol.md "Hierarchical rounds"): the
/// round's fixed scale `F` (instead of the scale the members' commits give) and the output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hier {
    pub scale_bits: Option<u32>,
    pub output: Output,
}

impl Hier {
    /// A fixed scale must keep the exact sum of this ring inside the bound for every member
    /// within `bounds`: `F ≤ 58 − max_exponent − bitlen(members · max_weight)` (and `≤ 60`).
    fn check(&self, bounds: &InputBounds, members: usize) -> Result<(), String> {
        let Some(f) = self.scale_bits else {
            return match self.output {
                Output::Sum => Err(
                    "output = \"sum\" needs scale_bits (the round's fixed scale: \
                                    sums at different scales cannot be added)"
                        .into(),
                ),
                Output::Mean => Ok(()),
            };
        };
        let most = bounds.min_scale(members).min(fixed::MAX_SCALE as i32);
        if f as i64 > most as i64 {
            return Err(format!(
                "scale_bits {f} is above {most}, the largest scale at which {members} members \
                 within max_weight {} and max_exponent {} cannot overflow the exact sum",
                bounds.max_weight, bounds.max_exponent
            ));
        }
        Ok(())
    }

    fn from_toml(t: &RingToml) -> Result<Self, String> {
        let output = match t.output.as_deref() {
            None | Some("mean") => Output::Mean,
            Some("sum") => Output::Sum,
            Some(o) => return Err(format!("output is {o:?}, expected \"mean\" or \"sum\"")),
        };
        let hier = Hier {
            scale_bits: t.scale_bits,
            output,
        };
        if hier != Hier::default() && t.format != FORMAT_HIER {
            return Err(format!(
                "scale_bits and output = \"sum\" need format {FORMAT_HIER:?}, not {:?}",
                t.format
            ));
        }
        Ok(hier)
    }
}

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
    /// A hybrid ring needs the member's ML-DSA-87 key too, and it must be the listed one.
    #[error(
        "ring file {path} is a hybrid ring (every member signs with Ed25519 and ML-DSA-87), \
         but key {worker_id} (member {index}) {problem}"
    )]
    MlDsaKey {
        worker_id: String,
        index: usize,
        path: PathBuf,
        problem: &'static str,
    },
    /// `--quantize` given on the command line disagrees with the ring file, which decides.
    #[error(
        "{option} {flag} disagrees with ring file {path}, which {ring}: the ring file decides \
         how the ring averages (every member must quantize alike); drop the flag or plan the \
         ring with `gym ring plan --quantize {flag}`"
    )]
    QuantizeMismatch {
        /// The command-line option (`--quantize`, `--ring-quantize`).
        option: &'static str,
        flag: Bits,
        path: PathBuf,
        ring: String,
    },
}

impl Classify for RingFileError {
    fn class(&self) -> ErrorClass {
        match self {
            RingFileError::Read { .. } => ErrorClass::Io,
            RingFileError::Invalid { .. } => ErrorClass::Malformed,
            RingFileError::QuantizeMismatch { .. } => ErrorClass::Usage,
            RingFileError::NotMember { .. } | RingFileError::MlDsaKey { .. } => {
                ErrorClass::Untrusted
            }
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_weight: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_exponent: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scale_bits: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    output: Option<String>,
    /// Quantized averaging: bits per element (docs/ring-protocol.md, "Quantized averaging").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    quantize: Option<u64>,
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
    /// What members may commit.
    pub bounds: InputBounds,
    /// The round's fixed scale and what the ring writes (hierarchical rounds).
    pub hier: Hier,
    /// Quantized averaging: every member's input is quantized to this many bits per element
    /// (per block of 64) before the exact sum. `None`: lossless.
    pub quantize: Option<Bits>,
    digest: [u8; 32],
    hybrid: bool,
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
        // Either every member has an ML-DSA-87 key (a hybrid ring) or none has.
        let without: Vec<String> = members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.public.ml_dsa_87.is_none())
            .map(|(i, m)| format!("{i} ({})", m.id))
            .collect();
        let hybrid = without.is_empty();
        if !hybrid && without.len() < members.len() {
            return Err(format!(
                "some members have an ML-DSA-87 key and some do not: in a ring either every \
                 member has one (hybrid signatures) or none does; without one: member{} {}",
                if without.len() == 1 { "" } else { "s" },
                without.join(", ")
            ));
        }
        let bounds = InputBounds::default();
        bounds.check(members.len())?;
        let mut spec = RingSpec {
            round,
            chunk_elements,
            members,
            bounds,
            hier: Hier::default(),
            quantize: None,
            digest: [0; 32],
            hybrid,
        };
        spec.digest = spec.compute_digest();
        Ok(spec)
    }

    /// This ring with other input bounds (validated; they enter the digest).
    pub fn with_bounds(mut self, bounds: InputBounds) -> Result<Self, String> {
        bounds.check(self.members.len())?;
        self.hier.check(&bounds, self.members.len())?;
        self.bounds = bounds;
        self.digest = self.compute_digest();
        Ok(self)
    }

    /// This ring with a fixed round scale and/or a sum output (validated against the bounds;
    /// they enter the digest).
    pub fn with_hier(mut self, hier: Hier) -> Result<Self, String> {
        hier.check(&self.bounds, self.members.len())?;
        self.hier = hier;
        self.digest = self.compute_digest();
        Ok(self)
    }

    /// This ring file for another round: the same members, chunk size, input bounds,
    /// quantization and hierarchical settings (`gym train --ring` averages once per round).
    pub fn for_round(&self, round: u64) -> Self {
        let mut s = self.clone();
        s.round = round;
        s.digest = s.compute_digest();
        s
    }

    /// This ring with quantized averaging at `bits` per element, or lossless (`None`); it
    /// enters the digest.
    pub fn with_quantize(mut self, bits: Option<Bits>) -> Self {
        self.quantize = bits;
        self.digest = self.compute_digest();
        self
    }

    /// Refuses a quantize flag (`option`) that is not what the ring file (`path`) says.
    pub fn check_quantize_flag(
        &self,
        option: &'static str,
        flag: Option<Bits>,
        path: &Path,
    ) -> Result<(), RingFileError> {
        match flag {
            Some(f) if self.quantize != Some(f) => Err(RingFileError::QuantizeMismatch {
                option,
                flag: f,
                path: path.to_path_buf(),
                ring: match self.quantize {
                    Some(b) => format!("says quantize = {b}"),
                    None => "averages losslessly (no quantize field)".into(),
                },
            }),
            _ => Ok(()),
        }
    }

    fn compute_digest(&self) -> [u8; 32] {
        // Protocol version 4 (packed payloads) has its own domains: a member of an earlier
        // version computes another `R`, and a member of this one recognizes it
        // ([`RingSpec::earlier_version`]).
        self.digest_in(if self.hybrid {
            &b"gym-ring-v4/hybrid-ring\0"[..]
        } else {
            &b"gym-ring-v4/ring\0"[..]
        })
    }

    /// The protocol version(s) whose ring digest for this ring file is `theirs`, when it is
    /// not ours: a peer running an earlier gym is refused by name instead of as "wrong ring
    /// file". Versions 2 and 3 share the digest of a ring without ML-DSA-87 keys.
    pub fn earlier_version(&self, theirs: &[u8]) -> Option<&'static str> {
        let (domain, versions) = if self.hybrid {
            (&b"gym-ring-v3/hybrid-ring\0"[..], "3")
        } else {
            (&b"gym-ring-v2/ring\0"[..], "2 or 3")
        };
        (self.digest_in(domain) == theirs).then_some(versions)
    }

    /// The ring digest of this ring file under another domain (tests of version refusals).
    #[cfg(test)]
    pub(crate) fn digest_with_domain_for_tests(&self, domain: &[u8]) -> [u8; 32] {
        self.digest_in(domain)
    }

    fn digest_in(&self, domain: &[u8]) -> [u8; 32] {
        let mut h = Sha3_256::new();
        // A hybrid ring has its own domain (since protocol version 3): a member without
        // hybrid signatures computes another `R` and fails the handshake as "wrong ring file".
        h.update(domain);
        h.update(self.round.to_le_bytes());
        h.update(self.chunk_elements.to_le_bytes());
        h.update((self.members.len() as u32).to_le_bytes());
        for m in &self.members {
            h.update((m.id.len() as u16).to_le_bytes());
            h.update(m.id.as_bytes());
            h.update((m.address.len() as u16).to_le_bytes());
            h.update(m.address.as_bytes());
            h.update(m.public.ed25519.as_bytes());
            let pq = m.public.ml_dsa_bytes().unwrap_or_default();
            h.update((pq.len() as u32).to_le_bytes());
            h.update(&pq);
        }
        // Bounds other than the defaults follow (a ring file without them keeps its digest).
        if self.bounds != InputBounds::default() {
            h.update(b"gym-ring/bounds\0");
            h.update(self.bounds.max_weight.to_le_bytes());
            h.update(self.bounds.max_exponent.to_le_bytes());
        }
        // So do a fixed scale and a sum output, under their own tag.
        if self.hier != Hier::default() {
            h.update(b"gym-ring/hier\0");
            h.update(self.hier.scale_bits.map_or(u32::MAX, |f| f).to_le_bytes());
            h.update([self.hier.output as u8]);
        }
        // Quantized averaging (protocol version 5) follows; a lossless ring keeps its digest.
        if let Some(b) = self.quantize {
            h.update(b"gym-ring-v5/quantize\0");
            h.update([b.get()]);
        }
        h.finalize().into()
    }

    /// Every member has an ML-DSA-87 key: every signature of the ring is hybrid (Ed25519 and
    /// ML-DSA-87, docs/ring-protocol.md "Hybrid signatures").
    pub fn is_hybrid(&self) -> bool {
        self.hybrid
    }

    /// The index of the member whose key is `id`; in a hybrid ring `id` must also hold the
    /// ML-DSA-87 key the ring file lists for it. `path` names the ring file in errors.
    pub fn member_index(&self, id: &Identity, path: &Path) -> Result<usize, RingFileError> {
        let public = id.public();
        let index =
            self.index_of(public.ed25519.as_bytes())
                .ok_or_else(|| RingFileError::NotMember {
                    worker_id: public.worker_id(),
                    path: path.to_path_buf(),
                })?;
        if self.hybrid {
            let problem = match &public.ml_dsa_87 {
                None => Some("has no ML-DSA-87 half (make one with `gym keygen --pq`)"),
                Some(k) if Some(k) != self.members[index].public.ml_dsa_87.as_ref() => {
                    Some("has an ML-DSA-87 key other than the one the ring file lists for it")
                }
                Some(_) => None,
            };
            if let Some(problem) = problem {
                return Err(RingFileError::MlDsaKey {
                    worker_id: public.worker_id(),
                    index,
                    path: path.to_path_buf(),
                    problem,
                });
            }
        }
        Ok(index)
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
        if t.format != FORMAT && t.format != FORMAT_HIER {
            return Err(invalid(format!(
                "format is {:?}, expected {FORMAT:?} or {FORMAT_HIER:?}",
                t.format
            )));
        }
        let hier = Hier::from_toml(&t).map_err(invalid)?;
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
        let defaults = InputBounds::default();
        let bounds = InputBounds {
            max_weight: t.max_weight.unwrap_or(defaults.max_weight),
            max_exponent: t.max_exponent.unwrap_or(defaults.max_exponent),
        };
        let quantize = t.quantize.map(Bits::new).transpose().map_err(&invalid)?;
        RingSpec::new(t.round, t.chunk_elements, members)
            .and_then(|s| s.with_bounds(bounds))
            .map(|s| s.with_quantize(quantize))
            .and_then(|s| s.with_hier(hier))
            .map_err(invalid)
    }

    pub fn load(path: &Path) -> Result<Self, RingFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| RingFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn to_toml(&self) -> String {
        let hier = self.hier != Hier::default();
        let t = RingToml {
            format: if hier { FORMAT_HIER } else { FORMAT }.into(),
            round: self.round,
            chunk_elements: self.chunk_elements,
            max_weight: (self.bounds.max_weight != InputBounds::default().max_weight)
                .then_some(self.bounds.max_weight),
            max_exponent: (self.bounds.max_exponent != InputBounds::default().max_exponent)
                .then_some(self.bounds.max_exponent),
            scale_bits: self.hier.scale_bits,
            output: (self.hier.output == Output::Sum).then(|| "sum".to_string()),
            quantize: self.quantize.map(|b| b.get() as u64),
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

    pub fn spec(n: usize) -> (RingSpec, Vec<Identity>) {
        spec_of(n, false)
    }

    /// A ring of `n` whose members all have ML-DSA-87 keys.
    pub fn hybrid_spec(n: usize) -> (RingSpec, Vec<Identity>) {
        spec_of(n, true)
    }

    fn spec_of(n: usize, hybrid: bool) -> (RingSpec, Vec<Identity>) {
        let ids: Vec<Identity> = (0..n)
            .map(|i| {
                let pq = [i as u8 + 101; 32];
                Identity::from_seeds(&[i as u8 + 1; 32], hybrid.then_some(&pq))
            })
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

    #[test]
    fn hybrid_rings_have_their_own_digest_and_mixed_rings_are_refused() {
        let (plain, _) = spec(3);
        let (hybrid, hids) = hybrid_spec(3);
        assert!(!plain.is_hybrid());
        assert!(hybrid.is_hybrid());
        // Same Ed25519 keys: only the ML-DSA keys (and the domain) differ.
        assert_eq!(
            plain.members[1].public.ed25519,
            hybrid.members[1].public.ed25519
        );
        assert_ne!(plain.digest(), hybrid.digest());
        let back = RingSpec::parse(&hybrid.to_toml(), Path::new("r.toml")).unwrap();
        assert!(back.is_hybrid());
        assert_eq!(back.digest(), hybrid.digest());
        // Members 0 and 2 without ML-DSA keys, member 1 with one: refused, naming them.
        let mut members = plain.members.clone();
        members[1] = hybrid.members[1].clone();
        let e = RingSpec::new(0, 64, members.clone()).unwrap_err();
        assert!(e.contains("either every member has one"), "{e}");
        assert!(
            e.contains(&format!(
                "members 0 ({}), 2 ({})",
                members[0].id, members[2].id
            )),
            "{e}"
        );
        let mut text = hybrid.to_toml();
        let line = format!(
            "ml_dsa_87 = \"{}\"\n",
            hybrid.members[2].public.ml_dsa_base64().unwrap()
        );
        text = text.replace(&line, "");
        let e = RingSpec::parse(&text, Path::new("r.toml")).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Malformed);
        assert!(e.to_string().contains("without one: member 2 ("), "{e}");
        // A member's key must hold the listed ML-DSA half in a hybrid ring.
        let p = Path::new("r.toml");
        assert_eq!(hybrid.member_index(&hids[2], p).unwrap(), 2);
        let (_, plain_ids) = spec(3);
        let e = hybrid.member_index(&plain_ids[2], p).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Untrusted);
        assert!(
            e.to_string().contains("(member 2) has no ML-DSA-87 half"),
            "{e}"
        );
        let other = Identity::from_seeds(&[3; 32], Some(&[55; 32]));
        let e = hybrid.member_index(&other, p).unwrap_err();
        assert!(
            e.to_string()
                .contains("other than the one the ring file lists"),
            "{e}"
        );
        // In a ring without ML-DSA keys, a key file with one is fine (it signs Ed25519 only).
        assert_eq!(plain.member_index(&hids[1], p).unwrap(), 1);
        let outsider = Identity::from_seeds(&[77; 32], None);
        assert!(matches!(
            plain.member_index(&outsider, p),
            Err(RingFileError::NotMember { .. })
        ));
    }

    #[test]
    fn a_fixed_scale_and_sum_output_are_format_2_with_their_own_digest() {
        let (plain, _) = spec(3);
        let hier = Hier {
            scale_bits: Some(16),
            output: Output::Sum,
        };
        let h = plain.clone().with_hier(hier).unwrap();
        assert_ne!(h.digest(), plain.digest());
        let mean_only = plain
            .clone()
            .with_hier(Hier {
                output: Output::Mean,
                ..hier
            })
            .unwrap();
        assert_ne!(mean_only.digest(), h.digest());
        let text = h.to_toml();
        assert!(text.contains("format = \"gym-ring/2\""), "{text}");
        let back = RingSpec::parse(&text, Path::new("r.toml")).unwrap();
        assert_eq!((back.hier, back.digest()), (hier, h.digest()));
        // A plain ring keeps format 1 and its digest.
        assert!(plain.to_toml().contains("format = \"gym-ring/1\""));
        let p = Path::new("r.toml");
        let e = RingSpec::parse(&text.replace("gym-ring/2", "gym-ring/1"), p).unwrap_err();
        assert!(e.to_string().contains("need format \"gym-ring/2\""), "{e}");
        let e = RingSpec::parse(&text.replace("\"sum\"", "\"median\""), p).unwrap_err();
        assert!(e.to_string().contains("output is \"median\""), "{e}");
        let e = RingSpec::parse(&text.replace("scale_bits = 16\n", ""), p).unwrap_err();
        assert!(e.to_string().contains("needs scale_bits"), "{e}");
        // Default bounds (max_weight 2^32) leave 58 − 8 − bitlen(3 · 2^32) = 16 bits.
        let e =
            RingSpec::parse(&text.replace("scale_bits = 16", "scale_bits = 17"), p).unwrap_err();
        assert!(e.to_string().contains("scale_bits 17 is above 16"), "{e}");
        assert_eq!(e.class(), ErrorClass::Malformed);
    }
}
