//! Downloads from the Hugging Face Hub into the shared cache ([`super::cache`]), the way
//! `huggingface_hub`'s `hf_hub_download` / `snapshot_download` do:
//!
//! 1. `GET {endpoint}/api/{models|datasets}/{repo}/revision/{revision}`: the commit (`sha`) a
//!    revision stands for and the repository's files (`siblings[].rfilename`).
//! 2. Per needed file not yet in the cache: `HEAD {endpoint}/[datasets/]{repo}/resolve/{commit}/{path}`
//!    without following an absolute redirect. The answer's `X-Linked-Etag` (LFS files: the
//!    sha256) or `ETag` (the git blob id) names the blob, `X-Linked-Size` or `Content-Length`
//!    its size, `X-Repo-Commit` the commit, `Location` where the bytes are (a CDN for LFS).
//!    Redirects on the Hub's own host (a renamed repository) are followed.
//! 3. `GET` the bytes into `blobs/{etag}.incomplete`, from its current length with
//!    `Range: bytes={n}-` when one exists (a cut connection is resumed the same way, up to the
//!    retry count), hashing as they arrive. A blob is renamed into place only when its size
//!    and hash match the ETag; then `snapshots/{commit}/{path}` is linked to it and
//!    `refs/{revision}` records the commit.
//!
//! The token (`HF_TOKEN`, else the `token` file under `HF_HOME`) goes to the endpoint's host
//! only, never to a redirect target elsewhere. With `HF_HUB_OFFLINE=1`, or when the endpoint
//! cannot be reached, only the cache is used. Files already in the cache are checked against
//! their blob's name (sha256 or git sha1) before use; a corrupted blob is removed (and
//! downloaded again when online), so the cache never keeps bytes that do not match their name.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::HeaderMap;

use super::cache::{self, ContentHash, EtagKind, HubRef, RepoCache, RepoType, io_err};
use super::{HubError, Token, quote};
use crate::core::error::{Classify, ErrorClass};
use crate::core::net::{self, NetError, Retry};

const READ_HINT: &str =
    " (check HF_TOKEN: a private or gated repository needs a token that may read it)";

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error(
        "{kind} repository {repo} not found on {endpoint} (or it is private and HF_TOKEN may not read it): {message}"
    )]
    RepoNotFound {
        kind: &'static str,
        repo: String,
        endpoint: String,
        message: String,
    },
    #[error("{repo}: revision {revision:?} not found: {message}")]
    RevisionNotFound {
        repo: String,
        revision: String,
        message: String,
    },
    #[error("{repo}: no file {path:?} at {revision}")]
    EntryNotFound {
        repo: String,
        revision: String,
        path: String,
    },
    #[error(
        "{repo}@{revision}: {what} is not in the Hugging Face cache {cache} and the Hub cannot be used ({why})"
    )]
    NotCached {
        repo: String,
        revision: String,
        what: String,
        cache: PathBuf,
        why: String,
    },
    #[error(
        "{repo}: {path}: the downloaded bytes hash to {got}, not to the ETag {expected} (discarded; nothing was cached)"
    )]
    Corrupt {
        repo: String,
        path: String,
        expected: String,
        got: String,
    },
    #[error(
        "{repo}: {path}: the cached blob {blob} does not match its name (removed from the cache; run again without HF_HUB_OFFLINE to download it)"
    )]
    CorruptCache {
        repo: String,
        path: String,
        blob: PathBuf,
    },
    #[error(
        "{repo}: {path}: the download stopped at {got} of {expected} bytes after {attempts} attempts (kept in {partial}; the next run resumes it)"
    )]
    Truncated {
        repo: String,
        path: String,
        got: u64,
        expected: u64,
        attempts: u32,
        partial: PathBuf,
    },
    #[error("{url}: the Hub's answer lacks {what}")]
    MissingHeader { url: String, what: &'static str },
    #[error("{repo}: {problem}")]
    Layout { repo: String, problem: String },
    /// The caller's choice of files failed (no such split, several configurations).
    #[error("{0}")]
    Selection(String),
}

impl Classify for FetchError {
    fn class(&self) -> ErrorClass {
        match self {
            FetchError::Net(e) => e.class(),
            FetchError::Hub(e) => e.class(),
            FetchError::RepoNotFound { .. }
            | FetchError::RevisionNotFound { .. }
            | FetchError::EntryNotFound { .. }
            | FetchError::MissingHeader { .. } => ErrorClass::Remote,
            FetchError::NotCached { .. } => ErrorClass::Network,
            FetchError::Corrupt { .. }
            | FetchError::CorruptCache { .. }
            | FetchError::Truncated { .. } => ErrorClass::Checksum,
            FetchError::Layout { .. } => ErrorClass::Malformed,
            FetchError::Selection(_) => ErrorClass::Usage,
        }
    }
}

/// Where to download from and cache to, resolved once from the environment.
#[derive(Debug)]
pub struct HubSettings {
    pub endpoint: String,
    pub token: Option<Token>,
    pub cache: PathBuf,
    pub offline: bool,
    pub retry: Retry,
}

impl HubSettings {
    /// `HF_ENDPOINT`, `HF_TOKEN` (else `HUGGING_FACE_HUB_TOKEN`, else the file `HF_TOKEN_PATH`
    /// or `HF_HOME/token`), `HF_HUB_CACHE` / `HF_HOME`, `HF_HUB_OFFLINE` (1, true, yes, on).
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> HubSettings {
        let set = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let token_file = set("HF_TOKEN_PATH")
            .map(PathBuf::from)
            .unwrap_or_else(|| cache::hf_home(env).join("token"));
        let token = set("HF_TOKEN")
            .or_else(|| set("HUGGING_FACE_HUB_TOKEN"))
            .or_else(|| fs::read_to_string(token_file).ok())
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .map(Token::new);
        let offline = set("HF_HUB_OFFLINE").is_some_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        });
        HubSettings {
            endpoint: set("HF_ENDPOINT")
                .unwrap_or_else(|| super::DEFAULT_ENDPOINT.into())
                .trim_end_matches('/')
                .to_string(),
            token,
            cache: cache::cache_root(env),
            offline,
            retry: Retry::default(),
        }
    }
}

/// Told about the bytes of each file as they arrive. Implemented by the command layer.
pub trait Progress: Sync {
    /// A download of `size` bytes begins, `done` of them already on disk (a resume).
    fn start(&self, path: &str, size: u64, done: u64);
    fn advance(&self, bytes: u64);
    fn finish(&self, path: &str);
}

/// Files downloaded at the same time (`snapshot_download`'s default `max_workers`).
pub const WORKERS: usize = 8;

/// No progress display.
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _: &str, _: u64, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self, _: &str) {}
}

/// How a file came to be in the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Already in the cache (and its blob checked).
    Cached,
    /// Downloaded in full.
    Downloaded,
    /// Downloaded from where an earlier, interrupted download stopped.
    Resumed,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FetchedFile {
    pub path: String,
    pub size: u64,
    pub etag: String,
    pub origin: Origin,
}

/// A repository revision materialized in the cache.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Snapshot {
    pub repo: String,
    pub kind: RepoType,
    pub revision: String,
    pub commit: String,
    /// `{cache}/{models|datasets}--…/snapshots/{commit}`.
    pub dir: PathBuf,
    /// Only the cache was used (offline, or the Hub unreachable).
    pub offline: bool,
    pub files: Vec<FetchedFile>,
}

/// What the HEAD of a `resolve` URL said.
#[derive(Debug, Clone)]
struct FileMeta {
    etag: String,
    size: u64,
    commit: Option<String>,
    location: String,
}

/// A session with the Hub (or only its cache) for one repository revision.
pub struct Fetcher<'a> {
    s: &'a HubSettings,
    kind: RepoType,
    r: &'a HubRef,
    rc: RepoCache,
    head: Client,
    get: Client,
    progress: &'a dyn Progress,
    /// Set once the revision is resolved.
    commit: String,
    /// Why only the cache is used; `None` when online.
    offline: Option<String>,
    files: Vec<FetchedFile>,
}

fn client(follow: bool) -> Result<Client, NetError> {
    let policy = if follow {
        reqwest::redirect::Policy::limited(10)
    } else {
        reqwest::redirect::Policy::none()
    };
    Client::builder()
        .user_agent(concat!("gym/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .timeout(Duration::from_secs(60)) // per read of a body in the blocking client
        .redirect(policy)
        .build()
        .map_err(|e| NetError::Client(e.to_string()))
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.to_string())
}

/// `W/"abc"` → `abc`.
fn clean_etag(s: &str) -> String {
    s.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_string()
}

/// A relative `/`-separated path with no empty, `.` or `..` segment and no backslash: one that
/// stays inside the snapshot folder.
fn safe_repo_path(p: &str) -> bool {
    !p.is_empty()
        && !p.contains('\\')
        && p.split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

fn quote_path(p: &str) -> String {
    p.split('/').map(quote).collect::<Vec<_>>().join("/")
}

fn host_of(url: &str) -> Option<String> {
    reqwest::Url::parse(url).ok().map(|u| {
        format!(
            "{}:{:?}",
            u.host_str().unwrap_or(""),
            u.port_or_known_default()
        )
    })
}

impl<'a> Fetcher<'a> {
    /// Resolves `r`'s revision to a commit: through the Hub, or the cache when offline or when
    /// the Hub cannot be reached. Returns the fetcher and the repository's file list.
    pub fn open(
        s: &'a HubSettings,
        kind: RepoType,
        r: &'a HubRef,
        progress: &'a dyn Progress,
    ) -> Result<(Fetcher<'a>, Vec<String>), FetchError> {
        let mut f = Fetcher {
            s,
            kind,
            r,
            rc: RepoCache::new(&s.cache, kind, &r.repo),
            head: client(false)?,
            get: client(true)?,
            progress,
            commit: String::new(),
            offline: None,
            files: Vec::new(),
        };
        let listing = if s.offline {
            f.use_cache("HF_HUB_OFFLINE is set".into())?
        } else {
            // with the revision in the cache, one failed connection is enough to use it
            let retry = match f.rc.commit_of(&r.revision) {
                Some(_) => Retry {
                    attempts: 1,
                    ..s.retry
                },
                None => s.retry,
            };
            match f.revision_info(&retry) {
                Ok((commit, files)) => {
                    f.commit = commit;
                    files
                }
                Err(FetchError::Net(NetError::Unreachable { url, reason, .. })) => {
                    f.use_cache(format!("{url} unreachable: {reason}"))?
                }
                Err(e) => return Err(e),
            }
        };
        Ok((f, listing))
    }

    fn use_cache(&mut self, why: String) -> Result<Vec<String>, FetchError> {
        let Some(commit) = self.rc.commit_of(&self.r.revision) else {
            return Err(FetchError::NotCached {
                repo: self.r.repo.to_string(),
                revision: self.r.revision.clone(),
                what: "the revision".into(),
                cache: self.s.cache.clone(),
                why,
            });
        };
        self.offline = Some(why);
        let files = self.rc.snapshot_files(&commit);
        self.commit = commit;
        Ok(files)
    }

    fn authed(&self, rb: RequestBuilder, url: &str) -> RequestBuilder {
        match &self.s.token {
            Some(t) if host_of(url) == host_of(&self.s.endpoint) => rb.bearer_auth(t.0.as_str()),
            _ => rb,
        }
    }

    fn repo_name(&self) -> String {
        self.r.repo.to_string()
    }

    /// Maps a failed answer from the Hub onto the error the user needs.
    fn hub_error(&self, resp: Response, path: Option<&str>) -> FetchError {
        let code = header(resp.headers(), "x-error-code").unwrap_or_default();
        let status = resp.status();
        let url = net::display_url(resp.url().as_str());
        let message = net::server_message(resp);
        match code.as_str() {
            "RepoNotFound" => FetchError::RepoNotFound {
                kind: match self.kind {
                    RepoType::Model => "model",
                    RepoType::Dataset => "dataset",
                },
                repo: self.repo_name(),
                endpoint: self.s.endpoint.clone(),
                message,
            },
            "RevisionNotFound" => FetchError::RevisionNotFound {
                repo: self.repo_name(),
                revision: self.r.revision.clone(),
                message,
            },
            "EntryNotFound" => FetchError::EntryNotFound {
                repo: self.repo_name(),
                revision: self.r.revision.clone(),
                path: path.unwrap_or("").to_string(),
            },
            _ if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN => {
                NetError::Auth {
                    url,
                    status: status.as_u16(),
                    message,
                    hint: READ_HINT,
                }
                .into()
            }
            _ => NetError::Rejected {
                url,
                status: status.as_u16(),
                message,
            }
            .into(),
        }
    }

    /// `GET /api/{kind}/{repo}/revision/{rev}` → (commit, files).
    fn revision_info(&self, retry: &Retry) -> Result<(String, Vec<String>), FetchError> {
        #[derive(serde::Deserialize)]
        struct Sibling {
            rfilename: String,
        }
        #[derive(serde::Deserialize)]
        struct Info {
            sha: String,
            #[serde(default)]
            siblings: Vec<Sibling>,
        }
        let url = format!(
            "{}/api/{}/{}/revision/{}",
            self.s.endpoint,
            self.kind.plural(),
            self.r.repo,
            quote(&self.r.revision)
        );
        let resp = net::send(retry, &url, || Ok(self.authed(self.get.get(&url), &url)))?;
        if !resp.status().is_success() {
            return Err(self.hub_error(resp, None));
        }
        let info: Info = net::json(resp)?;
        if !cache::is_commit(&info.sha) {
            return Err(NetError::BadAnswer {
                url,
                reason: format!("sha {:?} is not a commit id", info.sha),
            }
            .into());
        }
        Ok((
            info.sha,
            info.siblings.into_iter().map(|s| s.rfilename).collect(),
        ))
    }

    fn resolve_url(&self, path: &str) -> String {
        format!(
            "{}/{}{}/resolve/{}/{}",
            self.s.endpoint,
            self.kind.url_prefix(),
            self.r.repo,
            self.commit,
            quote_path(path)
        )
    }

    /// HEAD of a resolve URL, following redirects on the Hub's host only.
    fn head_meta(&self, path: &str) -> Result<FileMeta, FetchError> {
        let mut url = self.resolve_url(path);
        for _ in 0..5 {
            let u = url.clone();
            let resp = net::send(&self.s.retry, &u, || {
                Ok(self
                    .authed(self.head.head(&u), &u)
                    .header("accept-encoding", "identity"))
            })?;
            let st = resp.status();
            let h = resp.headers().clone();
            let location = header(&h, "location");
            if st.is_redirection() {
                let loc = location.ok_or(FetchError::MissingHeader {
                    url: net::display_url(&u),
                    what: "Location",
                })?;
                let target = reqwest::Url::parse(&u)
                    .and_then(|b| b.join(&loc))
                    .map_err(|e| NetError::BadAnswer {
                        url: net::display_url(&u),
                        reason: format!("Location {loc:?}: {e}"),
                    })?
                    .to_string();
                if host_of(&target) == host_of(&u) {
                    url = target; // a renamed repository, on the Hub itself
                    continue;
                }
                // a CDN: the metadata is in this answer, and the token stays here
                return self.meta_from(&u, &h, target);
            }
            if !st.is_success() {
                return Err(self.hub_error(resp, Some(path)));
            }
            return self.meta_from(&u, &h, u.clone());
        }
        Err(NetError::BadAnswer {
            url: net::display_url(&url),
            reason: "more than 5 relative redirects".into(),
        }
        .into())
    }

    fn meta_from(
        &self,
        url: &str,
        h: &HeaderMap,
        location: String,
    ) -> Result<FileMeta, FetchError> {
        let missing = |what| FetchError::MissingHeader {
            url: net::display_url(url),
            what,
        };
        let etag = header(h, "x-linked-etag")
            .or_else(|| header(h, "etag"))
            .map(|e| clean_etag(&e))
            // it names a file in blobs/: hex on the Hub, never a path
            .filter(|e| {
                !e.is_empty()
                    && e.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
            .ok_or_else(|| missing("ETag"))?;
        let size = header(h, "x-linked-size")
            .or_else(|| header(h, "content-length"))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| missing("X-Linked-Size or Content-Length"))?;
        Ok(FileMeta {
            etag,
            size,
            commit: header(h, "x-repo-commit"),
            location,
        })
    }

    /// The etag of a file the snapshot already holds with a blob that matches its name.
    /// A blob that does not match is removed.
    fn cached(&self, path: &str) -> Result<Option<FetchedFile>, FetchError> {
        let Some(etag) = self.rc.linked_etag(&self.commit, path) else {
            return Ok(None);
        };
        let blob = self.rc.blob(&etag);
        let Ok(md) = fs::metadata(&blob) else {
            return Ok(None);
        };
        match cache::blob_matches(&blob, &etag).map_err(io_err(&blob))? {
            Some(false) => {
                fs::remove_file(&blob).map_err(io_err(&blob))?;
                if self.offline.is_some() {
                    return Err(FetchError::CorruptCache {
                        repo: self.repo_name(),
                        path: path.into(),
                        blob,
                    });
                }
                Ok(None)
            }
            _ => Ok(Some(FetchedFile {
                path: path.into(),
                size: md.len(),
                etag,
                origin: Origin::Cached,
            })),
        }
    }

    /// Makes `path` present in the snapshot: from the cache, or downloaded.
    pub fn fetch(&mut self, path: &str) -> Result<PathBuf, FetchError> {
        let f = self.fetch_one(path)?;
        self.files.push(f);
        Ok(self.rc.snapshot(&self.commit).join(path))
    }

    /// Fetches the files not fetched yet, up to [`WORKERS`] at a time (as `snapshot_download`
    /// does); the first failure in `paths` order is returned.
    pub fn fetch_all(&mut self, paths: &[String]) -> Result<(), FetchError> {
        let todo: Vec<&String> = paths
            .iter()
            .filter(|p| !self.files.iter().any(|f| &f.path == *p))
            .collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results = std::sync::Mutex::new(Vec::new());
        let this = &*self;
        std::thread::scope(|sc| {
            for _ in 0..WORKERS.min(todo.len()) {
                sc.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let Some(p) = todo.get(i) else { break };
                        let r = this.fetch_one(p);
                        let failed = r.is_err();
                        results
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((i, r));
                        if failed {
                            next.store(todo.len(), std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
        results.sort_by_key(|(i, _)| *i);
        for (_, r) in results {
            self.files.push(r?);
        }
        Ok(())
    }

    fn fetch_one(&self, path: &str) -> Result<FetchedFile, FetchError> {
        if !safe_repo_path(path) {
            return Err(FetchError::Layout {
                repo: self.repo_name(),
                problem: format!("refusing the file name {path:?} (it leaves the snapshot folder)"),
            });
        }
        if let Some(f) = self.cached(path)? {
            return Ok(f);
        }
        if let Some(why) = &self.offline {
            return Err(FetchError::NotCached {
                repo: self.repo_name(),
                revision: self.r.revision.clone(),
                what: format!("{path:?}"),
                cache: self.s.cache.clone(),
                why: why.clone(),
            });
        }
        let meta = self.head_meta(path)?;
        if let Some(c) = &meta.commit
            && c != &self.commit
        {
            return Err(NetError::BadAnswer {
                url: net::display_url(&self.resolve_url(path)),
                reason: format!(
                    "X-Repo-Commit {c} differs from the resolved {}",
                    self.commit
                ),
            }
            .into());
        }
        let origin = self.download(path, &meta)?;
        self.rc.link(&self.commit, path, &meta.etag)?;
        Ok(FetchedFile {
            path: path.into(),
            size: meta.size,
            etag: meta.etag,
            origin,
        })
    }

    /// Is the blob for `meta` in the cache, complete and matching its name?
    fn have_blob(&self, meta: &FileMeta) -> Result<bool, FetchError> {
        let blob = self.rc.blob(&meta.etag);
        Ok(fs::metadata(&blob).is_ok_and(|m| m.len() == meta.size)
            && cache::blob_matches(&blob, &meta.etag).map_err(io_err(&blob))? != Some(false))
    }

    /// Downloads a blob into `blobs/{etag}` through `.incomplete`, resuming, verifying.
    fn download(&self, path: &str, meta: &FileMeta) -> Result<Origin, FetchError> {
        let blobs = self.rc.dir.join("blobs");
        fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
        let _lock = self.lock(&meta.etag)?;
        if self.have_blob(meta)? {
            return Ok(Origin::Cached); // another file or process brought it meanwhile
        }
        let part = self.rc.incomplete(&meta.etag);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&part)
            .map_err(io_err(&part))?;
        let mut have = file.metadata().map_err(io_err(&part))?.len();
        if have > meta.size {
            file.set_len(0).map_err(io_err(&part))?;
            have = 0;
        }
        let resumed = have > 0;
        let kind = EtagKind::of(&meta.etag);
        let mut hash = ContentHash::new(kind, meta.size);
        file.seek(SeekFrom::Start(0)).map_err(io_err(&part))?;
        cache::hash_reader(&mut (&file).take(have), &mut hash).map_err(io_err(&part))?;
        self.progress.start(path, meta.size, have);
        let attempts = self.s.retry.attempts.max(1);
        let mut attempt = 0;
        while have < meta.size && attempt < attempts {
            attempt += 1;
            if attempt > 1 {
                std::thread::sleep(self.s.retry.first_delay.min(Duration::from_secs(2)));
            }
            match self.get_range(&meta.location, have, path)? {
                None => {}
                Some(resp) => {
                    if resp.status() == StatusCode::OK && have > 0 {
                        // the server ignored the range: start over
                        file.set_len(0).map_err(io_err(&part))?;
                        have = 0;
                        hash = ContentHash::new(kind, meta.size);
                    }
                    have += self.stream(resp, &mut file, &part, &mut hash, meta.size - have)?;
                }
            }
        }
        self.progress.finish(path);
        drop(file);
        if have < meta.size {
            return Err(FetchError::Truncated {
                repo: self.repo_name(),
                path: path.into(),
                got: have,
                expected: meta.size,
                attempts,
                partial: part,
            });
        }
        if let Some(got) = hash.finish()
            && got != meta.etag.to_ascii_lowercase()
        {
            let _ = fs::remove_file(&part);
            return Err(FetchError::Corrupt {
                repo: self.repo_name(),
                path: path.into(),
                expected: meta.etag.clone(),
                got,
            });
        }
        let blob = self.rc.blob(&meta.etag);
        fs::rename(&part, &blob).map_err(io_err(&blob))?;
        Ok(if resumed {
            Origin::Resumed
        } else {
            Origin::Downloaded
        })
    }

    /// The lock `huggingface_hub` takes for the same blob (`{cache}/.locks/{folder}/{etag}.lock`).
    fn lock(&self, etag: &str) -> Result<File, FetchError> {
        let folder = self.rc.dir.file_name().unwrap_or_default();
        let dir = self.s.cache.join(".locks").join(folder);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let p = dir.join(format!("{etag}.lock"));
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(io_err(&p))?;
        f.lock().map_err(io_err(&p))?;
        Ok(f)
    }

    /// `GET` from byte `from`; `None` when the connection failed (to be retried).
    fn get_range(&self, url: &str, from: u64, path: &str) -> Result<Option<Response>, FetchError> {
        let mut rb = self.authed(self.get.get(url), url);
        if from > 0 {
            rb = rb.header("range", format!("bytes={from}-"));
        }
        let resp = match rb.send() {
            Ok(r) => r,
            Err(e) if e.is_connect() || e.is_timeout() || e.is_request() || e.is_body() => {
                return Ok(None);
            }
            Err(e) => {
                return Err(NetError::Unreachable {
                    url: net::display_url(url),
                    attempts: 1,
                    reason: e.without_url().to_string(),
                }
                .into());
            }
        };
        let st = resp.status();
        if st.is_server_error() || st == StatusCode::TOO_MANY_REQUESTS {
            return Ok(None);
        }
        if st == StatusCode::OK || (st == StatusCode::PARTIAL_CONTENT && from > 0) {
            return Ok(Some(resp));
        }
        Err(self.hub_error(resp, Some(path)))
    }

    /// Appends the body (at most `left` bytes) to `file`; returns the bytes written. A broken
    /// connection ends the stream early; what arrived is kept for the next attempt.
    fn stream(
        &self,
        mut resp: Response,
        file: &mut File,
        part: &Path,
        hash: &mut ContentHash,
        left: u64,
    ) -> Result<u64, FetchError> {
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        while n < left {
            let want = buf.len().min((left - n) as usize);
            let k = match resp.read(&mut buf[..want]) {
                Ok(0) | Err(_) => break,
                Ok(k) => k,
            };
            file.write_all(&buf[..k]).map_err(io_err(part))?;
            hash.update(&buf[..k]);
            self.progress.advance(k as u64);
            n += k as u64;
        }
        file.flush().map_err(io_err(part))?;
        Ok(n)
    }

    /// Records the revision's commit in `refs/` and returns what was fetched.
    pub fn finish(self) -> Result<Snapshot, FetchError> {
        if self.offline.is_none() {
            self.rc.write_ref(&self.r.revision, &self.commit)?;
        }
        Ok(Snapshot {
            repo: self.r.repo.to_string(),
            kind: self.kind,
            revision: self.r.revision.clone(),
            dir: self.rc.snapshot(&self.commit),
            commit: self.commit,
            offline: self.offline.is_some(),
            files: self.files,
        })
    }

    pub fn commit(&self) -> &str {
        &self.commit
    }
}

/// The files of a model folder that training needs, present in `listing`: `config.json`, the
/// generation config and tokenizer files when they exist, and the weights: the shards
/// `model.safetensors.index.json` names (read through `fetch`), else `model.safetensors`.
pub fn model_files(
    repo: &str,
    listing: &[String],
    fetch: &mut dyn FnMut(&str) -> Result<PathBuf, FetchError>,
) -> Result<Vec<String>, FetchError> {
    let has = |f: &str| listing.iter().any(|l| l == f);
    let layout = |problem: String| FetchError::Layout {
        repo: repo.into(),
        problem,
    };
    if !has("config.json") {
        return Err(layout(
            "no config.json (is this a model repository?)".into(),
        ));
    }
    let mut files: Vec<String> = [
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "chat_template.jinja",
        "chat_template.json",
    ]
    .into_iter()
    .filter(|f| has(f))
    .map(String::from)
    .collect();
    const INDEX: &str = "model.safetensors.index.json";
    if has(INDEX) {
        let p = fetch(INDEX)?;
        let text = fs::read_to_string(&p).map_err(io_err(&p))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| layout(format!("{INDEX} is not JSON: {e}")))?;
        let Some(map) = v["weight_map"].as_object() else {
            return Err(layout(format!("{INDEX} has no weight_map object")));
        };
        let mut shards: Vec<String> = map
            .values()
            .filter_map(|s| s.as_str().map(String::from))
            .collect();
        shards.sort();
        shards.dedup();
        for s in &shards {
            if s.contains("..") || s.starts_with('/') {
                return Err(layout(format!("{INDEX} names the shard {s:?}")));
            }
        }
        files.push(INDEX.into());
        files.extend(shards);
    } else if has("model.safetensors") {
        files.push("model.safetensors".into());
    } else {
        return Err(layout(
            "no model.safetensors or model.safetensors.index.json (only safetensors weights are read)"
                .into(),
        ));
    }
    Ok(files)
}

/// Resolves a model by hub id: the revision's commit, then only the files training needs,
/// from the cache or downloaded. The snapshot folder is an ordinary model folder.
pub fn model(s: &HubSettings, r: &HubRef, progress: &dyn Progress) -> Result<Snapshot, FetchError> {
    let (mut f, listing) = Fetcher::open(s, RepoType::Model, r, progress)?;
    let repo = r.repo.to_string();
    let files = model_files(&repo, &listing, &mut |p| f.fetch(p))?;
    f.fetch_all(&files)?;
    f.finish()
}

/// Picks the files to fetch from a repository's file list, or says why none fit.
pub type SelectFiles<'a> = dyn Fn(&[String]) -> Result<Vec<String>, String> + 'a;

/// Resolves a dataset by hub id and fetches the files `select` picks from its listing.
pub fn dataset(
    s: &HubSettings,
    r: &HubRef,
    progress: &dyn Progress,
    select: &SelectFiles<'_>,
) -> Result<Snapshot, FetchError> {
    let (mut f, listing) = Fetcher::open(s, RepoType::Dataset, r, progress)?;
    let files = select(&listing).map_err(FetchError::Selection)?;
    f.fetch_all(&files)?;
    f.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_from_env() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_str().unwrap().to_string();
        fs::write(dir.path().join("token"), "hf_file\n").unwrap();
        let h = home.clone();
        let s = HubSettings::from_env(&move |k| match k {
            "HF_HOME" => Some(h.clone()),
            "HF_HUB_OFFLINE" => Some("True".into()),
            "HF_ENDPOINT" => Some("http://127.0.0.1:9/".into()),
            _ => None,
        });
        assert_eq!(s.endpoint, "http://127.0.0.1:9");
        assert_eq!(s.token.as_ref().map(|t| t.0.as_str()), Some("hf_file"));
        assert!(s.offline);
        assert_eq!(s.cache, dir.path().join("hub"));
        let h = home.clone();
        let s = HubSettings::from_env(&move |k| match k {
            "HF_HOME" => Some(h.clone()),
            "HF_TOKEN" => Some("hf_env".into()),
            "HF_HUB_OFFLINE" => Some("0".into()),
            _ => None,
        });
        assert_eq!(s.token.as_ref().map(|t| t.0.as_str()), Some("hf_env"));
        assert!(!s.offline);
        assert_eq!(s.endpoint, "https://huggingface.co");
    }

    #[test]
    fn repo_paths_stay_in_the_snapshot() {
        for ok in ["config.json", "main/train-00000-of-00001.parquet", "a/.b/c"] {
            assert!(safe_repo_path(ok), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a\\b",
            "a/",
        ] {
            assert!(!safe_repo_path(bad), "{bad}");
        }
    }

    #[test]
    fn etags_are_cleaned() {
        assert_eq!(clean_etag("W/\"abc\""), "abc");
        assert_eq!(clean_etag("\"abc\""), "abc");
        assert_eq!(quote_path("data/train 1.parquet"), "data/train%201.parquet");
    }

    #[test]
    fn model_files_follow_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let idx = dir.path().join("i.json");
        fs::write(
            &idx,
            r#"{"weight_map": {"a": "m-00002.safetensors", "b": "m-00001.safetensors", "c": "m-00001.safetensors"}}"#,
        )
        .unwrap();
        let listing: Vec<String> = [
            "config.json",
            "model.safetensors.index.json",
            "m-00001.safetensors",
            "m-00002.safetensors",
            "pytorch_model.bin",
            "tokenizer.json",
            "README.md",
        ]
        .map(String::from)
        .to_vec();
        let got = model_files("o/n", &listing, &mut |_| Ok(idx.clone())).unwrap();
        assert_eq!(
            got,
            [
                "config.json",
                "tokenizer.json",
                "model.safetensors.index.json",
                "m-00001.safetensors",
                "m-00002.safetensors"
            ]
        );
        let e = model_files("o/n", &listing[4..], &mut |_| Ok(idx.clone())).unwrap_err();
        assert!(e.to_string().contains("no config.json"), "{e}");
    }
}
