//! Streaming access to `.safetensors` files: the header is parsed and validated with the
//! `safetensors` crate's own rules, tensor bytes are read by position, never all at once.

use std::path::{Path, PathBuf};

use crate::core::delta::Dtype;
use crate::core::error::{Classify, ErrorClass};

#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid safetensors file: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

impl Classify for SafetensorsError {
    fn class(&self) -> ErrorClass {
        match self {
            SafetensorsError::Io { .. } => ErrorClass::Io,
            SafetensorsError::Invalid { .. } => ErrorClass::Malformed,
        }
    }
}

/// One tensor of a safetensors file.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<u64>,
    /// Byte length.
    pub len: u64,
}

/// A parsed safetensors file: its tensors (sorted by name) with absolute data offsets.
#[derive(Debug, Clone)]
pub struct SafetensorsFile {
    pub tensors: Vec<(TensorSpec, u64)>,
    /// The optional `__metadata__` string map.
    pub metadata: Vec<(String, String)>,
}

/// Largest header gym accepts (the safetensors crate's own limit is 100 MB).
const MAX_HEADER: u64 = 100_000_000;

pub fn read_header(
    path: &Path,
    src: &dyn crate::core::delta::Source,
) -> Result<SafetensorsFile, SafetensorsError> {
    let invalid = |reason: String| SafetensorsError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let io = |source| SafetensorsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let total = src.len();
    if total < 8 {
        return Err(invalid(format!(
            "{total} bytes is shorter than the 8-byte header length"
        )));
    }
    let mut n = [0u8; 8];
    src.read_exact_at(0, &mut n).map_err(io)?;
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER || n > total - 8 {
        return Err(invalid(format!(
            "header length {n} is larger than the file or the 100 MB limit"
        )));
    }
    let mut header = vec![0u8; n as usize];
    src.read_exact_at(8, &mut header).map_err(io)?;
    let meta: safetensors::tensor::Metadata =
        serde_json::from_slice(&header).map_err(|e| invalid(format!("header JSON: {e}")))?;
    let data_start = 8 + n;
    let data_len = total - data_start;
    if meta.data_len() as u64 != data_len {
        return Err(invalid(format!(
            "tensor data covers {} bytes but the file holds {data_len} after the header",
            meta.data_len()
        )));
    }
    let mut tensors = Vec::new();
    for (name, info) in meta.tensors() {
        let dtype = Dtype::from_safetensors(info.dtype).ok_or_else(|| {
            invalid(format!(
                "tensor {name:?}: dtype {:?} is not supported",
                info.dtype
            ))
        })?;
        let (a, b) = info.data_offsets;
        tensors.push((
            TensorSpec {
                name,
                dtype,
                shape: info.shape.iter().map(|&d| d as u64).collect(),
                len: (b - a) as u64,
            },
            data_start + a as u64,
        ));
    }
    tensors.sort_by(|x, y| x.0.name.cmp(&y.0.name));
    let mut metadata: Vec<(String, String)> = meta
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    metadata.sort();
    Ok(SafetensorsFile { tensors, metadata })
}

/// The header of a safetensors file holding `tensors` in the given order, data laid out
/// back to back: 8-byte length, JSON, padded with spaces to a multiple of 8 as the reference
/// implementation does.
pub fn header_bytes(tensors: &[TensorSpec], metadata: Option<&[(String, String)]>) -> Vec<u8> {
    let mut obj = serde_json::Map::new();
    if let Some(m) = metadata
        && !m.is_empty()
    {
        let mm: serde_json::Map<String, serde_json::Value> = m
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        obj.insert("__metadata__".into(), serde_json::Value::Object(mm));
    }
    let mut off = 0u64;
    for t in tensors {
        obj.insert(
            t.name.clone(),
            serde_json::json!({
                "dtype": t.dtype.name(),
                "shape": t.shape,
                "data_offsets": [off, off + t.len],
            }),
        );
        off += t.len;
    }
    let mut json =
        serde_json::to_vec(&serde_json::Value::Object(obj)).expect("JSON of strings and numbers");
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len());
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out
}
