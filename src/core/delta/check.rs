//! Verifying delta files by path, as `gym delta verify` does: a typed failure per file, and a
//! guard that catches a replayed sequence number across several inputs.

use std::collections::HashMap;
use std::path::Path;

use super::{DeltaError, FileSource, VerifyOptions, VerifyReport, verify};
use crate::core::error::{Classify, ErrorClass};

/// Why a file did not verify.
#[derive(Debug, Clone)]
pub struct VerifyFailure {
    pub class: ErrorClass,
    /// Stable error identifier (`DeltaError::kind`, or `"io"` when the file cannot be opened).
    pub kind: &'static str,
    pub message: String,
}

impl From<&DeltaError> for VerifyFailure {
    fn from(e: &DeltaError) -> Self {
        VerifyFailure {
            class: e.class(),
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

/// Opens and verifies the delta file at `path`.
pub fn verify_path(path: &Path, opts: &VerifyOptions) -> Result<VerifyReport, VerifyFailure> {
    let src = FileSource::open(path).map_err(|e| VerifyFailure {
        class: ErrorClass::Io,
        kind: "io",
        message: format!("opening {}: {e}", path.display()),
    })?;
    verify(&src, opts).map_err(|e| VerifyFailure::from(&e))
}

/// The highest sequence number seen per signer among deltas verified one after another: a
/// delta whose sequence number is not above its signer's previous one is a replay.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    highest: HashMap<[u8; 32], u64>,
}

impl ReplayGuard {
    /// Records a verified delta, or refuses it as a replay (and records nothing). Unsigned
    /// deltas pass.
    pub fn check(&mut self, rep: &VerifyReport) -> Result<(), DeltaError> {
        let Some(s) = rep.delta.signature.as_ref() else {
            return Ok(());
        };
        let seq = rep.delta.metadata.seq;
        match self.highest.get(&s.ed25519_public) {
            Some(&previous) if seq <= previous => Err(DeltaError::ReplayedSequence {
                seq,
                previous,
                worker_id: crate::core::keys::worker_id(&s.ed25519_public),
            }),
            _ => {
                self.highest.insert(s.ed25519_public, seq);
                Ok(())
            }
        }
    }
}
