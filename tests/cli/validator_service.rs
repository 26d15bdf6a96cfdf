//! The validator service through real processes on loopback: `gym orchestrate` with a
//! `[validation]` rule, four `gym work` (one an attacker, through the hidden `--attack` test
//! seam) and two `gym validate --orchestrator` (docs/validation.md, "Admission").

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gym::core::keys::Identity;

use crate::common::{gym, json, run, testdata, tmp};

fn port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn key(dir: &Path, name: &str, seed: u8) -> (PathBuf, String) {
    let id = Identity::from_seeds(&[seed; 32], None);
    let p = dir.join(format!("{name}.pem"));
    id.save(&p, false).unwrap();
    (p, id.public().worker_id())
}

fn bin(log: &Path) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("gym"));
    c.env("NO_COLOR", "1")
        .env("GYM_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap());
    c
}

fn finish(mut c: Child, limit: Duration) -> (i32, String) {
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

/// A job of 2 rounds: 4 trainers, 2 validators (quorum 2), norm bound 1.0.
fn job(dir: &Path, trainers: &[String], validators: &[String]) -> PathBuf {
    let mut s = String::from(
        "name = \"v\"\nepochs = 1\nrounds_per_epoch = 2\nmin_workers = 4\nmax_workers = 4\n\
         ring_size = 4\n\n[timeouts]\ntrain = 300\nring = 120\n\n[validation]\nquorum = 2\n\
         timeout = 300\nmax_tokens = 100000\nmodel_params = 1000000\ntolerance = 0.05\n\n[train]\naggregate_interval = 2\n\
         max_delta_norm = 1.0\n\n[publish]\nto = \"published\"\n",
    );
    for id in trainers {
        s.push_str(&format!("\n[[worker]]\nid = \"{id}\"\nstake = 10000\n"));
    }
    for id in validators {
        s.push_str(&format!(
            "\n[[worker]]\nid = \"{id}\"\nrole = \"validator\"\nstake = 25000\n"
        ));
    }
    let p = dir.join("job.toml");
    std::fs::write(&p, s).unwrap();
    p
}

#[test]
fn validators_refuse_a_sign_flipped_delta_and_the_round_averages_the_rest() {
    let d = tmp();
    let dir = d.path();
    let (orch_key, _) = key(dir, "orch", 1);
    let trainers: Vec<(PathBuf, String)> =
        (0..4).map(|i| key(dir, &format!("w{i}"), 20 + i)).collect();
    let validators: Vec<(PathBuf, String)> =
        (0..2).map(|i| key(dir, &format!("v{i}"), 40 + i)).collect();
    let ids = |v: &[(PathBuf, String)]| v.iter().map(|x| x.1.clone()).collect::<Vec<_>>();
    let job = job(dir, &ids(&trainers), &ids(&validators));
    let p = port();
    let url = format!("http://127.0.0.1:{p}");
    let orch = bin(&dir.join("orch.log"))
        .args(["orchestrate", "--linger", "20", "--listen"])
        .arg(format!("127.0.0.1:{p}"))
        .arg("--job")
        .arg(&job)
        .arg("--key")
        .arg(&orch_key)
        .spawn()
        .unwrap();
    let start = Instant::now();
    while reqwest::blocking::get(format!("{url}/v1/job")).is_err() {
        assert!(start.elapsed() < Duration::from_secs(60), "no orchestrator");
        std::thread::sleep(Duration::from_millis(100));
    }
    let vals: Vec<Child> = validators
        .iter()
        .enumerate()
        .map(|(i, (k, _))| {
            bin(&dir.join(format!("v{i}.log")))
                .args(["validate", "--json", "--orchestrator", &url, "--key"])
                .arg(k)
                .arg("--data")
                .arg(testdata("toy/heldout.jsonl"))
                .arg("-o")
                .arg(dir.join(format!("v{i}")))
                .spawn()
                .unwrap()
        })
        .collect();
    let workers: Vec<Child> = trainers
        .iter()
        .enumerate()
        .map(|(i, (k, _))| {
            let mut c = bin(&dir.join(format!("w{i}.log")));
            c.args(["work", "--json", "--orchestrator", &url, "--key"])
                .arg(k)
                .arg("-o")
                .arg(dir.join(format!("w{i}")));
            if i == 3 {
                c.args(["--attack", "flip20"]);
            }
            c.spawn().unwrap()
        })
        .collect();
    let logs = || {
        let mut s = String::new();
        for n in ["orch", "v0", "v1", "w0", "w1", "w2", "w3"] {
            let t = std::fs::read_to_string(dir.join(format!("{n}.log"))).unwrap_or_default();
            s.push_str(&format!("--- {n}\n{t}\n"));
        }
        s
    };
    for (i, w) in workers.into_iter().enumerate() {
        let (code, _) = finish(w, Duration::from_secs(900));
        assert_eq!(code, 0, "worker {i}\n{}", logs());
    }
    // Every honest delta needs both passes, so each validator's 6 count; the attacker's delta
    // is refused by the first fail (quorum 2 of 2), so the later validator's fail in a round
    // arrives after admission was decided and is not counted.
    let mut failed = 0;
    for (i, v) in vals.into_iter().enumerate() {
        let (code, out) = finish(v, Duration::from_secs(120));
        assert_eq!(code, 0, "validator {i}\n{}", logs());
        let s = json(&out);
        assert_eq!(s["format"], "gym-validator/1");
        assert_eq!(s["rounds"], 2, "{s}");
        let f = s["failed"].as_u64().unwrap();
        assert!(f <= 2, "{s}");
        assert_eq!(s["verdicts"].as_u64().unwrap(), 6 + f, "{s}\n{}", logs());
        failed += f;
    }
    assert!(
        failed >= 2,
        "each round's refusal is one counted fail: {failed}"
    );
    // the signed log names the refused delta and why, in both rounds
    let (code, out, err) = run(gym().args(["job", "log", "--json", &url]));
    assert_eq!(code, 0, "{err}");
    let entries = json(&out);
    let admissions: Vec<&serde_json::Value> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["decision"])
        .filter(|d| d["kind"] == "admission")
        .collect();
    assert_eq!(admissions.len(), 2, "{}", logs());
    for a in &admissions {
        assert_eq!(a["admitted"].as_array().unwrap().len(), 3, "{a}");
        let refused = a["refused"].as_array().unwrap();
        assert_eq!(refused.len(), 1, "{a}");
        assert_eq!(refused[0]["worker"], trainers[3].1);
        let why = refused[0]["reason"].as_str().unwrap();
        assert!(
            why.contains("failed by") && why.contains("of 2 validators") && why.contains("norm"),
            "{why}"
        );
    }
    let (code, out, err) = run(gym().args(["job", "status", "--json", &url]));
    assert_eq!(code, 0, "{err}");
    let st = json(&out);
    assert_eq!(st["accepted_rounds"], 2, "{st}");
    for r in st["rounds"].as_array().unwrap() {
        assert_eq!(r["members"].as_array().unwrap().len(), 3, "{r}");
    }
    // the epoch folder, written and estimated by the orchestrator, and the same estimate from
    // `gym reward estimate` on the folder
    let folders = st["epoch_folders"].as_array().unwrap();
    assert_eq!(folders.len(), 1, "{st}");
    let est = &folders[0]["estimate"]["estimate"];
    assert_eq!(est["format"], "gym-epoch-estimate/1", "{}", folders[0]);
    let mine: std::collections::BTreeMap<String, (bool, String)> = est["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let r = n["reward_base_units"].as_str().unwrap().to_string();
            (
                n["node"].as_str().unwrap().into(),
                (n["eligible"] == true, r),
            )
        })
        .collect();
    assert!(!mine[&trainers[3].1].0, "{est}");
    assert_eq!(mine[&trainers[3].1].1, "0", "{est}");
    for t in &trainers[..3] {
        assert!(mine[&t.1].0 && mine[&t.1].1 != "0", "{est}");
    }
    let folder = folders[0]["folder"].as_str().unwrap();
    // the ring receipts the workers sent with their results (3 per ring of 3, 2 rounds), and
    // the orchestrator's checkpoint receipts for the validators (2 validators, 2 rounds); all
    // of them accepted by the estimate
    let lines = |f: &str| {
        std::fs::read_to_string(Path::new(folder).join("ring").join(f))
            .unwrap()
            .lines()
            .count()
    };
    assert_eq!(lines("forward.jsonl"), 6);
    assert_eq!(lines("checkpoint.jsonl"), 4);
    assert_eq!(est["rejected"].as_array().unwrap().len(), 0, "{est}");
    let (code, out, err) = run(gym().args([
        "reward",
        "estimate",
        folder,
        "--model-params",
        "1000000",
        "--economics",
        &format!("{folder}/economics.toml"),
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    let again = json(&out);
    for n in again["nodes"].as_array().unwrap() {
        // the receipts feed the network category: the honest trainers share it
        if trainers[..3].iter().any(|t| n["node"] == t.1.as_str()) {
            assert!(n["shares"]["network"].as_f64().unwrap() > 0.3, "{n}");
        }
        let (eligible, reward) = &mine[n["node"].as_str().unwrap()];
        assert_eq!(n["eligible"] == true, *eligible, "{n}");
        assert_eq!(n["reward_base_units"].as_str().unwrap(), reward, "{n}");
    }
    let (code, out, _) = run(gym().args(["job", "status", &url]));
    assert_eq!(code, 0);
    assert!(out.contains("ineligible"), "{out}");
    let (code, _) = finish(orch, Duration::from_secs(60));
    assert_eq!(code, 0, "{}", logs());
    // a crash between logging `Published` and writing the folder (here: the folder removed):
    // the restarted orchestrator writes it again, the same bytes
    let estimate = std::fs::read(Path::new(folder).join("estimate.json")).unwrap();
    let forward = std::fs::read(Path::new(folder).join("ring/forward.jsonl")).unwrap();
    std::fs::remove_dir_all(folder).unwrap();
    let again = bin(&dir.join("orch-again.log"))
        .args([
            "orchestrate",
            "--linger",
            "0",
            "--listen",
            "127.0.0.1:0",
            "--job",
        ])
        .arg(&job)
        .arg("--key")
        .arg(&orch_key)
        .spawn()
        .unwrap();
    let (code, _) = finish(again, Duration::from_secs(60));
    let log = std::fs::read_to_string(dir.join("orch-again.log")).unwrap();
    assert_eq!(code, 0, "{log}");
    assert!(std::fs::read(Path::new(folder).join("estimate.json")).unwrap() == estimate);
    assert!(std::fs::read(Path::new(folder).join("ring/forward.jsonl")).unwrap() == forward);
}
