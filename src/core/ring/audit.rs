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

use super::config::{Hier, InputBounds, Member, Output, RingSpec};
use super::fixed;
use super::io::{self, Layout, RingIoError};
use super::proto;
use super::quant::Bits;
use super::sketch;
use super::sumfile::{self, SumFileError};
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
    /// A sum file (a group ring's result, or a leader ring's input) that does not parse.
    #[error(transparent)]
    Sum(#[from] SumFileError),
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
            AuditError::Sum(e) => e.class(),
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

/// What the audited file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultKind {
    /// The weighted mean, a DELTA file (a flat ring, or a hierarchical round's leader ring).
    Mean,
    /// A group ring's exact sum before the division, a sum file (hierarchical rounds): its
    /// integers are checked against the signed sum digest; "exact mean" means the exact sum.
    Sum,
}

/// The outcome of [`audit`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditReport {
    pub result: PathBuf,
    /// A mean (DELTA file) or a group's exact sum (sum file).
    #[serde(rename = "result_kind")]
    pub kind: ResultKind,
    pub keys: KeySource,
    pub ring: String,
    pub round: u64,
    /// The ring is hybrid: every signature checked is Ed25519 and ML-DSA-87, both verified.
    pub hybrid: bool,
    /// Bits per element of a quantized ring (`None`: lossless); each input's contribution is
    /// recomputed quantized.
    pub quantize: Option<u8>,
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
    /// The ring file's settings other than the defaults (`io::record`): input bounds,
    /// quantization, a hierarchical round's fixed scale and output.
    #[serde(default)]
    max_weight: Option<u64>,
    #[serde(default)]
    max_exponent: Option<i32>,
    #[serde(default)]
    fixed_scale_bits: Option<u32>,
    #[serde(default)]
    output: Option<String>,
    quantize: Option<u64>,
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
    let defaults = InputBounds::default();
    let bounds = InputBounds {
        max_weight: rec.max_weight.unwrap_or(defaults.max_weight),
        max_exponent: rec.max_exponent.unwrap_or(defaults.max_exponent),
    };
    let hier = Hier {
        scale_bits: rec.fixed_scale_bits,
        output: match rec.output.as_deref() {
            None => Output::Mean,
            Some("sum") => Output::Sum,
            Some(o) => return Err(format!("output {o:?}")),
        },
    };
    let quantize = rec.quantize.map(Bits::new).transpose()?;
    RingSpec::new(rec.round, rec.chunk_elements, members)
        .and_then(|s| s.with_bounds(bounds))
        .map(|s| s.with_quantize(quantize))
        .and_then(|s| s.with_hier(hier))
}

/// The ring record with its digests and numbers decoded.
struct Record {
    raw: Rec,
    ring: [u8; 32],
    result_digest: [u8; 32],
    sum_digest: [u8; 32],
    seed: [u8; 32],
    total_weight: u128,
}

/// What every step of an audit reads: the result's path, its parsed record, the ring (with its
/// digest and the view's member indices), and the findings so far.
struct Audit<'a> {
    path: &'a Path,
    rec: Record,
    spec: RingSpec,
    ring_digest: [u8; 32],
    view_members: Vec<usize>,
    findings: Vec<Finding>,
}

fn record_error(path: &Path, reason: String) -> AuditError {
    AuditError::Record {
        path: path.to_path_buf(),
        reason,
    }
}

fn inconsistent(reason: String) -> Finding {
    Finding::Inconsistent { reason }
}

/// Audits the result at `result` (see the module documentation). `ring` is the ring file and
/// its path, when the auditor has one; `inputs` are member input files, in any order.
pub fn audit(
    result: &Path,
    ring: Option<(&RingSpec, &Path)>,
    inputs: &[PathBuf],
) -> Result<AuditReport, AuditError> {
    let file = ResultFile::open(result)?;
    let rec = parse_record(result, file.record(result)?)?;
    let mut findings = Vec::new();
    let (spec, keys) = resolve_keys(result, &rec, ring, &mut findings)?;
    let view_members = check_view(result, &rec, &spec)?;
    let mut a = Audit {
        path: result,
        ring_digest: spec.digest(),
        rec,
        spec,
        view_members,
        findings,
    };
    // Step 2: signatures and the transcript.
    let mut contributors = Vec::with_capacity(a.view_members.len());
    let mut receipts_verified = 0;
    let members = std::mem::take(&mut a.rec.raw.members);
    for m in &members {
        let (contributor, receipt_ok) = a.check_member(m)?;
        receipts_verified += usize::from(receipt_ok);
        contributors.push(contributor);
    }
    a.rec.raw.members = members;
    let layout = file.layout();
    let seed = a.check_derived_quantities(&contributors, &layout, file.timestamp());
    a.check_result_digest(&layout);
    if let ResultFile::Sum(s) = &file {
        a.check_sum_file(s);
    }
    // Step 3: inputs.
    let mut inputs_check = InputsCheck::new(&a, &contributors, &layout, &seed);
    for path in inputs {
        a.check_input(path, &contributors, &mut inputs_check)?;
    }
    // Step 4: the exact mean.
    let exact_mean_checked = inputs_check.summed == a.view_members.len();
    if exact_mean_checked {
        match &file {
            ResultFile::Delta { src, verified } => {
                a.check_exact_mean(src, &verified.delta, &layout, &inputs_check.sum)?
            }
            ResultFile::Sum(s) => a.check_exact_sum(s, &inputs_check.sum),
        }
    }
    let kind = file.kind();
    Ok(a.report(
        kind,
        keys,
        inputs_check.audits,
        receipts_verified,
        exact_mean_checked,
    ))
}

/// Opens the result and verifies it as a delta file.
fn open_result(result: &Path) -> Result<(FileSource, delta::VerifyReport), AuditError> {
    let src = FileSource::open(result).map_err(|source| AuditError::Open {
        path: result.to_path_buf(),
        source,
    })?;
    let verified =
        delta::verify(&src, &VerifyOptions::default()).map_err(|source| AuditError::Result {
            path: result.to_path_buf(),
            source,
        })?;
    Ok((src, verified))
}

/// What `gym ring audit` reads: a ring's averaged DELTA file, or a group ring's sum file
/// (hierarchical rounds), whose header keeps the same record.
enum ResultFile {
    Delta {
        src: FileSource,
        verified: Box<delta::VerifyReport>,
    },
    Sum(Box<sumfile::SumFile>),
}

impl ResultFile {
    fn open(result: &Path) -> Result<Self, AuditError> {
        if sumfile::is_sum_file(result) {
            return Ok(ResultFile::Sum(Box::new(sumfile::SumFile::read(result)?)));
        }
        let (src, verified) = open_result(result)?;
        Ok(ResultFile::Delta {
            src,
            verified: Box::new(verified),
        })
    }

    /// The ring record (`extra.ring` of a delta, `ring` of a sum file's header).
    fn record(&self, result: &Path) -> Result<&serde_json::Value, AuditError> {
        let value = match self {
            ResultFile::Delta { verified, .. } => verified
                .delta
                .metadata
                .extra
                .as_ref()
                .and_then(|e| e.get("ring")),
            ResultFile::Sum(s) => Some(&s.record),
        };
        value.ok_or_else(|| AuditError::NotRingResult {
            path: result.to_path_buf(),
        })
    }

    fn layout(&self) -> Layout {
        match self {
            ResultFile::Delta { verified, .. } => result_layout(&verified.delta),
            ResultFile::Sum(s) => Layout {
                tensors: s.layout.tensors.clone(),
                adapter_config: None,
                base_hash: None,
            },
        }
    }

    fn timestamp(&self) -> &str {
        match self {
            ResultFile::Delta { verified, .. } => &verified.delta.metadata.timestamp,
            ResultFile::Sum(s) => &s.timestamp,
        }
    }

    fn kind(&self) -> ResultKind {
        match self {
            ResultFile::Delta { .. } => ResultKind::Mean,
            ResultFile::Sum(_) => ResultKind::Sum,
        }
    }
}

/// The ring record of the result, parsed and decoded.
fn parse_record(result: &Path, value: &serde_json::Value) -> Result<Record, AuditError> {
    let format = value.get("format").and_then(|f| f.as_str()).unwrap_or("");
    if format != io::RESULT_FORMAT {
        if format.starts_with("gym-ring-result/") {
            return Err(AuditError::OlderFormat {
                path: result.to_path_buf(),
                format: format.to_string(),
            });
        }
        return Err(record_error(result, format!("unknown format {format:?}")));
    }
    let raw: Rec =
        serde_json::from_value(value.clone()).map_err(|e| record_error(result, e.to_string()))?;
    let digest = |s: &str, what: &str| {
        hex32(s).ok_or_else(|| record_error(result, format!("{what} is not hex")))
    };
    let ring = digest(&raw.ring, "ring digest")?;
    let result_digest = digest(&raw.result_digest, "result_digest")?;
    let sum_digest = digest(&raw.sum_digest, "sum_digest")?;
    let seed = digest(&raw.seed, "seed")?;
    let total_weight: u128 = raw
        .total_weight
        .parse()
        .map_err(|_| record_error(result, format!("total_weight {:?}", raw.total_weight)))?;
    Ok(Record {
        raw,
        ring,
        result_digest,
        sum_digest,
        seed,
        total_weight,
    })
}

/// Step 1: the members' keys, from the ring file when one is given (its digest must be the
/// recorded one; a recorded member list that disagrees is a finding), else from the record.
fn resolve_keys(
    result: &Path,
    rec: &Record,
    ring: Option<(&RingSpec, &Path)>,
    findings: &mut Vec<Finding>,
) -> Result<(RingSpec, KeySource), AuditError> {
    let rebuilt = rebuild_ring(&rec.raw);
    let Some((spec, ring_path)) = ring else {
        let r = rebuilt.map_err(|e| record_error(result, format!("member list: {e}")))?;
        if r.digest() != rec.ring {
            return Err(record_error(
                result,
                format!(
                    "the recorded member list hashes to {}, not to the recorded ring digest {} \
                     (give the ring file with --ring)",
                    hex::encode(r.digest()),
                    rec.raw.ring
                ),
            ));
        }
        return Ok((r, KeySource::Record));
    };
    if spec.digest() != rec.ring {
        return Err(AuditError::WrongRing {
            path: result.to_path_buf(),
            ring_file: ring_path.to_path_buf(),
            ours: rec.raw.ring.clone(),
            theirs: hex::encode(spec.digest()),
        });
    }
    match rebuilt {
        Ok(r) if r.digest() == rec.ring => {}
        Ok(_) => findings.push(inconsistent(
            "the recorded member list does not hash to the ring digest".into(),
        )),
        Err(e) => findings.push(inconsistent(format!(
            "the recorded member list is invalid: {e}"
        ))),
    }
    Ok((spec.clone(), KeySource::RingFile))
}

/// The view's member indices: at least two, strictly increasing, all in the ring.
fn check_view(result: &Path, rec: &Record, spec: &RingSpec) -> Result<Vec<usize>, AuditError> {
    let view_members: Vec<usize> = rec.raw.members.iter().map(|m| m.index).collect();
    if view_members.len() < 2
        || view_members.windows(2).any(|w| w[0] >= w[1])
        || view_members.last().is_some_and(|&m| m >= spec.len())
    {
        return Err(record_error(
            result,
            format!(
                "member indices {view_members:?} are not a view of a ring of {}",
                spec.len()
            ),
        ));
    }
    Ok(view_members)
}

/// The layout of the result's tensors (what the members committed to).
fn result_layout(d: &delta::Delta) -> Layout {
    Layout {
        tensors: d
            .tensors
            .iter()
            .map(|t| (t.name.clone(), t.dtype, t.shape.clone()))
            .collect(),
        adapter_config: None,
        base_hash: None,
    }
}

/// Step 3's running state: one [`MemberAudit`] per contributor, the exact fixed-point sum of
/// the inputs matched so far, and what a sketch is computed over.
struct InputsCheck {
    audits: Vec<MemberAudit>,
    len: usize,
    segments: Vec<std::ops::Range<usize>>,
    points: Vec<u64>,
    sum: Vec<i64>,
    summed: usize,
}

impl InputsCheck {
    fn new(a: &Audit, contributors: &[Contributor], layout: &Layout, seed: &[u8; 32]) -> Self {
        let n = a.view_members.len();
        let audits = contributors
            .iter()
            .zip(&a.rec.raw.members)
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
        let len: usize = layout
            .tensors
            .iter()
            .map(|(_, _, s)| s.iter().product::<u64>() as usize)
            .sum();
        InputsCheck {
            audits,
            len,
            segments: proto::segments(len, n),
            points: (0..n).map(|g| sketch::point(seed, g as u32)).collect(),
            sum: vec![0i64; len],
            summed: 0,
        }
    }
}

impl Audit<'_> {
    fn record_error(&self, reason: String) -> AuditError {
        record_error(self.path, reason)
    }

    /// Records a bad signature of `what` by member `index`; returns whether it verified.
    fn signature(&mut self, verified: bool, index: usize, id: &str, what: &'static str) -> bool {
        if !verified {
            self.findings.push(Finding::BadSignature {
                index,
                id: id.to_string(),
                message: what,
            });
        }
        verified
    }

    /// Step 2 for one member: its receipt, commit and sketch signatures, and its nonce,
    /// weight, input digest and member list against its commitment. Returns the decoded
    /// transcript and whether the receipt verified.
    fn check_member(&mut self, m: &RecMember) -> Result<(Contributor, bool), AuditError> {
        let id = self.spec.members[m.index].id.clone();
        if m.id != id {
            self.findings.push(inconsistent(format!(
                "member {} is recorded as {} but the ring lists {id}",
                m.index, m.id
            )));
        }
        let receipt = self.receipt(m)?;
        let key = &self.spec.members[m.index].public;
        let receipt_verified = receipt.verify(&self.ring_digest, key);
        let receipt_ok = self.signature(receipt_verified, m.index, &id, "receipt");
        let commit_msg = self.decode(m, &m.commit, "commit")?;
        let (commit, commit_ok) = self.check_commit(m, &id, &commit_msg);
        let (sketches, sketch_ok) = self.check_sketch(m, &id)?;
        let nonce = hex32(&m.nonce)
            .ok_or_else(|| self.record_error(format!("member {}: nonce", m.index)))?;
        if let Some(c) = &commit {
            self.check_commitment(m, c, &nonce);
        }
        let contributor = Contributor {
            index: m.index,
            id,
            commit,
            commit_msg: Some(commit_msg),
            nonce,
            sketches,
            signatures_ok: receipt_ok && commit_ok && sketch_ok,
        };
        Ok((contributor, receipt_ok))
    }

    /// A recorded message of member `m` (`what`: commit, sketch), decoded.
    fn decode(&self, m: &RecMember, b64: &str, what: &str) -> Result<Signed, AuditError> {
        let b = keys::unb64(b64).ok_or_else(|| {
            self.record_error(format!("member {}: {what} is not base64", m.index))
        })?;
        wire::decode(&b, self.spec.is_hybrid())
            .map_err(|e| self.record_error(format!("member {}: {what}: {e}", m.index)))
    }

    /// The member's receipt: an `ok` verdict on the recorded result digest, with its recorded
    /// signatures (a missing ML-DSA half in a hybrid ring, or one in another, does not verify).
    fn receipt(&self, m: &RecMember) -> Result<Signed, AuditError> {
        let sig = keys::unb64(&m.receipt)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| self.record_error(format!("member {}: receipt", m.index)))?;
        let pq_sig = match &m.receipt_ml_dsa_87 {
            Some(s) => Some(keys::unb64(s).ok_or_else(|| {
                self.record_error(format!(
                    "member {}: receipt_ml_dsa_87 is not base64",
                    m.index
                ))
            })?),
            None => None,
        };
        Ok(Signed {
            sender: m.index as u16,
            view: self.rec.raw.view,
            body: Body::Verdict {
                ok: true,
                result: self.rec.result_digest,
                evidence: Vec::new(),
            },
            sig,
            pq_sig,
            payload: Vec::new(),
        })
    }

    /// The member's commit of this view, if the recorded message is one, and whether its
    /// signature verified.
    fn check_commit(
        &mut self,
        m: &RecMember,
        id: &str,
        msg: &Signed,
    ) -> (Option<wire::Commit>, bool) {
        let view = self.rec.raw.view;
        match &msg.body {
            Body::Commit(c) if msg.sender as usize == m.index && msg.view == view => {
                let verified = msg.verify(&self.ring_digest, &self.spec.members[m.index].public);
                let ok = self.signature(verified, m.index, id, "commit");
                (Some(c.clone()), ok)
            }
            _ => {
                self.findings.push(inconsistent(format!(
                    "member {}: the recorded commit is not its commit of view {view}",
                    m.index
                )));
                (None, true)
            }
        }
    }

    /// The member's sketches of this view (one per segment, each below the field's modulus),
    /// if the recorded message is its sketch, and whether its signature verified.
    fn check_sketch(
        &mut self,
        m: &RecMember,
        id: &str,
    ) -> Result<(Option<Vec<u64>>, bool), AuditError> {
        let msg = self.decode(m, &m.sketch, "sketch")?;
        let (view, n) = (self.rec.raw.view, self.view_members.len());
        Ok(match &msg.body {
            Body::Sketch { sketches }
                if msg.sender as usize == m.index
                    && msg.view == view
                    && sketches.len() == n
                    && sketches.iter().all(|&s| s < sketch::P) =>
            {
                let verified = msg.verify(&self.ring_digest, &self.spec.members[m.index].public);
                let ok = self.signature(verified, m.index, id, "sketch");
                (Some(sketches.clone()), ok)
            }
            _ => {
                self.findings.push(inconsistent(format!(
                    "member {}: the recorded sketch is not its sketch of view {view}",
                    m.index
                )));
                (None, true)
            }
        })
    }

    /// The member's nonce, recorded weight, input digest and the view against its commit.
    fn check_commitment(&mut self, m: &RecMember, c: &wire::Commit, nonce: &[u8; 32]) {
        let members_digest = proto::members_digest(self.rec.raw.view, &self.view_members);
        let mut bad = Vec::new();
        if proto::nonce_hash(nonce) != c.nonce_hash {
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
            self.findings
                .push(inconsistent(format!("member {}: {b}", m.index)));
        }
    }

    /// With every member's commit: the total weight, scale, layout, seed and timestamp the
    /// commits imply against the recorded ones. Returns the seed (the recorded one when a
    /// commit is missing).
    fn check_derived_quantities(
        &mut self,
        contributors: &[Contributor],
        layout: &Layout,
        timestamp: &str,
    ) -> [u8; 32] {
        let commits: Vec<&wire::Commit> = contributors
            .iter()
            .filter_map(|c| c.commit.as_ref())
            .collect();
        if commits.len() != self.view_members.len() {
            return self.rec.seed;
        }
        self.check_weights_and_scale(&commits);
        let layout_digest = layout.digest();
        if let Some(c) = commits.iter().find(|c| c.layout != layout_digest) {
            self.findings.push(Finding::Result {
                reason: format!(
                    "its tensors (layout {}) are not the layout the members committed to ({})",
                    hex::encode(layout_digest),
                    hex::encode(c.layout)
                ),
            });
        }
        let seed = proto::seed(
            &self.ring_digest,
            self.rec.raw.view,
            contributors
                .iter()
                .filter_map(|c| Some((c.commit_msg.as_ref()?, &c.nonce))),
        );
        if seed != self.rec.seed {
            self.findings.push(inconsistent(
                "the recorded seed is not the one the transcript gives".into(),
            ));
        }
        let latest = commits.iter().map(|c| c.timestamp.as_str()).max();
        if latest != Some(timestamp) {
            self.findings.push(inconsistent(format!(
                "timestamp {timestamp} is not the latest committed one ({})",
                latest.unwrap_or("")
            )));
        }
        seed
    }

    /// The recorded total weight and scale against the committed weights and exponents.
    fn check_weights_and_scale(&mut self, commits: &[&wire::Commit]) {
        let weights: Vec<u64> = commits.iter().map(|c| c.weight).collect();
        let exps: Vec<i32> = commits.iter().map(|c| c.exponent).collect();
        let tw: u128 = weights.iter().map(|&w| w as u128).sum();
        let recorded_tw = self.rec.total_weight;
        if tw != recorded_tw {
            self.findings.push(inconsistent(format!(
                "total weight {recorded_tw} is not the sum of the committed weights ({tw})"
            )));
        }
        let scale_bits = self.rec.raw.scale_bits;
        if let Some(f) = self.spec.hier.scale_bits {
            // A hierarchical round's ring: the ring file fixes the scale; members above its
            // bounds would have been convicted, so the commits must be within them.
            if scale_bits != f {
                self.findings.push(inconsistent(format!(
                    "scale 2^{scale_bits} is not the ring file's fixed scale 2^{f}"
                )));
            }
            let b = self.spec.bounds;
            if let Some(c) = commits
                .iter()
                .find(|c| c.weight > b.max_weight || c.exponent > b.max_exponent)
            {
                self.findings.push(inconsistent(format!(
                    "a commit (weight {}, exponent {}) above the ring's bounds was summed",
                    c.weight, c.exponent
                )));
            }
            return;
        }
        match fixed::scale_bits(&exps, &weights) {
            Ok(f) if f == scale_bits => {}
            Ok(f) => self.findings.push(inconsistent(format!(
                "scale 2^{scale_bits} is not the one the commits give (2^{f})"
            ))),
            Err(e) => self
                .findings
                .push(inconsistent(format!("the commits give no scale: {e}"))),
        }
    }

    /// The signed result digest against this layout, scale, total weight and sum digest.
    fn check_result_digest(&mut self, layout: &Layout) {
        let rec = &self.rec;
        let digest = proto::result_digest_of(
            &layout.digest(),
            rec.raw.scale_bits,
            rec.total_weight,
            &rec.sum_digest,
        );
        if digest != rec.result_digest {
            self.findings.push(Finding::Result {
                reason: "the signed result digest does not cover this layout, scale, total weight \
                         and sum digest"
                    .into(),
            });
        }
    }

    /// Step 3 for one input file: the contributor that committed to it (or a finding when
    /// none did), its tensors, exponent and published sketch against that input; an input
    /// that passes the layout check is added to the exact sum.
    fn check_input(
        &mut self,
        path: &Path,
        contributors: &[Contributor],
        st: &mut InputsCheck,
    ) -> Result<(), AuditError> {
        let (input, _, signer) = if sumfile::is_sum_file(path) {
            // A leader ring's member input: a group's sum file (unsigned; its digest is the
            // commitment).
            let (input, layout) = sumfile::SumFile::read(path)?.into_input(path)?;
            (input, layout, None)
        } else {
            io::read_input(path, 1)?
        };
        let digest = input.input_digest;
        let Some(j) = contributors
            .iter()
            .position(|c| c.commit.as_ref().is_some_and(|c| c.input == digest))
        else {
            let finding = self.unmatched_input(path, digest, signer.as_ref(), contributors, st);
            self.findings.push(finding);
            return Ok(());
        };
        if st.audits[j].input.is_some() {
            return Ok(()); // the same member's input given twice
        }
        st.audits[j].input = Some(path.to_path_buf());
        let c = &contributors[j];
        let commit = c.commit.as_ref().expect("matched a commit");
        let convict = |reason: String| Finding::Convicted {
            index: c.index,
            id: c.id.clone(),
            path: path.to_path_buf(),
            reason,
        };
        if input.values.len() != st.len || input.layout != commit.layout {
            self.findings.push(convict(
                "its committed input does not have the result's tensors".into(),
            ));
            st.audits[j].sketch_matches_input = Some(false);
            return Ok(());
        }
        match input.values.exponent() {
            Ok(e) if e == commit.exponent => {}
            Ok(e) => self.findings.push(convict(format!(
                "it committed to exponent {} but its input needs {e}",
                commit.exponent
            ))),
            Err(e) => self
                .findings
                .push(convict(format!("its input is not finite: {e}"))),
        }
        // In a quantized ring the contribution is that of the quantized input, recomputed
        // from the input, the ring's bits and the recorded scale.
        let contribution = input.values.contribution_of(
            commit.weight,
            self.rec.raw.scale_bits,
            self.spec.quantize,
        );
        let matches = match &c.sketches {
            Some(published) => match first_sketch_mismatch(st, &contribution, published) {
                Some(reason) => {
                    self.findings.push(convict(reason));
                    false
                }
                None => true,
            },
            None => false,
        };
        st.audits[j].sketch_matches_input = Some(matches);
        fixed::add_into(&mut st.sum, &contribution);
        st.summed += 1;
        Ok(())
    }

    /// The finding for an input that is no contributor's committed input: a member's own
    /// signed delta that is not what it committed to convicts it; anything else is unknown.
    fn unmatched_input(
        &self,
        path: &Path,
        digest: [u8; 32],
        signer: Option<&PublicIdentity>,
        contributors: &[Contributor],
        st: &InputsCheck,
    ) -> Finding {
        let by = signer.and_then(|s| {
            contributors
                .iter()
                .find(|c| self.spec.members[c.index].public.ed25519 == s.ed25519)
        });
        match by {
            Some(c) => Finding::Convicted {
                index: c.index,
                id: c.id.clone(),
                path: path.to_path_buf(),
                reason: format!(
                    "the file is signed by this member but is not the input it committed to \
                     (file body digest {}, committed {})",
                    hex::encode(digest),
                    st.audits
                        .iter()
                        .find(|a| a.index == c.index)
                        .map_or("?", |a| a.input_digest.as_str())
                ),
            },
            None => Finding::UnknownInput {
                path: path.to_path_buf(),
                digest: hex::encode(digest),
            },
        }
    }

    /// Step 4: with every contributor's input summed, the sum's digest against the signed one
    /// and the result's tensor bytes against the exact weighted mean.
    fn check_exact_mean(
        &mut self,
        src: &FileSource,
        d: &delta::Delta,
        layout: &Layout,
        sum: &[i64],
    ) -> Result<(), AuditError> {
        if wire::payload_digest(sum) != self.rec.sum_digest {
            self.findings.push(Finding::Result {
                reason: "the exact sum of the committed inputs is not the sum the members signed"
                    .into(),
            });
        }
        let want = io::mean_bytes(layout, sum, self.rec.total_weight, self.rec.raw.scale_bits);
        for (t, w) in d.tensors.iter().zip(&want) {
            let mut got = Vec::with_capacity(w.len());
            delta::read_tensor(src, d, t, |raw| got.extend_from_slice(raw)).map_err(|source| {
                AuditError::Result {
                    path: self.path.to_path_buf(),
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
                self.findings.push(Finding::Result {
                    reason: format!(
                        "tensor {:?} differs from the exact weighted mean of the inputs \
                         (first at element {k})",
                        t.name
                    ),
                });
            }
        }
        Ok(())
    }

    /// A group ring's sum file: its scale and weight total are the recorded ones, and its
    /// integers are the sum the members signed (`D(S)` against the signed sum digest) —
    /// checked without any input.
    fn check_sum_file(&mut self, s: &sumfile::SumFile) {
        if s.scale != self.rec.raw.scale_bits || s.total_weight != self.rec.total_weight {
            self.findings.push(Finding::Result {
                reason: format!(
                    "the sum file's scale 2^{} and weight total {} are not the recorded 2^{} \
                     and {}",
                    s.scale, s.total_weight, self.rec.raw.scale_bits, self.rec.total_weight
                ),
            });
        }
        if wire::payload_digest(&s.sum) != self.rec.sum_digest {
            self.findings.push(Finding::Result {
                reason: "the sum file's integers are not the sum the members signed".into(),
            });
        }
    }

    /// Step 4 for a sum file: its integers against the exact sum of the inputs.
    fn check_exact_sum(&mut self, s: &sumfile::SumFile, sum: &[i64]) {
        if s.sum != sum {
            self.findings.push(Finding::Result {
                reason: "the sum file's integers are not the exact sum of the committed inputs"
                    .into(),
            });
        }
    }

    fn report(
        self,
        kind: ResultKind,
        keys: KeySource,
        members: Vec<MemberAudit>,
        receipts_verified: usize,
        exact_mean_checked: bool,
    ) -> AuditReport {
        let rec = self.rec.raw;
        AuditReport {
            result: self.path.to_path_buf(),
            kind,
            keys,
            ring: rec.ring,
            round: rec.round,
            hybrid: self.spec.is_hybrid(),
            quantize: self.spec.quantize.map(Bits::get),
            view: rec.view,
            members,
            excluded: rec.excluded,
            scale_bits: rec.scale_bits,
            total_weight: rec.total_weight,
            result_digest: rec.result_digest,
            seed: rec.seed,
            receipts_verified,
            exact_mean_checked,
            findings: self.findings,
        }
    }
}

/// The first segment whose published sketch is not the sketch of `contribution` (the reason
/// that convicts its member), or `None` when all match.
fn first_sketch_mismatch(
    st: &InputsCheck,
    contribution: &[i64],
    published: &[u64],
) -> Option<String> {
    use rayon::prelude::*;
    let computed: Vec<u64> = st
        .segments
        .par_iter()
        .enumerate()
        .map(|(g, r)| sketch::sketch(&contribution[r.clone()], st.points[g]))
        .collect();
    computed
        .iter()
        .zip(published)
        .enumerate()
        .find(|(_, (mine, theirs))| mine != theirs)
        .map(|(g, (mine, theirs))| {
            format!(
                "its published sketch of segment {g} ({theirs}) is not the sketch of its \
                 committed input ({mine})"
            )
        })
}

#[cfg(test)]
mod tests;
