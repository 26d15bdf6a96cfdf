//! `gym demo`: an orchestrator and three workers on loopback in one process, the bundled tiny
//! model, two epochs; prints the reward per round, the ring rounds and the published CIDs.
//!
//! Summary (`--json`, format `gym-demo/1`): `{"format": "gym-demo/1", "job_file": …,
//! "status": <gym-job-status/1>, "workers": [<gym-work/1 without format>]}`.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use serde_json::json;

use super::out::{self, Ctx};
use crate::core::orchestrator::demo::{self, DemoEvent, DemoOptions};
use crate::core::orchestrator::validator::ValidatorEvent;
use crate::core::orchestrator::worker::WorkEvent;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder for the job file, the orchestrator's state, the workers' runs and the published
    /// checkpoints (an earlier demo there is replaced).
    #[arg(short, long, value_name = "DIR", default_value = "runs/demo")]
    pub output: PathBuf,
    /// Print a JSON summary at the end (format `gym-demo/1`).
    #[arg(long)]
    pub json: bool,
}

fn line(e: &DemoEvent) -> Option<String> {
    match e {
        DemoEvent::Orchestrator(d) => {
            super::orchestrate::describe(d).map(|l| format!("orchestrator: {l}"))
        }
        DemoEvent::Worker {
            index,
            event:
                event @ (WorkEvent::Trained { .. }
                | WorkEvent::Ring { .. }
                | WorkEvent::RingFailed { .. }),
        } => Some(format!("worker {index}: {}", super::work::describe(event))),
        DemoEvent::Worker { .. } => None,
        DemoEvent::Validator {
            index,
            event: ValidatorEvent::Judged { round, findings },
        } => {
            let fails: Vec<String> = findings
                .iter()
                .filter(|f| f.verdict == crate::core::reward::records::Verdict::Fail)
                .map(|f| f.subject.clone())
                .collect();
            Some(format!(
                "validator {index}: round {round}: judged {} deltas, {} failed",
                findings.len(),
                fails.len()
            ))
        }
        DemoEvent::Validator { .. } => None,
    }
}

pub fn run(ctx: &Ctx, a: DemoArgs) -> anyhow::Result<()> {
    let opts = DemoOptions {
        folder: a.output.clone(),
        ..DemoOptions::default()
    };
    ctx.note(format!(
        "gym demo: an orchestrator, {} workers and {} validators on loopback, bundled tiny model, {} epochs of {} rounds ({} steps each); output {}",
        opts.workers,
        opts.validators,
        opts.epochs,
        opts.rounds_per_epoch,
        opts.aggregate_interval,
        opts.folder.display()
    ));
    let quiet = ctx.quiet;
    let started = std::time::Instant::now();
    let s = demo::run(
        &opts,
        Arc::new(move |e| {
            if let Some(l) = line(&e)
                && !quiet
            {
                eprintln!("{:6.1}s {l}", started.elapsed().as_secs_f64());
            }
        }),
    )?;
    if a.json {
        return out::json(&json!({"format": "gym-demo/1", "job_file": s.job_file,
                                 "status": s.status, "workers": s.workers}));
    }
    let mut lines = vec!["reward per round (mean over the workers' reports):".to_string()];
    for r in s.status["rounds"].as_array().into_iter().flatten() {
        lines.push(format!(
            "  epoch {} round {}: reward {:.3}",
            r["epoch"],
            r["round"],
            r["reward"].as_f64().unwrap_or(f64::NAN)
        ));
    }
    for p in s.status["published"].as_array().into_iter().flatten() {
        lines.push(format!(
            "epoch {} checkpoint: {}  {}",
            p["epoch"],
            p["cid"].as_str().unwrap_or("?"),
            p["location"].as_str().unwrap_or("?")
        ));
    }
    let m = &s.status["merged"];
    if let Some(cid) = m["cid"].as_str() {
        lines.push(format!(
            "merged model (epoch {}'s adapter in the base): {cid}  {}",
            m["epoch"],
            m["location"].as_str().unwrap_or("?")
        ));
    }
    for e in s.status["epoch_folders"].as_array().into_iter().flatten() {
        lines.push(format!(
            "epoch {} rewards (signed estimate in {}/estimate.json):",
            e["epoch"],
            e["folder"].as_str().unwrap_or("?")
        ));
        for n in e["estimate"]["estimate"]["nodes"]
            .as_array()
            .into_iter()
            .flatten()
        {
            lines.push(format!(
                "  {} {:>10} {}",
                n["node"].as_str().unwrap_or("?"),
                if n["eligible"] == true {
                    "eligible"
                } else {
                    "ineligible"
                },
                n["reward_base_units"].as_str().unwrap_or("?")
            ));
        }
    }
    lines.push(format!(
        "done in {:.1} s; job file {}",
        started.elapsed().as_secs_f64(),
        s.job_file.display()
    ));
    out::println(&lines.join("\n"))?;
    Ok(())
}
