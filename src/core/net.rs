//! HTTP plumbing shared by the IPFS and Hugging Face clients: one blocking client, retries with
//! exponential backoff on connection errors and 5xx answers, and typed errors that carry the URL
//! and the server's own message, never a credential.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder, Response};

use crate::core::error::{Classify, ErrorClass};

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{url}: unreachable after {attempts} attempts: {reason}")]
    Unreachable {
        url: String,
        attempts: u32,
        reason: String,
    },
    #[error("{url}: server error {status} after {attempts} attempts: {message}")]
    Server {
        url: String,
        status: u16,
        attempts: u32,
        message: String,
    },
    #[error("{url}: authentication refused ({status}): {message}{hint}")]
    Auth {
        url: String,
        status: u16,
        message: String,
        hint: &'static str,
    },
    #[error("{url}: request rejected ({status}): {message}")]
    Rejected {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url}: unexpected answer: {reason}")]
    BadAnswer { url: String, reason: String },
    #[error("setting up the HTTP client: {0}")]
    Client(String),
}

impl Classify for NetError {
    fn class(&self) -> ErrorClass {
        match self {
            NetError::Unreachable { .. } | NetError::Server { .. } => ErrorClass::Network,
            NetError::Auth { .. } => ErrorClass::Auth,
            NetError::Rejected { .. } | NetError::BadAnswer { .. } => ErrorClass::Remote,
            NetError::Client(_) => ErrorClass::Other,
        }
    }
}

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Total attempts, at least 1.
    pub attempts: u32,
    /// Delay before the second attempt; doubles each time, capped at 30 s.
    pub first_delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 5,
            first_delay: Duration::from_millis(500),
        }
    }
}

impl Retry {
    fn delay(&self, attempt: u32) -> Duration {
        let d = self.first_delay.saturating_mul(1u32 << attempt.min(16));
        d.min(Duration::from_secs(30))
    }
}

/// The client gym uses everywhere: rustls, a user agent, connect timeout, no overall timeout
/// (uploads of large models take long).
pub fn client() -> Result<Client, NetError> {
    Client::builder()
        .user_agent(concat!("gym/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .timeout(None)
        .build()
        .map_err(|e| NetError::Client(e.to_string()))
}

/// The server's own explanation from an error answer: `X-Error-Message` (the Hub), a JSON
/// `error` / `Message` / `message` field (the Hub, Kubo), else the start of the body.
pub fn server_message(resp: Response) -> String {
    let header = resp
        .headers()
        .get("x-error-message")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(h) = header {
        return h;
    }
    let status = resp.status();
    let text = resp.text().unwrap_or_default();
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
        for k in ["error", "Message", "message"] {
            if let Some(s) = v.get(k).and_then(|m| m.as_str()) {
                return s.to_string();
            }
        }
    }
    let t = text.trim();
    if t.is_empty() {
        return status
            .canonical_reason()
            .unwrap_or("no explanation")
            .to_string();
    }
    t.chars().take(300).collect()
}

/// Strips any query (a presigned URL's signature) from a URL before it goes into a message.
pub fn display_url(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_string()
}

/// Sends the request `make` builds, again after a backoff when the connection fails or the
/// server answers 5xx (or 429). Other answers are returned as they are, for [`check`].
/// `make` is called once per attempt so that a body can be rebuilt (reopened files).
pub fn send(
    retry: &Retry,
    url: &str,
    mut make: impl FnMut() -> Result<RequestBuilder, std::io::Error>,
) -> Result<Response, NetError> {
    let shown = display_url(url);
    let attempts = retry.attempts.max(1);
    let mut attempt = 0;
    loop {
        let req =
            make().map_err(|e| NetError::Client(format!("preparing request to {shown}: {e}")))?;
        attempt += 1;
        let last = attempt >= attempts;
        match req.send() {
            Ok(resp) => {
                let st = resp.status();
                if (st.is_server_error() || st == StatusCode::TOO_MANY_REQUESTS) && !last {
                    drop(resp);
                } else if st.is_server_error() || st == StatusCode::TOO_MANY_REQUESTS {
                    return Err(NetError::Server {
                        url: shown,
                        status: st.as_u16(),
                        attempts,
                        message: server_message(resp),
                    });
                } else {
                    return Ok(resp);
                }
            }
            Err(e) => {
                if last || !(e.is_connect() || e.is_timeout() || e.is_request() || e.is_body()) {
                    let mut causes = String::new();
                    let mut src = std::error::Error::source(&e);
                    while let Some(s) = src {
                        causes.push_str(&format!(": {s}"));
                        src = s.source();
                    }
                    let reason = format!("{}{causes}", e.without_url());
                    return Err(NetError::Unreachable {
                        url: shown,
                        attempts: attempt,
                        reason,
                    });
                }
            }
        }
        std::thread::sleep(retry.delay(attempt - 1));
    }
}

/// Turns a non-success answer into a typed error; `auth_hint` is appended to 401/403 messages.
pub fn check(resp: Response, auth_hint: &'static str) -> Result<Response, NetError> {
    let st = resp.status();
    if st.is_success() {
        return Ok(resp);
    }
    let url = display_url(resp.url().as_str());
    let message = server_message(resp);
    if st == StatusCode::UNAUTHORIZED || st == StatusCode::FORBIDDEN {
        return Err(NetError::Auth {
            url,
            status: st.as_u16(),
            message,
            hint: auth_hint,
        });
    }
    Err(NetError::Rejected {
        url,
        status: st.as_u16(),
        message,
    })
}

/// Reads a JSON answer.
pub fn json<T: serde::de::DeserializeOwned>(resp: Response) -> Result<T, NetError> {
    let url = display_url(resp.url().as_str());
    let text = resp.text().map_err(|e| NetError::BadAnswer {
        url: url.clone(),
        reason: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| NetError::BadAnswer {
        url,
        reason: format!("{e} in {:?}", text.chars().take(200).collect::<String>()),
    })
}
