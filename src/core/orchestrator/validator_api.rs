//! The validators' side of the API (docs/orchestrator.md, "Validators"): what a validator sees
//! (`POST /v1/validator`), how its signed verdict is checked before the round machine sees it
//! (`POST /v1/verdict`), and the binding of a ring result to the admitted deltas.

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::machine::{Phase, VerdictInput};
use super::server::ApiError;
use super::{GspoOrchestrator, OrchError};
use crate::core::delta::{self, VerifyOptions, VerifyReport};
use crate::core::keys::PublicIdentity;
use crate::core::reward::records::{EvalReport, Verdict};

/// A delta awaiting this validator's verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeltaToJudge {
    pub worker: String,
    /// Content address (`GET /v1/objects/<object>`).
    pub object: String,
}

/// What `POST /v1/validator` tells a validator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidatorView {
    pub phase: String,
    pub round: u64,
    pub epoch: u64,
    /// The round's starting point (content address; None: the base model).
    pub base: Option<String>,
    /// Every delta of the round being judged (admission not decided yet), this validator's
    /// judged ones included: the leave-one-out loss needs all of them.
    pub deltas: Vec<DeltaToJudge>,
    /// Workers whose delta this validator has already judged this round.
    pub judged: Vec<String>,
    pub finished: bool,
}

/// `POST /v1/verdict`: the signed report on the delta at `object`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerdictBody {
    pub round: u64,
    pub object: String,
    pub report: EvalReport,
}

pub fn view(o: &GspoOrchestrator, id: &str) -> ValidatorView {
    let m = o.machine();
    let mut v = ValidatorView {
        phase: m.phase.name().into(),
        round: 0,
        epoch: 0,
        base: m.aggregate().map(str::to_string),
        deltas: Vec::new(),
        judged: Vec::new(),
        // over only once every checkpoint is published: a worker that exits can find it
        finished: matches!(m.phase, Phase::Finished(_)) && m.all_published(),
    };
    v.round = match &m.phase {
        Phase::Waiting(w) => w.round,
        Phase::Training(t) => t.round,
        Phase::Ring(r) => r.round,
        Phase::Finished(_) => m.rules.total_rounds(),
        Phase::Validating(x) => {
            v.base = x.base.clone();
            if x.admitted.is_none() {
                v.deltas = x
                    .reports
                    .iter()
                    .map(|(w, r)| DeltaToJudge {
                        worker: w.clone(),
                        object: r.object.clone(),
                    })
                    .collect();
                v.judged = x
                    .reports
                    .keys()
                    .filter(|w| x.judged(w, id))
                    .cloned()
                    .collect();
            }
            x.round
        }
    };
    v.epoch = v.round / m.rules.rounds_per_epoch;
    v
}

fn unprocessable(kind: &'static str, m: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, kind, m)
}

/// A stored delta, verified (signature not required: ring results carry none).
fn stored_delta(o: &GspoOrchestrator, object: &str) -> Result<VerifyReport, ApiError> {
    let bytes = o
        .store()
        .get_object(object)
        .map_err(OrchError::from)?
        .ok_or_else(|| unprocessable("no_object", format!("no object {object}")))?;
    delta::read_bytes(&bytes, &VerifyOptions::default())
        .map_err(|e| unprocessable("bad_delta", format!("object {object}: {e}")))
}

/// Checks a verdict's signature (by the requesting validator), and that it judges the delta
/// at `object` (its body digest) and that delta's signer.
pub fn check_verdict(
    o: &GspoOrchestrator,
    who: &PublicIdentity,
    id: &str,
    b: &VerdictBody,
) -> Result<VerdictInput, ApiError> {
    let bad = |m: String| unprocessable("bad_report", m);
    let signer = b
        .report
        .verify("POST /v1/verdict", "report")
        .map_err(|e| bad(e.to_string()))?;
    if signer.ed25519 != who.ed25519 {
        return Err(bad(
            "the report is not signed by the requesting validator".into()
        ));
    }
    let d = stored_delta(o, &b.object)?;
    if d.digest_hex() != b.report.delta {
        return Err(bad(format!(
            "the report judges delta {}, the body digest of object {} is {}",
            b.report.delta,
            b.object,
            d.digest_hex()
        )));
    }
    let delta_signer = d.signer.as_ref().map(|s| s.worker_id()).unwrap_or_default();
    if delta_signer != b.report.subject {
        return Err(bad(format!(
            "the report's subject {} is not the delta's signer {delta_signer}",
            b.report.subject
        )));
    }
    Ok(VerdictInput {
        validator: id.to_string(),
        round: b.round,
        epoch: b.report.epoch,
        subject: b.report.subject.clone(),
        object: b.object.clone(),
        pass: b.report.verdict == Verdict::Pass,
        report: serde_json::to_string(&b.report).expect("a report serialises"),
        reason: b.report.reason.clone().unwrap_or_default(),
    })
}

/// Validated jobs: a ring result counts only when its ring record shows, for every member that
/// contributed, the admitted delta's body digest as its input and the admitted weight.
pub fn check_result_binding(o: &GspoOrchestrator, object: &str) -> Result<(), ApiError> {
    if o.job.validation.is_none() {
        return Ok(());
    }
    let Phase::Ring(r) = &o.machine().phase else {
        return Ok(()); // the machine refuses it as out of phase
    };
    let result = stored_delta(o, object)?;
    let members = result
        .delta
        .metadata
        .extra
        .as_ref()
        .and_then(|e| e.get("ring"))
        .and_then(|x| x["members"].as_array().cloned())
        .ok_or_else(|| {
            unprocessable(
                "unbound_input",
                format!("result {object} carries no ring record"),
            )
        })?;
    for m in &members {
        let id = m["id"].as_str().unwrap_or_default();
        let unbound = |why: String| {
            unprocessable(
                "unbound_input",
                format!("result {object}: member {id}: {why}"),
            )
        };
        let admitted = r
            .reports
            .get(id)
            .ok_or_else(|| unbound("its delta was not admitted".into()))?;
        let digest = stored_delta(o, &admitted.object)?.digest_hex();
        if m["input_digest"].as_str() != Some(digest.as_str()) {
            return Err(unbound(format!(
                "ring input {} is not the admitted delta {digest}",
                m["input_digest"].as_str().unwrap_or("(absent)")
            )));
        }
        if m["weight"].as_u64() != Some(admitted.weight) {
            return Err(unbound(format!(
                "weight {} is not the admitted weight {}",
                m["weight"], admitted.weight
            )));
        }
    }
    Ok(())
}
