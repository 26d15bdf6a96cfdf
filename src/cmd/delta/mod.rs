//! `gym delta pack | unpack | inspect | verify | diff`.
//!
//! One file per subcommand, each with its `Args` struct and a `run` that maps them onto
//! `core::delta` and formats the result; helpers shared by several of them are here.

mod diff;
mod inspect;
mod pack;
mod unpack;
mod verify;

use std::path::Path;

use anyhow::Context as _;
use clap::Subcommand;

use crate::core::delta::{Delta, FileSource};

pub use diff::DiffArgs;
pub use inspect::InspectArgs;
pub use pack::{CompressionArg, PackArgs};
pub use unpack::{UnpackArgs, UnpackFormat};
pub use verify::VerifyArgs;

use crate::cmd::out::Ctx;

#[derive(Debug, Subcommand)]
pub enum DeltaCommand {
    /// Pack a .safetensors file or a PEFT adapter folder into a DELTA file.
    Pack(PackArgs),
    /// Unpack a DELTA file to .safetensors (or a PEFT adapter folder), checking it fully.
    Unpack(UnpackArgs),
    /// Show a DELTA file's header, metadata, tensors and signer (reads headers only).
    Inspect(InspectArgs),
    /// Verify DELTA files: structure, checksum, signatures, trust and policy.
    Verify(VerifyArgs),
    /// Compare two DELTA files tensor by tensor (L2 distance, max abs difference, cosine).
    Diff(DiffArgs),
}

pub fn run(ctx: &Ctx, c: DeltaCommand) -> anyhow::Result<()> {
    match c {
        DeltaCommand::Pack(a) => pack::run(ctx, a),
        DeltaCommand::Unpack(a) => unpack::run(ctx, a),
        DeltaCommand::Inspect(a) => inspect::run(a),
        DeltaCommand::Verify(a) => verify::run(ctx, a),
        DeltaCommand::Diff(a) => diff::run(a),
    }
}

fn parse_hex32(s: &str) -> Result<String, String> {
    let t = s.trim().to_ascii_lowercase();
    if t.len() == 64 && t.bytes().all(|c| c.is_ascii_hexdigit()) {
        Ok(t)
    } else {
        Err(format!("{s:?} is not a SHA3-256 hash (64 hex digits)"))
    }
}

fn open_delta(path: &Path) -> anyhow::Result<FileSource> {
    FileSource::open(path).with_context(|| format!("opening {}", path.display()))
}

fn signer_json(d: &Delta) -> serde_json::Value {
    match &d.signature {
        None => serde_json::Value::Null,
        Some(s) => serde_json::json!({
            "worker_id": crate::core::keys::worker_id(&s.ed25519_public),
            "ed25519": crate::core::keys::b64(&s.ed25519_public),
            "ml_dsa_87": s.ml_dsa_87.as_ref().map(|(pk, _)| crate::core::keys::b64(pk)),
        }),
    }
}
