//! The ring protocol of docs/ring-protocol.md as a state machine without I/O.
//!
//! A [`Machine`] consumes events — a message from a member ([`Machine::handle`]), a timeout
//! ([`Machine::on_timeout`]), a lost connection ([`Machine::peer_lost`]) — and returns the
//! messages to send ([`Out`]). It holds no socket and reads no clock, so tests drive N machines
//! message by message, drop or corrupt messages, and fire timeouts when they choose.
//!
//! One file per phase of a view, each with the state that phase owns ([`State`]):
//! `commit` (commits, data that came early), `reduce` (the scatter-reduce and all-gather of
//! [`Reduction`]), `reveal` (nonces, the sketch seed), `sketch` (the sketch check and its
//! evidence), `verdict` (judging the verdicts, the outcome) and `view_change`. What every
//! phase reads — who this member is ([`Member`]), the current [`View`], the signed messages of
//! the view ([`Transcript`]) — lives beside the state. `verify` holds the stateless checks a
//! driver runs on its reader tasks, `faults` the test-only misbehaviour.

mod commit;
mod error;
mod faults;
mod reduce;
mod reveal;
mod sketch;
mod verdict;
mod verify;
mod view_change;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::Arc;

use sha3::{Digest, Sha3_256};

use super::config::RingSpec;
use super::fixed;
use super::wire::{self, Body, Signed};
use crate::core::keys::Identity;

pub use error::{Refused, RingError};
pub use verify::{Checked, Verifier};

use reduce::{Buffers, Reduction};
use sketch::Sketching;
use verdict::Judging;
use verify::Payload;
use view_change::ChangingView;

/// What a member brings to the round.
#[derive(Debug, Clone)]
pub struct Input {
    /// The flattened tensors, in file order.
    pub values: fixed::Values,
    pub weight: u64,
    /// `H(names, dtypes, shapes)`: all members must agree.
    pub layout: [u8; 32],
    /// Commitment to the input (for audits).
    pub input_digest: [u8; 32],
    /// The input's timestamp (RFC 3339); the output carries the latest.
    pub timestamp: String,
}

/// A message to send to the member with this ring index.
#[derive(Debug, Clone)]
pub struct Out {
    pub to: usize,
    pub bytes: Arc<Vec<u8>>,
}

/// A member that left the ring, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exclusion {
    pub member: usize,
    /// The view it was dropped from.
    pub view: u32,
    pub reason: String,
}

/// The agreed result of a round.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub view: u32,
    /// Ring indices of the contributing members, in ring order.
    pub members: Vec<usize>,
    pub weights: Vec<u64>,
    pub input_digests: Vec<[u8; 32]>,
    pub timestamps: Vec<String>,
    pub scale: u32,
    pub total_weight: u128,
    /// The exact sum `Σ c_j`.
    pub sum: Vec<i64>,
    /// `D(S)`, the payload digest of `sum` (an input of the result digest).
    pub sum_digest: [u8; 32],
    pub result_digest: [u8; 32],
    pub seed: [u8; 32],
    /// Every member's signed `ok` verdict (its receipt), in ring order.
    pub receipts: Vec<Signed>,
    /// Every member's signed commit, in ring order (the transcript an audit replays).
    pub commits: Vec<Signed>,
    /// Every member's revealed nonce, in ring order.
    pub nonces: Vec<[u8; 32]>,
    /// Every member's signed sketch message, in ring order.
    pub sketches: Vec<Signed>,
    pub excluded: Vec<Exclusion>,
}

impl Outcome {
    /// The weighted mean of element `k`.
    pub fn mean(&self, k: usize) -> f64 {
        fixed::mean(self.sum[k], self.total_weight, self.scale)
    }
}

fn h32(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha3_256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// `H("gym-ring-v2/result\0" ‖ layout digest ‖ u32 F ‖ u128 Σw ‖ D(S))`, where `D` is the
/// payload digest tree of [`wire::payload_digest`] over the whole reduced vector.
pub fn result_digest(layout: &[u8; 32], scale: u32, total_weight: u128, sum: &[i64]) -> [u8; 32] {
    result_digest_of(layout, scale, total_weight, &wire::payload_digest(sum))
}

/// [`result_digest`] from `D(S)` instead of `S`.
pub fn result_digest_of(
    layout: &[u8; 32],
    scale: u32,
    total_weight: u128,
    sum_digest: &[u8; 32],
) -> [u8; 32] {
    h32(&[
        b"gym-ring-v2/result\0",
        layout,
        &scale.to_le_bytes(),
        &total_weight.to_le_bytes(),
        sum_digest,
    ])
}

/// What a commit carries for a nonce: `H("gym-ring-v1/nonce-hash\0" ‖ nonce)`.
pub fn nonce_hash(nonce: &[u8; 32]) -> [u8; 32] {
    h32(&[b"gym-ring-v1/nonce-hash\0", nonce])
}

/// The members digest of a commit: `H("gym-ring-v1/members\0" ‖ u32 view ‖ u32 index…)`.
pub fn members_digest(view: u32, members: &[usize]) -> [u8; 32] {
    let mut h = Sha3_256::new();
    h.update(b"gym-ring-v1/members\0");
    h.update(view.to_le_bytes());
    for &m in members {
        h.update((m as u32).to_le_bytes());
    }
    h.finalize().into()
}

/// The sketch seed `ρ = H("gym-ring-v1/seed\0" ‖ R ‖ v ‖ (commit ‖ nonce) per member)`, with
/// the members' signed commits and revealed nonces in view order.
pub fn seed<'a>(
    ring_digest: &[u8; 32],
    view: u32,
    transcript: impl IntoIterator<Item = (&'a Signed, &'a [u8; 32])>,
) -> [u8; 32] {
    let mut h = Sha3_256::new();
    h.update(b"gym-ring-v1/seed\0");
    h.update(ring_digest);
    h.update(view.to_le_bytes());
    for (commit, nonce) in transcript {
        h.update(wire::encode(commit));
        h.update(nonce);
    }
    h.finalize().into()
}

/// The `n` contiguous, near-equal segments of a vector of `len` elements.
pub fn segments(len: usize, n: usize) -> Vec<Range<usize>> {
    (0..n).map(|g| (g * len / n)..((g + 1) * len / n)).collect()
}

/// A group's exact sum (a leader's input) enters only a ring fixed at the scale it was
/// summed at; any other input enters any ring. Checked before connecting.
pub fn check_sum_input(ring: &RingSpec, input: &Input) -> Result<(), RingError> {
    match &input.values {
        fixed::Values::Sum(s) if ring.hier.scale_bits != Some(s.scale()) => {
            Err(RingError::SumScale {
                input: s.scale(),
                ring: ring.hier.scale_bits,
            })
        }
        _ => Ok(()),
    }
}

/// Who this member is: fixed for the whole round.
struct Member {
    ring: Arc<RingSpec>,
    /// The ring digest `R` every signature is bound to.
    rd: [u8; 32],
    /// Our ring index.
    index: usize,
    id: Arc<Identity>,
    input: Arc<Input>,
    /// Seeds the per-view nonces.
    secret: [u8; 32],
    /// The exponent of our input, as committed.
    exponent: i32,
}

impl Member {
    fn hybrid(&self) -> bool {
        self.ring.is_hybrid()
    }

    /// A control message of ours in `view`.
    fn sign(&self, view: u32, body: Body) -> Signed {
        Signed::sign(
            &self.id,
            &self.rd,
            self.hybrid(),
            self.index as u16,
            view,
            body,
            Vec::new(),
        )
    }

    /// Our nonce in `view`: `H("gym-ring-v1/nonce\0" ‖ secret ‖ u32 view)`.
    fn nonce(&self, view: u32) -> [u8; 32] {
        h32(&[b"gym-ring-v1/nonce\0", &self.secret, &view.to_le_bytes()])
    }
}

/// The current view: who is in it, and our place and nonce in it.
struct View {
    number: u32,
    /// Ring indices, in ring order.
    members: Vec<usize>,
    /// Our position in `members`.
    pos: usize,
    nonce: [u8; 32],
}

impl View {
    fn n(&self) -> usize {
        self.members.len()
    }

    /// The member at position `pos` (mod n).
    fn at(&self, pos: usize) -> usize {
        self.members[pos % self.n()]
    }

    fn pos_of(&self, member: usize) -> Option<usize> {
        self.members.iter().position(|&m| m == member)
    }

    /// The member we receive data from.
    fn predecessor(&self) -> usize {
        self.at(self.pos + self.n() - 1)
    }

    /// The member we send data to.
    fn successor(&self) -> usize {
        self.at(self.pos + 1)
    }

    fn digest(&self) -> [u8; 32] {
        members_digest(self.number, &self.members)
    }

    /// Queues `m` for every other member of the view.
    fn broadcast(&self, me: usize, m: &Signed, out: &mut Vec<Out>) {
        let bytes = Arc::new(wire::encode(m));
        for &to in &self.members {
            if to != me {
                out.push(Out {
                    to,
                    bytes: bytes.clone(),
                });
            }
        }
    }
}

/// A member's signed sketch message and the sketches it carries.
struct SketchMsg {
    values: Vec<u64>,
    msg: Signed,
}

/// The signed messages of the current view by sender, kept as they arrive: a message of a
/// later phase can arrive before this member gets there.
#[derive(Default)]
struct Transcript {
    commits: BTreeMap<usize, Signed>,
    reveals: BTreeMap<usize, [u8; 32]>,
    sketches: BTreeMap<usize, SketchMsg>,
    verdicts: BTreeMap<usize, Signed>,
    view_changes: BTreeMap<usize, Signed>,
}

impl Transcript {
    /// The commit of `member` (present for every member once the data phase started).
    fn commit(&self, member: usize) -> &wire::Commit {
        match &self.commits[&member].body {
            Body::Commit(c) => c,
            _ => unreachable!("only commits are stored as commits"),
        }
    }
}

/// A checked message kept for later: data that came before the commits were in, or a
/// message of a future view.
struct Pending {
    from: usize,
    msg: Signed,
    payload: Payload,
}

/// The phase of the current view, each owning what only it needs.
enum State {
    /// Waiting for every member's commit. Data from our predecessor may come first.
    Commit {
        early: Vec<Pending>,
    },
    /// The scatter-reduce and all-gather.
    Reduce(Reduction),
    /// Our data is complete; waiting for every nonce.
    Reveal(Reduction),
    Sketch(Sketching),
    Verdict(Judging),
    ViewChange(ChangingView),
    Finished,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::Commit { .. } => "commit",
            State::Reduce(_) => "reduce",
            State::Reveal(_) => "reveal",
            State::Sketch(_) => "sketch",
            State::Verdict(_) => "verdict",
            State::ViewChange(_) => "view change",
            State::Finished => "finished",
        }
    }

    /// The reduction of this view, in the phases that have one.
    fn reduction(&self) -> Option<&Reduction> {
        match self {
            State::Reduce(r) | State::Reveal(r) => Some(r),
            State::Sketch(s) => Some(&s.red),
            State::Verdict(j) => Some(&j.red),
            _ => None,
        }
    }

    /// The reduction's vectors, to keep for the next view.
    fn into_buffers(self) -> Option<Buffers> {
        match self {
            State::Reduce(r) | State::Reveal(r) => Some(r.into_buffers()),
            State::Sketch(s) => Some(s.red.into_buffers()),
            State::Verdict(j) => Some(j.red.into_buffers()),
            _ => None,
        }
    }
}

pub struct Machine {
    member: Member,
    max_views: u32,
    view: View,
    transcript: Transcript,
    state: State,
    /// The vectors the data phase writes, between views (allocated once).
    spare: Buffers,
    /// Members whose connection broke.
    dead: BTreeSet<usize>,
    /// Messages of a later view, handled when we get there.
    future: Vec<Pending>,
    excluded: Vec<Exclusion>,
    outcome: Option<Result<Outcome, RingError>>,
    /// Whether the last sum digest `D(S)` came from the leaf digests of the payloads (chunks on
    /// leaf boundaries) rather than from hashing the sum again.
    sum_digest_from_leaves: bool,
    pub(crate) faults: faults::Faults,
}

impl Machine {
    /// A member with ring index `me`. `secret` seeds its per-view nonces: 32 random bytes in
    /// production, fixed in tests.
    pub fn new(
        ring: Arc<RingSpec>,
        me: usize,
        id: Arc<Identity>,
        input: Arc<Input>,
        secret: [u8; 32],
    ) -> Result<Self, RingError> {
        fixed::check_weight(input.weight)?;
        // A hybrid ring's messages need this member's ML-DSA-87 signatures.
        if ring.is_hybrid()
            && (id.public().ml_dsa_87.is_none()
                || ring.members.get(me).map(|m| &m.public.ml_dsa_87)
                    != Some(&id.public().ml_dsa_87))
        {
            return Err(RingError::MlDsaKey { member: me });
        }
        check_sum_input(&ring, &input)?;
        let exponent = input.values.exponent()?;
        let n = ring.len();
        let spare = Buffers::prefaulted(input.values.len(), n, me);
        Ok(Machine {
            member: Member {
                rd: ring.digest(),
                ring,
                index: me,
                id,
                input,
                secret,
                exponent,
            },
            max_views: n as u32,
            view: View {
                number: 0,
                members: (0..n).collect(),
                pos: me,
                nonce: [0; 32],
            },
            transcript: Transcript::default(),
            state: State::Commit { early: Vec::new() },
            spare,
            dead: BTreeSet::new(),
            future: Vec::new(),
            excluded: Vec::new(),
            outcome: None,
            sum_digest_from_leaves: false,
            faults: faults::Faults::default(),
        })
    }

    pub fn me(&self) -> usize {
        self.member.index
    }

    pub fn view(&self) -> u32 {
        self.view.number
    }

    /// Ring indices of the current view.
    pub fn members(&self) -> &[usize] {
        &self.view.members
    }

    /// A short name of the current state, for progress messages.
    pub fn state(&self) -> &'static str {
        self.state.name()
    }

    /// Members excluded so far.
    pub fn excluded(&self) -> &[Exclusion] {
        &self.excluded
    }

    pub fn is_finished(&self) -> bool {
        self.outcome.is_some()
    }

    pub fn outcome(&self) -> Option<&Result<Outcome, RingError>> {
        self.outcome.as_ref()
    }

    pub fn take_outcome(&mut self) -> Option<Result<Outcome, RingError>> {
        self.outcome.take()
    }

    /// The stateless checks of this machine's messages, to run on another thread.
    pub fn verifier(&self) -> Verifier {
        Verifier::new(self.member.ring.clone())
    }

    /// Starts view 0: broadcasts the commit.
    pub fn start(&mut self) -> Vec<Out> {
        let mut out = Vec::new();
        self.begin_view(&mut out);
        out
    }

    /// Handles one message from the member with ring index `from` (authenticated by the
    /// transport). `Err` means the message was refused and changed nothing.
    pub fn handle(&mut self, from: usize, bytes: &[u8]) -> Result<Vec<Out>, Refused> {
        let c = self.verifier().check(from, bytes)?;
        self.handle_checked(c)
    }

    /// Handles a message that passed [`Verifier::check`] (on any thread).
    pub fn handle_checked(&mut self, c: Checked) -> Result<Vec<Out>, Refused> {
        let (from, msg, payload) = c.into_parts();
        let mut out = Vec::new();
        if self.outcome.is_some() {
            return Ok(out);
        }
        let view = self.view.number;
        if msg.view < view {
            return Err(Refused::Stale {
                sender: from,
                kind: msg.body.name(),
                view: msg.view,
                current: view,
            });
        }
        if msg.view > view {
            if msg.view > view + self.max_views {
                return Err(Refused::Unexpected {
                    sender: from,
                    view: msg.view,
                    what: "message for a far future view".into(),
                });
            }
            self.future.push(Pending { from, msg, payload });
            return Ok(out);
        }
        self.accept(Pending { from, msg, payload }, &mut out)?;
        Ok(out)
    }

    /// A message of the current view, to the handler of its kind.
    fn accept(&mut self, p: Pending, out: &mut Vec<Out>) -> Result<(), Refused> {
        if self.view.pos_of(p.from).is_none() {
            return Err(Refused::NotInView {
                sender: p.from,
                view: self.view.number,
            });
        }
        if let Body::ViewChange { .. } = p.msg.body {
            return self.on_view_change(p.from, p.msg, out);
        }
        if matches!(self.state, State::ViewChange(_)) {
            // The round is abandoned; late messages of it are ignored.
            return Ok(());
        }
        match &p.msg.body {
            Body::Commit(_) => self.on_commit(p.from, p.msg, out),
            Body::Data(_) => self.on_data(p, out),
            Body::Reveal { nonce } => {
                let nonce = *nonce;
                self.on_reveal(p.from, nonce, out)
            }
            Body::Sketch { .. } => self.on_sketch(p.from, p.msg, out),
            Body::Verdict { .. } => self.on_verdict(p.from, p.msg, out),
            Body::ViewChange { .. } => unreachable!("handled above"),
        }
    }

    /// `Refused::Replay` of a message from `sender` in the current view.
    fn replay(&self, sender: usize, what: &str) -> Refused {
        Refused::Replay {
            sender,
            view: self.view.number,
            what: what.to_string(),
        }
    }

    /// `Refused::Unexpected` of a message from `sender` in the current view.
    fn unexpected(&self, sender: usize, what: String) -> Refused {
        Refused::Unexpected {
            sender,
            view: self.view.number,
            what,
        }
    }

    /// Signs `body` as ours in the current view and queues it for every other member.
    fn broadcast(&self, body: Body, out: &mut Vec<Out>) -> Signed {
        let m = self.member.sign(self.view.number, body);
        self.view.broadcast(self.member.index, &m, out);
        m
    }

    fn finish(&mut self, r: Result<Outcome, RingError>) {
        self.state = State::Finished;
        self.spare = Buffers::default();
        self.outcome = Some(r);
    }

    /// The driver's per-step timer fired with no progress.
    pub fn on_timeout(&mut self) -> Vec<Out> {
        let mut out = Vec::new();
        match self.state {
            State::Finished => {}
            State::ViewChange(_) => self.decide_view(&mut out),
            _ => self.enter_view_change(BTreeMap::new(), Vec::new(), &mut out),
        }
        out
    }

    /// The connection to `member` broke.
    pub fn peer_lost(&mut self, member: usize) -> Vec<Out> {
        let mut out = Vec::new();
        if self.outcome.is_some() || !self.dead.insert(member) || self.view.pos_of(member).is_none()
        {
            return out;
        }
        // A member that already gave its verdict has nothing left to send.
        if matches!(self.state, State::Verdict(_)) && self.transcript.verdicts.contains_key(&member)
        {
            return out;
        }
        self.enter_view_change(BTreeMap::new(), Vec::new(), &mut out);
        self.maybe_decide_view(&mut out);
        out
    }
}

#[cfg(test)]
mod tests;
