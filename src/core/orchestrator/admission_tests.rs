//! Admission before aggregation: quorum rules, refusals, replay.

use std::collections::BTreeSet;

use super::*;

/// 4 trainers (w0..w3) and `v` validators (w100..) with quorum `q`.
fn vrules(v: usize, q: usize) -> Rules {
    let mut r = rules_min(4, 0, 4);
    let vals: BTreeSet<String> = (100..100 + v).map(w).collect();
    r.roster.extend(vals.iter().cloned());
    r.validation = Some(AdmissionRule {
        validators: vals,
        quorum: q,
        validate_ms: 1000,
    });
    r
}

fn validating(v: usize, q: usize) -> Machine {
    let mut m = Machine::new(vrules(v, q));
    for i in 0..4 {
        register(&mut m, i, 0);
    }
    for i in 0..4 {
        report(&mut m, i, 0, 10).unwrap();
    }
    assert!(matches!(m.phase, Phase::Validating(_)), "{:?}", m.phase);
    m
}

fn verdict(
    m: &mut Machine,
    val: usize,
    subject: usize,
    pass: bool,
    now: u64,
) -> Result<Vec<Decision>, Refusal> {
    m.handle(
        Input::Verdict(VerdictInput {
            validator: w(val),
            round: 0,
            epoch: 0,
            subject: w(subject),
            object: format!("delta-0-{subject}"),
            pass,
            report: format!("{{\"reason\": \"r{val}\"}}"),
            reason: format!("r{val}"),
        }),
        now,
    )
}

fn admission(ds: &[Decision]) -> Option<(Vec<String>, Vec<RefusedDelta>)> {
    ds.iter().find_map(|d| match d {
        Decision::Admission {
            admitted, refused, ..
        } => Some((admitted.clone(), refused.clone())),
        _ => None,
    })
}

#[test]
fn a_quorum_of_passes_admits_and_failures_refuse() {
    let mut m = validating(3, 2);
    let mut last = Vec::new();
    for s in 0..4 {
        // w3 is failed by two of the three validators: the passes cannot reach 2
        let pass = s != 3;
        verdict(&mut m, 100, s, pass, 20).unwrap();
        last = verdict(&mut m, 101, s, pass, 20).unwrap();
    }
    let (admitted, refused) = admission(&last).expect("decided once every delta is decided");
    assert_eq!(admitted, vec![w(0), w(1), w(2)]);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].worker, w(3));
    assert!(
        refused[0].reason.contains("failed by 2 of 3"),
        "{:?}",
        refused[0]
    );
    assert!(refused[0].reason.contains("r100"), "{:?}", refused[0]);
    // the ring is formed from the admitted reporters only
    let Phase::Ring(r) = &m.phase else {
        panic!("{:?}", m.phase)
    };
    assert_eq!(r.rings.concat().len(), 3);
    assert!(!r.reports.contains_key(&w(3)));
    for i in 0..3 {
        result(&mut m, i, 0, "agg-0", 30).unwrap();
    }
    assert_eq!(m.aggregate(), Some("agg-0"));
    assert!(result(&mut m, 3, 0, "agg-0", 30).is_err());
}

#[test]
fn one_validator_can_neither_admit_nor_refuse_alone() {
    let mut m = validating(3, 2);
    for s in 0..4 {
        let ds = verdict(&mut m, 100, s, s != 0, 20).unwrap();
        assert!(admission(&ds).is_none(), "{ds:?}");
    }
    assert!(matches!(m.phase, Phase::Validating(_)));
    // at the deadline, a single pass is no quorum: everything is refused, the round abandoned
    let ds = m.handle(Input::Tick, 10 + 1000).unwrap();
    let (admitted, refused) = admission(&ds).unwrap();
    assert!(admitted.is_empty());
    assert_eq!(refused.len(), 4);
    assert!(
        refused[1].reason.contains("quorum is 2"),
        "{:?}",
        refused[1]
    );
    assert!(
        ds.iter().any(|d| matches!(d, Decision::Abandon { .. })),
        "{ds:?}"
    );
}

#[test]
fn bad_verdicts_are_refused_and_change_nothing() {
    let mut m = validating(2, 2);
    verdict(&mut m, 100, 0, true, 20).unwrap();
    let before = m.clone();
    // a trainer is no validator; a validator not on the roster; a duplicate
    assert!(matches!(
        verdict(&mut m, 1, 0, true, 20),
        Err(Refusal::Invalid(_))
    ));
    assert!(matches!(
        verdict(&mut m, 107, 0, true, 20),
        Err(Refusal::NotOnRoster(_))
    ));
    assert!(matches!(
        verdict(&mut m, 100, 0, false, 20),
        Err(Refusal::Duplicate { .. })
    ));
    // on itself, on a worker without a delta, wrong epoch, wrong object, wrong round
    assert!(verdict(&mut m, 100, 100, true, 20).is_err());
    let mut x = VerdictInput {
        validator: w(101),
        round: 0,
        epoch: 1,
        subject: w(1),
        object: "delta-0-1".into(),
        pass: true,
        report: "{}".into(),
        reason: String::new(),
    };
    let e = m.handle(Input::Verdict(x.clone()), 20).unwrap_err();
    assert!(e.to_string().contains("epoch"), "{e}");
    x.epoch = 0;
    x.object = "delta-0-2".into();
    assert!(m.handle(Input::Verdict(x.clone()), 20).is_err());
    x.object = "delta-0-1".into();
    x.round = 1;
    assert!(matches!(
        m.handle(Input::Verdict(x.clone()), 20),
        Err(Refusal::WrongRound { .. })
    ));
    assert_eq!(m, before);
    // validators do not train
    let e = m
        .clone()
        .handle(
            Input::Register {
                worker: w(100),
                ed25519: "k".into(),
                ring_addr: "a:1".into(),
            },
            20,
        )
        .unwrap_err();
    assert!(e.to_string().contains("validator"), "{e}");
}

#[test]
fn a_validated_round_replays_to_the_same_state() {
    let mut log: Vec<(u64, Decision)> = Vec::new();
    let mut m = Machine::new(vrules(3, 2));
    for i in 0..4 {
        log.extend(register(&mut m, i, 0).into_iter().map(|d| (0, d)));
    }
    for i in 0..4 {
        log.extend(
            report(&mut m, i, 0, 10)
                .unwrap()
                .into_iter()
                .map(|d| (10, d)),
        );
    }
    for s in 0..4 {
        for v in [100, 101, 102] {
            // after the admission the phase moved on: later verdicts are refused
            if let Ok(ds) = verdict(&mut m, v, s, s != 2, 20) {
                log.extend(ds.into_iter().map(|d| (20, d)));
            }
        }
    }
    for n in 0..=log.len() {
        let replayed = Machine::replay(vrules(3, 2), log[..n].iter().map(|(t, d)| (*t, d)));
        if n == log.len() {
            assert_eq!(replayed, m);
        }
    }
    let Phase::Ring(r) = &m.phase else {
        panic!("{:?}", m.phase)
    };
    assert_eq!(r.rings.concat().len(), 3);
    assert!(
        log.iter()
            .any(|(_, d)| matches!(d, Decision::Admission { refused, .. }
        if refused.len() == 1 && refused[0].worker == w(2)))
    );
}
