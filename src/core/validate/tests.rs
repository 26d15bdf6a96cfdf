//! `judge` on synthetic rounds with a known loss: ‖x − target‖² (the "held-out data" wants
//! the factors at `target`).

use super::*;

const TARGET: [f32; 4] = [1.0, 1.0, 1.0, 1.0];

fn member(worker: &str, x: [f32; 4]) -> Member {
    Member {
        file: format!("{worker}.delta"),
        digest: format!("{:064x}", worker.len() * 7 + worker.as_bytes()[0] as usize),
        worker: worker.into(),
        epoch: 3,
        seq: 1,
        parent: Some("s".repeat(64)),
        base_hash: Some("b".repeat(64)),
        tokens: 100,
        layout: vec![("t".into(), vec![4])],
        factors: x.to_vec(),
    }
}

fn start() -> Start {
    Start {
        digest: Some("s".repeat(64)),
        layout: vec![("t".into(), vec![4])],
        factors: vec![0.0; 4],
    }
}

fn loss(x: &[f32]) -> Result<f64, std::convert::Infallible> {
    Ok(x.iter()
        .zip(TARGET)
        .map(|(&a, b)| (a as f64 - b as f64).powi(2))
        .sum())
}

fn policy() -> Policy {
    Policy {
        max_norm: Some(3.0),
        epoch: Some(3),
        base_hash: Some("b".repeat(64)),
        tolerance: 0.0,
        max_tokens: Some(1000),
        noise_multiplier: 0.0,
        claim_bound: Some(5000),
    }
}

#[test]
fn honest_round_passes_with_positive_metrics() {
    let ms = vec![
        member("a", [0.9, 1.1, 1.0, 0.8]),
        member("b", [1.1, 0.9, 0.9, 1.0]),
        member("c", [1.0, 1.0, 1.2, 1.1]),
    ];
    let j = judge(&ms, Some(&start()), &policy(), &mut loss).unwrap();
    assert_eq!(j.admitted, vec![0, 1, 2]);
    assert_eq!(j.start_loss, 4.0);
    for f in &j.findings {
        assert_eq!(f.verdict, Verdict::Pass, "{:?}", f.reasons);
        assert!(f.grad_norm_stability > 0.9 && f.grad_norm_stability <= 1.0);
        assert!(f.convergence > 1.5, "{}", f.convergence);
        let (w, l) = (f.loss_without.unwrap(), f.loss_with.unwrap());
        assert!((f.loss_improvement - (w - l)).abs() < 1e-12);
    }
}

#[test]
fn attacks_fail_and_honest_members_still_pass() {
    let flipped = member("flip", [-20.0, -20.0, -20.0, -20.0]);
    let mut replayed = member("old", [1.0, 1.0, 1.0, 1.0]);
    replayed.parent = Some("0".repeat(64));
    let mut wrong_base = member("base", [1.0; 4]);
    wrong_base.base_hash = Some("c".repeat(64));
    let mut nan = member("nan", [1.0; 4]);
    nan.factors[2] = f32::NAN;
    let mut ms = vec![
        member("a", [0.9, 1.1, 1.0, 0.8]),
        member("b", [1.1, 0.9, 0.9, 1.0]),
        flipped,
        replayed,
        wrong_base,
        nan,
    ];
    let mut p = policy();
    p.max_norm = None; // the sign flip must be caught by the baseline metrics alone
    let j = judge(&ms, Some(&start()), &p, &mut loss).unwrap();
    let v: Vec<Verdict> = j.findings.iter().map(|f| f.verdict).collect();
    use Verdict::{Fail, Pass};
    assert_eq!(v, vec![Pass, Pass, Fail, Fail, Fail, Fail]);
    assert!(j.findings[2].reasons[0].starts_with("baseline metrics"));
    assert!(j.findings[2].loss_improvement < 0.0);
    assert!(j.findings[3].reasons[0].contains("stale or replayed"));
    assert!(j.findings[4].reasons[0].contains("base_hash"));
    assert!(j.findings[5].reasons[0].contains("NaN"));
    assert_eq!(j.admitted, vec![0, 1]);
    // with the bound, the flip fails on its norm before any evaluation
    let j = judge(&ms, Some(&start()), &policy(), &mut loss).unwrap();
    assert!(j.findings[2].reasons[0].contains("exceeds the bound 3"));
    assert!(j.findings[2].loss_with.is_none());
    // a worker with two deltas in one round: both fail
    ms.truncate(2);
    ms.push(member("a", [1.0; 4]));
    let j = judge(&ms, Some(&start()), &policy(), &mut loss).unwrap();
    assert_eq!(j.findings[0].verdict, Fail);
    assert_eq!(j.findings[2].verdict, Fail);
    assert_eq!(j.findings[1].verdict, Pass);
}

#[test]
fn zero_delta_passes_but_scores_zero_stability() {
    let ms = vec![
        member("a", [0.9, 1.1, 1.0, 0.8]),
        member("b", [1.1, 0.9, 0.9, 1.0]),
        member("z", [0.0; 4]),
    ];
    let mut p = policy();
    p.tolerance = 10.0;
    let j = judge(&ms, Some(&start()), &p, &mut loss).unwrap();
    let z = &j.findings[2];
    assert_eq!(z.grad_norm_stability, 0.0);
    assert_eq!(z.convergence, 0.0);
    assert!(z.loss_improvement < 0.0, "{}", z.loss_improvement);
    // at the default tolerance the baseline check fails it
    let j = judge(&ms, Some(&start()), &policy(), &mut loss).unwrap();
    assert_eq!(j.findings[2].verdict, Verdict::Fail);
}

#[test]
fn the_bound_allows_for_dp_noise() {
    assert_eq!(norm_bound(2.0, 0.0, 100), 2.0 + 2e-4);
    assert_eq!(norm_bound(2.0, 0.5, 100), 2.0 + 1.0 * 16.0 + 2e-4);
    let mut p = policy();
    p.max_norm = Some(1.0);
    let ms = vec![member("a", [1.0; 4])]; // update norm 2
    let j = judge(&ms, Some(&start()), &p, &mut loss).unwrap();
    assert_eq!(j.findings[0].verdict, Verdict::Fail);
    p.noise_multiplier = 0.2; // 1 + 0.2 × 8 = 2.6
    let j = judge(&ms, Some(&start()), &p, &mut loss).unwrap();
    assert_eq!(j.findings[0].verdict, Verdict::Pass);
}

#[test]
fn inflated_token_claim_is_capped_and_beyond_the_round_fails() {
    let mut big = member("big", [1.0; 4]);
    big.tokens = u64::MAX;
    let ms = vec![member("a", [0.9, 1.1, 1.0, 0.8]), big];
    let j = judge(&ms, Some(&start()), &policy(), &mut loss).unwrap();
    assert_eq!(j.findings[1].weight, 1000);
    assert_eq!(j.findings[0].weight, 100);
    // a claim beyond what a round's training can touch is a lie: the delta fails
    assert_eq!(j.findings[1].verdict, Verdict::Fail);
    assert!(
        j.findings[1]
            .reasons
            .iter()
            .any(|r| r.contains("claims 18446744073709551615 tokens")),
        "{:?}",
        j.findings[1].reasons
    );
    assert_eq!(j.findings[0].verdict, Verdict::Pass);
    // within the bound, the claim is only capped
    let mut p = policy();
    p.claim_bound = None;
    let j = judge(&ms, Some(&start()), &p, &mut loss).unwrap();
    assert_eq!(j.findings[1].weight, 1000);
    assert!(!j.findings[1].reasons.iter().any(|r| r.contains("claims")));
}

#[test]
fn single_delta_is_compared_with_the_start() {
    let ms = vec![member("a", [0.5, 0.5, 0.5, 0.5])];
    let j = judge(&ms, Some(&start()), &policy(), &mut loss).unwrap();
    let f = &j.findings[0];
    assert_eq!(f.loss_without, Some(4.0));
    assert_eq!(f.loss_with, Some(1.0));
    assert_eq!(f.loss_improvement, 3.0);
    assert_eq!(f.grad_norm_stability, 1.0);
    assert!((f.convergence - 1.0).abs() < 1e-12);
}

#[test]
fn report_is_signed_and_verifies() {
    let ms = vec![member("a", [0.5, 0.5, 0.5, 0.5])];
    let j = judge(&ms, Some(&start()), &policy(), &mut loss).unwrap();
    let id = crate::core::delta::vectors::signer_a();
    let mut f = j.findings[0].clone();
    f.digest = "ab".repeat(32);
    let r = f.report(&id);
    let signer = r.verify("r.json", "record 1").unwrap();
    assert_eq!(signer.worker_id(), id.public().worker_id());
    assert_eq!(r.loss_improvement, 3.0);
}

/// Reports carry arbitrary f64 metrics; their signature covers the exact bits, so the JSON
/// text must parse back to the same doubles (serde_json's `float_roundtrip`).
#[test]
fn report_metrics_survive_json_exactly() {
    let id = crate::core::delta::vectors::signer_a();
    let mut x = 0x9e3779b97f4a7c15u64;
    for _ in 0..2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let v = (x >> 11) as f64 / (1u64 << 53) as f64;
        let mut f = judge(
            &[member("a", [0.5; 4])],
            Some(&start()),
            &policy(),
            &mut loss,
        )
        .unwrap()
        .findings[0]
            .clone();
        f.digest = "ab".repeat(32);
        f.loss_improvement = v * 7.3 - 2.1;
        f.grad_norm_stability = v;
        f.convergence = 1.0 / (v + 1e-3);
        let text = serde_json::to_string(&f.report(&id)).unwrap();
        let back: EvalReport = serde_json::from_str(&text).unwrap();
        back.verify("r", "1").unwrap();
    }
}
