//! `gym orchestrate`, `gym work`, `gym job` and `gym demo` through real processes on loopback.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gym::core::keys::Identity;
use gym::core::orchestrator::auth;

use gym::core::reward::records::{RingKind, RingReceipt};

use crate::common::{gym, json, run, tmp};
use crate::hub_server::HubServer;

fn body_json<T: serde::de::DeserializeOwned>(r: reqwest::blocking::Response) -> T {
    serde_json::from_slice(&r.bytes().unwrap()).unwrap()
}

/// A port below the ephemeral range, spread by process id (as the ring tests pick theirs).
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 10_000
            + (std::process::id()
                .wrapping_mul(4409)
                .wrapping_add(n * 17 + 5)
                % 22_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub(crate) fn key(dir: &Path, name: &str, seed: u8) -> (PathBuf, String) {
    let id = Identity::from_seeds(&[seed; 32], None);
    let p = dir.join(format!("{name}.pem"));
    id.save(&p, false).unwrap();
    (p, id.public().worker_id())
}

fn job_file(dir: &Path, ids: &[String], extra: &str) -> PathBuf {
    let mut s = format!(
        "name = \"t\"\nepochs = 2\nrounds_per_epoch = 2\nmin_workers = {n}\nmax_workers = {n}\nring_size = {n}\n{extra}\n[timeouts]\ntrain = 300\nring = 120\n\n[train]\naggregate_interval = 3\n\n[publish]\nto = \"published\"\n",
        n = ids.len()
    );
    for id in ids {
        s.push_str(&format!("\n[[worker]]\nid = \"{id}\"\nstake = 10\n"));
    }
    let p = dir.join("job.toml");
    std::fs::write(&p, s).unwrap();
    p
}

pub(crate) fn bin() -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("gym"));
    c.env_remove("GYM_THREADS")
        .env("NO_COLOR", "1")
        .env("GYM_THREADS", "1");
    c
}

pub(crate) fn orchestrate(job: &Path, key: &Path, port: u16, log: &Path) -> Child {
    orchestrate_env(job, key, port, log, &[])
}

fn orchestrate_env(job: &Path, key: &Path, port: u16, log: &Path, env: &[(&str, &str)]) -> Child {
    bin()
        .envs(env.iter().copied())
        .args(["orchestrate", "--linger", "8", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--job")
        .arg(job)
        .arg("--key")
        .arg(key)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

pub(crate) fn work(url: &str, key: &Path, out: &Path) -> Child {
    work_with(url, key, out, &[])
}

fn work_with(url: &str, key: &Path, out: &Path, extra: &[&str]) -> Child {
    bin()
        .args(["work", "--json", "--orchestrator", url])
        .args(extra)
        .arg("--key")
        .arg(key)
        .arg("-o")
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(out.with_extension("log")).unwrap())
        .spawn()
        .unwrap()
}

pub(crate) fn wait_up(url: &str) {
    let start = Instant::now();
    while reqwest::blocking::get(format!("{url}/v1/job")).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "orchestrator did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn finish(mut c: Child, limit: Duration) -> (i32, String) {
    let start = Instant::now();
    loop {
        if let Some(s) = c.try_wait().unwrap() {
            let mut out = String::new();
            if let Some(mut o) = c.stdout.take() {
                use std::io::Read as _;
                o.read_to_string(&mut out).unwrap();
            }
            return (s.code().unwrap_or(-1), out);
        }
        if start.elapsed() > limit {
            let _ = c.kill();
            panic!("process {} ran past {limit:?}", c.id());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn three_workers_finish_two_epochs_with_identical_adapters_equal_to_the_published_checkpoint() {
    let d = tmp();
    let (orch_key, _) = key(d.path(), "orch", 1);
    let workers: Vec<(PathBuf, String)> = (0..3)
        .map(|i| key(d.path(), &format!("w{i}"), 10 + i))
        .collect();
    let ids: Vec<String> = workers.iter().map(|w| w.1.clone()).collect();
    let job = job_file(d.path(), &ids, "redundancy = 0");
    let text = std::fs::read_to_string(&job).unwrap();
    let text = text.replace(
        "to = \"published\"\n",
        "to = \"published\"\nhf = \"gym/tiny-job\"\n",
    );
    std::fs::write(&job, text).unwrap();
    let hub = HubServer::start("hf_orch_token");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let olog = d.path().join("orch.log");
    let env = [
        ("HF_ENDPOINT", hub.url.as_str()),
        ("HF_TOKEN", "hf_orch_token"),
    ];
    let orch = orchestrate_env(&job, &orch_key, port, &olog, &env);
    wait_up(&url);
    let procs: Vec<Child> = workers
        .iter()
        .enumerate()
        .map(|(i, (k, _))| work(&url, k, &d.path().join(format!("w{i}"))))
        .collect();
    for (i, p) in procs.into_iter().enumerate() {
        let (code, out) = finish(p, Duration::from_secs(900));
        let wlog = std::fs::read_to_string(d.path().join(format!("w{i}.log"))).unwrap_or_default();
        assert_eq!(
            code,
            0,
            "worker {i}:\n{wlog}\norchestrator:\n{}",
            std::fs::read_to_string(&olog).unwrap()
        );
        let s = json(&out);
        assert_eq!(s["format"], "gym-work/1");
        assert_eq!(s["rounds_trained"], 4, "{s}");
        assert_eq!(s["rings"], 4, "{s}");
    }
    // status and the signed log while the orchestrator lingers
    let (code, out, err) = run(gym().args(["job", "status", "--json", &url]));
    assert_eq!(code, 0, "{err}");
    let st = json(&out);
    assert_eq!(st["format"], "gym-job-status/1");
    assert_eq!(st["phase"], "finished");
    assert_eq!(st["accepted_rounds"], 4);
    let rounds = st["rounds"].as_array().unwrap();
    let first = rounds[0]["reward"].as_f64().unwrap();
    let last = rounds[3]["reward"].as_f64().unwrap();
    assert!(last > first, "reward did not rise: {first} -> {last}");
    let published = st["published"].as_array().unwrap();
    assert_eq!(published.len(), 2);
    let (code, _, err) = run(gym().args(["job", "log", &url]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("signatures and hash chain check"), "{err}");
    let (code, _) = finish(orch, Duration::from_secs(60));
    assert_eq!(code, 0, "{}", std::fs::read_to_string(&olog).unwrap());

    // every worker holds the same adapter bytes, equal to the last published checkpoint
    let cid = published[1]["cid"].as_str().unwrap();
    let published_bytes = std::fs::read(
        d.path()
            .join("published")
            .join(cid)
            .join("adapter_model.safetensors"),
    )
    .unwrap();
    for i in 0..3 {
        let got = std::fs::read(
            d.path()
                .join(format!("w{i}/adapter/adapter_model.safetensors")),
        )
        .unwrap();
        assert!(
            got == published_bytes,
            "worker {i}'s adapter differs from {cid}"
        );
    }
    assert!(
        d.path()
            .join("published")
            .join(cid)
            .join("adapter_config.json")
            .exists()
    );
    the_hub_and_the_merged_model_hold_the_checkpoints(&d.path().join("published"), &st, &hub);
}

/// Each epoch's adapter is one Hub commit at the repository's root, the merged model one more
/// under `merged/`; the merged weights are the base's plus scale·B·A, and gym loads the folder.
fn the_hub_and_the_merged_model_hold_the_checkpoints(
    published: &Path,
    st: &serde_json::Value,
    hub: &HubServer,
) {
    assert!(
        hub.state().violations.is_empty(),
        "{:?}",
        hub.state().violations
    );
    let cid = st["published"][1]["cid"].as_str().unwrap();
    for p in st["published"].as_array().unwrap() {
        assert!(
            p["hf"].as_str().unwrap().contains("/gym/tiny-job/commit/"),
            "{p}"
        );
    }
    let merged = &st["merged"];
    assert_eq!(merged["epoch"], 1, "{st}");
    let mcid = merged["cid"].as_str().unwrap();
    let state = hub.state();
    let repo = &state.repos["gym/tiny-job"];
    assert_eq!(repo.commits.len(), 3, "two epochs and the merged model");
    let adapter = std::fs::read(published.join(cid).join("adapter_model.safetensors")).unwrap();
    assert!(repo.files["adapter_model.safetensors"] == adapter);
    let mdir = published.join(mcid);
    let model = std::fs::read(mdir.join("model.safetensors")).unwrap();
    assert!(repo.files["merged/model.safetensors"] == model);
    for f in ["config.json", "tokenizer.json"] {
        assert!(repo.files[&format!("merged/{f}")] == std::fs::read(mdir.join(f)).unwrap());
    }
    drop(state);
    let cfg: serde_json::Value = serde_json::from_slice(
        &std::fs::read(published.join(cid).join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    let scale = cfg["lora_alpha"].as_f64().unwrap() / cfg["r"].as_f64().unwrap();
    let base = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/tiny-qwen3/model.safetensors"),
    )
    .unwrap();
    let (base, ad, mg) = (
        safetensors::SafeTensors::deserialize(&base).unwrap(),
        safetensors::SafeTensors::deserialize(&adapter).unwrap(),
        safetensors::SafeTensors::deserialize(&model).unwrap(),
    );
    let f32s = |t: safetensors::tensor::TensorView<'_>| -> (Vec<usize>, Vec<f32>) {
        let v = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()));
        (t.shape().to_vec(), v.collect())
    };
    let mut checked = 0;
    for name in ad.names() {
        let Some(layer) = name.strip_suffix(".lora_A.weight") else {
            continue;
        };
        let w = format!("{}.weight", layer.trim_start_matches("base_model.model."));
        let (sa, a) = f32s(ad.tensor(name).unwrap());
        let (_, b) = f32s(ad.tensor(&format!("{layer}.lora_B.weight")).unwrap());
        let (sw, w0) = f32s(base.tensor(&w).unwrap());
        let (_, wm) = f32s(mg.tensor(&w).unwrap());
        let (r, cols, rows) = (sa[0], sa[1], sw[0]);
        for i in 0..rows {
            for j in 0..cols {
                let ba: f64 = (0..r)
                    .map(|k| b[i * r + k] as f64 * a[k * cols + j] as f64)
                    .sum();
                let want = w0[i * cols + j] as f64 + scale * ba;
                let got = wm[i * cols + j] as f64;
                assert!(
                    (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "{w}[{i},{j}]: {got} vs {want}"
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} adapted layers");
    let (code, _, err) = run(gym().args(["model", "inspect"]).arg(&mdir));
    assert_eq!(code, 0, "gym model inspect of the merged model: {err}");
}

fn signed_post(
    url: &str,
    job_id: &str,
    key: &Identity,
    path: &str,
    body: &str,
) -> (reqwest::blocking::RequestBuilder, auth::Envelope) {
    let env = auth::sign(
        key,
        job_id,
        "POST",
        path,
        body.as_bytes(),
        gym::core::orchestrator::now_ms(),
    );
    let rb = reqwest::blocking::Client::new()
        .post(format!("{url}{path}"))
        .header(auth::H_KEY, env.key.clone())
        .header(auth::H_TIME, env.time_ms.to_string())
        .header(auth::H_NONCE, env.nonce.clone())
        .header(auth::H_SIG, env.signature.clone())
        .body(body.to_string());
    (rb, env)
}

#[test]
fn strangers_unsigned_and_replayed_requests_and_bad_job_files_are_refused() {
    let d = tmp();
    let (orch_key, _) = key(d.path(), "orch", 2);
    let (_, id0) = key(d.path(), "w0", 20);
    let (_, id1) = key(d.path(), "w1", 21);
    let (stranger, _) = key(d.path(), "stranger", 22);
    // a malformed job file: refused before serving, naming the key, exit 10
    let bad = job_file(d.path(), &[id0.clone(), id1.clone()], "redundancy = 5");
    let (code, _, err) = run(gym()
        .args(["orchestrate", "--listen", "127.0.0.1:0", "--job"])
        .arg(&bad)
        .arg("--key")
        .arg(&orch_key));
    assert_eq!(code, 10, "{err}");
    assert!(err.contains("key `redundancy`"), "{err}");

    let job = job_file(d.path(), &[id0.clone(), id1.clone()], "");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let orch = orchestrate(&job, &orch_key, port, &d.path().join("orch.log"));
    wait_up(&url);
    // a key not on the roster: 403, `gym work` exits 18
    let (code, _, err) = run(gym()
        .args(["work", "--orchestrator", &url, "--key"])
        .arg(&stranger)
        .arg("-o")
        .arg(d.path().join("s")));
    assert_eq!(code, 18, "{err}");
    assert!(err.contains("not on the job's roster"), "{err}");
    // unsigned: 401
    let r = reqwest::blocking::Client::new()
        .post(format!("{url}/v1/register"))
        .body("{\"ring_addr\":\"127.0.0.1:1\"}")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let e: serde_json::Value = body_json(r);
    assert_eq!(e["error"]["kind"], "unsigned");
    // signed by a roster key: accepted once, the same request again is a replay (409)
    let job_info: serde_json::Value =
        body_json(reqwest::blocking::get(format!("{url}/v1/job")).unwrap());
    let job_id = job_info["job_id"].as_str().unwrap();
    let k0 = Identity::from_seeds(&[20; 32], None);
    let body = "{\"ring_addr\":\"127.0.0.1:1\"}";
    let (rb, env) = signed_post(&url, job_id, &k0, "/v1/register", body);
    let r = rb.send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let replay = reqwest::blocking::Client::new()
        .post(format!("{url}/v1/register"))
        .header(auth::H_KEY, env.key.clone())
        .header(auth::H_TIME, env.time_ms.to_string())
        .header(auth::H_NONCE, env.nonce.clone())
        .header(auth::H_SIG, env.signature.clone())
        .body(body)
        .send()
        .unwrap();
    assert_eq!(replay.status().as_u16(), 409);
    let e: serde_json::Value = body_json(replay);
    assert_eq!(e["error"]["kind"], "replayed");
    // a tampered body: 401; a report of a delta never uploaded: 422; neither is logged
    let log_before: Vec<serde_json::Value> =
        body_json(reqwest::blocking::get(format!("{url}/v1/log")).unwrap());
    let (rb, _) = signed_post(&url, job_id, &k0, "/v1/register", body);
    let r = rb.body("{\"ring_addr\":\"127.0.0.1:2\"}").send().unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let report = "{\"round\":7,\"object\":\"00\",\"weight\":1,\"reward\":0,\"loss\":0}";
    let (rb, _) = signed_post(&url, job_id, &k0, "/v1/report", report);
    assert_eq!(rb.send().unwrap().status().as_u16(), 422);
    // a ring result whose receipt another key signed: 400 bad_receipt
    let mut forged = RingReceipt::new(0, 0, RingKind::Forward, id1.clone());
    forged.sign(&Identity::from_seeds(&[99; 32], None));
    let result = serde_json::json!({"round": 0, "object": "00", "receipt": forged}).to_string();
    let (rb, _) = signed_post(&url, job_id, &k0, "/v1/result", &result);
    let r = rb.send().unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let e: serde_json::Value = body_json(r);
    assert_eq!(e["error"]["kind"], "bad_receipt", "{e}");
    let log_after: Vec<serde_json::Value> =
        body_json(reqwest::blocking::get(format!("{url}/v1/log")).unwrap());
    assert_eq!(log_before, log_after);
    // only the orchestrator's key stops the job
    let (code, _, err) = run(gym().args(["job", "stop", &url, "--key"]).arg(&stranger));
    assert_eq!(code, 18, "{err}");
    let (code, _, err) = run(gym().args(["job", "stop", &url, "--key"]).arg(&orch_key));
    assert_eq!(code, 0, "{err}");
    let (code, _) = finish(orch, Duration::from_secs(60));
    assert_eq!(code, 0);
}

fn status(url: &str) -> Option<serde_json::Value> {
    let r = reqwest::blocking::get(format!("{url}/v1/status")).ok()?;
    serde_json::from_slice(&r.bytes().ok()?).ok()
}

#[test]
fn kill_9_of_the_orchestrator_mid_round_loses_and_redoes_nothing() {
    let d = tmp();
    let (orch_key, _) = key(d.path(), "orch", 3);
    let workers: Vec<(PathBuf, String)> = (0..3)
        .map(|i| key(d.path(), &format!("w{i}"), 30 + i))
        .collect();
    let ids: Vec<String> = workers.iter().map(|w| w.1.clone()).collect();
    let job = job_file(d.path(), &ids, "redundancy = 0");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut orch = orchestrate(&job, &orch_key, port, &d.path().join("orch1.log"));
    wait_up(&url);
    let procs: Vec<Child> = workers
        .iter()
        .enumerate()
        .map(|(i, (k, _))| work(&url, k, &d.path().join(format!("w{i}"))))
        .collect();
    // wait until round 1 is being trained, then kill -9 the orchestrator
    let start = Instant::now();
    loop {
        let s = status(&url);
        if s.as_ref()
            .is_some_and(|s| s["accepted_rounds"] == 1 && s["phase"] == "training")
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "round 1 never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    orch.kill().unwrap(); // SIGKILL
    orch.wait().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let olog = d.path().join("orch2.log");
    let orch = orchestrate(&job, &orch_key, port, &olog);
    for (i, p) in procs.into_iter().enumerate() {
        let (code, out) = finish(p, Duration::from_secs(900));
        let wlog = std::fs::read_to_string(d.path().join(format!("w{i}.log"))).unwrap_or_default();
        assert_eq!(
            code,
            0,
            "worker {i}:\n{wlog}\n{}",
            std::fs::read_to_string(&olog).unwrap()
        );
        let s = json(&out);
        assert_eq!(
            s["rounds_trained"], 4,
            "worker {i} trained a round twice or lost one: {s}\n{wlog}"
        );
    }
    let st = status(&url).expect("status after the job");
    assert_eq!(st["phase"], "finished");
    let rounds: Vec<u64> = st["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["round"].as_u64().unwrap())
        .collect();
    assert_eq!(rounds, vec![0, 1, 2, 3]);
    assert_eq!(st["abandoned_rounds"], 0);
    assert_eq!(st["published"].as_array().unwrap().len(), 2);
    let (code, _, err) = run(gym().args(["job", "log", &url]));
    assert_eq!(code, 0, "{err}");
    let (code, _) = finish(orch, Duration::from_secs(60));
    assert_eq!(code, 0);
    let restarted = std::fs::read_to_string(&olog).unwrap();
    assert!(restarted.contains("1 accepted of 4 rounds"), "{restarted}");
}

#[test]
fn kill_9_of_a_worker_mid_training_evicts_it_and_it_rejoins_later() {
    let d = tmp();
    let (orch_key, _) = key(d.path(), "orch", 4);
    let workers: Vec<(PathBuf, String)> = (0..3)
        .map(|i| key(d.path(), &format!("w{i}"), 40 + i))
        .collect();
    let ids: Vec<String> = workers.iter().map(|w| w.1.clone()).collect();
    let job = job_file(d.path(), &ids, "redundancy = 0");
    let text = std::fs::read_to_string(&job)
        .unwrap()
        .replace("min_workers = 3", "min_workers = 2")
        .replace("train = 300", "train = 8");
    std::fs::write(&job, text).unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let olog = d.path().join("orch.log");
    let orch = orchestrate(&job, &orch_key, port, &olog);
    wait_up(&url);
    let mut procs: Vec<Child> = workers
        .iter()
        .enumerate()
        .map(|(i, (k, _))| work(&url, k, &d.path().join(format!("w{i}"))))
        .collect();
    let wait_for = |what: &str, ok: &dyn Fn(&serde_json::Value) -> bool| {
        let start = Instant::now();
        loop {
            if status(&url).as_ref().is_some_and(ok) {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(600), "never: {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let state = |s: &serde_json::Value, i: usize| {
        s["workers"][i]["state"].as_str().unwrap_or("").to_string()
    };
    wait_for("worker 2 training round 1", &|s| {
        s["accepted_rounds"] == 1 && s["phase"] == "training" && state(s, 2) == "training"
    });
    let mut victim = procs.remove(2);
    victim.kill().unwrap(); // SIGKILL, mid-training
    victim.wait().unwrap();
    wait_for("worker 2 evicted", &|s| state(s, 2) == "absent");
    let again = work(&url, &workers[2].0, &d.path().join("w2-again"));
    for (i, p) in procs.into_iter().enumerate() {
        let (code, _) = finish(p, Duration::from_secs(900));
        let wlog = std::fs::read_to_string(d.path().join(format!("w{i}.log"))).unwrap_or_default();
        assert_eq!(
            code,
            0,
            "worker {i}:\n{wlog}\n{}",
            std::fs::read_to_string(&olog).unwrap()
        );
    }
    let (code, out) = finish(again, Duration::from_secs(900));
    let wlog = std::fs::read_to_string(d.path().join("w2-again.log")).unwrap_or_default();
    assert_eq!(code, 0, "restarted worker:\n{wlog}");
    let s = json(&out);
    assert!(
        s["rounds_trained"].as_u64().unwrap() >= 1,
        "the restarted worker never rejoined: {s}\n{wlog}"
    );
    let st = status(&url).expect("status after the job");
    assert_eq!(st["accepted_rounds"], 4);
    let round1 = &st["rounds"][1]["members"];
    assert!(
        !round1.as_array().unwrap().iter().any(|m| m == &ids[2]),
        "{round1}"
    );
    let (code, out, err) = run(gym().args(["job", "log", "--json", &url]));
    assert_eq!(code, 0, "{err}");
    let log = json(&out);
    assert!(log.as_array().unwrap().iter().any(|e| e["decision"]["kind"] == "evict" && e["decision"]["worker"] == ids[2].as_str()));
    // everyone ends with the final aggregate, the restarted worker included
    let cid = st["published"][1]["cid"].as_str().unwrap();
    let published = std::fs::read(
        d.path()
            .join("published")
            .join(cid)
            .join("adapter_model.safetensors"),
    )
    .unwrap();
    for dir in ["w0", "w1", "w2-again"] {
        let got =
            std::fs::read(d.path().join(dir).join("adapter/adapter_model.safetensors")).unwrap();
        assert!(got == published, "{dir}'s adapter differs from {cid}");
    }
    let (code, _) = finish(orch, Duration::from_secs(60));
    assert_eq!(code, 0);
}

/// Sends `sig` (STOP, CONT, KILL) to a process.
fn signal(p: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &p.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {}", p.id());
}

/// Worker 2 is frozen right after it reports round 1's delta (workers 0 and 1 are held back
/// with SIGSTOP until then, so the order is certain), it is a member of round 1's ring file, and
/// it is killed with SIGKILL while that ring runs: the other two finish the ring without it
/// (redundancy 1), the round is accepted, the killed worker is evicted and, restarted, trains
/// later rounds and ends with the same adapter as everyone.
#[test]
fn kill_9_of_a_worker_in_the_ring_the_round_completes_without_it_and_it_rejoins() {
    let d = tmp();
    let (orch_key, _) = key(d.path(), "orch", 5);
    let workers: Vec<(PathBuf, String)> = (0..3)
        .map(|i| key(d.path(), &format!("w{i}"), 50 + i))
        .collect();
    let ids: Vec<String> = workers.iter().map(|w| w.1.clone()).collect();
    // redundancy 1 needs min_workers 3: a round waits for the restarted worker. Round 1 is
    // accepted as soon as the two live members agree; the killed one, still admitted, is
    // evicted at round 2's training deadline.
    let job = job_file(d.path(), &ids, "redundancy = 1");
    let text = std::fs::read_to_string(&job)
        .unwrap()
        .replace("train = 300", "train = 8")
        .replace("ring = 120", "ring = 15");
    std::fs::write(&job, text).unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let olog = d.path().join("orch.log");
    let orch = orchestrate(&job, &orch_key, port, &olog);
    wait_up(&url);
    let fast = ["--ring-timeout", "4"];
    let mut procs: Vec<Child> = workers
        .iter()
        .enumerate()
        .map(|(i, (k, _))| work_with(&url, k, &d.path().join(format!("w{i}")), &fast))
        .collect();
    let wait_for = |what: &str, ok: &dyn Fn(&serde_json::Value) -> bool| {
        let start = Instant::now();
        loop {
            if status(&url).as_ref().is_some_and(ok) {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(600), "never: {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let state = |s: &serde_json::Value, i: usize| {
        s["workers"][i]["state"].as_str().unwrap_or("").to_string()
    };
    wait_for("all three training round 1", &|s| {
        s["accepted_rounds"] == 1 && (0..3).all(|i| state(s, i) == "training")
    });
    signal(&procs[0], "STOP");
    signal(&procs[1], "STOP");
    wait_for("worker 2 reported round 1", &|s| state(s, 2) == "reported");
    signal(&procs[2], "STOP");
    signal(&procs[0], "CONT");
    signal(&procs[1], "CONT");
    wait_for("round 1's ring", &|s| {
        s["phase"] == "ring" && s["rounds"].as_array().is_some_and(|r| r.len() == 1)
    });
    let ring_file = status(&url).unwrap();
    let mut victim = procs.remove(2);
    victim.kill().unwrap(); // SIGKILL, in the ring
    victim.wait().unwrap();
    wait_for("worker 2 evicted", &|s| state(s, 2) == "absent");
    let again = work_with(&url, &workers[2].0, &d.path().join("w2-again"), &fast);
    for (i, p) in procs.into_iter().enumerate() {
        let (code, _) = finish(p, Duration::from_secs(900));
        let wlog = std::fs::read_to_string(d.path().join(format!("w{i}.log"))).unwrap_or_default();
        assert_eq!(
            code,
            0,
            "worker {i}:\n{wlog}\n{}",
            std::fs::read_to_string(&olog).unwrap()
        );
    }
    let (code, out) = finish(again, Duration::from_secs(900));
    let wlog = std::fs::read_to_string(d.path().join("w2-again.log")).unwrap_or_default();
    assert_eq!(code, 0, "restarted worker:\n{wlog}");
    assert!(
        json(&out)["rounds_trained"].as_u64().unwrap() >= 1,
        "never rejoined:\n{wlog}"
    );
    let st = status(&url).expect("status after the job");
    assert_eq!(st["accepted_rounds"], 4, "{st}\n(in the ring: {ring_file})");
    let round1 = st["rounds"][1]["members"].as_array().unwrap();
    assert_eq!(round1.len(), 2, "{st}");
    assert!(!round1.iter().any(|m| m == &ids[2]), "{st}");
    let (code, out, err) = run(gym().args(["job", "log", "--json", &url]));
    assert_eq!(code, 0, "{err}");
    let log = json(&out);
    let entries = log.as_array().unwrap();
    let ring1 = entries
        .iter()
        .find(|e| e["decision"]["kind"] == "topology" && e["decision"]["round"] == 1)
        .unwrap_or_else(|| panic!("no topology for round 1: {log}"));
    assert!(
        ring1.to_string().contains(&ids[2]),
        "worker 2 was in round 1's ring: {ring1}"
    );
    assert!(entries.iter().any(|e| e["decision"]["kind"] == "evict" && e["decision"]["worker"] == ids[2].as_str()));
    let cid = st["published"][1]["cid"].as_str().unwrap();
    let published = std::fs::read(
        d.path()
            .join("published")
            .join(cid)
            .join("adapter_model.safetensors"),
    )
    .unwrap();
    for dir in ["w0", "w1", "w2-again"] {
        let got =
            std::fs::read(d.path().join(dir).join("adapter/adapter_model.safetensors")).unwrap();
        assert!(got == published, "{dir}'s adapter differs from {cid}");
    }
    let (code, _) = finish(orch, Duration::from_secs(60));
    assert_eq!(code, 0);
}

#[test]
fn gym_demo_runs_two_epochs_and_publishes_both_checkpoints() {
    let d = tmp();
    let out = d.path().join("demo");
    let (code, stdout, err) = run(gym()
        .args(["--threads", "1", "demo", "--json", "-o"])
        .arg(&out));
    assert_eq!(code, 0, "{err}");
    let s = json(&stdout);
    assert_eq!(s["format"], "gym-demo/1");
    let st = &s["status"];
    assert_eq!(st["phase"], "finished");
    assert_eq!(st["accepted_rounds"], 6);
    let rounds = st["rounds"].as_array().unwrap();
    let first = rounds[0]["reward"].as_f64().unwrap();
    let last = rounds[5]["reward"].as_f64().unwrap();
    assert!(last > first, "reward did not rise: {first} -> {last}");
    for p in st["published"].as_array().unwrap() {
        let cid = p["cid"].as_str().unwrap();
        assert!(
            out.join("published")
                .join(cid)
                .join("adapter_model.safetensors")
                .exists()
        );
    }
    let merged = st["merged"]["cid"]
        .as_str()
        .expect("the merged model is published");
    assert!(
        out.join("published")
            .join(merged)
            .join("model.safetensors")
            .exists()
    );
    assert!(err.contains("merged model"), "{err}");
    assert_eq!(s["workers"].as_array().unwrap().len(), 3);
    assert!(err.contains("ring of 3 agreed"), "{err}");
    // two validators judged every round; each epoch has its folder and signed estimate
    assert!(
        err.contains("validator 1: round 5: judged 3 deltas"),
        "{err}"
    );
    let folders = st["epoch_folders"].as_array().unwrap();
    assert_eq!(folders.len(), 2, "{st}");
    assert_eq!(
        folders[1]["estimate"]["estimate"]["format"],
        "gym-epoch-estimate/1"
    );
}
