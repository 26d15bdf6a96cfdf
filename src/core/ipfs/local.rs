//! A local content-addressed folder: the embedded default target of `gym publish`.
//!
//! Layout, as a gateway resolves `/ipfs/<cid>[/path]`: a published file is `DIR/<cid>` (its
//! bytes); a published directory is `DIR/<cid>/` holding the tree (hidden entries left out, as
//! for its CID). Names are the CIDs `ipfs add` would print, so an existing entry has the same
//! content and is left alone unless `force` asks to write it again.

use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::add::{self, AddError, Entry};
use super::cid::CidVersion;
use super::unixfs::{self, NoBlocks};
use crate::core::atomic::{self, AtomicDir, AtomicError, AtomicFile};
use crate::core::error::{Classify, ErrorClass};

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Add(#[from] AddError),
    #[error(transparent)]
    Write(#[from] AtomicError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "{path} changed while it was being published (CID {before} before, {after} in the copy)"
    )]
    Changed {
        path: PathBuf,
        before: String,
        after: String,
    },
}

impl Classify for LocalError {
    fn class(&self) -> ErrorClass {
        match self {
            LocalError::Add(e) => e.class(),
            LocalError::Write(e) => e.class(),
            LocalError::Io { .. } => ErrorClass::Io,
            LocalError::Changed { .. } => ErrorClass::Checksum,
        }
    }
}

/// The outcome of a local publish.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Every file and directory with its CID; the last is the root.
    pub entries: Vec<Entry>,
    /// Where the root now is.
    pub location: PathBuf,
    /// False when an entry of that CID was already there and was left alone.
    pub written: bool,
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> LocalError + '_ {
    move |source| LocalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Copies `src` to `dst`, reporting bytes copied.
fn copy(src: &Path, dst: &mut File, progress: &mut dyn FnMut(u64)) -> Result<(), LocalError> {
    let mut r = File::open(src).map_err(io_err(src))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf).map_err(io_err(src))?;
        if n == 0 {
            break;
        }
        dst.write_all(&buf[..n]).map_err(io_err(src))?;
        progress(n as u64);
    }
    Ok(())
}

fn copy_tree(src: &Path, dst: &Path, progress: &mut dyn FnMut(u64)) -> Result<(), LocalError> {
    let walked = add::walk(src)?;
    let root = walked.first().map(|w| w.0.clone()).unwrap_or_default();
    for (name, path, is_dir) in walked.iter().skip(1) {
        let rel = name
            .strip_prefix(&root)
            .unwrap_or(name)
            .trim_start_matches('/');
        let to = dst.join(rel);
        if *is_dir {
            fs::create_dir_all(&to).map_err(io_err(&to))?;
        } else {
            let mut f = File::create(&to).map_err(io_err(&to))?;
            copy(path, &mut f, progress)?;
            f.sync_all().map_err(io_err(&to))?;
        }
    }
    Ok(())
}

/// Publishes `src` (a file or a directory) into the folder `dir`, created when missing.
pub fn publish(
    src: &Path,
    dir: &Path,
    version: CidVersion,
    force: bool,
    progress: &mut dyn FnMut(u64),
) -> Result<Stored, LocalError> {
    let entries = add::add_path(src, version, &mut NoBlocks, &mut |_| {})?;
    let root = entries.last().expect("an import has a root").clone();
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let location = dir.join(root.cid.to_string());
    if atomic::check_writable(&location, force).is_err() {
        return Ok(Stored {
            entries,
            location,
            written: false,
        });
    }
    let check = |after: String| {
        if after == root.cid.to_string() {
            Ok(())
        } else {
            Err(LocalError::Changed {
                path: src.to_path_buf(),
                before: root.cid.to_string(),
                after,
            })
        }
    };
    if root.is_dir {
        let staged = AtomicDir::create(&location, force)?;
        copy_tree(src, staged.staging(), progress)?;
        let again = add::add_path(staged.staging(), version, &mut NoBlocks, &mut |_| {})?;
        check(again.last().map(|e| e.cid.to_string()).unwrap_or_default())?;
        staged.commit()?;
    } else {
        let mut f = AtomicFile::create(&location, force, None)?;
        copy(src, f.file(), progress)?;
        let file = f.file();
        file.flush().map_err(io_err(&location))?;
        file.rewind().map_err(io_err(&location))?;
        let node = unixfs::import_file(
            io::BufReader::new(&*file),
            version,
            &mut NoBlocks,
            &mut |_| {},
        )
        .map_err(io_err(&location))?;
        check(node.cid.to_string())?;
        f.commit()?;
    }
    Ok(Stored {
        entries,
        location,
        written: true,
    })
}
