//! The vector arithmetic of validation, on flattened adapter factors: updates relative to the
//! round's start, weighted means with and without one member, and the two geometric quality
//! metrics of `docs/rewards.md` §7 (`grad_norm_stability`, `convergence`). No I/O, no model.

/// `x − p` (or `x` itself when there is no start point).
pub fn update(x: &[f32], start: Option<&[f32]>) -> Vec<f64> {
    match start {
        Some(p) => x
            .iter()
            .zip(p)
            .map(|(&a, &b)| a as f64 - b as f64)
            .collect(),
        None => x.iter().map(|&a| a as f64).collect(),
    }
}

pub fn l2(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Weighted mean of the members listed in `which` (indices into `xs`), as f32 factors.
/// Returns `None` when `which` is empty.
pub fn weighted_mean(xs: &[&[f32]], weights: &[u64], which: &[usize]) -> Option<Vec<f32>> {
    let first = *which.first()?;
    let total: f64 = which.iter().map(|&i| weights[i] as f64).sum();
    let mut acc = vec![0f64; xs[first].len()];
    for &i in which {
        let w = weights[i] as f64 / total;
        for (a, &x) in acc.iter_mut().zip(xs[i]) {
            *a += w * x as f64;
        }
    }
    Some(acc.into_iter().map(|a| a as f32).collect())
}

/// Lower median of a non-empty list (0 for an empty one).
pub fn lower_median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[(s.len() - 1) / 2]
}

/// `grad_norm_stability`: how close the update's norm is to the round's typical update norm.
/// With `r = ‖δ‖ / m` (m = lower median of the round's update norms) the score is
/// `min(r, 1/r)`: 1 for a typical update, towards 0 for one much larger (noise, a scaled
/// attack) or much smaller (a zero or near-empty delta); 0 when either norm is 0.
pub fn stability(norm: f64, median: f64) -> f64 {
    if !(norm > 0.0 && median > 0.0 && norm.is_finite() && median.is_finite()) {
        return 0.0;
    }
    let r = norm / median;
    r.min(1.0 / r).clamp(0.0, 1.0)
}

/// `convergence`: the projection of the update δ on the aggregate update Δ, ⟨δ, Δ⟩ / ‖Δ‖
/// (0 when Δ = 0). Positive when the delta moved the way the round moved.
pub fn convergence(delta: &[f64], agg: &[f64]) -> f64 {
    let n = l2(agg);
    if n == 0.0 || !n.is_finite() {
        return 0.0;
    }
    dot(delta, agg) / n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stability_is_symmetric_in_ratio_and_zero_for_zero() {
        assert_eq!(stability(2.0, 2.0), 1.0);
        assert!((stability(4.0, 2.0) - 0.5).abs() < 1e-12);
        assert!((stability(1.0, 2.0) - 0.5).abs() < 1e-12);
        assert_eq!(stability(0.0, 2.0), 0.0);
        assert_eq!(stability(1.0, 0.0), 0.0);
        assert_eq!(stability(f64::NAN, 1.0), 0.0);
    }

    #[test]
    fn convergence_projects_on_the_aggregate() {
        assert!((convergence(&[3.0, 4.0], &[1.0, 0.0]) - 3.0).abs() < 1e-12);
        assert!((convergence(&[-3.0, 4.0], &[2.0, 0.0]) + 3.0).abs() < 1e-12);
        assert_eq!(convergence(&[1.0], &[0.0]), 0.0);
    }

    #[test]
    fn weighted_mean_and_leave_one_out() {
        let a = [1f32, 2.0];
        let b = [3f32, 6.0];
        let xs: Vec<&[f32]> = vec![&a, &b];
        assert_eq!(
            weighted_mean(&xs, &[1, 3], &[0, 1]).unwrap(),
            vec![2.5, 5.0]
        );
        assert_eq!(weighted_mean(&xs, &[1, 3], &[0]).unwrap(), vec![1.0, 2.0]);
        assert!(weighted_mean(&xs, &[1, 3], &[]).is_none());
        assert_eq!(lower_median(&[3.0, 1.0, 2.0, 10.0]), 2.0);
    }
}
