//! The orchestrator (the design's `hanzod`): jobs, rounds, ring topology, durable state,
//! checkpoint aggregation and publishing. The protocol is written down in
//! `docs/orchestrator.md`.
//!
//! Layout: `job` (the job file), `machine` (the round logic, an I/O-free state machine),
//! `topology` (ring files per round), `log` (the signed, replayable decision log), `store`
//! (durable state: one trait, SQLite and memory backends, one conformance suite), `auth`
//! (signed requests), `checkpoint` (aggregates as PEFT adapters, publishing), `server` (the
//! HTTP+JSON API on axum), `client` (its reqwest client), `worker` (the `gym work` loop).
//!
//! [`GspoOrchestrator`] ties the machine to the store and the orchestrator's key: each input
//! is handled on a copy of the machine, the decisions are appended to the log, and only then
//! does the copy replace the state; a refused input or a failed write changes nothing.

pub mod attack;
pub mod auth;
pub mod checkpoint;
pub mod client;
pub mod demo;
pub mod epoch;
pub mod failover;
pub mod hier;
pub mod job;
pub mod log;
pub mod machine;
pub mod server;
pub mod sim;
pub mod store;
pub mod store_redis;
pub mod topology;
pub mod validator;
pub mod validator_api;
pub mod worker;

use std::path::{Path, PathBuf};

use serde_json::json;

pub use job::JobSpec;
pub use machine::{Decision, Input, Machine, Phase, Refusal, Rules};
pub use store::Store;
pub use topology::{RingTopology, create_ring_topology};

use crate::core::error::{Classify, ErrorClass};
use crate::core::keys::Identity;
use log::{LogEntry, LogError};

/// Format tag of `gym job status --json` and `GET /v1/status`.
pub const STATUS_FORMAT: &str = "gym-job-status/1";

#[derive(Debug, thiserror::Error)]
pub enum OrchError {
    #[error(transparent)]
    Job(#[from] job::JobError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("the stored decision log does not check: {0}")]
    Log(#[from] LogError),
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    #[error("object: {0}")]
    Object(String),
    #[error("publishing: {0}")]
    Publish(String),
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    Output(crate::core::atomic::AtomicError),
}

impl Classify for OrchError {
    fn class(&self) -> ErrorClass {
        match self {
            OrchError::Job(e) => e.class(),
            OrchError::Store(e) => e.class(),
            OrchError::Log(e) => e.class(),
            OrchError::Refused(_) => ErrorClass::Remote,
            OrchError::Object(_) => ErrorClass::Malformed,
            OrchError::Publish(_) => ErrorClass::Network,
            OrchError::Io(_) => ErrorClass::Io,
            OrchError::Output(e) => e.class(),
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A job's orchestrator: the round machine, its durable log and objects, its signing key.
pub struct GspoOrchestrator {
    pub job: JobSpec,
    key: Identity,
    store: Box<dyn Store>,
    machine: Machine,
    prev: String,
    next_seq: u64,
    /// Where checkpoints are written (the job's folder).
    pub folder: PathBuf,
    /// Renews the lease on a shared store (None: the store has no lease).
    lease: Option<failover::LeaseKeeper>,
    /// How the Hub is reached, for jobs that publish there.
    hub: Option<checkpoint::HubAccess>,
}

impl GspoOrchestrator {
    /// Opens a job on a store, replaying (and checking) the decisions already logged there.
    pub fn new(
        job: JobSpec,
        key: Identity,
        store: Box<dyn Store>,
        folder: &Path,
    ) -> Result<Self, OrchError> {
        let entries = store.entries()?;
        let prev = log::verify_log(&entries, &job.job_id, &key.public())?;
        let rules = Rules::from_job(&job);
        let machine = Machine::replay(rules, entries.iter().map(|e| (e.at_ms, &e.decision)));
        Ok(GspoOrchestrator {
            job,
            key,
            store,
            machine,
            prev,
            next_seq: entries.len() as u64,
            folder: folder.to_path_buf(),
            lease: None,
            hub: None,
        })
    }

    /// How to reach the Hub (`HF_ENDPOINT`, `HF_TOKEN`) for a job with `publish.hf`.
    pub fn set_hub_access(&mut self, hub: checkpoint::HubAccess) {
        self.hub = Some(hub);
    }

    /// The store holds this orchestrator's lease (its TTL `ttl`): [`Self::keep_lease`]
    /// renews it on time.
    pub fn hold_lease(&mut self, ttl: std::time::Duration) {
        self.lease = Some(failover::LeaseKeeper::new(ttl, now_ms()));
    }

    /// Renews the lease when due; an error once another orchestrator has taken it.
    pub fn keep_lease(&mut self, now: u64) -> Result<(), OrchError> {
        match &mut self.lease {
            Some(k) => Ok(k.keep(&mut *self.store, now)?),
            None => Ok(()),
        }
    }

    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    pub fn store_mut(&mut self) -> &mut dyn Store {
        &mut *self.store
    }

    /// The orchestrator's public key (signs the log; the operator's key for `gym job stop`).
    pub fn public(&self) -> crate::core::keys::PublicIdentity {
        self.key.public()
    }

    /// Handles an input: refused inputs and failed writes change nothing.
    pub fn handle(&mut self, input: Input, now: u64) -> Result<Vec<Decision>, OrchError> {
        let mut next = self.machine.clone();
        let decisions = next.handle(input, now)?;
        let (mut prev, mut seq) = (self.prev.clone(), self.next_seq);
        for d in &decisions {
            let e = LogEntry::sign(&self.key, &self.job.job_id, seq, now, prev, d.clone());
            if let Err(err) = self.store.append(&e) {
                self.reload()?;
                return Err(err.into());
            }
            prev = hex::encode(e.digest(&self.job.job_id));
            seq += 1;
        }
        self.machine = next;
        self.prev = prev;
        self.next_seq = seq;
        Ok(decisions)
    }

    /// Rebuilds the state from the stored log (after a partly failed write).
    fn reload(&mut self) -> Result<(), OrchError> {
        let entries = self.store.entries()?;
        self.prev = log::verify_log(&entries, &self.job.job_id, &self.key.public())?;
        self.next_seq = entries.len() as u64;
        self.machine = Machine::replay(
            Rules::from_job(&self.job),
            entries.iter().map(|e| (e.at_ms, &e.decision)),
        );
        Ok(())
    }

    /// Publishes every epoch checkpoint that is due, then (after the last epoch) the merged
    /// model; returns the decisions logged.
    pub fn publish_due(&mut self, now: u64) -> Result<Vec<Decision>, OrchError> {
        let mut out = Vec::new();
        for (epoch, object) in self.machine.unpublished() {
            let bytes = self.store.get_object(&object)?.ok_or_else(|| {
                OrchError::Object(format!("aggregate {object} is missing from the store"))
            })?;
            let p = checkpoint::publish_epoch(
                &self.folder,
                epoch,
                &bytes,
                &self.job.publish,
                self.hub.as_ref(),
            )?;
            out.extend(self.handle(
                Input::Published {
                    epoch,
                    object,
                    cid: p.cid,
                    location: p.location,
                    hf: p.hf,
                },
                now,
            )?);
            self.write_epoch(epoch)?;
        }
        // a crash between logging `Published` and writing the epoch's folder: write it now
        let missing: Vec<u64> = self
            .machine
            .published
            .iter()
            .map(|p| p.epoch)
            .filter(|&e| self.job.validation.is_some() && !epoch::is_written(self, e))
            .collect();
        for e in missing {
            self.write_epoch(e)?;
        }
        if let Some(epoch) = self.machine.merge_due() {
            let p = checkpoint::publish_merged(
                &self.folder,
                epoch,
                &self.job.train,
                &self.job.publish,
                self.hub.as_ref(),
            )?;
            out.extend(self.handle(
                Input::PublishedMerged {
                    epoch,
                    cid: p.cid,
                    location: p.location,
                    hf: p.hf,
                },
                now,
            )?);
        }
        Ok(out)
    }

    /// An Ed25519 signature (base64) by the orchestrator's key over a digest.
    pub fn sign_digest(&self, digest: &[u8; 32]) -> String {
        crate::core::keys::b64(&self.key.sign_ed25519(digest))
    }

    /// Validated jobs: the epoch folder and its signed reward estimate (docs/rewards.md §7).
    /// An estimate that cannot be made is recorded in `estimate.json` as `{"error": …}`.
    fn write_epoch(&self, epoch_no: u64) -> Result<(), OrchError> {
        let Some(v) = &self.job.validation else {
            return Ok(());
        };
        let dir = epoch::write(self, epoch_no)?;
        let Some(params) = v.model_params else {
            return Ok(());
        };
        if let Err(e) = epoch::estimate_folder(self, &dir, epoch_no, params) {
            let p = dir.join("estimate.json");
            let body = json!({"error": e.to_string()}).to_string();
            std::fs::write(&p, body).map_err(|e| OrchError::Io(format!("{}: {e}", p.display())))?;
        }
        Ok(())
    }

    /// The epoch folders written so far, with their estimates.
    fn epochs_status(&self) -> Vec<serde_json::Value> {
        (0..self.job.epochs)
            .map(|e| (e, epoch::folder(self, e)))
            .filter(|(_, d)| d.is_dir())
            .map(|(e, d)| {
                let est = std::fs::read(d.join("estimate.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
                json!({"epoch": e, "folder": d.display().to_string(), "estimate": est})
            })
            .collect()
    }

    /// The ring number used on the wire for the current ring phase: unique across retries.
    pub fn ring_round(&self, round: u64) -> u64 {
        (self.machine.abandoned << 32) | round
    }

    /// `GET /v1/status`: workers, phase, curves, checkpoints (format [`STATUS_FORMAT`]).
    pub fn status(&self) -> serde_json::Value {
        let m = &self.machine;
        let (round, members) = match &m.phase {
            Phase::Waiting(w) => (w.round, vec![]),
            Phase::Training(t) => (t.round, t.members.iter().cloned().collect()),
            Phase::Ring(r) => (r.round, r.rings.concat()),
            Phase::Finished(_) => (m.rules.total_rounds(), vec![]),
            Phase::Validating(v) => (v.round, vec![]),
        };
        let workers: Vec<serde_json::Value> = self
            .job
            .roster
            .iter()
            .map(|r| {
                let state = match m.workers.get(&r.id) {
                    None => "absent",
                    Some(_) if members.contains(&r.id) => match &m.phase {
                        Phase::Training(t) if t.reports.contains_key(&r.id) => "reported",
                        Phase::Training(_) => "training",
                        Phase::Ring(x) if x.results.contains_key(&r.id) => "result_reported",
                        _ => "ring",
                    },
                    Some(_) => "idle",
                };
                json!({"id": r.id, "role": r.role, "stake": r.stake, "state": state,
                       "ring_addr": m.workers.get(&r.id).map(|w| w.ring_addr.clone())})
            })
            .collect();
        json!({
            "format": STATUS_FORMAT,
            "job": self.job.name,
            "job_id": self.job.job_id,
            "orchestrator": self.key.public().worker_id(),
            "phase": m.phase.name(),
            "round": round,
            "epoch": round / m.rules.rounds_per_epoch,
            "epochs": m.rules.epochs,
            "rounds_per_epoch": m.rules.rounds_per_epoch,
            "total_rounds": m.rules.total_rounds(),
            "accepted_rounds": m.accepted.len(),
            "abandoned_rounds": m.abandoned,
            "log_entries": self.next_seq,
            "workers": workers,
            "rounds": m.accepted,
            "published": m.published,
            "merged": m.merged,
            "epoch_folders": self.epochs_status(),
        })
    }
}

/// The design's `start_job`: opens (or resumes) the job in `job_path` with the orchestrator
/// key, on the store `store_url` (default: `<job folder>/<name>.orch/state.sqlite`).
///
/// ```no_run
/// use gym::core::keys::Identity;
/// use gym::core::orchestrator::start_job;
/// let key = Identity::generate(false);
/// let orch = start_job("job.toml".as_ref(), key, None)?;
/// println!("{} rounds to go", orch.machine().rules.total_rounds());
/// # Ok::<(), gym::core::orchestrator::OrchError>(())
/// ```
pub fn start_job(
    job_path: &Path,
    key: Identity,
    store_url: Option<&str>,
) -> Result<GspoOrchestrator, OrchError> {
    let (job, folder, url) = open_job(job_path, store_url)?;
    let mut store = store::open_for(&url, &job.job_id)?;
    let lease = failover::LeaseOptions {
        holder: format!("pid {}", std::process::id()),
        ttl: std::time::Duration::from_secs(5),
    };
    if store.shared() {
        failover::acquire(&mut *store, &lease, lease.ttl)?;
    }
    let mut orch = GspoOrchestrator::new(job, key, store, &folder)?;
    if orch.store().shared() {
        orch.hold_lease(lease.ttl);
    }
    Ok(orch)
}

/// Loads a job file and makes its folder (`<job folder>/<name>.orch`); returns the job, the
/// folder and the store URL (`store_url`, or the SQLite file in the folder).
pub fn open_job(
    job_path: &Path,
    store_url: Option<&str>,
) -> Result<(JobSpec, PathBuf, String), OrchError> {
    let job = JobSpec::load(job_path)?;
    let base = job_path.parent().unwrap_or(Path::new("."));
    let folder = base.join(format!("{}.orch", job.name));
    std::fs::create_dir_all(&folder)
        .map_err(|e| OrchError::Io(format!("{}: {e}", folder.display())))?;
    let url = match store_url {
        Some(u) => u.to_string(),
        None => format!("sqlite:{}", folder.join("state.sqlite").display()),
    };
    Ok((job, folder, url))
}
