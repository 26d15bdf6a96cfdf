//! DELTA files: verified reads into Python-owned buffers, verification, writing.

use std::path::{Path, PathBuf};

use gym::core::atomic::AtomicFile;
use gym::core::delta::{
    self, Compression, Delta, Dtype, FileSource, Metadata, PackInput, PackOptions, TensorSource,
    VerifyOptions, VerifyReport,
};
use gym::core::error::ErrorClass;
use gym::core::keys::{Identity, TrustedKeys};
use gym::core::safetensors_io;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList};

use crate::errors::{IntoPy, fail};

/// What the caller asks of the signer and policy.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub struct Policy {
    /// A trusted-keys file.
    trusted_keys_path: Option<PathBuf>,
    /// Trusted-keys lines (same syntax as the file), from a list given in Python.
    trusted_keys_text: Option<String>,
    require_signature: bool,
    min_seq: Option<u64>,
    base_hash: Option<String>,
}

impl Policy {
    fn options(&self) -> anyhow::Result<VerifyOptions> {
        let trusted = match (&self.trusted_keys_path, &self.trusted_keys_text) {
            (Some(p), _) => Some(TrustedKeys::load(p)?),
            (None, Some(t)) => Some(TrustedKeys::parse(t, Path::new("<trusted_keys>"))?),
            (None, None) => None,
        };
        Ok(VerifyOptions {
            trusted,
            require_signature: self.require_signature,
            min_seq: self.min_seq,
            base_hash: self.base_hash.clone(),
        })
    }
}

fn open(path: &Path) -> anyhow::Result<FileSource> {
    FileSource::open(path)
        .map_err(|e| anyhow::Error::new(e).context(format!("opening delta {}", path.display())))
}

/// The report of a verified delta as a dict (shared by `verify` and `read_delta`).
fn report_dict<'py>(py: Python<'py>, r: &VerifyReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let meta = r
        .delta
        .metadata
        .to_json()
        .map_err(|e| fail(ErrorClass::Malformed, e))
        .py_err()?;
    d.set_item("metadata_json", String::from_utf8_lossy(&meta).into_owned())?;
    d.set_item("digest", r.digest_hex())?;
    d.set_item("compression", r.delta.compression.name())?;
    d.set_item("chunk_size", r.delta.chunk_size)?;
    d.set_item("raw_bytes", r.delta.raw_bytes())?;
    d.set_item("file_bytes", r.delta.file_len)?;
    d.set_item("trusted", r.trusted)?;
    d.set_item("trusted_label", r.trusted_label.clone())?;
    match &r.signer {
        Some(s) => {
            let sd = PyDict::new(py);
            sd.set_item("worker_id", s.worker_id())?;
            sd.set_item("ed25519", s.ed25519_base64())?;
            sd.set_item("hybrid", s.ml_dsa_87.is_some())?;
            d.set_item("signer", sd)?;
        }
        None => d.set_item("signer", py.None())?,
    }
    let tensors = PyList::empty(py);
    for t in &r.delta.tensors {
        tensors.append((t.name.as_str(), t.dtype.name(), t.shape.clone(), t.raw_len))?;
    }
    d.set_item("tensors", tensors)?;
    Ok(d)
}

/// Full verification without keeping tensor data.
#[pyfunction]
pub fn verify<'py>(py: Python<'py>, path: PathBuf, policy: Policy) -> PyResult<Bound<'py, PyDict>> {
    let report = py
        .detach(|| -> anyhow::Result<VerifyReport> {
            let opts = policy.options()?;
            let src = open(&path)?;
            Ok(delta::verify(&src, &opts)?)
        })
        .py_err()?;
    report_dict(py, &report)
}

/// A Python `bytearray` being filled with the GIL released. Only its length and address cross
/// threads; the object itself stays referenced by the caller for the whole fill.
struct Target {
    ptr: usize,
    len: usize,
}

/// A fresh, uninitialised `bytearray` of `len` bytes (every byte is written before Python sees it).
fn uninit_bytearray(py: Python<'_>, len: usize) -> PyResult<(Bound<'_, PyByteArray>, Target)> {
    let n = pyo3::ffi::Py_ssize_t::try_from(len)
        .map_err(|_| pyo3::exceptions::PyMemoryError::new_err("tensor too large"))?;
    // SAFETY: a NULL source asks CPython for an uninitialised buffer of `n` bytes; the result is
    // a new reference (or NULL with an exception set, which `from_owned_ptr_or_err` turns into
    // the error).
    let obj = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            pyo3::ffi::PyByteArray_FromStringAndSize(std::ptr::null(), n),
        )?
    };
    let ba = obj.cast_into::<PyByteArray>()?;
    let ptr = pyo3::types::PyByteArrayMethods::data(&ba) as usize;
    Ok((ba, Target { ptr, len }))
}

/// Verifies a delta and returns its report with every tensor decoded into a new `bytearray`,
/// from the same pass that verified it: worker threads read, hash and decode each chunk straight
/// into its place (core `delta::decode_into`). Tensors are `(name, dtype, shape, bytearray)`.
#[pyfunction]
pub fn read_delta<'py>(
    py: Python<'py>,
    path: PathBuf,
    policy: Policy,
) -> PyResult<Bound<'py, PyDict>> {
    let (src, opts, scanned) = py
        .detach(|| -> anyhow::Result<_> {
            let opts = policy.options()?;
            let src = open(&path)?;
            let scanned = Delta::scan(&src)?;
            Ok((src, opts, scanned))
        })
        .py_err()?;
    let mut arrays = Vec::with_capacity(scanned.tensors.len());
    let mut targets = Vec::with_capacity(scanned.tensors.len());
    for t in &scanned.tensors {
        let len = usize::try_from(t.raw_len)
            .map_err(|_| pyo3::exceptions::PyMemoryError::new_err("tensor too large"))?;
        let (ba, target) = uninit_bytearray(py, len)?;
        arrays.push(ba);
        targets.push(target);
    }
    let report = py
        .detach(move || {
            // SAFETY: each `ptr..ptr+len` is the buffer of a bytearray created above, kept alive
            // by `arrays` until this returns; the buffers are distinct allocations and nothing
            // else reads or writes them until then.
            let mut dests: Vec<&mut [u8]> = targets
                .iter()
                .map(|t| unsafe { std::slice::from_raw_parts_mut(t.ptr as *mut u8, t.len) })
                .collect();
            delta::decode_into(&src, scanned, &opts, &mut dests)
        })
        .py_err()?;
    let d = report_dict(py, &report)?;
    let tensors = PyList::empty(py);
    for (t, ba) in report.delta.tensors.iter().zip(arrays) {
        tensors.append((t.name.as_str(), t.dtype.name(), t.shape.clone(), ba))?;
    }
    d.set_item("tensors", tensors)?;
    Ok(d)
}

/// Structure and metadata only, nothing checked against the checksum or signature.
#[pyfunction]
pub fn inspect<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyDict>> {
    let delta = py
        .detach(|| -> anyhow::Result<Delta> { Ok(Delta::scan(&open(&path)?)?) })
        .py_err()?;
    let d = PyDict::new(py);
    let meta = delta
        .metadata
        .to_json()
        .map_err(|e| fail(ErrorClass::Malformed, e))
        .py_err()?;
    d.set_item("metadata_json", String::from_utf8_lossy(&meta).into_owned())?;
    d.set_item("signed", delta.signature.is_some())?;
    d.set_item("hybrid", delta.flags & delta::FLAG_HYBRID != 0)?;
    d.set_item("compression", delta.compression.name())?;
    d.set_item("raw_bytes", delta.raw_bytes())?;
    let tensors = PyList::empty(py);
    for t in &delta.tensors {
        tensors.append((t.name.as_str(), t.dtype.name(), t.shape.clone(), t.raw_len))?;
    }
    d.set_item("tensors", tensors)?;
    Ok(d)
}

/// How to write: options shared by both writers.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub struct WriteOptions {
    /// Metadata fields as JSON, laid over gym's defaults (time now, epoch 0, …).
    metadata_json: String,
    key: Option<PathBuf>,
    compression: String,
    chunk_size: u32,
    force: bool,
}

fn metadata(fields: &str, identity: Option<&Identity>) -> anyhow::Result<Metadata> {
    let worker = identity.map_or_else(|| "anonymous".to_string(), |i| i.public().worker_id());
    let mut base = serde_json::to_value(Metadata::new(worker))?;
    let given: serde_json::Value = serde_json::from_str(fields).map_err(|e| {
        fail(
            ErrorClass::Malformed,
            format!("metadata: invalid JSON: {e}"),
        )
    })?;
    let serde_json::Value::Object(given) = given else {
        return Err(fail(ErrorClass::Malformed, "metadata: expected a dict"));
    };
    if let serde_json::Value::Object(b) = &mut base {
        b.extend(given);
    }
    let meta: Metadata = serde_json::from_value(base)
        .map_err(|e| fail(ErrorClass::Malformed, format!("metadata: {e}")))?;
    meta.validate()
        .map_err(|e| fail(ErrorClass::Malformed, format!("metadata: {e}")))?;
    Ok(meta)
}

fn compression(name: &str) -> anyhow::Result<Compression> {
    match name {
        "lz4" => Ok(Compression::Lz4),
        "none" => Ok(Compression::None),
        _ => Err(fail(
            ErrorClass::Usage,
            format!("compression {name:?}: expected \"lz4\" or \"none\""),
        )),
    }
}

/// Packs `inputs` into `path` atomically; returns the summary as JSON.
fn pack(
    path: &Path,
    inputs: &[PackInput<'_>],
    o: &WriteOptions,
    adapter: Option<serde_json::Map<String, serde_json::Value>>,
    st_meta: Option<serde_json::Map<String, serde_json::Value>>,
) -> anyhow::Result<serde_json::Value> {
    gym::core::atomic::check_writable(path, o.force)?;
    let identity = match &o.key {
        Some(p) => Some(Identity::load(p).map_err(|e| {
            anyhow::Error::new(e).context(format!("loading signing key {}", p.display()))
        })?),
        None => None,
    };
    let mut meta = metadata(&o.metadata_json, identity.as_ref())?;
    if adapter.is_some() {
        meta.adapter_config = adapter;
    }
    if let Some(m) = st_meta {
        meta.extra
            .get_or_insert_with(Default::default)
            .insert("safetensors_metadata".into(), m.into());
    }
    let opts = PackOptions {
        compression: compression(&o.compression)?,
        chunk_size: o.chunk_size,
        metadata: meta,
        identity: identity.as_ref(),
    };
    let mut file = AtomicFile::create(path, o.force, None)?;
    let s = delta::pack(inputs, &opts, file.file(), &|_| {})?;
    file.commit()?;
    Ok(serde_json::json!({
        "path": path.display().to_string(),
        "tensors": s.tensors,
        "raw_bytes": s.raw_bytes,
        "stored_bytes": s.stored_bytes,
        "file_bytes": s.file_bytes,
        "digest": hex::encode(s.digest),
        "signed": s.signed,
        "hybrid": s.hybrid,
    }))
}

/// Writes tensors given as `(name, dtype, shape, bytes)` (raw little-endian data).
#[pyfunction]
pub fn write_delta(
    py: Python<'_>,
    path: PathBuf,
    tensors: Vec<(String, String, Vec<u64>, Bound<'_, PyBytes>)>,
    options: WriteOptions,
) -> PyResult<String> {
    let mut inputs = Vec::with_capacity(tensors.len());
    for (name, dtype, shape, data) in &tensors {
        let dt = Dtype::from_name(dtype)
            .ok_or_else(|| {
                fail(
                    ErrorClass::Unsupported,
                    format!("tensor {name:?}: unknown dtype {dtype:?}"),
                )
            })
            .py_err()?;
        inputs.push(PackInput {
            name: name.clone(),
            dtype: dt,
            shape: shape.clone(),
            data: TensorSource::Bytes(data.as_bytes()),
        });
    }
    let summary = py
        .detach(|| pack(&path, &inputs, &options, None, None))
        .py_err()?;
    Ok(summary.to_string())
}

fn read_json_object(path: &Path) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::Error::new(e).context(format!("reading {}", path.display())))?;
    match serde_json::from_str(&text) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err(fail(
            ErrorClass::Malformed,
            format!("{}: expected a JSON object", path.display()),
        )),
        Err(e) => Err(fail(
            ErrorClass::Malformed,
            format!("{}: invalid JSON: {e}", path.display()),
        )),
    }
}

/// Packs a safetensors file or a PEFT adapter folder (adapter_model.safetensors plus
/// adapter_config.json, which travels in the metadata), as `gym delta pack` does.
fn pack_file(path: &Path, input: &Path, o: &WriteOptions) -> anyhow::Result<serde_json::Value> {
    let (st_path, adapter) = if input.is_dir() {
        let st = input.join("adapter_model.safetensors");
        if !st.is_file() {
            return Err(fail(
                ErrorClass::Io,
                format!(
                    "{}: no adapter_model.safetensors in this folder",
                    input.display()
                ),
            ));
        }
        let cfg = input.join("adapter_config.json");
        (
            st,
            if cfg.is_file() {
                Some(read_json_object(&cfg)?)
            } else {
                None
            },
        )
    } else {
        (input.to_path_buf(), None)
    };
    let src = FileSource::open(&st_path)
        .map_err(|e| anyhow::Error::new(e).context(format!("opening {}", st_path.display())))?;
    let st = safetensors_io::read_header(&st_path, &src)?;
    let inputs: Vec<PackInput<'_>> = st
        .tensors
        .iter()
        .map(|(spec, offset)| PackInput {
            name: spec.name.clone(),
            dtype: spec.dtype,
            shape: spec.shape.clone(),
            data: TensorSource::At {
                src: &src,
                offset: *offset,
            },
        })
        .collect();
    let st_meta = (!st.metadata.is_empty()).then(|| {
        st.metadata
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect()
    });
    pack(path, &inputs, o, adapter, st_meta)
}

/// Writes a safetensors file or PEFT adapter folder as a delta.
#[pyfunction]
pub fn write_delta_from_file(
    py: Python<'_>,
    path: PathBuf,
    input: PathBuf,
    options: WriteOptions,
) -> PyResult<String> {
    let summary = py.detach(|| pack_file(&path, &input, &options)).py_err()?;
    Ok(summary.to_string())
}
