//! Models and datasets by hub id through the Hugging Face cache, against the local Hub of
//! tests/cli/hub_dl_server.rs: download, cache hits online and offline, resume after a cut
//! connection, errors that leave the cache valid, and the real `huggingface_hub` client
//! (from PyPI) filling a cache gym reads and reading one gym fills.
//!
//! The interoperability tests need a Python with `huggingface_hub`: `GYM_TEST_HF_PYTHON`
//! (default /work/venvs/hub/bin/python). Without one they skip, unless
//! `GYM_REQUIRE_HF_HUB=1` (set by .ci/run) turns the skip into a failure.

use std::path::{Path, PathBuf};

use crate::common::{gym, json, pattern, run, testdata, tmp};
use crate::hub_dl_server::{DlServer, git_blob_id, sha256_hex};

const TOKEN: &str = "hf_test_read_token";

fn hf(home: &Path, endpoint: &str) -> assert_cmd::Command {
    let mut c = gym();
    for k in [
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_TOKEN_PATH",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_HUB_OFFLINE",
        "MODEL_NAME",
    ] {
        c.env_remove(k);
    }
    c.env("HF_HOME", home).env("HF_ENDPOINT", endpoint);
    c
}

/// A sharded model repository with files training does not need.
fn sharded(server: &DlServer) -> (String, Vec<(&'static str, Vec<u8>)>) {
    let index = serde_json::json!({"metadata": {"total_size": 500_000},
        "weight_map": {"a.weight": "model-00001-of-00002.safetensors",
                       "b.weight": "model-00002-of-00002.safetensors",
                       "c.weight": "model-00001-of-00002.safetensors"}});
    let files = vec![
        ("config.json", br#"{"model_type": "qwen3"}"#.to_vec()),
        (
            "generation_config.json",
            br#"{"eos_token_id": [1, 2]}"#.to_vec(),
        ),
        ("tokenizer.json", b"{}".to_vec()),
        (
            "model.safetensors.index.json",
            index.to_string().into_bytes(),
        ),
        ("model-00001-of-00002.safetensors", pattern(300_000)),
        ("model-00002-of-00002.safetensors", pattern(200_003)),
        ("pytorch_model.bin", pattern(50_000)),
        ("onnx/model.onnx", pattern(10_000)),
        ("README.md", b"# sharded\n".to_vec()),
    ];
    let commit = server.add_repo("models", "acme/sharded", &files, false);
    (commit, files)
}

const NEEDED: [&str; 6] = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "model.safetensors.index.json",
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
];

fn download(c: &mut assert_cmd::Command, args: &[&str]) -> serde_json::Value {
    let (code, out, err) = run(c.arg("download").args(args).arg("--json"));
    assert_eq!(code, 0, "{err}");
    json(&out)
}

fn origins(v: &serde_json::Value) -> Vec<(String, String)> {
    let mut o: Vec<(String, String)> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["origin"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    o.sort();
    o
}

fn all(origin: &str) -> Vec<(String, String)> {
    let mut o: Vec<(String, String)> = NEEDED
        .iter()
        .map(|p| (p.to_string(), origin.to_string()))
        .collect();
    o.sort();
    o
}

#[test]
fn model_by_id_fills_the_cache_in_the_hub_layout_and_is_found_offline() {
    let server = DlServer::start(TOKEN);
    let (commit, files) = sharded(&server);
    let home = tmp();
    let v = download(&mut hf(home.path(), &server.url), &["acme/sharded"]);
    assert_eq!(origins(&v), all("downloaded"));
    assert_eq!(v["format"], "gym-download/1");
    assert_eq!(v["commit"], commit);
    assert_eq!(v["offline"], false);
    // only the needed files were fetched
    for skip in ["pytorch_model.bin", "onnx", "README.md"] {
        assert!(server.requests(skip).is_empty(), "{skip} was requested");
    }
    // the layout huggingface_hub uses
    let repo = home.path().join("hub/models--acme--sharded");
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/main")).unwrap(),
        commit
    );
    let snap = repo.join("snapshots").join(&commit);
    assert_eq!(PathBuf::from(v["dir"].as_str().unwrap()), snap);
    for (p, bytes) in files.iter().filter(|(p, _)| NEEDED.contains(p)) {
        let etag = if p.ends_with(".safetensors") {
            sha256_hex(bytes)
        } else {
            git_blob_id(bytes)
        };
        let link = std::fs::read_link(snap.join(p)).unwrap();
        assert_eq!(link, PathBuf::from(format!("../../blobs/{etag}")), "{p}");
        assert_eq!(&std::fs::read(snap.join(p)).unwrap(), bytes, "{p}");
    }
    // the CDN never saw the token; nothing is left half-written
    assert!(server.requests("/cdn/").iter().all(|l| !l.authorized));
    let leftovers: Vec<_> = std::fs::read_dir(repo.join("blobs"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // again: everything from the cache, no file requests
    let before = server.requests("/resolve/").len();
    let v = download(&mut hf(home.path(), &server.url), &["acme/sharded"]);
    assert_eq!(origins(&v), all("cached"));
    assert_eq!(server.requests("/resolve/").len(), before);

    // offline, and with the Hub unreachable: the cache alone
    let v = download(
        hf(home.path(), "http://127.0.0.1:9").env("HF_HUB_OFFLINE", "1"),
        &["acme/sharded"],
    );
    assert_eq!(
        (v["offline"].as_bool(), v["commit"].as_str()),
        (Some(true), Some(commit.as_str()))
    );
    assert_eq!(origins(&v), all("cached"));
    let v = download(
        &mut hf(home.path(), "http://127.0.0.1:9"),
        &["acme/sharded"],
    );
    assert_eq!(v["offline"], true);

    // a renamed repository: the Hub redirects on its own host, the cache keeps the name asked
    server
        .state()
        .renamed
        .push(("acme/old-name".into(), "acme/sharded".into()));
    let v = download(&mut hf(home.path(), &server.url), &["acme/old-name"]);
    assert_eq!(v["commit"], commit);
    assert!(
        home.path()
            .join("hub/models--acme--old-name/refs/main")
            .exists()
    );
    assert!(
        server
            .requests("/acme/old-name/resolve/")
            .iter()
            .all(|l| l.method == "HEAD")
    );

    // offline and not cached: a clear error, exit 17
    let (code, _, err) = run(hf(home.path(), &server.url)
        .env("HF_HUB_OFFLINE", "1")
        .args(["download", "acme/other"]));
    assert_eq!(code, 17, "{err}");
    assert!(
        err.contains("acme/other@main: the revision is not in the Hugging Face cache"),
        "{err}"
    );
    assert!(err.contains("HF_HUB_OFFLINE is set"), "{err}");
}

#[test]
fn a_cut_connection_is_resumed_and_a_truncated_download_resumes_next_run() {
    let server = DlServer::start(TOKEN);
    let (_, files) = sharded(&server);
    let home = tmp();
    server.state().cut.push(("model-00001".into(), 100_000, 1));
    let v = download(&mut hf(home.path(), &server.url), &["acme/sharded"]);
    assert_eq!(origins(&v), all("downloaded"));
    let gets: Vec<_> = server
        .requests("/cdn/")
        .into_iter()
        .filter(|l| l.method == "GET" && l.path.contains("model-00001"))
        .collect();
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert_eq!(gets[1].range.as_deref(), Some("bytes=100000-"));

    // every attempt cut: the run fails (exit 12), keeping the part for the next run
    let home = tmp();
    server.state().cut.push(("model-00002".into(), 20_000, 5));
    let (code, _, err) = run(hf(home.path(), &server.url).args(["download", "acme/sharded"]));
    assert_eq!(code, 12, "{err}");
    assert!(
        err.contains("model-00002-of-00002.safetensors: the download stopped at 100000 of 200003 bytes after 5 attempts"),
        "{err}"
    );
    let oid = sha256_hex(&files[5].1);
    let part = home
        .path()
        .join(format!("hub/models--acme--sharded/blobs/{oid}.incomplete"));
    assert_eq!(std::fs::metadata(&part).unwrap().len(), 100_000);
    let v = download(&mut hf(home.path(), &server.url), &["acme/sharded"]);
    let o = origins(&v);
    assert!(
        o.contains(&("model-00002-of-00002.safetensors".into(), "resumed".into())),
        "{o:?}"
    );
    let last = server.requests("model-00002").pop().unwrap();
    assert_eq!(last.range.as_deref(), Some("bytes=100000-"));
    assert!(!part.exists());
    let snap = PathBuf::from(v["dir"].as_str().unwrap());
    assert_eq!(
        std::fs::read(snap.join("model-00002-of-00002.safetensors")).unwrap(),
        files[5].1
    );
}

#[test]
fn bad_repos_tokens_and_bytes_get_clear_errors_and_leave_the_cache_valid() {
    let server = DlServer::start(TOKEN);
    let (_, files) = sharded(&server);
    let private = vec![
        files[0].clone(),
        files[2].clone(),
        ("model.safetensors", pattern(1000)),
    ];
    server.add_repo("models", "acme/private", &private, true);
    let home = tmp();
    let (code, _, err) = run(hf(home.path(), &server.url).args(["download", "acme/nope"]));
    assert_eq!(code, 19, "{err}");
    assert!(
        err.contains("model repository acme/nope not found on"),
        "{err}"
    );
    // a path that is neither a folder nor a repository says both
    let (code, _, err) = run(hf(home.path(), &server.url).args(["train", "--model", "acme/nope"]));
    assert_eq!(code, 19, "{err}");
    assert!(
        err.contains("acme/nope is not a local folder; as a Hugging Face Hub model id: model repository acme/nope not found"),
        "{err}"
    );
    let (code, _, err) = run(hf(home.path(), &server.url).args(["download", "acme/sharded@v9"]));
    assert_eq!(code, 19, "{err}");
    assert!(err.contains("revision \"v9\" not found"), "{err}");
    // private: no token looks like a missing repository (as on the Hub), a wrong one is 401
    let (code, _, err) = run(hf(home.path(), &server.url).args(["download", "acme/private"]));
    assert_eq!(code, 19, "{err}");
    assert!(
        err.contains("or it is private and HF_TOKEN may not read it"),
        "{err}"
    );
    let (code, _, err) = run(hf(home.path(), &server.url)
        .env("HF_TOKEN", "hf_wrong")
        .args(["download", "acme/private"]));
    assert_eq!(code, 18, "{err}");
    assert!(
        err.contains("authentication refused (401)") && !err.contains("hf_wrong"),
        "{err}"
    );
    let v = download(
        hf(home.path(), &server.url).env("HF_TOKEN", TOKEN),
        &["acme/private"],
    );
    assert_eq!(v["files"].as_array().unwrap().len(), 3);

    // a listing naming a file outside the snapshot is refused before any request for it
    server.add_repo(
        "datasets",
        "acme/evil",
        &[(
            "../../../outside/train.jsonl",
            b"{\"prompt\": \"x\"}\n".to_vec(),
        )],
        false,
    );
    let (code, _, err) =
        run(hf(home.path(), &server.url).args(["download", "--dataset", "acme/evil"]));
    assert_eq!(code, 10, "{err}");
    assert!(err.contains("leaves the snapshot folder"), "{err}");
    assert!(server.requests("outside").is_empty());
    assert!(!home.path().join("outside").exists() && !home.path().join("hub/outside").exists());

    // bytes that do not hash to the ETag are discarded, nothing is cached
    let home = tmp();
    server.state().corrupt.push("model-00001".into());
    let (code, _, err) = run(hf(home.path(), &server.url).args(["download", "acme/sharded"]));
    assert_eq!(code, 12, "{err}");
    assert!(
        err.contains("model-00001-of-00002.safetensors: the downloaded bytes hash to"),
        "{err}"
    );
    let blobs = home.path().join("hub/models--acme--sharded/blobs");
    let oid = sha256_hex(&files[4].1);
    assert!(!blobs.join(&oid).exists() && !blobs.join(format!("{oid}.incomplete")).exists());
    server.state().corrupt.clear();
    download(&mut hf(home.path(), &server.url), &["acme/sharded"]);

    // a blob corrupted in the cache: offline it is an error (and removed), online refetched
    let mut b = std::fs::read(blobs.join(&oid)).unwrap();
    b[7] ^= 0x40;
    std::fs::write(blobs.join(&oid), &b).unwrap();
    let (code, _, err) = run(hf(home.path(), &server.url)
        .env("HF_HUB_OFFLINE", "1")
        .args(["download", "acme/sharded"]));
    assert_eq!(code, 12, "{err}");
    assert!(
        err.contains("does not match its name (removed from the cache"),
        "{err}"
    );
    assert!(!blobs.join(&oid).exists());
    let v = download(&mut hf(home.path(), &server.url), &["acme/sharded"]);
    let o = origins(&v);
    assert!(
        o.contains(&(
            "model-00001-of-00002.safetensors".into(),
            "downloaded".into()
        )),
        "{o:?}"
    );
    assert_eq!(std::fs::read(blobs.join(&oid)).unwrap(), files[4].1);
}

/// The tiny Qwen3 of testdata as a hub repository.
fn tiny_model(server: &DlServer) -> String {
    let names = [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ];
    let files: Vec<(&str, Vec<u8>)> = names
        .iter()
        .map(|n| {
            (
                *n,
                std::fs::read(testdata(&format!("tiny-qwen3/{n}"))).unwrap(),
            )
        })
        .collect();
    server.add_repo("models", "acme/tiny-qwen3", &files, false)
}

/// testdata/hub/math.parquet (written by pyarrow, tools/reference/hub-datasets.py) as the
/// `main` configuration of a dataset, beside another configuration.
fn math_dataset(server: &DlServer) -> String {
    let pq = std::fs::read(testdata("hub/math.parquet")).unwrap();
    let files = vec![
        ("README.md", b"# math\n".to_vec()),
        ("main/train-00000-of-00001.parquet", pq.clone()),
        ("main/test-00000-of-00001.parquet", pq.clone()),
        ("socratic/train-00000-of-00001.parquet", pq),
    ];
    server.add_repo("datasets", "acme/math", &files, false)
}

#[test]
fn train_takes_a_model_and_a_parquet_dataset_by_hub_id() {
    let server = DlServer::start(TOKEN);
    let commit = tiny_model(&server);
    math_dataset(&server);
    let home = tmp();
    let out = tmp();
    let args = [
        "train",
        "--model",
        "acme/tiny-qwen3",
        "--data",
        "acme/math",
        "--data-config",
        "main",
        "--split",
        "train",
        "--prompt-column",
        "question",
        "--answer-column",
        "answer",
        "--reward",
        "exact",
        "--max-steps",
        "1",
        "--num-generations",
        "2",
        "--per-device-train-batch-size",
        "2",
        "--max-completion-length",
        "4",
        "--force",
        "--json",
        "-o",
    ];
    let (code, _, err) = run(hf(home.path(), &server.url).args(args).arg(out.path()));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("training acme/tiny-qwen3 ("), "{err}");
    assert!(err.contains("on acme/math split train"), "{err}");
    assert!(server.requests("socratic").is_empty());
    assert!(server.requests("test-0000").is_empty());
    // again offline, from the cache only, with the data mapping in the settings file and the
    // model pinned to its commit
    let toml = out.path().join("hub.toml");
    std::fs::write(
        &toml,
        "dataset = \"acme/math\"\ndataset_config = \"main\"\ndataset_train_split = \"train\"\n\
         prompt_column = \"question\"\nanswer_column = \"answer\"\n",
    )
    .unwrap();
    let (code, _, err) = run(hf(home.path(), "http://127.0.0.1:9")
        .env("HF_HUB_OFFLINE", "1")
        .args(["train", "--config"])
        .arg(&toml)
        .args(["--model", &format!("acme/tiny-qwen3@{commit}")])
        .args(&args[args.len() - 13..])
        .arg(out.path().join("run2")));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("(offline)"), "{err}");
    assert!(err.contains("on acme/math split train"), "{err}");
    // gym generate takes a model id too (offline, from the cache)
    let (code, _, err) = run(hf(home.path(), "http://127.0.0.1:9")
        .env("HF_HUB_OFFLINE", "1")
        .args([
            "generate",
            "--model",
            "acme/tiny-qwen3",
            "--prompt",
            "2+3=",
            "-n",
            "1",
        ])
        .args(["--max-new-tokens", "2"]));
    assert_eq!(code, 0, "{err}");
    // gym eval takes the same ids; its split defaults to test
    let (code, out_json, err) = run(hf(home.path(), &server.url).args([
        "eval",
        "--model",
        "acme/tiny-qwen3",
        "--data",
        "acme/math",
        "--data-config",
        "main",
        "--prompt-column",
        "question",
        "--answer-column",
        "answer",
        "--limit",
        "2",
        "--max-completion-length",
        "2",
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out_json)["examples"], 2);
    // the test file has the train file's bytes: its blob is shared, so only a HEAD was needed
    let reqs = server.requests("main/test-0000");
    assert_eq!(
        (reqs.len(), reqs[0].method.as_str()),
        (1, "HEAD"),
        "{reqs:?}"
    );
    // a split in two configurations needs --data-config
    let (code, _, err) =
        run(hf(home.path(), &server.url).args(["download", "acme/math", "--dataset"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("several configurations (main, socratic); choose one with --data-config"),
        "{err}"
    );
}

// ---- the real huggingface_hub client against the same server

fn python() -> Option<String> {
    let p =
        std::env::var("GYM_TEST_HF_PYTHON").unwrap_or_else(|_| "/work/venvs/hub/bin/python".into());
    let ok = std::process::Command::new(&p)
        .args(["-c", "import huggingface_hub"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(p);
    }
    assert!(
        std::env::var("GYM_REQUIRE_HF_HUB").is_err(),
        "GYM_REQUIRE_HF_HUB is set but {p} cannot import huggingface_hub"
    );
    eprintln!("skipping: no Python with huggingface_hub at {p} (set GYM_TEST_HF_PYTHON)");
    None
}

fn py(python: &str, home: &Path, endpoint: &str, offline: bool, code: &str) -> String {
    let out = std::process::Command::new(python)
        .args(["-c", code])
        .env("HF_HOME", home)
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HUB_OFFLINE", if offline { "1" } else { "0" })
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_XET", "1")
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_CACHE")
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn huggingface_hub_fills_a_cache_gym_reads_offline() {
    let Some(python) = python() else { return };
    let server = DlServer::start(TOKEN);
    let (commit, _) = sharded(&server);
    let home = tmp();
    let dir = py(
        &python,
        home.path(),
        &server.url,
        false,
        "from huggingface_hub import snapshot_download\n\
         print(snapshot_download('acme/sharded', allow_patterns=['*.json', '*.safetensors']))",
    );
    assert!(dir.ends_with(&commit), "{dir}");
    let before = server.state().log.len();
    let v = download(
        hf(home.path(), "http://127.0.0.1:9").env("HF_HUB_OFFLINE", "1"),
        &["acme/sharded"],
    );
    assert_eq!(origins(&v), all("cached"));
    assert_eq!(
        PathBuf::from(v["dir"].as_str().unwrap()),
        PathBuf::from(&dir)
    );
    assert_eq!(server.state().log.len(), before);
    // and online: nothing downloaded again
    let v = download(&mut hf(home.path(), &server.url), &["acme/sharded"]);
    assert_eq!(origins(&v), all("cached"));
    // a model and a dataset Python downloaded train
    tiny_model(&server);
    math_dataset(&server);
    py(
        &python,
        home.path(),
        &server.url,
        false,
        "from huggingface_hub import snapshot_download\nsnapshot_download('acme/tiny-qwen3')\n\
         snapshot_download('acme/math', repo_type='dataset', allow_patterns=['main/train-*'])",
    );
    let out = tmp();
    let (code, _, err) = run(hf(home.path(), "http://127.0.0.1:9")
        .env("HF_HUB_OFFLINE", "1")
        .args(["train", "--model", "acme/tiny-qwen3", "--max-steps", "1"])
        .args(["--data", "acme/math", "--data-config", "main"])
        .args(["--prompt-column", "question", "--answer-column", "answer"])
        .args(["--reward", "exact"])
        .args([
            "--num-generations",
            "2",
            "--per-device-train-batch-size",
            "2",
        ])
        .args(["--max-completion-length", "4", "-o"])
        .arg(out.path()));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn huggingface_hub_reads_a_cache_gym_filled() {
    let Some(python) = python() else { return };
    let server = DlServer::start(TOKEN);
    let (commit, files) = sharded(&server);
    math_dataset(&server);
    let home = tmp();
    download(&mut hf(home.path(), &server.url), &["acme/sharded"]);
    download(
        &mut hf(home.path(), &server.url),
        &["acme/math", "--dataset", "--data-config", "main"],
    );
    // gym followed a rename; Python finds the same cache entry by the name asked
    server
        .state()
        .renamed
        .push(("acme/old-name".into(), "acme/sharded".into()));
    download(&mut hf(home.path(), &server.url), &["acme/old-name"]);
    let before = server.state().log.len();
    let got = py(
        &python,
        home.path(),
        "http://127.0.0.1:9",
        true,
        "import json\n\
         from huggingface_hub import hf_hub_download, snapshot_download, scan_cache_dir\n\
         d = snapshot_download('acme/sharded', allow_patterns=['*.json', '*.safetensors'])\n\
         s = hf_hub_download('acme/sharded', 'model-00002-of-00002.safetensors')\n\
         p = hf_hub_download('acme/math', 'main/train-00000-of-00001.parquet', repo_type='dataset')\n\
         o = hf_hub_download('acme/old-name', 'model-00001-of-00002.safetensors')\n\
         info = scan_cache_dir()\n\
         repos = sorted((r.repo_type, r.repo_id, r.nb_files) for r in info.repos)\n\
         print(json.dumps({'dir': d, 'shard': s, 'parquet': p, 'old': o, 'repos': repos,\n\
                           'warnings': [str(w) for w in info.warnings]}))",
    );
    let v = json(&got);
    assert!(v["dir"].as_str().unwrap().ends_with(&commit), "{v}");
    assert_eq!(
        std::fs::read(v["shard"].as_str().unwrap()).unwrap(),
        files[5].1
    );
    assert_eq!(
        std::fs::read(v["parquet"].as_str().unwrap()).unwrap(),
        std::fs::read(testdata("hub/math.parquet")).unwrap()
    );
    assert_eq!(
        std::fs::read(v["old"].as_str().unwrap()).unwrap(),
        files[4].1
    );
    assert_eq!(v["warnings"], serde_json::json!([]), "{v}");
    assert_eq!(
        v["repos"],
        serde_json::json!([
            ["dataset", "acme/math", 1],
            ["model", "acme/old-name", 6],
            ["model", "acme/sharded", 6]
        ])
    );
    assert_eq!(
        server.state().log.len(),
        before,
        "Python went to the network"
    );
}
