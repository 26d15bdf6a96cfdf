//! Epoch folders (docs/rewards.md §7), written by the orchestrator from its own signed log at the
//! end of each epoch of a validated job, and the reward estimate on them:
//!
//! ```text
//! <job>.orch/epochs/epoch-NNNN/
//!   nodes.json       the roster: trainers as role "compute", validators as "validator", and
//!                    the orchestrator (role "orchestrator", `[validation] orchestrator_stake`:
//!                    it signs the validators' checkpoint receipts)
//!   deltas/          every delta reported in the epoch (refused ones too: their verdicts
//!                    refer to them), named <worker>-rNNNNNN.delta
//!   eval/            every validator verdict of the epoch, as signed (gym-eval-report/1)
//!   ring/forward.jsonl     the `forward` receipts the workers sent with their ring results
//!   ring/checkpoint.jsonl  a `checkpoint` receipt per validator and round it judged, signed
//!                          by the orchestrator (dated by the validator's first verdict)
//!   economics.toml   the economics used: defaults, `[caps] tokens_per_delta` = the job's max_tokens
//!   estimate.json    gym-epoch-estimate/1: the reward estimate, signed by the orchestrator
//! ```
//!
//! Every record in the folder was produced by gym: deltas signed by workers, reports signed by
//! validators, the log that names them signed by the orchestrator. `gym reward estimate
//! FOLDER --model-params P` recomputes the estimate from the files alone.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::job::Role as JobRole;
use super::machine::Decision;
use super::{GspoOrchestrator, OrchError};
use crate::core::reward::alloc::estimate;
use crate::core::reward::economics::Economics;
use crate::core::reward::epoch::{self, EpochOptions};
use crate::core::reward::records::{RingKind, RingReceipt};
use crate::core::timefmt;

/// Format tag of `estimate.json`.
pub const ESTIMATE_FORMAT: &str = "gym-epoch-estimate/1";
/// Signature domain of `estimate.json`.
const ESTIMATE_DOMAIN: &[u8] = b"gym-epoch-estimate-v1\0";

fn io(p: &Path) -> impl Fn(std::io::Error) -> OrchError + '_ {
    move |e| OrchError::Io(format!("{}: {e}", p.display()))
}

/// The folder of `epoch`.
pub fn folder(o: &GspoOrchestrator, epoch: u64) -> PathBuf {
    o.folder.join("epochs").join(format!("epoch-{epoch:04}"))
}

/// Whether the folder of `epoch` was written (it is renamed into place whole; its estimate,
/// when the job has one, is written right after).
pub fn is_written(o: &GspoOrchestrator, epoch: u64) -> bool {
    let dir = folder(o, epoch);
    let needs_estimate = o
        .job
        .validation
        .as_ref()
        .is_some_and(|v| v.model_params.is_some());
    dir.join("nodes.json").exists() && (!needs_estimate || dir.join("estimate.json").exists())
}

/// Writes the epoch folder from the log (objects from the store); returns its path.
pub fn write(o: &GspoOrchestrator, epoch: u64) -> Result<PathBuf, OrchError> {
    let dir = folder(o, epoch);
    let staging = dir.with_extension("partial");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    for sub in ["deltas", "eval", "ring"] {
        let p = staging.join(sub);
        std::fs::create_dir_all(&p).map_err(io(&p))?;
    }
    let nodes: Vec<serde_json::Value> = o
        .job
        .roster
        .iter()
        .map(|r| {
            let role = match r.role {
                JobRole::Trainer => "compute",
                JobRole::Validator => "validator",
            };
            json!({"node": r.id, "role": role, "stake": r.stake.to_string()})
        })
        .chain(o.job.validation.iter().map(|v| {
            json!({"node": o.public().worker_id(), "role": "orchestrator",
                   "stake": v.orchestrator_stake.to_string()})
        }))
        .collect();
    let nodes = json!({"epoch": epoch, "nodes": nodes});
    let p = staging.join("nodes.json");
    std::fs::write(&p, serde_json::to_vec_pretty(&nodes).expect("json")).map_err(io(&p))?;
    let per = o.job.rounds_per_epoch;
    let mut forward = String::new();
    // (validator, round) → the time of its first verdict in the round
    let mut judged: std::collections::BTreeMap<(String, u64), u64> = Default::default();
    for e in o.store().entries()? {
        match &e.decision {
            Decision::Result {
                round,
                receipt: Some(r),
                ..
            } if round / per == epoch => {
                forward.push_str(&serde_json::to_string(r).expect("json"));
                forward.push('\n');
            }
            Decision::Reported {
                round,
                worker,
                object,
                ..
            } if round / per == epoch => {
                let bytes = o.store().get_object(object)?.ok_or_else(|| {
                    OrchError::Object(format!("delta {object} is missing from the store"))
                })?;
                let p = staging
                    .join("deltas")
                    .join(format!("{worker}-r{round:06}.delta"));
                std::fs::write(&p, bytes).map_err(io(&p))?;
            }
            Decision::Verdict {
                round,
                validator,
                subject,
                report,
                ..
            } if round / per == epoch => {
                judged.entry((validator.clone(), *round)).or_insert(e.at_ms);
                let p = staging
                    .join("eval")
                    .join(format!("{validator}-r{round:06}-{subject}.json"));
                std::fs::write(&p, report).map_err(io(&p))?;
            }
            _ => {}
        }
    }
    let p = staging.join("ring").join("forward.jsonl");
    std::fs::write(&p, forward).map_err(io(&p))?;
    let p = staging.join("ring").join("checkpoint.jsonl");
    std::fs::write(&p, checkpoint_receipts(o, epoch, &judged)).map_err(io(&p))?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
    }
    std::fs::rename(&staging, &dir).map_err(io(&dir))?;
    Ok(dir)
}

/// The orchestrator's `checkpoint` receipts: one per validator and round it judged, dated by
/// its first verdict of the round (so a rewritten folder holds the same records).
fn checkpoint_receipts(
    o: &GspoOrchestrator,
    epoch: u64,
    judged: &std::collections::BTreeMap<(String, u64), u64>,
) -> String {
    let mut out = String::new();
    for ((validator, round), at_ms) in judged {
        let mut r = RingReceipt::new(epoch, *round, RingKind::Checkpoint, validator.clone());
        if let Some(t) = timefmt::format_unix((at_ms / 1000) as i64) {
            r.issued = t;
        }
        r.sign(&o.key);
        out.push_str(&serde_json::to_string(&r).expect("json"));
        out.push('\n');
    }
    out
}

/// Runs the reward estimate on an epoch folder and writes it, signed by the orchestrator, as
/// `estimate.json`; returns the record. The economics are the defaults with the job's token
/// assignment as `[caps] tokens_per_delta`, written as `economics.toml` beside it (so that
/// `gym reward estimate DIR --model-params P --economics DIR/economics.toml` gives the same).
pub fn estimate_folder(
    o: &GspoOrchestrator,
    dir: &Path,
    epoch: u64,
    model_params: u64,
) -> Result<serde_json::Value, OrchError> {
    let bad = |e: crate::core::reward::RewardError| OrchError::Object(e.to_string());
    let mut econ = Economics::default();
    econ.caps.tokens_per_delta = o.job.validation.as_ref().and_then(|v| v.max_tokens);
    let p = dir.join("economics.toml");
    std::fs::write(&p, econ.to_toml()).map_err(io(&p))?;
    let params = econ.params(&p.display().to_string()).map_err(bad)?;
    let opts = EpochOptions {
        epoch: Some(epoch),
        model_params: u128::from(model_params),
    };
    let inputs = epoch::load(dir, &params, &opts).map_err(bad)?;
    let est = estimate(&params, epoch, &inputs.nodes).map_err(bad)?;
    let nodes: Vec<serde_json::Value> = est
        .nodes
        .iter()
        .map(|n| {
            json!({"node": n.node, "eligible": n.eligible, "reasons": n.reasons,
                   "reward_base_units": n.reward.to_string()})
        })
        .collect();
    let body = json!({
        "format": ESTIMATE_FORMAT,
        "job_id": o.job.job_id,
        "epoch": epoch,
        "model_params": model_params,
        "nodes": nodes,
        "rejected": inputs.rejected.iter().map(|r| json!({"file": r.file, "reason": r.reason})).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string(&body).expect("json");
    let digest = crate::core::hash::sha3_256(&[ESTIMATE_DOMAIN, text.as_bytes()].concat());
    let sig = o.sign_digest(&digest);
    let record = json!({"estimate": body, "signature": sig,
                        "signer": o.public().worker_id()});
    let p = dir.join("estimate.json");
    std::fs::write(&p, serde_json::to_vec_pretty(&record).expect("json")).map_err(io(&p))?;
    Ok(record)
}
