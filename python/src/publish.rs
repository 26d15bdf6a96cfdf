//! Offline CIDs and publishing to an IPFS node, a local CID store or the Hugging Face Hub.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gym::core::error::ErrorClass;
use gym::core::hub::{self, HubOptions, RepoId, Token};
use gym::core::ipfs::{self, CidVersion, Entry, api::Kubo, local, unixfs::NoBlocks};
use gym::core::net::Retry;
use pyo3::prelude::*;

use crate::errors::{IntoPy, fail};

fn version(v: u8) -> anyhow::Result<CidVersion> {
    match v {
        0 => Ok(CidVersion::V0),
        1 => Ok(CidVersion::V1),
        _ => Err(fail(
            ErrorClass::Usage,
            format!("cid_version {v}: must be 0 or 1"),
        )),
    }
}

fn retry(first_delay_ms: Option<u64>) -> Retry {
    let mut r = Retry::default();
    if let Some(ms) = first_delay_ms {
        r.first_delay = Duration::from_millis(ms);
    }
    r
}

fn entries(path: &std::path::Path, v: CidVersion) -> anyhow::Result<Vec<Entry>> {
    Ok(ipfs::add_path(path, v, &mut NoBlocks, &mut |_| {})?)
}

/// The CID `ipfs add` would give `path` (a file or folder), computed offline.
#[pyfunction]
pub fn cid(py: Python<'_>, path: PathBuf, cid_version: u8) -> PyResult<String> {
    py.detach(|| -> anyhow::Result<String> {
        let e = entries(&path, version(cid_version)?)?;
        Ok(e.last().map(|e| e.cid.to_string()).unwrap_or_default())
    })
    .py_err()
}

/// Adds and pins `path` on a Kubo RPC API; every CID the node returns must equal gym's own.
/// Returns (cid, node_size, blocks verified).
#[pyfunction]
pub fn upload_ipfs(
    py: Python<'_>,
    path: PathBuf,
    api: String,
    cid_version: u8,
    retry_delay_ms: Option<u64>,
) -> PyResult<(String, Option<u64>, usize)> {
    py.detach(|| -> anyhow::Result<_> {
        let v = version(cid_version)?;
        let root = entries(&path, v)?
            .pop()
            .map(|e| e.cid.to_string())
            .unwrap_or_default();
        let kubo = Kubo::new(&api, retry(retry_delay_ms))?;
        let added = kubo.add(&path, v, Arc::new(|_| {})).map_err(|e| {
            anyhow::Error::new(e).context(format!("adding {} to {api}", path.display()))
        })?;
        let node_size = added.last().and_then(|x| x.node_size);
        Ok((root, node_size, added.len()))
    })
    .py_err()
}

/// Copies `path` into `dir` named by its CID. Returns (cid, location, written).
#[pyfunction]
pub fn publish_local(
    py: Python<'_>,
    path: PathBuf,
    dir: PathBuf,
    cid_version: u8,
    force: bool,
) -> PyResult<(String, String, bool)> {
    py.detach(|| -> anyhow::Result<_> {
        let v = version(cid_version)?;
        let root = entries(&path, v)?
            .pop()
            .map(|e| e.cid.to_string())
            .unwrap_or_default();
        let stored = local::publish(&path, &dir, v, force, &mut |_| {})?;
        Ok((root, stored.location.display().to_string(), stored.written))
    })
    .py_err()
}

/// The Hub target of `publish_hub`.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub struct HubTarget {
    repo: String,
    endpoint: String,
    token: Option<String>,
    revision: String,
    private: bool,
    message: Option<String>,
    retry_delay_ms: Option<u64>,
}

/// One commit of `path` to a Hub model repository (created when missing). Returns the report
/// as JSON (the `hf` target of `gym publish --json`).
#[pyfunction]
pub fn publish_hub(py: Python<'_>, path: PathBuf, target: HubTarget) -> PyResult<String> {
    py.detach(|| -> anyhow::Result<String> {
        let repo = RepoId::parse(&target.repo)?;
        let root = entries(&path, CidVersion::V0)?
            .pop()
            .map(|e| e.cid.to_string())
            .unwrap_or_default();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let opts = HubOptions {
            endpoint: target.endpoint.trim_end_matches('/').to_string(),
            token: target.token.clone().map(Token::new),
            repo,
            revision: target.revision.clone(),
            private: target.private,
            summary: target
                .message
                .clone()
                .unwrap_or_else(|| format!("Upload {name} with gym")),
            description: format!(
                "Published with gym {}. IPFS CID (v0): {root}",
                env!("CARGO_PKG_VERSION")
            ),
            retry: retry(target.retry_delay_ms),
        };
        let files = hub::collect(&path)?;
        let report = hub::upload(files, &opts, Arc::new(|_| {}))?;
        Ok(serde_json::to_string(&report)?)
    })
    .py_err()
}
