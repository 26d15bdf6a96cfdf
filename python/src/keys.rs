//! Worker keys: generate, load, public identity.

use std::path::PathBuf;

use gym::core::keys::{Identity, PublicIdentity};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::IntoPy;

fn public_dict<'py>(
    py: Python<'py>,
    path: &std::path::Path,
    p: &PublicIdentity,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("path", path.display().to_string())?;
    d.set_item("worker_id", p.worker_id())?;
    d.set_item("ed25519", p.ed25519_base64())?;
    d.set_item("ml_dsa_87", p.ml_dsa_base64())?;
    d.set_item("hybrid", p.ml_dsa_87.is_some())?;
    Ok(d)
}

/// Generates a key file (mode 0600, written atomically; an existing file is kept unless `force`).
#[pyfunction]
pub fn generate_key<'py>(
    py: Python<'py>,
    path: PathBuf,
    pq: bool,
    force: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let public = py
        .detach(|| -> anyhow::Result<PublicIdentity> {
            let id = Identity::generate(pq);
            id.save(&path, force)?;
            Ok(id.public())
        })
        .py_err()?;
    public_dict(py, &path, &public)
}

/// Loads a key file and returns its public identity (the secret stays in the file).
#[pyfunction]
pub fn load_key<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyDict>> {
    let public = py
        .detach(|| -> anyhow::Result<PublicIdentity> { Ok(Identity::load(&path)?.public()) })
        .py_err()?;
    public_dict(py, &path, &public)
}
