//! Reading a member's input delta and writing the ring's result as a DELTA file.

use std::path::{Path, PathBuf};

use sha3::{Digest, Sha3_256};

use super::config::RingSpec;
use super::fixed::{self, Values};
use super::proto::{Input, Outcome};
use super::wire;
use crate::core::atomic::{AtomicError, AtomicFile};
use crate::core::delta::{
    self, Compression, DeltaError, Dtype, FileSource, Metadata, PackError, PackInput, PackOptions,
    PackSummary, Source, TensorSource, VerifyOptions,
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

/// [`to_f64`] for inputs without `f64` tensors: `f16`, `bf16` and `f32` widen to `f32` exactly.
fn to_f32(dtype: Dtype, raw: &[u8], out: &mut Vec<f32>) {
    match dtype {
        Dtype::F32 => out.extend(
            raw.chunks_exact(4)
                .map(|e| f32::from_le_bytes(e.try_into().expect("4 bytes"))),
        ),
        Dtype::Bf16 => out.extend(
            raw.chunks_exact(2)
                .map(|e| half::bf16::from_le_bytes([e[0], e[1]]).to_f32()),
        ),
        Dtype::F16 => out.extend(
            raw.chunks_exact(2)
                .map(|e| half::f16::from_le_bytes([e[0], e[1]]).to_f32()),
        ),
        _ => {
            let w = (dtype.bits() / 8) as usize;
            out.extend(
                raw.chunks_exact(w)
                    .map(|e| dtype.element_f64(e).unwrap_or(0.0) as f32),
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
    let averaged = |d: Dtype| matches!(d, Dtype::F16 | Dtype::Bf16 | Dtype::F32 | Dtype::F64);
    let mut values: Option<Values> = None;
    let mut sink = |d: &delta::Delta, ch: &delta::ChunkRef, raw: &[u8]| {
        let dtype = d.tensors[ch.tensor as usize].dtype;
        if averaged(dtype) {
            // Sized once from the header: growing by doubling would copy the vector and touch
            // twice its pages.
            let v = values.get_or_insert_with(|| {
                let total: usize = d
                    .tensors
                    .iter()
                    .filter(|t| averaged(t.dtype))
                    .map(|t| t.shape.iter().product::<u64>() as usize)
                    .sum();
                if d.tensors.iter().any(|t| t.dtype == Dtype::F64) {
                    let mut v = Vec::new();
                    let _ = v.try_reserve_exact(total);
                    Values::F64(v)
                } else {
                    let mut v = Vec::new();
                    let _ = v.try_reserve_exact(total);
                    Values::F32(v)
                }
            });
            match v {
                Values::F32(out) => to_f32(dtype, raw, out),
                Values::F64(out) => to_f64(dtype, raw, out),
                Values::Sum(_) => unreachable!("made as F32 or F64 above"),
            }
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
            values: values.unwrap_or(Values::F32(Vec::new())),
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
        let mean = fixed::Mean::new(total_weight, scale);
        let m = |s: i64| mean.of(s);
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

/// The result's tensors (the concatenation of [`mean_bytes`]) made on demand from the sum, as a
/// [`Source`] for `delta::pack`: each chunk is rounded to its dtype as it is packed, so the
/// result is never held twice in memory.
struct MeanSource<'a> {
    sum: &'a [i64],
    /// Per non-empty tensor: byte offset in the concatenation, first element, elements, dtype.
    tensors: Vec<(u64, usize, usize, Dtype)>,
    len: u64,
    total_weight: u128,
    scale: u32,
}

impl<'a> MeanSource<'a> {
    fn new(layout: &Layout, sum: &'a [i64], total_weight: u128, scale: u32) -> Self {
        let (mut tensors, mut at, mut k) = (Vec::new(), 0u64, 0usize);
        for (_, dtype, shape) in &layout.tensors {
            let n = shape.iter().product::<u64>() as usize;
            if n > 0 {
                tensors.push((at, k, n, *dtype));
            }
            at += n as u64 * (dtype.bits() / 8);
            k += n;
        }
        MeanSource {
            sum,
            tensors,
            len: at,
            total_weight,
            scale,
        }
    }

    /// Byte offset of each tensor of the layout in the concatenation.
    fn offsets(layout: &Layout) -> Vec<u64> {
        let mut at = 0u64;
        layout
            .tensors
            .iter()
            .map(|(_, dtype, shape)| {
                let o = at;
                at += shape.iter().product::<u64>() * (dtype.bits() / 8);
                o
            })
            .collect()
    }
}

impl Source for MeanSource<'_> {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|e| e > self.len)
        {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let mean = fixed::Mean::new(self.total_weight, self.scale);
        let m = |k: usize| mean.of(self.sum.get(k).copied().unwrap_or(0));
        let (mut off, mut filled) = (offset, 0usize);
        while filled < buf.len() {
            let i = self.tensors.partition_point(|t| t.0 <= off) - 1;
            let (start, first, n, dtype) = self.tensors[i];
            let w = (dtype.bits() / 8) as usize;
            let e = ((off - start) / w as u64) as usize;
            let skip = ((off - start) % w as u64) as usize;
            // Whole elements of this tensor that fit, after a partial first one.
            let lead = if skip > 0 { 1 } else { 0 };
            let room = (buf.len() - filled).saturating_sub(if skip > 0 { w - skip } else { 0 });
            let whole = (room / w).min(n - e - lead);
            let one = |k: usize, dst: &mut [u8], skip: usize| {
                let mut b = Vec::with_capacity(8);
                from_f64(dtype, m(first + k), &mut b);
                let take = (w - skip).min(dst.len());
                dst[..take].copy_from_slice(&b[skip..skip + take]);
                take
            };
            let mut at = filled;
            if skip > 0 {
                at += one(e, &mut buf[at..], skip);
            }
            let k0 = first + e + lead;
            let dst = &mut buf[at..at + whole * w];
            match dtype {
                Dtype::F32 => {
                    for (o, k) in dst.chunks_exact_mut(4).zip(k0..) {
                        o.copy_from_slice(&(m(k) as f32).to_le_bytes());
                    }
                }
                Dtype::F64 => {
                    for (o, k) in dst.chunks_exact_mut(8).zip(k0..) {
                        o.copy_from_slice(&m(k).to_le_bytes());
                    }
                }
                _ => {
                    for (j, o) in dst.chunks_exact_mut(w).enumerate() {
                        one(e + lead + j, o, 0);
                    }
                }
            }
            at += whole * w;
            // A partial last element (the read ends inside it).
            if at < buf.len() && e + lead + whole < n && (at - filled) < buf.len() - filled {
                at += one(e + lead + whole, &mut buf[at..], 0);
            }
            off += (at - filled) as u64;
            filled = at;
        }
        Ok(())
    }
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
    let mut v = serde_json::json!({
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
    });
    add_ring_settings(ring, &mut v);
    v
}

/// The ring file's settings an audit needs to recompute `R` from the record alone, recorded
/// only when they are not the defaults (so a result of a plain ring keeps its record): the
/// input bounds, quantization, and a hierarchical round's fixed scale and output.
fn add_ring_settings(ring: &RingSpec, v: &mut serde_json::Value) {
    use super::config::{InputBounds, Output};
    let defaults = InputBounds::default();
    if ring.bounds.max_weight != defaults.max_weight {
        v["max_weight"] = ring.bounds.max_weight.into();
    }
    if ring.bounds.max_exponent != defaults.max_exponent {
        v["max_exponent"] = ring.bounds.max_exponent.into();
    }
    if let Some(f) = ring.hier.scale_bits {
        v["fixed_scale_bits"] = f.into();
    }
    if ring.hier.output == Output::Sum {
        v["output"] = "sum".into();
    }
    if let Some(b) = ring.quantize {
        v["quantize"] = b.get().into();
    }
}

/// The metadata of a round's output: producer `gym-ring`, the latest input timestamp, the
/// round as its sequence number, the inputs' base and adapter config, and the ring record
/// (`extra.ring`). It depends only on the outcome, so every member writes the same.
pub fn output_metadata(ring: &RingSpec, layout: &Layout, o: &Outcome) -> Metadata {
    let mut meta = Metadata::new("gym-ring");
    meta.timestamp = o.timestamps.iter().max().cloned().unwrap_or(meta.timestamp);
    meta.seq = ring.round;
    meta.base_hash = layout.base_hash.clone();
    meta.adapter_config = layout.adapter_config.clone();
    let mut extra = serde_json::Map::new();
    extra.insert("ring".into(), record(ring, o));
    meta.extra = Some(extra);
    meta
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
    let means = MeanSource::new(layout, &o.sum, o.total_weight, o.scale);
    let inputs: Vec<PackInput> = layout
        .tensors
        .iter()
        .zip(MeanSource::offsets(layout))
        .map(|((name, dtype, shape), offset)| PackInput {
            name: name.clone(),
            dtype: *dtype,
            shape: shape.clone(),
            data: TensorSource::At {
                src: &means,
                offset,
            },
        })
        .collect();
    let opts = PackOptions {
        compression: Compression::None,
        chunk_size: delta::DEFAULT_CHUNK_SIZE,
        metadata: output_metadata(ring, layout, o),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_source_reads_the_mean_bytes_at_any_offset() {
        let layout = Layout {
            tensors: vec![
                ("a".into(), Dtype::F32, vec![3, 5]),
                ("empty".into(), Dtype::F32, vec![0, 4]),
                ("b".into(), Dtype::Bf16, vec![7]),
                ("c".into(), Dtype::F64, vec![2, 2]),
                ("d".into(), Dtype::F16, vec![9]),
            ],
            adapter_config: None,
            base_hash: None,
        };
        // One element short: the missing one reads as a zero sum, as in `mean_bytes`.
        let sum: Vec<i64> = (0..34i64).map(|k| (k - 17) * 123_456_789_011).collect();
        let whole: Vec<u8> = mean_bytes(&layout, &sum, 7, 40).concat();
        let src = MeanSource::new(&layout, &sum, 7, 40);
        assert_eq!(src.len(), whole.len() as u64);
        let mut all = vec![0u8; whole.len()];
        src.read_exact_at(0, &mut all).unwrap();
        assert_eq!(all, whole);
        for start in 0..whole.len() {
            for len in [1, 2, 3, 5, 8, 13, 40] {
                if start + len > whole.len() {
                    continue;
                }
                let mut b = vec![0u8; len];
                src.read_exact_at(start as u64, &mut b).unwrap();
                assert_eq!(b, &whole[start..start + len], "{start}+{len}");
            }
        }
        let mut past = [0u8; 2];
        assert!(
            src.read_exact_at(whole.len() as u64 - 1, &mut past)
                .is_err()
        );
        let offsets = MeanSource::offsets(&layout);
        assert_eq!(offsets, [0, 60, 60, 74, 106]);
    }
}
