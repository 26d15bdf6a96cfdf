//! Signed requests handled per second by the orchestrator's API: an in-process server on
//! loopback (memory store, a 3-worker roster) and client threads sending signed
//! `POST /v1/poll` requests (each signed afresh: SHA3 + Ed25519 on the client, parse, time
//! window, Ed25519 `verify_strict`, nonce check and the machine's view on the server).
//!
//! `cargo run --release --example orch-bench -- [SECONDS] [CLIENT_THREADS]`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gym::core::keys::Identity;
use gym::core::orchestrator::client::Client;
use gym::core::orchestrator::{GspoOrchestrator, JobSpec, server, store::MemoryStore};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let secs: f64 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(5.0);
    let threads: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(4);
    let keys: Vec<Arc<Identity>> = (0..3u8)
        .map(|i| Arc::new(Identity::from_seeds(&[i + 1; 32], None)))
        .collect();
    let mut job =
        String::from("name = \"bench\"\nmin_workers = 3\nmax_workers = 3\nring_size = 3\n");
    for k in &keys {
        job.push_str(&format!(
            "[[worker]]\nid = \"{}\"\n",
            k.public().worker_id()
        ));
    }
    let spec = JobSpec::parse(&job, "bench.toml".as_ref())?;
    let dir = tempfile::tempdir()?;
    let orch = GspoOrchestrator::new(
        spec,
        Identity::from_seeds(&[9; 32], None),
        Box::new(MemoryStore::default()),
        dir.path(),
    )?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let url = format!("http://{}", listener.local_addr()?);
    rt.spawn(server::serve(
        orch,
        listener,
        Duration::ZERO,
        Arc::new(|_| {}),
    ));
    std::thread::sleep(Duration::from_millis(200));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (url, key, done) = (url.clone(), keys[t % 3].clone(), done.clone());
            std::thread::spawn(move || -> anyhow::Result<()> {
                let (c, _) = Client::connect(&url)?;
                while start.elapsed().as_secs_f64() < secs {
                    c.poll(&key)?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client thread")?;
    }
    let n = done.load(Ordering::Relaxed);
    let el = start.elapsed().as_secs_f64();
    println!(
        "{n} signed requests in {el:.2} s with {threads} client threads: {:.0} requests/s",
        n as f64 / el
    );
    Ok(())
}
