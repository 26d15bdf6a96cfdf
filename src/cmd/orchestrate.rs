//! `gym orchestrate`: serve a job (docs/orchestrator.md) until it is finished or stopped.
//! Messages (admissions, rounds accepted, checkpoints published) go to stderr.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::out::Ctx;
use crate::core::keys::Identity;
use crate::core::orchestrator::failover::{self, LeaseOptions};
use crate::core::orchestrator::{self, Decision, GspoOrchestrator, server, store};

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
    /// memory: (lost on exit), redis://HOST:PORT/DB (shared; needed for --standby).
    /// Restarting on the same store resumes the job.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Start as a standby (Redis store): serve read-only answers and refuse worker requests
    /// with 503 until the active orchestrator's lease expires, then take over the job.
    #[arg(long)]
    pub standby: bool,
    /// Seconds the lease on a Redis store lasts without renewal (renewed every third of it):
    /// how long a standby waits after the active one dies.
    #[arg(long, value_name = "S", default_value_t = 5.0)]
    pub lease: f64,
    /// The URL workers reach this orchestrator at, shown by a standby (default: http://ADDR
    /// of --listen).
    #[arg(long, value_name = "URL")]
    pub advertise: Option<String>,
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
        Decision::PublishedMerged {
            epoch,
            cid,
            location,
            ..
        } => format!("epoch {epoch}: published the merged model {cid} ({location})"),
        Decision::Stop => "stopped by the operator".into(),
        Decision::Finish => "job finished".into(),
        Decision::Reported { .. } | Decision::Result { .. } => return None,
        Decision::Validate { round } => format!("round {round}: deltas sent to the validators"),
        Decision::Verdict {
            round,
            validator,
            subject,
            pass,
            ..
        } => format!(
            "round {round}: {validator} says {} for {subject}",
            if *pass { "pass" } else { "fail" }
        ),
        Decision::Admission {
            round,
            admitted,
            refused,
        } => {
            let mut s = format!("round {round}: {} delta(s) admitted", admitted.len());
            for r in refused {
                s.push_str(&format!("; refused {}: {}", r.worker, r.reason));
            }
            s
        }
    })
}

fn usage(msg: String) -> anyhow::Error {
    super::Failure::new(crate::core::error::ErrorClass::Usage, msg).into()
}

/// Opens the job and its store; on a shared store, takes the lease (as a standby: serving
/// standby answers until it is free). Returns the orchestrator and the listener to serve on.
async fn open(
    ctx: &Ctx,
    a: &OrchestrateArgs,
    key: Identity,
) -> anyhow::Result<(GspoOrchestrator, tokio::net::TcpListener)> {
    let (job, folder, url) = orchestrator::open_job(&a.job, a.store.as_deref())
        .with_context(|| format!("starting job {}", a.job.display()))?;
    let listener = tokio::net::TcpListener::bind(&a.listen)
        .await
        .with_context(|| format!("listening on {}", a.listen))?;
    let addr = listener.local_addr()?;
    let mut store = store::open_for(&url, &job.job_id)?;
    if !store.shared() {
        if a.standby {
            return Err(usage(format!(
                "--standby needs a shared store (redis://HOST:PORT/DB), not {url}"
            )));
        }
        let mut orch = GspoOrchestrator::new(job, key, store, &folder)?;
        hub_access(&mut orch)?;
        return Ok((orch, listener));
    }
    let lease = LeaseOptions {
        holder: a.advertise.clone().unwrap_or(format!("http://{addr}")),
        ttl: super::seconds(a.lease, "lease")?,
    };
    let listener = if a.standby {
        let holder = store.lease_holder()?.unwrap_or_else(|| "nobody".into());
        ctx.note(format!(
            "standby on http://{addr}: the lease is held by {holder}"
        ));
        let reader = store::open_for(&url, &job.job_id)?;
        let (s, token) =
            failover::standby(&job, key.public(), reader, store, listener, &lease).await?;
        store = s;
        ctx.note(format!(
            "took the lease over (token {token}); replaying the log"
        ));
        tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr} again"))?
    } else {
        let l2 = lease.clone();
        let (s, token) = tokio::task::spawn_blocking(move || {
            let t = failover::acquire(&mut *store, &l2, l2.ttl + Duration::from_secs(1));
            (store, t)
        })
        .await?;
        store = s;
        ctx.note(format!("holding the job's lease (token {})", token?));
        listener
    };
    let mut orch = GspoOrchestrator::new(job, key, store, &folder)?;
    hub_access(&mut orch)?;
    orch.hold_lease(lease.ttl);
    Ok((orch, listener))
}

/// A job that publishes to the Hub needs `HF_TOKEN` before it starts, not at its first epoch.
fn hub_access(orch: &mut GspoOrchestrator) -> anyhow::Result<()> {
    if let Some(repo) = &orch.job.publish.hf {
        let access = super::publish::PublishEnv::read()
            .hub_access()
            .with_context(|| format!("the job publishes to the Hub ({repo})"))?;
        orch.set_hub_access(access);
    }
    Ok(())
}

pub fn run(ctx: &Ctx, a: OrchestrateArgs) -> anyhow::Result<()> {
    let key = Identity::load(&a.key).with_context(|| format!("loading {}", a.key.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let (orch, listener) = rt.block_on(open(ctx, &a, key))?;
    let quiet = ctx.quiet;
    ctx.note(format!(
        "job {} ({}), {} accepted of {} rounds; state in {}",
        orch.job.name,
        &orch.job.job_id[..16],
        orch.machine().accepted.len(),
        orch.machine().rules.total_rounds(),
        orch.folder.display()
    ));
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
