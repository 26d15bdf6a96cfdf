//! The ring protocol of docs/ring-protocol.md as a state machine without I/O.
//!
//! A [`Machine`] consumes events — a message from a member ([`Machine::handle`]), a timeout
//! ([`Machine::on_timeout`]), a lost connection ([`Machine::peer_lost`]) — and returns the
//! messages to send ([`Out`]). It holds no socket and reads no clock, so tests drive N machines
//! message by message, drop or corrupt messages, and fire timeouts when they choose.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::sync::Arc;

use sha3::{Digest, Sha3_256};

use super::config::RingSpec;
use super::fixed::{self, FixedError};
use super::sketch;
use super::wire::{self, Body, Commit, DataHeader, PHASE_GATHER, PHASE_SCATTER, Signed, WireError};
use crate::core::error::{Classify, ErrorClass};
use crate::core::keys::Identity;

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

/// A message that was refused. The machine's state is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("undecodable message from member {from}: {error}")]
    Decode { from: usize, error: WireError },
    #[error("member {from} sent a message signed as member {sender}")]
    WrongSender { from: usize, sender: u16 },
    #[error("bad signature on a {kind} message from member {sender}")]
    BadSignature { sender: usize, kind: &'static str },
    #[error("stale {kind} message from member {sender}: view {view}, current view is {current}")]
    Stale {
        sender: usize,
        kind: &'static str,
        view: u32,
        current: u32,
    },
    #[error("member {sender} is not in view {view}")]
    NotInView { sender: usize, view: u32 },
    #[error("replayed {what} from member {sender} in view {view}")]
    Replay {
        sender: usize,
        view: u32,
        what: String,
    },
    #[error("unexpected {what} from member {sender} in view {view}")]
    Unexpected {
        sender: usize,
        view: u32,
        what: String,
    },
}

impl Classify for Refused {
    fn class(&self) -> ErrorClass {
        match self {
            Refused::Decode { .. } => ErrorClass::Malformed,
            Refused::WrongSender { .. } | Refused::BadSignature { .. } => ErrorClass::Signature,
            Refused::NotInView { .. } => ErrorClass::Untrusted,
            Refused::Stale { .. } | Refused::Replay { .. } | Refused::Unexpected { .. } => {
                ErrorClass::Policy
            }
        }
    }
}

/// Why a member could not finish.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RingError {
    #[error("view {view} would have {members} member(s); a ring needs at least 2")]
    TooFew { view: u32, members: usize },
    #[error("excluded from view {view} by the other members")]
    Excluded { view: u32 },
    #[error("members disagree on the tensor layout in view {view}: {members:?} differ from ours")]
    Layout { view: u32, members: Vec<usize> },
    #[error(transparent)]
    Fixed(#[from] FixedError),
    #[error("no progress after {views} view changes")]
    TooManyViews { views: u32 },
    #[error(
        "the ring is hybrid, but the key of member {member} has no ML-DSA-87 half or not the \
         one the ring file lists"
    )]
    MlDsaKey { member: usize },
}

impl Classify for RingError {
    fn class(&self) -> ErrorClass {
        match self {
            RingError::Layout { .. } => ErrorClass::Malformed,
            RingError::Fixed(_) => ErrorClass::Malformed,
            RingError::MlDsaKey { .. } => ErrorClass::Untrusted,
            _ => ErrorClass::Ring,
        }
    }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Commit,
    Data,
    Reveal,
    Sketch,
    Verdict,
    ViewChange,
    Finished,
}

/// A bad data message proven by evidence: (sender position, phase, step, segment).
type BadMsg = (usize, u8, u16, u16);

/// Test-only misbehaviour.
#[cfg(test)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Faults {
    /// Add 1000 to the first element of every scatter message from step 1 on (step 0 in a
    /// ring of 2), in view 0.
    pub corrupt_partial_sums: bool,
}

pub struct Machine {
    ring: Arc<RingSpec>,
    rd: [u8; 32],
    me: usize,
    id: Arc<Identity>,
    input: Arc<Input>,
    secret: [u8; 32],
    exponent: i32,
    max_views: u32,

    view: u32,
    members: Vec<usize>,
    pos: usize,
    phase: Phase,
    nonce: [u8; 32],

    commits: BTreeMap<usize, Signed>,
    scale: u32,
    total_weight: u128,
    /// Our contribution `c` of one chunk at a time (`c` is made where it is used, from the
    /// input, instead of kept whole: one vector fewer per member).
    scratch: Vec<i64>,
    acc: Vec<i64>,
    result: Vec<i64>,
    segs: Vec<Range<usize>>,
    /// Leaf digests of `result` (the tree of `D(S)`), gathered from the checked all-gather
    /// payloads and our own reduced segment; empty when the chunks do not start on leaf
    /// boundaries, and then `D(S)` is hashed from `result`.
    result_leaves: Vec<Option<[u8; 32]>>,
    /// Per segment: some received scatter (`acc`) or all-gather (`result`) element left
    /// `(−B, B)`. Checked as the chunk is copied in, reported at the verdict.
    acc_out_of_range: Vec<bool>,
    result_out_of_range: Vec<bool>,
    /// Data messages received, by (phase, segment, chunk).
    received: HashMap<(u8, u16, u32), Signed>,
    expected: usize,
    early: Vec<(usize, Signed, Payload)>,
    reveals: BTreeMap<usize, [u8; 32]>,
    seed: [u8; 32],
    sketches: BTreeMap<usize, Vec<u64>>,
    sketch_msgs: BTreeMap<usize, Signed>,
    sum_digest: [u8; 32],
    result_digest: [u8; 32],
    my_ok: bool,
    verdicts: BTreeMap<usize, Signed>,
    vc: BTreeMap<usize, Signed>,
    convicted: BTreeMap<usize, String>,
    dead: BTreeSet<usize>,
    future: Vec<(usize, Signed, Payload)>,
    excluded: Vec<Exclusion>,
    outcome: Option<Result<Outcome, RingError>>,
    #[cfg(test)]
    pub(crate) faults: Faults,
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

/// The checks on a received message that need no protocol state: decoding, the sender, the
/// signature, and for a data message its payload digest. The driver runs them on each
/// connection's reader task, so that they overlap with the machine's reduce work.
#[derive(Clone)]
pub struct Verifier {
    ring: Arc<RingSpec>,
    rd: [u8; 32],
}

/// A message that passed [`Verifier::check`]; only `check` makes one.
#[derive(Debug)]
pub struct Checked {
    from: usize,
    /// The message; a data message's payload stays in `payload` (not copied out).
    msg: Signed,
    payload: Payload,
}

/// A checked data message's payload, left where it arrived: its bytes in the received frame,
/// and its leaf digests (the tree under the checked payload digest). Empty for other kinds.
#[derive(Debug, Default)]
struct Payload {
    frame: Vec<u8>,
    range: Range<usize>,
    leaves: Vec<[u8; 32]>,
}

impl Payload {
    /// Elements.
    fn len(&self) -> usize {
        self.range.len() / 8
    }
}

impl Verifier {
    pub fn new(ring: Arc<RingSpec>) -> Self {
        Verifier {
            rd: ring.digest(),
            ring,
        }
    }

    pub fn check(&self, from: usize, bytes: &[u8]) -> Result<Checked, Refused> {
        self.check_frame(from, bytes.to_vec())
    }

    /// [`Verifier::check`] of a frame it keeps: a data message's payload is not copied out
    /// of it, the machine reads it from there.
    pub fn check_frame(&self, from: usize, frame: Vec<u8>) -> Result<Checked, Refused> {
        let (m, range) = wire::decode_split(&frame, self.ring.is_hybrid())
            .map_err(|error| Refused::Decode { from, error })?;
        if m.sender as usize != from {
            return Err(Refused::WrongSender {
                from,
                sender: m.sender,
            });
        }
        let Some(member) = self.ring.members.get(from) else {
            return Err(Refused::NotInView {
                sender: from,
                view: m.view,
            });
        };
        if !m.verify(&self.rd, &member.public) {
            return Err(Refused::BadSignature {
                sender: from,
                kind: m.body.name(),
            });
        }
        let mut payload = Payload::default();
        if let Body::Data(h) = &m.body {
            let leaves = wire::leaves_of_bytes(&frame[range.clone()]);
            if wire::digest_of_leaves(range.len() / 8, &leaves) != h.digest {
                return Err(Refused::Unexpected {
                    sender: from,
                    view: m.view,
                    what: "data whose payload does not match its digest".into(),
                });
            }
            payload = Payload {
                frame,
                range,
                leaves,
            };
        }
        Ok(Checked {
            from,
            msg: m,
            payload,
        })
    }
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
        let exponent = input.values.exponent()?;
        let n = ring.len();
        // The vectors the data phase writes, with their pages touched now, while the member
        // waits for its peers, instead of faulted in one by one during the all-reduce (the
        // kernel's clearing of fresh pages was its largest single cost on a 2-core VM).
        // Segment `me` of the received partial sums is never written in view 0: left untouched.
        let len = input.values.len();
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
        Ok(Machine {
            rd: ring.digest(),
            members: (0..n).collect(),
            max_views: n as u32,
            ring,
            me,
            id,
            input,
            secret,
            exponent,
            view: 0,
            pos: me,
            phase: Phase::Commit,
            nonce: [0; 32],
            commits: BTreeMap::new(),
            scale: 0,
            total_weight: 0,
            scratch: Vec::new(),
            acc,
            result,
            segs: Vec::new(),
            result_leaves: Vec::new(),
            acc_out_of_range: Vec::new(),
            result_out_of_range: Vec::new(),
            received: HashMap::new(),
            expected: 0,
            early: Vec::new(),
            reveals: BTreeMap::new(),
            seed: [0; 32],
            sketches: BTreeMap::new(),
            sketch_msgs: BTreeMap::new(),
            sum_digest: [0; 32],
            result_digest: [0; 32],
            my_ok: false,
            verdicts: BTreeMap::new(),
            vc: BTreeMap::new(),
            convicted: BTreeMap::new(),
            dead: BTreeSet::new(),
            future: Vec::new(),
            excluded: Vec::new(),
            outcome: None,
            #[cfg(test)]
            faults: Faults::default(),
        })
    }

    pub fn me(&self) -> usize {
        self.me
    }

    pub fn view(&self) -> u32 {
        self.view
    }

    /// Ring indices of the current view.
    pub fn members(&self) -> &[usize] {
        &self.members
    }

    /// A short name of the current state, for progress messages.
    pub fn state(&self) -> &'static str {
        match self.phase {
            Phase::Commit => "commit",
            Phase::Data => "reduce",
            Phase::Reveal => "reveal",
            Phase::Sketch => "sketch",
            Phase::Verdict => "verdict",
            Phase::ViewChange => "view change",
            Phase::Finished => "finished",
        }
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

    fn n(&self) -> usize {
        self.members.len()
    }

    fn at(&self, pos: usize) -> usize {
        self.members[pos % self.n()]
    }

    fn pos_of(&self, member: usize) -> Option<usize> {
        self.members.iter().position(|&m| m == member)
    }

    fn members_digest(&self) -> [u8; 32] {
        members_digest(self.view, &self.members)
    }

    fn sign(&self, body: Body, payload: Vec<i64>) -> Signed {
        Signed::sign(
            &self.id,
            &self.rd,
            self.ring.is_hybrid(),
            self.me as u16,
            self.view,
            body,
            payload,
        )
    }

    fn broadcast(&self, m: &Signed, out: &mut Vec<Out>) {
        let bytes = Arc::new(wire::encode(m));
        for &to in &self.members {
            if to != self.me {
                out.push(Out {
                    to,
                    bytes: bytes.clone(),
                });
            }
        }
    }

    /// Starts view 0: broadcasts the commit.
    pub fn start(&mut self) -> Vec<Out> {
        let mut out = Vec::new();
        self.begin_view(&mut out);
        out
    }

    fn begin_view(&mut self, out: &mut Vec<Out>) {
        self.pos = self.pos_of(self.me).expect("in view");
        self.phase = Phase::Commit;
        self.nonce = h32(&[
            b"gym-ring-v1/nonce\0",
            &self.secret,
            &self.view.to_le_bytes(),
        ]);
        self.commits.clear();
        self.received.clear();
        self.early.clear();
        self.reveals.clear();
        self.sketches.clear();
        self.sketch_msgs.clear();
        self.verdicts.clear();
        self.vc.clear();
        self.convicted.clear();
        let commit = Commit {
            weight: self.input.weight,
            exponent: self.exponent,
            layout: self.input.layout,
            input: self.input.input_digest,
            nonce_hash: nonce_hash(&self.nonce),
            members: self.members_digest(),
            timestamp: self.input.timestamp.clone(),
        };
        let m = self.sign(Body::Commit(commit), Vec::new());
        self.broadcast(&m, out);
        self.commits.insert(self.me, m);
        // Messages for this view that arrived early.
        let future = std::mem::take(&mut self.future);
        for (from, m, payload) in future {
            if m.view == self.view {
                let _ = self.accept(from, m, payload, out);
            } else if m.view > self.view {
                self.future.push((from, m, payload));
            }
        }
        self.after_commit(out);
    }

    /// The stateless checks of this machine's messages, to run on another thread.
    pub fn verifier(&self) -> Verifier {
        Verifier {
            ring: self.ring.clone(),
            rd: self.rd,
        }
    }

    /// Handles one message from the member with ring index `from` (authenticated by the
    /// transport). `Err` means the message was refused and changed nothing.
    pub fn handle(&mut self, from: usize, bytes: &[u8]) -> Result<Vec<Out>, Refused> {
        let c = self.verifier().check(from, bytes)?;
        self.handle_checked(c)
    }

    /// Handles a message that passed [`Verifier::check`] (on any thread).
    pub fn handle_checked(&mut self, c: Checked) -> Result<Vec<Out>, Refused> {
        let Checked {
            from,
            msg: m,
            payload,
        } = c;
        let mut out = Vec::new();
        if self.outcome.is_some() {
            return Ok(out);
        }
        if m.view < self.view {
            return Err(Refused::Stale {
                sender: from,
                kind: m.body.name(),
                view: m.view,
                current: self.view,
            });
        }
        if m.view > self.view {
            if m.view > self.view + self.max_views {
                return Err(Refused::Unexpected {
                    sender: from,
                    view: m.view,
                    what: "message for a far future view".into(),
                });
            }
            self.future.push((from, m, payload));
            return Ok(out);
        }
        self.accept(from, m, payload, &mut out)?;
        Ok(out)
    }

    fn accept(
        &mut self,
        from: usize,
        m: Signed,
        payload: Payload,
        out: &mut Vec<Out>,
    ) -> Result<(), Refused> {
        let view = self.view;
        if self.pos_of(from).is_none() {
            return Err(Refused::NotInView { sender: from, view });
        }
        let replay = |what: &str| Refused::Replay {
            sender: from,
            view,
            what: what.to_string(),
        };
        let unexpected = |what: String| Refused::Unexpected {
            sender: from,
            view,
            what,
        };
        if let Body::ViewChange { .. } = m.body {
            if self.vc.contains_key(&from) {
                return Err(replay("view change"));
            }
            self.vc.insert(from, m);
            if self.phase != Phase::ViewChange {
                self.enter_view_change(Vec::new(), out);
            }
            self.maybe_decide_view(out);
            return Ok(());
        }
        if self.phase == Phase::ViewChange {
            // The round is abandoned; late messages of it are ignored.
            return Ok(());
        }
        match &m.body {
            Body::Commit(c) => {
                if self.commits.contains_key(&from) {
                    return Err(replay("commit"));
                }
                if c.members != self.members_digest() {
                    return Err(unexpected("commit for another member list".into()));
                }
                let c_ok = c.weight >= 1 && c.weight <= fixed::MAX_WEIGHT;
                if !c_ok {
                    return Err(unexpected(format!("weight {}", c.weight)));
                }
                self.commits.insert(from, m);
                self.after_commit(out);
            }
            Body::Data(h) => {
                let h = *h;
                let key = (h.phase, h.segment, h.chunk);
                if self.received.contains_key(&key) || self.early.iter().any(|(_, e, _)| {
                    matches!(&e.body, Body::Data(eh) if (eh.phase, eh.segment, eh.chunk) == key)
                }) {
                    return Err(replay(&format!(
                        "data (phase {}, step {}, segment {}, chunk {})",
                        h.phase, h.step, h.segment, h.chunk
                    )));
                }
                let n = self.n();
                let pred = self.at(self.pos + n - 1);
                if from != pred {
                    return Err(unexpected(
                        "data from a member that is not our predecessor".into(),
                    ));
                }
                if self.phase == Phase::Commit {
                    self.early.push((from, m, payload));
                    return Ok(());
                }
                self.on_data(from, m, payload, out)?;
            }
            Body::Reveal { nonce } => {
                if self.reveals.contains_key(&from) {
                    return Err(replay("reveal"));
                }
                let Some(Body::Commit(c)) = self.commits.get(&from).map(|c| &c.body) else {
                    return Err(unexpected("reveal before commit".into()));
                };
                if nonce_hash(nonce) != c.nonce_hash {
                    return Err(unexpected(
                        "nonce that does not match its commitment".into(),
                    ));
                }
                self.reveals.insert(from, *nonce);
                self.after_reveal(out);
            }
            Body::Sketch { sketches } => {
                if self.sketches.contains_key(&from) {
                    return Err(replay("sketch"));
                }
                if sketches.len() != self.n() || sketches.iter().any(|&s| s >= sketch::P) {
                    return Err(unexpected("malformed sketch".into()));
                }
                self.sketches.insert(from, sketches.clone());
                self.sketch_msgs.insert(from, m);
                self.after_sketch(out);
            }
            Body::Verdict { .. } => {
                if self.verdicts.contains_key(&from) {
                    return Err(replay("verdict"));
                }
                self.verdicts.insert(from, m);
                self.after_verdict(out);
            }
            Body::ViewChange { .. } => unreachable!("handled above"),
        }
        Ok(())
    }

    fn after_commit(&mut self, out: &mut Vec<Out>) {
        if self.phase != Phase::Commit || self.commits.len() < self.n() {
            return;
        }
        let mut weights = Vec::new();
        let mut exps = Vec::new();
        let mut differ = Vec::new();
        for (&j, m) in &self.commits {
            if let Body::Commit(c) = &m.body {
                weights.push(c.weight);
                exps.push(c.exponent);
                if c.layout != self.input.layout {
                    differ.push(j);
                }
            }
        }
        if !differ.is_empty() {
            self.finish(Err(RingError::Layout {
                view: self.view,
                members: differ,
            }));
            return;
        }
        let scale = match fixed::scale_bits(&exps, &weights) {
            Ok(s) => s,
            Err(e) => {
                self.finish(Err(e.into()));
                return;
            }
        };
        self.scale = scale;
        self.total_weight = weights.iter().map(|&w| w as u128).sum();
        let len = self.input.values.len();
        self.scratch = vec![0; (self.ring.chunk_elements as usize).min(len)];
        let n = self.n();
        self.segs = segments(len, n);
        // Kept from the last view (every element a view reads is written in it first).
        if self.acc.len() != len || self.result.len() != len {
            self.acc = vec![0; len];
            self.result = vec![0; len];
        }
        let leaf = wire::LEAF_ELEMENTS;
        let aligned = (self.ring.chunk_elements as usize).is_multiple_of(leaf)
            && self.segs.iter().all(|s| s.start.is_multiple_of(leaf));
        self.result_leaves = if aligned {
            vec![None; len.div_ceil(leaf)]
        } else {
            Vec::new()
        };
        self.acc_out_of_range = vec![false; n];
        self.result_out_of_range = vec![false; n];
        let p = self.pos;
        self.expected = (0..n)
            .filter(|&g| g != p)
            .map(|g| self.chunks(g))
            .sum::<usize>()
            + (0..n)
                .filter(|&g| g != (p + 1) % n)
                .map(|g| self.chunks(g))
                .sum::<usize>();
        self.phase = Phase::Data;
        // Scatter step 0: our own contribution to segment p.
        let succ = self.at(p + 1);
        for k in 0..self.chunks(p) {
            let hybrid = self.ring.is_hybrid();
            let c = self.own_contribution(self.chunk_range(p, k));
            let frame = wire::data_frame(c.len(), hybrid, |b| wire::put_le(b, c));
            let (frame, _) = self.sign_data_frame(frame, PHASE_SCATTER, 0, p, k, None);
            out.push(Out {
                to: succ,
                bytes: Arc::new(frame),
            });
        }
        for (from, m, payload) in std::mem::take(&mut self.early) {
            let _ = self.on_data(from, m, payload, out);
        }
        self.after_data(out);
    }

    /// Our contribution to the elements of `r` (at most one chunk), in the scratch buffer.
    fn own_contribution(&mut self, r: Range<usize>) -> &[i64] {
        let c = &mut self.scratch[..r.len()];
        self.input
            .values
            .contribution_into(r.start, self.input.weight, self.scale, c);
        c
    }

    fn chunks(&self, g: usize) -> usize {
        let ce = self.ring.chunk_elements as usize;
        self.segs[g].len().div_ceil(ce)
    }

    fn chunk_range(&self, g: usize, k: usize) -> Range<usize> {
        let ce = self.ring.chunk_elements as usize;
        let s = &self.segs[g];
        (s.start + k * ce)..(s.start + ((k + 1) * ce).min(s.len()))
    }

    /// Signs a data frame of [`wire::data_frame`] and writes its prefix. `digest` is the
    /// payload's digest when the caller already knows it (all-gather forwards the payload it
    /// received, whose digest it checked); otherwise it is hashed from the frame, and the
    /// leaf digests are returned too.
    fn sign_data_frame(
        &self,
        mut frame: Vec<u8>,
        phase: u8,
        step: usize,
        g: usize,
        k: usize,
        digest: Option<[u8; 32]>,
    ) -> (Vec<u8>, Vec<[u8; 32]>) {
        let pre = wire::data_prefix(self.ring.is_hybrid());
        #[cfg(test)]
        {
            let from_step = if self.n() == 2 { 0 } else { 1 };
            if self.faults.corrupt_partial_sums
                && self.view == 0
                && phase == PHASE_SCATTER
                && step >= from_step
                && frame.len() > pre
            {
                let first = &mut frame[pre..pre + 8];
                let v = i64::from_le_bytes((&*first).try_into().expect("8 bytes")) + 1000;
                first.copy_from_slice(&v.to_le_bytes());
            }
        }
        let (digest, leaves) = match digest {
            Some(d) => (d, Vec::new()),
            None => {
                let leaves = wire::leaves_of_bytes(&frame[pre..]);
                let count = (frame.len() - pre) / 8;
                (wire::digest_of_leaves(count, &leaves), leaves)
            }
        };
        let h = DataHeader {
            phase,
            step: step as u16,
            segment: g as u16,
            chunk: k as u32,
            digest,
        };
        let m = self.sign(Body::Data(h), Vec::new());
        wire::put_data_prefix(
            &mut frame,
            self.me as u16,
            self.view,
            &h,
            &m.sig,
            m.pq_sig.as_deref(),
        );
        (frame, leaves)
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

    fn on_data(
        &mut self,
        from: usize,
        m: Signed,
        payload: Payload,
        out: &mut Vec<Out>,
    ) -> Result<(), Refused> {
        let view = self.view;
        let unexpected = |what: String| Refused::Unexpected {
            sender: from,
            view,
            what,
        };
        let Body::Data(h) = m.body else {
            unreachable!("data")
        };
        let n = self.n();
        let p = self.pos;
        let (s, g, k) = (h.step as usize, h.segment as usize, h.chunk as usize);
        if s > n - 2 || h.phase > PHASE_GATHER {
            return Err(unexpected(format!("data step {s}")));
        }
        let want = if h.phase == PHASE_SCATTER {
            (p + 2 * n - 1 - s) % n
        } else {
            (p + 2 * n - s) % n
        };
        if g != want || k >= self.chunks(g) {
            return Err(unexpected(format!(
                "data for segment {g} chunk {k} at step {s} (expected segment {want})"
            )));
        }
        let r = self.chunk_range(g, k);
        // The payload digest was checked by the verifier.
        if payload.len() != r.len() {
            return Err(unexpected(format!(
                "data with {} elements for a chunk of {}",
                payload.len(),
                r.len()
            )));
        }
        let succ = self.at(p + 1);
        // One pass per chunk, while it is in cache: store what we received (for the sketch
        // check and as evidence), check its range, and turn the received frame into the one
        // we send (payload rewritten in place, new prefix): no copy of the message, no new
        // buffer. The message keeps only its header (the receipt kept below).
        let out_of_bound = |v: i64| v <= -fixed::BOUND || v >= fixed::BOUND;
        let mut bad = false;
        let leaves = payload.leaves;
        let mut frame = payload.frame;
        // The prefix has the same length in the frame we received and the one we send.
        let hybrid = self.ring.is_hybrid();
        let pre = wire::data_prefix(hybrid);
        if payload.range != (pre..frame.len()) {
            // Not the layout `decode_split` gives; never happens, but stay correct.
            let bytes = frame[payload.range.clone()].to_vec();
            frame = wire::data_frame(bytes.len() / 8, hybrid, |b| b.copy_from_slice(&bytes));
        }
        let body = &mut frame[pre..];
        if h.phase == PHASE_SCATTER {
            let last = s == n - 2;
            let c = &mut self.scratch[..r.len()];
            self.input
                .values
                .contribution_into(r.start, self.input.weight, self.scale, c);
            let c = &*c;
            let acc = &mut self.acc[r.clone()];
            if last {
                // We complete segment g: keep the sum, and start its all-gather.
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
            self.acc_out_of_range[g] |= bad;
            let (phase, step) = if last {
                (PHASE_GATHER, 0)
            } else {
                (PHASE_SCATTER, s + 1)
            };
            let (frame, sent) = self.sign_data_frame(frame, phase, step, g, k, None);
            if last {
                self.put_result_leaves(r.start, &sent);
            }
            out.push(Out {
                to: succ,
                bytes: Arc::new(frame),
            });
        } else {
            for (d, v) in self.result[r.clone()].iter_mut().zip(wire::get_le(body)) {
                *d = v;
                bad |= out_of_bound(v);
            }
            self.result_out_of_range[g] |= bad;
            self.put_result_leaves(r.start, &leaves);
            if s < n - 2 {
                // Same payload, same digest: no need to hash it again.
                let (frame, _) =
                    self.sign_data_frame(frame, PHASE_GATHER, s + 1, g, k, Some(h.digest));
                out.push(Out {
                    to: succ,
                    bytes: Arc::new(frame),
                });
            }
        }
        self.received.insert((h.phase, h.segment, h.chunk), m);
        self.after_data(out);
        Ok(())
    }

    fn after_data(&mut self, out: &mut Vec<Out>) {
        if self.phase != Phase::Data || self.received.len() < self.expected {
            return;
        }
        self.phase = Phase::Reveal;
        let m = self.sign(Body::Reveal { nonce: self.nonce }, Vec::new());
        self.broadcast(&m, out);
        self.reveals.insert(self.me, self.nonce);
        self.after_reveal(out);
    }

    fn after_reveal(&mut self, out: &mut Vec<Out>) {
        if self.phase != Phase::Reveal || self.reveals.len() < self.n() {
            return;
        }
        self.seed = seed(
            &self.rd,
            self.view,
            self.members
                .iter()
                .map(|j| (&self.commits[j], &self.reveals[j])),
        );
        let sk = self.sketch_contribution();
        self.phase = Phase::Sketch;
        let m = self.sign(
            Body::Sketch {
                sketches: sk.clone(),
            },
            Vec::new(),
        );
        self.broadcast(&m, out);
        self.sketches.insert(self.me, sk);
        self.sketch_msgs.insert(self.me, m);
        self.after_sketch(out);
    }

    fn point(&self, g: usize) -> u64 {
        sketch::point(&self.seed, g as u32)
    }

    /// `σ_g(v[segment g])` for every segment `g` with `want(g)` (0 for the others), segments in
    /// parallel on the rayon pool.
    fn sketch_segments(&self, v: &[i64], want: impl Fn(usize) -> bool + Sync) -> Vec<u64> {
        use rayon::prelude::*;
        let points: Vec<u64> = (0..self.n()).map(|g| self.point(g)).collect();
        self.segs
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
        let (values, w, f) = (&self.input.values, self.input.weight, self.scale);
        self.segs
            .par_iter()
            .enumerate()
            .map(|(g, r)| {
                sketch::sketch_blocks(r.len(), self.point(g), 1 << 14, |start, buf| {
                    values.contribution_into(r.start + start, w, f, buf)
                })
            })
            .collect()
    }

    /// Positions that contributed to the message sent by position `q` at (phase, step).
    fn contributors(&self, q: usize, phase: u8, step: usize) -> Vec<usize> {
        let n = self.n();
        if phase == PHASE_SCATTER {
            (0..=step).map(|j| (q + n - j) % n).collect()
        } else {
            (0..n).collect()
        }
    }

    fn expected_sketch(&self, g: usize, contributors: &[usize]) -> u64 {
        sketch::sum(
            contributors
                .iter()
                .map(|&q| self.sketches[&self.members[q]][g]),
        )
    }

    fn after_sketch(&mut self, out: &mut Vec<Out>) {
        if self.phase != Phase::Sketch || self.sketches.len() < self.n() {
            return;
        }
        let n = self.n();
        let p = self.pos;
        let q = (p + n - 1) % n;
        let mut evidence = Vec::new();
        // Scatter: every segment but our own; all-gather: every segment but the one we reduced.
        let acc_sk = self.sketch_segments(&self.acc, |g| g != p);
        let result_sk = self.sketch_segments(&self.result, |g| g != (p + 1) % n);
        for g in 0..n {
            if g != p {
                let s = (q + n - g) % n;
                let ok = !self.acc_out_of_range[g]
                    && acc_sk[g]
                        == self.expected_sketch(g, &self.contributors(q, PHASE_SCATTER, s));
                if !ok {
                    evidence.extend(self.evidence_for(PHASE_SCATTER, g, &self.acc));
                }
            }
            if g != (p + 1) % n {
                let ok = !self.result_out_of_range[g]
                    && result_sk[g]
                        == self.expected_sketch(g, &self.contributors(q, PHASE_GATHER, 0));
                if !ok {
                    evidence.extend(self.evidence_for(PHASE_GATHER, g, &self.result));
                }
            }
        }
        // D(S) from the leaf digests already computed when its chunks were checked or sent,
        // when every chunk starts on a leaf boundary; else from the bytes.
        let leaves: Option<Vec<[u8; 32]>> = self.result_leaves.iter().copied().collect();
        self.sum_digest = match leaves {
            Some(l) if !self.result_leaves.is_empty() => {
                wire::digest_of_leaves(self.result.len(), &l)
            }
            _ => wire::payload_digest(&self.result),
        };
        debug_assert_eq!(self.sum_digest, wire::payload_digest(&self.result));
        self.result_digest = result_digest_of(
            &self.input.layout,
            self.scale,
            self.total_weight,
            &self.sum_digest,
        );
        self.my_ok = evidence.is_empty();
        self.phase = Phase::Verdict;
        let m = self.sign(
            Body::Verdict {
                ok: self.my_ok,
                result: self.result_digest,
                evidence,
            },
            Vec::new(),
        );
        self.broadcast(&m, out);
        self.verdicts.insert(self.me, m);
        self.after_verdict(out);
    }

    /// The signed messages (with payload) we received for segment `g` in `phase`.
    fn evidence_for(&self, phase: u8, g: usize, store: &[i64]) -> Vec<Signed> {
        (0..self.chunks(g))
            .filter_map(|k| {
                let m = self.received.get(&(phase, g as u16, k as u32))?;
                let mut e = m.clone();
                e.payload = store[self.chunk_range(g, k)].to_vec();
                Some(e)
            })
            .collect()
    }

    /// The bad messages that `evidence` proves. Invalid evidence proves nothing.
    fn proven(&self, evidence: &[Signed]) -> (BTreeSet<BadMsg>, bool) {
        let n = self.n();
        let mut groups: BTreeMap<BadMsg, Vec<&Signed>> = BTreeMap::new();
        let mut all_valid = true;
        for e in evidence {
            let Body::Data(h) = &e.body else {
                all_valid = false;
                continue;
            };
            let sender = e.sender as usize;
            let (Some(q), Some(member)) = (self.pos_of(sender), self.ring.members.get(sender))
            else {
                all_valid = false;
                continue;
            };
            let g = h.segment as usize;
            let s = h.step as usize;
            let consistent = e.view == self.view
                && s <= n - 2
                && g < n
                && (h.chunk as usize) < self.chunks(g)
                && e.payload.len() == self.chunk_range(g, h.chunk as usize).len()
                && g == if h.phase == PHASE_SCATTER {
                    (q + n - s) % n
                } else {
                    (q + 1 + n - s) % n
                }
                && wire::payload_digest(&e.payload) == h.digest
                && e.verify(&self.rd, &member.public);
            if !consistent {
                all_valid = false;
                continue;
            }
            groups
                .entry((q, h.phase, h.step, h.segment))
                .or_default()
                .push(e);
        }
        let mut bad = BTreeSet::new();
        for (key @ (q, phase, step, g), msgs) in groups {
            let g = g as usize;
            let mut seg = vec![0i64; self.segs[g].len()];
            let mut have = BTreeSet::new();
            let mut range_bad = false;
            for e in msgs {
                let Body::Data(h) = &e.body else { continue };
                let r = self.chunk_range(g, h.chunk as usize);
                let off = r.start - self.segs[g].start;
                seg[off..off + r.len()].copy_from_slice(&e.payload);
                have.insert(h.chunk);
                range_bad |= fixed::out_of_range(&e.payload).is_some();
            }
            let complete = have.len() == self.chunks(g);
            let sketch_bad = complete
                && sketch::sketch(&seg, self.point(g))
                    != self.expected_sketch(g, &self.contributors(q, phase, step as usize));
            if range_bad || sketch_bad {
                bad.insert(key);
            } else {
                all_valid = false;
            }
        }
        (bad, all_valid)
    }

    fn after_verdict(&mut self, out: &mut Vec<Out>) {
        if self.phase != Phase::Verdict || self.verdicts.len() < self.n() {
            return;
        }
        let n = self.n();
        let mut all_bad = BTreeSet::new();
        let mut culprits: BTreeMap<usize, String> = BTreeMap::new();
        let mut all_ok = true;
        for (&j, v) in &self.verdicts {
            let Body::Verdict {
                ok,
                result,
                evidence,
            } = &v.body
            else {
                continue;
            };
            if *ok {
                if self.my_ok && *result != self.result_digest {
                    culprits.insert(j, "signed a receipt for a different result".into());
                }
                continue;
            }
            all_ok = false;
            let (bad, valid) = self.proven(evidence);
            if bad.is_empty() || !valid {
                culprits.insert(j, "accused a member without valid evidence".into());
            }
            all_bad.extend(bad);
        }
        for &(q, phase, step, g) in &all_bad {
            let pred = (q + n - 1) % n;
            let prev = match (phase, step) {
                (PHASE_SCATTER, 0) => None,
                (PHASE_SCATTER, s) => Some((PHASE_SCATTER, s - 1)),
                (_, 0) => Some((PHASE_SCATTER, (n - 2) as u16)),
                (_, s) => Some((PHASE_GATHER, s - 1)),
            };
            let exonerated = prev.is_some_and(|(ph, st)| all_bad.contains(&(pred, ph, st, g)));
            if !exonerated {
                let what = if phase == PHASE_SCATTER {
                    "scatter-reduce"
                } else {
                    "all-gather"
                };
                culprits.insert(
                    self.members[q],
                    format!("signed a corrupted partial sum ({what} step {step}, segment {g})"),
                );
            }
        }
        if all_ok && culprits.is_empty() {
            let members = self.members.clone();
            let commit = |j: &usize| match &self.commits[j].body {
                Body::Commit(c) => c.clone(),
                _ => unreachable!("commit"),
            };
            let outcome = Outcome {
                view: self.view,
                weights: members.iter().map(|j| commit(j).weight).collect(),
                input_digests: members.iter().map(|j| commit(j).input).collect(),
                timestamps: members.iter().map(|j| commit(j).timestamp).collect(),
                members: members.clone(),
                scale: self.scale,
                total_weight: self.total_weight,
                sum: std::mem::take(&mut self.result),
                sum_digest: self.sum_digest,
                result_digest: self.result_digest,
                seed: self.seed,
                receipts: members.iter().map(|j| self.verdicts[j].clone()).collect(),
                commits: members.iter().map(|j| self.commits[j].clone()).collect(),
                nonces: members.iter().map(|j| self.reveals[j]).collect(),
                sketches: members
                    .iter()
                    .map(|j| self.sketch_msgs[j].clone())
                    .collect(),
                excluded: self.excluded.clone(),
            };
            self.finish(Ok(outcome));
            return;
        }
        self.convicted = culprits;
        self.enter_view_change(Vec::new(), out);
        self.maybe_decide_view(out);
    }

    fn finish(&mut self, r: Result<Outcome, RingError>) {
        self.phase = Phase::Finished;
        self.scratch = Vec::new();
        self.acc = Vec::new();
        self.outcome = Some(r);
    }

    fn enter_view_change(&mut self, evidence: Vec<Signed>, out: &mut Vec<Out>) {
        if self.phase == Phase::ViewChange || self.phase == Phase::Finished {
            return;
        }
        self.phase = Phase::ViewChange;
        let m = self.sign(Body::ViewChange { evidence }, Vec::new());
        self.broadcast(&m, out);
        self.vc.insert(self.me, m);
    }

    /// Decides the next view once every member not known dead has answered.
    fn maybe_decide_view(&mut self, out: &mut Vec<Out>) {
        if self.phase != Phase::ViewChange {
            return;
        }
        let waiting = self.members.iter().any(|m| {
            !self.vc.contains_key(m) && !self.dead.contains(m) && !self.convicted.contains_key(m)
        });
        if !waiting {
            self.decide_view(out);
        }
    }

    fn decide_view(&mut self, out: &mut Vec<Out>) {
        let old = self.view;
        let mut next = Vec::new();
        for &m in &self.members {
            if let Some(reason) = self.convicted.get(&m) {
                self.excluded.push(Exclusion {
                    member: m,
                    view: old,
                    reason: reason.clone(),
                });
            } else if m == self.me || self.vc.contains_key(&m) {
                next.push(m);
            } else {
                let reason = if self.dead.contains(&m) {
                    "connection lost"
                } else {
                    "did not answer in time"
                };
                self.excluded.push(Exclusion {
                    member: m,
                    view: old,
                    reason: reason.into(),
                });
            }
        }
        let next_view = old + 1;
        if !next.contains(&self.me) {
            self.finish(Err(RingError::Excluded { view: next_view }));
            return;
        }
        if next.len() < 2 {
            self.finish(Err(RingError::TooFew {
                view: next_view,
                members: next.len(),
            }));
            return;
        }
        if next_view > self.max_views {
            self.finish(Err(RingError::TooManyViews { views: next_view }));
            return;
        }
        self.view = next_view;
        self.members = next;
        self.begin_view(out);
    }

    /// The driver's per-step timer fired with no progress.
    pub fn on_timeout(&mut self) -> Vec<Out> {
        let mut out = Vec::new();
        match self.phase {
            Phase::Finished => {}
            Phase::ViewChange => self.decide_view(&mut out),
            _ => self.enter_view_change(Vec::new(), &mut out),
        }
        out
    }

    /// The connection to `member` broke.
    pub fn peer_lost(&mut self, member: usize) -> Vec<Out> {
        let mut out = Vec::new();
        if self.outcome.is_some() || !self.dead.insert(member) || self.pos_of(member).is_none() {
            return out;
        }
        // A member that already gave its verdict has nothing left to send.
        if self.phase == Phase::Verdict && self.verdicts.contains_key(&member) {
            return out;
        }
        self.enter_view_change(Vec::new(), &mut out);
        self.maybe_decide_view(&mut out);
        out
    }
}

#[cfg(test)]
mod tests;
