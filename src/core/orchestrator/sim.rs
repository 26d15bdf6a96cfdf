//! The round machine driven in-process by simulated workers with churn: the scale evidence
//! for hierarchical rounds (docs/orchestrator.md, "Scale"). No I/O, no sleeping: time is the
//! machine's input like everything else.
//!
//! Each round, each member independently meets one of four fates with probability
//! `churn / 4` each, or trains and averages normally:
//! - **dies in training**: never reports; evicted at the training deadline; registers again
//!   (a late join) one round later;
//! - **silent**: alive but too slow; its report arrives after the deadline and is refused; it
//!   was evicted and registers again at once (it enters the next round);
//! - **dies in the ring**: reports, then sends no result; its group ring survives up to
//!   `redundancy` such failures (the ring protocol's view change) and fails beyond that (no
//!   member of it reports a result); evicted workers register again one round later;
//! - **late join**: the dead of the round before and, in round 1, a spare pool of
//!   `churn / 4` × workers roster ids that were absent at the start register mid-round and
//!   enter the next round.

use std::collections::{BTreeMap, BTreeSet};

use rand::{Rng, SeedableRng};

use super::machine::{Decision, Input, Machine, Phase, Rules};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub workers: usize,
    pub ring_size: usize,
    pub redundancy: usize,
    /// Rounds to accept (the job's length).
    pub rounds: u64,
    /// Fraction of the members hit by churn per round (0.1: 10 %).
    pub churn: f64,
    pub seed: u64,
}

/// What happened.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SimReport {
    pub accepted: u64,
    pub abandoned: u64,
    /// Rounds started (accepted + abandoned).
    pub rounds: u64,
    pub inputs: u64,
    pub refused: u64,
    pub decisions: u64,
    pub evictions: u64,
    pub admissions: u64,
    /// Members of accepted rounds' agreed results, summed.
    pub agreeing_members: u64,
    /// Groups per round (last round).
    pub groups: usize,
}

impl SimReport {
    /// Accepted rounds over rounds started.
    pub fn completion(&self) -> f64 {
        self.accepted as f64 / self.rounds.max(1) as f64
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Fate {
    Ok,
    DieTraining,
    Silent,
    DieRing,
}

struct Sim {
    m: Machine,
    rng: rand::rngs::StdRng,
    now: u64,
    churn: f64,
    /// The round last started.
    cur: u64,
    /// Roster ids not admitted, with the round from which they may register again.
    away: BTreeMap<String, u64>,
    report: SimReport,
}

fn id(i: usize) -> String {
    format!("gym1sim{i:05}")
}

fn addr(i: usize) -> String {
    format!("198.18.{}.{}:7000", i / 250, i % 250 + 1)
}

impl Sim {
    fn feed(&mut self, input: Input) -> bool {
        self.report.inputs += 1;
        match self.m.handle(input, self.now) {
            Ok(ds) => {
                for d in &ds {
                    self.count(d);
                }
                true
            }
            Err(_) => {
                self.report.refused += 1;
                false
            }
        }
    }

    fn count(&mut self, d: &Decision) {
        self.report.decisions += 1;
        match d {
            Decision::Evict { worker, .. } => {
                self.report.evictions += 1;
                self.away.entry(worker.clone()).or_insert(self.cur + 1);
            }
            Decision::Admit { worker, .. } => {
                self.report.admissions += 1;
                self.away.remove(worker);
            }
            Decision::Accept { members, .. } => {
                self.report.accepted += 1;
                self.report.agreeing_members += members.len() as u64;
            }
            Decision::Abandon { .. } => self.report.abandoned += 1,
            Decision::StartRound { round, .. } => {
                self.report.rounds += 1;
                self.cur = *round;
            }
            Decision::Topology { rings, .. } => self.report.groups = rings.len(),
            _ => {}
        }
    }

    fn register(&mut self, w: &str) {
        let i: usize = w["gym1sim".len()..].parse().expect("a simulated id");
        self.feed(Input::Register {
            worker: w.to_string(),
            ed25519: format!("key{i}"),
            ring_addr: addr(i),
        });
    }

    /// Workers away whose downtime is over register (late joins).
    fn rejoin(&mut self) {
        let round = self.cur;
        let due: Vec<String> = self
            .away
            .iter()
            .filter(|(_, from)| **from <= round)
            .map(|(w, _)| w.clone())
            .collect();
        for w in due {
            self.register(&w);
        }
    }

    fn fate(&mut self) -> Fate {
        let x: f64 = self.rng.r#gen::<f64>();
        let q = self.churn / 4.0;
        match x {
            x if x < q => Fate::DieTraining,
            x if x < 2.0 * q => Fate::Silent,
            x if x < 3.0 * q => Fate::DieRing,
            _ => Fate::Ok,
        }
    }

    /// One round from Training to Accept or Abandon.
    fn round_once(&mut self) {
        let Phase::Training(t) = &self.m.phase else {
            return;
        };
        let (round, deadline) = (t.round, t.deadline);
        let members: Vec<String> = t.members.iter().cloned().collect();
        let fates: BTreeMap<String, Fate> =
            members.iter().map(|w| (w.clone(), self.fate())).collect();
        self.rejoin();
        for (w, f) in &fates {
            if matches!(f, Fate::Ok | Fate::DieRing) {
                self.feed(Input::Report {
                    worker: w.clone(),
                    round,
                    object: format!("delta-{round}-{w}"),
                    weight: 1000,
                    reward: 0.5,
                    loss: 0.1,
                });
            }
        }
        if matches!(self.m.phase, Phase::Training(_)) {
            self.now = self.now.max(deadline);
            self.feed(Input::Tick);
        }
        for (w, f) in &fates {
            if *f == Fate::Silent {
                // too late: refused (the round moved on), then it registers again
                self.feed(Input::Report {
                    worker: w.clone(),
                    round,
                    object: format!("delta-{round}-{w}"),
                    weight: 1000,
                    reward: 0.5,
                    loss: 0.1,
                });
                self.register(w);
            }
        }
        self.ring(round, &fates);
    }

    /// The ring phase: surviving groups report the round's one result.
    fn ring(&mut self, round: u64, fates: &BTreeMap<String, Fate>) {
        let Phase::Ring(r) = &self.m.phase else {
            return;
        };
        let (rings, deadline) = (r.rings.clone(), r.deadline);
        let dead = |w: &String| fates.get(w) == Some(&Fate::DieRing);
        let redundancy = self.m.rules.redundancy;
        let object = format!("aggregate-{round}");
        for ring in &rings {
            let failures = ring.iter().filter(|w| dead(w)).count();
            if failures > redundancy {
                continue;
            }
            for w in ring.iter().filter(|w| !dead(w)) {
                self.feed(Input::Result {
                    worker: w.clone(),
                    round,
                    object: object.clone(),
                    receipt: None,
                });
            }
        }
        if matches!(self.m.phase, Phase::Ring(_)) {
            self.now = self.now.max(deadline);
            self.feed(Input::Tick);
        }
    }
}

/// Runs the machine until `rounds` rounds are accepted (or 2 × `rounds` were started).
pub fn simulate(o: &SimOptions) -> SimReport {
    let spare = ((o.workers as f64) * o.churn / 4.0).ceil() as usize;
    let rules = Rules {
        roster: (0..o.workers + spare).map(id).collect::<BTreeSet<_>>(),
        epochs: 1,
        rounds_per_epoch: o.rounds,
        min_workers: o.workers / 2,
        max_workers: o.workers + spare,
        ring_size: o.ring_size,
        redundancy: o.redundancy,
        join_ms: 60_000,
        train_ms: 60_000,
        ring_ms: 60_000,
        validation: None,
        merged: false,
    };
    let mut sim = Sim {
        m: Machine::new(rules),
        rng: rand::rngs::StdRng::seed_from_u64(o.seed),
        now: 0,
        churn: o.churn,
        cur: 0,
        away: (o.workers..o.workers + spare).map(|i| (id(i), 1)).collect(),
        report: SimReport::default(),
    };
    for i in 0..o.workers {
        sim.register(&id(i));
    }
    for _ in 0..4 * o.rounds + 16 {
        if sim.report.accepted >= o.rounds || sim.report.rounds >= 2 * o.rounds {
            break;
        }
        sim.now += 1000;
        match &sim.m.phase {
            Phase::Training(_) => sim.round_once(),
            Phase::Waiting(_) => {
                // too few workers: time passes until the away ones are back
                sim.away.values_mut().for_each(|from| *from = 0);
                sim.rejoin();
            }
            _ => break,
        }
    }
    sim.report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thousand_workers_with_ten_percent_churn_complete_most_rounds() {
        let r = simulate(&SimOptions {
            workers: 1000,
            ring_size: 32,
            redundancy: 3,
            rounds: 12,
            churn: 0.10,
            seed: 1,
        });
        assert!(r.completion() >= 0.95, "{r:?}");
        assert_eq!(r.accepted, 12, "{r:?}");
        assert!(r.groups >= 30, "hierarchical rounds: {r:?}");
        // churn happened: evictions and re-admissions every round
        assert!(
            r.evictions >= 12 * 40 && r.admissions > 1000 + 12 * 40,
            "{r:?}"
        );
        // most members' inputs are in the accepted results
        assert!(r.agreeing_members >= 12 * 800, "{r:?}");
    }

    #[test]
    fn without_redundancy_ring_deaths_abandon_rounds() {
        // the same churn with redundancy 0: every ring death fails its group, and the leader
        // ring needs every group, so rounds are abandoned: the test above can fail
        let r = simulate(&SimOptions {
            workers: 1000,
            ring_size: 32,
            redundancy: 0,
            rounds: 5,
            churn: 0.10,
            seed: 1,
        });
        assert!(r.completion() < 0.5, "{r:?}");
    }
}
