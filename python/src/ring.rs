//! `ring_join`: one verifiable all-reduce of a delta, as `gym ring join` runs it (same core:
//! ring file, member key, `ring::io::load_input`, `ring::net::join_blocking`,
//! `ring::io::write_output`), with the GIL released while the ring runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gym::core::atomic;
use gym::core::error::ErrorClass;
use gym::core::keys::Identity;
use gym::core::ring::config::RingSpec;
use gym::core::ring::{io, net};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{IntoPy, fail};

/// The ring file as a path, or its content as a dict (the ring file's TOML as a dict, passed
/// as JSON).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub struct RingSource {
    path: Option<PathBuf>,
    json: Option<String>,
}

impl RingSource {
    pub fn load(&self) -> anyhow::Result<(RingSpec, PathBuf)> {
        match (&self.path, &self.toml) {
            (Some(p), _) => Ok((RingSpec::load(p)?, p.clone())),
            (None, Some(j)) => {
                let p = PathBuf::from("<ring dict>");
                let bad = |e: String| fail(ErrorClass::Usage, format!("ring dict: {e}"));
                let table: toml::Table = serde_json::from_str(j).map_err(|e| bad(e.to_string()))?;
                let text = toml::to_string(&table).map_err(|e| bad(e.to_string()))?;
                Ok((RingSpec::parse(&text, &p)?, p))
            }
            (None, None) => Err(fail(ErrorClass::Usage, "ring: give a ring file or a dict")),
        }
    }
}

/// A duration in seconds from Python: positive and finite.
pub fn seconds(v: f64, what: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            fail(
                ErrorClass::Usage,
                format!("{what}: expected seconds > 0, got {v}"),
            )
        })
}

/// How to join, as `gym ring join`'s flags.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub struct JoinArgs {
    ring: RingSource,
    key: PathBuf,
    input: PathBuf,
    output: PathBuf,
    weight: u64,
    timeout: f64,
    connect_timeout: f64,
    listen: Option<String>,
    force: bool,
}

struct Joined {
    me: usize,
    members: usize,
    view: u32,
    total_weight: u128,
    digest: String,
}

fn join(a: &JoinArgs) -> anyhow::Result<Joined> {
    let step_timeout = seconds(a.timeout, "timeout")?;
    let connect_timeout = seconds(a.connect_timeout, "connect_timeout")?;
    let listen = a
        .listen
        .as_deref()
        .map(|s| {
            s.parse::<std::net::SocketAddr>()
                .map_err(|e| fail(ErrorClass::Usage, format!("listen {s:?}: {e}")))
        })
        .transpose()?;
    atomic::check_writable(&a.output, a.force)?;
    let (spec, ring_path) = a.ring.load()?;
    let spec = Arc::new(spec);
    let id = Identity::load(&a.key)
        .map_err(|e| anyhow::Error::new(e).context(format!("loading key {}", a.key.display())))?;
    let me = spec.member_index(&id, &ring_path)?;
    let (input, layout) = io::load_input(&a.input, a.weight)?;
    let progress: net::Progress = Arc::new(|_m: String| {});
    let joined = net::join_blocking(
        spec.clone(),
        me,
        Arc::new(id),
        Arc::new(input),
        net::JoinOptions {
            step_timeout,
            connect_timeout,
            listen,
        },
        progress,
    )
    .map_err(|e| anyhow::Error::new(e).context(format!("ring all-reduce as member {me}")))?;
    let o = joined.outcome;
    let summary = io::write_output(&a.output, a.force, &spec, &layout, &o).map_err(|e| {
        anyhow::Error::new(e).context(format!("writing {}", Path::new(&a.output).display()))
    })?;
    Ok(Joined {
        me,
        members: o.members.len(),
        view: o.view,
        total_weight: o.total_weight,
        digest: hex::encode(summary.digest),
    })
}

/// Joins the ring with one delta and writes the averaged delta (identical at every member).
#[pyfunction]
pub fn ring_join<'py>(py: Python<'py>, args: JoinArgs) -> PyResult<Bound<'py, PyDict>> {
    let j = py.detach(|| join(&args)).py_err()?;
    let d = PyDict::new(py);
    d.set_item("path", args.output.display().to_string())?;
    d.set_item("member", j.me)?;
    d.set_item("members", j.members)?;
    d.set_item("view", j.view)?;
    d.set_item(
        "total_weight",
        u64::try_from(j.total_weight).unwrap_or(u64::MAX),
    )?;
    d.set_item("digest", j.digest)?;
    Ok(d)
}
