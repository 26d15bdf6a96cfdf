//! A round judged from files: the deltas, the start point, the validator's model and data.

use std::path::{Path, PathBuf};

use super::{Judgement, Member, ModelLoss, Policy, Start, ValidateError, judge, load_member};
use crate::core::delta::VerifyOptions;
use crate::core::error::{Classify, ErrorClass};
use crate::core::model::Qwen3;
use crate::core::train::data::Example;

/// A delta refused before judging (unreadable, bad checksum or signature, untrusted signer).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Refused {
    pub file: String,
    pub error: String,
    #[serde(skip)]
    pub class: ErrorClass,
}

/// A round read from files: its verified deltas, its start point, the refused files.
pub type Round = (Vec<Member>, Option<Start>, Vec<Refused>);

/// Verifies and reads the round's deltas (refusing the bad ones) and its start point (whose
/// failure is an error: without it nothing can be judged).
pub fn load_round(
    deltas: &[PathBuf],
    start: Option<&Path>,
    verify: &VerifyOptions,
) -> Result<Round, ValidateError> {
    let start = match start {
        Some(p) => Some(Start::from(load_member(p, verify)?)),
        None => None,
    };
    let mut members = Vec::new();
    let mut refused = Vec::new();
    for p in deltas {
        match load_member(p, verify) {
            Ok(m) => members.push(m),
            Err(e) => refused.push(Refused {
                file: p.display().to_string(),
                error: e.to_string(),
                class: e.class(),
            }),
        }
    }
    Ok((members, start, refused))
}

/// Judges `members` on the held-out `data` with `model` (the adapter is attached from the
/// first member). Returns the judgement and the number of loss evaluations.
pub fn judge_with_model(
    model: Qwen3,
    tok: &tokenizers::Tokenizer,
    data: &[Example],
    members: &[Member],
    start: Option<&Start>,
    policy: &Policy,
) -> Result<(Judgement, usize), ValidateError> {
    let Some(first) = members.first() else {
        return Err(ValidateError::Usage("no delta left to judge".into()));
    };
    let mut ml = ModelLoss::for_round(model, tok, data, first)?;
    let j = judge(members, start, policy, &mut |f: &[f32]| ml.loss(f))?;
    Ok((j, ml.evaluations))
}
