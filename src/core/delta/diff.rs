//! Numerical comparison of two deltas, tensor by tensor, streaming.

use super::read::{self, Delta, Source, read_tensor};
use super::*;

/// Whether a tensor name is in both deltas and can be compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffStatus {
    Both,
    OnlyA,
    OnlyB,
    /// In both, but shape or dtype makes a comparison meaningless.
    Incomparable,
}

impl DiffStatus {
    /// The status as JSON writes it ("both", "only_a", …).
    pub fn as_str(self) -> &'static str {
        match self {
            DiffStatus::Both => "both",
            DiffStatus::OnlyA => "only_a",
            DiffStatus::OnlyB => "only_b",
            DiffStatus::Incomparable => "incomparable",
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TensorDiff {
    pub name: String,
    pub status: DiffStatus,
    pub dtype_a: Option<String>,
    pub dtype_b: Option<String>,
    pub shape_a: Option<Vec<u64>>,
    pub shape_b: Option<Vec<u64>>,
    /// ‖a − b‖₂
    pub l2: Option<f64>,
    /// max |a − b|
    pub max_abs: Option<f64>,
    /// a·b / (‖a‖‖b‖); null when either norm is zero.
    pub cosine: Option<f64>,
    pub identical_bytes: Option<bool>,
}

impl TensorDiff {
    /// The entry of tensor `name` with the dtype and shape of each side that has it; no
    /// numbers yet.
    fn new(
        status: DiffStatus,
        name: &str,
        a: Option<&read::TensorEntry>,
        b: Option<&read::TensorEntry>,
    ) -> Self {
        TensorDiff {
            name: name.to_string(),
            status,
            dtype_a: a.map(|t| t.dtype.name().into()),
            dtype_b: b.map(|t| t.dtype.name().into()),
            shape_a: a.map(|t| t.shape.clone()),
            shape_b: b.map(|t| t.shape.clone()),
            l2: None,
            max_abs: None,
            cosine: None,
            identical_bytes: None,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DiffReport {
    pub tensors: Vec<TensorDiff>,
}

struct Acc {
    sq: f64,
    max: f64,
    dot: f64,
    na: f64,
    nb: f64,
}

/// Compares every tensor of `a` with the tensor of the same name in `b`. Both deltas must have
/// passed verification (the caller checks); decoding errors are still reported.
pub fn diff(
    sa: &dyn Source,
    a: &Delta,
    sb: &dyn Source,
    b: &Delta,
) -> Result<DiffReport, DeltaError> {
    let mut out = Vec::new();
    for ta in &a.tensors {
        let Some(tb) = b.tensor(&ta.name) else {
            out.push(TensorDiff::new(DiffStatus::OnlyA, &ta.name, Some(ta), None));
            continue;
        };
        let mut d = TensorDiff::new(DiffStatus::Both, &ta.name, Some(ta), Some(tb));
        let (sa, sb) = (
            Side {
                src: sa,
                delta: a,
                tensor: ta,
            },
            Side {
                src: sb,
                delta: b,
                tensor: tb,
            },
        );
        let elements: u64 = ta.shape.iter().product();
        if ta.shape != tb.shape || !ta.dtype.is_numeric() || !tb.dtype.is_numeric() {
            d.status = DiffStatus::Incomparable;
            if ta.shape == tb.shape && ta.dtype == tb.dtype {
                d.identical_bytes = Some(same_bytes(sa, sb)?);
            }
            out.push(d);
            continue;
        }
        let (acc, same) = stream_compare(sa, sb, elements)?;
        d.l2 = Some(acc.sq.sqrt());
        d.max_abs = Some(acc.max);
        d.cosine = if acc.na > 0.0 && acc.nb > 0.0 {
            Some(acc.dot / (acc.na.sqrt() * acc.nb.sqrt()))
        } else {
            None
        };
        d.identical_bytes = Some(same);
        out.push(d);
    }
    for tb in &b.tensors {
        if a.tensor(&tb.name).is_none() {
            out.push(TensorDiff::new(DiffStatus::OnlyB, &tb.name, None, Some(tb)));
        }
    }
    Ok(DiffReport { tensors: out })
}

/// Streams tensor `ta` of `a` and `tb` of `b` (same shape, numeric dtypes) element by
/// element, whatever their chunk sizes; returns the sums and whether the bytes are identical.
fn stream_compare(a: Side, b: Side, elements: u64) -> Result<(Acc, bool), DeltaError> {
    let (sa, ta) = (a.src, a.tensor);
    let (sb, tb, b) = (b.src, b.tensor, b.delta);
    let a = a.delta;
    let (ea, eb) = (
        (ta.dtype.bits() / 8) as usize,
        (tb.dtype.bits() / 8) as usize,
    );
    let mut acc = Acc {
        sq: 0.0,
        max: 0.0,
        dot: 0.0,
        na: 0.0,
        nb: 0.0,
    };
    let mut same = ta.dtype == tb.dtype;
    // Decode A fully per chunk window into f64 is unbounded; instead walk B's chunks and
    // pull the matching range of A lazily.
    let mut a_chunks = a.chunks[ta.chunks.clone()].iter();
    let mut a_pending: Vec<u8> = Vec::new();
    let mut a_pos = 0usize;
    let mut err: Option<DeltaError> = None;
    let mut seen = 0u64;
    read_tensor(sb, b, tb, |bchunk| {
        if err.is_some() {
            return;
        }
        let n = bchunk.len() / eb;
        // Make sure n elements of A are available.
        while (a_pending.len() - a_pos) / ea < n {
            let Some(ch) = a_chunks.next() else { break };
            a_pending.drain(..a_pos);
            a_pos = 0;
            let mut s = Vec::new();
            let mut r = Vec::new();
            match read::decode_chunk(sa, a, ch, &mut s, &mut r) {
                Ok(()) => a_pending.extend_from_slice(&r),
                Err(e) => {
                    err = Some(e);
                    return;
                }
            }
        }
        let abytes = &a_pending[a_pos..a_pos + n * ea];
        if same && abytes != bchunk {
            same = false;
        }
        for i in 0..n {
            let x = ta.dtype.element_f64(&abytes[i * ea..]).unwrap_or(f64::NAN);
            let y = tb.dtype.element_f64(&bchunk[i * eb..]).unwrap_or(f64::NAN);
            let dlt = x - y;
            acc.sq += dlt * dlt;
            let ad = dlt.abs();
            if ad > acc.max || ad.is_nan() {
                acc.max = ad;
            }
            acc.dot += x * y;
            acc.na += x * x;
            acc.nb += y * y;
        }
        a_pos += n * ea;
        seen += n as u64;
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    debug_assert_eq!(seen, elements);
    Ok((acc, same))
}

/// Whether two tensors' bytes are identical (compared by SHA3-256, streaming).
fn same_bytes(a: Side, b: Side) -> Result<bool, DeltaError> {
    let hash = |x: Side| -> Result<[u8; 32], DeltaError> {
        use sha3::Digest;
        let mut h = sha3::Sha3_256::new();
        read_tensor(x.src, x.delta, x.tensor, |bytes| h.update(bytes))?;
        Ok(h.finalize().into())
    };
    Ok(hash(a)? == hash(b)?)
}

/// One side of a comparison: a delta, where its bytes are, and one of its tensors.
#[derive(Clone, Copy)]
struct Side<'a> {
    src: &'a dyn Source,
    delta: &'a Delta,
    tensor: &'a read::TensorEntry,
}
