//! The worker's side of the norm bound and of differential privacy: the update of a round
//! (the factors after training minus the round's start) is clipped to L2 norm ≤ C, then, with
//! a noise multiplier z > 0, Gaussian noise N(0, (z·C)²) is added to every coordinate. The
//! noise comes from a CSPRNG (ChaCha12, `rand::rngs::StdRng`, seeded from the operating
//! system): noise an observer could predict would protect nothing. The released factors are
//! `start + clipped update + noise`; the worker continues training from them, so the next
//! round's update is again measured from what was published.

use rand::{Rng, SeedableRng};

/// What [`privatize`] did.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Privatized {
    /// ‖update‖₂ before clipping.
    pub norm: f64,
    /// The factor the update was scaled by (1 when within the bound).
    pub scale: f64,
    /// Standard deviation of the noise added per coordinate (0 without DP).
    pub sigma: f64,
}

/// Clips `x − start` to `clip` and adds N(0, (z·clip)²) noise; writes the result into `x`.
pub fn privatize(x: &mut [f32], start: &[f32], clip: f64, z: f64) -> Privatized {
    let norm = x
        .iter()
        .zip(start)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let scale = if norm > clip { clip / norm } else { 1.0 };
    let sigma = if z > 0.0 { z * clip } else { 0.0 };
    let mut rng = rand::rngs::StdRng::from_entropy();
    for (a, &b) in x.iter_mut().zip(start) {
        let u = (*a as f64 - b as f64) * scale;
        let n = if sigma > 0.0 {
            sigma * standard_normal(&mut rng)
        } else {
            0.0
        };
        *a = (b as f64 + u + n) as f32;
    }
    Privatized { norm, scale, sigma }
}

/// One draw of N(0, 1) by the Box–Muller transform.
fn standard_normal(rng: &mut impl Rng) -> f64 {
    // u1 in (0, 1]: ln(0) never happens
    let u1: f64 = 1.0 - rng.r#gen::<f64>();
    let u2: f64 = rng.r#gen::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_to_the_bound_and_keeps_small_updates() {
        let start = [1f32, 1.0, 1.0];
        let mut x = [4f32, 5.0, 1.0]; // update (3, 4, 0), norm 5
        let p = privatize(&mut x, &start, 1.0, 0.0);
        assert!((p.norm - 5.0).abs() < 1e-9 && (p.scale - 0.2).abs() < 1e-12);
        assert_eq!(x, [1.6, 1.8, 1.0]);
        let mut y = [1.3f32, 1.0, 1.0];
        let p = privatize(&mut y, &start, 1.0, 0.0);
        assert_eq!((p.scale, y), (1.0, [1.3, 1.0, 1.0]));
    }

    #[test]
    fn noise_has_the_stated_deviation_and_is_not_repeatable() {
        let n = 200_000;
        let start = vec![0f32; n];
        let mut x = vec![0f32; n];
        let p = privatize(&mut x, &start, 0.5, 2.0);
        assert_eq!(p.sigma, 1.0);
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "{mean}");
        assert!((var.sqrt() - 1.0).abs() < 0.01, "{}", var.sqrt());
        let mut y = vec![0f32; n];
        privatize(&mut y, &start, 0.5, 2.0);
        assert_ne!(x, y, "two draws must differ (OS-seeded CSPRNG)");
    }
}
