//! The job's lease on a shared store (Redis), and the standby orchestrator.
//!
//! An orchestrator on a shared store writes only while it holds the job's lease (a Redis key
//! with a TTL, renewed every third of it; see `store_redis`). Each acquisition hands out a new
//! fencing token that every write is checked against, so an active orchestrator that stalls
//! past its lease and is replaced cannot write once it wakes up: its next write or renewal fails
//! and it exits ([`StoreError::Fenced`], exit code 15).
//!
//! A standby (`gym orchestrate --standby`) serves read-only answers (`GET /v1/job`, `/v1/status`,
//! `/v1/log`, `/v1/objects/…`) from the store and answers every worker request with
//! 503 `standby` naming the active orchestrator, until the lease is free; then it takes it,
//! replays the log from the store (the state the active one left) and serves the job.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::machine::{Machine, Rules};
use super::server::{ApiError, job_json};
use super::store::{Store, StoreError};
use super::{JobSpec, OrchError};
use crate::core::keys::PublicIdentity;

/// How this orchestrator holds the lease.
#[derive(Debug, Clone)]
pub struct LeaseOptions {
    /// Who is asking: the URL workers reach this orchestrator at (shown by the standby).
    pub holder: String,
    /// The lease's time to live; it is renewed every third of it.
    pub ttl: Duration,
}

impl LeaseOptions {
    pub fn ttl_ms(&self) -> u64 {
        self.ttl.as_millis().max(1) as u64
    }
}

/// Renews the lease of an active orchestrator on time (called on every tick).
#[derive(Debug, Clone)]
pub struct LeaseKeeper {
    ttl_ms: u64,
    renewed_at: u64,
}

impl LeaseKeeper {
    pub fn new(ttl: Duration, now: u64) -> Self {
        LeaseKeeper {
            ttl_ms: ttl.as_millis().max(3) as u64,
            renewed_at: now,
        }
    }

    /// Renews the lease when a third of its TTL has passed; an error once it is lost.
    pub fn keep(&mut self, store: &mut dyn Store, now: u64) -> Result<(), StoreError> {
        if now.saturating_sub(self.renewed_at) < self.ttl_ms / 3 {
            return Ok(());
        }
        if !store.renew_lease(self.ttl_ms)? {
            return Err(StoreError::LeaseLost { url: store.url() });
        }
        self.renewed_at = now;
        Ok(())
    }
}

/// Takes the lease, waiting up to `wait` for a dead holder's lease to expire (a restart after
/// kill -9); [`StoreError::LeaseHeld`] if a live orchestrator keeps it.
pub fn acquire(
    store: &mut dyn Store,
    lease: &LeaseOptions,
    wait: Duration,
) -> Result<u64, StoreError> {
    let start = Instant::now();
    loop {
        if let Some(token) = store.acquire_lease(&lease.holder, lease.ttl_ms())? {
            return Ok(token);
        }
        if start.elapsed() >= wait {
            let holder = store.lease_holder()?.unwrap_or_else(|| "?".into());
            return Err(StoreError::LeaseHeld {
                url: store.url(),
                holder,
            });
        }
        std::thread::sleep(poll_interval(lease));
    }
}

fn poll_interval(lease: &LeaseOptions) -> Duration {
    (lease.ttl / 5).clamp(Duration::from_millis(20), Duration::from_secs(1))
}

/// What the standby's read-only API reads from.
struct Standby {
    job: JobSpec,
    public: PublicIdentity,
    store: Mutex<Box<dyn Store>>,
}

impl Standby {
    fn store(&self) -> std::sync::MutexGuard<'_, Box<dyn Store>> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn active(&self) -> String {
        self.store()
            .lease_holder()
            .ok()
            .flatten()
            .unwrap_or_else(|| "none (taking over)".into())
    }
}

fn internal(e: StoreError) -> ApiError {
    ApiError::from(OrchError::from(e))
}

async fn s_job(State(s): State<Arc<Standby>>) -> impl IntoResponse {
    axum::Json(job_json(&s.job, &s.public))
}

/// `gym-job-status/1` with the phase `standby`, the active orchestrator, and the accepted
/// rounds as the log in the store has them.
async fn s_status(State(s): State<Arc<Standby>>) -> Result<impl IntoResponse, ApiError> {
    let entries = s.store().entries().map_err(internal)?;
    let m = Machine::replay(
        Rules::from_job(&s.job),
        entries.iter().map(|e| (e.at_ms, &e.decision)),
    );
    Ok(axum::Json(json!({
        "format": super::STATUS_FORMAT,
        "job": s.job.name,
        "job_id": s.job.job_id,
        "orchestrator": s.public.worker_id(),
        "phase": "standby",
        "active": s.active(),
        "epochs": m.rules.epochs,
        "rounds_per_epoch": m.rules.rounds_per_epoch,
        "total_rounds": m.rules.total_rounds(),
        "accepted_rounds": m.accepted.len(),
        "abandoned_rounds": m.abandoned,
        "log_entries": entries.len(),
        "workers": [],
        "rounds": m.accepted,
        "published": m.published,
    })))
}

async fn s_log(State(s): State<Arc<Standby>>) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(s.store().entries().map_err(internal)?))
}

async fn s_object(
    State(s): State<Arc<Standby>>,
    UrlPath(addr): UrlPath<String>,
) -> Result<Vec<u8>, ApiError> {
    s.store()
        .get_object(&addr)
        .map_err(internal)?
        .ok_or_else(|| ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "no_object",
            message: format!("no object {addr}"),
        })
}

/// Every other request: 503 `standby`, naming the active orchestrator.
async fn s_refuse(State(s): State<Arc<Standby>>) -> Response {
    let active = s.active();
    let body = json!({"error": {"status": 503, "kind": "standby", "active": active,
        "message": format!("this orchestrator is a standby; the active one is {active}")}});
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
}

/// Every answer closes its connection, so no client keeps talking to the standby's router
/// on a kept-alive connection after the takeover.
async fn close(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

fn router(s: Arc<Standby>) -> Router {
    Router::new()
        .route("/v1/job", get(s_job))
        .route("/v1/status", get(s_status))
        .route("/v1/log", get(s_log))
        .route("/v1/objects/{addr}", get(s_object))
        .fallback(s_refuse)
        .layer(axum::middleware::map_response(close))
        .with_state(s)
}

/// Serves standby answers on `listener` (reading through `reader`, a second handle on the
/// store) until `store` acquires the lease; returns its fencing token. The listener is closed
/// when this returns: the caller binds the address again for the active API.
pub async fn standby(
    job: &JobSpec,
    public: PublicIdentity,
    reader: Box<dyn Store>,
    store: Box<dyn Store>,
    listener: tokio::net::TcpListener,
    lease: &LeaseOptions,
) -> Result<(Box<dyn Store>, u64), OrchError> {
    let s = Arc::new(Standby {
        job: job.clone(),
        public,
        store: Mutex::new(reader),
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, router(s)).with_graceful_shutdown(async move {
        let _ = stop_rx.await;
    });
    let mut server = tokio::spawn(async move { server.await });
    let lease = lease.clone();
    let waited = tokio::task::spawn_blocking(move || {
        let mut store = store;
        loop {
            match store.acquire_lease(&lease.holder, lease.ttl_ms()) {
                Ok(Some(token)) => return Ok((store, token)),
                Ok(None) => std::thread::sleep(poll_interval(&lease)),
                Err(e) => return Err(OrchError::from(e)),
            }
        }
    })
    .await
    .map_err(|e| OrchError::Io(format!("lease task: {e}")))?;
    let _ = stop_tx.send(());
    if tokio::time::timeout(Duration::from_millis(500), &mut server)
        .await
        .is_err()
    {
        server.abort(); // every answer closed its connection; nothing is lost
    }
    waited
}
