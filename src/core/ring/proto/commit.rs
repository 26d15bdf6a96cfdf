//! The commit phase: every member publishes its weight, exponent, layout, input digest and
//! the hash of its nonce; from all commits every member derives the same scale.

use std::collections::BTreeMap;

use super::reduce::Reduction;
use super::{Machine, Out, Refused, RingError, State, nonce_hash};
use crate::core::ring::config::InputBounds;
use crate::core::ring::fixed;
use crate::core::ring::wire::{Body, Commit, Signed};

impl Machine {
    /// Starts the current view: broadcasts our commit, then handles what came early for it.
    pub(super) fn begin_view(&mut self, out: &mut Vec<Out>) {
        let view = &mut self.view;
        view.pos = view.pos_of(self.member.index).expect("in view");
        view.nonce = self.member.nonce(view.number);
        self.transcript = Default::default();
        self.state = State::Commit { early: Vec::new() };
        let input = &self.member.input;
        let commit = Commit {
            weight: input.weight,
            exponent: self.member.exponent,
            layout: input.layout,
            input: input.input_digest,
            nonce_hash: nonce_hash(&self.view.nonce),
            members: self.view.digest(),
            timestamp: input.timestamp.clone(),
        };
        let m = self.broadcast(Body::Commit(commit), out);
        self.transcript.commits.insert(self.member.index, m);
        // Messages for this view that arrived early.
        for p in std::mem::take(&mut self.future) {
            if p.msg.view == self.view.number {
                let _ = self.accept(p, out);
            } else if p.msg.view > self.view.number {
                self.future.push(p);
            }
        }
        self.after_commit(out);
    }

    pub(super) fn on_commit(
        &mut self,
        from: usize,
        m: Signed,
        out: &mut Vec<Out>,
    ) -> Result<(), Refused> {
        let Body::Commit(c) = &m.body else {
            unreachable!("a commit")
        };
        if self.transcript.commits.contains_key(&from) {
            return Err(self.replay(from, "commit"));
        }
        if c.members != self.view.digest() {
            return Err(self.unexpected(from, "commit for another member list".into()));
        }
        if c.weight < 1 || c.weight > fixed::MAX_WEIGHT {
            return Err(self.unexpected(from, format!("weight {}", c.weight)));
        }
        self.transcript.commits.insert(from, m);
        self.after_commit(out);
        Ok(())
    }

    /// With every commit in: agree on the scale, send our scatter step 0, handle early data.
    fn after_commit(&mut self, out: &mut Vec<Out>) {
        if !matches!(self.state, State::Commit { .. })
            || self.transcript.commits.len() < self.view.n()
        {
            return;
        }
        let (convicted, evidence) = self.out_of_bounds();
        if !convicted.is_empty() {
            self.enter_view_change(convicted, evidence, out);
            self.maybe_decide_view(out);
            return;
        }
        let State::Commit { early } = std::mem::replace(&mut self.state, State::Finished) else {
            unreachable!("checked above")
        };
        let scale = match self.agreed_scale() {
            Ok(s) => s,
            Err(e) => return self.finish(Err(e)),
        };
        let total_weight = self
            .transcript
            .commits
            .keys()
            .map(|&j| self.transcript.commit(j).weight as u128)
            .sum();
        let buffers = std::mem::take(&mut self.spare);
        let mut red = Reduction::new(&self.member, &self.view, scale, total_weight, buffers);
        red.send_own_segment(&self.member, &self.view, &self.faults, out);
        self.state = State::Reduce(red);
        for p in early {
            let _ = self.reduce(p, out);
        }
        self.after_data(out);
    }

    /// The members whose commit exceeds the ring's input bounds, with the reason, and their
    /// signed commits (the evidence): so that one member cannot sink the scale of everybody.
    fn out_of_bounds(&self) -> (BTreeMap<usize, String>, Vec<Signed>) {
        let mut convicted = BTreeMap::new();
        let mut evidence = Vec::new();
        for (&j, m) in &self.transcript.commits {
            if let Some(reason) =
                bound_violation(&self.member.ring.bounds, self.transcript.commit(j))
            {
                convicted.insert(j, reason);
                evidence.push(m.clone());
            }
        }
        (convicted, evidence)
    }

    /// The members convicted by the signed commits in a view change's `evidence`: commits of
    /// this view, signed by a member of it, above the ring's bounds. Anything else proves
    /// nothing.
    pub(super) fn convictions_in(&self, evidence: &[Signed]) -> BTreeMap<usize, String> {
        let mut convicted = BTreeMap::new();
        for e in evidence {
            let Body::Commit(c) = &e.body else { continue };
            let sender = e.sender as usize;
            let Some(member) = self.member.ring.members.get(sender) else {
                continue;
            };
            if e.view != self.view.number
                || self.view.pos_of(sender).is_none()
                || c.members != self.view.digest()
                || !e.verify(&self.member.rd, &member.public)
            {
                continue;
            }
            if let Some(reason) = bound_violation(&self.member.ring.bounds, c) {
                convicted.insert(sender, reason);
            }
        }
        convicted
    }

    /// The scale every member derives from the committed exponents and weights, once every
    /// member's layout matches ours.
    fn agreed_scale(&self) -> Result<u32, RingError> {
        let mut weights = Vec::new();
        let mut exponents = Vec::new();
        let mut differ = Vec::new();
        for &j in self.transcript.commits.keys() {
            let c = self.transcript.commit(j);
            weights.push(c.weight);
            exponents.push(c.exponent);
            if c.layout != self.member.input.layout {
                differ.push(j);
            }
        }
        if !differ.is_empty() {
            return Err(RingError::Layout {
                view: self.view.number,
                members: differ,
            });
        }
        // A hierarchical round fixes the scale for every ring in it; the ring file's bounds
        // (enforced above by conviction) guarantee that this ring's sum fits at it.
        if let Some(f) = self.member.ring.hier.scale_bits {
            return Ok(f);
        }
        Ok(fixed::scale_bits(&exponents, &weights)?)
    }
}

/// Why a commit exceeds the ring's input bounds, if it does.
fn bound_violation(bounds: &InputBounds, c: &Commit) -> Option<String> {
    if c.weight > bounds.max_weight {
        return Some(format!(
            "committed weight {} above the ring's max_weight {}",
            c.weight, bounds.max_weight
        ));
    }
    if c.exponent > bounds.max_exponent {
        return Some(format!(
            "committed input exponent {} (|x| < 2^{}) above the ring's max_exponent {}",
            c.exponent, c.exponent, bounds.max_exponent
        ));
    }
    None
}
