//! `gym model inspect` and `gym generate` on the bundled tiny models.

use crate::common::{gym, json, run, testdata};

#[test]
fn inspect_json_reports_counts_and_memory() {
    let (code, out, err) = run(gym()
        .args(["model", "inspect", "--json", "--rank", "4"])
        .arg(testdata("tiny-qwen3")));
    assert_eq!(code, 0, "{err}");
    let v = json(&out);
    assert_eq!(v["format"], "gym-model/1");
    assert_eq!(v["architecture"], "qwen3");
    assert_eq!(v["layers"], 2);
    assert_eq!(v["head_dim"], 32);
    assert_eq!(v["tied_embeddings"], true);
    let p = v["parameters"].as_u64().unwrap();
    assert_eq!(v["bytes_f32"].as_u64().unwrap(), 4 * p);
    assert!(v["bytes_nf4"].as_u64().unwrap() < v["bytes_bf16"].as_u64().unwrap());
    // r = 4 on q,k,v,o,gate,up,down of 2 layers
    assert_eq!(
        v["lora_parameters"],
        2 * 4 * ((64 + 128) + 2 * (64 + 64) + (128 + 64) + 3 * (64 + 128))
    );

    let (code, out, err) = run(gym()
        .args(["model", "inspect", "--json"])
        .arg(testdata("tiny-qwen3-moe")));
    assert_eq!(code, 0, "{err}");
    let v = json(&out);
    assert_eq!(v["architecture"], "qwen3_moe");
    assert_eq!(v["experts"], 4);
    assert_eq!(v["moe_layers"], 1);
}

#[test]
fn inspect_text_and_errors() {
    let (code, out, err) = run(gym().args(["model", "inspect"]).arg(testdata("tiny-qwen3")));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("qwen3") && out.contains("LoRA r16"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(gym().args(["model", "inspect"]).arg(dir.path()));
    assert_eq!(code, 3, "missing config.json is an I/O error: {err}");
    assert!(err.contains("config.json"), "{err}");
    std::fs::write(dir.path().join("config.json"), r#"{"model_type": "gpt2"}"#).unwrap();
    let (code, _, err) = run(gym().args(["model", "inspect"]).arg(dir.path()));
    assert_eq!(code, 11, "{err}");
    assert!(err.contains("gpt2"), "{err}");
}

#[test]
fn generate_is_deterministic_and_greedy_matches_the_reference() {
    let args = [
        "generate",
        "--prompt",
        "Hello",
        "-n",
        "3",
        "--max-new-tokens",
        "8",
        "--seed",
        "5",
        "--json",
    ];
    let (code, a, err) = run(gym().args(args));
    assert_eq!(code, 0, "{err}");
    let (_, b, _) = run(gym().args(args));
    assert_eq!(a, b, "same seed, same output");
    let v = json(&a);
    assert_eq!(v["format"], "gym-generate/1");
    let c = v["completions"].as_array().unwrap();
    assert_eq!(c.len(), 3);
    for x in c {
        assert_eq!(x["tokens"].as_array().unwrap().len(), 8);
        assert_eq!(x["logprobs"].as_array().unwrap().len(), 8);
    }
    // greedy on the bundled model = transformers' greedy on testdata/tiny-qwen3
    let r: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(testdata("model-ref/tiny-qwen3-greedy.json")).unwrap(),
    )
    .unwrap();
    let (code, out, err) = run(gym().args([
        "generate",
        "--prompt",
        "Hello",
        "--temperature",
        "0",
        "--max-new-tokens",
        "12",
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    let v = json(&out);
    assert_eq!(v["completions"][0]["tokens"], r["completions"][0]);
    // and the same with the model folder given explicitly
    let (code, out2, err) = run(gym()
        .args([
            "generate",
            "--temperature",
            "0",
            "--max-new-tokens",
            "12",
            "--json",
            "--prompt",
            "Hello",
            "--model",
        ])
        .arg(testdata("tiny-qwen3")));
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out2)["completions"][0]["tokens"], r["completions"][0]);
}

/// The other architectures through the real binary: `model inspect` counts every weight of the
/// tiny checkpoints, and greedy `generate --model` equals transformers' greedy run.
#[test]
fn other_architectures_inspect_and_generate() {
    for (name, arch) in [
        ("tiny-qwen2", "qwen2"),
        ("tiny-llama", "llama"),
        ("tiny-mistral", "mistral"),
        ("tiny-mixtral", "mixtral"),
        ("tiny-qwen3-next", "qwen3_next"),
    ] {
        let (code, out, err) = run(gym()
            .args(["model", "inspect", "--json"])
            .arg(testdata(name)));
        assert_eq!(code, 0, "{name}: {err}");
        let v = json(&out);
        assert_eq!(v["architecture"], arch);
        let bytes = std::fs::read(testdata(name).join("model.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let n: usize = st
            .tensors()
            .iter()
            .map(|(_, t)| t.shape().iter().product::<usize>())
            .sum();
        assert_eq!(v["parameters"].as_u64().unwrap(), n as u64, "{name}");

        let r: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(testdata(&format!("model-ref/{name}-greedy.json"))).unwrap(),
        )
        .unwrap();
        let (code, out, err) = run(gym()
            .args([
                "generate",
                "--temperature",
                "0",
                "--max-new-tokens",
                "12",
                "--json",
            ])
            .args(["--prompt", "Hello", "--model"])
            .arg(testdata(name)));
        assert_eq!(code, 0, "{name}: {err}");
        assert_eq!(
            json(&out)["completions"][0]["tokens"],
            r["completions"][0],
            "{name}"
        );
    }
}
