//! Sum files (format `gym-ring-sum/1`, docs/ring-protocol.md "Sum files"): what a group ring
//! of a hierarchical round writes instead of the mean — the group's exact integer sum at the
//! round's fixed scale, its weight total and the tensor layout — and what a leader brings to
//! the leader ring, where the integers enter the exact sum as they are.
//!
//! ```text
//! magic "GYMSUM\0\x01" (8 bytes) ‖ u32 LE header length H ‖ header (H bytes of JSON)
//! ‖ n × i64 LE (the sum) ‖ SHA3-256("gym-ring-sum-v1\0" ‖ every byte before it)
//! ```

use std::path::{Path, PathBuf};

use sha3::{Digest, Sha3_256};

use super::config::RingSpec;
use super::fixed::{self, ExactSum, Values};
use super::io::{self, Layout};
use super::proto::{Input, Outcome};
use crate::core::atomic::{self, AtomicError};
use crate::core::delta::Dtype;
use crate::core::error::{Classify, ErrorClass};

pub const MAGIC: &[u8; 8] = b"GYMSUM\0\x01";
pub const FORMAT: &str = "gym-ring-sum/1";
/// Largest header accepted (the group ring's record, with every signed commit and sketch).
pub const MAX_HEADER: usize = 16 << 20;
const DIGEST_DOMAIN: &[u8] = b"gym-ring-sum-v1\0";

#[derive(Debug, thiserror::Error)]
pub enum SumFileError {
    #[error("reading sum file {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a sum file (no `GYMSUM` magic)")]
    NotSumFile { path: PathBuf },
    #[error("sum file {path} is truncated: {need} bytes needed, {have} present")]
    Truncated { path: PathBuf, need: u64, have: u64 },
    #[error("sum file {path}: bad header: {reason}")]
    Header { path: PathBuf, reason: String },
    #[error("sum file {path} has {extra} bytes after its digest")]
    Trailing { path: PathBuf, extra: u64 },
    #[error("sum file {path}: its digest does not match its content")]
    Checksum { path: PathBuf },
    #[error("sum file {path}: element {index} is {value}, outside the exact-sum bound (±2^59)")]
    OutOfRange {
        path: PathBuf,
        index: usize,
        value: i64,
    },
    #[error(
        "sum file {path}: weight total {total_weight} is above {}, the most a leader ring \
         member may commit",
        fixed::MAX_WEIGHT
    )]
    Weight { path: PathBuf, total_weight: u128 },
    #[error(transparent)]
    Atomic(#[from] AtomicError),
}

impl Classify for SumFileError {
    fn class(&self) -> ErrorClass {
        match self {
            SumFileError::Open { .. } => ErrorClass::Io,
            SumFileError::Checksum { .. } => ErrorClass::Checksum,
            SumFileError::Weight { .. } => ErrorClass::Unsupported,
            SumFileError::Atomic(e) => e.class(),
            _ => ErrorClass::Malformed,
        }
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    scale_bits: u32,
    total_weight: String,
    elements: u64,
    tensors: Vec<TensorHeader>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    adapter_config: Option<serde_json::Map<String, serde_json::Value>>,
    timestamp: String,
    round: u64,
    /// The group ring's record (`io::record`): members, signed commits, sketches, receipts.
    ring: serde_json::Value,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TensorHeader {
    name: String,
    dtype: String,
    shape: Vec<u64>,
}

/// A parsed, checked sum file.
#[derive(Debug, Clone)]
pub struct SumFile {
    pub layout: Layout,
    pub scale: u32,
    pub total_weight: u128,
    /// The latest timestamp of the group's inputs (the final result carries the latest).
    pub timestamp: String,
    pub round: u64,
    /// The group ring's record.
    pub record: serde_json::Value,
    pub sum: Vec<i64>,
    /// The file's trailing digest: a leader's input commitment.
    pub digest: [u8; 32],
}

fn digest_of(bytes: &[u8]) -> [u8; 32] {
    let mut h = Sha3_256::new();
    h.update(DIGEST_DOMAIN);
    h.update(bytes);
    h.finalize().into()
}

impl SumFile {
    /// The bytes of this sum file (its `digest` is recomputed, not read).
    pub fn encode(&self) -> Vec<u8> {
        let header = Header {
            format: FORMAT.into(),
            scale_bits: self.scale,
            total_weight: self.total_weight.to_string(),
            elements: self.sum.len() as u64,
            tensors: self
                .layout
                .tensors
                .iter()
                .map(|(name, dtype, shape)| TensorHeader {
                    name: name.clone(),
                    dtype: dtype.name().into(),
                    shape: shape.clone(),
                })
                .collect(),
            base_hash: self.layout.base_hash.clone(),
            adapter_config: self.layout.adapter_config.clone(),
            timestamp: self.timestamp.clone(),
            round: self.round,
            ring: self.record.clone(),
        };
        let json = serde_json::to_vec(&header).expect("a header serializes");
        let mut b = Vec::with_capacity(12 + json.len() + self.sum.len() * 8 + 32);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&(json.len() as u32).to_le_bytes());
        b.extend_from_slice(&json);
        for v in &self.sum {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let d = digest_of(&b);
        b.extend_from_slice(&d);
        b
    }

    /// Parses and checks `bytes` (`path` names the file in errors).
    pub fn decode(bytes: &[u8], path: &Path) -> Result<Self, SumFileError> {
        let p = || path.to_path_buf();
        let truncated = |need: usize| SumFileError::Truncated {
            path: p(),
            need: need as u64,
            have: bytes.len() as u64,
        };
        let (magic, rest) = bytes.split_at_checked(8).ok_or_else(|| truncated(8))?;
        if magic != MAGIC {
            return Err(SumFileError::NotSumFile { path: p() });
        }
        let (len, rest) = rest.split_at_checked(4).ok_or_else(|| truncated(12))?;
        let h = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        let bad = |reason: String| SumFileError::Header { path: p(), reason };
        if h > MAX_HEADER {
            return Err(bad(format!("header of {h} bytes exceeds {MAX_HEADER}")));
        }
        let (json, body) = rest.split_at_checked(h).ok_or_else(|| truncated(12 + h))?;
        let header: Header = serde_json::from_slice(json).map_err(|e| bad(e.to_string()))?;
        let (layout, n) = check_header(&header).map_err(bad)?;
        let need = n
            .checked_mul(8)
            .and_then(|b| b.checked_add(12 + h + 32))
            .ok_or_else(|| bad(format!("{n} elements overflow")))?;
        if bytes.len() < need {
            return Err(truncated(need));
        }
        if bytes.len() > need {
            return Err(SumFileError::Trailing {
                path: p(),
                extra: (bytes.len() - need) as u64,
            });
        }
        let (ints, trailer) = body.split_at(n * 8);
        let digest = digest_of(&bytes[..need - 32]);
        if trailer != digest {
            return Err(SumFileError::Checksum { path: p() });
        }
        let sum: Vec<i64> = ints
            .chunks_exact(8)
            .map(|e| i64::from_le_bytes(e.try_into().expect("8 bytes")))
            .collect();
        if let Some(index) = fixed::out_of_range(&sum) {
            return Err(SumFileError::OutOfRange {
                path: p(),
                index,
                value: sum[index],
            });
        }
        let total_weight = header.total_weight.parse::<u128>().unwrap_or(0);
        Ok(SumFile {
            layout,
            scale: header.scale_bits,
            total_weight,
            timestamp: header.timestamp,
            round: header.round,
            record: header.ring,
            sum,
            digest,
        })
    }

    pub fn read(path: &Path) -> Result<Self, SumFileError> {
        let bytes = std::fs::read(path).map_err(|source| SumFileError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Self::decode(&bytes, path)
    }

    /// Writes this sum file atomically (a temporary file renamed; nothing replaced without
    /// `force`).
    pub fn write(&self, path: &Path, force: bool) -> Result<[u8; 32], SumFileError> {
        let bytes = self.encode();
        atomic::write_file(path, &bytes, force, None)?;
        Ok(bytes[bytes.len() - 32..].try_into().expect("32 bytes"))
    }

    /// What a group ring writes: its exact sum before the division.
    pub fn of_outcome(ring: &RingSpec, layout: &Layout, o: &Outcome) -> Self {
        SumFile {
            layout: layout.clone(),
            scale: o.scale,
            total_weight: o.total_weight,
            timestamp: o.timestamps.iter().max().cloned().unwrap_or_default(),
            round: ring.round,
            record: io::record(ring, o),
            sum: o.sum.clone(),
            digest: [0; 32],
        }
    }

    /// This sum as a leader's ring input: weight = the group's weight total (at most
    /// [`fixed::MAX_WEIGHT`]), commitment = the file's digest.
    pub fn into_input(self, path: &Path) -> Result<(Input, Layout), SumFileError> {
        let weight = u64::try_from(self.total_weight)
            .ok()
            .filter(|&w| fixed::check_weight(w).is_ok())
            .ok_or(SumFileError::Weight {
                path: path.to_path_buf(),
                total_weight: self.total_weight,
            })?;
        let input = Input {
            values: Values::Sum(ExactSum::new(self.sum, self.scale, weight)),
            weight,
            layout: self.layout.digest(),
            input_digest: self.digest,
            timestamp: self.timestamp,
        };
        Ok((input, self.layout))
    }
}

/// The layout and element count a header describes, or why it is not a valid one.
fn check_header(h: &Header) -> Result<(Layout, usize), String> {
    if h.format != FORMAT {
        return Err(format!("format is {:?}, expected {FORMAT:?}", h.format));
    }
    if h.scale_bits > fixed::MAX_SCALE {
        return Err(format!(
            "scale_bits {} is above {}",
            h.scale_bits,
            fixed::MAX_SCALE
        ));
    }
    match h.total_weight.parse::<u128>() {
        Ok(w) if w >= 1 => {}
        _ => {
            return Err(format!(
                "total_weight {:?} is not a positive integer",
                h.total_weight
            ));
        }
    }
    let mut tensors = Vec::new();
    let mut n: u64 = 0;
    for (i, t) in h.tensors.iter().enumerate() {
        let dtype = Dtype::from_name(&t.dtype)
            .filter(|d| matches!(d, Dtype::F16 | Dtype::Bf16 | Dtype::F32 | Dtype::F64))
            .ok_or_else(|| {
                format!(
                    "tensor {i} ({:?}): dtype {:?} is not F16, BF16, F32 or F64",
                    t.name, t.dtype
                )
            })?;
        let elems = t
            .shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .and_then(|e| n.checked_add(e))
            .ok_or_else(|| format!("tensor {i} ({:?}): shape overflows", t.name))?;
        n = elems;
        tensors.push((t.name.clone(), dtype, t.shape.clone()));
    }
    if n != h.elements {
        return Err(format!(
            "the tensors hold {n} elements, the header says {}",
            h.elements
        ));
    }
    let n = usize::try_from(n).map_err(|_| format!("{n} elements do not fit in memory"))?;
    let layout = Layout {
        tensors,
        adapter_config: h.adapter_config.clone(),
        base_hash: h.base_hash.clone(),
    };
    Ok((layout, n))
}

/// Whether the file at `path` starts with the sum-file magic (a leader's input).
pub fn is_sum_file(path: &Path) -> bool {
    use std::io::Read as _;
    let mut m = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut m))
        .is_ok()
        && &m == MAGIC
}

#[cfg(test)]
#[path = "sumfile_tests.rs"]
mod tests;
