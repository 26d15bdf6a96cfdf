//! A client for the Kubo RPC API (`/api/v0/…`), as kubo and js-ipfs serve it.
//!
//! `add` posts a multipart body (one part named `file` per file or directory, file names
//! percent-encoded, directories typed `application/x-directory`) and reads the NDJSON answer,
//! one `{"Name", "Hash", "Size"}` object per entry; `Size` is a string in kubo and a number in
//! js-ipfs. Every returned CID is compared with the one computed locally.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::blocking::multipart::{Form, Part};

use super::add::{self, AddError, Entry};
use super::cid::CidVersion;
use super::unixfs::{CHUNK_SIZE, NoBlocks};
use crate::core::error::{Classify, ErrorClass};
use crate::core::net::{self, NetError, Retry};

#[derive(Debug, thiserror::Error)]
pub enum IpfsApiError {
    #[error(transparent)]
    Add(#[from] AddError),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("{url}: the node reported an error: {message}")]
    Node { url: String, message: String },
    #[error(
        "{name}: the node computed {remote}, gym computed {local}; refusing to report a CID that does not match"
    )]
    CidMismatch {
        name: String,
        local: String,
        remote: String,
    },
    #[error("{url}: the node's answer has no entry for {name}")]
    Missing { url: String, name: String },
    #[error("reading {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl Classify for IpfsApiError {
    fn class(&self) -> ErrorClass {
        match self {
            IpfsApiError::Add(e) => e.class(),
            IpfsApiError::Net(e) => e.class(),
            IpfsApiError::Node { .. } | IpfsApiError::Missing { .. } => ErrorClass::Remote,
            IpfsApiError::CidMismatch { .. } => ErrorClass::Checksum,
            IpfsApiError::Io { .. } => ErrorClass::Io,
        }
    }
}

/// A Kubo RPC endpoint.
pub struct Kubo {
    base: String,
    client: reqwest::blocking::Client,
    retry: Retry,
}

/// Told the bytes sent so far in the current attempt.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// One line of the `add` answer.
#[derive(Debug, serde::Deserialize)]
struct AddLine {
    #[serde(rename = "Name", default)]
    name: Option<String>,
    #[serde(rename = "Hash", default)]
    hash: Option<String>,
    #[serde(rename = "Size", default)]
    size: Option<serde_json::Value>,
    #[serde(rename = "Message", default)]
    message: Option<String>,
    #[serde(rename = "Type", default)]
    kind: Option<String>,
}

/// An entry the node added, checked against the local computation.
#[derive(Debug, Clone)]
pub struct Added {
    pub entry: Entry,
    /// `Size` as the node reported it (cumulative DAG size), when it did.
    pub node_size: Option<u64>,
}

/// Percent-encodes all but RFC 3986 unreserved characters; both kubo (`url.QueryUnescape`) and
/// js-ipfs (`decodeURIComponent`) decode this back exactly.
fn encode_name(name: &str) -> String {
    let mut s = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

struct CountingReader<R> {
    inner: R,
    sent: Arc<AtomicU64>,
    progress: Progress,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let t = self.sent.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        (self.progress)(t);
        Ok(n)
    }
}

fn size_of(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

impl Kubo {
    pub fn new(base: &str, retry: Retry) -> Result<Self, NetError> {
        Ok(Kubo {
            base: base.trim_end_matches('/').to_string(),
            client: net::client()?,
            retry,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `POST /api/v0/add` of a file or directory tree, pinned. Computes the CIDs locally first,
    /// then uploads, then checks that the node's CIDs are the same.
    pub fn add(
        &self,
        root: &Path,
        version: CidVersion,
        progress: Progress,
    ) -> Result<Vec<Added>, IpfsApiError> {
        let local = add::add_path(root, version, &mut NoBlocks, &mut |_| {})?;
        let files = add::walk(root)?;
        let mut url = format!(
            "{}/api/v0/add?pin=true&chunker=size-{CHUNK_SIZE}&raw-leaves={}",
            self.base,
            version == CidVersion::V1
        );
        if version == CidVersion::V1 {
            url.push_str("&cid-version=1&cid-base=base32");
        }
        let resp = net::send(&self.retry, &url, || {
            let sent = Arc::new(AtomicU64::new(0));
            let mut form = Form::new().percent_encode_noop();
            for (name, path, is_dir) in &files {
                let part = if *is_dir {
                    Part::bytes(Vec::new()).mime_str("application/x-directory")
                } else {
                    let f = std::fs::File::open(path)?;
                    let len = f.metadata()?.len();
                    let r = CountingReader {
                        inner: f,
                        sent: sent.clone(),
                        progress: progress.clone(),
                    };
                    Part::reader_with_length(r, len).mime_str("application/octet-stream")
                };
                let part = part.map_err(io::Error::other)?.file_name(encode_name(name));
                form = form.part("file", part);
            }
            Ok(self.client.post(&url).multipart(form))
        })?;
        let shown = net::display_url(&url);
        let resp = net::check(resp, "")?;
        let trailer_err = resp
            .headers()
            .get("x-stream-error")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = resp.text().map_err(|e| NetError::BadAnswer {
            url: shown.clone(),
            reason: e.to_string(),
        })?;
        let mut lines = Vec::new();
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            let line: AddLine = serde_json::from_str(l).map_err(|e| NetError::BadAnswer {
                url: shown.clone(),
                reason: format!("{e} in {l:?}"),
            })?;
            if line.kind.as_deref() == Some("error")
                || (line.hash.is_none() && line.message.is_some())
            {
                return Err(IpfsApiError::Node {
                    url: shown,
                    message: line.message.unwrap_or_default(),
                });
            }
            lines.push(line);
        }
        if let Some(m) = trailer_err.filter(|m| !m.is_empty()) {
            return Err(IpfsApiError::Node {
                url: shown,
                message: m,
            });
        }
        let mut out = Vec::with_capacity(local.len());
        for e in local {
            let line = lines
                .iter()
                .rev()
                .find(|l| l.hash.is_some() && l.name.as_deref() == Some(e.name.as_str()))
                .ok_or_else(|| IpfsApiError::Missing {
                    url: shown.clone(),
                    name: e.name.clone(),
                })?;
            let remote = line.hash.clone().unwrap_or_default();
            if remote != e.cid.to_string() {
                return Err(IpfsApiError::CidMismatch {
                    name: e.name.clone(),
                    local: e.cid.to_string(),
                    remote,
                });
            }
            let node_size = line.size.as_ref().and_then(size_of);
            out.push(Added {
                entry: e,
                node_size,
            });
        }
        Ok(out)
    }

    /// `POST /api/v0/cat?arg=CID`: the bytes of a file.
    pub fn cat(&self, cid: &str) -> Result<Vec<u8>, NetError> {
        let url = format!("{}/api/v0/cat?arg={}", self.base, encode_name(cid));
        let resp = net::check(
            net::send(&self.retry, &url, || Ok(self.client.post(&url)))?,
            "",
        )?;
        let shown = net::display_url(&url);
        let b = resp.bytes().map_err(|e| NetError::BadAnswer {
            url: shown,
            reason: e.to_string(),
        })?;
        Ok(b.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_encoded_for_both_decoders() {
        assert_eq!(encode_name("tree/a b+c.txt"), "tree%2Fa%20b%2Bc.txt");
        assert_eq!(encode_name("é"), "%C3%A9");
    }

    #[test]
    fn both_answer_shapes_parse() {
        // kubo: Size as a string; js-ipfs: a number, and a Mode.
        let kubo: AddLine =
            serde_json::from_str(r#"{"Name":"a","Hash":"Qm1","Size":"20"}"#).unwrap();
        let js: AddLine =
            serde_json::from_str(r#"{"Name":"a","Hash":"Qm1","Size":20,"Mode":"0644"}"#).unwrap();
        assert_eq!(kubo.size.as_ref().and_then(size_of), Some(20));
        assert_eq!(js.size.as_ref().and_then(size_of), Some(20));
        let err: AddLine =
            serde_json::from_str(r#"{"Message":"no space","Code":0,"Type":"error"}"#).unwrap();
        assert_eq!(err.kind.as_deref(), Some("error"));
    }
}
