//! The data phase: a scatter-reduce, then an all-gather, chunk by chunk around the ring. Each
//! member adds its contribution to what its predecessor sent and forwards the sum; the member
//! that completes a segment starts its all-gather.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use super::faults::{DataSite, Faults};
use super::{Machine, Member, Out, Pending, Refused, State, View, segments};
use crate::core::ring::fixed;
use crate::core::ring::wire::{self, Body, DataHeader, PHASE_GATHER, PHASE_SCATTER, Signed};

/// The two passes of the data phase (a data header's `phase` byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum DataPhase {
    Scatter,
    Gather,
}

impl DataPhase {
    /// The phase a data header names; `None` for a byte that names neither.
    pub(super) fn of(wire: u8) -> Option<Self> {
        match wire {
            PHASE_SCATTER => Some(DataPhase::Scatter),
            PHASE_GATHER => Some(DataPhase::Gather),
            _ => None,
        }
    }

    pub(super) fn wire(self) -> u8 {
        match self {
            DataPhase::Scatter => PHASE_SCATTER,
            DataPhase::Gather => PHASE_GATHER,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            DataPhase::Scatter => "scatter-reduce",
            DataPhase::Gather => "all-gather",
        }
    }
}

/// Which data message: each (phase, segment, chunk) comes once per view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct DataKey {
    pub(super) phase: DataPhase,
    pub(super) segment: u16,
    pub(super) chunk: u32,
}

impl DataKey {
    fn of(h: &DataHeader) -> Option<Self> {
        Some(DataKey {
            phase: DataPhase::of(h.phase)?,
            segment: h.segment,
            chunk: h.chunk,
        })
    }

    fn of_msg(m: &Signed) -> Option<Self> {
        match &m.body {
            Body::Data(h) => DataKey::of(h),
            _ => None,
        }
    }
}

/// Where a data message sits in the data phase.
#[derive(Debug, Clone, Copy)]
struct Spot {
    phase: DataPhase,
    step: usize,
    segment: usize,
    chunk: usize,
}

/// The vectors the data phase writes, kept from view to view.
#[derive(Default)]
pub(super) struct Buffers {
    acc: Vec<i64>,
    result: Vec<i64>,
}

impl Buffers {
    /// Vectors of `len` elements with their pages touched now, while the member waits for its
    /// peers, instead of faulted in one by one during the all-reduce (the kernel's clearing of
    /// fresh pages was its largest single cost on a 2-core VM). Segment `me` of the received
    /// partial sums is never written in view 0: left untouched.
    pub(super) fn prefaulted(len: usize, n: usize, me: usize) -> Self {
        let mut acc = vec![0i64; len];
        let mut result = vec![0i64; len];
        // (black_box: a fill of zeros right after a zeroed allocation could be optimized away.)
        std::hint::black_box((&mut acc, &mut result));
        if n > 0 {
            let own = segments(len, n)[me.min(n - 1)].clone();
            acc[..own.start].fill(0);
            acc[own.end..].fill(0);
        }
        result.fill(0);
        Buffers { acc, result }
    }
}

/// The reduction of one view: what the data phase computes, and what the sketch check and the
/// verdict read afterwards.
pub(super) struct Reduction {
    pub(super) scale: u32,
    pub(super) total_weight: u128,
    pub(super) segs: Vec<Range<usize>>,
    /// Elements per data message.
    chunk: usize,
    /// Our contribution `c` of one chunk at a time (`c` is made where it is used, from the
    /// input, instead of kept whole: one vector fewer per member).
    scratch: Vec<i64>,
    /// The partial sums received in the scatter-reduce.
    pub(super) acc: Vec<i64>,
    /// The reduced vector: segments completed here or received in the all-gather.
    pub(super) result: Vec<i64>,
    /// Leaf digests of `result` (the tree of `D(S)`), gathered from the checked all-gather
    /// payloads and our own reduced segment; empty when the chunks do not start on leaf
    /// boundaries, and then `D(S)` is hashed from `result`.
    pub(super) result_leaves: Vec<Option<[u8; 32]>>,
    /// Per segment: some received scatter (`acc`) or all-gather (`result`) element left
    /// `(−B, B)`. Checked as the chunk is copied in, reported at the verdict.
    pub(super) acc_out_of_range: Vec<bool>,
    pub(super) result_out_of_range: Vec<bool>,
    /// Data messages received (headers only: payloads are in `acc` and `result`).
    pub(super) received: HashMap<DataKey, Signed>,
    /// Data messages to receive before the reduction is complete.
    expected: usize,
}

/// What signing a data frame reads.
struct Signer<'a> {
    member: &'a Member,
    view: &'a View,
    faults: &'a Faults,
}

impl Reduction {
    pub(super) fn new(
        member: &Member,
        view: &View,
        scale: u32,
        total_weight: u128,
        buffers: Buffers,
    ) -> Self {
        let len = member.input.values.len();
        let chunk = member.ring.chunk_elements as usize;
        let n = view.n();
        let segs = segments(len, n);
        // Kept from the last view (every element a view reads is written in it first).
        let Buffers {
            mut acc,
            mut result,
        } = buffers;
        if acc.len() != len || result.len() != len {
            acc = vec![0; len];
            result = vec![0; len];
        }
        let leaf = wire::LEAF_ELEMENTS;
        let aligned =
            chunk.is_multiple_of(leaf) && segs.iter().all(|s| s.start.is_multiple_of(leaf));
        let mut red = Reduction {
            scale,
            total_weight,
            segs,
            chunk,
            scratch: vec![0; chunk.min(len)],
            acc,
            result,
            result_leaves: if aligned {
                vec![None; len.div_ceil(leaf)]
            } else {
                Vec::new()
            },
            acc_out_of_range: vec![false; n],
            result_out_of_range: vec![false; n],
            received: HashMap::new(),
            expected: 0,
        };
        let p = view.pos;
        red.expected = (0..n)
            .filter(|&g| g != p)
            .map(|g| red.chunks(g))
            .sum::<usize>()
            + (0..n)
                .filter(|&g| g != (p + 1) % n)
                .map(|g| red.chunks(g))
                .sum::<usize>();
        red
    }

    pub(super) fn into_buffers(self) -> Buffers {
        Buffers {
            acc: self.acc,
            result: self.result,
        }
    }

    pub(super) fn is_complete(&self) -> bool {
        self.received.len() >= self.expected
    }

    /// Chunks in segment `g`.
    pub(super) fn chunks(&self, g: usize) -> usize {
        self.segs[g].len().div_ceil(self.chunk)
    }

    /// The elements of chunk `k` of segment `g`.
    pub(super) fn chunk_range(&self, g: usize, k: usize) -> Range<usize> {
        let s = &self.segs[g];
        (s.start + k * self.chunk)..(s.start + ((k + 1) * self.chunk).min(s.len()))
    }

    /// Scatter step 0: our own contribution to our segment, to our successor.
    pub(super) fn send_own_segment(
        &mut self,
        member: &Member,
        view: &View,
        faults: &Faults,
        out: &mut Vec<Out>,
    ) {
        let signer = Signer {
            member,
            view,
            faults,
        };
        let p = view.pos;
        let hybrid = member.hybrid();
        let q = member.ring.quantize;
        for k in 0..self.chunks(p) {
            let r = self.chunk_range(p, k);
            let c = &mut self.scratch[..r.len()];
            member
                .input
                .values
                .contribution_into(r.start, member.input.weight, self.scale, q, c);
            let frame = wire::data_frame(c.len(), hybrid, |b| wire::put_le(b, c));
            let spot = Spot {
                phase: DataPhase::Scatter,
                step: 0,
                segment: p,
                chunk: k,
            };
            let (frame, _) = signer.sign_data_frame(frame, spot, None);
            out.push(Out {
                to: view.successor(),
                bytes: Arc::new(wire::pack_frame(&frame, hybrid)),
            });
        }
    }

    /// Where a data message of `from` with header `h` and `len` payload elements belongs:
    /// its spot and its elements, or why it belongs nowhere.
    fn place(
        &self,
        view: &View,
        from: usize,
        h: &DataHeader,
        len: usize,
    ) -> Result<(Spot, Range<usize>), Refused> {
        let unexpected = |what: String| Refused::Unexpected {
            sender: from,
            view: view.number,
            what,
        };
        let (n, p) = (view.n(), view.pos);
        let (s, g, k) = (h.step as usize, h.segment as usize, h.chunk as usize);
        let phase = match DataPhase::of(h.phase) {
            Some(phase) if s <= n - 2 => phase,
            _ => return Err(unexpected(format!("data step {s}"))),
        };
        let want = match phase {
            DataPhase::Scatter => (p + 2 * n - 1 - s) % n,
            DataPhase::Gather => (p + 2 * n - s) % n,
        };
        if g != want || k >= self.chunks(g) {
            return Err(unexpected(format!(
                "data for segment {g} chunk {k} at step {s} (expected segment {want})"
            )));
        }
        let r = self.chunk_range(g, k);
        // The payload digest was checked by the verifier.
        if len != r.len() {
            return Err(unexpected(format!(
                "data with {len} elements for a chunk of {}",
                r.len()
            )));
        }
        let spot = Spot {
            phase,
            step: s,
            segment: g,
            chunk: k,
        };
        Ok((spot, r))
    }

    /// One received chunk, in one pass while it is in cache: store what we received (for the
    /// sketch check and as evidence), check its range, and turn the received raw frame (the
    /// reader task unpacked it) into the one we send (payload rewritten in place, new prefix),
    /// then pack that for the wire. The message keeps only its header.
    fn receive(&mut self, signer: &Signer, p: Pending, out: &mut Vec<Out>) -> Result<(), Refused> {
        let Body::Data(h) = p.msg.body else {
            unreachable!("data")
        };
        let view = signer.view;
        let (spot, r) = self.place(view, p.from, &h, p.payload.len())?;
        let mut frame = p.payload.frame;
        // The prefix has the same length in the frame we received and the one we send.
        let hybrid = signer.member.hybrid();
        let pre = wire::data_prefix(hybrid);
        if p.payload.range != (pre..frame.len()) {
            // Not the layout the verifier gives; never happens, but stay correct.
            let bytes = frame[p.payload.range.clone()].to_vec();
            frame = wire::data_frame(bytes.len() / 8, hybrid, |b| b.copy_from_slice(&bytes));
        }
        let forward = match spot.phase {
            DataPhase::Scatter => self.add_own(signer, spot, r, frame),
            DataPhase::Gather => self.store_gathered(signer, spot, r, frame, &p.payload.leaves, &h),
        };
        if let Some(frame) = forward {
            out.push(Out {
                to: view.successor(),
                bytes: Arc::new(wire::pack_frame(&frame, hybrid)),
            });
        }
        let key = DataKey::of(&h).expect("placed");
        self.received.insert(key, p.msg);
        Ok(())
    }

    /// A scatter-reduce chunk: keep the received partial sums, add our contribution, and sign
    /// the sum for our successor (at the last step, the completed segment's first all-gather
    /// message, also kept as our result).
    fn add_own(
        &mut self,
        signer: &Signer,
        spot: Spot,
        r: Range<usize>,
        mut frame: Vec<u8>,
    ) -> Option<Vec<u8>> {
        let member = signer.member;
        let pre = wire::data_prefix(member.hybrid());
        let body = &mut frame[pre..];
        let last = spot.step == signer.view.n() - 2;
        let q = member.ring.quantize;
        let c = &mut self.scratch[..r.len()];
        member
            .input
            .values
            .contribution_into(r.start, member.input.weight, self.scale, q, c);
        let c = &*c;
        let acc = &mut self.acc[r.clone()];
        let mut bad = false;
        if last {
            // We complete the segment: keep the sum, and start its all-gather.
            let res = &mut self.result[r.clone()];
            for ((o, a), (d, &ci)) in body
                .chunks_exact_mut(8)
                .zip(acc.iter_mut())
                .zip(res.iter_mut().zip(c))
            {
                let v = i64::from_le_bytes((&*o).try_into().expect("8 bytes"));
                *a = v;
                bad |= out_of_bound(v);
                *d = v.wrapping_add(ci);
                o.copy_from_slice(&d.to_le_bytes());
            }
        } else {
            for ((o, a), &ci) in body.chunks_exact_mut(8).zip(acc.iter_mut()).zip(c) {
                let v = i64::from_le_bytes((&*o).try_into().expect("8 bytes"));
                *a = v;
                bad |= out_of_bound(v);
                o.copy_from_slice(&v.wrapping_add(ci).to_le_bytes());
            }
        }
        self.acc_out_of_range[spot.segment] |= bad;
        let next = Spot {
            phase: if last {
                DataPhase::Gather
            } else {
                DataPhase::Scatter
            },
            step: if last { 0 } else { spot.step + 1 },
            ..spot
        };
        let (frame, sent) = signer.sign_data_frame(frame, next, None);
        if last {
            self.put_result_leaves(r.start, &sent);
        }
        Some(frame)
    }

    /// An all-gather chunk: keep it as our result, and forward it unless our successor
    /// completed that segment.
    fn store_gathered(
        &mut self,
        signer: &Signer,
        spot: Spot,
        r: Range<usize>,
        frame: Vec<u8>,
        leaves: &[[u8; 32]],
        h: &DataHeader,
    ) -> Option<Vec<u8>> {
        let pre = wire::data_prefix(signer.member.hybrid());
        let mut bad = false;
        for (d, v) in self.result[r.clone()]
            .iter_mut()
            .zip(wire::get_le(&frame[pre..]))
        {
            *d = v;
            bad |= out_of_bound(v);
        }
        self.result_out_of_range[spot.segment] |= bad;
        self.put_result_leaves(r.start, leaves);
        if spot.step >= signer.view.n() - 2 {
            return None;
        }
        // Same payload, same digest: no need to hash it again.
        let next = Spot {
            step: spot.step + 1,
            ..spot
        };
        let (frame, _) = signer.sign_data_frame(frame, next, Some(h.digest));
        Some(frame)
    }

    /// Records the leaf digests of the payload that fills `result[start..]`.
    fn put_result_leaves(&mut self, start: usize, leaves: &[[u8; 32]]) {
        let i = start / wire::LEAF_ELEMENTS;
        if let Some(dst) = self.result_leaves.get_mut(i..i + leaves.len()) {
            for (d, l) in dst.iter_mut().zip(leaves) {
                *d = Some(*l);
            }
        }
    }
}

/// A partial-sum element outside `(−B, B)`.
fn out_of_bound(v: i64) -> bool {
    v <= -fixed::BOUND || v >= fixed::BOUND
}

impl Signer<'_> {
    /// Signs a data frame of [`wire::data_frame`] and writes its prefix. `digest` is the
    /// payload's digest when the caller already knows it (all-gather forwards the payload it
    /// received, whose digest it checked); otherwise it is hashed from the frame, and the
    /// leaf digests are returned too.
    fn sign_data_frame(
        &self,
        mut frame: Vec<u8>,
        spot: Spot,
        digest: Option<[u8; 32]>,
    ) -> (Vec<u8>, Vec<[u8; 32]>) {
        let member = self.member;
        let view = self.view.number;
        let pre = wire::data_prefix(member.hybrid());
        let site = DataSite {
            view,
            members: self.view.n(),
            phase: spot.phase,
            step: spot.step,
        };
        self.faults.tamper_data(site, &mut frame[pre..]);
        let (digest, leaves) = match digest {
            Some(d) => (d, Vec::new()),
            None => {
                let leaves = wire::leaves_of_bytes(&frame[pre..]);
                let count = (frame.len() - pre) / 8;
                (wire::digest_of_leaves(count, &leaves), leaves)
            }
        };
        let h = DataHeader {
            phase: spot.phase.wire(),
            step: spot.step as u16,
            segment: spot.segment as u16,
            chunk: spot.chunk as u32,
            digest,
        };
        let m = member.sign(view, Body::Data(h));
        wire::put_data_prefix(
            &mut frame,
            member.index as u16,
            view,
            &h,
            &m.sig,
            m.pq_sig.as_deref(),
        );
        (frame, leaves)
    }
}

impl Machine {
    /// A data message of the current view: replays and senders other than our predecessor
    /// are refused; before every commit is in it waits, during the data phase it is reduced.
    pub(super) fn on_data(&mut self, p: Pending, out: &mut Vec<Out>) -> Result<(), Refused> {
        let Body::Data(h) = &p.msg.body else {
            unreachable!("data")
        };
        let h = *h;
        let Some(key) = DataKey::of(&h) else {
            return Err(self.unexpected(p.from, format!("data step {}", h.step)));
        };
        let replayed = match &self.state {
            State::Commit { early } => early.iter().any(|e| DataKey::of_msg(&e.msg) == Some(key)),
            s => s.reduction().is_some_and(|r| r.received.contains_key(&key)),
        };
        if replayed {
            return Err(self.replay(
                p.from,
                &format!(
                    "data (phase {}, step {}, segment {}, chunk {})",
                    h.phase, h.step, h.segment, h.chunk
                ),
            ));
        }
        if p.from != self.view.predecessor() {
            return Err(self.unexpected(
                p.from,
                "data from a member that is not our predecessor".into(),
            ));
        }
        match &mut self.state {
            State::Commit { early } => {
                early.push(p);
                Ok(())
            }
            State::Reduce(_) => self.reduce(p, out),
            s => match s.reduction() {
                // Every chunk of the view is in: this one is a forgery of the sender's.
                Some(r) => {
                    r.place(&self.view, p.from, &h, p.payload.len())?;
                    Err(self.unexpected(p.from, "data after the data phase".into()))
                }
                None => Ok(()),
            },
        }
    }

    /// Reduces a data message that belongs to this view, then moves on if it was the last.
    pub(super) fn reduce(&mut self, p: Pending, out: &mut Vec<Out>) -> Result<(), Refused> {
        let State::Reduce(red) = &mut self.state else {
            return Ok(());
        };
        let signer = Signer {
            member: &self.member,
            view: &self.view,
            faults: &self.faults,
        };
        red.receive(&signer, p, out)?;
        self.after_data(out);
        Ok(())
    }

    /// With every data message in: reveal our nonce.
    pub(super) fn after_data(&mut self, out: &mut Vec<Out>) {
        if !matches!(&self.state, State::Reduce(r) if r.is_complete()) {
            return;
        }
        let State::Reduce(red) = std::mem::replace(&mut self.state, State::Finished) else {
            unreachable!("checked above")
        };
        self.state = State::Reveal(red);
        let nonce = self.view.nonce;
        self.broadcast(Body::Reveal { nonce }, out);
        self.transcript.reveals.insert(self.member.index, nonce);
        self.after_reveal(out);
    }
}
