//! View changes: on a timeout, a lost connection, a view-change message or a conviction, every
//! member broadcasts a view change; once every member not known dead or convicted has
//! answered (or on the next timeout), the next view keeps those who answered.

use std::collections::BTreeMap;

use super::{Exclusion, Machine, Out, Refused, RingError, State};
use crate::core::ring::wire::{Body, Signed};

/// The view-change state: the members the verdicts convicted, with the reason.
pub(super) struct ChangingView {
    convicted: BTreeMap<usize, String>,
}

impl Machine {
    pub(super) fn on_view_change(
        &mut self,
        from: usize,
        m: Signed,
        out: &mut Vec<Out>,
    ) -> Result<(), Refused> {
        if self.transcript.view_changes.contains_key(&from) {
            return Err(self.replay(from, "view change"));
        }
        let Body::ViewChange { evidence } = &m.body else {
            unreachable!("a view change")
        };
        let convicted = self.convictions_in(evidence);
        let evidence = evidence.clone();
        self.transcript.view_changes.insert(from, m);
        match &mut self.state {
            State::ViewChange(c) => {
                for (member, reason) in convicted {
                    c.convicted.entry(member).or_insert(reason);
                }
            }
            _ if convicted.is_empty() => self.enter_view_change(BTreeMap::new(), Vec::new(), out),
            // Pass the proof on with our own view change.
            _ => self.enter_view_change(convicted, evidence, out),
        }
        self.maybe_decide_view(out);
        Ok(())
    }

    /// Abandons the round of this view (keeping its vectors for the next), with the members
    /// convicted so far and the signed messages that convict them (sent with our view change).
    pub(super) fn enter_view_change(
        &mut self,
        convicted: BTreeMap<usize, String>,
        evidence: Vec<Signed>,
        out: &mut Vec<Out>,
    ) {
        if matches!(self.state, State::ViewChange(_) | State::Finished) {
            return;
        }
        let old = std::mem::replace(
            &mut self.state,
            State::ViewChange(ChangingView { convicted }),
        );
        if let Some(buffers) = old.into_buffers() {
            self.spare = buffers;
        }
        let m = self.broadcast(Body::ViewChange { evidence }, out);
        self.transcript.view_changes.insert(self.member.index, m);
    }

    /// Decides the next view once every member not known dead has answered.
    pub(super) fn maybe_decide_view(&mut self, out: &mut Vec<Out>) {
        let State::ViewChange(c) = &self.state else {
            return;
        };
        let waiting = self.view.members.iter().any(|m| {
            !self.transcript.view_changes.contains_key(m)
                && !self.dead.contains(m)
                && !c.convicted.contains_key(m)
        });
        if !waiting {
            self.decide_view(out);
        }
    }

    pub(super) fn decide_view(&mut self, out: &mut Vec<Out>) {
        let State::ViewChange(c) = std::mem::replace(&mut self.state, State::Finished) else {
            unreachable!("only in a view change")
        };
        let old = self.view.number;
        let me = self.member.index;
        let mut next = Vec::new();
        for &m in &self.view.members {
            let reason = if let Some(reason) = c.convicted.get(&m) {
                reason.clone()
            } else if m == me || self.transcript.view_changes.contains_key(&m) {
                next.push(m);
                continue;
            } else if self.dead.contains(&m) {
                "connection lost".into()
            } else {
                "did not answer in time".into()
            };
            self.excluded.push(Exclusion {
                member: m,
                view: old,
                reason,
            });
        }
        let next_view = old + 1;
        if !next.contains(&me) {
            return self.finish(Err(RingError::Excluded { view: next_view }));
        }
        if next.len() < 2 {
            return self.finish(Err(RingError::TooFew {
                view: next_view,
                members: next.len(),
            }));
        }
        if next_view > self.max_views {
            return self.finish(Err(RingError::TooManyViews { views: next_view }));
        }
        self.view.number = next_view;
        self.view.members = next;
        self.begin_view(out);
    }
}
