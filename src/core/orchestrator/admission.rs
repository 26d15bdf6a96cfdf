//! Admission before aggregation (`[validation]` in the job file), the part of the round machine
//! between the last report and the ring. Without I/O like the rest of it:
//!
//! Training —(every member reported; `Validate`)→ Validating —(verdicts; `Admission`)→ Ring.
//!
//! In Validating the roster's validators fetch each reported delta by its content address and
//! post signed verdicts (`Verdict`). A delta is admitted with `quorum` `pass` verdicts; it is
//! refused once so many validators failed it that the passes can no longer reach the quorum, or
//! when the deadline passes without a quorum. `Admission` names the admitted workers and every
//! refused delta with the reason (the validators' reasons, or "no quorum"); the ring is then
//! formed from the admitted reporters only (fewer than 2: the round is abandoned and trained
//! again). A refused input changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::super::job::JobSpec;
use super::{Decision, Machine, Phase, Refusal, Report, Training};

/// The admission rule of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionRule {
    /// Roster members with `role = "validator"`.
    pub validators: BTreeSet<String>,
    /// `pass` verdicts needed to admit a delta.
    pub quorum: usize,
    /// From `Validate` to the admission decision.
    pub validate_ms: u64,
}

impl AdmissionRule {
    pub fn from_job(job: &JobSpec) -> Option<Self> {
        let v = job.validation.as_ref()?;
        Some(AdmissionRule {
            validators: job.validators().into_iter().collect(),
            quorum: v.quorum,
            validate_ms: (v.timeout * 1000.0).round() as u64,
        })
    }

    /// `fail` verdicts that refuse a delta: the passes can no longer reach the quorum.
    pub fn refusing(&self) -> usize {
        self.validators.len() + 1 - self.quorum
    }
}

/// A refused delta, as the log names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefusedDelta {
    pub worker: String,
    pub object: String,
    pub reason: String,
}

/// A validator's verdict, after the driver checked its signature, signer and delta digest.
#[derive(Debug, Clone, PartialEq)]
pub struct VerdictInput {
    pub validator: String,
    pub round: u64,
    /// `epoch` of the signed report.
    pub epoch: u64,
    pub subject: String,
    /// Content address of the delta judged.
    pub object: String,
    pub pass: bool,
    /// The signed `gym-eval-report/1` (JSON), kept in the log.
    pub report: String,
    /// Its `reason` (empty for `pass`).
    pub reason: String,
}

/// One validator's verdict on one delta.
#[derive(Debug, Clone, PartialEq)]
pub struct Vote {
    pub pass: bool,
    pub reason: String,
}

/// The validators judge the round's reported deltas.
#[derive(Debug, Clone, PartialEq)]
pub struct Validating {
    pub round: u64,
    pub base: Option<String>,
    /// The reports being judged (after `Admission`: the admitted ones only).
    pub reports: BTreeMap<String, Report>,
    /// Subject → validator → vote.
    pub votes: BTreeMap<String, BTreeMap<String, Vote>>,
    pub deadline: u64,
    /// Set by `Admission`.
    pub admitted: Option<BTreeSet<String>>,
}

impl Validating {
    /// (passes, fails) for a subject.
    pub fn counts(&self, subject: &str) -> (usize, usize) {
        let votes = self.votes.get(subject);
        let pass = votes.map_or(0, |m| m.values().filter(|v| v.pass).count());
        let fail = votes.map_or(0, |m| m.values().filter(|v| !v.pass).count());
        (pass, fail)
    }

    /// Whether `validator` already judged `subject`.
    pub fn judged(&self, subject: &str, validator: &str) -> bool {
        self.votes
            .get(subject)
            .is_some_and(|m| m.contains_key(validator))
    }
}

impl Machine {
    pub fn is_validator(&self, id: &str) -> bool {
        self.rules
            .validation
            .as_ref()
            .is_some_and(|v| v.validators.contains(id))
    }

    fn validating(&self, round: u64) -> Result<&Validating, Refusal> {
        match &self.phase {
            Phase::Validating(v) if v.round == round && v.admitted.is_none() => Ok(v),
            _ => Err(self.wrong_round(round, "validating")),
        }
    }

    pub(super) fn decide_verdict(&self, x: VerdictInput) -> Result<Option<Decision>, Refusal> {
        if !self.rules.roster.contains(&x.validator) {
            return Err(Refusal::NotOnRoster(x.validator));
        }
        if !self.is_validator(&x.validator) {
            return Err(Refusal::Invalid(format!(
                "{} is not a validator of the job (role = \"validator\" with a [validation] rule)",
                x.validator
            )));
        }
        let v = self.validating(x.round)?;
        if x.subject == x.validator {
            return Err(Refusal::Invalid(
                "a validator never reports on itself".into(),
            ));
        }
        let epoch = x.round / self.rules.rounds_per_epoch;
        if x.epoch != epoch {
            return Err(Refusal::Invalid(format!(
                "the report is for epoch {}, round {} is in epoch {epoch}",
                x.epoch, x.round
            )));
        }
        let Some(r) = v.reports.get(&x.subject) else {
            return Err(Refusal::Invalid(format!(
                "{} reported no delta in round {}",
                x.subject, x.round
            )));
        };
        if r.object != x.object {
            return Err(Refusal::Invalid(format!(
                "the report judges {}, but {}'s delta of round {} is {}",
                x.object, x.subject, x.round, r.object
            )));
        }
        if v.judged(&x.subject, &x.validator) {
            return Err(Refusal::Duplicate {
                worker: x.validator,
                round: x.round,
            });
        }
        Ok(Some(Decision::Verdict {
            round: x.round,
            validator: x.validator,
            subject: x.subject,
            object: x.object,
            pass: x.pass,
            report: x.report,
        }))
    }

    /// In Training: where the machine would form the ring, validation comes first.
    pub(super) fn after_training(&self, t: &Training, now: u64) -> Option<Decision> {
        match self.next_training(t, now) {
            Some(Decision::Topology { round, .. }) if self.rules.validation.is_some() => {
                Some(Decision::Validate { round })
            }
            d => d,
        }
    }

    pub(super) fn next_validating(&self, v: &Validating, now: u64) -> Option<Decision> {
        if let Some(admitted) = &v.admitted {
            if admitted.len() < 2 {
                return Some(Decision::Abandon {
                    round: v.round,
                    reason: format!("{} delta(s) admitted, a ring needs 2", admitted.len()),
                });
            }
            // the ring of the admitted reporters, formed as after training
            let t = Training {
                round: v.round,
                base: v.base.clone(),
                members: admitted.clone(),
                reports: v.reports.clone(),
                deadline: 0,
            };
            return self.next_training(&t, now);
        }
        let rule = self.rules.validation.as_ref()?;
        let decided = |w: &str| {
            let (p, f) = v.counts(w);
            p >= rule.quorum || f >= rule.refusing()
        };
        if now < v.deadline && !v.reports.keys().all(|w| decided(w)) {
            return None;
        }
        let mut admitted = Vec::new();
        let mut refused = Vec::new();
        for (w, r) in &v.reports {
            let (p, f) = v.counts(w);
            if p >= rule.quorum && self.workers.contains_key(w) {
                admitted.push(w.clone());
                continue;
            }
            let reason = if p >= rule.quorum {
                "evicted before admission".to_string()
            } else if f >= rule.refusing() {
                let why: Vec<String> = v.votes[w]
                    .iter()
                    .filter(|(_, x)| !x.pass)
                    .map(|(val, x)| format!("{val}: {}", x.reason))
                    .collect();
                format!(
                    "failed by {f} of {} validators: {}",
                    rule.validators.len(),
                    why.join(" | ")
                )
            } else {
                format!(
                    "{p} pass verdict(s) by the deadline, the quorum is {}",
                    rule.quorum
                )
            };
            refused.push(RefusedDelta {
                worker: w.clone(),
                object: r.object.clone(),
                reason,
            });
        }
        Some(Decision::Admission {
            round: v.round,
            admitted,
            refused,
        })
    }

    /// The reports of the phase that forms the ring (Training, or Validating after admission).
    pub(super) fn take_reports(&mut self) -> Option<(Option<String>, BTreeMap<String, Report>)> {
        match &mut self.phase {
            Phase::Training(t) => Some((t.base.clone(), std::mem::take(&mut t.reports))),
            Phase::Validating(v) => Some((v.base.clone(), std::mem::take(&mut v.reports))),
            _ => None,
        }
    }

    pub(super) fn apply_validation(&mut self, d: &Decision, at: u64) {
        match d {
            Decision::Validate { round } => {
                let Some((base, mut reports)) = self.take_reports() else {
                    return;
                };
                reports.retain(|w, _| self.workers.contains_key(w));
                let ms = self.rules.validation.as_ref().map_or(0, |r| r.validate_ms);
                self.phase = Phase::Validating(Validating {
                    round: *round,
                    base,
                    reports,
                    votes: BTreeMap::new(),
                    deadline: at + ms,
                    admitted: None,
                });
            }
            Decision::Verdict {
                validator,
                subject,
                pass,
                report,
                ..
            } => {
                if let Phase::Validating(v) = &mut self.phase {
                    let reason = serde_json::from_str::<serde_json::Value>(report)
                        .ok()
                        .and_then(|j| j["reason"].as_str().map(str::to_string))
                        .unwrap_or_default();
                    v.votes.entry(subject.clone()).or_default().insert(
                        validator.clone(),
                        Vote {
                            pass: *pass,
                            reason,
                        },
                    );
                }
            }
            Decision::Admission { admitted, .. } => {
                if let Phase::Validating(v) = &mut self.phase {
                    let set: BTreeSet<String> = admitted.iter().cloned().collect();
                    v.reports.retain(|w, _| set.contains(w));
                    v.admitted = Some(set);
                }
            }
            _ => {}
        }
    }
}
