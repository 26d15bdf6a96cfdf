//! `gym cid`: the CIDs `ipfs add` would print, computed offline.
//!
//! Text output: one `CID  PATH` line per argument (with `--all`, per file and directory inside,
//! children before their directory, as `ipfs add -r` lists them).
//!
//! JSON output (`--json`), format `gym-cid/1`:
//! ```json
//! {"format": "gym-cid/1", "cid_version": 0,
//!  "entries": [{"name": "model.delta", "path": "model.delta", "cid": "Qm…",
//!               "kind": "file", "size": 1234, "dag_size": 1250}]}
//! ```
//! `size` is file bytes (for a directory, of all files below), `dag_size` the serialized size of
//! all blocks (what `ipfs add` reports as `Size`).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use serde_json::json;

use super::out::{self, Ctx};
use crate::core::ipfs::{self, CidVersion, Entry, unixfs::NoBlocks};

/// Parses `--cid-version`.
pub fn parse_cid_version(s: &str) -> Result<CidVersion, String> {
    match s {
        "0" => Ok(CidVersion::V0),
        "1" => Ok(CidVersion::V1),
        _ => Err(format!("{s:?}: CID version must be 0 or 1")),
    }
}

/// Arguments of `gym cid`.
#[derive(Debug, Args)]
pub struct CidArgs {
    /// Files or directories (directories as `ipfs add -r` adds them: hidden entries left out).
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// 0: `Qm…` (kubo's default); 1: raw leaves, base32 (`bafk…` one chunk, `bafy…` a tree).
    #[arg(long, value_name = "0|1", default_value = "0", value_parser = parse_cid_version)]
    pub cid_version: CidVersion,
    /// Also list every file and directory inside directories, as `ipfs add -r` does.
    #[arg(long)]
    pub all: bool,
    /// Print JSON (format `gym-cid/1`).
    #[arg(long)]
    pub json: bool,
}

/// One reported entry as JSON.
pub fn entry_json(e: &Entry) -> serde_json::Value {
    json!({
        "name": e.name,
        "path": e.path.display().to_string(),
        "cid": e.cid.to_string(),
        "kind": if e.is_dir { "directory" } else { "file" },
        "size": e.size,
        "dag_size": e.dag_size,
    })
}

pub fn run(ctx: &Ctx, a: CidArgs) -> anyhow::Result<()> {
    let mut total = 0u64;
    for p in &a.paths {
        total += ipfs::add::total_bytes(p).with_context(|| format!("adding {}", p.display()))?;
    }
    let pb = ctx.progress(total, "hashing");
    let mut shown: Vec<Entry> = Vec::new();
    for p in &a.paths {
        let entries = ipfs::add_path(p, a.cid_version, &mut NoBlocks, &mut |n| pb.inc(n))?;
        if a.all {
            shown.extend(entries);
        } else if let Some(root) = entries.into_iter().last() {
            shown.push(Entry {
                name: p.display().to_string(),
                ..root
            });
        }
    }
    pb.finish();
    if a.json {
        return out::json(&json!({
            "format": "gym-cid/1",
            "cid_version": a.cid_version.number(),
            "entries": shown.iter().map(entry_json).collect::<Vec<_>>(),
        }));
    }
    let mut s = String::new();
    for e in &shown {
        s.push_str(&format!("{}  {}\n", e.cid, e.name));
    }
    out::print(&s)?;
    Ok(())
}
