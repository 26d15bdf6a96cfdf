//! The orchestrator's API from the worker's and operator's side (blocking reqwest), every
//! request to a worker endpoint signed as `auth` describes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::auth;
use super::server::{PollBody, RegisterBody, ReportBody, ResultBody, WorkerView};
use super::{now_ms, store::content_address};
use crate::core::error::{Classify, ErrorClass};
use crate::core::keys::Identity;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("orchestrator {url}: {reason}")]
    Network { url: String, reason: String },
    #[error("orchestrator {url}: HTTP {status} {kind}: {message}")]
    Refused {
        url: String,
        status: u16,
        kind: String,
        message: String,
    },
    #[error("orchestrator {url}: unexpected answer: {reason}")]
    Answer { url: String, reason: String },
}

impl ClientError {
    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn kind(&self) -> Option<&str> {
        match self {
            ClientError::Refused { kind, .. } => Some(kind),
            _ => None,
        }
    }
}

impl Classify for ClientError {
    fn class(&self) -> ErrorClass {
        match self {
            ClientError::Network { .. } => ErrorClass::Network,
            ClientError::Refused {
                status: 401 | 403, ..
            } => ErrorClass::Auth,
            ClientError::Refused { .. } | ClientError::Answer { .. } => ErrorClass::Remote,
        }
    }
}

/// A connection to an orchestrator: one URL, or several (an active one and its standbys,
/// `URL1,URL2`); a request that finds one dead (or a standby, 503) is sent to the next.
pub struct Client {
    bases: Vec<String>,
    current: AtomicUsize,
    http: reqwest::blocking::Client,
    job_id: String,
    /// How long to keep retrying a request the orchestrator does not answer (a restart).
    pub patience: Duration,
}

impl Client {
    /// Connects and reads the job id (`GET /v1/job`), which every signature covers.
    pub fn connect(base: &str) -> Result<(Self, serde_json::Value), ClientError> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| ClientError::Network {
                url: base.into(),
                reason: e.to_string(),
            })?;
        let bases: Vec<String> = base
            .split(',')
            .map(|b| b.trim().trim_end_matches('/').to_string())
            .filter(|b| !b.is_empty())
            .collect();
        if bases.is_empty() {
            return Err(ClientError::Network {
                url: base.into(),
                reason: "no orchestrator URL given".into(),
            });
        }
        let mut c = Client {
            bases,
            current: AtomicUsize::new(0),
            http,
            job_id: String::new(),
            patience: Duration::ZERO,
        };
        let job: serde_json::Value = c.get_json("/v1/job")?;
        c.job_id = job["job_id"].as_str().unwrap_or_default().to_string();
        Ok((c, job))
    }

    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    /// Sends the request `build` makes, again and again while no orchestrator can be reached,
    /// for up to `patience` (a signed request is signed afresh each time). A dead URL, or a
    /// standby's 503, moves on to the next URL; each URL is tried before giving up.
    fn send(
        &self,
        path: &str,
        build: impl Fn() -> reqwest::blocking::RequestBuilder,
    ) -> Result<reqwest::blocking::Response, ClientError> {
        let start = std::time::Instant::now();
        let mut tried = 0usize;
        loop {
            let failed = match build().send() {
                Ok(r) if r.status().as_u16() == 503 && self.bases.len() > 1 => Ok(r),
                Ok(r) => return Ok(r),
                // a reset mid-request (the orchestrator was killed) is retried too: every
                // request is signed afresh, and one the orchestrator already handled is
                // answered `duplicate`, which the worker accepts
                Err(e) if e.is_connect() || e.is_timeout() || e.is_request() => Err(e),
                Err(e) => return Err(self.net(path, e)),
            };
            self.current.fetch_add(1, Ordering::Relaxed);
            tried += 1;
            if tried.is_multiple_of(self.bases.len()) {
                if start.elapsed() >= self.patience {
                    return failed.map_err(|e| self.net(path, e));
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }

    fn url(&self, path: &str) -> String {
        let i = self.current.load(Ordering::Relaxed) % self.bases.len();
        format!("{}{path}", self.bases[i])
    }

    fn net(&self, path: &str, e: reqwest::Error) -> ClientError {
        ClientError::Network {
            url: self.url(path),
            reason: e.to_string(),
        }
    }

    fn check(&self, path: &str, r: reqwest::blocking::Response) -> Result<Vec<u8>, ClientError> {
        let status = r.status();
        let body = r.bytes().map_err(|e| self.net(path, e))?.to_vec();
        if status.is_success() {
            return Ok(body);
        }
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let e = &v["error"];
        Err(ClientError::Refused {
            url: self.url(path),
            status: status.as_u16(),
            kind: e["kind"].as_str().unwrap_or("unknown").into(),
            message: e["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned()),
        })
    }

    fn parse<T: DeserializeOwned>(&self, path: &str, body: &[u8]) -> Result<T, ClientError> {
        serde_json::from_slice(body).map_err(|e| ClientError::Answer {
            url: self.url(path),
            reason: e.to_string(),
        })
    }

    pub fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let r = self.send(path, || self.http.get(self.url(path)))?;
        let body = self.check(path, r)?;
        self.parse(path, &body)
    }

    /// Sends a signed request; `body` as given.
    pub fn signed(
        &self,
        key: &Identity,
        method: reqwest::Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, ClientError> {
        let r = self.send(path, || {
            let env = auth::sign(key, &self.job_id, method.as_str(), path, &body, now_ms());
            self.http
                .request(method.clone(), self.url(path))
                .header(auth::H_KEY, env.key)
                .header(auth::H_TIME, env.time_ms.to_string())
                .header(auth::H_NONCE, env.nonce)
                .header(auth::H_SIG, env.signature)
                .body(body.clone())
        })?;
        self.check(path, r)
    }

    fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        key: &Identity,
        path: &str,
        b: &B,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(b).expect("request bodies serialise");
        let got = self.signed(key, reqwest::Method::POST, path, body)?;
        self.parse(path, &got)
    }

    pub fn register(
        &self,
        key: &Identity,
        ring_addr: &str,
    ) -> Result<serde_json::Value, ClientError> {
        self.post(
            key,
            "/v1/register",
            &RegisterBody {
                ring_addr: ring_addr.into(),
            },
        )
    }

    pub fn poll(&self, key: &Identity) -> Result<WorkerView, ClientError> {
        self.post(key, "/v1/poll", &serde_json::json!({}))
    }

    /// A long poll: the orchestrator answers once this worker's view differs from the one
    /// tagged `seen`, or after `wait` (at most 30 s).
    pub fn poll_wait(
        &self,
        key: &Identity,
        seen: Option<&str>,
        wait: Duration,
    ) -> Result<WorkerView, ClientError> {
        let body = PollBody {
            seen: seen.map(str::to_string),
            wait_ms: wait.as_millis().min(u64::MAX as u128) as u64,
        };
        self.post(key, "/v1/poll", &body)
    }

    /// Uploads an object; returns its content address.
    pub fn put_object(&self, key: &Identity, bytes: Vec<u8>) -> Result<String, ClientError> {
        let addr = content_address(&bytes);
        self.signed(
            key,
            reqwest::Method::PUT,
            &format!("/v1/objects/{addr}"),
            bytes,
        )?;
        Ok(addr)
    }

    /// Downloads an object and checks it against its address.
    pub fn get_object(&self, addr: &str) -> Result<Vec<u8>, ClientError> {
        let path = format!("/v1/objects/{addr}");
        let r = self.send(&path, || self.http.get(self.url(&path)))?;
        let body = self.check(&path, r)?;
        if content_address(&body) != addr {
            return Err(ClientError::Answer {
                url: self.url(&path),
                reason: "the object does not match its content address".into(),
            });
        }
        Ok(body)
    }

    pub fn report(&self, key: &Identity, b: &ReportBody) -> Result<serde_json::Value, ClientError> {
        self.post(key, "/v1/report", b)
    }

    pub fn result(&self, key: &Identity, b: &ResultBody) -> Result<serde_json::Value, ClientError> {
        self.post(key, "/v1/result", b)
    }

    /// `POST /v1/validator`: the round as a validator sees it.
    pub fn validator_poll(
        &self,
        key: &Identity,
    ) -> Result<super::validator_api::ValidatorView, ClientError> {
        self.post(key, "/v1/validator", &serde_json::json!({}))
    }

    /// `POST /v1/verdict`: a signed report on one delta of the round.
    pub fn verdict(
        &self,
        key: &Identity,
        b: &super::validator_api::VerdictBody,
    ) -> Result<serde_json::Value, ClientError> {
        self.post(key, "/v1/verdict", b)
    }

    pub fn stop(&self, key: &Identity) -> Result<serde_json::Value, ClientError> {
        self.post(key, "/v1/stop", &serde_json::json!({}))
    }
}
