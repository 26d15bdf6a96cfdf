//! Reading a member's input delta and writing the ring's result as a DELTA file.

use std::path::{Path, PathBuf};

use sha3::{Digest, Sha3_256};

use super::config::RingSpec;
use super::fixed;
use super::proto::{Input, Outcome};
use super::wire;
use crate::core::atomic::{AtomicError, AtomicFile};
use crate::core::delta::{
    self, Compression, DeltaError, Dtype, FileSource, Metadata, PackError, PackInput, PackOptions,
    PackSummary, TensorSource, VerifyOptions,
};
use crate::core::error::{Classify, ErrorClass};
use crate::core::keys::{PublicIdentity, b64};

/// Format of the `extra.ring` record. Version 2 added the transcript an audit replays (the
/// ring's member list, every signed commit and sketch, the nonces, `D(S)`); `gym ring audit`
/// refuses version 1 records.
pub const RESULT_FORMAT: &str = "gym-ring-result/2";

#[derive(Debug, thiserror::Error)]
pub enum RingIoError {
    #[error("opening {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("input {path}: {source}")]
    Delta { path: PathBuf, source: DeltaError },
    #[error(
        "input {path}: tensor {name:?} has dtype {dtype}; the ring averages f16, bf16, f32 and f64 only"
    )]
    Dtype {
        path: PathBuf,
        name: String,
        dtype: Dtype,
    },
    #[error(transparent)]
    Atomic(#[from] AtomicError),
    #[error("writing the result: {0}")]
    Pack(#[from] PackError),
}

impl Classify for RingIoError {
    fn class(&self) -> ErrorClass {
        match self {
            RingIoError::Open { .. } => ErrorClass::Io,
            RingIoError::Delta { source, .. } => source.class(),
            RingIoError::Dtype { .. } => ErrorClass::Unsupported,
            RingIoError::Atomic(e) => e.class(),
            RingIoError::Pack(e) => e.class(),
        }
    }
}

/// The tensors of the input, in file order.
#[derive(Debug, Clone)]
pub struct Layout {
    pub tensors: Vec<(String, Dtype, Vec<u64>)>,
    pub adapter_config: Option<serde_json::Map<String, serde_json::Value>>,
    pub base_hash: Option<String>,
}

impl Layout {
    pub fn digest(&self) -> [u8; 32] {
        let mut h = Sha3_256::new();
        h.update(b"gym-ring-v1/layout\0");
        h.update((self.tensors.len() as u32).to_le_bytes());
        for (name, dtype, shape) in &self.tensors {
            h.update((name.len() as u32).to_le_bytes());
            h.update(name.as_bytes());
            h.update([dtype.code(), shape.len() as u8]);
            for d in shape {
                h.update(d.to_le_bytes());
            }
        }
        h.finalize().into()
    }
}

fn to_f64(dtype: Dtype, raw: &[u8], out: &mut Vec<f64>) {
    // The common dtypes as straight conversions over exact-size iterators (they vectorize);
    // the same values as `element_f64`.
    match dtype {
        Dtype::F32 => out.extend(
            raw.chunks_exact(4)
                .map(|e| f32::from_le_bytes(e.try_into().expect("4 bytes")) as f64),
        ),
        Dtype::F64 => out.extend(
            raw.chunks_exact(8)
                .map(|e| f64::from_le_bytes(e.try_into().expect("8 bytes"))),
        ),
        _ => {
            let w = (dtype.bits() / 8) as usize;
            out.extend(
                raw.chunks_exact(w)
                    .map(|e| dtype.element_f64(e).unwrap_or(0.0)),
            );
        }
    }
}

pub(crate) fn from_f64(dtype: Dtype, v: f64, out: &mut Vec<u8>) {
    match dtype {
        Dtype::F16 => out.extend_from_slice(&half::f16::from_f64(v).to_le_bytes()),
        Dtype::Bf16 => out.extend_from_slice(&half::bf16::from_f64(v).to_le_bytes()),
        Dtype::F64 => out.extend_from_slice(&v.to_le_bytes()),
        _ => out.extend_from_slice(&(v as f32).to_le_bytes()),
    }
}

/// Verifies the delta at `path` (structure, checksum, signature when present) and flattens its
/// tensors. The input commitment is the delta's body digest.
pub fn load_input(path: &Path, weight: u64) -> Result<(Input, Layout), RingIoError> {
    let (input, layout, _) = read_input(path, weight)?;
    Ok((input, layout))
}

/// [`load_input`], and the key that signed the delta, if any.
pub fn read_input(
    path: &Path,
    weight: u64,
) -> Result<(Input, Layout, Option<PublicIdentity>), RingIoError> {
    let src = FileSource::open(path).map_err(|source| RingIoError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    // One pass: the chunks are hashed and converted as they are read (the values are those
    // of the bytes that verified). Tensors of a dtype the ring does not average are skipped
    // here and refused below.
    let mut values = Vec::new();
    let averaged = |d: Dtype| matches!(d, Dtype::F16 | Dtype::Bf16 | Dtype::F32 | Dtype::F64);
    let mut sink = |d: &delta::Delta, ch: &delta::ChunkRef, raw: &[u8]| {
        let dtype = d.tensors[ch.tensor as usize].dtype;
        if averaged(dtype) {
            to_f64(dtype, raw, &mut values);
        }
        Ok(())
    };
    let report =
        delta::verify_streaming(&src, &VerifyOptions::default(), &mut sink).map_err(|source| {
            RingIoError::Delta {
                path: path.to_path_buf(),
                source,
            }
        })?;
    let d = &report.delta;
    let mut tensors = Vec::new();
    for t in &d.tensors {
        if !averaged(t.dtype) {
            return Err(RingIoError::Dtype {
                path: path.to_path_buf(),
                name: t.name.clone(),
                dtype: t.dtype,
            });
        }
        tensors.push((t.name.clone(), t.dtype, t.shape.clone()));
    }
    let layout = Layout {
        tensors,
        adapter_config: d.metadata.adapter_config.clone(),
        base_hash: d.metadata.base_hash.clone(),
    };
    Ok((
        Input {
            values,
            weight,
            layout: layout.digest(),
            input_digest: report.digest,
            timestamp: d.metadata.timestamp.clone(),
        },
        layout,
        report.signer,
    ))
}

/// The mean `S / (Σw · 2^F)` as the bytes of each tensor of `layout`, rounded once to each
/// tensor's dtype: what every member writes, and what an audit recomputes.
pub fn mean_bytes(layout: &Layout, sum: &[i64], total_weight: u128, scale: u32) -> Vec<Vec<u8>> {
    let mut bufs = Vec::with_capacity(layout.tensors.len());
    let mut k = 0usize;
    for (_, dtype, shape) in &layout.tensors {
        let n = shape.iter().product::<u64>() as usize;
        let w = (dtype.bits() / 8) as usize;
        let mut b = Vec::with_capacity(n * w);
        // Elements past the end of `sum` (none for a sum of this layout) are 0.
        let have = sum.len().saturating_sub(k).min(n);
        let part = &sum[k.min(sum.len())..][..have];
        let m = |s: i64| fixed::mean(s, total_weight, scale);
        match dtype {
            Dtype::F32 => {
                b.resize(have * 4, 0);
                for (o, &s) in b.chunks_exact_mut(4).zip(part) {
                    o.copy_from_slice(&(m(s) as f32).to_le_bytes());
                }
            }
            Dtype::F64 => {
                b.resize(have * 8, 0);
                for (o, &s) in b.chunks_exact_mut(8).zip(part) {
                    o.copy_from_slice(&m(s).to_le_bytes());
                }
            }
            _ => {
                for &s in part {
                    from_f64(*dtype, m(s), &mut b);
                }
            }
        }
        for _ in have..n {
            from_f64(*dtype, m(0), &mut b);
        }
        k += n;
        bufs.push(b);
    }
    bufs
}

/// The `extra.ring` record of the result (format [`RESULT_FORMAT`]). Excluded members are
/// listed without the reason, which is what this member observed (one survivor may see a
/// connection drop where another sees a timeout) and would make the survivors' files differ;
/// [`exclusions`] gives the reasons for reports. Besides the outcome it
/// keeps what `gym ring audit` replays: the ring's member list (so that `R` and the keys can be
/// recomputed without the ring file), each member's signed commit, revealed nonce and signed
/// sketch (wire encoding, base64), and `D(S)`. In a hybrid ring each receipt's ML-DSA-87
/// signature is kept too (`receipt_ml_dsa_87`); a ring without ML-DSA-87 keys gives the same
/// record as before hybrid signatures existed.
pub fn record(ring: &RingSpec, o: &Outcome) -> serde_json::Value {
    let members: Vec<serde_json::Value> = o
        .members
        .iter()
        .enumerate()
        .map(|(i, &m)| {
            let mut v = serde_json::json!({
                "index": m,
                "id": ring.members[m].id,
                "weight": o.weights[i],
                "input_digest": hex::encode(o.input_digests[i]),
                "receipt": b64(&o.receipts[i].sig),
                "commit": b64(&wire::encode(&o.commits[i])),
                "nonce": hex::encode(o.nonces[i]),
                "sketch": b64(&wire::encode(&o.sketches[i])),
            });
            // Hybrid rings: the receipt's ML-DSA-87 signature (the commit and sketch carry
            // theirs in their wire encoding).
            if let Some(pq) = &o.receipts[i].pq_sig {
                v["receipt_ml_dsa_87"] = b64(pq).into();
            }
            v
        })
        .collect();
    let ring_members: Vec<serde_json::Value> = ring
        .members
        .iter()
        .map(|m| {
            let mut v = serde_json::json!({
                "id": m.id,
                "address": m.address,
                "ed25519": m.public.ed25519_base64(),
            });
            if let Some(pq) = m.public.ml_dsa_base64() {
                v["ml_dsa_87"] = pq.into();
            }
            v
        })
        .collect();
    let excluded: Vec<serde_json::Value> = o
        .excluded
        .iter()
        .map(|e| {
            serde_json::json!({
                "index": e.member,
                "id": ring.members[e.member].id,
                "view": e.view,
            })
        })
        .collect();
    serde_json::json!({
        "format": RESULT_FORMAT,
        "ring": hex::encode(ring.digest()),
        "round": ring.round,
        "chunk_elements": ring.chunk_elements,
        "ring_members": ring_members,
        "view": o.view,
        "members": members,
        "excluded": excluded,
        "scale_bits": o.scale,
        "total_weight": o.total_weight.to_string(),
        "result_digest": hex::encode(o.result_digest),
        "sum_digest": hex::encode(o.sum_digest),
        "seed": hex::encode(o.seed),
    })
}

/// Writes the weighted mean as an unsigned DELTA file whose bytes depend only on the outcome,
/// so every member writes the same file.
pub fn write_output(
    path: &Path,
    force: bool,
    ring: &RingSpec,
    layout: &Layout,
    o: &Outcome,
) -> Result<PackSummary, RingIoError> {
    let bufs = mean_bytes(layout, &o.sum, o.total_weight, o.scale);
    let inputs: Vec<PackInput> = layout
        .tensors
        .iter()
        .zip(&bufs)
        .map(|((name, dtype, shape), b)| PackInput {
            name: name.clone(),
            dtype: *dtype,
            shape: shape.clone(),
            data: TensorSource::Bytes(b),
        })
        .collect();
    let mut meta = Metadata::new("gym-ring");
    meta.timestamp = o.timestamps.iter().max().cloned().unwrap_or(meta.timestamp);
    meta.seq = ring.round;
    meta.base_hash = layout.base_hash.clone();
    meta.adapter_config = layout.adapter_config.clone();
    let mut extra = serde_json::Map::new();
    extra.insert("ring".into(), record(ring, o));
    meta.extra = Some(extra);
    let opts = PackOptions {
        compression: Compression::None,
        chunk_size: delta::DEFAULT_CHUNK_SIZE,
        metadata: meta,
        identity: None,
    };
    let mut file = AtomicFile::create(path, force, None)?;
    let summary = delta::pack(&inputs, &opts, file.file(), &|_| {})?;
    file.commit()?;
    Ok(summary)
}

/// The members excluded during the round, with the reason this member observed.
pub fn exclusions(ring: &RingSpec, o: &Outcome) -> serde_json::Value {
    o.excluded
        .iter()
        .map(|e| {
            serde_json::json!({
                "index": e.member,
                "id": ring.members[e.member].id,
                "view": e.view,
                "reason": e.reason,
            })
        })
        .collect()
}
