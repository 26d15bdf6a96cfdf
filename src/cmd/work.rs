//! `gym work`: train for an orchestrator's job until it is finished (docs/orchestrator.md).
//!
//! Summary (`--json`, format `gym-work/1`):
//! ```json
//! {"format": "gym-work/1", "worker": "gym1…", "rounds_trained": 6, "rings": 6,
//!  "aggregate": "…", "adapter": "runs/w/adapter"}
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use serde_json::json;

use super::out::{self, Ctx};
use crate::core::keys::Identity;
use crate::core::orchestrator::worker::{self, WorkEvent, WorkOptions};

#[derive(Debug, Args)]
pub struct WorkArgs {
    /// The orchestrator's URL (as `gym orchestrate` prints it), or several, comma-separated
    /// (an active orchestrator and its standbys): a dead one or a standby is skipped.
    #[arg(long, value_name = "URL")]
    pub orchestrator: String,
    /// This worker's key (its id must be on the job's roster).
    #[arg(long, value_name = "WORKER.pem")]
    pub key: PathBuf,
    /// Output folder (metrics, deltas, the final adapter). Default: runs/work-<worker id>.
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Address the other ring members dial (default: 127.0.0.1 and a free port). In a round
    /// past the job's ring_size a leader's leader rings use the next ports (PORT+1 to PORT+3).
    #[arg(long, value_name = "ADDR")]
    pub ring_addr: Option<String>,
    /// Seconds without progress before a ring member is dropped.
    #[arg(long, value_name = "S", default_value_t = 30.0)]
    pub ring_timeout: f64,
    /// Print a JSON summary at the end (format `gym-work/1`).
    #[arg(long)]
    pub json: bool,
    /// Test seam for the attack table (docs/validation.md): misbehave as KIND. Hidden.
    #[arg(long, value_name = "KIND", hide = true)]
    pub attack: Option<crate::core::orchestrator::attack::Attack>,
}

pub fn describe(e: &WorkEvent) -> String {
    match e {
        WorkEvent::Registered {
            worker,
            index,
            ring_addr,
        } => format!("registered as {worker} (roster entry {index}, ring address {ring_addr})"),
        WorkEvent::Trained {
            round,
            steps,
            reward,
            loss,
        } => format!(
            "round {round}: trained {steps} steps, mean reward {reward:.3}, loss {loss:+.4}"
        ),
        WorkEvent::Ring {
            round,
            members,
            result,
        } => format!(
            "round {round}: ring of {members} agreed on {}",
            &result[..16.min(result.len())]
        ),
        WorkEvent::RingFailed { round, error } => format!("round {round}: ring failed: {error}"),
        WorkEvent::Readmitted => "registered again (evicted or the orchestrator restarted)".into(),
        WorkEvent::Finished { aggregate } => format!(
            "job finished; final aggregate {}",
            aggregate.as_deref().unwrap_or("none")
        ),
    }
}

fn positive(v: f64, what: &str) -> anyhow::Result<Duration> {
    if v.is_finite() && v > 0.0 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(super::Failure::new(
            crate::core::error::ErrorClass::Usage,
            format!("--{what} must be a positive number of seconds, got {v}"),
        )
        .into())
    }
}

pub fn run(ctx: &Ctx, a: WorkArgs) -> anyhow::Result<()> {
    let key = Identity::load(&a.key).with_context(|| format!("loading {}", a.key.display()))?;
    let id = key.public().worker_id();
    let output = a
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(format!("work-{id}")));
    let opts = WorkOptions {
        url: a.orchestrator.clone(),
        key: Arc::new(key),
        output,
        ring_addr: a.ring_addr.clone(),
        poll: Duration::from_millis(100),
        ring_timeout: positive(a.ring_timeout, "ring-timeout")?,
        patience: Duration::from_secs(120),
        attack: a.attack,
    };
    let quiet = ctx.quiet;
    let summary = worker::work(&opts, &|e| {
        if !quiet {
            eprintln!("{}", describe(&e));
        }
    })
    .with_context(|| format!("working for {}", a.orchestrator))?;
    if a.json {
        return out::json(&json!({
            "format": "gym-work/1",
            "worker": summary.worker,
            "rounds_trained": summary.rounds_trained,
            "rings": summary.rings,
            "aggregate": summary.aggregate,
            "adapter": summary.adapter.map(|p| p.display().to_string()),
        }));
    }
    Ok(())
}
