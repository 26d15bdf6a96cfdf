//! The round machine with simulated workers and churn (`gym::core::orchestrator::sim`): rounds
//! completed and the orchestrator's CPU time per round (this thread's time on the CPU, from
//! /proc/thread-self/schedstat), hierarchical rings side by side with one flat ring.
//!
//! `cargo run --release --example orch-sim -- [WORKERS] [ROUNDS] [CHURN] [RING_SIZE] [REDUNDANCY]`

use gym::core::orchestrator::sim::{SimOptions, simulate};

/// Nanoseconds this thread has run on a CPU.
fn cpu_ns() -> anyhow::Result<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    Ok(s.split_whitespace()
        .next()
        .ok_or_else(|| anyhow::anyhow!("empty schedstat"))?
        .parse()?)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: f64| -> anyhow::Result<f64> {
        Ok(args.get(i).map(|s| s.parse()).transpose()?.unwrap_or(d))
    };
    let workers = arg(1, 1000.0)? as usize;
    let rounds = arg(2, 100.0)? as u64;
    let churn = arg(3, 0.10)?;
    let ring_size = arg(4, 32.0)? as usize;
    let redundancy = arg(5, 3.0)? as usize;
    for (name, ring_size) in [("hierarchical", ring_size), ("one flat ring", 1024)] {
        let o = SimOptions {
            workers,
            ring_size,
            redundancy,
            rounds,
            churn,
            seed: 7,
        };
        let wall = std::time::Instant::now();
        let cpu = cpu_ns()?;
        let r = simulate(&o);
        let cpu = (cpu_ns()? - cpu) as f64 / 1e6;
        let wall = wall.elapsed().as_secs_f64() * 1e3;
        println!(
            "{name:>13}: {workers} workers, churn {:.0} %, ring_size {ring_size}, redundancy {redundancy}: \
             {}/{} rounds accepted ({:.1} %), {} groups, {} inputs, {} decisions, {} evictions; \
             CPU {:.2} ms/round (wall {:.2} ms/round)",
            churn * 100.0,
            r.accepted,
            r.rounds,
            r.completion() * 100.0,
            r.groups,
            r.inputs,
            r.decisions,
            r.evictions,
            cpu / r.rounds.max(1) as f64,
            wall / r.rounds.max(1) as f64,
        );
    }
    Ok(())
}
