//! `gym delta inspect`: header, metadata, tensors and signer of a DELTA file.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use super::{open_delta, signer_json};
use crate::cmd::out::{self, human_bytes};
use crate::core::delta::Delta;

/// Arguments of `gym delta inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    #[arg(value_name = "IN.delta")]
    pub input: PathBuf,
    /// Print JSON (format `gym-delta-inspect/1`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, serde::Serialize)]
struct TensorJson<'a> {
    name: &'a str,
    dtype: &'static str,
    shape: &'a [u64],
    raw_bytes: u64,
    stored_bytes: u64,
    chunks: usize,
    ratio: f64,
}

fn ratio(raw: u64, stored: u64) -> f64 {
    if stored == 0 {
        1.0
    } else {
        raw as f64 / stored as f64
    }
}

pub(super) fn run(a: InspectArgs) -> anyhow::Result<()> {
    let src = open_delta(&a.input)?;
    let d = Delta::scan(&src).with_context(|| format!("{}", a.input.display()))?;
    if a.json {
        let tensors: Vec<TensorJson<'_>> = d
            .tensors
            .iter()
            .map(|t| TensorJson {
                name: &t.name,
                dtype: t.dtype.name(),
                shape: &t.shape,
                raw_bytes: t.raw_len,
                stored_bytes: t.stored_len,
                chunks: t.chunks.len(),
                ratio: ratio(t.raw_len, t.stored_len),
            })
            .collect();
        out::json(&serde_json::json!({
            "format": "gym-delta-inspect/1",
            "file": a.input,
            "file_bytes": d.file_len,
            "header": {
                "version": d.version,
                "compression": d.compression.name(),
                "flags": d.flags,
                "signed": d.signature.is_some(),
                "hybrid": d.signature.as_ref().map(|s| s.ml_dsa_87.is_some()).unwrap_or(false),
                "checksum": hex::encode(d.checksum),
                "chunk_size": d.chunk_size,
            },
            "metadata": d.metadata,
            "tensors": tensors,
            "raw_bytes": d.raw_bytes(),
            "stored_bytes": d.stored_bytes(),
            "signer": signer_json(&d),
            "verified": false,
        }))?;
        return Ok(());
    }
    let m = &d.metadata;
    let mut s = String::new();
    s.push_str(&format!(
        "file:         {} ({})\n",
        a.input.display(),
        human_bytes(d.file_len)
    ));
    s.push_str(&format!(
        "format:       DELTA v{}, {}, chunks of {}\n",
        d.version,
        d.compression.name(),
        human_bytes(d.chunk_size as u64)
    ));
    s.push_str(&format!("checksum:     {}\n", hex::encode(d.checksum)));
    s.push_str(&format!("worker:       {}\n", m.worker_id));
    s.push_str(&format!("time:         {}\n", m.timestamp));
    s.push_str(&format!(
        "epoch/step:   {} / {}   seq {}\n",
        m.epoch, m.step, m.seq
    ));
    if let Some(l) = m.loss {
        s.push_str(&format!("loss:         {l}\n"));
    }
    if let Some(h) = &m.base_hash {
        s.push_str(&format!("base model:   {h}\n"));
    }
    if let Some(h) = &m.parent_hash {
        s.push_str(&format!("parent:       {h}\n"));
    }
    if let Some(c) = &m.compute {
        s.push_str(&format!(
            "compute:      {} tokens, {:.3e} FLOPs, {}, {:.1} s\n",
            c.tokens, c.flops, c.device, c.wall_seconds
        ));
    }
    s.push_str(&format!(
        "attestation:  {}\n",
        if m.attestation.kind == "none" {
            "none".to_string()
        } else {
            format!("{} (not verified)", m.attestation.kind)
        }
    ));
    if m.adapter_config.is_some() {
        s.push_str("adapter:      PEFT adapter_config present\n");
    }
    match &d.signature {
        None => s.push_str("signature:    none\n"),
        Some(sig) => s.push_str(&format!(
            "signature:    {} by {} (not checked here: run `gym delta verify`)\n",
            if sig.ml_dsa_87.is_some() {
                "Ed25519 + ML-DSA-87"
            } else {
                "Ed25519"
            },
            crate::core::keys::worker_id(&sig.ed25519_public)
        )),
    }
    let mut t = out::table(&["tensor", "dtype", "shape", "raw", "stored", "ratio"]);
    for e in &d.tensors {
        t.add_row(vec![
            e.name.clone(),
            e.dtype.name().to_string(),
            format!("{:?}", e.shape),
            human_bytes(e.raw_len),
            human_bytes(e.stored_len),
            format!("{:.2}", ratio(e.raw_len, e.stored_len)),
        ]);
    }
    s.push_str(&format!("{t}\n"));
    s.push_str(&format!(
        "{} tensors, {} raw, {} stored ({:.2}x)\n",
        d.tensors.len(),
        human_bytes(d.raw_bytes()),
        human_bytes(d.stored_bytes()),
        ratio(d.raw_bytes(), d.stored_bytes())
    ));
    out::print(&s)?;
    Ok(())
}
