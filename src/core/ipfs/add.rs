//! `ipfs add` offline: the CIDs of a file or a directory tree, computed locally.
//!
//! Directories follow `ipfs add -r` with kubo's defaults: entries sorted by name, hidden entries
//! (names starting with `.`) left out as without `--hidden`, no HAMT sharding (a directory whose
//! links would pass kubo's 256 KiB sharding threshold is refused rather than mis-addressed).

use std::fs::{self, File};
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use super::cid::{Cid, CidVersion};
use super::unixfs::{self, BlockSink};
use crate::core::error::{Classify, ErrorClass};

#[derive(Debug, thiserror::Error)]
pub enum AddError {
    #[error("reading {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {what} cannot be added (only regular files and directories)")]
    NotFileOrDir { path: PathBuf, what: &'static str },
    #[error("{path}: file name is not UTF-8")]
    NonUtf8Name { path: PathBuf },
    #[error(
        "{path}: directory too large ({bytes} bytes of links; IPFS would shard it, which gym does not do)"
    )]
    NeedsSharding { path: PathBuf, bytes: usize },
}

impl Classify for AddError {
    fn class(&self) -> ErrorClass {
        match self {
            AddError::Io { .. } => ErrorClass::Io,
            AddError::NotFileOrDir { .. }
            | AddError::NonUtf8Name { .. }
            | AddError::NeedsSharding { .. } => ErrorClass::Unsupported,
        }
    }
}

/// One file or directory of an import, in the order `ipfs add` reports them (children before
/// their directory; the last entry is the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the parent of the root, with `/` separators (the root's own name first,
    /// as `ipfs add -r` names them).
    pub name: String,
    /// Where it is on disk.
    pub path: PathBuf,
    pub cid: Cid,
    /// File bytes (for a directory: bytes of all files below).
    pub size: u64,
    /// Serialized size of all blocks, the `Tsize` of a link to it.
    pub dag_size: u64,
    pub is_dir: bool,
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> AddError + '_ {
    move |source| AddError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn kind(ft: &fs::FileType) -> &'static str {
    if ft.is_symlink() {
        "a symbolic link"
    } else {
        "a special file"
    }
}

/// The files a directory import includes, as (relative name, path), sorted, without hidden
/// entries; directories included (a directory before what it holds).
pub fn walk(root: &Path) -> Result<Vec<(String, PathBuf, bool)>, AddError> {
    let mut out = Vec::new();
    let meta = fs::symlink_metadata(root).map_err(io_err(root))?;
    let name = root_name(root)?;
    if meta.is_file() {
        out.push((name, root.to_path_buf(), false));
    } else if meta.is_dir() {
        out.push((name.clone(), root.to_path_buf(), true));
        walk_dir(root, &name, &mut out)?;
    } else {
        return Err(AddError::NotFileOrDir {
            path: root.to_path_buf(),
            what: kind(&meta.file_type()),
        });
    }
    Ok(out)
}

fn root_name(root: &Path) -> Result<String, AddError> {
    let n = root
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_os_string()))
        .or_else(|| root.file_name().map(|n| n.to_os_string()))
        .unwrap_or_default();
    n.into_string().map_err(|_| AddError::NonUtf8Name {
        path: root.to_path_buf(),
    })
}

fn sorted_children(dir: &Path) -> Result<Vec<(String, PathBuf, fs::FileType)>, AddError> {
    let mut kids = Vec::new();
    for e in fs::read_dir(dir).map_err(io_err(dir))? {
        let e = e.map_err(io_err(dir))?;
        let path = e.path();
        let name = e
            .file_name()
            .into_string()
            .map_err(|_| AddError::NonUtf8Name { path: path.clone() })?;
        if name.starts_with('.') {
            continue;
        }
        let ft = e.file_type().map_err(io_err(&path))?;
        if !ft.is_file() && !ft.is_dir() {
            return Err(AddError::NotFileOrDir {
                path,
                what: kind(&ft),
            });
        }
        kids.push((name, path, ft));
    }
    kids.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(kids)
}

fn walk_dir(
    dir: &Path,
    prefix: &str,
    out: &mut Vec<(String, PathBuf, bool)>,
) -> Result<(), AddError> {
    for (name, path, ft) in sorted_children(dir)? {
        let rel = format!("{prefix}/{name}");
        out.push((rel.clone(), path.clone(), ft.is_dir()));
        if ft.is_dir() {
            walk_dir(&path, &rel, out)?;
        }
    }
    Ok(())
}

/// Total file bytes under `root` (for a progress bar).
pub fn total_bytes(root: &Path) -> Result<u64, AddError> {
    let mut n = 0u64;
    for (_, p, is_dir) in walk(root)? {
        if !is_dir {
            n += fs::metadata(&p).map_err(io_err(&p))?.len();
        }
    }
    Ok(n)
}

/// Imports a file or a directory tree. `progress` is told the file bytes consumed.
pub fn add_path(
    root: &Path,
    version: CidVersion,
    sink: &mut dyn BlockSink,
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<Entry>, AddError> {
    let meta = fs::symlink_metadata(root).map_err(io_err(root))?;
    let name = root_name(root)?;
    let mut out = Vec::new();
    if meta.is_dir() {
        add_dir(root, &name, version, sink, progress, &mut out)?;
    } else if meta.is_file() {
        out.push(add_file(root, name, version, sink, progress)?);
    } else {
        return Err(AddError::NotFileOrDir {
            path: root.to_path_buf(),
            what: kind(&meta.file_type()),
        });
    }
    Ok(out)
}

fn add_file(
    path: &Path,
    name: String,
    version: CidVersion,
    sink: &mut dyn BlockSink,
    progress: &mut dyn FnMut(u64),
) -> Result<Entry, AddError> {
    let f = File::open(path).map_err(io_err(path))?;
    let node = unixfs::import_file(
        BufReader::with_capacity(1 << 20, f),
        version,
        sink,
        progress,
    )
    .map_err(io_err(path))?;
    Ok(Entry {
        name,
        path: path.to_path_buf(),
        cid: node.cid,
        size: node.size,
        dag_size: node.dag_size,
        is_dir: false,
    })
}

fn add_dir(
    dir: &Path,
    name: &str,
    version: CidVersion,
    sink: &mut dyn BlockSink,
    progress: &mut dyn FnMut(u64),
    out: &mut Vec<Entry>,
) -> Result<Entry, AddError> {
    let mut links: Vec<(String, Cid, u64)> = Vec::new();
    let mut size = 0u64;
    for (child, path, ft) in sorted_children(dir)? {
        let rel = format!("{name}/{child}");
        let e = if ft.is_dir() {
            add_dir(&path, &rel, version, sink, progress, out)?
        } else {
            let e = add_file(&path, rel, version, sink, progress)?;
            out.push(e.clone());
            e
        };
        size += e.size;
        links.push((child, e.cid, e.dag_size));
    }
    let est = unixfs::directory_links_estimate(&links);
    if est > unixfs::HAMT_THRESHOLD {
        return Err(AddError::NeedsSharding {
            path: dir.to_path_buf(),
            bytes: est,
        });
    }
    let (cid, dag_size) = unixfs::directory(version, &links, sink).map_err(io_err(dir))?;
    let e = Entry {
        name: name.to_string(),
        path: dir.to_path_buf(),
        cid,
        size,
        dag_size,
        is_dir: true,
    };
    out.push(e.clone());
    Ok(e)
}
