//! `gym validate`, `gym eval --report` and the norm bound / DP settings of `gym train`,
//! through the real binary on deltas written by a real training run (docs/validation.md).

use std::path::{Path, PathBuf};

use gym::core::delta::{
    self, Compression, Dtype, FileSource, PackInput, PackOptions, VerifyOptions,
};
use gym::core::keys::Identity;
use gym::core::reward::records::EvalReport;
use gym::core::validate;

use super::common::*;

fn heldout() -> PathBuf {
    testdata("toy/heldout.jsonl")
}

/// Trains the toy task for 20 steps (2 deltas) with a norm bound of 2 and DP noise z = 0.001.
fn dp_run(dir: &Path) -> PathBuf {
    let cfg = dir.join("dp.toml");
    std::fs::write(
        &cfg,
        "max_delta_norm = 2.0\ndp_clip = 2.0\ndp_noise_multiplier = 0.001\ndp_epsilon = 1e9\n",
    )
    .unwrap();
    let out = dir.join("run");
    let (code, _, stderr) = run(gym()
        .args(["train", "--max-steps", "20", "--config"])
        .arg(&cfg)
        .arg("--key")
        .arg(dir.join("w.pem"))
        .arg("-o")
        .arg(&out));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("DP σ = 0.0020: ε ="), "{stderr}");
    out.join("deltas")
}

fn keygen(p: &Path) -> Identity {
    let (code, _, stderr) = run(gym().arg("keygen").arg("-o").arg(p));
    assert_eq!(code, 0, "{stderr}");
    Identity::load(p).unwrap()
}

/// A delta with `f(factors)` of `like`, trained "from" the same parent, signed by `id`.
fn forge(like: &Path, id: &Identity, out: &Path, f: impl Fn(&mut [f32])) {
    let m = validate::load_member(like, &VerifyOptions::default()).unwrap();
    let src = FileSource::open(like).unwrap();
    let rep = delta::verify(&src, &VerifyOptions::default()).unwrap();
    let mut x = m.factors.clone();
    f(&mut x);
    let mut k = 0;
    let bytes: Vec<Vec<u8>> = m
        .layout
        .iter()
        .map(|(_, s)| {
            let n = s.iter().product::<u64>() as usize;
            let b = x[k..k + n].iter().flat_map(|v| v.to_le_bytes()).collect();
            k += n;
            b
        })
        .collect();
    let inputs: Vec<PackInput> = m
        .layout
        .iter()
        .zip(&bytes)
        .map(|((name, shape), b)| PackInput {
            name: name.clone(),
            dtype: Dtype::F32,
            shape: shape.clone(),
            data: delta::TensorSource::Bytes(b),
        })
        .collect();
    let mut meta = rep.delta.metadata.clone();
    meta.worker_id = id.public().worker_id();
    let opts = PackOptions {
        compression: Compression::Lz4,
        chunk_size: 1 << 20,
        metadata: meta,
        identity: Some(id),
    };
    std::fs::write(out, delta::pack_to_vec(&inputs, &opts).unwrap().0).unwrap();
}

fn validate_json(args: &[&Path], extra: &[&str]) -> (i32, serde_json::Value, String) {
    let mut c = gym();
    c.arg("validate").args(args).arg("--data").arg(heldout());
    c.args(extra).arg("--json");
    let (code, stdout, stderr) = run(&mut c);
    let j = if stdout.is_empty() {
        serde_json::Value::Null
    } else {
        json(&stdout)
    };
    (code, j, stderr)
}

#[test]
fn validator_passes_honest_dp_deltas_and_fails_attacks() {
    let t = tmp();
    let _w = keygen(&t.path().join("w.pem"));
    let v = t.path().join("v.pem");
    let vid = keygen(&v);
    let attacker = keygen(&t.path().join("a.pem"));
    let d = dp_run(t.path());
    let (start, d1, d2) = (
        d.join("start.delta"),
        d.join("delta-000001.delta"),
        d.join("delta-000002.delta"),
    );
    // the second delta, measured from its parent: passes, and the report verifies
    let reports = t.path().join("eval.jsonl");
    let (code, j, stderr) = validate_json(
        &[&d2],
        &[
            "--start",
            d1.to_str().unwrap(),
            "--max-norm",
            "2",
            "--dp-noise-multiplier",
            "0.05",
            "--key",
            v.to_str().unwrap(),
            "-o",
            reports.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let f = &j["findings"][0];
    assert_eq!(f["verdict"], "pass", "{j}");
    let (lw, l) = (
        f["loss_without"].as_f64().unwrap(),
        f["loss_with"].as_f64().unwrap(),
    );
    assert!((f["loss_improvement"].as_f64().unwrap() - (lw - l)).abs() < 1e-12);
    assert!(
        lw > l,
        "the trained delta lowers the held-out loss: {lw} -> {l}"
    );
    let text = std::fs::read_to_string(&reports).unwrap();
    let r: EvalReport = serde_json::from_str(text.trim()).unwrap();
    let signer = r.verify("eval.jsonl", "line 1").unwrap();
    assert_eq!(signer.worker_id(), vid.public().worker_id());
    assert_eq!(r.delta, f["digest"].as_str().unwrap());
    // no overwrite without --force
    let (code, _, _) = validate_json(
        &[&d2],
        &[
            "--start",
            d1.to_str().unwrap(),
            "--key",
            v.to_str().unwrap(),
            "-o",
            reports.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 4);

    // measured from the wrong start: a stale/replayed delta
    let (code, j, _) = validate_json(&[&d2], &["--start", start.to_str().unwrap()]);
    assert_eq!(code, 15);
    assert!(
        j["findings"][0]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("stale or replayed")
    );

    // a sign-flipped ×20 copy from another key, in the same round
    let flip = t.path().join("flip.delta");
    let s = validate::load_member(&d1, &VerifyOptions::default())
        .unwrap()
        .factors;
    forge(&d2, &attacker, &flip, |x| {
        for (v, s) in x.iter_mut().zip(&s) {
            *v = s - 20.0 * (*v - s);
        }
    });
    let zero = t.path().join("zero.delta");
    forge(&d2, &keygen(&t.path().join("z.pem")), &zero, |x| {
        x.copy_from_slice(&s)
    });
    let (code, j, stderr) = validate_json(
        &[&d2, &flip],
        &[
            "--start",
            d1.to_str().unwrap(),
            "--max-norm",
            "2",
            "--dp-noise-multiplier",
            "0.05",
        ],
    );
    assert_eq!(code, 15, "{stderr}");
    assert_eq!(j["findings"][0]["verdict"], "pass", "{j}");
    assert_eq!(j["findings"][1]["verdict"], "fail");
    assert!(
        j["findings"][1]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("exceeds the bound")
    );
    // a zero delta scores no stability and no convergence
    let (_, j, _) = validate_json(&[&d2, &zero], &["--start", d1.to_str().unwrap()]);
    assert_eq!(j["findings"][1]["grad_norm_stability"], 0.0, "{j}");
    assert_eq!(j["findings"][1]["convergence"], 0.0);

    // a tampered delta is refused (no report), the others still judged
    let mut bytes = std::fs::read(&d2).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 1;
    let bad = t.path().join("bad.delta");
    std::fs::write(&bad, bytes).unwrap();
    let (code, j, _) = validate_json(&[&bad, &flip], &["--start", d1.to_str().unwrap()]);
    assert!((10..=13).contains(&code), "{code}");
    assert_eq!(j["refused"][0]["file"], bad.to_str().unwrap());
    assert_eq!(j["findings"].as_array().unwrap().len(), 1);

    // gym eval --report writes the same record for one delta
    let one = t.path().join("one.json");
    let (code, _, stderr) = run(gym()
        .args([
            "eval",
            "--limit",
            "2",
            "--max-completion-length",
            "4",
            "--delta",
        ])
        .arg(&d2)
        .arg("--start")
        .arg(&d1)
        .arg("--data")
        .arg(heldout())
        .arg("--key")
        .arg(&v)
        .arg("--report")
        .arg(&one));
    assert_eq!(code, 0, "{stderr}");
    let r: EvalReport = serde_json::from_str(&std::fs::read_to_string(&one).unwrap()).unwrap();
    r.verify("one.json", "record").unwrap();
    assert_eq!(r.verdict.name(), "pass");
    assert!(r.loss_improvement > 0.0);
}

#[test]
fn dp_budget_stops_training_before_the_release_that_would_exceed_it() {
    let t = tmp();
    let cfg = t.path().join("dp.toml");
    std::fs::write(
        &cfg,
        "dp_clip = 1.0\ndp_noise_multiplier = 1.0\ndp_epsilon = 1.0\n",
    )
    .unwrap();
    let out = t.path().join("run");
    let (code, _, stderr) = run(gym()
        .args(["train", "--max-steps", "10", "--config"])
        .arg(&cfg)
        .arg("-o")
        .arg(&out));
    assert_eq!(code, 15, "{stderr}");
    assert!(
        stderr.contains("budget ε = 1 would be exceeded by delta 1"),
        "{stderr}"
    );
    assert!(!out.join("deltas/delta-000001.delta").exists());
    // a budget without noise is refused up front
    std::fs::write(&cfg, "dp_clip = 1.0\ndp_epsilon = 1.0\n").unwrap();
    let (code, _, stderr) = run(gym()
        .args(["train", "--max-steps", "10", "--config"])
        .arg(&cfg)
        .arg("-o")
        .arg(t.path().join("run2")));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("dp_epsilon"), "{stderr}");
}
