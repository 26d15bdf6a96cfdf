//! Coordination overhead per round: the time from the last member's report to the moment the
//! last member holds the round's ring file, with an in-process orchestrator on loopback
//! (memory store) and worker threads that speak the real signed API but do not train or run
//! the ring (each reports a small signed delta at once, and after its ring file an agreed
//! result object). Two modes side by side in one run:
//!
//! - `long`: workers long-poll (`POST /v1/poll` with `seen` + `wait_ms`), as `gym work` does;
//! - `interval`: workers poll every 100 ms, as `gym work` did before.
//!
//! `cargo run --release --example orch-coord -- [ROUNDS] [WORKERS]`

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gym::core::delta::{self, Compression, Dtype, Metadata, PackInput, PackOptions, TensorSource};
use gym::core::keys::Identity;
use gym::core::orchestrator::client::Client;
use gym::core::orchestrator::server::{ReportBody, ResultBody};
use gym::core::orchestrator::{GspoOrchestrator, JobSpec, server, store::MemoryStore};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Long,
    Interval,
}

/// Per round: when each worker sent its report and when it received its ring file.
#[derive(Default)]
struct Times {
    reported: Vec<Vec<Instant>>,
    ringed: Vec<Vec<Instant>>,
}

fn signed_delta(key: &Identity) -> anyhow::Result<Vec<u8>> {
    let data: Vec<u8> = (0..64u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let inputs = [PackInput {
        name: "x".into(),
        dtype: Dtype::F32,
        shape: vec![64],
        data: TensorSource::Bytes(&data),
    }];
    let opts = PackOptions {
        compression: Compression::None,
        chunk_size: delta::DEFAULT_CHUNK_SIZE,
        metadata: Metadata::new(""),
        identity: Some(key),
    };
    Ok(delta::pack_to_vec(&inputs, &opts)?.0)
}

fn worker(
    url: &str,
    key: &Identity,
    i: usize,
    rounds: u64,
    mode: Mode,
    times: &Mutex<Times>,
) -> anyhow::Result<()> {
    let (c, _) = Client::connect(url)?;
    c.register(key, &format!("127.0.0.1:{}", 41000 + i))?;
    let object = c.put_object(key, signed_delta(key)?)?;
    let mut tag: Option<String> = None;
    loop {
        let v = match mode {
            Mode::Long => c.poll_wait(key, tag.as_deref(), Duration::from_secs(25))?,
            Mode::Interval => c.poll(key)?,
        };
        if v.finished || v.round >= rounds {
            return Ok(());
        }
        let fresh = tag.as_deref() != Some(v.tag.as_str());
        tag = Some(v.tag.clone());
        if v.phase == "training" && v.member && !v.reported {
            times.lock().unwrap().reported[v.round as usize].push(Instant::now());
            let body = ReportBody {
                round: v.round,
                object: object.clone(),
                weight: 1,
                reward: 0.0,
                loss: 0.0,
            };
            c.report(key, &body)?;
        } else if v.phase == "ring" && v.ring.is_some() && !v.result_reported {
            times.lock().unwrap().ringed[v.round as usize].push(Instant::now());
            let agg = c.put_object(key, format!("aggregate {}", v.round).into_bytes())?;
            c.result(
                key,
                &ResultBody {
                    round: v.round,
                    object: agg,
                    receipt: None,
                },
            )?;
        } else if mode == Mode::Interval || !fresh {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// An in-process orchestrator (memory store) for `n` workers and `rounds` rounds, served on
/// loopback by `rt`; returns its URL and the workers' keys.
fn start(
    rt: &tokio::runtime::Runtime,
    rounds: u64,
    n: usize,
) -> anyhow::Result<(String, Vec<Arc<Identity>>, tempfile::TempDir)> {
    let keys: Vec<Arc<Identity>> = (0..n)
        .map(|i| Arc::new(Identity::from_seeds(&[i as u8 + 1; 32], None)))
        .collect();
    // one epoch longer than the run, so no checkpoint is published from the fake aggregates
    let mut job = format!(
        "name = \"coord\"\nepochs = 1\nrounds_per_epoch = {}\nmin_workers = {n}\nmax_workers = {n}\nring_size = {n}\n",
        rounds + 1
    );
    for k in &keys {
        job.push_str(&format!(
            "[[worker]]\nid = \"{}\"\n",
            k.public().worker_id()
        ));
    }
    let spec = JobSpec::parse(&job, "coord.toml".as_ref())?;
    let dir = tempfile::tempdir()?;
    let orch = GspoOrchestrator::new(
        spec,
        Identity::from_seeds(&[99; 32], None),
        Box::new(MemoryStore::default()),
        dir.path(),
    )?;
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let url = format!("http://{}", listener.local_addr()?);
    rt.spawn(server::serve(
        orch,
        listener,
        Duration::ZERO,
        Arc::new(|_| {}),
    ));
    Ok((url, keys, dir))
}

/// Overheads in ms, one per round: last ring file received − last report sent.
fn run(rounds: u64, n: usize, mode: Mode) -> anyhow::Result<Vec<f64>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (url, keys, _dir) = start(&rt, rounds, n)?;
    let times = Arc::new(Mutex::new(Times {
        reported: vec![Vec::new(); rounds as usize],
        ringed: vec![Vec::new(); rounds as usize],
    }));
    let handles: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let (url, k, times) = (url.clone(), k.clone(), times.clone());
            std::thread::spawn(move || worker(&url, &k, i, rounds, mode, &times))
        })
        .collect();
    for h in handles {
        h.join().expect("worker thread")?;
    }
    let t = times.lock().unwrap();
    let mut out = Vec::new();
    for (rep, ring) in t.reported.iter().zip(&t.ringed) {
        if let (Some(a), Some(b)) = (rep.iter().max(), ring.iter().max()) {
            out.push(b.duration_since(*a).as_secs_f64() * 1e3);
        }
    }
    Ok(out)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let k = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[k]
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rounds: u64 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(100);
    let n: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(4);
    let mut medians = Vec::new();
    for (name, mode) in [("long poll", Mode::Long), ("100 ms poll", Mode::Interval)] {
        let mut v = run(rounds, n, mode)?;
        v.sort_by(f64::total_cmp);
        let med = pct(&v, 0.5);
        medians.push(med);
        println!(
            "{name:>12}: {} rounds, {n} workers: coordination overhead median {med:.2} ms, p95 {:.2} ms, max {:.2} ms",
            v.len(),
            pct(&v, 0.95),
            v[v.len() - 1]
        );
    }
    println!(
        "median ratio (100 ms poll / long poll): {:.1}x",
        medians[1] / medians[0]
    );
    Ok(())
}
