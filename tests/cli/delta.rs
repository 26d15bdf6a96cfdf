//! `gym delta …` through the real binary, on real files.

use std::path::{Path, PathBuf};

use crate::common::*;

type Spec = (&'static str, safetensors::Dtype, Vec<usize>, Vec<u8>);

/// Writes a safetensors file with the reference implementation (the `safetensors` crate).
fn write_safetensors(path: &Path, tensors: &[Spec], meta: Option<&[(&str, &str)]>) {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.to_string(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let meta = meta.map(|m| {
        m.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    });
    safetensors::serialize_to_file(views, meta, path).unwrap();
}

fn f32_bytes(v: impl IntoIterator<Item = f32>) -> Vec<u8> {
    v.into_iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn lora_like(seed: u32, n: usize) -> Vec<u8> {
    f32_bytes((0..n).map(|i| {
        (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32 / 16777216.0 - 0.5)
            * 0.02
    }))
}

fn sample_input(dir: &Path) -> (PathBuf, Vec<Spec>) {
    let p = dir.join("adapter.safetensors");
    let tensors = vec![
        (
            "lora.q_proj.lora_A.weight",
            safetensors::Dtype::F32,
            vec![16, 64],
            lora_like(1, 1024),
        ),
        (
            "lora.q_proj.lora_B.weight",
            safetensors::Dtype::F32,
            vec![64, 16],
            vec![0u8; 4096],
        ),
        (
            "lora.big",
            safetensors::Dtype::F32,
            vec![300_000],
            lora_like(2, 300_000),
        ),
        ("mask", safetensors::Dtype::BOOL, vec![3], vec![1, 0, 1]),
        (
            "half",
            safetensors::Dtype::BF16,
            vec![2, 2],
            vec![1, 2, 3, 4, 5, 6, 7, 8],
        ),
    ];
    write_safetensors(&p, &tensors, Some(&[("format", "pt")]));
    (p, tensors)
}

fn keygen(dir: &Path, name: &str, pq: bool) -> (PathBuf, String) {
    let k = dir.join(name);
    let mut c = gym();
    c.args(["keygen", "--json", "-o"]).arg(&k);
    if pq {
        c.arg("--pq");
    }
    let (code, stdout, stderr) = run(&mut c);
    assert_eq!(code, 0, "{stderr}");
    (k, stdout)
}

#[test]
fn pack_inspect_verify_unpack_round_trip() {
    let d = tmp();
    let (input, tensors) = sample_input(d.path());
    let out = d.path().join("x.delta");
    const META: [&str; 16] = [
        "--epoch",
        "3",
        "--step",
        "150",
        "--seq",
        "9",
        "--loss",
        "1.25",
        "--timestamp",
        "2025-01-02T03:04:05Z",
        "--tokens",
        "1000",
        "--flops",
        "2e12",
        "--chunk-size",
        "256KiB",
    ];
    let (code, stdout, stderr) = run(gym()
        .args(["delta", "pack", "--json"])
        .args(META)
        .arg(&input)
        .arg("-o")
        .arg(&out));
    assert_eq!(code, 0, "{stderr}");
    let packed = json(&stdout);
    assert_eq!(packed["format"], "gym-delta-pack/1");
    assert_eq!(packed["tensors"], 5);
    assert_eq!(
        packed["file_bytes"].as_u64().unwrap(),
        std::fs::metadata(&out).unwrap().len()
    );

    let (code, stdout, _) = run(gym().args(["delta", "inspect", "--json"]).arg(&out));
    assert_eq!(code, 0);
    let v = json(&stdout);
    assert_eq!(v["format"], "gym-delta-inspect/1");
    assert_eq!(v["metadata"]["epoch"], 3);
    assert_eq!(v["metadata"]["step"], 150);
    assert_eq!(v["metadata"]["seq"], 9);
    assert_eq!(v["metadata"]["loss"], 1.25);
    assert_eq!(v["metadata"]["worker_id"], "anonymous");
    assert_eq!(v["metadata"]["compute"]["tokens"], 1000);
    assert_eq!(v["header"]["chunk_size"], 262144);
    assert_eq!(
        v["header"]["checksum"].as_str().unwrap(),
        packed["checksum"].as_str().unwrap()
    );
    let big = v["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "lora.big")
        .unwrap();
    assert_eq!(big["raw_bytes"], 1_200_000);
    assert_eq!(big["chunks"], 5, "1.2 MB in 256 KiB chunks");
    let zeros = v["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "lora.q_proj.lora_B.weight")
        .unwrap();
    assert!(
        zeros["ratio"].as_f64().unwrap() > 10.0,
        "zeros compress: {zeros}"
    );

    // Text inspect names every tensor.
    let (_, text, _) = run(gym().args(["delta", "inspect"]).arg(&out));
    for (n, ..) in &tensors {
        assert!(text.contains(n), "{text}");
    }

    let (code, stdout, _) = run(gym().args(["delta", "verify", "--json"]).arg(&out));
    assert_eq!(code, 0);
    let r = &json(&stdout)["results"][0];
    assert_eq!(r["ok"], true);
    assert_eq!(r["digest"], packed["digest"]);
    assert_eq!(r["attestation"]["type"], "none");
    assert_eq!(r["attestation"]["verified"], false);

    let back = d.path().join("back.safetensors");
    let (code, _, stderr) = run(gym()
        .args(["delta", "unpack"])
        .arg(&out)
        .arg("-o")
        .arg(&back));
    assert_eq!(code, 0, "{stderr}");
    let bytes = std::fs::read(&back).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.len(), tensors.len());
    for (n, dt, shape, data) in &tensors {
        let t = st.tensor(n).unwrap();
        assert_eq!(t.dtype(), *dt);
        assert_eq!(t.shape(), shape.as_slice());
        assert_eq!(t.data(), data.as_slice(), "{n} round-trips bit-exactly");
    }
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(
        meta.metadata()
            .as_ref()
            .unwrap()
            .get("format")
            .map(String::as_str),
        Some("pt")
    );

    // Same input, one thread: same bytes.
    let out1 = d.path().join("x1.delta");
    let (code, _, _) = run(gym()
        .args(["--threads", "1", "delta", "pack"])
        .args(META)
        .arg(&input)
        .arg("-o")
        .arg(&out1));
    assert_eq!(code, 0);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&out1).unwrap());
}

#[test]
fn peft_folder_round_trip() {
    let d = tmp();
    let adapter = d.path().join("adapter");
    std::fs::create_dir(&adapter).unwrap();
    write_safetensors(
        &adapter.join("adapter_model.safetensors"),
        &[(
            "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
            safetensors::Dtype::F32,
            vec![4, 8],
            lora_like(5, 32),
        )],
        None,
    );
    let cfg = serde_json::json!({"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]});
    std::fs::write(adapter.join("adapter_config.json"), cfg.to_string()).unwrap();
    let out = d.path().join("a.delta");
    assert_eq!(
        run(gym()
            .args(["delta", "pack"])
            .arg(&adapter)
            .arg("-o")
            .arg(&out))
        .0,
        0
    );
    let (_, stdout, _) = run(gym().args(["delta", "inspect", "--json"]).arg(&out));
    assert_eq!(json(&stdout)["metadata"]["adapter_config"], cfg);
    let back = d.path().join("back");
    let (code, _, stderr) = run(gym()
        .args(["delta", "unpack"])
        .arg(&out)
        .arg("-o")
        .arg(&back));
    assert_eq!(code, 0, "{stderr}");
    let cfg_back: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(back.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg_back, cfg);
    assert_eq!(
        safetensors::SafeTensors::deserialize(
            &std::fs::read(back.join("adapter_model.safetensors")).unwrap()
        )
        .unwrap()
        .tensor("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")
        .unwrap()
        .data(),
        lora_like(5, 32).as_slice()
    );
    // Asking for a PEFT folder from a delta without an adapter config is a usage error.
    let plain = d.path().join("plain.delta");
    let (input, _) = sample_input(d.path());
    assert_eq!(
        run(gym()
            .args(["delta", "pack"])
            .arg(&input)
            .arg("-o")
            .arg(&plain))
        .0,
        0
    );
    let (code, _, stderr) = run(gym()
        .args(["delta", "unpack", "--format", "peft"])
        .arg(&plain)
        .arg("-o")
        .arg(d.path().join("nope")));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("adapter_config"), "{stderr}");
    assert!(!exists(&d.path().join("nope")));
    // A folder without the safetensors file is a clear error.
    let empty = d.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (code, _, stderr) = run(gym()
        .args(["delta", "pack"])
        .arg(&empty)
        .arg("-o")
        .arg(d.path().join("e.delta")));
    assert_eq!(code, 3);
    assert!(stderr.contains("adapter_model.safetensors"), "{stderr}");
}

#[test]
fn signed_hybrid_pack_verifies_against_trusted_keys_built_from_key_show() {
    let d = tmp();
    let (input, _) = sample_input(d.path());
    let (ka, ja) = keygen(d.path(), "a.pem", true);
    let (kb, jb) = keygen(d.path(), "b.pem", false);
    let (_kc, _) = keygen(d.path(), "c.pem", false);
    let trusted = d.path().join("trusted.jsonl");
    std::fs::write(&trusted, format!("{ja}{jb}")).unwrap();
    let da = d.path().join("a.delta");
    let db = d.path().join("b.delta");
    assert_eq!(
        run(gym()
            .args(["delta", "pack", "--seq", "1", "--sign"])
            .arg(&ka)
            .arg(&input)
            .arg("-o")
            .arg(&da))
        .0,
        0
    );
    assert_eq!(
        run(gym()
            .args(["delta", "pack", "--seq", "1", "--sign"])
            .arg(&kb)
            .arg(&input)
            .arg("-o")
            .arg(&db))
        .0,
        0
    );
    let (code, stdout, stderr) = run(gym()
        .args(["delta", "verify", "--json", "--trusted-keys"])
        .arg(&trusted)
        .arg(&da)
        .arg(&db));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let v = json(&stdout);
    let ra = &v["results"][0];
    assert_eq!(ra["trusted"], true);
    assert_eq!(ra["signer"]["worker_id"], json(&ja)["worker_id"]);
    assert_eq!(
        ra["worker_id"],
        json(&ja)["worker_id"],
        "worker id defaults to the signer's"
    );
    assert!(ra["signer"]["ml_dsa_87"].is_string(), "hybrid");
    assert!(v["results"][1]["signer"]["ml_dsa_87"].is_null());

    // Only b trusted: a fails as untrusted (14), naming the signer.
    let only_b = d.path().join("only-b.txt");
    std::fs::write(
        &only_b,
        format!(
            "# comment\n{} worker b\n",
            json(&jb)["ed25519"].as_str().unwrap()
        ),
    )
    .unwrap();
    let (code, stdout, _) = run(gym()
        .args(["delta", "verify", "--trusted-keys"])
        .arg(&only_b)
        .arg(&da));
    assert_eq!(code, 14, "{stdout}");
    assert!(
        stdout.contains(json(&ja)["worker_id"].as_str().unwrap()),
        "{stdout}"
    );
    let (code, stdout, _) = run(gym()
        .args(["delta", "verify", "--trusted-keys"])
        .arg(&only_b)
        .arg(&db));
    assert_eq!(code, 0);
    assert!(stdout.contains("trusted: worker b"), "{stdout}");
}

#[test]
fn replayed_and_stale_sequence_numbers_are_refused() {
    let d = tmp();
    let (input, _) = sample_input(d.path());
    let (k, _) = keygen(d.path(), "k.pem", false);
    let mk = |seq: &str, name: &str| {
        let p = d.path().join(name);
        assert_eq!(
            run(gym()
                .args(["delta", "pack", "--seq", seq, "--sign"])
                .arg(&k)
                .arg(&input)
                .arg("-o")
                .arg(&p))
            .0,
            0
        );
        p
    };
    let d5 = mk("5", "d5.delta");
    let d5b = mk("5", "d5b.delta");
    let d6 = mk("6", "d6.delta");
    assert_eq!(run(gym().args(["delta", "verify"]).arg(&d5).arg(&d6)).0, 0);
    let (code, stdout, _) = run(gym()
        .args(["delta", "verify", "--json"])
        .arg(&d5)
        .arg(&d6)
        .arg(&d5b));
    assert_eq!(code, 15, "{stdout}");
    let v = json(&stdout);
    assert_eq!(v["results"][2]["kind"], "replayed_sequence");
    let (code, _, _) = run(gym().args(["delta", "verify", "--min-seq", "6"]).arg(&d5));
    assert_eq!(code, 15);
    let (code, _, _) = run(gym()
        .args(["delta", "verify", "--require-signature"])
        .arg(d.path().join("d5.delta")));
    assert_eq!(code, 0);
}

#[test]
fn every_vector_gives_its_exit_code_through_the_cli() {
    let dir = testdata("vectors");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let cases = manifest["vectors"].as_array().unwrap();
    assert!(cases.len() >= 35);
    for c in cases {
        let mut cmd = gym();
        cmd.args(["delta", "verify", "--json"])
            .arg(dir.join(c["file"].as_str().unwrap()));
        if let Some(t) = c["trusted_keys"].as_str() {
            cmd.arg("--trusted-keys").arg(dir.join(t));
        }
        if let Some(m) = c["min_seq"].as_u64() {
            cmd.args(["--min-seq", &m.to_string()]);
        }
        if let Some(h) = c["base_hash"].as_str() {
            cmd.args(["--base-hash", h]);
        }
        let (code, stdout, _) = run(&mut cmd);
        let r = &json(&stdout)["results"][0];
        match c["class"].as_str() {
            None => {
                assert_eq!(code, 0, "{c}");
                assert_eq!(r["digest"], c["digest"]);
            }
            Some(class) => {
                let want = gym::core::error::ErrorClass::parse(class)
                    .unwrap()
                    .exit_code();
                assert_eq!(code, want, "{} {stdout}", c["file"]);
                assert_eq!(r["kind"], c["error"], "{}", c["file"]);
                assert!(
                    r["error"].as_str().unwrap().len() > 10,
                    "a message explains the failure"
                );
            }
        }
    }
}

#[test]
fn vectors_command_passes_and_detects_a_wrong_expectation() {
    let (code, stdout, _) = run(gym()
        .args(["delta", "verify", "--vectors"])
        .arg(testdata("vectors/manifest.json")));
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("0 mismatched"), "{stdout}");
    // A copy whose manifest claims a corrupted vector is valid must fail with exit code 16.
    let d = tmp();
    for e in std::fs::read_dir(testdata("vectors")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, d.path().join(p.file_name().unwrap())).unwrap();
    }
    let mpath = d.path().join("manifest.json");
    let text = std::fs::read_to_string(&mpath).unwrap();
    let mut m: serde_json::Value = serde_json::from_str(&text).unwrap();
    for c in m["vectors"].as_array_mut().unwrap() {
        if c["file"] == "checksum-flipped-bit.delta" {
            c["expect"] = "valid".into();
            c.as_object_mut().unwrap().remove("class");
        }
    }
    std::fs::write(&mpath, m.to_string()).unwrap();
    let (code, stdout, _) = run(gym()
        .args(["delta", "verify", "--json", "--vectors"])
        .arg(&mpath));
    assert_eq!(code, 16);
    assert_eq!(json(&stdout)["mismatches"], 1);
}

#[test]
fn vectors_on_disk_match_the_generator() {
    let dir = testdata("vectors");
    let files = gym::core::delta::vectors::generate();
    let mut stale = Vec::new();
    for (name, bytes) in &files {
        if std::fs::read(dir.join(name)).ok().as_ref() != Some(bytes) {
            stale.push(name.clone());
        }
    }
    let n_disk = std::fs::read_dir(&dir).unwrap().count();
    assert!(
        stale.is_empty() && n_disk == files.len(),
        "testdata/vectors is stale ({stale:?}, {n_disk} files on disk, {} generated): run `cargo run --example gen-vectors`",
        files.len()
    );
}

#[test]
fn outputs_are_never_overwritten_without_force_and_failures_leave_nothing() {
    let d = tmp();
    let (input, _) = sample_input(d.path());
    let out = d.path().join("x.delta");
    std::fs::write(&out, b"precious").unwrap();
    let (code, _, stderr) = run(gym()
        .args(["delta", "pack"])
        .arg(&input)
        .arg("-o")
        .arg(&out));
    assert_eq!(code, 4, "{stderr}");
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    assert_eq!(
        run(gym()
            .args(["delta", "pack", "--force"])
            .arg(&input)
            .arg("-o")
            .arg(&out))
        .0,
        0
    );
    assert_ne!(std::fs::read(&out).unwrap(), b"precious");

    // Unpacking a corrupt delta fails with the checksum code and leaves no output or temp file.
    let mut bytes = std::fs::read(&out).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 1; // inside the big tensor's (raw-stored) data
    let bad = d.path().join("bad.delta");
    std::fs::write(&bad, &bytes).unwrap();
    let before: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let target = d.path().join("out.safetensors");
    let (code, _, stderr) = run(gym()
        .args(["delta", "unpack"])
        .arg(&bad)
        .arg("-o")
        .arg(&target));
    assert_eq!(code, 12, "{stderr}");
    assert!(
        stderr.contains("bad.delta") && stderr.contains("checksum"),
        "{stderr}"
    );
    let after: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before.len(), after.len(), "nothing left behind: {after:?}");

    // A broken safetensors input names the file.
    let junk = d.path().join("junk.safetensors");
    std::fs::write(&junk, b"\x10\0\0\0\0\0\0\0{not json}      ").unwrap();
    let (code, _, stderr) = run(gym()
        .args(["delta", "pack"])
        .arg(&junk)
        .arg("-o")
        .arg(d.path().join("j.delta")));
    assert_eq!(code, 10, "{stderr}");
    assert!(stderr.contains("junk.safetensors"), "{stderr}");
    assert!(!exists(&d.path().join("j.delta")));
}

#[test]
fn diff_reports_distances() {
    let d = tmp();
    let a_in = d.path().join("a.safetensors");
    let b_in = d.path().join("b.safetensors");
    let a: Vec<f32> = (0..1000).map(|i| i as f32 * 0.001).collect();
    let mut b = a.clone();
    b[10] += 0.5;
    b[20] -= 0.25;
    write_safetensors(
        &a_in,
        &[
            (
                "w",
                safetensors::Dtype::F32,
                vec![1000],
                f32_bytes(a.clone()),
            ),
            ("only_a", safetensors::Dtype::U8, vec![1], vec![1]),
        ],
        None,
    );
    write_safetensors(
        &b_in,
        &[(
            "w",
            safetensors::Dtype::F32,
            vec![1000],
            f32_bytes(b.clone()),
        )],
        None,
    );
    let (ad, bd) = (d.path().join("a.delta"), d.path().join("b.delta"));
    assert_eq!(
        run(gym()
            .args(["delta", "pack", "--chunk-size", "1KiB"])
            .arg(&a_in)
            .arg("-o")
            .arg(&ad))
        .0,
        0
    );
    assert_eq!(
        run(gym()
            .args(["delta", "pack", "--chunk-size", "2KiB"])
            .arg(&b_in)
            .arg("-o")
            .arg(&bd))
        .0,
        0
    );
    let (code, stdout, _) = run(gym().args(["delta", "diff", "--json"]).arg(&ad).arg(&bd));
    assert_eq!(code, 0);
    let v = json(&stdout);
    let w = v["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "w")
        .unwrap();
    let l2 = w["l2"].as_f64().unwrap();
    let expect_l2 = ((0.5f64).powi(2) + (0.25f64).powi(2)).sqrt();
    assert!((l2 - expect_l2).abs() < 1e-6, "{l2}");
    assert!((w["max_abs"].as_f64().unwrap() - 0.5).abs() < 1e-6);
    let (dot, na, nb) = a
        .iter()
        .zip(&b)
        .fold((0f64, 0f64, 0f64), |(d, x, y), (p, q)| {
            (
                d + *p as f64 * *q as f64,
                x + (*p as f64).powi(2),
                y + (*q as f64).powi(2),
            )
        });
    assert!((w["cosine"].as_f64().unwrap() - dot / (na.sqrt() * nb.sqrt())).abs() < 1e-9);
    assert_eq!(w["identical_bytes"], false);
    assert!(
        v["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "only_a" && t["status"] == "only_a")
    );
    // A delta against itself: zero distance.
    let (_, stdout, _) = run(gym().args(["delta", "diff", "--json"]).arg(&ad).arg(&ad));
    let w = json(&stdout)["tensors"][0].clone();
    assert_eq!(w["l2"], 0.0);
    assert_eq!(w["identical_bytes"], true);
}

#[test]
fn closed_stdout_pipe_is_not_an_error() {
    let d = tmp();
    let (input, _) = sample_input(d.path());
    let out = d.path().join("x.delta");
    assert_eq!(
        run(gym()
            .args(["delta", "pack"])
            .arg(&input)
            .arg("-o")
            .arg(&out))
        .0,
        0
    );
    let bin = assert_cmd::cargo::cargo_bin("gym");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' delta inspect '{}' | head -c 1 >/dev/null; exit ${{PIPESTATUS:-0}}",
            bin.display(),
            out.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' completions bash | head -c 10 >/dev/null",
            bin.display()
        ))
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("panicked"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, stderr) =
        run(gym().args(["delta", "pack", "--chunk-size", "1000", "x", "-o", "y"]));
    assert_eq!(code, 2);
    assert!(stderr.contains("power of two"), "{stderr}");
    let (code, _, _) = run(gym().args(["delta", "frobnicate"]));
    assert_eq!(code, 2);
}
