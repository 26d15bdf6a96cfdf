//! `work`: the orchestrator's worker loop in-process, as `gym work` runs it (core
//! `orchestrator::worker::work`), with the GIL released; each event is handed to a Python
//! callback (taking the GIL briefly).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gym::core::keys::Identity;
use gym::core::orchestrator::worker::{self, WorkEvent, WorkOptions, WorkSummary};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::IntoPy;

/// `gym work`'s flags.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub struct WorkArgs {
    url: String,
    key: PathBuf,
    output: PathBuf,
    ring_addr: Option<String>,
    ring_timeout: f64,
    patience: f64,
}

/// An event as a dict: `{"event": "registered" | "trained" | …, fields…}`.
fn event_json(e: &WorkEvent) -> serde_json::Value {
    use serde_json::json;
    match e {
        WorkEvent::Registered {
            worker,
            index,
            ring_addr,
        } => {
            json!({"event": "registered", "worker": worker, "index": index, "ring_addr": ring_addr})
        }
        WorkEvent::Trained {
            round,
            steps,
            reward,
            loss,
        } => {
            json!({"event": "trained", "round": round, "steps": steps, "reward": reward, "loss": loss})
        }
        WorkEvent::Ring {
            round,
            members,
            result,
        } => json!({"event": "ring", "round": round, "members": members, "result": result}),
        WorkEvent::RingFailed { round, error } => {
            json!({"event": "ring_failed", "round": round, "error": error})
        }
        WorkEvent::Readmitted => json!({"event": "readmitted"}),
        WorkEvent::Finished { aggregate } => json!({"event": "finished", "aggregate": aggregate}),
    }
}

fn run(a: &WorkArgs, on_event: &dyn Fn(WorkEvent)) -> anyhow::Result<WorkSummary> {
    let key = Identity::load(&a.key)
        .map_err(|e| anyhow::Error::new(e).context(format!("loading key {}", a.key.display())))?;
    let opts = WorkOptions {
        url: a.url.clone(),
        key: Arc::new(key),
        output: a.output.clone(),
        ring_addr: a.ring_addr.clone(),
        poll: Duration::from_millis(100),
        ring_timeout: crate::ring::seconds(a.ring_timeout, "ring_timeout")?,
        patience: crate::ring::seconds(a.patience, "patience")?,
    };
    std::fs::create_dir_all(&a.output)
        .map_err(|e| anyhow::Error::new(e).context(format!("creating {}", a.output.display())))?;
    Ok(worker::work(&opts, on_event)
        .map_err(|e| anyhow::Error::new(e).context(format!("working for {}", a.url)))?)
}

/// Works for the orchestrator at `url` until its job is finished; returns the summary
/// (`gym work --json`'s fields). `callback(event_json)` is called for every event.
#[pyfunction]
#[pyo3(signature = (args, callback=None))]
pub fn work<'py>(
    py: Python<'py>,
    args: WorkArgs,
    callback: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let cb = callback.as_ref();
    let cbs = crate::SendBox(&cb);
    let summary = py
        .detach(move || {
            let on_event = |e: WorkEvent| {
                if let Some(cb) = *cbs.0 {
                    let text = event_json(&e).to_string();
                    Python::attach(|py| {
                        if let Err(err) = cb.call1(py, (text,)) {
                            err.print(py);
                        }
                    });
                }
            };
            run(&args, &on_event).map(crate::SendBox)
        })
        .py_err()?
        .0;
    let d = PyDict::new(py);
    d.set_item("format", "gym-work/1")?;
    d.set_item("worker", &summary.worker)?;
    d.set_item("rounds_trained", summary.rounds_trained)?;
    d.set_item("rings", summary.rings)?;
    d.set_item("aggregate", summary.aggregate.clone())?;
    d.set_item(
        "adapter",
        summary.adapter.as_ref().map(|p| p.display().to_string()),
    )?;
    Ok(d)
}
