//! The round logic: an I/O-free state machine. The HTTP driver decodes and authenticates a
//! request, turns it into an [`Input`] and calls [`Machine::handle`] with the current time;
//! the machine either refuses the input (and changes nothing) or returns the [`Decision`]s it
//! took, already applied. The driver appends them to the signed log; [`Machine::replay`] applies
//! a log's decisions again and reaches the same state, so a restarted orchestrator continues
//! exactly where the last logged decision left it. Timeouts are inputs too ([`Input::Tick`]).
//!
//! A round: Waiting (for `min_workers` admitted workers) → Training (the members train
//! `aggregate_interval` steps from the current aggregate and report their delta) → Ring (the
//! reporters average in one ring; each reports the result's content address) → Accept (the
//! agreed result is the next round's starting point) → the next round, or Finished.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::job::JobSpec;
use super::topology::RingTopology;
use crate::core::reward::records::RingReceipt;

/// One decision of the orchestrator: the unit of the append-only log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Decision {
    /// A roster member registered (again): its Ed25519 key (base64) and ring address.
    Admit {
        worker: String,
        ed25519: String,
        ring_addr: String,
    },
    /// A worker is dropped until it registers again.
    Evict { worker: String, reason: String },
    /// A round starts with these members, from this aggregate (None: the base model).
    StartRound {
        round: u64,
        members: Vec<String>,
        base: Option<String>,
    },
    /// A member's signed delta for the round (content address), its weight and metrics.
    Reported {
        round: u64,
        worker: String,
        object: String,
        weight: u64,
        #[serde(with = "exact_f64")]
        reward: f64,
        #[serde(with = "exact_f64")]
        loss: f64,
    },
    /// The ring(s) of the round, each in ring order: the member groups, and (past
    /// `ring_size` members) the leader rings above them (see `topology::Plan`).
    Topology {
        round: u64,
        rings: Vec<Vec<String>>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        leaders: Vec<Vec<Vec<String>>>,
    },
    /// A ring member's result (content address of the averaged delta).
    Result {
        round: u64,
        worker: String,
        object: String,
        /// The signed `forward` receipt the worker issued about its ring predecessor.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        receipt: Option<Box<RingReceipt>>,
    },
    /// The round's aggregate: the result the quorum agreed on.
    Accept {
        round: u64,
        object: String,
        members: Vec<String>,
    },
    /// The round failed (too few reports or results); it is trained again.
    Abandon { round: u64, reason: String },
    /// An epoch's checkpoint was published.
    Published {
        epoch: u64,
        object: String,
        cid: String,
        location: String,
        /// The Hub commit's URL (when the job publishes to the Hub).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hf: Option<String>,
    },
    /// After the last epoch: the merged model (that epoch's adapter merged into the base).
    PublishedMerged {
        epoch: u64,
        cid: String,
        location: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hf: Option<String>,
    },
    /// An operator stopped the job.
    Stop,
    /// Every round of every epoch is accepted.
    Finish,
    /// The round's reports go to the validators before any ring (`[validation]`).
    Validate { round: u64 },
    /// A validator's signed verdict on a reported delta (`report`: its `gym-eval-report/1`).
    Verdict {
        round: u64,
        validator: String,
        subject: String,
        object: String,
        pass: bool,
        report: String,
    },
    /// Which deltas enter the round's ring (a quorum of `pass` verdicts) and which do not.
    Admission {
        round: u64,
        admitted: Vec<String>,
        refused: Vec<RefusedDelta>,
    },
}

/// Floats in the log as decimal strings: Rust's `f64` formatting and parsing round-trip
/// exactly, serde_json's float parsing (without its `float_roundtrip` feature) does not, and a
/// signed entry must re-serialise to the same bytes.
mod exact_f64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:?}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What the driver feeds the machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Register {
        worker: String,
        ed25519: String,
        ring_addr: String,
    },
    Report {
        worker: String,
        round: u64,
        object: String,
        weight: u64,
        reward: f64,
        loss: f64,
    },
    Result {
        worker: String,
        round: u64,
        object: String,
        receipt: Option<Box<RingReceipt>>,
    },
    Published {
        epoch: u64,
        object: String,
        cid: String,
        location: String,
        hf: Option<String>,
    },
    PublishedMerged {
        epoch: u64,
        cid: String,
        location: String,
        hf: Option<String>,
    },
    Stop,
    Tick,
    /// A validator's signed verdict (checked by the driver: signature, signer, digest).
    Verdict(VerdictInput),
}

/// Why an input was refused (it changed nothing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0} is not on the job's roster")]
    NotOnRoster(String),
    #[error("{0} is not admitted (register first)")]
    NotAdmitted(String),
    #[error("the job already has max_workers ({0}) workers")]
    Full(usize),
    #[error("round {got} is not the current {phase} round ({current})")]
    WrongRound {
        got: u64,
        current: String,
        phase: &'static str,
    },
    #[error("{worker} is not a member of round {round}")]
    NotMember { worker: String, round: u64 },
    #[error("{worker} already reported for round {round}")]
    Duplicate { worker: String, round: u64 },
    #[error("the job is finished")]
    Finished,
    #[error("{0}")]
    Invalid(String),
}

/// A worker the orchestrator admitted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerInfo {
    pub ed25519: String,
    pub ring_addr: String,
    pub admitted_at: u64,
}

/// A member's report in the training phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub object: String,
    pub weight: u64,
    pub reward: f64,
    pub loss: f64,
}

/// Waiting for enough workers to start `round`.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    pub round: u64,
    pub since: u64,
}

/// The members train and report.
#[derive(Debug, Clone, PartialEq)]
pub struct Training {
    pub round: u64,
    pub base: Option<String>,
    pub members: BTreeSet<String>,
    pub reports: BTreeMap<String, Report>,
    pub deadline: u64,
}

/// The reporters average; each reports the result.
#[derive(Debug, Clone, PartialEq)]
pub struct Ringing {
    pub round: u64,
    pub base: Option<String>,
    pub reports: BTreeMap<String, Report>,
    pub rings: Vec<Vec<String>>,
    /// The leader rings above the groups (empty for one ring).
    pub leaders: Vec<Vec<Vec<String>>>,
    pub results: BTreeMap<String, String>,
    pub deadline: u64,
}

/// Nothing more to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub stopped: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    Waiting(Waiting),
    Training(Training),
    Ring(Ringing),
    Finished(Finished),
    Validating(Validating),
}

impl Phase {
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Waiting(_) => "waiting",
            Phase::Training(_) => "training",
            Phase::Ring(_) => "ring",
            Phase::Finished(f) if f.stopped => "stopped",
            Phase::Finished(_) => "finished",
            Phase::Validating(_) => "validating",
        }
    }
}

/// An accepted round.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Accepted {
    pub round: u64,
    pub epoch: u64,
    pub object: String,
    pub members: Vec<String>,
    /// Mean reward and loss over the members' reports.
    pub reward: f64,
    pub loss: f64,
}

/// A published checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PublishedCheckpoint {
    pub epoch: u64,
    pub object: String,
    pub cid: String,
    pub location: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hf: Option<String>,
}

/// The merged model published after the last epoch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PublishedModel {
    pub epoch: u64,
    pub cid: String,
    pub location: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hf: Option<String>,
}

/// The parameters of the round logic (from the job file).
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub roster: BTreeSet<String>,
    pub epochs: u64,
    pub rounds_per_epoch: u64,
    pub min_workers: usize,
    pub max_workers: usize,
    pub ring_size: usize,
    pub redundancy: usize,
    pub join_ms: u64,
    pub train_ms: u64,
    pub ring_ms: u64,
    /// The validators' admission rule (None: no validation).
    pub validation: Option<AdmissionRule>,
    /// Publish the merged model after the last epoch.
    pub merged: bool,
}

impl Rules {
    pub fn from_job(job: &JobSpec) -> Self {
        let ms = |s: f64| (s * 1000.0).round() as u64;
        Rules {
            roster: job.roster.iter().map(|r| r.id.clone()).collect(),
            epochs: job.epochs,
            rounds_per_epoch: job.rounds_per_epoch,
            min_workers: job.min_workers,
            max_workers: job.max_workers,
            ring_size: job.ring_size,
            redundancy: job.redundancy,
            join_ms: ms(job.timeouts.join),
            train_ms: ms(job.timeouts.train),
            ring_ms: ms(job.timeouts.ring),
            validation: AdmissionRule::from_job(job),
            merged: job.publish.merged,
        }
    }

    pub fn total_rounds(&self) -> u64 {
        self.epochs * self.rounds_per_epoch
    }

    /// Agreeing results needed to accept a ring of `n` members.
    pub fn quorum(&self, n: usize) -> usize {
        n.saturating_sub(self.redundancy).max(2)
    }
}

/// The whole state of a job's round logic.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    pub rules: Rules,
    pub workers: BTreeMap<String, WorkerInfo>,
    pub phase: Phase,
    pub accepted: Vec<Accepted>,
    pub published: Vec<PublishedCheckpoint>,
    pub merged: Option<PublishedModel>,
    /// Rounds abandoned (retried), for status.
    pub abandoned: u64,
}

impl Machine {
    pub fn new(rules: Rules) -> Self {
        Machine {
            rules,
            workers: BTreeMap::new(),
            phase: Phase::Waiting(Waiting { round: 0, since: 0 }),
            accepted: Vec::new(),
            published: Vec::new(),
            merged: None,
            abandoned: 0,
        }
    }

    /// Applies a log's decisions (each with its time) in order.
    pub fn replay<'a>(rules: Rules, log: impl IntoIterator<Item = (u64, &'a Decision)>) -> Self {
        let mut m = Machine::new(rules);
        for (at, d) in log {
            m.apply(d, at);
        }
        m
    }

    /// The latest accepted aggregate (the next round's starting point).
    pub fn aggregate(&self) -> Option<&str> {
        self.accepted.last().map(|a| a.object.as_str())
    }

    /// Epochs whose last round is accepted but whose checkpoint is not published yet.
    pub fn unpublished(&self) -> Vec<(u64, String)> {
        let per = self.rules.rounds_per_epoch;
        self.accepted
            .iter()
            .filter(|a| (a.round + 1) % per == 0)
            .filter(|a| !self.published.iter().any(|p| p.epoch == a.epoch))
            .map(|a| (a.epoch, a.object.clone()))
            .collect()
    }

    /// The epoch whose adapter is to be merged and published: the last one, once the job
    /// finished (not stopped), every checkpoint is published and the job asks for it.
    pub fn merge_due(&self) -> Option<u64> {
        let done = matches!(self.phase, Phase::Finished(Finished { stopped: false }));
        if !self.rules.merged || !done || self.merged.is_some() {
            return None;
        }
        if !self.unpublished().is_empty() {
            return None;
        }
        self.published.iter().map(|p| p.epoch).max()
    }

    /// Nothing is left to publish (the job may still be running).
    pub fn all_published(&self) -> bool {
        self.unpublished().is_empty() && self.merge_due().is_none()
    }

    /// Handles one input at time `now` (milliseconds): refuses it, changing nothing, or returns
    /// the decisions taken (already applied).
    pub fn handle(&mut self, input: Input, now: u64) -> Result<Vec<Decision>, Refusal> {
        let mut out = Vec::new();
        if let Some(d) = self.decide(input, now)? {
            self.apply(&d, now);
            out.push(d);
        }
        while let Some(d) = self.next_decision(now) {
            self.apply(&d, now);
            out.push(d);
        }
        Ok(out)
    }

    fn finished(&self) -> bool {
        matches!(self.phase, Phase::Finished(_))
    }

    /// Checks an input against the state; the decision it asks for, if any.
    fn decide(&self, input: Input, now: u64) -> Result<Option<Decision>, Refusal> {
        let _ = now;
        match input {
            Input::Register {
                worker,
                ed25519,
                ring_addr,
            } => self.decide_register(worker, ed25519, ring_addr),
            Input::Report {
                worker,
                round,
                object,
                weight,
                reward,
                loss,
            } => {
                let t = self.training(round)?;
                self.check_member(&worker, round, t.members.contains(&worker))?;
                if t.reports.contains_key(&worker) {
                    return Err(Refusal::Duplicate { worker, round });
                }
                if !(reward.is_finite() && loss.is_finite()) {
                    return Err(Refusal::Invalid("reward and loss must be finite".into()));
                }
                Ok(Some(Decision::Reported {
                    round,
                    worker,
                    object,
                    weight,
                    reward,
                    loss,
                }))
            }
            Input::Result {
                worker,
                round,
                object,
                receipt,
            } => {
                let r = self.ringing(round)?;
                let member = r.rings.iter().any(|ring| ring.contains(&worker));
                self.check_member(&worker, round, member)?;
                if r.results.contains_key(&worker) {
                    return Err(Refusal::Duplicate { worker, round });
                }
                Ok(Some(Decision::Result {
                    round,
                    worker,
                    object,
                    receipt,
                }))
            }
            Input::Published {
                epoch,
                object,
                cid,
                location,
                hf,
            } => {
                if !self.unpublished().contains(&(epoch, object.clone())) {
                    return Err(Refusal::Invalid(format!(
                        "epoch {epoch} has no unpublished checkpoint {object}"
                    )));
                }
                Ok(Some(Decision::Published {
                    epoch,
                    object,
                    cid,
                    location,
                    hf,
                }))
            }
            Input::PublishedMerged {
                epoch,
                cid,
                location,
                hf,
            } => {
                if self.merge_due() != Some(epoch) {
                    return Err(Refusal::Invalid(format!(
                        "no merged model of epoch {epoch} is due"
                    )));
                }
                Ok(Some(Decision::PublishedMerged {
                    epoch,
                    cid,
                    location,
                    hf,
                }))
            }
            Input::Stop if self.finished() => Err(Refusal::Finished),
            Input::Stop => Ok(Some(Decision::Stop)),
            Input::Tick => Ok(None),
            Input::Verdict(v) => self.decide_verdict(v),
        }
    }

    fn decide_register(
        &self,
        worker: String,
        ed25519: String,
        ring_addr: String,
    ) -> Result<Option<Decision>, Refusal> {
        if !self.rules.roster.contains(&worker) {
            return Err(Refusal::NotOnRoster(worker));
        }
        if self.finished() {
            return Err(Refusal::Finished);
        }
        if self.is_validator(&worker) {
            return Err(Refusal::Invalid(format!(
                "{worker} is a validator of the job: it validates (POST /v1/validator), it does not train"
            )));
        }
        if ring_addr.is_empty() || ring_addr.len() > 255 {
            return Err(Refusal::Invalid("ring_addr must be 1 to 255 bytes".into()));
        }
        match self.workers.get(&worker) {
            Some(w) if w.ed25519 == ed25519 && w.ring_addr == ring_addr => Ok(None),
            Some(_) => Ok(Some(Decision::Admit {
                worker,
                ed25519,
                ring_addr,
            })),
            None if self.workers.len() >= self.rules.max_workers => {
                Err(Refusal::Full(self.rules.max_workers))
            }
            None => Ok(Some(Decision::Admit {
                worker,
                ed25519,
                ring_addr,
            })),
        }
    }

    fn check_member(&self, worker: &str, round: u64, member: bool) -> Result<(), Refusal> {
        if !self.rules.roster.contains(worker) {
            return Err(Refusal::NotOnRoster(worker.into()));
        }
        if !self.workers.contains_key(worker) {
            return Err(Refusal::NotAdmitted(worker.into()));
        }
        if !member {
            return Err(Refusal::NotMember {
                worker: worker.into(),
                round,
            });
        }
        Ok(())
    }

    fn wrong_round(&self, got: u64, phase: &'static str) -> Refusal {
        let current = match &self.phase {
            Phase::Waiting(w) => format!("none: waiting to start round {}", w.round),
            Phase::Training(t) => format!("{} (training)", t.round),
            Phase::Ring(r) => format!("{} (ring)", r.round),
            Phase::Validating(v) => format!("{} (validating)", v.round),
            Phase::Finished(_) => return Refusal::Finished,
        };
        Refusal::WrongRound {
            got,
            current,
            phase,
        }
    }

    fn training(&self, round: u64) -> Result<&Training, Refusal> {
        match &self.phase {
            Phase::Training(t) if t.round == round => Ok(t),
            _ => Err(self.wrong_round(round, "training")),
        }
    }

    fn ringing(&self, round: u64) -> Result<&Ringing, Refusal> {
        match &self.phase {
            Phase::Ring(r) if r.round == round => Ok(r),
            _ => Err(self.wrong_round(round, "ring")),
        }
    }

    /// The decision the state calls for by itself at `now` (progress and timeouts), if any.
    fn next_decision(&self, now: u64) -> Option<Decision> {
        match &self.phase {
            Phase::Waiting(w) => self.next_waiting(w),
            Phase::Training(t) => self.after_training(t, now),
            Phase::Ring(r) => self.next_ring(r, now),
            Phase::Finished(_) => None,
            Phase::Validating(v) => self.next_validating(v, now),
        }
    }

    fn next_waiting(&self, w: &Waiting) -> Option<Decision> {
        if w.round >= self.rules.total_rounds() {
            return Some(Decision::Finish);
        }
        if self.workers.len() < self.rules.min_workers {
            return None;
        }
        Some(Decision::StartRound {
            round: w.round,
            members: self.workers.keys().cloned().collect(),
            base: self.aggregate().map(str::to_string),
        })
    }

    fn next_training(&self, t: &Training, now: u64) -> Option<Decision> {
        let all_in = t.reports.len() == t.members.len();
        if !all_in && now < t.deadline {
            return None;
        }
        if let Some(silent) = t
            .members
            .iter()
            .find(|m| !t.reports.contains_key(*m) && self.workers.contains_key(*m))
        {
            return Some(Decision::Evict {
                worker: silent.clone(),
                reason: format!("no report for round {} in time", t.round),
            });
        }
        let reporters: Vec<String> = t
            .reports
            .keys()
            .filter(|w| self.workers.contains_key(*w))
            .cloned()
            .collect();
        if reporters.len() < 2 {
            return Some(Decision::Abandon {
                round: t.round,
                reason: format!("{} report(s), a ring needs 2", reporters.len()),
            });
        }
        let topo = RingTopology::new(self.rules.ring_size, self.rules.redundancy);
        let addrs: Vec<(String, String)> = reporters
            .iter()
            .map(|w| (w.clone(), self.workers[w].ring_addr.clone()))
            .collect();
        let plan = topo.plan(&addrs);
        Some(Decision::Topology {
            round: t.round,
            rings: plan.groups,
            leaders: plan.leaders,
        })
    }

    /// The result enough groups agree on, with its supporters, if any. A group contributes
    /// `object` when at least `quorum(group size)` of its members report it (every member of
    /// a group holds the group's sum, so its first live member carries it upward); the round
    /// needs every group but `redundancy` to contribute (one ring: that ring).
    fn agreed(&self, r: &Ringing) -> Option<(String, Vec<String>)> {
        let objects: BTreeSet<&String> = r.results.values().collect();
        let groups = r.rings.len();
        let need = if groups == 1 {
            1
        } else {
            groups.saturating_sub(self.rules.redundancy).max(1)
        };
        let mut best: Option<(String, Vec<String>)> = None;
        for obj in objects {
            let reported = |w: &String| r.results.get(w) == Some(obj);
            let mut who = Vec::new();
            let mut contributing = 0;
            for ring in &r.rings {
                let support: Vec<&String> = ring.iter().filter(|w| reported(w)).collect();
                if support.len() >= self.rules.quorum(ring.len()) {
                    contributing += 1;
                    who.extend(support.into_iter().cloned());
                }
            }
            if contributing >= need && best.as_ref().is_none_or(|b| who.len() > b.1.len()) {
                best = Some((obj.clone(), who));
            }
        }
        best
    }

    fn next_ring(&self, r: &Ringing, now: u64) -> Option<Decision> {
        let members: Vec<&String> = r.rings.iter().flatten().collect();
        let all_in = members.iter().all(|m| r.results.contains_key(*m));
        if let Some((object, who)) = self.agreed(r)
            && (all_in || now >= r.deadline || who.len() == members.len())
        {
            return Some(Decision::Accept {
                round: r.round,
                object,
                members: who,
            });
        }
        if !all_in && now < r.deadline {
            return None;
        }
        if let Some(silent) = members
            .iter()
            .find(|m| !r.results.contains_key(**m) && self.workers.contains_key(**m))
        {
            return Some(Decision::Evict {
                worker: (*silent).clone(),
                reason: format!("no ring result for round {} in time", r.round),
            });
        }
        let reason = match r.rings.len() {
            1 => format!(
                "no result reached the quorum of {} of {} members",
                self.rules.quorum(members.len()),
                members.len()
            ),
            g => format!(
                "no result was agreed by {} of the {g} groups",
                g.saturating_sub(self.rules.redundancy).max(1)
            ),
        };
        Some(Decision::Abandon {
            round: r.round,
            reason,
        })
    }

    /// Applies one decision (from `handle` or from a log being replayed).
    pub fn apply(&mut self, d: &Decision, at: u64) {
        match d {
            Decision::Admit {
                worker,
                ed25519,
                ring_addr,
            } => {
                self.workers.insert(
                    worker.clone(),
                    WorkerInfo {
                        ed25519: ed25519.clone(),
                        ring_addr: ring_addr.clone(),
                        admitted_at: at,
                    },
                );
            }
            Decision::Evict { worker, .. } => {
                self.workers.remove(worker);
            }
            Decision::StartRound {
                round,
                members,
                base,
            } => {
                self.phase = Phase::Training(Training {
                    round: *round,
                    base: base.clone(),
                    members: members.iter().cloned().collect(),
                    reports: BTreeMap::new(),
                    deadline: at + self.rules.train_ms,
                });
            }
            Decision::Reported {
                worker,
                object,
                weight,
                reward,
                loss,
                ..
            } => {
                if let Phase::Training(t) = &mut self.phase {
                    t.reports.insert(
                        worker.clone(),
                        Report {
                            object: object.clone(),
                            weight: *weight,
                            reward: *reward,
                            loss: *loss,
                        },
                    );
                }
            }
            Decision::Topology {
                round,
                rings,
                leaders,
            } => {
                if let Some((base, reports)) = self.take_reports() {
                    self.phase = Phase::Ring(Ringing {
                        round: *round,
                        base,
                        reports,
                        rings: rings.clone(),
                        leaders: leaders.clone(),
                        results: BTreeMap::new(),
                        deadline: at + self.rules.ring_ms,
                    });
                }
            }
            Decision::Result { worker, object, .. } => {
                if let Phase::Ring(r) = &mut self.phase {
                    r.results.insert(worker.clone(), object.clone());
                }
            }
            Decision::Accept {
                round,
                object,
                members,
            } => self.apply_accept(*round, object, members, at),
            Decision::Abandon { round, .. } => {
                self.abandoned += 1;
                self.phase = Phase::Waiting(Waiting {
                    round: *round,
                    since: at,
                });
            }
            Decision::Published {
                epoch,
                object,
                cid,
                location,
                hf,
            } => self.published.push(PublishedCheckpoint {
                epoch: *epoch,
                object: object.clone(),
                cid: cid.clone(),
                location: location.clone(),
                hf: hf.clone(),
            }),
            Decision::PublishedMerged {
                epoch,
                cid,
                location,
                hf,
            } => {
                self.merged = Some(PublishedModel {
                    epoch: *epoch,
                    cid: cid.clone(),
                    location: location.clone(),
                    hf: hf.clone(),
                })
            }
            Decision::Stop => self.phase = Phase::Finished(Finished { stopped: true }),
            Decision::Finish => self.phase = Phase::Finished(Finished { stopped: false }),
            Decision::Validate { .. } | Decision::Verdict { .. } | Decision::Admission { .. } => {
                self.apply_validation(d, at)
            }
        }
    }

    fn apply_accept(&mut self, round: u64, object: &str, members: &[String], at: u64) {
        let Phase::Ring(r) = &self.phase else {
            return;
        };
        let n = r.reports.len().max(1) as f64;
        let reward = r.reports.values().map(|x| x.reward).sum::<f64>() / n;
        let loss = r.reports.values().map(|x| x.loss).sum::<f64>() / n;
        self.accepted.push(Accepted {
            round,
            epoch: round / self.rules.rounds_per_epoch,
            object: object.to_string(),
            members: members.to_vec(),
            reward,
            loss,
        });
        self.phase = Phase::Waiting(Waiting {
            round: round + 1,
            since: at,
        });
    }
}

#[path = "admission.rs"]
mod admission;
pub use admission::{AdmissionRule, RefusedDelta, Validating, VerdictInput};

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
