//! Aggregates as PEFT adapters, and publishing an epoch's checkpoint to the job's targets
//! through the same code as `gym publish` (a local CID-named folder, an IPFS node).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use super::OrchError;
use super::job::PublishTargets;
use crate::core::atomic::AtomicDir;
use crate::core::delta::{self, VerifyOptions};
use crate::core::hub::{self, HubOptions, RepoId, Token};
use crate::core::ipfs::{self, CidVersion, api::Kubo, local, unixfs::NoBlocks};
use crate::core::model::{self, ModelError, lora};
use crate::core::train::config::TrainConfig;

/// Decodes a DELTA file's tensors (checking its digest) into a safetensors buffer.
fn to_safetensors(bytes: &[u8]) -> Result<(Vec<u8>, delta::VerifyReport), OrchError> {
    let mut out = Vec::with_capacity(bytes.len() + 4096);
    let s = delta::unpack_to_safetensors(&bytes, &VerifyOptions::default(), &mut out, &|_| {})
        .map_err(|e| OrchError::Object(format!("decoding aggregate: {e}")))?;
    Ok((out, s.report))
}

/// Writes an aggregate (a DELTA file carrying `adapter_config`) as a PEFT adapter folder:
/// `adapter_model.safetensors` + `adapter_config.json`, replacing `dir`. The bytes depend only
/// on the aggregate, so every worker and the orchestrator write the same files.
pub fn write_peft(bytes: &[u8], dir: &Path) -> Result<(), OrchError> {
    let (st, report) = to_safetensors(bytes)?;
    let cfg = report
        .delta
        .metadata
        .adapter_config
        .clone()
        .ok_or_else(|| OrchError::Object("the aggregate carries no adapter_config".into()))?;
    let io = |e: std::io::Error| OrchError::Io(format!("{}: {e}", dir.display()));
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let staged = AtomicDir::create(dir, true).map_err(OrchError::Output)?;
    let mut f =
        std::fs::File::create(staged.staging().join("adapter_model.safetensors")).map_err(io)?;
    f.write_all(&st).map_err(io)?;
    f.sync_all().map_err(io)?;
    let text = serde_json::to_string_pretty(&serde_json::Value::Object(cfg))
        .expect("JSON serialises")
        + "\n";
    std::fs::write(staged.staging().join("adapter_config.json"), text).map_err(io)?;
    staged.commit().map_err(OrchError::Output)?;
    Ok(())
}

/// An aggregate's tensors by name, on `dev`.
pub fn load_tensors(bytes: &[u8], dev: &Device) -> Result<HashMap<String, Tensor>, OrchError> {
    let (st, _) = to_safetensors(bytes)?;
    candle_core::safetensors::load_buffer(&st, dev)
        .map_err(|e| OrchError::Object(format!("reading aggregate tensors: {e}")))
}

/// How the Hugging Face Hub is reached: `HF_ENDPOINT` and `HF_TOKEN`, read by the command.
#[derive(Debug, Clone)]
pub struct HubAccess {
    pub endpoint: String,
    pub token: Option<Token>,
    pub retry: crate::core::net::Retry,
}

/// Where a checkpoint went.
#[derive(Debug, Clone)]
pub struct Publication {
    pub cid: String,
    pub location: String,
    /// The Hub commit's URL, when the job publishes to the Hub.
    pub hf: Option<String>,
}

/// Writes epoch `epoch`'s checkpoint under `folder/checkpoints/epoch-<n>` and publishes it to
/// the job's targets (the local folder first, then IPFS, then the Hub). Idempotent: a
/// checkpoint already published is left in place.
pub fn publish_epoch(
    folder: &Path,
    epoch: u64,
    bytes: &[u8],
    targets: &PublishTargets,
    hub: Option<&HubAccess>,
) -> Result<Publication, OrchError> {
    let dir = epoch_dir(folder, epoch);
    write_peft(bytes, &dir)?;
    publish_dir(&dir, targets, hub, "", &format!("epoch {epoch} checkpoint"))
}

/// An epoch's adapter folder.
pub fn epoch_dir(folder: &Path, epoch: u64) -> PathBuf {
    folder.join("checkpoints").join(format!("epoch-{epoch:04}"))
}

/// Merges the last epoch's adapter into the job's base model (its f32 weights, as PEFT's
/// `merge_and_unload` on an unquantized base) and publishes the model folder
/// (`folder/checkpoints/merged`: model.safetensors, config.json, tokenizer files) to the
/// job's targets; on the Hub, under `merged/`.
pub fn publish_merged(
    folder: &Path,
    last_epoch: u64,
    train: &TrainConfig,
    targets: &PublishTargets,
    hub: Option<&HubAccess>,
) -> Result<Publication, OrchError> {
    let dir = folder.join("checkpoints").join("merged");
    let model_err = |e: ModelError| OrchError::Object(format!("merging the adapter: {e}"));
    let dev = Device::Cpu;
    let (mut m, src) = match &train.model {
        Some(d) => (model::load(d, &dev).map_err(model_err)?, Some(d.as_path())),
        None => (
            model::embedded::tiny_qwen3(&dev).map_err(model_err)?.0,
            None,
        ),
    };
    lora::load_peft(&mut m, &epoch_dir(folder, last_epoch)).map_err(model_err)?;
    let staged = AtomicDir::create(&dir, true).map_err(OrchError::Output)?;
    match src {
        Some(src) => lora::export_merged(&m, src, staged.staging()),
        None => lora::export_merged(&m, Path::new(""), staged.staging())
            .and_then(|()| model::embedded::write_files(staged.staging())),
    }
    .map_err(model_err)?;
    staged.commit().map_err(OrchError::Output)?;
    publish_dir(&dir, targets, hub, "merged/", "merged model")
}

/// Publishes a folder to the job's targets: its CID (v0), the local folder, IPFS, the Hub
/// (under `prefix`, one commit named `what`).
fn publish_dir(
    dir: &Path,
    targets: &PublishTargets,
    hub: Option<&HubAccess>,
    prefix: &str,
    what: &str,
) -> Result<Publication, OrchError> {
    let entries = ipfs::add_path(dir, CidVersion::V0, &mut NoBlocks, &mut |_| {})
        .map_err(|e| OrchError::Publish(e.to_string()))?;
    let cid = entries
        .last()
        .expect("an import has a root")
        .cid
        .to_string();
    let mut location = dir.display().to_string();
    if let Some(to) = &targets.to {
        let stored = local::publish(dir, to, CidVersion::V0, false, &mut |_| {})
            .map_err(|e| OrchError::Publish(format!("to {}: {e}", to.display())))?;
        location = stored.location.display().to_string();
    }
    if let Some(api) = &targets.ipfs {
        let kubo = Kubo::new(api, crate::core::net::Retry::default())
            .map_err(|e| OrchError::Publish(e.to_string()))?;
        kubo.add(dir, CidVersion::V0, std::sync::Arc::new(|_| {}))
            .map_err(|e| OrchError::Publish(format!("to IPFS {api}: {e}")))?;
        location = format!("{location} and /ipfs/{cid} on {api}");
    }
    let mut hf = None;
    if let Some(repo) = &targets.hf {
        let url = push_to_hub(dir, repo, targets, hub, prefix, what, &cid)?;
        location = format!("{location} and {url}");
        hf = Some(url);
    }
    Ok(Publication { cid, location, hf })
}

/// One Hub commit of `dir`'s files under `prefix`; returns the commit's URL.
fn push_to_hub(
    dir: &Path,
    repo: &str,
    targets: &PublishTargets,
    hub: Option<&HubAccess>,
    prefix: &str,
    what: &str,
    cid: &str,
) -> Result<String, OrchError> {
    let err = |e: hub::HubError| OrchError::Publish(format!("to the Hub {repo}: {e}"));
    let access = hub.ok_or_else(|| err(hub::HubError::NoToken))?;
    let opts = HubOptions {
        endpoint: access.endpoint.trim_end_matches('/').to_string(),
        token: access.token.clone(),
        repo: RepoId::parse(repo).map_err(err)?,
        revision: targets.hf_revision.clone(),
        private: false,
        summary: format!("{what} (gym orchestrate)"),
        description: format!(
            "Published with gym {}. IPFS CID (v0): {cid}",
            env!("CARGO_PKG_VERSION")
        ),
        retry: access.retry,
    };
    let mut files = hub::collect(dir).map_err(err)?;
    for f in &mut files {
        f.path_in_repo = format!("{prefix}{}", f.path_in_repo);
    }
    let report = hub::upload(files, &opts, std::sync::Arc::new(|_| {})).map_err(err)?;
    Ok(report.commit_url)
}
