use super::*;

fn rules(n: usize, redundancy: usize) -> Rules {
    rules_min(n, redundancy, n)
}

fn rules_min(n: usize, redundancy: usize, min_workers: usize) -> Rules {
    Rules {
        roster: (0..n).map(w).collect(),
        epochs: 2,
        rounds_per_epoch: 2,
        min_workers,
        max_workers: n,
        ring_size: n.max(2),
        redundancy,
        join_ms: 1000,
        train_ms: 1000,
        ring_ms: 1000,
        validation: None,
        merged: false,
    }
}

fn w(i: usize) -> String {
    format!("gym1worker{i:04}")
}

fn register(m: &mut Machine, i: usize, now: u64) -> Vec<Decision> {
    m.handle(
        Input::Register {
            worker: w(i),
            ed25519: format!("key{i}"),
            ring_addr: format!("127.0.0.1:{}", 9000 + i),
        },
        now,
    )
    .unwrap()
}

fn report(m: &mut Machine, i: usize, round: u64, now: u64) -> Result<Vec<Decision>, Refusal> {
    m.handle(
        Input::Report {
            worker: w(i),
            round,
            object: format!("delta-{round}-{i}"),
            weight: 10,
            reward: round as f64,
            loss: 0.5,
        },
        now,
    )
}

fn result(
    m: &mut Machine,
    i: usize,
    round: u64,
    obj: &str,
    now: u64,
) -> Result<Vec<Decision>, Refusal> {
    m.handle(
        Input::Result {
            worker: w(i),
            round,
            object: obj.into(),
            receipt: None,
        },
        now,
    )
}

/// Drives the current round to acceptance with members `who`.
fn full_round(m: &mut Machine, who: &[usize], now: u64) -> u64 {
    let Phase::Training(t) = &m.phase else {
        panic!("not training: {:?}", m.phase)
    };
    let round = t.round;
    for &i in who {
        report(m, i, round, now).unwrap();
    }
    assert!(matches!(m.phase, Phase::Ring(_)), "{:?}", m.phase);
    for &i in who {
        result(m, i, round, &format!("agg-{round}"), now).unwrap();
    }
    round
}

#[test]
fn a_job_runs_round_by_round_to_the_end() {
    let mut m = Machine::new(rules_min(3, 0, 2));
    assert!(register(&mut m, 0, 0).len() == 1);
    assert!(matches!(m.phase, Phase::Waiting(_)));
    let ds = register(&mut m, 1, 0);
    assert!(
        matches!(ds[1], Decision::StartRound { round: 0, .. }),
        "{ds:?}"
    );
    for r in 0..4 {
        assert_eq!(full_round(&mut m, &[0, 1], 10), r);
    }
    assert_eq!(m.accepted.len(), 4);
    assert_eq!(m.aggregate(), Some("agg-3"));
    assert!(matches!(
        m.phase,
        Phase::Finished(Finished { stopped: false })
    ));
    assert_eq!(
        m.unpublished(),
        vec![(0, "agg-1".to_string()), (1, "agg-3".to_string())]
    );
    m.handle(
        Input::Published {
            epoch: 0,
            object: "agg-1".into(),
            cid: "Qm".into(),
            location: "x".into(),
            hf: None,
        },
        20,
    )
    .unwrap();
    assert_eq!(m.unpublished().len(), 1);
}

fn published(epoch: u64, object: &str) -> Input {
    Input::Published {
        epoch,
        object: object.into(),
        cid: format!("Qm{epoch}"),
        location: "x".into(),
        hf: None,
    }
}

fn merged(epoch: u64) -> Input {
    Input::PublishedMerged {
        epoch,
        cid: "QmMerged".into(),
        location: "y".into(),
        hf: Some("https://hub/commit/1".into()),
    }
}

/// The merged model is due once, after the job finished and its last checkpoint is
/// published, and only when the job asks for it.
#[test]
fn the_merged_model_is_due_once_after_the_last_checkpoint() {
    let mut r = rules_min(3, 0, 2);
    r.merged = true;
    let mut m = Machine::new(r);
    register(&mut m, 0, 0);
    register(&mut m, 1, 0);
    for _ in 0..4 {
        full_round(&mut m, &[0, 1], 10);
    }
    assert_eq!(m.merge_due(), None, "checkpoints first");
    assert!(m.handle(merged(1), 20).is_err());
    m.handle(published(0, "agg-1"), 20).unwrap();
    assert_eq!(m.merge_due(), None);
    m.handle(published(1, "agg-3"), 20).unwrap();
    assert_eq!(m.merge_due(), Some(1));
    assert!(!m.all_published());
    let before = m.clone();
    assert!(
        m.handle(merged(0), 21).is_err(),
        "the last epoch's adapter only"
    );
    assert_eq!(m, before);
    let ds = m.handle(merged(1), 21).unwrap();
    assert!(matches!(ds[0], Decision::PublishedMerged { epoch: 1, .. }));
    assert_eq!(m.merge_due(), None);
    assert!(m.all_published());
    assert!(m.handle(merged(1), 22).is_err(), "once");
    let replayed = Machine::replay(m.rules.clone(), [(21, &ds[0])]);
    assert_eq!(replayed.merged, m.merged);
    // a job without `merged` is done with its checkpoints
    let mut m = Machine::new(rules_min(3, 0, 2));
    register(&mut m, 0, 0);
    register(&mut m, 1, 0);
    for _ in 0..4 {
        full_round(&mut m, &[0, 1], 10);
    }
    m.handle(published(0, "agg-1"), 20).unwrap();
    m.handle(published(1, "agg-3"), 20).unwrap();
    assert!(m.all_published());
    assert_eq!(m.merge_due(), None);
}

#[test]
fn refused_inputs_change_nothing() {
    let mut m = Machine::new(rules_min(3, 0, 2));
    register(&mut m, 0, 0);
    register(&mut m, 1, 0);
    let before = m.clone();
    let bad = [
        m.clone().handle(
            Input::Register {
                worker: "gym1stranger".into(),
                ed25519: "k".into(),
                ring_addr: "a:1".into(),
            },
            1,
        ),
        report(&mut m.clone(), 0, 1, 1),
        report(&mut m.clone(), 2, 0, 1),
        result(&mut m.clone(), 0, 0, "x", 1),
    ];
    assert!(matches!(bad[0], Err(Refusal::NotOnRoster(_))));
    assert!(matches!(bad[1], Err(Refusal::WrongRound { .. })));
    assert!(matches!(bad[2], Err(Refusal::NotAdmitted(_))));
    assert!(matches!(bad[3], Err(Refusal::WrongRound { .. })));
    for input in [
        Input::Register {
            worker: "gym1stranger".into(),
            ed25519: "k".into(),
            ring_addr: "a:1".into(),
        },
        Input::Published {
            epoch: 0,
            object: "none".into(),
            cid: "c".into(),
            location: "l".into(),
            hf: None,
        },
        Input::PublishedMerged {
            epoch: 0,
            cid: "c".into(),
            location: "l".into(),
            hf: None,
        },
    ] {
        assert!(m.handle(input, 1).is_err());
        assert_eq!(m, before);
    }
    report(&mut m, 0, 0, 1).unwrap();
    let before = m.clone();
    assert!(matches!(
        report(&mut m, 0, 0, 1),
        Err(Refusal::Duplicate { .. })
    ));
    assert_eq!(m, before);
}

#[test]
fn silent_workers_are_evicted_and_the_round_goes_on() {
    let mut m = Machine::new(rules(3, 0));
    for i in 0..3 {
        register(&mut m, i, 0);
    }
    // round 0 started with all three at time 0 (deadline 1000)
    report(&mut m, 0, 0, 10).unwrap();
    report(&mut m, 1, 0, 10).unwrap();
    assert!(matches!(m.phase, Phase::Training(_)));
    assert!(m.handle(Input::Tick, 999).unwrap().is_empty());
    let ds = m.handle(Input::Tick, 1000).unwrap();
    assert!(
        matches!(&ds[0], Decision::Evict { worker, .. } if *worker == w(2)),
        "{ds:?}"
    );
    let Decision::Topology { rings, .. } = &ds[1] else {
        panic!("{ds:?}")
    };
    assert_eq!(rings, &vec![vec![w(0), w(1)]]);
    // a ring member goes silent: with redundancy 0 the round is abandoned and retried
    result(&mut m, 0, 0, "agg", 1100).unwrap();
    let ds = m.handle(Input::Tick, 2000).unwrap();
    assert!(matches!(&ds[0], Decision::Evict { worker, .. } if *worker == w(1)));
    assert!(matches!(&ds[1], Decision::Abandon { round: 0, .. }));
    assert_eq!(m.abandoned, 1);
    // the evicted workers come back: round 0 starts again
    register(&mut m, 1, 2100);
    let ds = register(&mut m, 2, 2100);
    assert!(matches!(ds[1], Decision::StartRound { round: 0, .. }));
    assert_eq!(full_round(&mut m, &[0, 1, 2], 2200), 0);
    assert_eq!(m.accepted.len(), 1);
}

#[test]
fn redundancy_lets_a_round_survive_a_failed_member() {
    let mut m = Machine::new(rules(4, 1));
    for i in 0..4 {
        register(&mut m, i, 0);
    }
    for i in 0..4 {
        report(&mut m, i, 0, 5).unwrap();
    }
    for i in 0..3 {
        result(&mut m, i, 0, "agg", 6).unwrap();
    }
    assert!(matches!(m.phase, Phase::Ring(_)));
    let ds = m.handle(Input::Tick, 5000).unwrap();
    assert!(
        matches!(&ds[0], Decision::Accept { members, .. } if members.len() == 3),
        "{ds:?}"
    );
    // a dissenting result is outvoted, not accepted
    let mut m = Machine::new(rules(4, 1));
    for i in 0..4 {
        register(&mut m, i, 0);
    }
    for i in 0..4 {
        report(&mut m, i, 0, 5).unwrap();
    }
    result(&mut m, 0, 0, "evil", 6).unwrap();
    for i in 1..4 {
        result(&mut m, i, 0, "agg", 6).unwrap();
    }
    assert_eq!(m.aggregate(), Some("agg"));
}

#[test]
fn replaying_the_decisions_gives_the_same_state() {
    let mut m = Machine::new(rules(3, 0));
    let mut log: Vec<(u64, Decision)> = Vec::new();
    let mut feed = |m: &mut Machine, input: Input, now: u64| {
        if let Ok(ds) = m.handle(input, now) {
            log.extend(ds.into_iter().map(|d| (now, d)));
        }
    };
    for i in 0..3 {
        feed(
            &mut m,
            Input::Register {
                worker: w(i),
                ed25519: "k".into(),
                ring_addr: format!("h:{i}"),
            },
            i as u64,
        );
    }
    for i in 0..2 {
        feed(
            &mut m,
            Input::Report {
                worker: w(i),
                round: 0,
                object: "d".into(),
                weight: 1,
                reward: 0.1,
                loss: 0.2,
            },
            10,
        );
    }
    feed(&mut m, Input::Tick, 5000);
    feed(
        &mut m,
        Input::Result {
            worker: w(0),
            round: 0,
            object: "a".into(),
            receipt: None,
        },
        5001,
    );
    let again = Machine::replay(m.rules.clone(), log.iter().map(|(t, d)| (*t, d)));
    assert_eq!(again, m);
    // every prefix replays too (a crash between any two decisions)
    for k in 0..log.len() {
        let _ = Machine::replay(m.rules.clone(), log[..k].iter().map(|(t, d)| (*t, d)));
    }
}

/// Ten members, rings of at most 4, redundancy 1: groups [0..4), [4..7), [7..10) under one
/// leader ring of workers 0, 4 and 7.
fn hierarchical_round() -> Machine {
    let mut r = rules(10, 1);
    r.ring_size = 4;
    let mut m = Machine::new(r);
    for i in 0..10 {
        register(&mut m, i, 0);
    }
    for i in 0..9 {
        report(&mut m, i, 0, 10).unwrap();
    }
    let ds = report(&mut m, 9, 0, 10).unwrap();
    let Decision::Topology { rings, leaders, .. } = &ds[1] else {
        panic!("{ds:?}")
    };
    let ids = |v: &[usize]| v.iter().map(|&i| w(i)).collect::<Vec<_>>();
    assert_eq!(
        rings,
        &vec![ids(&[0, 1, 2, 3]), ids(&[4, 5, 6]), ids(&[7, 8, 9])]
    );
    assert_eq!(leaders, &vec![vec![ids(&[0, 4, 7])]]);
    m
}

#[test]
fn a_hierarchical_round_is_accepted_from_every_group_but_redundancy() {
    let mut m = hierarchical_round();
    // group 0 all agree, group 1 its quorum (2 of 3), group 2 one member: below its quorum
    for i in [0, 1, 2, 3, 4, 5, 9] {
        let ds = result(&mut m, i, 0, "agg", 20).unwrap();
        assert!(matches!(&ds[..], [Decision::Result { .. }]), "{ds:?}");
    }
    let ds = m.handle(Input::Tick, 20 + 1000).unwrap();
    let Decision::Accept { members, .. } = &ds[0] else {
        panic!("{ds:?}")
    };
    let expect: Vec<String> = [0, 1, 2, 3, 4, 5].iter().map(|&i| w(i)).collect();
    assert_eq!(members, &expect);
}

#[test]
fn a_hierarchical_round_with_two_failed_groups_is_abandoned() {
    let mut m = hierarchical_round();
    for i in [0, 1, 2, 3, 4, 9] {
        result(&mut m, i, 0, "agg", 20).unwrap();
    }
    let ds = m.handle(Input::Tick, 20 + 1000).unwrap();
    assert!(
        matches!(ds.last(), Some(Decision::Abandon { reason, .. }) if reason.contains("2 of the 3 groups")),
        "{ds:?}"
    );
    // the silent ones (5, 6, 7, 8) were evicted first
    let evicted = ds
        .iter()
        .filter(|d| matches!(d, Decision::Evict { .. }))
        .count();
    assert_eq!(evicted, 4);
}

#[test]
fn a_flat_topology_entry_reads_as_before() {
    // entries logged before leader rings existed have no `leaders` key, and a flat round
    // still writes none (so old signatures over the entry's JSON still check)
    let old = r#"{"kind":"topology","round":3,"rings":[["a","b"]]}"#;
    let d: Decision = serde_json::from_str(old).unwrap();
    assert_eq!(serde_json::to_string(&d).unwrap(), old);
}

#[path = "admission_tests.rs"]
mod admission_tests;
