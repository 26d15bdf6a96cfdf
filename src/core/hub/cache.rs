//! The Hugging Face cache on disk, in the layout `huggingface_hub` reads and writes, so that a
//! model Python downloaded is found by gym and the other way round:
//!
//! ```text
//! {cache}/models--{owner}--{name}/            (datasets--… for datasets)
//!     blobs/{etag}                           file contents, named by the Hub's ETag: the
//!                                            sha256 of an LFS file, the git blob sha1 otherwise
//!     blobs/{etag}.incomplete                a download in progress (resumed from its length)
//!     refs/{revision}                        the commit a branch or tag pointed to (no newline)
//!     snapshots/{commit}/{path}              relative symlink to ../../blobs/{etag}
//! ```
//!
//! `{cache}` is `HF_HUB_CACHE`, else `HF_HOME/hub`, else `XDG_CACHE_HOME/huggingface/hub`,
//! else `~/.cache/huggingface/hub`: the same order as `huggingface_hub.constants`.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::HubError;
use crate::core::hub::RepoId;

/// A model or a dataset repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RepoType {
    Model,
    Dataset,
}

impl RepoType {
    /// `models` / `datasets`: the cache folder prefix and the API path segment.
    pub fn plural(self) -> &'static str {
        match self {
            RepoType::Model => "models",
            RepoType::Dataset => "datasets",
        }
    }

    /// What precedes `{repo}/resolve/…` in a download URL.
    pub fn url_prefix(self) -> &'static str {
        match self {
            RepoType::Model => "",
            RepoType::Dataset => "datasets/",
        }
    }
}

/// `OWNER/NAME[@REVISION]`, as given to `--model` or `--data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubRef {
    pub repo: RepoId,
    /// A branch, tag or commit; `main` when not given.
    pub revision: String,
}

impl HubRef {
    /// Parses `OWNER/NAME` or `OWNER/NAME@REVISION`; `None` when `s` is not of that shape.
    pub fn parse(s: &str) -> Option<HubRef> {
        let (id, rev) = match s.split_once('@') {
            Some((id, rev)) => (id, rev),
            None => (s, "main"),
        };
        let ok_rev = !rev.is_empty()
            && !rev
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == "..")
            && rev.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
        let repo = RepoId::parse(id).ok()?;
        ok_rev.then(|| HubRef {
            repo,
            revision: rev.to_string(),
        })
    }
}

impl std::fmt::Display for HubRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.revision == "main" {
            write!(f, "{}", self.repo)
        } else {
            write!(f, "{}@{}", self.repo, self.revision)
        }
    }
}

/// The cache root from the environment, in `huggingface_hub`'s order.
pub fn cache_root(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    let set = |k: &str| env(k).filter(|v| !v.is_empty());
    if let Some(c) = set("HF_HUB_CACHE").or_else(|| set("HUGGINGFACE_HUB_CACHE")) {
        return PathBuf::from(c);
    }
    hf_home(env).join("hub")
}

/// `HF_HOME`, else `XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`.
pub fn hf_home(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    let set = |k: &str| env(k).filter(|v| !v.is_empty());
    if let Some(h) = set("HF_HOME") {
        return PathBuf::from(h);
    }
    let xdg = set("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(set("HOME").unwrap_or_else(|| ".".into())).join(".cache"));
    xdg.join("huggingface")
}

/// A 40-hex commit id.
pub fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// How a blob's name says its content can be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtagKind {
    /// 64 hex digits: the sha256 of the content (LFS files).
    Sha256,
    /// 40 hex digits: the git blob id, sha1 of `blob {len}\0` + content (regular files).
    GitSha1,
    /// Anything else: only the size can be checked.
    Opaque,
}

impl EtagKind {
    pub fn of(etag: &str) -> EtagKind {
        let hex = etag.bytes().all(|b| b.is_ascii_hexdigit());
        match etag.len() {
            64 if hex => EtagKind::Sha256,
            40 if hex => EtagKind::GitSha1,
            _ => EtagKind::Opaque,
        }
    }
}

/// The hash an ETag names, computed incrementally over a file's bytes.
pub enum ContentHash {
    Sha256(Sha256),
    GitSha1(Sha1),
    None,
}

impl ContentHash {
    /// `size` is the full length (the git blob header holds it).
    pub fn new(kind: EtagKind, size: u64) -> ContentHash {
        match kind {
            EtagKind::Sha256 => ContentHash::Sha256(Sha256::new()),
            EtagKind::GitSha1 => {
                let mut h = Sha1::new();
                h.update(format!("blob {size}\0").as_bytes());
                ContentHash::GitSha1(h)
            }
            EtagKind::Opaque => ContentHash::None,
        }
    }

    pub fn update(&mut self, b: &[u8]) {
        match self {
            ContentHash::Sha256(h) => h.update(b),
            ContentHash::GitSha1(h) => h.update(b),
            ContentHash::None => {}
        }
    }

    /// The lowercase hex digest; `None` for an opaque ETag.
    pub fn finish(self) -> Option<String> {
        match self {
            ContentHash::Sha256(h) => Some(hex::encode(h.finalize())),
            ContentHash::GitSha1(h) => Some(hex::encode(h.finalize())),
            ContentHash::None => None,
        }
    }
}

/// Feeds `r` into `h`; returns the number of bytes read.
pub fn hash_reader(r: &mut impl Read, h: &mut ContentHash) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            return Ok(n);
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
}

/// Does the file at `path` hash to `etag`? `Ok(None)` for an opaque ETag.
pub fn blob_matches(path: &Path, etag: &str) -> io::Result<Option<bool>> {
    let kind = EtagKind::of(etag);
    if kind == EtagKind::Opaque {
        return Ok(None);
    }
    let mut f = fs::File::open(path)?;
    let size = f.metadata()?.len();
    let mut h = ContentHash::new(kind, size);
    hash_reader(&mut f, &mut h)?;
    Ok(Some(
        h.finish().as_deref() == Some(&etag.to_ascii_lowercase()),
    ))
}

pub(crate) fn io_err(path: &Path) -> impl Fn(io::Error) -> HubError + '_ {
    move |source| HubError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One repository's folder in the cache.
#[derive(Debug, Clone)]
pub struct RepoCache {
    pub dir: PathBuf,
}

impl RepoCache {
    pub fn new(root: &Path, kind: RepoType, repo: &RepoId) -> RepoCache {
        let folder = format!("{}--{}--{}", kind.plural(), repo.owner, repo.name);
        RepoCache {
            dir: root.join(folder),
        }
    }

    pub fn blob(&self, etag: &str) -> PathBuf {
        self.dir.join("blobs").join(etag)
    }

    pub fn incomplete(&self, etag: &str) -> PathBuf {
        self.dir.join("blobs").join(format!("{etag}.incomplete"))
    }

    pub fn snapshot(&self, commit: &str) -> PathBuf {
        self.dir.join("snapshots").join(commit)
    }

    fn ref_path(&self, revision: &str) -> PathBuf {
        self.dir.join("refs").join(revision)
    }

    /// The commit `revision` stands for in the cache: itself when it is a commit with a
    /// snapshot folder, else what `refs/{revision}` holds.
    pub fn commit_of(&self, revision: &str) -> Option<String> {
        if is_commit(revision) && self.snapshot(revision).is_dir() {
            return Some(revision.to_string());
        }
        let text = fs::read_to_string(self.ref_path(revision)).ok()?;
        let c = text.trim();
        is_commit(c).then(|| c.to_string())
    }

    /// Records `refs/{revision}` = `commit` (atomically; nothing for a commit revision).
    pub fn write_ref(&self, revision: &str, commit: &str) -> Result<(), HubError> {
        if revision == commit {
            return Ok(());
        }
        if self.commit_of(revision).as_deref() == Some(commit) {
            return Ok(());
        }
        let path = self.ref_path(revision);
        let dir = path.parent().unwrap_or(&self.dir);
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        crate::core::atomic::write_file(&path, commit.as_bytes(), true, None).map_err(|e| {
            HubError::Io {
                path: path.clone(),
                source: io::Error::other(e.to_string()),
            }
        })
    }

    /// The etag a snapshot entry's symlink points at, if it is one of ours (`…/blobs/{etag}`).
    pub fn linked_etag(&self, commit: &str, file: &str) -> Option<String> {
        let link = fs::read_link(self.snapshot(commit).join(file)).ok()?;
        let name = link.file_name()?.to_str()?.to_string();
        let parent = link.parent()?.file_name()?;
        (parent == "blobs").then_some(name)
    }

    /// Points `snapshots/{commit}/{file}` at `blobs/{etag}` with a relative symlink, replacing
    /// whatever was there by a rename (never a moment without an entry once one existed).
    pub fn link(&self, commit: &str, file: &str, etag: &str) -> Result<PathBuf, HubError> {
        let dst = self.snapshot(commit).join(file);
        let dir = dst.parent().unwrap_or(&self.dir).to_path_buf();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let depth = file.split('/').count() + 1; // up from snapshots/{commit}/{dirs…}
        let mut target = PathBuf::new();
        for _ in 0..depth {
            target.push("..");
        }
        target.push("blobs");
        target.push(etag);
        let tmp = dir.join(format!(
            ".gym-link-{}-{}",
            std::process::id(),
            dst.file_name().and_then(|n| n.to_str()).unwrap_or("f")
        ));
        let _ = fs::remove_file(&tmp);
        symlink(&target, &tmp).map_err(io_err(&tmp))?;
        fs::rename(&tmp, &dst).map_err(io_err(&dst))?;
        Ok(dst)
    }

    /// Every file of a snapshot, `/`-separated paths relative to it, sorted.
    pub fn snapshot_files(&self, commit: &str) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.snapshot(commit), "", &mut out);
        out.sort();
        out
    }
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".gym-link-") {
            continue;
        }
        let rel = format!("{prefix}{name}");
        let p = e.path();
        if p.is_dir() {
            walk(&p, &format!("{rel}/"), out);
        } else if p.exists() {
            out.push(rel);
        }
    }
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    // huggingface_hub copies blobs where symlinks are unavailable; so do we
    let blob = link.parent().unwrap_or(Path::new(".")).join(target);
    fs::copy(blob, link).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_refs() {
        let r = HubRef::parse("Qwen/Qwen3-0.6B").unwrap();
        assert_eq!(
            (r.repo.to_string(), r.revision.as_str()),
            ("Qwen/Qwen3-0.6B".into(), "main")
        );
        let r = HubRef::parse("openai/gsm8k@refs/convert/parquet").unwrap();
        assert_eq!(r.revision, "refs/convert/parquet");
        for bad in [
            "Qwen",
            "./x/y",
            "a/b@",
            "a/b@../x",
            "a/b/c",
            "/abs/path",
            "a/b@x y",
        ] {
            assert!(HubRef::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn cache_root_follows_huggingface_hub_order() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let e = env(&[("HF_HUB_CACHE", "/c"), ("HF_HOME", "/h"), ("HOME", "/u")]);
        assert_eq!(cache_root(&e), PathBuf::from("/c"));
        let e = env(&[("HF_HOME", "/h"), ("XDG_CACHE_HOME", "/x"), ("HOME", "/u")]);
        assert_eq!(cache_root(&e), PathBuf::from("/h/hub"));
        let e = env(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/u")]);
        assert_eq!(cache_root(&e), PathBuf::from("/x/huggingface/hub"));
        let e = env(&[("HOME", "/u")]);
        assert_eq!(cache_root(&e), PathBuf::from("/u/.cache/huggingface/hub"));
    }

    #[test]
    fn etags_check_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"hello\n").unwrap();
        // `git hash-object` of "hello\n" and `sha256sum`
        assert_eq!(
            blob_matches(&p, "ce013625030ba8dba906f756967f9e9ca394464a").unwrap(),
            Some(true)
        );
        assert_eq!(
            blob_matches(
                &p,
                "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
            )
            .unwrap(),
            Some(true)
        );
        assert_eq!(
            blob_matches(&p, "ce013625030ba8dba906f756967f9e9ca394464b").unwrap(),
            Some(false)
        );
        assert_eq!(blob_matches(&p, "W/abc").unwrap(), None);
    }

    #[test]
    fn links_are_relative_and_refs_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let rc = RepoCache::new(dir.path(), RepoType::Model, &RepoId::parse("o/n").unwrap());
        assert!(rc.dir.ends_with("models--o--n"));
        let commit = "a".repeat(40);
        fs::create_dir_all(rc.dir.join("blobs")).unwrap();
        fs::write(rc.blob("e1"), b"x").unwrap();
        let p = rc.link(&commit, "sub/dir/f.txt", "e1").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"x");
        assert_eq!(
            fs::read_link(&p).unwrap(),
            PathBuf::from("../../../../blobs/e1")
        );
        assert_eq!(
            rc.linked_etag(&commit, "sub/dir/f.txt").as_deref(),
            Some("e1")
        );
        assert_eq!(
            rc.snapshot_files(&commit),
            vec!["sub/dir/f.txt".to_string()]
        );
        assert_eq!(rc.commit_of("main"), None);
        rc.write_ref("main", &commit).unwrap();
        assert_eq!(
            fs::read_to_string(rc.dir.join("refs/main")).unwrap(),
            commit
        );
        assert_eq!(rc.commit_of("main").as_deref(), Some(commit.as_str()));
        assert_eq!(rc.commit_of(&commit).as_deref(), Some(commit.as_str()));
    }
}
