//! `--device` / `GYM_DEVICE` on `train`, `eval` and `generate` through the real binary: the CPU
//! runs and is named in the metrics and the compute record; a GPU asked of a build without the
//! `cuda` feature is refused with exit code 22 before anything is written; bad spellings are
//! usage errors (exit code 2).

use crate::common::*;

/// Exit code of `ErrorClass::Device` (README.md, "Exit codes").
#[cfg(not(feature = "cuda"))]
const DEVICE_UNAVAILABLE: i32 = 22;

#[test]
fn the_cpu_runs_and_is_named_in_metrics_and_the_compute_record() {
    let t = tmp();
    let out = t.path().join("run");
    let (code, stdout, stderr) = run(gym()
        .env("GYM_DEVICE", "cuda:5") // the flag wins over the environment
        .args([
            "-q",
            "train",
            "--device",
            "cpu",
            "--json",
            "--max-steps",
            "2",
        ])
        .args(["--aggregate-interval", "2", "-o"])
        .arg(&out));
    assert_eq!(code, 0, "{stderr}");
    let s = json(&stdout);
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(json).collect();
    assert_eq!(lines.len(), 2);
    let device = lines[0]["device"].as_str().unwrap().to_string();
    assert!(device == "cpu" || device.starts_with("cpu ("), "{device}");
    let delta = s["deltas"][0]["path"].as_str().unwrap();
    let (code, stdout, stderr) = run(gym().args(["delta", "inspect", "--json", delta]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        json(&stdout)["metadata"]["compute"]["device"],
        device.as_str()
    );
    let (code, stdout, stderr) = run(gym().env("GYM_DEVICE", "cpu").args([
        "generate",
        "--json",
        "--max-new-tokens",
        "3",
        "--prompt",
        "Hi",
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json(&stdout)["format"], "gym-generate/1");
}

#[cfg(not(feature = "cuda"))]
#[test]
fn a_build_without_cuda_refuses_a_gpu_with_its_own_exit_code() {
    let t = tmp();
    let out = t.path().join("run");
    let (code, _, stderr) = run(gym()
        .args(["train", "--device", "cuda", "--max-steps", "1", "-o"])
        .arg(&out));
    assert_eq!(code, DEVICE_UNAVAILABLE, "{stderr}");
    assert!(
        stderr.contains("device cuda:0 is not available") && stderr.contains("--features cuda"),
        "{stderr}"
    );
    assert!(!exists(&out), "a refused run created {}", out.display());
    let (code, _, stderr) = run(gym().args(["eval", "--device", "cuda:1", "--limit", "1"]));
    assert_eq!(code, DEVICE_UNAVAILABLE, "{stderr}");
    assert!(stderr.contains("cuda:1"), "{stderr}");
    let (code, stdout, stderr) = run(gym()
        .env("GYM_DEVICE", "cuda")
        .args(["generate", "--prompt", "Hi"]));
    assert_eq!(code, DEVICE_UNAVAILABLE, "{stderr}");
    assert!(stdout.is_empty() && stderr.contains("cuda:0"), "{stderr}");
}

#[test]
fn bad_device_spellings_are_usage_errors_naming_the_value() {
    let t = tmp();
    for (cmd, spec) in [
        ("train", "gpu"),
        ("eval", "cuda:"),
        ("generate", "cuda:x"),
        ("train", "CPU"),
    ] {
        let mut c = gym();
        c.args([cmd, "--device", spec]);
        match cmd {
            "train" => c.arg("-o").arg(t.path().join("o")),
            "generate" => c.args(["--prompt", "Hi"]),
            _ => &mut c,
        };
        let (code, _, stderr) = run(&mut c);
        assert_eq!(code, 2, "{cmd} --device {spec}: {stderr}");
        assert!(!exists(&t.path().join("o")));
        assert!(
            stderr.contains(&format!("{spec:?}"))
                && stderr.contains("expected cpu, cuda or cuda:N"),
            "{stderr}"
        );
    }
    let (code, _, stderr) = run(gym()
        .env("GYM_DEVICE", "tpu")
        .args(["generate", "--prompt", "Hi"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("\"tpu\""), "{stderr}");
}

/// `--blas` / `GYM_BLAS` (the CPU's large matrix products): the choice is named in the metrics'
/// device label; a library that cannot be used is a usage error naming it, before anything is
/// written. CI installs OpenBLAS and sets GYM_REQUIRE_BLAS, so there `auto` must find one, and
/// names oneMKL's `libmkl_rt` from PyPI in GYM_TEST_MKL (with GYM_REQUIRE_MKL).
#[test]
fn the_blas_choice_is_named_and_an_unusable_library_is_refused() {
    let t = tmp();
    let device_of = |env: &str, dir: &str| {
        let out = t.path().join(dir);
        let (code, _, stderr) = run(gym()
            .env("GYM_BLAS", env)
            .args(["-q", "train", "--max-steps", "1", "-o"])
            .arg(&out));
        assert_eq!(code, 0, "{stderr}");
        metrics_device(&out)
    };
    let builtin = device_of("builtin", "builtin");
    assert!(
        builtin.ends_with(", builtin gemm)") || builtin == "cpu (builtin gemm)",
        "{builtin}"
    );
    let auto = device_of("auto", "auto");
    if std::env::var_os("GYM_REQUIRE_BLAS").is_some() {
        assert!(!auto.contains("builtin"), "GYM_REQUIRE_BLAS is set: {auto}");
    }
    // oneMKL by path (`pip install mkl`; CI sets both variables): named with its version
    match std::env::var("GYM_TEST_MKL") {
        Ok(mkl) => {
            let named = device_of(&mkl, "mkl");
            assert!(named.contains(", oneMKL 20"), "{named}");
        }
        Err(_) => assert!(
            std::env::var_os("GYM_REQUIRE_MKL").is_none(),
            "GYM_REQUIRE_MKL is set but GYM_TEST_MKL is not"
        ),
    }
    let out = t.path().join("refused");
    for bad in ["/nonexistent/libgym-no-blas.so", "libc.so.6"] {
        let (code, _, stderr) = run(gym()
            .args(["--blas", bad, "train", "--max-steps", "1", "-o"])
            .arg(&out));
        assert_eq!(code, 2, "{stderr}");
        assert!(
            stderr.contains(bad) && stderr.contains("--blas"),
            "{stderr}"
        );
        assert!(!exists(&out), "a refused run created {}", out.display());
    }
}

fn metrics_device(run: &std::path::Path) -> String {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let first = json(text.lines().next().expect("a metrics line"));
    first["device"].as_str().unwrap().to_string()
}
