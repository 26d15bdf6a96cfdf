//! Reward estimates and claims (`gym reward estimate | claim | verify-claim`).

use std::path::PathBuf;

use gym::core::atomic;
use gym::core::error::ErrorClass;
use gym::core::keys::Identity;
use gym::core::reward::contrib::{self, Mode};
use gym::core::reward::epoch::{self, EpochOptions};
use gym::core::reward::{Economics, Inputs, claim, estimate as run_estimate};
use pyo3::prelude::*;

use crate::errors::{IntoPy, fail};

/// The estimate as JSON, in the shape of `gym reward estimate --json` (`gym-reward-estimate/1`).
#[pyfunction]
pub fn estimate(
    py: Python<'_>,
    input: PathBuf,
    economics: Option<PathBuf>,
    epoch_no: Option<u64>,
    model_params: Option<u64>,
) -> PyResult<String> {
    py.detach(|| -> anyhow::Result<String> {
        let (e, origin) = match &economics {
            Some(p) => (Economics::load(p)?, p.display().to_string()),
            None => (Economics::default(), "defaults".to_string()),
        };
        let p = e.params(&origin)?;
        let inputs: Inputs = if input.is_dir() {
            let Some(mp) = model_params else {
                return Err(fail(
                    ErrorClass::Usage,
                    "model_params is required with an epoch folder: claimed FLOPs are capped at 6 x params x tokens",
                ));
            };
            let opts = EpochOptions { epoch: epoch_no, model_params: u128::from(mp) };
            epoch::load(&input, &p, &opts)?
        } else {
            contrib::load(&input, &p, Mode::Contributions, model_params.map(u128::from))?
        };
        let n = epoch_no.or(inputs.epoch).unwrap_or(0);
        let est = run_estimate(&p, n, &inputs.nodes)?;
        Ok(gym::cmd::reward::estimate_json(&p, &est, &inputs).to_string())
    })
    .py_err()
}

/// Signs a claim for `delta` with `key` and writes it to `output`; returns the claim as JSON.
#[pyfunction]
pub fn claim_rewards(
    py: Python<'_>,
    delta: PathBuf,
    cid: Option<String>,
    key: PathBuf,
    output: PathBuf,
    force: bool,
) -> PyResult<String> {
    py.detach(|| -> anyhow::Result<String> {
        atomic::check_writable(&output, force)?;
        let id = Identity::load(&key)
            .map_err(|e| anyhow::Error::new(e).context(format!("loading key {}", key.display())))?;
        let c = claim::make(&delta, cid.as_deref(), &id)?;
        let mut text = serde_json::to_string_pretty(&c)?;
        text.push('\n');
        atomic::write_file(&output, text.as_bytes(), force, None)?;
        Ok(text)
    })
    .py_err()
}

/// Verifies a claim's signature (and, with `delta`, that it matches that delta). Returns
/// (claim JSON, hybrid).
#[pyfunction]
pub fn verify_claim(
    py: Python<'_>,
    claim_path: PathBuf,
    delta: Option<PathBuf>,
) -> PyResult<(String, bool)> {
    py.detach(|| -> anyhow::Result<(String, bool)> {
        let (c, who) = claim::verify(&claim_path)?;
        if let Some(d) = &delta {
            claim::check_delta(&c, &claim_path.display().to_string(), d)?;
        }
        Ok((serde_json::to_string(&c)?, who.ml_dsa_87.is_some()))
    })
    .py_err()
}
