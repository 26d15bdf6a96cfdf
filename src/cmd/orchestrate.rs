//! `gym orchestrate`: serve a job (docs/orchestrator.md) until it is finished or stopped.
//! Messages (admissions, rounds accepted, checkpoints published) go to stderr.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::out::Ctx;
use crate::core::keys::Identity;
use crate::core::orchestrator::{self, Decision, server};

#[derive(Debug, Args)]
pub struct OrchestrateArgs {
    /// The job file (TOML: model, data, GSPO settings, epochs, rounds, roster, publish targets).
    #[arg(long, value_name = "JOB.toml")]
    pub job: PathBuf,
    /// The orchestrator's key: signs the decision log; `gym job stop` needs it.
    #[arg(long, value_name = "ORCH.pem")]
    pub key: PathBuf,
    /// Address to serve the API on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8700")]
    pub listen: String,
    /// Durable state: sqlite:PATH or a path (default: <job folder>/<name>.orch/state.sqlite),
    /// memory: (lost on exit). Restarting on the same store resumes the job.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Seconds to keep answering after the job is over, so workers see that it is.
    #[arg(long, value_name = "S", default_value_t = 3.0)]
    pub linger: f64,
}

/// One line per decision worth an operator's attention.
pub fn describe(d: &Decision) -> Option<String> {
    Some(match d {
        Decision::Admit {
            worker, ring_addr, ..
        } => format!("admitted {worker} (ring {ring_addr})"),
        Decision::Evict { worker, reason } => format!("evicted {worker}: {reason}"),
        Decision::StartRound { round, members, .. } => {
            format!("round {round}: started with {} workers", members.len())
        }
        Decision::Topology { round, rings, .. } => format!(
            "round {round}: ring of {} members",
            rings.iter().map(Vec::len).sum::<usize>()
        ),
        Decision::Accept {
            round,
            object,
            members,
        } => format!(
            "round {round}: accepted aggregate {} ({} members agree)",
            &object[..16.min(object.len())],
            members.len()
        ),
        Decision::Abandon { round, reason } => format!("round {round}: abandoned ({reason})"),
        Decision::Published {
            epoch,
            cid,
            location,
            ..
        } => format!("epoch {epoch}: published checkpoint {cid} ({location})"),
        Decision::Stop => "stopped by the operator".into(),
        Decision::Finish => "job finished".into(),
        Decision::Reported { .. } | Decision::Result { .. } => return None,
    })
}

pub fn run(ctx: &Ctx, a: OrchestrateArgs) -> anyhow::Result<()> {
    let key = Identity::load(&a.key).with_context(|| format!("loading {}", a.key.display()))?;
    let orch = orchestrator::start_job(&a.job, key, a.store.as_deref())
        .with_context(|| format!("starting job {}", a.job.display()))?;
    let quiet = ctx.quiet;
    ctx.note(format!(
        "job {} ({}), {} accepted of {} rounds; state in {}",
        orch.job.name,
        &orch.job.job_id[..16],
        orch.machine().accepted.len(),
        orch.machine().rules.total_rounds(),
        orch.folder.display()
    ));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(&a.listen))
        .with_context(|| format!("listening on {}", a.listen))?;
    let addr = listener.local_addr()?;
    ctx.note(format!("serving on http://{addr}"));
    let on: server::OnDecision = Arc::new(move |d: &Decision| {
        if let Some(line) = describe(d)
            && !quiet
        {
            eprintln!("{line}");
        }
    });
    let linger = Duration::from_secs_f64(a.linger.clamp(0.0, 3600.0));
    rt.block_on(server::serve(orch, listener, linger, on))?;
    Ok(())
}
