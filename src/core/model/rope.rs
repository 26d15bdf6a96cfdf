//! Rotary-embedding frequencies from a config's `rope_parameters` (transformers 5) or
//! `rope_theta` + `rope_scaling` (transformers 4): the default rotation and the `linear`,
//! `llama3` and `yarn` scalings, as transformers' `modeling_rope_utils.py` (5.25) computes them,
//! in f32 like it. Any other `rope_type` (`dynamic`, `longrope`, …) is refused by name.

use super::ModelError;
use super::config::RopeParameters;

/// Inverse frequencies (head_dim / 2 of them) and the factor cos and sin are multiplied by.
#[derive(Debug, Clone, PartialEq)]
pub struct RopeFreqs {
    pub inv_freq: Vec<f32>,
    pub attention_factor: f32,
}

/// The rope settings a config asks for: the scaled entry of `rope_parameters` or `rope_scaling`
/// (transformers 4 kept the base frequency outside it, in `rope_theta`), with the base frequency
/// filled in (10000 when nothing gives one). Two different non-default scalings are refused.
pub fn resolve(
    rope_theta: Option<f64>,
    params: Option<&RopeParameters>,
    scaling: Option<&RopeParameters>,
) -> Result<RopeParameters, ModelError> {
    let scaled = |p: &&RopeParameters| p.rope_type != "default";
    let mut out = match (params.filter(scaled), scaling.filter(scaled)) {
        (Some(p), Some(s)) if p != s => {
            return Err(ModelError::Unsupported(format!(
                "rope_parameters ({:?}) and rope_scaling ({:?}) disagree",
                p.rope_type, s.rope_type
            )));
        }
        (Some(p), _) | (None, Some(p)) => p.clone(),
        (None, None) => RopeParameters {
            rope_type: "default".into(),
            ..Default::default()
        },
    };
    out.rope_theta = [params, scaling]
        .into_iter()
        .flatten()
        .find_map(|p| p.rope_theta)
        .or(rope_theta)
        .or(Some(10000.0));
    // the fraction of a head that rotates is not a scaling: keep it from whichever entry says it
    out.partial_rotary_factor = [params, scaling]
        .into_iter()
        .flatten()
        .find_map(|p| p.partial_rotary_factor);
    Ok(out)
}

fn need<T: Copy>(v: Option<T>, field: &str, ty: &str) -> Result<T, ModelError> {
    v.ok_or_else(|| {
        ModelError::Unsupported(format!(
            "rope_parameters.{field} is missing (rope_type {ty:?} needs it)"
        ))
    })
}

/// The frequencies of `p` (from [`resolve`]) for heads of `head_dim`; `max_pos` is the config's
/// `max_position_embeddings` (YaRN derives its factor from it when none is given).
pub fn frequencies(
    p: &RopeParameters,
    head_dim: usize,
    max_pos: usize,
) -> Result<RopeFreqs, ModelError> {
    // transformers rotates the first ⌊head_dim · partial_rotary_factor⌋ dimensions, with the
    // frequencies of a head that wide (the decoder passes the rest through; `mod.rs` refuses
    // the factor for architectures whose transformers code rotates whole heads)
    let head_dim = match p.partial_rotary_factor {
        Some(f) if f > 0.0 && f < 1.0 => (head_dim as f64 * f) as usize,
        Some(f) if f != 1.0 => {
            return Err(ModelError::Unsupported(format!(
                "rope_parameters.partial_rotary_factor {f} (outside (0, 1])"
            )));
        }
        _ => head_dim,
    };
    if head_dim < 2 || !head_dim.is_multiple_of(2) {
        return Err(ModelError::Unsupported(format!(
            "a rotary dimension of {head_dim} (it must be even and at least 2)"
        )));
    }
    let theta = p.rope_theta.unwrap_or(10000.0);
    let base = default_inv_freq(theta, head_dim);
    let ty = p.rope_type.as_str();
    let plain = |inv_freq| RopeFreqs {
        inv_freq,
        attention_factor: 1.0,
    };
    match ty {
        "default" => Ok(plain(base)),
        "linear" => {
            let f = need(p.factor, "factor", ty)? as f32;
            Ok(plain(base.iter().map(|x| x / f).collect()))
        }
        "llama3" => Ok(plain(llama3(p, &base)?)),
        "yarn" => yarn(p, theta, head_dim, max_pos),
        other => Err(ModelError::Unsupported(format!(
            "rope_parameters.rope_type {other:?} (gym implements default, linear, llama3 and yarn)"
        ))),
    }
}

/// 1 / θ^(2i/d), i < d/2, in f32 as transformers computes it.
fn default_inv_freq(theta: f64, d: usize) -> Vec<f32> {
    (0..d / 2)
        .map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / d as f32))
        .collect()
}

/// Llama 3.1: wavelengths above `original_max_position_embeddings / low_freq_factor` are
/// divided by `factor`, those below `… / high_freq_factor` kept, and the band between
/// interpolated with s = (L/λ − low) / (high − low): (1 − s)·f/factor + s·f.
fn llama3(p: &RopeParameters, inv: &[f32]) -> Result<Vec<f32>, ModelError> {
    let ty = "llama3";
    let factor = need(p.factor, "factor", ty)? as f32;
    let low = need(p.low_freq_factor, "low_freq_factor", ty)? as f32;
    let high = need(p.high_freq_factor, "high_freq_factor", ty)? as f32;
    let old = need(
        p.original_max_position_embeddings,
        "original_max_position_embeddings",
        ty,
    )? as f32;
    let (low_wl, high_wl) = (old / low, old / high);
    Ok(inv
        .iter()
        .map(|&f| {
            let wl = 2.0 * std::f32::consts::PI / f;
            let scaled = if wl > low_wl { f / factor } else { f };
            if wl < high_wl || wl > low_wl {
                scaled
            } else {
                let s = (old / wl - low) / (high - low);
                (1.0 - s) * scaled / factor + s * scaled
            }
        })
        .collect())
}

fn yarn_mscale(scale: f64, m: f64) -> f64 {
    if scale <= 1.0 {
        1.0
    } else {
        0.1 * m * scale.ln() + 1.0
    }
}

/// YaRN: per frequency, a blend of the original (extrapolated) and the `factor`-interpolated
/// frequency with a linear ramp between the dimensions that turn `beta_fast` and `beta_slow`
/// times over `original_max_position_embeddings`; cos and sin scaled by `attention_factor`
/// (by default 0.1·ln(factor) + 1).
fn yarn(p: &RopeParameters, theta: f64, d: usize, max_pos: usize) -> Result<RopeFreqs, ModelError> {
    let ty = "yarn";
    let orig = need(
        p.original_max_position_embeddings,
        "original_max_position_embeddings",
        ty,
    )? as f64;
    let factor = p.factor.unwrap_or(max_pos as f64 / orig);
    let attention_factor = match (p.attention_factor, p.mscale, p.mscale_all_dim) {
        (Some(a), _, _) => a,
        (None, Some(m), Some(ma)) if m != 0.0 && ma != 0.0 => {
            yarn_mscale(factor, m) / yarn_mscale(factor, ma)
        }
        _ => yarn_mscale(factor, 1.0),
    };
    let nz = |v: Option<f64>, dflt: f64| v.filter(|x| *x != 0.0).unwrap_or(dflt);
    let (fast, slow) = (nz(p.beta_fast, 32.0), nz(p.beta_slow, 1.0));
    let corr = |rot: f64| {
        (d as f64 * (orig / (rot * 2.0 * std::f64::consts::PI)).ln()) / (2.0 * theta.ln())
    };
    let (mut low, mut high) = (corr(fast), corr(slow));
    if p.truncate.unwrap_or(true) {
        (low, high) = (low.floor(), high.ceil());
    }
    let (low, mut high) = (low.max(0.0) as f32, high.min(d as f64 - 1.0) as f32);
    if low == high {
        high += 0.001;
    }
    let inv_freq = (0..d / 2)
        .map(|i| {
            let pos = (theta as f32).powf((2 * i) as f32 / d as f32);
            let (extra, inter) = (1.0 / pos, 1.0 / (factor as f32 * pos));
            let ramp = ((i as f32 - low) / (high - low)).clamp(0.0, 1.0);
            let ef = 1.0 - ramp;
            inter * (1.0 - ef) + extra * ef
        })
        .collect();
    Ok(RopeFreqs {
        inv_freq,
        attention_factor: attention_factor as f32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(json: serde_json::Value) -> RopeParameters {
        serde_json::from_value(json).unwrap()
    }

    /// Values printed by transformers 5.25 (`ROPE_INIT_FUNCTIONS[...]`) for head_dim 16:
    /// llama3 (θ 500000, factor 8, low 1, high 4, original 64) and yarn (θ 10000, factor 4,
    /// original 64, max_position_embeddings 256).
    #[test]
    fn llama3_and_yarn_match_transformers() {
        let l = params(
            serde_json::json!({"rope_type": "llama3", "rope_theta": 500000.0,
            "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64}),
        );
        let f = frequencies(&l, 16, 256).unwrap();
        assert_eq!(f.attention_factor, 1.0);
        let want_l = LLAMA3_REF;
        for (a, b) in f.inv_freq.iter().zip(want_l) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1e-3), "{a} vs {b}");
        }
        let y = params(
            serde_json::json!({"rope_type": "yarn", "rope_theta": 10000.0,
            "factor": 4.0, "original_max_position_embeddings": 64}),
        );
        let f = frequencies(&y, 16, 256).unwrap();
        assert!((f.attention_factor - YARN_ATTN).abs() < 1e-6);
        for (a, b) in f.inv_freq.iter().zip(YARN_REF) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1e-3), "{a} vs {b}");
        }
    }

    #[test]
    fn unknown_types_and_missing_fields_are_refused_by_name() {
        let e = frequencies(&params(serde_json::json!({"rope_type": "dynamic"})), 16, 64)
            .unwrap_err()
            .to_string();
        assert!(e.contains("rope_type") && e.contains("dynamic"), "{e}");
        let e = frequencies(
            &params(serde_json::json!({"rope_type": "llama3", "factor": 8.0})),
            16,
            64,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("low_freq_factor"), "{e}");
        // transformers 4: top-level rope_theta with a rope_scaling object
        let s = params(serde_json::json!({"type": "linear", "factor": 2.0}));
        let r = resolve(Some(1e6), None, Some(&s)).unwrap();
        assert_eq!((r.rope_type.as_str(), r.rope_theta), ("linear", Some(1e6)));
    }

    // from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    // c = LlamaConfig(hidden_size=32, num_attention_heads=4, head_dim=16,
    //     max_position_embeddings=256, rope_parameters={"rope_type": "llama3", ...})
    // f, a = ROPE_INIT_FUNCTIONS["llama3"](c)   (likewise Qwen2Config and "yarn")
    const LLAMA3_REF: [f32; 8] = [
        1.0,
        0.079_403_01,
        0.004_700_754,
        0.000_911_583_1,
        0.000_176_776_68,
        3.428_102_4e-5,
        6.647_869_7e-6,
        1.289_173_2e-6,
    ];
    const YARN_REF: [f32; 8] = [
        1.0,
        0.237_170_82,
        0.049_999_997,
        0.007_905_695,
        0.002_5,
        0.000_790_569_5,
        0.000_25,
        7.905_695e-5,
    ];
    const YARN_ATTN: f32 = 1.138_629_4;
}
