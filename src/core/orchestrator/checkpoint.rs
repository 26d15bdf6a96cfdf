//! Aggregates as PEFT adapters, and publishing an epoch's checkpoint to the job's targets
//! through the same code as `gym publish` (a local CID-named folder, an IPFS node).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;

use candle_core::{Device, Tensor};

use super::OrchError;
use crate::core::atomic::AtomicDir;
use crate::core::delta::{self, VerifyOptions};
use crate::core::ipfs::{self, CidVersion, api::Kubo, local, unixfs::NoBlocks};

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

/// Where a checkpoint went.
#[derive(Debug, Clone)]
pub struct Publication {
    pub cid: String,
    pub location: String,
}

/// Writes epoch `epoch`'s checkpoint under `folder/checkpoints/epoch-<n>` and publishes it to
/// the job's targets (the local folder first, then IPFS). Idempotent: a checkpoint already
/// published is left in place.
pub fn publish_epoch(
    folder: &Path,
    epoch: u64,
    bytes: &[u8],
    targets: &super::job::PublishTargets,
) -> Result<Publication, OrchError> {
    let dir = folder.join("checkpoints").join(format!("epoch-{epoch:04}"));
    write_peft(bytes, &dir)?;
    let entries = ipfs::add_path(&dir, CidVersion::V0, &mut NoBlocks, &mut |_| {})
        .map_err(|e| OrchError::Publish(e.to_string()))?;
    let cid = entries
        .last()
        .expect("an import has a root")
        .cid
        .to_string();
    let mut location = dir.display().to_string();
    if let Some(to) = &targets.to {
        let stored = local::publish(&dir, to, CidVersion::V0, false, &mut |_| {})
            .map_err(|e| OrchError::Publish(format!("to {}: {e}", to.display())))?;
        location = stored.location.display().to_string();
    }
    if let Some(api) = &targets.ipfs {
        let kubo = Kubo::new(api, crate::core::net::Retry::default())
            .map_err(|e| OrchError::Publish(e.to_string()))?;
        kubo.add(&dir, CidVersion::V0, std::sync::Arc::new(|_| {}))
            .map_err(|e| OrchError::Publish(format!("to IPFS {api}: {e}")))?;
        location = format!("{location} and /ipfs/{cid} on {api}");
    }
    Ok(Publication { cid, location })
}
