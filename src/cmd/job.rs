//! `gym job status | stop | log`: inspect and control a running orchestrator.
//!
//! `gym job status --json` prints `GET /v1/status` (format `gym-job-status/1`, documented in
//! docs/orchestrator.md); `gym job log --json` the signed decision log, checked.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::out::{self, Ctx};
use crate::core::keys::{Identity, PublicIdentity, unb64};
use crate::core::orchestrator::client::Client;
use crate::core::orchestrator::log::{LogEntry, verify_log};

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Workers and their state, the current epoch and round, reward and loss per accepted
    /// round, published checkpoints.
    Status(StatusArgs),
    /// Stop the job (signed with the orchestrator's key).
    Stop(StopArgs),
    /// Fetch the signed decision log and check every signature and the hash chain.
    Log(LogArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The orchestrator's URL.
    #[arg(value_name = "URL")]
    pub url: String,
    /// Print `gym-job-status/1` JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    #[arg(value_name = "URL")]
    pub url: String,
    /// The orchestrator's key.
    #[arg(long, value_name = "ORCH.pem")]
    pub key: PathBuf,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    #[arg(value_name = "URL")]
    pub url: String,
    /// Print the entries as JSON (after checking them).
    #[arg(long)]
    pub json: bool,
}

pub fn run(ctx: &Ctx, c: JobCommand) -> anyhow::Result<()> {
    match c {
        JobCommand::Status(a) => status(a),
        JobCommand::Stop(a) => stop(ctx, a),
        JobCommand::Log(a) => log(ctx, a),
    }
}

fn status(a: StatusArgs) -> anyhow::Result<()> {
    let (client, _) = Client::connect(&a.url)?;
    let s: serde_json::Value = client.get_json("/v1/status")?;
    if a.json {
        return out::json(&s);
    }
    let mut lines = vec![format!(
        "job {} ({}): {}, epoch {}/{}, round {}/{}, {} accepted, {} abandoned",
        s["job"].as_str().unwrap_or("?"),
        &s["job_id"].as_str().unwrap_or("?")[..16],
        s["phase"].as_str().unwrap_or("?"),
        s["epoch"],
        s["epochs"],
        s["round"],
        s["total_rounds"],
        s["accepted_rounds"],
        s["abandoned_rounds"]
    )];
    for w in s["workers"].as_array().into_iter().flatten() {
        lines.push(format!(
            "  worker {} {} {}",
            w["id"].as_str().unwrap_or("?"),
            w["role"].as_str().unwrap_or("?"),
            w["state"].as_str().unwrap_or("?")
        ));
    }
    for r in s["rounds"].as_array().into_iter().flatten() {
        lines.push(format!(
            "  round {} (epoch {}): reward {:.3} loss {:+.4}, {} members",
            r["round"],
            r["epoch"],
            r["reward"].as_f64().unwrap_or(f64::NAN),
            r["loss"].as_f64().unwrap_or(f64::NAN),
            r["members"].as_array().map_or(0, Vec::len)
        ));
    }
    for p in s["published"].as_array().into_iter().flatten() {
        lines.push(format!(
            "  epoch {} checkpoint {} ({})",
            p["epoch"],
            p["cid"].as_str().unwrap_or("?"),
            p["location"].as_str().unwrap_or("?")
        ));
    }
    for e in s["epoch_folders"].as_array().into_iter().flatten() {
        lines.push(format!(
            "  epoch {} folder {}",
            e["epoch"],
            e["folder"].as_str().unwrap_or("?")
        ));
        let est = &e["estimate"]["estimate"];
        for n in est["nodes"].as_array().into_iter().flatten() {
            lines.push(format!(
                "    {} {} reward {} (base units){}",
                n["node"].as_str().unwrap_or("?"),
                if n["eligible"] == true {
                    "eligible"
                } else {
                    "ineligible"
                },
                n["reward_base_units"].as_str().unwrap_or("?"),
                n["reasons"]
                    .as_array()
                    .filter(|r| !r.is_empty())
                    .map(|r| format!(": {}", serde_json::Value::from(r.clone())))
                    .unwrap_or_default()
            ));
        }
        if let Some(err) = e["estimate"]["error"].as_str() {
            lines.push(format!("    no estimate: {err}"));
        }
    }
    out::println(&lines.join("\n"))?;
    Ok(())
}

fn stop(ctx: &Ctx, a: StopArgs) -> anyhow::Result<()> {
    let key = Identity::load(&a.key).with_context(|| format!("loading {}", a.key.display()))?;
    let (client, _) = Client::connect(&a.url)?;
    client.stop(&key)?;
    ctx.note(format!("stopped the job at {}", a.url));
    Ok(())
}

fn log(ctx: &Ctx, a: LogArgs) -> anyhow::Result<()> {
    let (client, job) = Client::connect(&a.url)?;
    let entries: Vec<LogEntry> = client.get_json("/v1/log")?;
    let raw = job["orchestrator_ed25519"]
        .as_str()
        .and_then(unb64)
        .context("the job has no orchestrator key")?;
    let key = PublicIdentity::from_raw(&raw, None).map_err(anyhow::Error::msg)?;
    verify_log(&entries, client.job_id(), &key)?;
    ctx.note(format!(
        "{} entries, signatures and hash chain check (orchestrator {})",
        entries.len(),
        key.worker_id()
    ));
    if a.json {
        return out::json(&entries);
    }
    for e in &entries {
        out::println(&format!(
            "{} {} {}",
            e.seq,
            e.at_ms,
            serde_json::to_string(&e.decision)?
        ))?;
    }
    Ok(())
}
