//! `gym orchestrate` on Redis through real processes: a standby takes over from an active
//! orchestrator killed with SIGKILL, and an orchestrator killed with SIGKILL restarts on the
//! same Redis store; the workers (`--orchestrator URL1,URL2`) follow. Needs a Redis server
//! (GYM_TEST_REDIS_URL; skipped without one unless GYM_REQUIRE_REDIS=1, as `.ci/run` sets).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gym::core::keys::Identity;

use crate::common::{gym, json, run, tmp};

/// The test Redis server, or None (skip) with the reason printed.
pub fn redis_url() -> Option<String> {
    match std::env::var("GYM_TEST_REDIS_URL") {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ => {
            assert!(
                std::env::var("GYM_REQUIRE_REDIS").as_deref() != Ok("1"),
                "GYM_REQUIRE_REDIS=1 but GYM_TEST_REDIS_URL is not set (.ci/run starts redis-server)"
            );
            eprintln!("SKIPPED: GYM_TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:46379/0)");
            None
        }
    }
}

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

fn bin() -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("gym"));
    c.env("NO_COLOR", "1").env("GYM_THREADS", "1");
    c
}

/// An orchestrator on `store` with a 1.5 s lease; `extra` adds flags (`--standby`).
fn orchestrate(
    job: &Path,
    key: &Path,
    port: u16,
    store: &str,
    log: &Path,
    extra: &[&str],
) -> Child {
    bin()
        .args([
            "orchestrate",
            "--linger",
            "8",
            "--lease",
            "1.5",
            "--store",
            store,
        ])
        .args(extra)
        .arg("--listen")
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

fn status(url: &str) -> Option<serde_json::Value> {
    let r = reqwest::blocking::get(format!("{url}/v1/status")).ok()?;
    serde_json::from_slice(&r.bytes().ok()?).ok()
}

fn wait_for(url: &str, what: &str, ok: impl Fn(&serde_json::Value) -> bool) {
    let start = Instant::now();
    while !status(url).is_some_and(|s| ok(&s)) {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "{url}: never {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn finish(mut c: Child, limit: Duration) -> (i32, String) {
    let start = Instant::now();
    while c.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = c.kill();
            panic!("process {} ran past {limit:?}", c.id());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut out = String::new();
    if let Some(mut o) = c.stdout.take() {
        use std::io::Read as _;
        o.read_to_string(&mut out).unwrap();
    }
    (c.wait().unwrap().code().unwrap_or(-1), out)
}

fn kill_9(mut c: Child) {
    c.kill().unwrap(); // SIGKILL
    c.wait().unwrap();
}

fn job_file(dir: &Path, ids: &[String]) -> PathBuf {
    let mut s = String::from(
        "name = \"fo\"\nepochs = 2\nrounds_per_epoch = 2\nmin_workers = 3\nmax_workers = 3\nring_size = 3\nredundancy = 0\n[timeouts]\ntrain = 300\nring = 120\n\n[train]\naggregate_interval = 3\n\n[publish]\nto = \"published\"\n",
    );
    for id in ids {
        s.push_str(&format!("\n[[worker]]\nid = \"{id}\"\nstake = 10\n"));
    }
    let p = dir.join("job.toml");
    std::fs::write(&p, s).unwrap();
    p
}

/// Every accepted round, from the signed log (`gym job log --json`, which checks it).
fn accepted_in_log(url: &str) -> Vec<u64> {
    let (code, out, err) = run(gym().args(["job", "log", "--json", url]));
    assert_eq!(code, 0, "{err}");
    json(&out)
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["decision"]["kind"] == "accept")
        .map(|e| e["decision"]["round"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_standby_takes_over_from_a_killed_active_and_a_killed_orchestrator_restarts_on_redis() {
    let Some(store) = redis_url() else { return };
    let d = tmp();
    let (orch_key, _) = key(d.path(), "orch", 5);
    let workers: Vec<(PathBuf, String)> = (0..3)
        .map(|i| key(d.path(), &format!("w{i}"), 50 + i))
        .collect();
    let ids: Vec<String> = workers.iter().map(|w| w.1.clone()).collect();
    let job = job_file(d.path(), &ids);
    let (pa, pb) = (port(), port());
    let (ua, ub) = (
        format!("http://127.0.0.1:{pa}"),
        format!("http://127.0.0.1:{pb}"),
    );
    let active = orchestrate(&job, &orch_key, pa, &store, &d.path().join("a.log"), &[]);
    wait_for(&ua, "served", |s| s["phase"] == "waiting");
    let standby = orchestrate(
        &job,
        &orch_key,
        pb,
        &store,
        &d.path().join("b.log"),
        &["--standby"],
    );
    wait_for(&ub, "on standby", |s| s["phase"] == "standby");
    let job_id = status(&ub).unwrap()["job_id"].as_str().unwrap().to_string();
    assert_eq!(status(&ub).unwrap()["active"], ua.as_str());
    // a standby refuses worker requests with 503 naming the active orchestrator
    let r = reqwest::blocking::Client::new()
        .post(format!("{ub}/v1/poll"))
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let urls = format!("{ua},{ub}");
    let procs: Vec<Child> = workers
        .iter()
        .enumerate()
        .map(|(i, (k, _))| {
            let out = d.path().join(format!("w{i}"));
            bin()
                .args(["work", "--json", "--orchestrator", &urls, "--key"])
                .arg(k)
                .arg("-o")
                .arg(&out)
                .stdout(Stdio::piped())
                .stderr(std::fs::File::create(out.with_extension("log")).unwrap())
                .spawn()
                .unwrap()
        })
        .collect();
    // kill -9 the active orchestrator while round 1 is trained: the standby takes over
    wait_for(&ua, "in round 1", |s| {
        s["accepted_rounds"] == 1 && s["phase"] == "training"
    });
    kill_9(active);
    wait_for(&ub, "active", |s| s["phase"] != "standby");
    // kill -9 the new active one in round 2, restart it (no standby) on the same store
    wait_for(&ub, "in round 2", |s| s["accepted_rounds"] == 2);
    kill_9(standby);
    let blog = d.path().join("b2.log");
    let restarted = orchestrate(&job, &orch_key, pb, &store, &blog, &[]);
    for (i, p) in procs.into_iter().enumerate() {
        let (code, out) = finish(p, Duration::from_secs(900));
        let wlog = std::fs::read_to_string(d.path().join(format!("w{i}.log"))).unwrap_or_default();
        assert_eq!(code, 0, "worker {i}:\n{wlog}");
        assert_eq!(
            json(&out)["rounds_trained"],
            4,
            "worker {i} trained a round twice or lost one\n{wlog}"
        );
    }
    let st = status(&ub).expect("status after the job");
    assert_eq!(st["phase"], "finished", "{st}");
    assert_eq!(st["abandoned_rounds"], 0);
    assert_eq!(st["published"].as_array().unwrap().len(), 2);
    assert_eq!(accepted_in_log(&ub), vec![0, 1, 2, 3]);
    let (code, _) = finish(restarted, Duration::from_secs(60));
    assert_eq!(code, 0);
    let b = std::fs::read_to_string(d.path().join("b.log")).unwrap();
    assert!(b.contains("took the lease over"), "{b}");
    let b2 = std::fs::read_to_string(&blog).unwrap();
    assert!(b2.contains("holding the job's lease"), "{b2}");
    gym::core::orchestrator::store::RedisStore::open(&store, &job_id)
        .unwrap()
        .delete_all()
        .unwrap();
}

#[test]
fn standby_on_a_store_without_a_lease_is_a_usage_error() {
    let d = tmp();
    let (orch_key, _) = key(d.path(), "orch", 6);
    let ids: Vec<String> = (0..3)
        .map(|i| key(d.path(), &format!("w{i}"), 60 + i).1)
        .collect();
    let job = job_file(d.path(), &ids);
    let (code, _, err) = run(gym()
        .args([
            "orchestrate",
            "--standby",
            "--listen",
            "127.0.0.1:0",
            "--job",
        ])
        .arg(&job)
        .arg("--key")
        .arg(&orch_key));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--standby needs a shared store"), "{err}");
}
