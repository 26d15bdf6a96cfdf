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

fn free_port() -> u16 {
    loop {
        let l = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let p = l.local_addr().unwrap().port();
        drop(l);
        if p > 1024 {
            return p;
        }
    }
}

/// A round of three workers: deltas from a real training run (worker 0) and two close copies
/// signed by workers 1 and 2, judged by a validator (signed reports), averaged by a real
/// three-process ring whose members write their `forward` receipts; `gym reward estimate`
/// reads the resulting epoch folder, made only of gym's own records.
#[test]
fn a_real_ring_and_real_reports_feed_reward_estimate() {
    let t = tmp();
    let dir = t.path();
    let mut lines = String::new();
    let mut ids = Vec::new();
    for i in 0..3 {
        let key = dir.join(if i == 0 {
            "w.pem".into()
        } else {
            format!("w{i}.pem")
        });
        let (code, out, err) = run(gym().args(["keygen", "--json", "-o"]).arg(&key));
        assert_eq!(code, 0, "{err}");
        lines.push_str(&format!("127.0.0.1:{} {}\n", free_port(), out.trim()));
        ids.push(Identity::load(&key).unwrap());
    }
    let v = dir.join("v.pem");
    let vid = keygen(&v);
    let d = dp_run(dir);
    let e = dir.join("epoch");
    for sub in ["deltas", "eval", "ring"] {
        std::fs::create_dir_all(e.join(sub)).unwrap();
    }
    let mut deltas = vec![e.join("deltas/w0.delta")];
    std::fs::copy(d.join("delta-000001.delta"), &deltas[0]).unwrap();
    for (i, id) in ids.iter().enumerate().skip(1) {
        let p = e.join(format!("deltas/w{i}.delta"));
        forge(&deltas[0], id, &p, |x| {
            for (k, v) in x.iter_mut().enumerate() {
                *v += 1e-5 * ((k + i) % 5) as f32;
            }
        });
        deltas.push(p);
    }
    let start = d.join("start.delta");
    let mut c = gym();
    c.arg("validate").args(&deltas).arg("--data").arg(heldout());
    c.args([
        "--max-norm",
        "2",
        "--dp-noise-multiplier",
        "0.001",
        "--tolerance",
        "0.05",
    ]);
    c.arg("--start").arg(&start).arg("--key").arg(&v);
    c.arg("-o").arg(e.join("eval/v.jsonl"));
    let (code, _, stderr) = run(&mut c);
    assert_eq!(code, 0, "{stderr}");

    let members = dir.join("members.txt");
    std::fs::write(&members, lines).unwrap();
    let ring = dir.join("ring.toml");
    let (code, _, err) = run(gym().args(["ring", "plan", "-o"]).arg(&ring).arg(&members));
    assert_eq!(code, 0, "{err}");
    let children: Vec<std::process::Child> = (0..3)
        .map(|i| {
            let key = dir.join(if i == 0 {
                "w.pem".into()
            } else {
                format!("w{i}.pem")
            });
            std::process::Command::new(assert_cmd::cargo::cargo_bin("gym"))
                .args([
                    "-q",
                    "ring",
                    "join",
                    "--timeout",
                    "20",
                    "--epoch",
                    "1",
                    "--ring",
                ])
                .arg(&ring)
                .arg("--key")
                .arg(key)
                .arg("--input")
                .arg(&deltas[i])
                .arg("-o")
                .arg(dir.join(format!("avg{i}.delta")))
                .arg("--receipts")
                .arg(e.join(format!("ring/r{i}.json")))
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let mut roster = String::from("node,role,stake\n");
    for id in &ids {
        roster += &format!("{},compute,10000\n", id.public().worker_id());
    }
    roster += &format!("{},validator,25000\n", vid.public().worker_id());
    std::fs::write(e.join("nodes.csv"), roster).unwrap();
    let (code, out, stderr) = run(gym()
        .args([
            "reward",
            "estimate",
            "--epoch",
            "1",
            "--model-params",
            "1000000",
            "--json",
        ])
        .arg(&e));
    assert_eq!(code, 0, "{stderr}");
    let j = json(&out);
    assert_eq!(j["rejected"].as_array().unwrap().len(), 0, "{j}");
    for n in j["nodes"].as_array().unwrap() {
        assert_eq!(n["eligible"], true, "{n}");
        if n["role"] == "compute" {
            let s = &n["shares"];
            assert!(s["network"].as_f64().unwrap() > 0.3, "{n}");
            assert!(s["quality"].as_f64().unwrap() > 0.0, "{n}");
            assert!(s["compute"].as_f64().unwrap() > 0.3, "{n}");
        }
    }
    // the self-reported compute metrics, bounded by the job: tokens by the assignment,
    // seconds by the round's wall time
    let eco = dir.join("eco.toml");
    std::fs::write(
        &eco,
        "[caps]\ntokens_per_delta = 100\nwall_seconds_per_delta = 0.001\n",
    )
    .unwrap();
    let (code, out, stderr) = run(gym()
        .args([
            "reward",
            "estimate",
            "--epoch",
            "1",
            "--model-params",
            "1000000",
            "--json",
        ])
        .arg("--economics")
        .arg(&eco)
        .arg(&e));
    assert_eq!(code, 0, "{stderr}");
    let notes = json(&out)["notes"].to_string();
    assert!(notes.contains("capped at the assignment 100"), "{notes}");
    assert!(notes.contains("capped at the round's 0.001"), "{notes}");
}
