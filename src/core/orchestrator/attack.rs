//! A test seam, not a feature: `gym work --attack KIND` (hidden from `--help`) makes a worker
//! misbehave in one of the ways the validators must catch, so the attack table of
//! docs/validation.md can be produced through the real binaries. Each attack rewrites the
//! worker's honest delta (re-signed with the worker's own key, so the signature is valid) or
//! its report.

use crate::core::delta::{self, Compression, Dtype, PackInput, PackOptions, TensorSource};
use crate::core::keys::Identity;

/// The attacks of the attack table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Attack {
    /// The update sign-flipped and scaled ×20: start − 20·(delta − start).
    Flip20,
    /// Random noise of 100× the honest update's norm in place of the update.
    Noise,
    /// No update at all (the start point, re-signed).
    Zero,
    /// The worker's delta of an earlier round, reported again.
    Replay,
    /// Compute record and report claiming 1000× the tokens trained.
    Inflate,
    /// Trained toward the negated reward (a poisoned objective).
    Poison,
}

/// A delta's f32 factors, flattened in file order.
pub fn factors(bytes: &[u8]) -> Result<Vec<f32>, String> {
    let rep = delta::read_bytes(bytes, &Default::default()).map_err(|e| e.to_string())?;
    let src: &dyn delta::Source = &bytes;
    let mut xs: Vec<f32> = Vec::new();
    for t in &rep.delta.tensors {
        if t.dtype != Dtype::F32 {
            return Err(format!("tensor {} is not f32", t.name));
        }
        delta::read_tensor(src, &rep.delta, t, |b| {
            xs.extend(
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            )
        })
        .map_err(|e| e.to_string())?;
    }
    Ok(xs)
}

/// Rewrites a signed delta: `f(update)` replaces the update (factors − start), `tokens` the
/// compute record's token count. Re-signed with `key`.
pub fn rewrite(
    bytes: &[u8],
    start: Option<&[f32]>,
    key: &Identity,
    f: &mut dyn FnMut(&mut [f32]),
    tokens: Option<u64>,
) -> Result<Vec<u8>, String> {
    let rep = delta::read_bytes(bytes, &Default::default()).map_err(|e| e.to_string())?;
    let xs = factors(bytes)?;
    let zeros = vec![0f32; xs.len()];
    let s = start.filter(|s| s.len() == xs.len()).unwrap_or(&zeros);
    let mut upd: Vec<f32> = xs.iter().zip(s).map(|(x, s)| x - s).collect();
    f(&mut upd);
    let out: Vec<u8> = upd
        .iter()
        .zip(s)
        .flat_map(|(u, s)| (u + s).to_le_bytes())
        .collect();
    let mut inputs = Vec::new();
    let mut off = 0usize;
    for t in &rep.delta.tensors {
        let n = t.shape.iter().product::<u64>() as usize * 4;
        inputs.push(PackInput {
            name: t.name.clone(),
            dtype: Dtype::F32,
            shape: t.shape.clone(),
            data: TensorSource::Bytes(&out[off..off + n]),
        });
        off += n;
    }
    let mut metadata = rep.delta.metadata.clone();
    if let (Some(n), Some(c)) = (tokens, metadata.compute.as_mut()) {
        c.tokens = n;
    }
    let opts = PackOptions {
        compression: Compression::Lz4,
        chunk_size: 1 << 20,
        metadata,
        identity: Some(key),
    };
    let (v, _) = delta::pack_to_vec(&inputs, &opts).map_err(|e| e.to_string())?;
    Ok(v)
}

/// Applies `attack` to this round's honest delta `bytes` (trained from `start`).
pub fn tamper(
    attack: Attack,
    bytes: &[u8],
    start: Option<&[f32]>,
    key: &Identity,
    round: u64,
) -> Result<Vec<u8>, String> {
    match attack {
        Attack::Flip20 => rewrite(
            bytes,
            start,
            key,
            &mut |u: &mut [f32]| u.iter_mut().for_each(|x| *x *= -20.0),
            None,
        ),
        Attack::Noise => {
            use rand::{Rng as _, SeedableRng as _};
            let mut rng = rand::rngs::StdRng::seed_from_u64(round + 7);
            rewrite(
                bytes,
                start,
                key,
                &mut |u: &mut [f32]| {
                    let norm = u.iter().map(|x| (x * x) as f64).sum::<f64>().sqrt();
                    let per = (100.0 * norm.max(1e-3) / (u.len() as f64).sqrt()) as f32;
                    for x in u.iter_mut() {
                        *x = per * if rng.r#gen::<bool>() { 1.0 } else { -1.0 };
                    }
                },
                None,
            )
        }
        Attack::Zero => rewrite(bytes, start, key, &mut |u: &mut [f32]| u.fill(0.0), None),
        Attack::Inflate => {
            let rep = delta::read_bytes(bytes, &Default::default()).map_err(|e| e.to_string())?;
            let t = rep.delta.metadata.compute.as_ref().map_or(0, |c| c.tokens);
            rewrite(
                bytes,
                start,
                key,
                &mut |_: &mut [f32]| {},
                Some(t.saturating_mul(1000)),
            )
        }
        Attack::Replay | Attack::Poison => Ok(bytes.to_vec()),
    }
}
