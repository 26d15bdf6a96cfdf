//! The verdict phase: every member signs `ok` with the result digest (its receipt), or its
//! evidence. All `ok` on one digest is the outcome; otherwise the members proven to have
//! cheated — a corrupted partial sum, a false accusation, a receipt for another result — are
//! convicted and the view changes without them.

use std::collections::{BTreeMap, BTreeSet};

use super::reduce::Reduction;
use super::sketch::BadMessage;
use super::{Machine, Out, Outcome, Refused, State};
use crate::core::ring::wire::{Body, Signed};

/// The verdict phase's state: the reduction and what this member concluded from it.
pub(super) struct Judging {
    pub(super) red: Reduction,
    pub(super) seed: [u8; 32],
    /// `D(S)` of the reduced vector.
    pub(super) sum_digest: [u8; 32],
    pub(super) result_digest: [u8; 32],
    /// Our own verdict: no evidence against anybody.
    pub(super) ok: bool,
}

impl Machine {
    pub(super) fn on_verdict(
        &mut self,
        from: usize,
        m: Signed,
        out: &mut Vec<Out>,
    ) -> Result<(), Refused> {
        if self.transcript.verdicts.contains_key(&from) {
            return Err(self.replay(from, "verdict"));
        }
        self.transcript.verdicts.insert(from, m);
        self.after_verdict(out);
        Ok(())
    }

    /// With every verdict in: finish, or change the view without the convicted members.
    pub(super) fn after_verdict(&mut self, out: &mut Vec<Out>) {
        if !matches!(self.state, State::Verdict(_))
            || self.transcript.verdicts.len() < self.view.n()
        {
            return;
        }
        let (all_ok, culprits) = self.judge();
        if all_ok && culprits.is_empty() {
            let State::Verdict(j) = std::mem::replace(&mut self.state, State::Finished) else {
                unreachable!("checked above")
            };
            let outcome = self.outcome_of(j);
            self.finish(Ok(outcome));
            return;
        }
        self.enter_view_change(culprits, Vec::new(), out);
        self.maybe_decide_view(out);
    }

    /// Whether every verdict was `ok`, and the members the verdicts convict, with the reason.
    fn judge(&self) -> (bool, BTreeMap<usize, String>) {
        let State::Verdict(judging) = &self.state else {
            unreachable!("verdict phase")
        };
        let check = self.check().expect("verdict phase");
        let n = self.view.n();
        let mut all_bad: BTreeSet<BadMessage> = BTreeSet::new();
        let mut culprits: BTreeMap<usize, String> = BTreeMap::new();
        let mut all_ok = true;
        for (&j, v) in &self.transcript.verdicts {
            let Body::Verdict {
                ok,
                result,
                evidence,
            } = &v.body
            else {
                continue;
            };
            if *ok {
                if judging.ok && *result != judging.result_digest {
                    culprits.insert(j, "signed a receipt for a different result".into());
                }
                continue;
            }
            all_ok = false;
            let proof = check.proven(evidence);
            if proof.bad.is_empty() || !proof.all_valid {
                culprits.insert(j, "accused a member without valid evidence".into());
            }
            all_bad.extend(proof.bad);
        }
        // A bad message made from a bad message of its sender's predecessor is not its
        // sender's fault: the first bad message of a chain names the cheater.
        for bad in &all_bad {
            let exonerated = bad.source(n).is_some_and(|s| all_bad.contains(&s));
            if !exonerated {
                culprits.insert(
                    self.view.members[bad.position],
                    format!(
                        "signed a corrupted partial sum ({} step {}, segment {})",
                        bad.phase.name(),
                        bad.step,
                        bad.segment
                    ),
                );
            }
        }
        (all_ok, culprits)
    }

    /// The agreed result, from the transcript of the view and our reduction.
    fn outcome_of(&self, j: Judging) -> Outcome {
        let t = &self.transcript;
        let members = self.view.members.clone();
        Outcome {
            view: self.view.number,
            weights: members.iter().map(|&m| t.commit(m).weight).collect(),
            input_digests: members.iter().map(|&m| t.commit(m).input).collect(),
            timestamps: members
                .iter()
                .map(|&m| t.commit(m).timestamp.clone())
                .collect(),
            scale: j.red.scale,
            total_weight: j.red.total_weight,
            sum: j.red.result,
            sum_digest: j.sum_digest,
            result_digest: j.result_digest,
            seed: j.seed,
            receipts: members.iter().map(|m| t.verdicts[m].clone()).collect(),
            commits: members.iter().map(|m| t.commits[m].clone()).collect(),
            nonces: members.iter().map(|m| t.reveals[m]).collect(),
            sketches: members.iter().map(|m| t.sketches[m].msg.clone()).collect(),
            excluded: self.excluded.clone(),
            members,
        }
    }
}
