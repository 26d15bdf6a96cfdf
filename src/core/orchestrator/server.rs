//! The HTTP+JSON API (axum on tokio). Handlers only decode, authenticate, call the
//! orchestrator and encode; the statuses are listed in docs/orchestrator.md:
//!
//! | status | when |
//! |--------|------|
//! | 200 | done (201: an object stored for the first time) |
//! | 400 | malformed body or values (bad JSON, object not matching its address) |
//! | 401 | unsigned request, bad signature, time outside the window |
//! | 403 | the key is not on the roster (or, for `stop`, not the orchestrator's) |
//! | 404 | unknown object or path |
//! | 409 | replayed nonce; wrong round or phase; not a member; already reported; job full or finished |
//! | 413 | body larger than the limit |
//! | 422 | the reported delta is missing, or not signed by the reporting worker |
//! | 500 | the store failed (the request changed nothing) |

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::{self, AuthError, NonceCache};
use super::machine::{Decision, Input, Phase, Refusal};
use super::{GspoOrchestrator, OrchError, now_ms, store};
use crate::core::keys::{PublicIdentity, b64, unb64};
use crate::core::reward::records::{RingKind, RingReceipt};
use crate::core::ring::config::{DEFAULT_CHUNK_ELEMENTS, Member, RingSpec};

/// Largest object accepted (a delta).
pub const MAX_OBJECT: usize = 512 << 20;

/// What the driver reports as it goes (printed by the command layer).
pub type OnDecision = Arc<dyn Fn(&Decision) + Send + Sync>;

/// Longest a `POST /v1/poll` is held waiting for a change (`wait_ms` is capped to this).
pub const MAX_WAIT_MS: u64 = 30_000;

struct Shared {
    orch: Mutex<GspoOrchestrator>,
    nonces: Mutex<NonceCache>,
    on_decision: OnDecision,
    /// Bumped after every batch of decisions; long polls wait on it.
    changed: tokio::sync::watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, GspoOrchestrator> {
        self.orch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reports decisions and wakes the long polls.
    fn decided(&self, ds: &[Decision]) {
        for d in ds {
            (self.on_decision)(d);
        }
        if !ds.is_empty() {
            self.changed.send_modify(|v| *v += 1);
        }
    }
}

/// An error answer: `{"error": {"status": 409, "kind": "wrong_round", "message": "…"}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"status": self.status.as_u16(), "kind": self.kind,
                                     "message": self.message}});
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let (status, kind) = match &e {
            AuthError::Replayed(_) => (StatusCode::CONFLICT, "replayed"),
            AuthError::Missing(_) => (StatusCode::UNAUTHORIZED, "unsigned"),
            AuthError::Stale { .. } => (StatusCode::UNAUTHORIZED, "stale"),
            AuthError::BadSignature => (StatusCode::UNAUTHORIZED, "bad_signature"),
            AuthError::Malformed { .. } => (StatusCode::UNAUTHORIZED, "malformed_signature"),
        };
        ApiError::new(status, kind, e.to_string())
    }
}

impl From<OrchError> for ApiError {
    fn from(e: OrchError) -> Self {
        match e {
            OrchError::Refused(r) => {
                let (status, kind) = match &r {
                    Refusal::NotOnRoster(_) => (StatusCode::FORBIDDEN, "not_on_roster"),
                    Refusal::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid"),
                    Refusal::NotAdmitted(_) => (StatusCode::CONFLICT, "not_admitted"),
                    Refusal::Full(_) => (StatusCode::CONFLICT, "full"),
                    Refusal::WrongRound { .. } => (StatusCode::CONFLICT, "wrong_round"),
                    Refusal::NotMember { .. } => (StatusCode::CONFLICT, "not_member"),
                    Refusal::Duplicate { .. } => (StatusCode::CONFLICT, "duplicate"),
                    Refusal::Finished => (StatusCode::CONFLICT, "finished"),
                };
                ApiError::new(status, kind, r.to_string())
            }
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                other.to_string(),
            ),
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Checks a request's signature, time and nonce; returns the signer and its worker id.
fn authenticate(
    sh: &Shared,
    job_id: &str,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<(PublicIdentity, String)> {
    let env = auth::parse(|n| headers.get(n).and_then(|v| v.to_str().ok()))?;
    let now = now_ms();
    let who = auth::verify(&env, job_id, method.as_str(), path, body, now)?;
    let id = who.worker_id();
    sh.nonces
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .check_and_insert(&env.nonce, now)?;
    Ok((who, id))
}

/// A signed request from a roster member.
fn member(
    sh: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<(PublicIdentity, String)> {
    let (job_id, roster_ok) = {
        let o = sh.lock();
        (o.job.job_id.clone(), o.job.roster.clone())
    };
    let (who, id) = authenticate(sh, &job_id, method, path, headers, body)?;
    if !roster_ok.iter().any(|r| r.id == id) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_on_roster",
            format!("{id} is not on the job's roster"),
        ));
    }
    Ok((who, id))
}

fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed_body", e.to_string()))
}

fn run(sh: &Shared, input: Input) -> ApiResult<Vec<Decision>> {
    let ds = sh.lock().handle(input, now_ms())?;
    sh.decided(&ds);
    Ok(ds)
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RegisterBody {
    pub ring_addr: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ReportBody {
    pub round: u64,
    pub object: String,
    pub weight: u64,
    pub reward: f64,
    pub loss: f64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ResultBody {
    pub round: u64,
    pub object: String,
    /// The signed `forward` receipt (gym-ring-receipt/1) the worker issued about its ring
    /// predecessor; the epoch folder's `ring/` holds them for the reward estimate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<RingReceipt>,
}

/// What `POST /v1/poll` tells a worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerView {
    pub phase: String,
    pub round: u64,
    pub epoch: u64,
    pub admitted: bool,
    pub member: bool,
    pub reported: bool,
    pub result_reported: bool,
    /// The aggregate to train from (content address; None: the base model).
    pub base: Option<String>,
    pub ring: Option<RingAssignment>,
    pub finished: bool,
    /// A digest of everything above: send it back as `seen` to wait for a change.
    #[serde(default)]
    pub tag: String,
}

/// The body of `POST /v1/poll`: `{}` answers at once; with `seen` (the `tag` of the view the
/// worker has) and `wait_ms`, the answer is held until the worker's view differs from that
/// one or `wait_ms` (at most [`MAX_WAIT_MS`]) has passed.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PollBody {
    #[serde(default)]
    pub seen: Option<String>,
    #[serde(default)]
    pub wait_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RingAssignment {
    /// The ring file (as `gym ring plan` writes it).
    pub toml: String,
    pub index: usize,
    /// The weight to bring to the ring (validated jobs: the signed `compute.tokens`, capped
    /// by the job); the orchestrator refuses a result whose ring record shows another.
    #[serde(default)]
    pub weight: Option<u64>,
    /// Hierarchical rounds: this worker's leader rings, lowest level first. `toml` is then a
    /// group ring that writes the group's exact sum, and each leader ring takes the output of
    /// the ring below (`super::hier`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leaders: Vec<super::hier::LeaderRing>,
    /// Hierarchical rounds: the round's result once a member of the top leader ring reported
    /// it; a worker that is not in the top ring takes it from the store and reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_result: Option<String>,
}

fn job_info(o: &GspoOrchestrator) -> serde_json::Value {
    job_json(&o.job, &o.public())
}

/// `GET /v1/job` (format `gym-job/1`).
pub fn job_json(job: &super::JobSpec, public: &PublicIdentity) -> serde_json::Value {
    json!({
        "format": "gym-job/1",
        "name": job.name,
        "job_id": job.job_id,
        "orchestrator": public.worker_id(),
        "orchestrator_ed25519": b64(public.ed25519.as_bytes()),
        "epochs": job.epochs,
        "rounds_per_epoch": job.rounds_per_epoch,
        "train_toml": job.train_toml,
        "roster": job.roster,
        "validation": job.validation,
    })
}

async fn get_job(State(sh): State<Arc<Shared>>) -> impl IntoResponse {
    axum::Json(job_info(&sh.lock()))
}

async fn get_status(State(sh): State<Arc<Shared>>) -> impl IntoResponse {
    axum::Json(sh.lock().status())
}

async fn get_log(State(sh): State<Arc<Shared>>) -> ApiResult<impl IntoResponse> {
    let entries = sh.lock().store().entries().map_err(OrchError::from)?;
    Ok(axum::Json(entries))
}

async fn get_object(
    State(sh): State<Arc<Shared>>,
    UrlPath(addr): UrlPath<String>,
) -> ApiResult<Vec<u8>> {
    let got = sh
        .lock()
        .store()
        .get_object(&addr)
        .map_err(OrchError::from)?;
    got.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_object",
            format!("no object {addr}"),
        )
    })
}

async fn put_object(
    State(sh): State<Arc<Shared>>,
    UrlPath(addr): UrlPath<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let path = format!("/v1/objects/{addr}");
    member(&sh, &method, &path, &headers, &body)?;
    if store::content_address(&body) != addr {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "address_mismatch",
            format!("the body's SHA3-256 is not {addr}"),
        ));
    }
    let fresh = sh
        .lock()
        .store_mut()
        .put_object(&addr, &body)
        .map_err(OrchError::from)?;
    Ok(if fresh {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    })
}

async fn register(
    State(sh): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let (who, id) = member(&sh, &method, "/v1/register", &headers, &body)?;
    let b: RegisterBody = decode(&body)?;
    run(
        &sh,
        Input::Register {
            worker: id.clone(),
            ed25519: b64(who.ed25519.as_bytes()),
            ring_addr: b.ring_addr,
        },
    )?;
    let o = sh.lock();
    let index = o.job.roster.iter().position(|r| r.id == id).unwrap_or(0);
    Ok(axum::Json(
        json!({"worker": id, "index": index, "job": job_info(&o)}),
    ))
}

fn ring_assignment(o: &GspoOrchestrator, id: &str) -> Option<RingAssignment> {
    let Phase::Ring(r) = &o.machine().phase else {
        return None;
    };
    if !r.leaders.is_empty() {
        let a = super::hier::assignment(o.machine(), r, o.ring_round(r.round), id)?;
        return Some(RingAssignment {
            toml: a.group.to_toml(),
            index: a.index,
            weight: Some(a.weight),
            leaders: a.leaders,
            final_result: a.final_result,
        });
    }
    let ring = r.rings.iter().find(|ring| ring.iter().any(|w| w == id))?;
    let members: Vec<Member> = ring
        .iter()
        .filter_map(|w| {
            let info = o.machine().workers.get(w)?;
            let raw = unb64(&info.ed25519)?;
            Some(Member {
                id: w.clone(),
                address: info.ring_addr.clone(),
                public: PublicIdentity::from_raw(&raw, None).ok()?,
            })
        })
        .collect();
    let spec = RingSpec::new(o.ring_round(r.round), DEFAULT_CHUNK_ELEMENTS, members).ok()?;
    let index = spec.members.iter().position(|m| m.id == id)?;
    let weight = o
        .job
        .validation
        .as_ref()
        .and_then(|_| r.reports.get(id).map(|x| x.weight));
    Some(RingAssignment {
        toml: spec.to_toml(),
        index,
        weight,
        leaders: Vec::new(),
        final_result: None,
    })
}

/// A worker's view of the current round.
pub fn worker_view(o: &GspoOrchestrator, id: &str) -> WorkerView {
    let m = o.machine();
    let admitted = m.workers.contains_key(id);
    let mut v = WorkerView {
        phase: m.phase.name().into(),
        round: 0,
        epoch: 0,
        admitted,
        member: false,
        reported: false,
        result_reported: false,
        base: m.aggregate().map(str::to_string),
        ring: None,
        // over only once every checkpoint is published: a worker that exits can find it
        finished: matches!(m.phase, Phase::Finished(_)) && m.all_published(),
        tag: String::new(),
    };
    match &m.phase {
        Phase::Waiting(w) => v.round = w.round,
        Phase::Training(t) => {
            v.round = t.round;
            v.base = t.base.clone();
            v.member = admitted && t.members.contains(id);
            v.reported = t.reports.contains_key(id);
        }
        Phase::Ring(r) => {
            v.round = r.round;
            v.base = r.base.clone();
            v.member = admitted && r.rings.iter().any(|x| x.iter().any(|w| w == id));
            v.reported = r.reports.contains_key(id);
            v.result_reported = r.results.contains_key(id);
            v.ring = ring_assignment(o, id);
        }
        Phase::Finished(_) => v.round = m.rules.total_rounds(),
        Phase::Validating(x) => {
            v.round = x.round;
            v.base = x.base.clone();
            v.reported = x.reports.contains_key(id);
        }
    }
    v.epoch = v.round / m.rules.rounds_per_epoch;
    v.tag = view_tag(&v);
    v
}

/// The first 16 bytes of SHA3-256 over the view's JSON (its `tag` empty), in hex.
fn view_tag(v: &WorkerView) -> String {
    use sha3::{Digest, Sha3_256};
    let json = serde_json::to_vec(v).expect("views serialise");
    hex::encode(&Sha3_256::digest(&json)[..16])
}

async fn poll(
    State(sh): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let (_, id) = member(&sh, &method, "/v1/poll", &headers, &body)?;
    let b: PollBody = if body.is_empty() {
        PollBody::default()
    } else {
        decode(&body)?
    };
    let deadline = tokio::time::Instant::now() + Duration::from_millis(b.wait_ms.min(MAX_WAIT_MS));
    let mut changed = sh.changed.subscribe();
    loop {
        // subscribed before looking, so a change after this look wakes the wait below
        let _ = changed.borrow_and_update();
        let v = worker_view(&sh.lock(), &id);
        if b.seen.as_deref() != Some(v.tag.as_str()) {
            return Ok(axum::Json(v));
        }
        match tokio::time::timeout_at(deadline, changed.changed()).await {
            Ok(Ok(())) => continue,
            _ => return Ok(axum::Json(v)),
        }
    }
}

/// The reported object must be a delta signed by the reporter; its verified header.
fn check_delta(
    sh: &Shared,
    object: &str,
    who: &PublicIdentity,
) -> ApiResult<crate::core::delta::VerifyReport> {
    let bytes = sh
        .lock()
        .store()
        .get_object(object)
        .map_err(OrchError::from)?;
    let bytes = bytes.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_object",
            format!("delta {object} was not uploaded (PUT /v1/objects/{object} first)"),
        )
    })?;
    let opts = crate::core::delta::VerifyOptions {
        require_signature: true,
        ..Default::default()
    };
    let unprocessable = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_delta", m);
    let report = crate::core::delta::read_bytes(&bytes, &opts)
        .map_err(|e| unprocessable(format!("delta {object}: {e}")))?;
    if report.signer.as_ref().map(|s| s.ed25519) != Some(who.ed25519) {
        return Err(unprocessable(format!(
            "delta {object} is not signed by the reporting worker"
        )));
    }
    Ok(report)
}

async fn report(
    State(sh): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let (who, id) = member(&sh, &method, "/v1/report", &headers, &body)?;
    let b: ReportBody = decode(&body)?;
    let delta = check_delta(&sh, &b.object, &who)?;
    let weight = validated_weight(&sh, &delta).unwrap_or(b.weight);
    let ds = run(
        &sh,
        Input::Report {
            worker: id,
            round: b.round,
            object: b.object,
            weight,
            reward: b.reward,
            loss: b.loss,
        },
    )?;
    Ok(axum::Json(json!({"decisions": ds})))
}

async fn result(
    State(sh): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let (_, id) = member(&sh, &method, "/v1/result", &headers, &body)?;
    let b: ResultBody = decode(&body)?;
    if let Some(r) = &b.receipt {
        check_receipt(&sh.lock(), &id, b.round, r)?;
    }
    let present = sh
        .lock()
        .store()
        .has_object(&b.object)
        .map_err(OrchError::from)?;
    if !present {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_object",
            format!("result {} was not uploaded", b.object),
        ));
    }
    super::validator_api::check_result_binding(&sh.lock(), &b.object)?;
    let ds = run(
        &sh,
        Input::Result {
            worker: id,
            round: b.round,
            object: b.object,
            receipt: b.receipt.map(Box::new),
        },
    )?;
    Ok(axum::Json(json!({"decisions": ds})))
}

/// A result's receipt: signed by the reporting worker, a `forward` receipt for this round and
/// the job's epoch, about another member of the worker's ring. Refused with 400 otherwise.
fn check_receipt(
    o: &GspoOrchestrator,
    worker: &str,
    round: u64,
    r: &RingReceipt,
) -> Result<(), ApiError> {
    let bad = |why: String| ApiError::new(StatusCode::BAD_REQUEST, "bad_receipt", why);
    let issuer = r
        .verify("result", "receipt")
        .map_err(|e| bad(e.to_string()))?
        .worker_id();
    if issuer != worker {
        return Err(bad(format!(
            "the receipt is signed by {issuer}, not by {worker}"
        )));
    }
    let epoch = round / o.job.rounds_per_epoch;
    if r.kind != RingKind::Forward || r.round != round || r.epoch != epoch {
        return Err(bad(format!(
            "expected a forward receipt for round {round} of epoch {epoch}, got {} for round {} of epoch {}",
            r.kind.name(),
            r.round,
            r.epoch
        )));
    }
    let same_ring = match &o.machine().phase {
        Phase::Ring(p) if p.round == round => p
            .rings
            .iter()
            .any(|g| g.contains(&r.subject) && g.iter().any(|m| m == worker)),
        _ => true, // the round machine refuses the result itself
    };
    if !same_ring || r.subject == worker {
        return Err(bad(format!(
            "the receipt's subject {} is not another member of {worker}'s ring",
            r.subject
        )));
    }
    Ok(())
}

async fn stop(
    State(sh): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let (job_id, orch_key) = {
        let o = sh.lock();
        (o.job.job_id.clone(), o.public().ed25519)
    };
    let (who, _) = authenticate(&sh, &job_id, &method, "/v1/stop", &headers, &body)?;
    if who.ed25519 != orch_key {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_operator",
            "only the orchestrator's key may stop the job",
        ));
    }
    let ds = run(&sh, Input::Stop)?;
    Ok(axum::Json(json!({"decisions": ds})))
}

/// Validated jobs: the averaging weight is the signed `compute.tokens` capped by the job, not
/// the number the worker reports.
fn validated_weight(sh: &Shared, delta: &crate::core::delta::VerifyReport) -> Option<u64> {
    let o = sh.lock();
    let v = o.job.validation.as_ref()?;
    let tokens = delta
        .delta
        .metadata
        .compute
        .as_ref()
        .map_or(0, |c| c.tokens);
    Some(v.weight(tokens))
}

async fn validator_poll(
    State(sh): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let (_, id) = member(&sh, &method, "/v1/validator", &headers, &body)?;
    let o = sh.lock();
    if !o.machine().is_validator(&id) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_validator",
            format!("{id} is not a validator of the job"),
        ));
    }
    Ok(axum::Json(super::validator_api::view(&o, &id)))
}

async fn verdict(
    State(sh): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let (who, id) = member(&sh, &method, "/v1/verdict", &headers, &body)?;
    let b: super::validator_api::VerdictBody = decode(&body)?;
    let input = super::validator_api::check_verdict(&sh.lock(), &who, &id, &b)?;
    let ds = run(&sh, Input::Verdict(input))?;
    Ok(axum::Json(json!({"decisions": ds})))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no_route", "no such endpoint")
}

fn router(sh: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/job", get(get_job))
        .route("/v1/status", get(get_status))
        .route("/v1/log", get(get_log))
        .route("/v1/objects/{addr}", get(get_object).put(put_object))
        .route("/v1/register", post(register))
        .route("/v1/poll", post(poll))
        .route("/v1/report", post(report))
        .route("/v1/result", post(result))
        .route("/v1/stop", post(stop))
        .route("/v1/validator", post(validator_poll))
        .route("/v1/verdict", post(verdict))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_OBJECT))
        .with_state(sh)
}

/// One tick: timeouts, then any checkpoint due. Returns true once the job is over and
/// everything is published.
fn tick(sh: &Shared) -> Result<bool, OrchError> {
    let mut o = sh.lock();
    let now = now_ms();
    o.keep_lease(now)?;
    let mut ds = o.handle(Input::Tick, now)?;
    ds.extend(o.publish_due(now)?);
    let done = matches!(o.machine().phase, Phase::Finished(_)) && o.machine().all_published();
    drop(o);
    sh.decided(&ds);
    Ok(done)
}

/// Serves the API on `listener` until the job is finished (or stopped) and `linger` has
/// passed, so workers can see that it is over.
pub async fn serve(
    orch: GspoOrchestrator,
    listener: tokio::net::TcpListener,
    linger: Duration,
    on_decision: OnDecision,
) -> Result<(), OrchError> {
    let sh = Arc::new(Shared {
        orch: Mutex::new(orch),
        nonces: Mutex::new(NonceCache::default()),
        on_decision,
        changed: tokio::sync::watch::channel(0).0,
    });
    let app = router(sh.clone());
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<Result<(), OrchError>>();
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let s2 = sh.clone();
            let r = tokio::task::spawn_blocking(move || tick(&s2)).await;
            match r {
                Ok(Ok(false)) => {}
                Ok(Ok(true)) => {
                    tokio::time::sleep(linger).await;
                    let _ = done_tx.send(Ok(()));
                    return;
                }
                Ok(Err(e)) => {
                    let _ = done_tx.send(Err(e));
                    return;
                }
                Err(e) => {
                    let _ = done_tx.send(Err(OrchError::Io(format!("tick task: {e}"))));
                    return;
                }
            }
        }
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = stop_rx.await;
    });
    let server = tokio::spawn(async move { server.await });
    let outcome = done_rx
        .await
        .unwrap_or_else(|_| Err(OrchError::Io("the tick task ended".into())));
    let _ = stop_tx.send(());
    // idle keep-alive connections would hold a graceful shutdown open: give it a second
    if tokio::time::timeout(Duration::from_secs(1), server)
        .await
        .is_err()
    {
        // the runtime drops the remaining connections when it shuts down
    }
    ticker.abort();
    outcome
}
