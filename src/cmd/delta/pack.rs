//! `gym delta pack`: a .safetensors file or a PEFT adapter folder into a DELTA file.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use super::parse_hex32;
use crate::cmd::Failure;
use crate::cmd::out::{self, Ctx, human_bytes};
use crate::core::atomic::AtomicFile;
use crate::core::delta::{
    self, Compression, Compute, FileSource, Metadata, PackInput, PackOptions, TensorSource,
};
use crate::core::error::ErrorClass;
use crate::core::keys::Identity;
use crate::core::safetensors_io;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CompressionArg {
    None,
    Lz4,
}

/// Parses a byte size: a number with an optional KiB / MiB suffix (powers of 1024).
fn parse_size(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let (num, mul) = if let Some(n) = t.strip_suffix("MiB") {
        (n, 1u64 << 20)
    } else if let Some(n) = t.strip_suffix("KiB") {
        (n, 1 << 10)
    } else {
        (t, 1)
    };
    let v: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 1MiB, 256KiB, 65536)"))?;
    let bytes = v
        .checked_mul(mul)
        .filter(|b| *b <= u32::MAX as u64)
        .ok_or_else(|| format!("{s:?} is too large"))?;
    let b = bytes as u32;
    if !b.is_power_of_two() || !(delta::MIN_CHUNK_SIZE..=delta::MAX_CHUNK_SIZE).contains(&b) {
        return Err(format!(
            "chunk size {b} must be a power of two from 256 bytes to 64MiB"
        ));
    }
    Ok(b)
}

/// Arguments of `gym delta pack`.
#[derive(Debug, Args)]
pub struct PackArgs {
    /// A .safetensors file, or a PEFT adapter folder (adapter_config.json +
    /// adapter_model.safetensors; the config travels in the metadata).
    #[arg(value_name = "INPUT")]
    pub input: PathBuf,
    /// The DELTA file to write.
    #[arg(short, long, value_name = "OUT.delta")]
    pub output: PathBuf,
    /// Sign with this key file (hybrid Ed25519 + ML-DSA-87 when the key has both).
    #[arg(long, value_name = "KEY.pem")]
    pub sign: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "lz4")]
    pub compression: CompressionArg,
    /// Raw bytes per chunk: a power of two from 256 bytes to 64MiB.
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    pub chunk_size: u32,
    #[arg(long, default_value_t = 0)]
    pub epoch: u64,
    #[arg(long, default_value_t = 0)]
    pub step: u64,
    /// Sequence number; must increase with every delta a worker publishes.
    #[arg(long, default_value_t = 0)]
    pub seq: u64,
    #[arg(long)]
    pub loss: Option<f64>,
    /// Worker label (default: the signer's worker id, or "anonymous" when unsigned).
    #[arg(long)]
    pub worker_id: Option<String>,
    /// SHA3-256 of the base model state the delta was trained against.
    #[arg(long, value_parser = parse_hex32, value_name = "HEX")]
    pub base_hash: Option<String>,
    /// Body digest of the delta this one applies on top of.
    #[arg(long, value_parser = parse_hex32, value_name = "HEX")]
    pub parent_hash: Option<String>,
    /// RFC 3339 UTC time (default: now, or SOURCE_DATE_EPOCH).
    #[arg(long)]
    pub timestamp: Option<String>,
    /// Compute record: tokens processed.
    #[arg(long)]
    pub tokens: Option<u64>,
    /// Compute record: floating-point operations.
    #[arg(long)]
    pub flops: Option<f64>,
    /// Compute record: device description.
    #[arg(long)]
    pub device: Option<String>,
    /// Compute record: wall-clock seconds.
    #[arg(long)]
    pub wall_seconds: Option<f64>,
    /// A JSON object summarising the training configuration, stored as `config`.
    #[arg(long, value_name = "FILE.json")]
    pub config: Option<PathBuf>,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// Print a JSON summary (format `gym-delta-pack/1`).
    #[arg(long)]
    pub json: bool,
}

fn read_json_object(path: &Path) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Failure::new(
            ErrorClass::Malformed,
            format!("{}: invalid JSON: {e}", path.display()),
        )
    })?;
    match v {
        serde_json::Value::Object(m) => Ok(m),
        _ => Err(Failure::new(
            ErrorClass::Malformed,
            format!("{}: expected a JSON object", path.display()),
        )
        .into()),
    }
}

/// The safetensors file to pack and the adapter config: the input itself, or a PEFT folder's
/// `adapter_model.safetensors` and `adapter_config.json`.
fn resolve_input(
    input: &Path,
) -> anyhow::Result<(PathBuf, Option<serde_json::Map<String, serde_json::Value>>)> {
    Ok(if input.is_dir() {
        let cfg = input.join("adapter_config.json");
        let st = input.join("adapter_model.safetensors");
        if !st.is_file() {
            let hint = if input.join("adapter_model.bin").exists() {
                " (found adapter_model.bin: pickle checkpoints are not read; save with safe_serialization=True)"
            } else {
                ""
            };
            return Err(Failure::new(
                ErrorClass::Io,
                format!(
                    "{}: no adapter_model.safetensors in this folder{hint}",
                    input.display()
                ),
            )
            .into());
        }
        let cfg = if cfg.is_file() {
            Some(read_json_object(&cfg)?)
        } else {
            None
        };
        (st, cfg)
    } else {
        (input.to_path_buf(), None)
    })
}

/// The delta's metadata from the flags, the signer, the adapter config and the safetensors
/// header's own metadata (kept under `extra.safetensors_metadata`), validated.
fn metadata(
    a: &PackArgs,
    identity: Option<&Identity>,
    adapter_config: Option<serde_json::Map<String, serde_json::Value>>,
    st_metadata: &[(String, String)],
) -> anyhow::Result<Metadata> {
    let mut meta = Metadata::new(match (&a.worker_id, identity) {
        (Some(w), _) => w.clone(),
        (None, Some(id)) => id.public().worker_id(),
        (None, None) => "anonymous".into(),
    });
    if let Some(t) = &a.timestamp {
        meta.timestamp = t.clone();
    }
    meta.epoch = a.epoch;
    meta.step = a.step;
    meta.seq = a.seq;
    meta.loss = a.loss;
    meta.base_hash = a.base_hash.clone();
    meta.parent_hash = a.parent_hash.clone();
    if a.tokens.is_some() || a.flops.is_some() || a.device.is_some() || a.wall_seconds.is_some() {
        meta.compute = Some(Compute {
            tokens: a.tokens.unwrap_or(0),
            flops: a.flops.unwrap_or(0.0),
            device: a.device.clone().unwrap_or_default(),
            wall_seconds: a.wall_seconds.unwrap_or(0.0),
        });
    }
    if let Some(p) = &a.config {
        meta.config = Some(read_json_object(p)?);
    }
    meta.adapter_config = adapter_config;
    if !st_metadata.is_empty() {
        let m: serde_json::Map<String, serde_json::Value> = st_metadata
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let mut extra = serde_json::Map::new();
        extra.insert("safetensors_metadata".into(), serde_json::Value::Object(m));
        meta.extra = Some(extra);
    }
    meta.validate()
        .map_err(|e| Failure::new(ErrorClass::Malformed, format!("metadata: {e}")))?;
    Ok(meta)
}

pub(super) fn run(ctx: &Ctx, a: PackArgs) -> anyhow::Result<()> {
    crate::core::atomic::check_writable(&a.output, a.force)?;
    let identity = match &a.sign {
        Some(p) => Some(
            Identity::load(p).with_context(|| format!("loading signing key {}", p.display()))?,
        ),
        None => None,
    };
    let (st_path, adapter_config) = resolve_input(&a.input)?;
    let src =
        FileSource::open(&st_path).with_context(|| format!("opening {}", st_path.display()))?;
    let st = safetensors_io::read_header(&st_path, &src)?;

    let meta = metadata(&a, identity.as_ref(), adapter_config, &st.metadata)?;

    let inputs: Vec<PackInput<'_>> = st
        .tensors
        .iter()
        .map(|(spec, offset)| PackInput {
            name: spec.name.clone(),
            dtype: spec.dtype,
            shape: spec.shape.clone(),
            data: TensorSource::At {
                src: &src,
                offset: *offset,
            },
        })
        .collect();
    let total: u64 = st.tensors.iter().map(|(s, _)| s.len).sum();
    let opts = PackOptions {
        compression: match a.compression {
            CompressionArg::None => Compression::None,
            CompressionArg::Lz4 => Compression::Lz4,
        },
        chunk_size: a.chunk_size,
        metadata: meta,
        identity: identity.as_ref(),
    };
    let pb = ctx.progress(total, "packing");
    let mut file = AtomicFile::create(&a.output, a.force, None)?;
    let summary = delta::pack(&inputs, &opts, file.file(), &|n| pb.set_position(n))
        .with_context(|| format!("packing {}", a.input.display()))?;
    file.commit()?;
    pb.finish();
    if a.json {
        out::json(&serde_json::json!({
            "format": "gym-delta-pack/1",
            "output": a.output,
            "tensors": summary.tensors,
            "raw_bytes": summary.raw_bytes,
            "stored_bytes": summary.stored_bytes,
            "file_bytes": summary.file_bytes,
            "digest": hex::encode(summary.digest),
            "checksum": hex::encode(&summary.digest[..16]),
            "signed": summary.signed,
            "hybrid": summary.hybrid,
        }))?;
    } else {
        ctx.note(format!(
            "packed {} tensors, {} -> {} ({}) into {}",
            summary.tensors,
            human_bytes(summary.raw_bytes),
            human_bytes(summary.file_bytes),
            if summary.hybrid {
                "signed, hybrid"
            } else if summary.signed {
                "signed"
            } else {
                "unsigned"
            },
            a.output.display()
        ));
        out::println(&hex::encode(summary.digest))?;
    }
    Ok(())
}
