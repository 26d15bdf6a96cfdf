//! Uploads to the Hugging Face Hub through its commit API, the way `huggingface_hub`'s
//! `upload_folder` does:
//!
//! 1. `GET  {endpoint}/api/models/{repo}`: does the repository exist? If not,
//!    `POST {endpoint}/api/repos/create` `{"name", "organization", "private"}` (409 = exists).
//! 2. `POST {endpoint}/api/models/{repo}/preupload/{revision}` `{"files": [{"path", "sample",
//!    "size"}]}` (sample: base64 of the first 512 bytes, at most 256 files a call): the Hub
//!    answers `uploadMode` `"regular"` or `"lfs"` per file, and `shouldIgnore`.
//! 3. For LFS files, `POST {endpoint}/{repo}.git/info/lfs/objects/batch` (Git LFS batch API,
//!    `application/vnd.git-lfs+json`, transfers `basic` and `multipart`, sha256 oids). An object
//!    without `actions` is already stored and is skipped. `basic`: one `PUT` of the bytes to the
//!    `upload` href. `multipart`: the `upload` header holds `chunk_size` and one URL per part
//!    (`"00001"`, …); each part is `PUT`, its `ETag` kept, then the parts are completed by
//!    `POST {"oid", "parts": [{"partNumber", "etag"}]}` to the `upload` href. Then `verify`, when
//!    given: `POST {"oid", "size"}`.
//! 4. `POST {endpoint}/api/models/{repo}/commit/{revision}` with NDJSON lines: a `header`
//!    (`summary`, `description`), a `file` per regular file (base64 content) and an `lfsFile`
//!    per LFS file (`algo` sha256, `oid`, `size`). The answer carries `commitOid`, `commitUrl`.
//!
//! Every request to the Hub carries `Authorization: Bearer <token>`; presigned upload URLs get
//! no token. The token is never part of an error or a report.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use reqwest::blocking::{Body, Client, RequestBuilder};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::core::error::{Classify, ErrorClass};
use crate::core::net::{self, NetError, Retry};

pub mod cache;
pub mod download;

pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
const LFS_CONTENT_TYPE: &str = "application/vnd.git-lfs+json";
const SAMPLE_LEN: usize = 512;
const PREUPLOAD_BATCH: usize = 256;
const LFS_BATCH: usize = 256;
const AUTH_HINT: &str = " (check HF_TOKEN: it must be a token with write access to the repository)";

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("reading {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{input:?} is not a repository id (expected OWNER/NAME)")]
    BadRepoId { input: String },
    #[error("no token: set HF_TOKEN to a Hugging Face token with write access")]
    NoToken,
    #[error("{path}: nothing to upload (no files)")]
    Empty { path: PathBuf },
    #[error("{path}: the Hub refused the LFS object {oid}: {code} {message}")]
    LfsObject {
        path: String,
        oid: String,
        code: i64,
        message: String,
    },
    #[error("{path}: the Hub's answer is missing {what}")]
    Incomplete { path: String, what: String },
    #[error(
        "{path}: multipart upload has {got} part URLs for {expected} parts of {chunk_size} bytes"
    )]
    PartCount {
        path: String,
        expected: u64,
        got: u64,
        chunk_size: u64,
    },
}

impl Classify for HubError {
    fn class(&self) -> ErrorClass {
        match self {
            HubError::Net(e) => e.class(),
            HubError::Io { .. } => ErrorClass::Io,
            HubError::BadRepoId { .. } => ErrorClass::Other,
            HubError::NoToken => ErrorClass::Auth,
            HubError::Empty { .. } => ErrorClass::Io,
            HubError::LfsObject { .. }
            | HubError::Incomplete { .. }
            | HubError::PartCount { .. } => ErrorClass::Remote,
        }
    }
}

/// `OWNER/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoId {
    pub owner: String,
    pub name: String,
}

impl RepoId {
    pub fn parse(s: &str) -> Result<RepoId, HubError> {
        let ok = |p: &str| {
            !p.is_empty()
                && p.len() <= 96
                && !p.starts_with(['.', '-'])
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        match s.split_once('/') {
            Some((o, n)) if ok(o) && ok(n) => Ok(RepoId {
                owner: o.into(),
                name: n.into(),
            }),
            _ => Err(HubError::BadRepoId { input: s.into() }),
        }
    }
}

impl std::fmt::Display for RepoId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// A Hub token. `Debug` does not show it.
#[derive(Clone)]
pub struct Token(Zeroizing<String>);

impl Token {
    pub fn new(s: String) -> Token {
        Token(Zeroizing::new(s))
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// What to upload where.
#[derive(Debug)]
pub struct HubOptions {
    pub endpoint: String,
    pub token: Option<Token>,
    pub repo: RepoId,
    pub revision: String,
    pub private: bool,
    pub summary: String,
    pub description: String,
    pub retry: Retry,
}

/// A local file to upload.
#[derive(Debug, Clone)]
pub struct LocalFile {
    pub path_in_repo: String,
    pub local: PathBuf,
    pub size: u64,
    pub sha256: [u8; 32],
    sample: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadMode {
    Regular,
    Lfs,
}

/// How one file's bytes reached the Hub (its `transfer` in reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transfer {
    /// LFS bytes sent in one PUT.
    Basic,
    /// LFS bytes sent in parts.
    Multipart,
    /// A regular file, sent inside the commit.
    Inline,
    /// The Hub already had the LFS object.
    Skipped,
    /// The Hub said to ignore the file.
    Ignored,
}

impl Transfer {
    /// Whether LFS bytes were uploaded.
    pub fn sent_lfs(self) -> bool {
        matches!(self, Transfer::Basic | Transfer::Multipart)
    }
}

/// What happened to one file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileReport {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    pub mode: UploadMode,
    pub transfer: Transfer,
}

/// The outcome of an upload.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HubReport {
    pub repo: String,
    pub revision: String,
    pub repo_url: String,
    pub created_repo: bool,
    pub commit_oid: String,
    pub commit_url: String,
    pub files: Vec<FileReport>,
}

/// Told the bytes uploaded so far.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

fn io_err(path: &Path) -> impl Fn(io::Error) -> HubError + '_ {
    move |source| HubError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Percent-encodes a path segment (a revision such as `refs/pr/1` becomes one segment).
fn quote(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// The files of `src` as they will be named in the repository: a file by its name, a folder's
/// files by their path below it (`/`-separated), leaving out `.git/` and `.cache/huggingface/`
/// as `upload_folder` does. Hashes each file (sha256) on the way.
pub fn collect(src: &Path) -> Result<Vec<LocalFile>, HubError> {
    let meta = std::fs::metadata(src).map_err(io_err(src))?;
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    if meta.is_file() {
        let name = src
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("file")
            .to_string();
        found.push((name, src.to_path_buf()));
    } else {
        walk(src, "", &mut found)?;
    }
    if found.is_empty() {
        return Err(HubError::Empty {
            path: src.to_path_buf(),
        });
    }
    found.sort();
    found.into_iter().map(|(p, l)| hash_file(p, l)).collect()
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) -> Result<(), HubError> {
    for e in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let e = e.map_err(io_err(dir))?;
        let path = e.path();
        let Ok(name) = e.file_name().into_string() else {
            return Err(HubError::Io {
                path,
                source: io::Error::other("file name is not UTF-8"),
            });
        };
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        if rel == ".git" || rel == ".cache/huggingface" {
            continue;
        }
        let meta = std::fs::metadata(&path).map_err(io_err(&path))?;
        if meta.is_dir() {
            walk(&path, &rel, out)?;
        } else if meta.is_file() {
            out.push((rel, path));
        }
    }
    Ok(())
}

fn hash_file(path_in_repo: String, local: PathBuf) -> Result<LocalFile, HubError> {
    let mut f = File::open(&local).map_err(io_err(&local))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut sample = Vec::new();
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io_err(&local))?;
        if n == 0 {
            break;
        }
        if sample.len() < SAMPLE_LEN {
            let take = (SAMPLE_LEN - sample.len()).min(n);
            sample.extend_from_slice(&buf[..take]);
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok(LocalFile {
        path_in_repo,
        local,
        size,
        sha256: h.finalize().into(),
        sample,
    })
}

#[derive(Debug, Deserialize)]
struct PreuploadAnswer {
    files: Vec<PreuploadFile>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PreuploadFile {
    path: String,
    upload_mode: String,
    #[serde(default)]
    should_ignore: bool,
}

#[derive(Debug, Deserialize)]
struct BatchAnswer {
    #[serde(default)]
    transfer: Option<String>,
    objects: Vec<BatchObject>,
}

#[derive(Debug, Deserialize)]
struct BatchObject {
    oid: String,
    #[serde(default)]
    actions: Option<BatchActions>,
    #[serde(default)]
    error: Option<BatchObjectError>,
}

#[derive(Debug, Deserialize)]
struct BatchObjectError {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
}

#[derive(Debug, Deserialize)]
struct BatchActions {
    upload: Option<Action>,
    verify: Option<Action>,
}

#[derive(Debug, Deserialize)]
struct Action {
    href: String,
    #[serde(default)]
    header: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CommitAnswer {
    commit_oid: String,
    #[serde(default)]
    commit_url: Option<String>,
}

fn header_str(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A session with the Hub.
struct Hub<'a> {
    o: &'a HubOptions,
    client: Client,
    sent: Arc<AtomicU64>,
    progress: Progress,
}

impl Hub<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.o.endpoint.trim_end_matches('/'), path)
    }

    fn authed(&self, rb: RequestBuilder) -> RequestBuilder {
        match &self.o.token {
            Some(t) => rb.bearer_auth(t.0.as_str()),
            None => rb,
        }
    }

    /// A JSON request to the Hub, with auth, retried, checked.
    fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<reqwest::blocking::Response, NetError> {
        let resp = net::send(&self.o.retry, url, || {
            let mut rb = self.authed(self.client.request(method.clone(), url));
            if let Some(b) = body {
                rb = rb
                    .header("content-type", "application/json")
                    .body(b.to_string());
            }
            Ok(rb)
        })?;
        net::check(resp, AUTH_HINT)
    }

    /// Creates the repository when it does not exist; true when created.
    fn ensure_repo(&self) -> Result<bool, HubError> {
        let url = self.url(&format!("/api/models/{}", self.o.repo));
        let resp = net::send(&self.o.retry, &url, || {
            Ok(self.authed(self.client.get(&url)))
        })?;
        if resp.status() != reqwest::StatusCode::NOT_FOUND {
            net::check(resp, AUTH_HINT)?;
            return Ok(false);
        }
        let url = self.url("/api/repos/create");
        let body = json!({"name": self.o.repo.name, "organization": self.o.repo.owner, "private": self.o.private});
        let resp = net::send(&self.o.retry, &url, || {
            Ok(self
                .authed(self.client.post(&url))
                .header("content-type", "application/json")
                .body(body.to_string()))
        })?;
        if resp.status() == reqwest::StatusCode::CONFLICT {
            return Ok(false);
        }
        net::check(resp, AUTH_HINT)?;
        Ok(true)
    }

    fn preupload(&self, files: &[LocalFile]) -> Result<Vec<(UploadMode, bool)>, HubError> {
        let url = self.url(&format!(
            "/api/models/{}/preupload/{}",
            self.o.repo,
            quote(&self.o.revision)
        ));
        let mut modes = Vec::with_capacity(files.len());
        for batch in files.chunks(PREUPLOAD_BATCH) {
            let body = json!({"files": batch.iter().map(|f| json!({
                "path": f.path_in_repo,
                "sample": base64::engine::general_purpose::STANDARD.encode(&f.sample),
                "size": f.size,
            })).collect::<Vec<_>>()});
            let ans: PreuploadAnswer =
                net::json(self.call(reqwest::Method::POST, &url, Some(&body))?)?;
            for f in batch {
                let a = ans
                    .files
                    .iter()
                    .find(|a| a.path == f.path_in_repo)
                    .ok_or_else(|| HubError::Incomplete {
                        path: f.path_in_repo.clone(),
                        what: "an upload mode (preupload)".into(),
                    })?;
                let mode = if a.upload_mode == "lfs" {
                    UploadMode::Lfs
                } else {
                    UploadMode::Regular
                };
                modes.push((mode, a.should_ignore));
            }
        }
        Ok(modes)
    }

    fn body_of(&self, path: &Path, offset: u64, len: u64) -> io::Result<Body> {
        let mut f = File::open(path)?;
        f.seek(SeekFrom::Start(offset))?;
        let r = Counting {
            inner: f.take(len),
            sent: self.sent.clone(),
            progress: self.progress.clone(),
        };
        Ok(Body::sized(r, len))
    }

    /// Sends one file's LFS bytes; returns the transfer used.
    fn lfs_upload(
        &self,
        f: &LocalFile,
        transfer: &str,
        actions: BatchActions,
    ) -> Result<Transfer, HubError> {
        let oid = hex::encode(f.sha256);
        let Some(upload) = actions.upload else {
            return Ok(Transfer::Skipped);
        };
        let chunk = upload.header.get("chunk_size").and_then(header_str);
        let used = if let (Some(cs), true) = (chunk, transfer == "multipart") {
            let chunk_size: u64 =
                cs.parse()
                    .ok()
                    .filter(|c| *c > 0)
                    .ok_or_else(|| HubError::Incomplete {
                        path: f.path_in_repo.clone(),
                        what: format!("a valid chunk_size (got {cs:?})"),
                    })?;
            let mut parts: Vec<(u64, String)> = upload
                .header
                .iter()
                .filter_map(|(k, v)| Some((k.parse::<u64>().ok()?, header_str(v)?)))
                .collect();
            parts.sort();
            let expected = f.size.div_ceil(chunk_size).max(1);
            if parts.len() as u64 != expected
                || parts
                    .iter()
                    .enumerate()
                    .any(|(i, (n, _))| *n != i as u64 + 1)
            {
                return Err(HubError::PartCount {
                    path: f.path_in_repo.clone(),
                    expected,
                    got: parts.len() as u64,
                    chunk_size,
                });
            }
            let mut etags = Vec::with_capacity(parts.len());
            for (n, part_url) in &parts {
                let offset = (n - 1) * chunk_size;
                let len = chunk_size.min(f.size - offset);
                let base = self.sent.load(Ordering::Relaxed);
                let resp = net::send(&self.o.retry, part_url, || {
                    self.sent.store(base, Ordering::Relaxed);
                    Ok(self
                        .client
                        .put(part_url)
                        .body(self.body_of(&f.local, offset, len)?))
                })?;
                let resp = net::check(resp, "")?;
                let etag = resp
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
                    .ok_or_else(|| HubError::Incomplete {
                        path: f.path_in_repo.clone(),
                        what: format!("the ETag of part {n}"),
                    })?;
                etags.push(json!({"partNumber": n, "etag": etag}));
            }
            let body = json!({"oid": oid, "parts": etags}).to_string();
            let resp = net::send(&self.o.retry, &upload.href, || {
                Ok(self
                    .client
                    .post(&upload.href)
                    .header("accept", LFS_CONTENT_TYPE)
                    .header("content-type", LFS_CONTENT_TYPE)
                    .body(body.clone()))
            })?;
            net::check(resp, "")?;
            Transfer::Multipart
        } else {
            let base = self.sent.load(Ordering::Relaxed);
            let resp = net::send(&self.o.retry, &upload.href, || {
                self.sent.store(base, Ordering::Relaxed);
                Ok(self
                    .client
                    .put(&upload.href)
                    .body(self.body_of(&f.local, 0, f.size)?))
            })?;
            net::check(resp, "")?;
            Transfer::Basic
        };
        if let Some(v) = actions.verify {
            let body = json!({"oid": oid, "size": f.size});
            let resp = net::send(&self.o.retry, &v.href, || {
                let mut rb = self
                    .authed(self.client.post(&v.href))
                    .header("content-type", "application/json");
                for (k, val) in &v.header {
                    if let Some(s) = header_str(val) {
                        rb = rb.header(k.as_str(), s);
                    }
                }
                Ok(rb.body(body.to_string()))
            })?;
            net::check(resp, AUTH_HINT)?;
        }
        Ok(used)
    }

    fn lfs(&self, files: &[&LocalFile]) -> Result<Vec<Transfer>, HubError> {
        let url = self.url(&format!("/{}.git/info/lfs/objects/batch", self.o.repo));
        let mut out = Vec::with_capacity(files.len());
        for batch in files.chunks(LFS_BATCH) {
            let body = json!({
                "operation": "upload",
                "transfers": ["basic", "multipart"],
                "objects": batch.iter().map(|f| json!({"oid": hex::encode(f.sha256), "size": f.size})).collect::<Vec<_>>(),
                "hash_algo": "sha256",
                "ref": {"name": self.o.revision},
            })
            .to_string();
            let resp = net::send(&self.o.retry, &url, || {
                Ok(self
                    .authed(self.client.post(&url))
                    .header("accept", LFS_CONTENT_TYPE)
                    .header("content-type", LFS_CONTENT_TYPE)
                    .body(body.clone()))
            })?;
            let ans: BatchAnswer = net::json(net::check(resp, AUTH_HINT)?)?;
            let transfer = ans.transfer.unwrap_or_else(|| "basic".into());
            let mut objects = ans.objects;
            for f in batch {
                let oid = hex::encode(f.sha256);
                let i = objects.iter().position(|o| o.oid == oid).ok_or_else(|| {
                    HubError::Incomplete {
                        path: f.path_in_repo.clone(),
                        what: format!("LFS object {oid} (batch)"),
                    }
                })?;
                let obj = objects.swap_remove(i);
                if let Some(e) = obj.error {
                    return Err(HubError::LfsObject {
                        path: f.path_in_repo.clone(),
                        oid,
                        code: e.code,
                        message: e.message,
                    });
                }
                out.push(match obj.actions {
                    None => Transfer::Skipped,
                    Some(a) => self.lfs_upload(f, &transfer, a)?,
                });
            }
        }
        Ok(out)
    }

    fn commit(&self, files: &[(LocalFile, UploadMode)]) -> Result<CommitAnswer, HubError> {
        let url = self.url(&format!(
            "/api/models/{}/commit/{}",
            self.o.repo,
            quote(&self.o.revision)
        ));
        let mut body = String::new();
        body.push_str(
            &json!({"key": "header", "value": {"summary": self.o.summary, "description": self.o.description}})
                .to_string(),
        );
        body.push('\n');
        for (f, mode) in files {
            let line = match mode {
                UploadMode::Regular => {
                    let bytes = std::fs::read(&f.local).map_err(io_err(&f.local))?;
                    let content = base64::engine::general_purpose::STANDARD.encode(&bytes);
                    json!({"key": "file", "value": {"content": content, "path": f.path_in_repo, "encoding": "base64"}})
                }
                UploadMode::Lfs => json!({"key": "lfsFile", "value": {
                    "path": f.path_in_repo, "algo": "sha256", "oid": hex::encode(f.sha256), "size": f.size,
                }}),
            };
            body.push_str(&line.to_string());
            body.push('\n');
        }
        let resp = net::send(&self.o.retry, &url, || {
            Ok(self
                .authed(self.client.post(&url))
                .header("content-type", "application/x-ndjson")
                .body(body.clone()))
        })?;
        Ok(net::json(net::check(resp, AUTH_HINT)?)?)
    }
}

struct Counting<R> {
    inner: R,
    sent: Arc<AtomicU64>,
    progress: Progress,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let t = self.sent.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        (self.progress)(t);
        Ok(n)
    }
}

/// Uploads `files` (from [`collect`]) in one commit.
pub fn upload(
    files: Vec<LocalFile>,
    o: &HubOptions,
    progress: Progress,
) -> Result<HubReport, HubError> {
    if o.token.is_none() {
        return Err(HubError::NoToken);
    }
    let hub = Hub {
        o,
        client: net::client()?,
        sent: Arc::new(AtomicU64::new(0)),
        progress,
    };
    let created_repo = hub.ensure_repo()?;
    let modes = hub.preupload(&files)?;
    let lfs: Vec<&LocalFile> = files
        .iter()
        .zip(&modes)
        .filter(|(_, (m, ign))| *m == UploadMode::Lfs && !ign)
        .map(|(f, _)| f)
        .collect();
    let mut lfs_transfers = hub.lfs(&lfs)?.into_iter();
    let mut reports = Vec::with_capacity(files.len());
    let mut committed = Vec::with_capacity(files.len());
    for (f, (mode, ignore)) in files.into_iter().zip(modes) {
        let transfer = if ignore {
            Transfer::Ignored
        } else if mode == UploadMode::Lfs {
            lfs_transfers.next().unwrap_or(Transfer::Skipped)
        } else {
            Transfer::Inline
        };
        reports.push(FileReport {
            path: f.path_in_repo.clone(),
            size: f.size,
            sha256: hex::encode(f.sha256),
            mode,
            transfer,
        });
        if !ignore {
            committed.push((f, mode));
        }
    }
    let ans = hub.commit(&committed)?;
    let repo_url = hub.url(&format!("/{}", o.repo));
    let commit_url = ans
        .commit_url
        .unwrap_or_else(|| format!("{repo_url}/commit/{}", ans.commit_oid));
    Ok(HubReport {
        repo: o.repo.to_string(),
        revision: o.revision.clone(),
        repo_url,
        created_repo,
        commit_oid: ans.commit_oid,
        commit_url,
        files: reports,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids() {
        assert!(RepoId::parse("gym-org/qwen-delta").is_ok());
        for bad in ["noslash", "a/b/c", "/x", "x/", "a/.hidden", "a b/c"] {
            assert!(RepoId::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(quote("refs/pr/1"), "refs%2Fpr%2F1");
    }

    #[test]
    fn token_debug_is_redacted() {
        assert_eq!(
            format!("{:?}", Token::new("hf_secret".into())),
            "Token(<redacted>)"
        );
    }
}
