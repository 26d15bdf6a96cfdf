//! The sketch phase: every member publishes `σ_g(c)` of its contribution for every segment;
//! the sum of the contributors' sketches must equal the sketch of each partial sum received.
//! A mismatch is proven by the signed data messages themselves (the evidence).

use std::collections::{BTreeMap, BTreeSet};

use super::reduce::{DataKey, DataPhase, Reduction};
use super::verdict::Judging;
use super::{Machine, Member, Out, Refused, SketchMsg, State, View, result_digest_of};
use crate::core::ring::sketch;
use crate::core::ring::wire::{self, Body, Signed};

/// The sketch phase's state: the reduction and the agreed seed.
pub(super) struct Sketching {
    pub(super) red: Reduction,
    pub(super) seed: [u8; 32],
}

/// A data message that evidence proves bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct BadMessage {
    /// The sender's position in the view.
    pub(super) position: usize,
    pub(super) phase: DataPhase,
    pub(super) step: u16,
    pub(super) segment: u16,
}

impl BadMessage {
    /// The message of the sender's predecessor this one was made from (`None` for a scatter
    /// step 0, made from the sender's input alone).
    pub(super) fn source(&self, n: usize) -> Option<BadMessage> {
        let (phase, step) = match (self.phase, self.step) {
            (DataPhase::Scatter, 0) => return None,
            (DataPhase::Scatter, s) => (DataPhase::Scatter, s - 1),
            (DataPhase::Gather, 0) => (DataPhase::Scatter, (n - 2) as u16),
            (DataPhase::Gather, s) => (DataPhase::Gather, s - 1),
        };
        Some(BadMessage {
            position: (self.position + n - 1) % n,
            phase,
            step,
            ..*self
        })
    }
}

/// What a set of evidence proves: the bad messages, and whether every piece of it was valid
/// (invalid evidence proves nothing).
pub(super) struct Proof {
    pub(super) bad: BTreeSet<BadMessage>,
    pub(super) all_valid: bool,
}

/// The sketch check's view of the round: read-only.
pub(super) struct Check<'a> {
    pub(super) member: &'a Member,
    pub(super) view: &'a View,
    pub(super) red: &'a Reduction,
    pub(super) seed: &'a [u8; 32],
    pub(super) sketches: &'a BTreeMap<usize, SketchMsg>,
}

impl Check<'_> {
    fn point(&self, g: usize) -> u64 {
        sketch::point(self.seed, g as u32)
    }

    /// `σ_g(v[segment g])` for every segment `g` with `want(g)` (0 for the others), segments in
    /// parallel on the rayon pool.
    fn sketch_segments(&self, v: &[i64], want: impl Fn(usize) -> bool + Sync) -> Vec<u64> {
        use rayon::prelude::*;
        let points: Vec<u64> = (0..self.view.n()).map(|g| self.point(g)).collect();
        self.red
            .segs
            .par_iter()
            .enumerate()
            .map(|(g, r)| {
                if want(g) {
                    sketch::sketch(&v[r.clone()], points[g])
                } else {
                    0
                }
            })
            .collect()
    }

    /// `σ_g(c)` of our contribution for every segment, made block by block from the input
    /// (segments in parallel on the rayon pool).
    fn sketch_contribution(&self) -> Vec<u64> {
        use rayon::prelude::*;
        let input = &self.member.input;
        let (values, w, f) = (&input.values, input.weight, self.red.scale);
        let q = self.member.ring.quantize;
        self.red
            .segs
            .par_iter()
            .enumerate()
            .map(|(g, r)| {
                sketch::sketch_blocks(r.len(), self.point(g), 1 << 14, |start, buf| {
                    values.contribution_into(r.start + start, w, f, q, buf)
                })
            })
            .collect()
    }

    /// Positions that contributed to the message sent by position `q` at (phase, step).
    fn contributors(&self, q: usize, phase: DataPhase, step: usize) -> Vec<usize> {
        let n = self.view.n();
        match phase {
            DataPhase::Scatter => (0..=step).map(|j| (q + n - j) % n).collect(),
            DataPhase::Gather => (0..n).collect(),
        }
    }

    fn expected_sketch(&self, g: usize, contributors: &[usize]) -> u64 {
        sketch::sum(
            contributors
                .iter()
                .map(|&q| self.sketches[&self.view.members[q]].values[g]),
        )
    }

    /// Checks every received segment against the sketches; the evidence of each mismatch.
    fn evidence(&self) -> Vec<Signed> {
        let n = self.view.n();
        let p = self.view.pos;
        let q = (p + n - 1) % n;
        let red = self.red;
        let mut evidence = Vec::new();
        // Scatter: every segment but our own; all-gather: every segment but the one we reduced.
        let acc_sk = self.sketch_segments(&red.acc, |g| g != p);
        let result_sk = self.sketch_segments(&red.result, |g| g != (p + 1) % n);
        for g in 0..n {
            if g != p {
                let s = (q + n - g) % n;
                let ok = !red.acc_out_of_range[g]
                    && acc_sk[g]
                        == self.expected_sketch(g, &self.contributors(q, DataPhase::Scatter, s));
                if !ok {
                    evidence.extend(self.evidence_for(DataPhase::Scatter, g, &red.acc));
                }
            }
            if g != (p + 1) % n {
                let ok = !red.result_out_of_range[g]
                    && result_sk[g]
                        == self.expected_sketch(g, &self.contributors(q, DataPhase::Gather, 0));
                if !ok {
                    evidence.extend(self.evidence_for(DataPhase::Gather, g, &red.result));
                }
            }
        }
        evidence
    }

    /// The signed messages (with payload) we received for segment `g` in `phase`.
    fn evidence_for(&self, phase: DataPhase, g: usize, store: &[i64]) -> Vec<Signed> {
        (0..self.red.chunks(g))
            .filter_map(|k| {
                let key = DataKey {
                    phase,
                    segment: g as u16,
                    chunk: k as u32,
                };
                let m = self.red.received.get(&key)?;
                let mut e = m.clone();
                e.payload = store[self.red.chunk_range(g, k)].to_vec();
                Some(e)
            })
            .collect()
    }

    /// The bad messages that `evidence` proves. Invalid evidence proves nothing.
    pub(super) fn proven(&self, evidence: &[Signed]) -> Proof {
        let mut groups: BTreeMap<BadMessage, Vec<&Signed>> = BTreeMap::new();
        let mut all_valid = true;
        for e in evidence {
            match self.placed_evidence(e) {
                Some(key) => groups.entry(key).or_default().push(e),
                None => all_valid = false,
            }
        }
        let mut bad = BTreeSet::new();
        for (key, msgs) in groups {
            if self.group_is_bad(&key, &msgs) {
                bad.insert(key);
            } else {
                all_valid = false;
            }
        }
        Proof { bad, all_valid }
    }

    /// The message a piece of evidence claims to be, if it is a data message its sender
    /// signed in this view, for a spot the sender sends, with a payload of the right length
    /// and digest.
    fn placed_evidence(&self, e: &Signed) -> Option<BadMessage> {
        let n = self.view.n();
        let Body::Data(h) = &e.body else {
            return None;
        };
        let sender = e.sender as usize;
        let q = self.view.pos_of(sender)?;
        let member = self.member.ring.members.get(sender)?;
        let phase = DataPhase::of(h.phase)?;
        let (g, s) = (h.segment as usize, h.step as usize);
        let consistent = e.view == self.view.number
            && s <= n - 2
            && g < n
            && (h.chunk as usize) < self.red.chunks(g)
            && e.payload.len() == self.red.chunk_range(g, h.chunk as usize).len()
            && g == match phase {
                DataPhase::Scatter => (q + n - s) % n,
                DataPhase::Gather => (q + 1 + n - s) % n,
            }
            && wire::payload_digest(&e.payload) == h.digest
            && e.verify(&self.member.rd, &member.public);
        consistent.then_some(BadMessage {
            position: q,
            phase,
            step: h.step,
            segment: h.segment,
        })
    }

    /// Whether the messages of one spot prove it bad: an element out of range, or (all chunks
    /// present) a sketch that is not the contributors' sum.
    fn group_is_bad(&self, key: &BadMessage, msgs: &[&Signed]) -> bool {
        let g = key.segment as usize;
        let mut seg = vec![0i64; self.red.segs[g].len()];
        let mut have = BTreeSet::new();
        let mut range_bad = false;
        for e in msgs {
            let Body::Data(h) = &e.body else { continue };
            let r = self.red.chunk_range(g, h.chunk as usize);
            let off = r.start - self.red.segs[g].start;
            seg[off..off + r.len()].copy_from_slice(&e.payload);
            have.insert(h.chunk);
            range_bad |= crate::core::ring::fixed::out_of_range(&e.payload).is_some();
        }
        let complete = have.len() == self.red.chunks(g);
        let sketch_bad = complete
            && sketch::sketch(&seg, self.point(g))
                != self.expected_sketch(
                    g,
                    &self.contributors(key.position, key.phase, key.step as usize),
                );
        range_bad || sketch_bad
    }
}

impl Machine {
    pub(super) fn check(&self) -> Option<Check<'_>> {
        let (red, seed) = match &self.state {
            State::Sketch(s) => (&s.red, &s.seed),
            State::Verdict(j) => (&j.red, &j.seed),
            _ => return None,
        };
        Some(Check {
            member: &self.member,
            view: &self.view,
            red,
            seed,
            sketches: &self.transcript.sketches,
        })
    }

    /// Entering the sketch phase: broadcast the sketches of our contribution.
    pub(super) fn publish_sketch(&mut self, out: &mut Vec<Out>) {
        let values = self.check().expect("sketch phase").sketch_contribution();
        let msg = self.broadcast(
            Body::Sketch {
                sketches: values.clone(),
            },
            out,
        );
        let me = self.member.index;
        self.transcript
            .sketches
            .insert(me, SketchMsg { values, msg });
        self.after_sketch(out);
    }

    pub(super) fn on_sketch(
        &mut self,
        from: usize,
        m: Signed,
        out: &mut Vec<Out>,
    ) -> Result<(), Refused> {
        let Body::Sketch { sketches } = &m.body else {
            unreachable!("a sketch")
        };
        if self.transcript.sketches.contains_key(&from) {
            return Err(self.replay(from, "sketch"));
        }
        if sketches.len() != self.view.n() || sketches.iter().any(|&s| s >= sketch::P) {
            return Err(self.unexpected(from, "malformed sketch".into()));
        }
        let values = sketches.clone();
        self.transcript
            .sketches
            .insert(from, SketchMsg { values, msg: m });
        self.after_sketch(out);
        Ok(())
    }

    /// With every sketch in: check what we received, and give our verdict on the result.
    fn after_sketch(&mut self, out: &mut Vec<Out>) {
        if !matches!(self.state, State::Sketch(_)) || self.transcript.sketches.len() < self.view.n()
        {
            return;
        }
        let evidence = self.check().expect("sketch phase").evidence();
        let State::Sketch(Sketching { red, seed }) =
            std::mem::replace(&mut self.state, State::Finished)
        else {
            unreachable!("checked above")
        };
        // D(S) from the leaf digests already computed when its chunks were checked or sent,
        // when every chunk starts on a leaf boundary; else from the bytes.
        let leaves: Option<Vec<[u8; 32]>> = red.result_leaves.iter().copied().collect();
        let sum_digest = match leaves {
            Some(l) if !red.result_leaves.is_empty() => {
                self.sum_digest_from_leaves = true;
                wire::digest_of_leaves(red.result.len(), &l)
            }
            _ => {
                self.sum_digest_from_leaves = false;
                wire::payload_digest(&red.result)
            }
        };
        debug_assert_eq!(sum_digest, wire::payload_digest(&red.result));
        let result_digest = result_digest_of(
            &self.member.input.layout,
            red.scale,
            red.total_weight,
            &sum_digest,
        );
        let ok = evidence.is_empty();
        self.state = State::Verdict(Judging {
            red,
            seed,
            sum_digest,
            result_digest,
            ok,
        });
        let m = self.broadcast(
            Body::Verdict {
                ok,
                result: result_digest,
                evidence,
            },
            out,
        );
        self.transcript.verdicts.insert(self.member.index, m);
        self.after_verdict(out);
    }
}
