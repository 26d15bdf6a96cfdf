//! Offline audit of a ring all-reduce result (docs/ring-protocol.md, "Audit").
//!
//! The result written by `gym ring join` keeps the round's transcript in `extra.ring`: the
//! ring's member list, every contributing member's signed commit, revealed nonce, signed sketch
//! and signed receipt. [`audit`] checks, without any network:
//!
//! 1. the keys: from the ring file when one is given (its digest must be the recorded `R`),
//!    else from the recorded member list (which must hash to the recorded `R`);
//! 2. every commit, sketch and receipt signature, the nonces against their commitments, and
//!    that the recorded weights, input digests, scale, total weight, seed and result digest are
//!    the ones the signed transcript implies;
//! 3. for each given input file: the member that committed to its body digest, and that the
//!    member's published sketch equals the sketch of that input at the transcript-derived points
//!    (a mismatch convicts the member); a file signed by a member but not its commitment also
//!    convicts it;
//! 4. with every contributing member's input: the exact fixed-point sum, its digest against the
//!    signed result digest, and the result's tensor bytes against the mean.
//!
//! Problems found in steps 2–4 are [`Finding`]s in the [`AuditReport`]; problems that stop the
//! audit (unreadable files, a record it cannot parse) are [`AuditError`]s.

use std::path::{Path, PathBuf};

use super::config::{Member, RingSpec};
use super::fixed;
use super::io::{self, Layout, RingIoError};
use super::proto;
use super::sketch;
use super::wire::{self, Body, Signed};
use crate::core::delta::{self, DeltaError, FileSource, VerifyOptions};
use crate::core::error::{Classify, ErrorClass};
use crate::core::keys::{self, PublicIdentity};

/// Format of `gym ring audit --json`.
pub const AUDIT_FORMAT: &str = "gym-ring-audit/1";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("opening {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("result {path} does not verify as a delta file: {source}")]
    Result { path: PathBuf, source: DeltaError },
    #[error(transparent)]
    Input(#[from] RingIoError),
    #[error(
        "{path} has no ring record (metadata extra.ring): it was not written by `gym ring join`"
    )]
    NotRingResult { path: PathBuf },
    #[error(
        "{path} was written by an older gym (ring record {format}): it lacks the transcript \
         (signed commits, nonces, sketches) that an audit replays; only results with record \
         {} can be audited",
        io::RESULT_FORMAT
    )]
    OlderFormat { path: PathBuf, format: String },
    #[error("{path}: malformed ring record: {reason}")]
    Record { path: PathBuf, reason: String },
    #[error(
        "ring file {ring_file} (digest {theirs}) is not the ring that produced {path} (digest {ours})"
    )]
    WrongRing {
        path: PathBuf,
        ring_file: PathBuf,
        ours: String,
        theirs: String,
    },
    #[error("audit of {path} failed: {}", findings.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("; "))]
    Failed {
        path: PathBuf,
        findings: Vec<Finding>,
    },
}

impl Classify for AuditError {
    fn class(&self) -> ErrorClass {
        match self {
            AuditError::Open { .. } => ErrorClass::Io,
            AuditError::Result { source, .. } => source.class(),
            AuditError::Input(e) => e.class(),
            AuditError::NotRingResult { .. } | AuditError::Record { .. } => ErrorClass::Malformed,
            AuditError::OlderFormat { .. } => ErrorClass::Unsupported,
            AuditError::WrongRing { .. } => ErrorClass::Policy,
            AuditError::Failed { findings, .. } => findings
                .first()
                .map_or(ErrorClass::Other, |f: &Finding| f.class()),
        }
    }
}

/// Something the audit found wrong.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// A signed message of the record does not verify under the member's key.
    #[error("member {index} ({id}): its {message} signature does not verify")]
    BadSignature {
        index: usize,
        id: String,
        message: &'static str,
    },
    /// The record contradicts the signed transcript (or is malformed in a part of it).
    #[error("the ring record is inconsistent: {reason}")]
    Inconsistent { reason: String },
    /// An input file proves that a member misbehaved.
    #[error("member {index} ({id}) convicted by {}: {reason}", path.display())]
    Convicted {
        index: usize,
        id: String,
        path: PathBuf,
        reason: String,
    },
    /// An input file is no contributing member's committed input and is not signed by one.
    #[error(
        "input {} (body digest {digest}) is not the committed input of any contributing member",
        path.display()
    )]
    UnknownInput { path: PathBuf, digest: String },
    /// The result's tensors are not the mean the members signed.
    #[error("the result is not what the members signed: {reason}")]
    Result { reason: String },
}

impl Finding {
    pub fn class(&self) -> ErrorClass {
        match self {
            Finding::BadSignature { .. } => ErrorClass::Signature,
            Finding::Inconsistent { .. } => ErrorClass::Malformed,
            Finding::Convicted { .. } => ErrorClass::Ring,
            Finding::UnknownInput { .. } => ErrorClass::Policy,
            Finding::Result { .. } => ErrorClass::Checksum,
        }
    }
}

/// Where the members' public keys came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    /// The ring file given to the audit (its digest equals the recorded one).
    RingFile,
    /// The member list recorded in the result (it hashes to the recorded ring digest, but
    /// nothing outside the file vouches for it).
    Record,
}

/// One contributing member, as audited.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MemberAudit {
    pub index: usize,
    pub id: String,
    pub weight: u64,
    pub input_digest: String,
    /// Its commit, sketch and receipt signatures all verify.
    pub signatures_ok: bool,
    /// The input file matched to its commitment, if one was given.
    pub input: Option<PathBuf>,
    /// Whether its published sketch equals the sketch of that input (`None` without input).
    pub sketch_matches_input: Option<bool>,
}

/// The outcome of [`audit`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditReport {
    pub result: PathBuf,
    pub keys: KeySource,
    pub ring: String,
    pub round: u64,
    /// The ring is hybrid: every signature checked is Ed25519 and ML-DSA-87, both verified.
    pub hybrid: bool,
    pub view: u32,
    pub members: Vec<MemberAudit>,
    pub excluded: Vec<serde_json::Value>,
    pub scale_bits: u32,
    pub total_weight: String,
    pub result_digest: String,
    pub seed: String,
    /// Receipts whose signature verified.
    pub receipts_verified: usize,
    /// Every contributing member's input was given, and the result's bytes were compared with
    /// the exact mean recomputed from them.
    pub exact_mean_checked: bool,
    pub findings: Vec<Finding>,
}

impl AuditReport {
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }

    /// The findings as an error (for the exit code), `None` when the audit passed.
    pub fn failure(&self) -> Option<AuditError> {
        (!self.ok()).then(|| AuditError::Failed {
            path: self.result.clone(),
            findings: self.findings.clone(),
        })
    }
}

#[derive(Debug, serde::Deserialize)]
struct Rec {
    ring: String,
    round: u64,
    chunk_elements: u32,
    ring_members: Vec<RecRingMember>,
    view: u32,
    members: Vec<RecMember>,
    #[serde(default)]
    excluded: Vec<serde_json::Value>,
    scale_bits: u32,
    total_weight: String,
    result_digest: String,
    sum_digest: String,
    seed: String,
}

#[derive(Debug, serde::Deserialize)]
struct RecRingMember {
    id: String,
    address: String,
    ed25519: String,
    #[serde(default)]
    ml_dsa_87: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
struct RecMember {
    index: usize,
    id: String,
    weight: u64,
    input_digest: String,
    receipt: String,
    /// The receipt's ML-DSA-87 signature (hybrid rings).
    #[serde(default)]
    receipt_ml_dsa_87: Option<String>,
    commit: String,
    nonce: String,
    sketch: String,
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    hex::decode(s).ok()?.try_into().ok()
}

/// A contributing member's transcript, decoded.
struct Contributor {
    index: usize,
    id: String,
    commit: Option<wire::Commit>,
    commit_msg: Option<Signed>,
    nonce: [u8; 32],
    sketches: Option<Vec<u64>>,
    signatures_ok: bool,
}

fn rebuild_ring(rec: &Rec) -> Result<RingSpec, String> {
    let mut members = Vec::new();
    for (i, m) in rec.ring_members.iter().enumerate() {
        let ed =
            keys::parse_ed25519_public(&m.ed25519).map_err(|e| format!("ring member {i}: {e}"))?;
        let pq = match &m.ml_dsa_87 {
            Some(s) => Some(
                keys::unb64(s)
                    .ok_or_else(|| format!("ring member {i}: ml_dsa_87 is not base64"))?,
            ),
            None => None,
        };
        let public = PublicIdentity::from_raw(&ed, pq.as_deref())
            .map_err(|e| format!("ring member {i}: {e}"))?;
        members.push(Member {
            id: m.id.clone(),
            address: m.address.clone(),
            public,
        });
    }
    RingSpec::new(rec.round, rec.chunk_elements, members)
}

/// Audits the result at `result` (see the module documentation). `ring` is the ring file and
/// its path, when the auditor has one; `inputs` are member input files, in any order.
pub fn audit(
    result: &Path,
    ring: Option<(&RingSpec, &Path)>,
    inputs: &[PathBuf],
) -> Result<AuditReport, AuditError> {
    let record_err = |reason: String| AuditError::Record {
        path: result.to_path_buf(),
        reason,
    };
    let src = FileSource::open(result).map_err(|source| AuditError::Open {
        path: result.to_path_buf(),
        source,
    })?;
    let verified =
        delta::verify(&src, &VerifyOptions::default()).map_err(|source| AuditError::Result {
            path: result.to_path_buf(),
            source,
        })?;
    let d = &verified.delta;
    let value = d
        .metadata
        .extra
        .as_ref()
        .and_then(|e| e.get("ring"))
        .ok_or_else(|| AuditError::NotRingResult {
            path: result.to_path_buf(),
        })?;
    let format = value.get("format").and_then(|f| f.as_str()).unwrap_or("");
    if format != io::RESULT_FORMAT {
        if format.starts_with("gym-ring-result/") {
            return Err(AuditError::OlderFormat {
                path: result.to_path_buf(),
                format: format.to_string(),
            });
        }
        return Err(record_err(format!("unknown format {format:?}")));
    }
    let rec: Rec = serde_json::from_value(value.clone()).map_err(|e| record_err(e.to_string()))?;
    let recorded_r = hex32(&rec.ring).ok_or_else(|| record_err("ring digest is not hex".into()))?;
    let result_digest =
        hex32(&rec.result_digest).ok_or_else(|| record_err("result_digest is not hex".into()))?;
    let sum_digest =
        hex32(&rec.sum_digest).ok_or_else(|| record_err("sum_digest is not hex".into()))?;
    let recorded_seed = hex32(&rec.seed).ok_or_else(|| record_err("seed is not hex".into()))?;
    let recorded_tw: u128 = rec
        .total_weight
        .parse()
        .map_err(|_| record_err(format!("total_weight {:?}", rec.total_weight)))?;

    let mut findings = Vec::new();
    let rebuilt = rebuild_ring(&rec);
    let (spec, keys) = match (ring, rebuilt) {
        (Some((spec, ring_path)), rebuilt) => {
            if spec.digest() != recorded_r {
                return Err(AuditError::WrongRing {
                    path: result.to_path_buf(),
                    ring_file: ring_path.to_path_buf(),
                    ours: rec.ring.clone(),
                    theirs: hex::encode(spec.digest()),
                });
            }
            match rebuilt {
                Ok(r) if r.digest() == recorded_r => {}
                Ok(_) => findings.push(Finding::Inconsistent {
                    reason: "the recorded member list does not hash to the ring digest".into(),
                }),
                Err(e) => findings.push(Finding::Inconsistent {
                    reason: format!("the recorded member list is invalid: {e}"),
                }),
            }
            (spec.clone(), KeySource::RingFile)
        }
        (None, Ok(r)) => {
            if r.digest() != recorded_r {
                return Err(record_err(format!(
                    "the recorded member list hashes to {}, not to the recorded ring digest {} \
                     (give the ring file with --ring)",
                    hex::encode(r.digest()),
                    rec.ring
                )));
            }
            (r, KeySource::Record)
        }
        (None, Err(e)) => return Err(record_err(format!("member list: {e}"))),
    };
    let rd = spec.digest();

    // The view: indices strictly increasing, ids as in the ring.
    let view_members: Vec<usize> = rec.members.iter().map(|m| m.index).collect();
    if view_members.len() < 2
        || view_members.windows(2).any(|w| w[0] >= w[1])
        || view_members.last().is_some_and(|&m| m >= spec.len())
    {
        return Err(record_err(format!(
            "member indices {view_members:?} are not a view of a ring of {}",
            spec.len()
        )));
    }
    let n = view_members.len();
    let members_digest = proto::members_digest(rec.view, &view_members);

    // Step 2: signatures and the transcript.
    let mut contributors = Vec::with_capacity(n);
    let mut receipts_verified = 0;
    for m in &rec.members {
        let key = &spec.members[m.index].public;
        let id = spec.members[m.index].id.clone();
        if m.id != id {
            findings.push(Finding::Inconsistent {
                reason: format!(
                    "member {} is recorded as {} but the ring lists {id}",
                    m.index, m.id
                ),
            });
        }
        let mut sig_ok = true;
        let mut bad_sig = |what: &'static str, findings: &mut Vec<Finding>| {
            sig_ok = false;
            findings.push(Finding::BadSignature {
                index: m.index,
                id: id.clone(),
                message: what,
            });
        };
        let decode = |s: &str, what: &str| -> Result<Signed, AuditError> {
            let b = keys::unb64(s)
                .ok_or_else(|| record_err(format!("member {}: {what} is not base64", m.index)))?;
            wire::decode(&b, spec.is_hybrid())
                .map_err(|e| record_err(format!("member {}: {what}: {e}", m.index)))
        };
        // Receipt: an `ok` verdict on the recorded result digest.
        let receipt = Signed {
            sender: m.index as u16,
            view: rec.view,
            body: Body::Verdict {
                ok: true,
                result: result_digest,
                evidence: Vec::new(),
            },
            sig: keys::unb64(&m.receipt)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| record_err(format!("member {}: receipt", m.index)))?,
            // Missing in a hybrid ring, or present in another: the receipt does not verify.
            pq_sig: match &m.receipt_ml_dsa_87 {
                Some(s) => Some(keys::unb64(s).ok_or_else(|| {
                    record_err(format!(
                        "member {}: receipt_ml_dsa_87 is not base64",
                        m.index
                    ))
                })?),
                None => None,
            },
            payload: Vec::new(),
        };
        if receipt.verify(&rd, key) {
            receipts_verified += 1;
        } else {
            bad_sig("receipt", &mut findings);
        }
        // Commit.
        let cm = decode(&m.commit, "commit")?;
        let commit = match &cm.body {
            Body::Commit(c) if cm.sender as usize == m.index && cm.view == rec.view => {
                if !cm.verify(&rd, key) {
                    bad_sig("commit", &mut findings);
                }
                Some(c.clone())
            }
            _ => {
                findings.push(Finding::Inconsistent {
                    reason: format!(
                        "member {}: the recorded commit is not its commit of view {}",
                        m.index, rec.view
                    ),
                });
                None
            }
        };
        // Sketch.
        let sm = decode(&m.sketch, "sketch")?;
        let sketches = match &sm.body {
            Body::Sketch { sketches }
                if sm.sender as usize == m.index
                    && sm.view == rec.view
                    && sketches.len() == n
                    && sketches.iter().all(|&s| s < sketch::P) =>
            {
                if !sm.verify(&rd, key) {
                    bad_sig("sketch", &mut findings);
                }
                Some(sketches.clone())
            }
            _ => {
                findings.push(Finding::Inconsistent {
                    reason: format!(
                        "member {}: the recorded sketch is not its sketch of view {}",
                        m.index, rec.view
                    ),
                });
                None
            }
        };
        let nonce =
            hex32(&m.nonce).ok_or_else(|| record_err(format!("member {}: nonce", m.index)))?;
        if let Some(c) = &commit {
            let mut bad = Vec::new();
            if proto::nonce_hash(&nonce) != c.nonce_hash {
                bad.push("its nonce does not match its commitment");
            }
            if c.weight != m.weight {
                bad.push("the recorded weight is not its committed weight");
            }
            if hex::encode(c.input) != m.input_digest {
                bad.push("the recorded input digest is not its committed one");
            }
            if c.members != members_digest {
                bad.push("its commit names another member list");
            }
            for b in bad {
                findings.push(Finding::Inconsistent {
                    reason: format!("member {}: {b}", m.index),
                });
            }
        }
        contributors.push(Contributor {
            index: m.index,
            id,
            commit,
            commit_msg: Some(cm),
            nonce,
            sketches,
            signatures_ok: sig_ok,
        });
    }

    // The quantities every member derived from the commits.
    let result_layout = Layout {
        tensors: d
            .tensors
            .iter()
            .map(|t| (t.name.clone(), t.dtype, t.shape.clone()))
            .collect(),
        adapter_config: None,
        base_hash: None,
    };
    let layout_digest = result_layout.digest();
    let commits: Vec<&wire::Commit> = contributors
        .iter()
        .filter_map(|c| c.commit.as_ref())
        .collect();
    let mut seed = recorded_seed;
    if commits.len() == n {
        let weights: Vec<u64> = commits.iter().map(|c| c.weight).collect();
        let exps: Vec<i32> = commits.iter().map(|c| c.exponent).collect();
        let tw: u128 = weights.iter().map(|&w| w as u128).sum();
        if tw != recorded_tw {
            findings.push(Finding::Inconsistent {
                reason: format!(
                    "total weight {recorded_tw} is not the sum of the committed weights ({tw})"
                ),
            });
        }
        match fixed::scale_bits(&exps, &weights) {
            Ok(f) if f == rec.scale_bits => {}
            Ok(f) => findings.push(Finding::Inconsistent {
                reason: format!(
                    "scale 2^{} is not the one the commits give (2^{f})",
                    rec.scale_bits
                ),
            }),
            Err(e) => findings.push(Finding::Inconsistent {
                reason: format!("the commits give no scale: {e}"),
            }),
        }
        if let Some(c) = commits.iter().find(|c| c.layout != layout_digest) {
            findings.push(Finding::Result {
                reason: format!(
                    "its tensors (layout {}) are not the layout the members committed to ({})",
                    hex::encode(layout_digest),
                    hex::encode(c.layout)
                ),
            });
        }
        seed = proto::seed(
            &rd,
            rec.view,
            contributors
                .iter()
                .filter_map(|c| Some((c.commit_msg.as_ref()?, &c.nonce))),
        );
        if seed != recorded_seed {
            findings.push(Finding::Inconsistent {
                reason: "the recorded seed is not the one the transcript gives".into(),
            });
        }
        let latest = commits.iter().map(|c| c.timestamp.as_str()).max();
        if latest != Some(d.metadata.timestamp.as_str()) {
            findings.push(Finding::Inconsistent {
                reason: format!(
                    "timestamp {} is not the latest committed one ({})",
                    d.metadata.timestamp,
                    latest.unwrap_or("")
                ),
            });
        }
    }
    if proto::result_digest_of(&layout_digest, rec.scale_bits, recorded_tw, &sum_digest)
        != result_digest
    {
        findings.push(Finding::Result {
            reason: "the signed result digest does not cover this layout, scale, total weight \
                     and sum digest"
                .into(),
        });
    }

    // Step 3: inputs.
    let mut audits: Vec<MemberAudit> = contributors
        .iter()
        .zip(&rec.members)
        .map(|(c, m)| MemberAudit {
            index: c.index,
            id: c.id.clone(),
            weight: m.weight,
            input_digest: m.input_digest.clone(),
            signatures_ok: c.signatures_ok,
            input: None,
            sketch_matches_input: None,
        })
        .collect();
    let len: usize = result_layout
        .tensors
        .iter()
        .map(|(_, _, s)| s.iter().product::<u64>() as usize)
        .sum();
    let segs = proto::segments(len, n);
    let points: Vec<u64> = (0..n).map(|g| sketch::point(&seed, g as u32)).collect();
    let mut sum = vec![0i64; len];
    let mut summed = 0usize;
    for path in inputs {
        let (input, _, signer) = io::read_input(path, 1)?;
        let digest = input.input_digest;
        let Some(j) = contributors
            .iter()
            .position(|c| c.commit.as_ref().is_some_and(|c| c.input == digest))
        else {
            // A member's own signed delta that is not what it committed to.
            let by = signer.as_ref().and_then(|s| {
                contributors
                    .iter()
                    .find(|c| spec.members[c.index].public.ed25519 == s.ed25519)
            });
            findings.push(match by {
                Some(c) => Finding::Convicted {
                    index: c.index,
                    id: c.id.clone(),
                    path: path.clone(),
                    reason: format!(
                        "the file is signed by this member but is not the input it committed to \
                         (file body digest {}, committed {})",
                        hex::encode(digest),
                        audits
                            .iter()
                            .find(|a| a.index == c.index)
                            .map_or("?", |a| a.input_digest.as_str())
                    ),
                },
                None => Finding::UnknownInput {
                    path: path.clone(),
                    digest: hex::encode(digest),
                },
            });
            continue;
        };
        if audits[j].input.is_some() {
            continue; // the same member's input given twice
        }
        audits[j].input = Some(path.clone());
        let c = &contributors[j];
        let commit = c.commit.as_ref().expect("matched a commit");
        let convict = |reason: String| Finding::Convicted {
            index: c.index,
            id: c.id.clone(),
            path: path.clone(),
            reason,
        };
        if input.values.len() != len || input.layout != commit.layout {
            findings.push(convict(
                "its committed input does not have the result's tensors".into(),
            ));
            audits[j].sketch_matches_input = Some(false);
            continue;
        }
        match input.values.exponent() {
            Ok(e) if e == commit.exponent => {}
            Ok(e) => findings.push(convict(format!(
                "it committed to exponent {} but its input needs {e}",
                commit.exponent
            ))),
            Err(e) => findings.push(convict(format!("its input is not finite: {e}"))),
        }
        let contribution = input.values.contribution(commit.weight, rec.scale_bits);
        let mut matches = true;
        if let Some(published) = &c.sketches {
            use rayon::prelude::*;
            let computed: Vec<u64> = segs
                .par_iter()
                .enumerate()
                .map(|(g, r)| sketch::sketch(&contribution[r.clone()], points[g]))
                .collect();
            for (g, (&mine, &theirs)) in computed.iter().zip(published).enumerate() {
                if mine != theirs {
                    matches = false;
                    findings.push(convict(format!(
                        "its published sketch of segment {g} ({theirs}) is not the sketch of \
                         its committed input ({mine})"
                    )));
                    break;
                }
            }
        } else {
            matches = false;
        }
        audits[j].sketch_matches_input = Some(matches);
        fixed::add_into(&mut sum, &contribution);
        summed += 1;
    }

    // Step 4: the exact mean.
    let exact_mean_checked = summed == n;
    if exact_mean_checked {
        if wire::payload_digest(&sum) != sum_digest {
            findings.push(Finding::Result {
                reason: "the exact sum of the committed inputs is not the sum the members signed"
                    .into(),
            });
        }
        let want = io::mean_bytes(&result_layout, &sum, recorded_tw, rec.scale_bits);
        for (t, w) in d.tensors.iter().zip(&want) {
            let mut got = Vec::with_capacity(w.len());
            delta::read_tensor(&src, d, t, |raw| got.extend_from_slice(raw)).map_err(|source| {
                AuditError::Result {
                    path: result.to_path_buf(),
                    source,
                }
            })?;
            if got != *w {
                let width = (t.dtype.bits() / 8).max(1) as usize;
                let k = got
                    .chunks(width)
                    .zip(w.chunks(width))
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                findings.push(Finding::Result {
                    reason: format!(
                        "tensor {:?} differs from the exact weighted mean of the inputs \
                         (first at element {k})",
                        t.name
                    ),
                });
            }
        }
    }

    Ok(AuditReport {
        result: result.to_path_buf(),
        keys,
        ring: rec.ring.clone(),
        round: rec.round,
        hybrid: spec.is_hybrid(),
        view: rec.view,
        members: audits,
        excluded: rec.excluded,
        scale_bits: rec.scale_bits,
        total_weight: rec.total_weight,
        result_digest: rec.result_digest,
        seed: rec.seed,
        receipts_verified,
        exact_mean_checked,
        findings,
    })
}

#[cfg(test)]
mod tests;
