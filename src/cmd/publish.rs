//! `gym publish`: a file or folder to a local CID-named folder, an IPFS node (Kubo RPC API),
//! and/or the Hugging Face Hub.
//!
//! JSON output (`--json`), format `gym-publish/1`:
//! ```json
//! {"format": "gym-publish/1", "source": "adapter", "cid_version": 0, "cid": "Qm…",
//!  "entries": [ /* as in gym-cid/1, children first, the root last */ ],
//!  "targets": [
//!    {"kind": "local", "location": "store/Qm…", "written": true},
//!    {"kind": "ipfs", "api": "http://127.0.0.1:5001", "cid": "Qm…", "pinned": true,
//!     "node_size": 1250, "verified": 3, "gateway_path": "/ipfs/Qm…"},
//!    {"kind": "hf", "repo": "owner/name", "revision": "main", "repo_url": "https://huggingface.co/owner/name",
//!     "created_repo": false, "commit_oid": "…", "commit_url": "…",
//!     "files": [{"path": "adapter_model.safetensors", "size": 1, "sha256": "…", "mode": "lfs",
//!                "transfer": "basic"}]}]}
//! ```
//! `transfer` is `inline` (regular file in the commit), `basic` or `multipart` (LFS bytes sent),
//! `skipped` (the Hub had the LFS object) or `ignored` (the Hub said to ignore the file).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use serde_json::json;

use super::Failure;
use super::cid::{entry_json, parse_cid_version};
use super::out::{self, Ctx};
use crate::core::error::ErrorClass;
use crate::core::hub::{self, HubOptions, RepoId, Token};
use crate::core::ipfs::{self, CidVersion, api::Kubo, local, unixfs::NoBlocks};
use crate::core::net::Retry;

/// Default Kubo RPC address, as kubo listens by default.
pub const DEFAULT_IPFS_API: &str = "http://127.0.0.1:5001";

/// Arguments of `gym publish`.
#[derive(Debug, Args)]
#[command(after_help = "\
Targets (at least one; several are done in the order --to, --ipfs, --hf):
  --to DIR          copy into DIR as DIR/<cid> (a file) or DIR/<cid>/… (a folder); offline
  --ipfs [URL]      add and pin through a Kubo RPC API (kubo, js-ipfs); URL defaults to $IPFS_API,
                    then http://127.0.0.1:5001; every CID the node returns must equal gym's own
  --hf OWNER/REPO   one commit to the Hugging Face Hub (created when missing); token from
                    $HF_TOKEN, server from $HF_ENDPOINT (default https://huggingface.co)

Connection errors and 5xx answers are retried with exponential backoff ($GYM_RETRY_DELAY_MS
sets the first delay, default 500).")]
pub struct PublishArgs {
    /// A file, or a folder (a PEFT adapter, a merged model, DELTA files).
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// Publish into this local folder, files named by CID.
    #[arg(long, value_name = "DIR")]
    pub to: Option<PathBuf>,
    /// Publish to an IPFS node's RPC API.
    #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "")]
    pub ipfs: Option<String>,
    /// Publish to a Hugging Face Hub model repository.
    #[arg(long, value_name = "OWNER/REPO")]
    pub hf: Option<String>,
    /// Hub branch to commit to.
    #[arg(long, default_value = "main", requires = "hf")]
    pub revision: String,
    /// Create the Hub repository private when it does not exist.
    #[arg(long, requires = "hf")]
    pub private: bool,
    /// Hub commit message (default: "Upload <name> with gym").
    #[arg(long, short, requires = "hf")]
    pub message: Option<String>,
    /// CID version for --to and --ipfs (0: `Qm…`, 1: raw leaves, base32).
    #[arg(long, value_name = "0|1", default_value = "0", value_parser = parse_cid_version)]
    pub cid_version: CidVersion,
    /// With --to: write again even when an entry of that CID exists.
    #[arg(long)]
    pub force: bool,
    /// Print JSON (format `gym-publish/1`).
    #[arg(long)]
    pub json: bool,
}

/// Everything `gym publish` (and `gym orchestrate`'s publishing) takes from the environment,
/// read in one place before it starts.
pub(crate) struct PublishEnv {
    /// `GYM_RETRY_DELAY_MS`: the first retry delay (tests shorten it).
    retry: Retry,
    /// `IPFS_API`: the node for a bare `--ipfs`.
    ipfs_api: String,
    /// `HF_ENDPOINT`: the Hub to upload to.
    hf_endpoint: String,
    /// `HF_TOKEN`.
    hf_token: Option<String>,
}

impl PublishEnv {
    /// The Hub as `gym orchestrate` publishes to it; an error without a token.
    pub(crate) fn hub_access(
        self,
    ) -> Result<crate::core::orchestrator::checkpoint::HubAccess, hub::HubError> {
        let token = self.hf_token.ok_or(hub::HubError::NoToken)?;
        Ok(crate::core::orchestrator::checkpoint::HubAccess {
            endpoint: self.hf_endpoint,
            token: Some(Token::new(token)),
            retry: self.retry,
        })
    }

    pub(crate) fn read() -> Self {
        let nonempty = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let mut retry = Retry::default();
        if let Some(ms) = std::env::var("GYM_RETRY_DELAY_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            retry.first_delay = Duration::from_millis(ms);
        }
        PublishEnv {
            retry,
            ipfs_api: nonempty("IPFS_API").unwrap_or_else(|| DEFAULT_IPFS_API.into()),
            hf_endpoint: nonempty("HF_ENDPOINT").unwrap_or_else(|| hub::DEFAULT_ENDPOINT.into()),
            hf_token: nonempty("HF_TOKEN"),
        }
    }
}

/// Uploads the source to a Hugging Face Hub repository; returns the summary line and the
/// JSON target.
fn publish_to_hub(
    ctx: &Ctx,
    a: &PublishArgs,
    repo: RepoId,
    env: PublishEnv,
    total: u64,
    root_cid: &str,
) -> anyhow::Result<(String, serde_json::Value)> {
    let src = &a.path;
    let retry = env.retry;
    let endpoint = env.hf_endpoint;
    let token = env.hf_token.map(Token::new);
    let name = src
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let opts = HubOptions {
        endpoint: endpoint.trim_end_matches('/').to_string(),
        token,
        repo,
        revision: a.revision.clone(),
        private: a.private,
        summary: a
            .message
            .clone()
            .unwrap_or_else(|| format!("Upload {name} with gym")),
        description: format!(
            "Published with gym {}. IPFS CID (v{}): {}",
            env!("CARGO_PKG_VERSION"),
            a.cid_version.number(),
            root_cid
        ),
        retry,
    };
    let files = hub::collect(src)?;
    let pb = ctx.progress(total, "uploading");
    let progress = pb.position_callback();
    let report = hub::upload(files, &opts, progress)
        .with_context(|| format!("uploading {} to {}", src.display(), opts.repo))?;
    pb.finish();
    let sent = report
        .files
        .iter()
        .filter(|f| f.transfer.sent_lfs())
        .count();
    let skipped = report
        .files
        .iter()
        .filter(|f| f.transfer == hub::Transfer::Skipped)
        .count();
    let line = format!(
        "hf: {} commit {} ({} files, {sent} LFS uploaded, {skipped} LFS already there{})",
        report.repo_url,
        report.commit_oid,
        report.files.len(),
        if report.created_repo {
            ", repository created"
        } else {
            ""
        }
    );
    let mut v = serde_json::to_value(&report)?;
    if let Some(m) = v.as_object_mut() {
        m.insert("kind".into(), json!("hf"));
    }
    Ok((line, v))
}

pub fn run(ctx: &Ctx, a: PublishArgs) -> anyhow::Result<()> {
    if a.to.is_none() && a.ipfs.is_none() && a.hf.is_none() {
        return Err(Failure::new(
            ErrorClass::Other,
            "no target: give --to DIR, --ipfs [URL] and/or --hf OWNER/REPO",
        )
        .into());
    }
    let repo = a.hf.as_deref().map(RepoId::parse).transpose()?;
    let env = PublishEnv::read();
    let retry = env.retry;
    let src = &a.path;
    let total =
        ipfs::add::total_bytes(src).with_context(|| format!("publishing {}", src.display()))?;
    let bar = |label: &str| {
        let pb = ctx.progress(total, label);
        let f = pb.position_callback();
        (pb, f)
    };

    let entries = {
        let (pb, _) = bar("hashing");
        let e = ipfs::add_path(src, a.cid_version, &mut NoBlocks, &mut |n| pb.inc(n))?;
        pb.finish();
        e
    };
    let root = entries.last().expect("an import has a root").clone();
    let mut targets = Vec::new();
    let mut lines = vec![format!("{}  {}", root.cid, src.display())];

    if let Some(dir) = &a.to {
        let (pb, _) = bar("copying");
        let stored = local::publish(src, dir, a.cid_version, a.force, &mut |n| pb.inc(n))
            .with_context(|| format!("publishing {} to {}", src.display(), dir.display()))?;
        pb.finish();
        let what = if stored.written {
            "wrote"
        } else {
            "already present"
        };
        lines.push(format!("local: {} ({what})", stored.location.display()));
        targets.push(json!({
            "kind": "local",
            "location": stored.location.display().to_string(),
            "written": stored.written,
        }));
    }

    if let Some(url) = &a.ipfs {
        let api = if url.is_empty() {
            env.ipfs_api.clone()
        } else {
            url.clone()
        };
        let kubo = Kubo::new(&api, retry)?;
        let (pb, progress) = bar("uploading");
        let added = kubo
            .add(src, a.cid_version, progress)
            .with_context(|| format!("adding {} to {api}", src.display()))?;
        pb.finish();
        let node_size = added.last().and_then(|x| x.node_size);
        lines.push(format!(
            "ipfs: {} pinned on {} (CIDs match)",
            root.cid,
            kubo.base()
        ));
        targets.push(json!({
            "kind": "ipfs",
            "api": kubo.base(),
            "cid": root.cid.to_string(),
            "pinned": true,
            "node_size": node_size,
            "verified": added.len(),
            "gateway_path": format!("/ipfs/{}", root.cid),
        }));
    }

    if let Some(repo) = repo {
        let (line, target) = publish_to_hub(ctx, &a, repo, env, total, &root.cid.to_string())?;
        lines.push(line);
        targets.push(target);
    }

    if a.json {
        return out::json(&json!({
            "format": "gym-publish/1",
            "source": src.display().to_string(),
            "cid_version": a.cid_version.number(),
            "cid": root.cid.to_string(),
            "entries": entries.iter().map(entry_json).collect::<Vec<_>>(),
            "targets": targets,
        }));
    }
    out::println(&lines.join("\n"))?;
    Ok(())
}
