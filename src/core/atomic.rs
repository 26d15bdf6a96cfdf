//! Atomic output: everything gym writes goes to a temporary file in the destination's directory
//! and is renamed into place only once complete, so a crash or an error never leaves a partial
//! output, and an existing file is never replaced unless the caller asked for it.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::core::error::{Classify, ErrorClass};

#[derive(Debug, thiserror::Error)]
pub enum AtomicError {
    #[error("{path} already exists (use --force to replace it)")]
    Exists { path: PathBuf },
    #[error("writing {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl Classify for AtomicError {
    fn class(&self) -> ErrorClass {
        match self {
            AtomicError::Exists { .. } => ErrorClass::Exists,
            AtomicError::Io { .. } => ErrorClass::Io,
        }
    }
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> AtomicError + '_ {
    move |source| AtomicError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Fails with [`AtomicError::Exists`] when `path` exists and `force` is false.
pub fn check_writable(path: &Path, force: bool) -> Result<(), AtomicError> {
    if !force && fs::symlink_metadata(path).is_ok() {
        return Err(AtomicError::Exists {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// A file being written; becomes visible at its final path only on [`AtomicFile::commit`].
/// Dropping it without committing removes the temporary file.
pub struct AtomicFile {
    path: PathBuf,
    force: bool,
    tmp: tempfile::NamedTempFile,
}

impl AtomicFile {
    /// Creates the temporary file. `mode` sets Unix permissions before any byte is written
    /// (0o600 for private keys).
    pub fn create(path: &Path, force: bool, mode: Option<u32>) -> Result<Self, AtomicError> {
        check_writable(path, force)?;
        let dir = parent_of(path);
        let tmp = tempfile::Builder::new()
            .prefix(".gym-tmp-")
            .tempfile_in(dir)
            .map_err(io_err(path))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let m = mode.unwrap_or(0o644);
            fs::set_permissions(tmp.path(), fs::Permissions::from_mode(m)).map_err(io_err(path))?;
        }
        #[cfg(not(unix))]
        let _ = mode;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            force,
            tmp,
        })
    }

    pub fn file(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes to disk and renames into place. Without `force`, an output that appeared in the
    /// meantime is still not replaced.
    pub fn commit(self) -> Result<(), AtomicError> {
        let AtomicFile { path, force, tmp } = self;
        tmp.as_file().sync_all().map_err(io_err(&path))?;
        if force {
            tmp.persist(&path).map_err(|e| AtomicError::Io {
                path: path.clone(),
                source: e.error,
            })?;
        } else {
            tmp.persist_noclobber(&path).map_err(|e| {
                if e.error.kind() == io::ErrorKind::AlreadyExists {
                    AtomicError::Exists { path: path.clone() }
                } else {
                    AtomicError::Io {
                        path: path.clone(),
                        source: e.error,
                    }
                }
            })?;
        }
        Ok(())
    }
}

/// Writes `bytes` to `path` atomically.
pub fn write_file(
    path: &Path,
    bytes: &[u8],
    force: bool,
    mode: Option<u32>,
) -> Result<(), AtomicError> {
    let mut f = AtomicFile::create(path, force, mode)?;
    {
        let mut w = BufWriter::new(f.file());
        w.write_all(bytes).map_err(io_err(path))?;
        w.flush().map_err(io_err(path))?;
    }
    f.commit()
}

/// A directory being filled; renamed into place on [`AtomicDir::commit`].
pub struct AtomicDir {
    path: PathBuf,
    force: bool,
    tmp: Option<tempfile::TempDir>,
}

impl AtomicDir {
    pub fn create(path: &Path, force: bool) -> Result<Self, AtomicError> {
        check_writable(path, force)?;
        let tmp = tempfile::Builder::new()
            .prefix(".gym-tmp-")
            .tempdir_in(parent_of(path))
            .map_err(io_err(path))?;
        Ok(AtomicDir {
            path: path.to_path_buf(),
            force,
            tmp: Some(tmp),
        })
    }

    /// Where to write the directory's files before commit.
    pub fn staging(&self) -> &Path {
        self.tmp.as_ref().map(|t| t.path()).unwrap_or(&self.path)
    }

    pub fn commit(mut self) -> Result<(), AtomicError> {
        let tmp = self.tmp.take().expect("AtomicDir committed once");
        let staged = tmp.keep();
        let path = self.path.clone();
        if fs::symlink_metadata(&path).is_ok() {
            if !self.force {
                let _ = fs::remove_dir_all(&staged);
                return Err(AtomicError::Exists { path });
            }
            // Move the old output aside first so that a failure leaves one complete copy.
            let old = parent_of(&path).join(format!(
                ".gym-old-{}-{}",
                std::process::id(),
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ));
            fs::rename(&path, &old).map_err(io_err(&path))?;
            if let Err(e) = fs::rename(&staged, &path) {
                let _ = fs::rename(&old, &path);
                let _ = fs::remove_dir_all(&staged);
                return Err(AtomicError::Io { path, source: e });
            }
            let meta = fs::symlink_metadata(&old).map_err(io_err(&path))?;
            if meta.is_dir() {
                let _ = fs::remove_dir_all(&old);
            } else {
                let _ = fs::remove_file(&old);
            }
            return Ok(());
        }
        fs::rename(&staged, &path).map_err(|e| {
            let _ = fs::remove_dir_all(&staged);
            AtomicError::Io {
                path: path.clone(),
                source: e,
            }
        })
    }
}
