//! `gym delta pack | unpack | inspect | verify | diff`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};

use super::Failure;
use super::out::{self, Ctx, human_bytes};
use crate::core::atomic::{AtomicDir, AtomicFile};
use crate::core::delta::{
    self, Compression, Compute, Delta, DeltaError, FileSource, Metadata, PackInput, PackOptions,
    Source, TensorSource, VerifyOptions, VerifyReport,
};
use crate::core::error::{Classify, ErrorClass};
use crate::core::keys::{Identity, TrustedKeys};
use crate::core::safetensors_io;

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
        DeltaCommand::Pack(a) => pack(ctx, a),
        DeltaCommand::Unpack(a) => unpack(ctx, a),
        DeltaCommand::Inspect(a) => inspect(a),
        DeltaCommand::Verify(a) => verify(ctx, a),
        DeltaCommand::Diff(a) => diff(a),
    }
}

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

fn parse_hex32(s: &str) -> Result<String, String> {
    let t = s.trim().to_ascii_lowercase();
    if t.len() == 64 && t.bytes().all(|c| c.is_ascii_hexdigit()) {
        Ok(t)
    } else {
        Err(format!("{s:?} is not a SHA3-256 hash (64 hex digits)"))
    }
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

fn pack(ctx: &Ctx, a: PackArgs) -> anyhow::Result<()> {
    crate::core::atomic::check_writable(&a.output, a.force)?;
    let identity = match &a.sign {
        Some(p) => Some(
            Identity::load(p).with_context(|| format!("loading signing key {}", p.display()))?,
        ),
        None => None,
    };
    // Input: a safetensors file or a PEFT folder.
    let (st_path, adapter_config) = if a.input.is_dir() {
        let cfg = a.input.join("adapter_config.json");
        let st = a.input.join("adapter_model.safetensors");
        if !st.is_file() {
            let hint = if a.input.join("adapter_model.bin").exists() {
                " (found adapter_model.bin: pickle checkpoints are not read; save with safe_serialization=True)"
            } else {
                ""
            };
            return Err(Failure::new(
                ErrorClass::Io,
                format!(
                    "{}: no adapter_model.safetensors in this folder{hint}",
                    a.input.display()
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
        (a.input.clone(), None)
    };
    let src =
        FileSource::open(&st_path).with_context(|| format!("opening {}", st_path.display()))?;
    let st = safetensors_io::read_header(&st_path, &src)?;

    let mut meta = Metadata::new(match (&a.worker_id, &identity) {
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
    if !st.metadata.is_empty() {
        let m: serde_json::Map<String, serde_json::Value> = st
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let mut extra = serde_json::Map::new();
        extra.insert("safetensors_metadata".into(), serde_json::Value::Object(m));
        meta.extra = Some(extra);
    }
    meta.validate()
        .map_err(|e| Failure::new(ErrorClass::Malformed, format!("metadata: {e}")))?;

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
    let summary = delta::pack(&inputs, &opts, file.file(), &|n| {
        if let Some(pb) = &pb {
            pb.set_position(n)
        }
    })
    .with_context(|| format!("packing {}", a.input.display()))?;
    file.commit()?;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UnpackFormat {
    /// A PEFT folder when the delta carries an adapter config, else a .safetensors file.
    Auto,
    Safetensors,
    Peft,
}

/// Arguments of `gym delta unpack`.
#[derive(Debug, Args)]
pub struct UnpackArgs {
    #[arg(value_name = "IN.delta")]
    pub input: PathBuf,
    /// Output .safetensors file, or folder for a PEFT adapter.
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    #[arg(long, value_enum, default_value = "auto")]
    pub format: UnpackFormat,
    /// Require a signer from this file (see `gym delta verify --help`).
    #[arg(long, value_name = "FILE")]
    pub trusted_keys: Option<PathBuf>,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
}

fn open_delta(path: &Path) -> anyhow::Result<FileSource> {
    FileSource::open(path).with_context(|| format!("opening {}", path.display()))
}

fn unpack(ctx: &Ctx, a: UnpackArgs) -> anyhow::Result<()> {
    crate::core::atomic::check_writable(&a.output, a.force)?;
    let src = open_delta(&a.input)?;
    let scanned = Delta::scan(&src).with_context(|| format!("{}", a.input.display()))?;
    let peft = match a.format {
        UnpackFormat::Auto => scanned.metadata.adapter_config.is_some(),
        UnpackFormat::Safetensors => false,
        UnpackFormat::Peft => true,
    };
    if peft && scanned.metadata.adapter_config.is_none() {
        return Err(Failure::new(
            ErrorClass::Usage,
            format!(
                "{} carries no adapter_config, so it cannot be written as a PEFT folder (use --format safetensors)",
                a.input.display()
            ),
        )
        .into());
    }
    let mut opts = VerifyOptions::default();
    if let Some(p) = &a.trusted_keys {
        opts.trusted = Some(TrustedKeys::load(p)?);
    }
    let pb = ctx.progress(scanned.raw_bytes(), "unpacking");
    let progress = |n: u64| {
        if let Some(pb) = &pb {
            pb.set_position(n)
        }
    };
    let ctx_msg = || format!("unpacking {}", a.input.display());
    if peft {
        let dir = AtomicDir::create(&a.output, a.force)?;
        let st_path = dir.staging().join("adapter_model.safetensors");
        let f = std::fs::File::create(&st_path)
            .with_context(|| format!("creating {}", st_path.display()))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        let summary =
            delta::unpack_to_safetensors(&src, &opts, &mut w, &progress).with_context(ctx_msg)?;
        use std::io::Write as _;
        w.flush()
            .with_context(|| format!("writing {}", st_path.display()))?;
        let cfg = summary
            .report
            .delta
            .metadata
            .adapter_config
            .clone()
            .unwrap_or_default();
        let cfg_text = serde_json::to_string_pretty(&serde_json::Value::Object(cfg))? + "\n";
        std::fs::write(dir.staging().join("adapter_config.json"), cfg_text)?;
        dir.commit()?;
    } else {
        let mut file = AtomicFile::create(&a.output, a.force, None)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file.file());
        delta::unpack_to_safetensors(&src, &opts, &mut w, &progress).with_context(ctx_msg)?;
        use std::io::Write as _;
        w.flush()
            .with_context(|| format!("writing {}", a.output.display()))?;
        drop(w);
        file.commit()?;
    }
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    ctx.note(format!(
        "unpacked {} tensors ({}) to {}{}",
        scanned.tensors.len(),
        human_bytes(scanned.raw_bytes()),
        a.output.display(),
        if peft { " (PEFT adapter folder)" } else { "" }
    ));
    Ok(())
}

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

fn ratio(raw: u64, stored: u64) -> f64 {
    if stored == 0 {
        1.0
    } else {
        raw as f64 / stored as f64
    }
}

fn inspect(a: InspectArgs) -> anyhow::Result<()> {
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

/// Arguments of `gym delta verify`.
#[derive(Debug, Args)]
#[command(after_help = "\
A trusted-keys file has one signer per line: the Ed25519 public key (base64 or 64 hex digits,
optionally prefixed `ed25519:`), an optional `mldsa87:<base64>` key that then must sign too, and an
optional label; or a JSON line as printed by `gym key show --json`. Lines starting with # are
comments.

Exit codes: 0 all valid; 10 malformed; 11 unsupported; 12 checksum; 13 signature; 14 unsigned
or untrusted; 15 policy (stale or replayed sequence number, base hash); 16 a test vector did not
give its expected verdict. With several files, the code is that of the first failure.")]
pub struct VerifyArgs {
    #[arg(value_name = "IN.delta", required_unless_present = "vectors")]
    pub inputs: Vec<PathBuf>,
    /// Require every delta to be signed by a key in this file.
    #[arg(long, value_name = "FILE")]
    pub trusted_keys: Option<PathBuf>,
    /// Require a signature (from anyone) even without --trusted-keys.
    #[arg(long)]
    pub require_signature: bool,
    /// Reject deltas whose sequence number is below N.
    #[arg(long, value_name = "N")]
    pub min_seq: Option<u64>,
    /// Reject deltas whose base model hash differs.
    #[arg(long, value_parser = parse_hex32, value_name = "HEX")]
    pub base_hash: Option<String>,
    /// Check every test vector of a manifest against its expected verdict.
    #[arg(long, value_name = "MANIFEST.json", conflicts_with_all = ["inputs", "trusted_keys", "min_seq", "base_hash", "require_signature"])]
    pub vectors: Option<PathBuf>,
    /// Print JSON (format `gym-delta-verify/1`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, serde::Serialize)]
struct VerifyJson {
    file: PathBuf,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    class: Option<ErrorClass>,
    /// Stable error identifier (`DeltaError::kind`).
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    worker_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signer: Option<serde_json::Value>,
    trusted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    trusted_label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attestation: Option<serde_json::Value>,
}

fn failed(file: &Path, class: ErrorClass, kind: &'static str, msg: String) -> VerifyJson {
    VerifyJson {
        file: file.to_path_buf(),
        ok: false,
        class: Some(class),
        kind: Some(kind),
        exit_code: Some(class.exit_code()),
        error: Some(msg),
        digest: None,
        worker_id: None,
        seq: None,
        signer: None,
        trusted: false,
        trusted_label: None,
        attestation: None,
    }
}

fn passed(file: &Path, r: &VerifyReport) -> VerifyJson {
    let m = &r.delta.metadata;
    VerifyJson {
        file: file.to_path_buf(),
        ok: true,
        class: None,
        kind: None,
        exit_code: None,
        error: None,
        digest: Some(r.digest_hex()),
        worker_id: Some(m.worker_id.clone()),
        seq: Some(m.seq),
        signer: Some(signer_json(&r.delta)).filter(|v| !v.is_null()),
        trusted: r.trusted,
        trusted_label: r.trusted_label.clone(),
        attestation: Some(serde_json::json!({"type": m.attestation.kind, "verified": false})),
    }
}

fn verify_file(
    path: &Path,
    opts: &VerifyOptions,
) -> Result<VerifyReport, (ErrorClass, String, &'static str)> {
    let src = FileSource::open(path).map_err(|e| {
        (
            ErrorClass::Io,
            format!("opening {}: {e}", path.display()),
            "io",
        )
    })?;
    delta::verify(&src, opts).map_err(|e| (e.class(), e.to_string(), e.kind()))
}

fn verify(ctx: &Ctx, a: VerifyArgs) -> anyhow::Result<()> {
    if let Some(m) = &a.vectors {
        return verify_vectors(ctx, m, a.json);
    }
    let mut opts = VerifyOptions {
        trusted: None,
        require_signature: a.require_signature,
        min_seq: a.min_seq,
        base_hash: a.base_hash.clone(),
    };
    if let Some(p) = &a.trusted_keys {
        opts.trusted = Some(TrustedKeys::load(p)?);
    }
    let mut results = Vec::new();
    // Highest sequence number seen per signer, to catch a replay among the inputs.
    let mut last_seq: HashMap<[u8; 32], (u64, PathBuf)> = HashMap::new();
    for path in &a.inputs {
        let r = match verify_file(path, &opts) {
            Err((class, msg, kind)) => failed(path, class, kind, msg),
            Ok(rep) => {
                let seq = rep.delta.metadata.seq;
                let replay = rep.delta.signature.as_ref().and_then(|s| {
                    let prev = last_seq.get(&s.ed25519_public).cloned();
                    match prev {
                        Some((p, _)) if seq <= p => Some(DeltaError::ReplayedSequence {
                            seq,
                            previous: p,
                            worker_id: crate::core::keys::worker_id(&s.ed25519_public),
                        }),
                        _ => {
                            last_seq.insert(s.ed25519_public, (seq, path.clone()));
                            None
                        }
                    }
                });
                match replay {
                    Some(e) => failed(path, e.class(), e.kind(), e.to_string()),
                    None => passed(path, &rep),
                }
            }
        };
        results.push(r);
    }
    let first_fail = results
        .iter()
        .find(|r| !r.ok)
        .map(|r| r.class.unwrap_or(ErrorClass::Other));
    if a.json {
        out::json(&serde_json::json!({"format": "gym-delta-verify/1", "results": results}))?;
    } else {
        let mut s = String::new();
        for r in &results {
            if r.ok {
                let signer = match (&r.signer, &r.trusted_label) {
                    (Some(sig), Some(l)) => format!(
                        "signed by {} (trusted: {l})",
                        sig["worker_id"].as_str().unwrap_or("?")
                    ),
                    (Some(sig), None) if r.trusted => format!(
                        "signed by {} (trusted)",
                        sig["worker_id"].as_str().unwrap_or("?")
                    ),
                    (Some(sig), None) => {
                        format!("signed by {}", sig["worker_id"].as_str().unwrap_or("?"))
                    }
                    (None, _) => "unsigned".into(),
                };
                s.push_str(&format!(
                    "ok    {}  digest {}  {signer}, seq {}\n",
                    r.file.display(),
                    r.digest.as_deref().unwrap_or(""),
                    r.seq.unwrap_or(0)
                ));
            } else {
                s.push_str(&format!(
                    "FAIL  {}  {}: {}\n",
                    r.file.display(),
                    r.class.map(|c| c.as_str()).unwrap_or("other"),
                    r.error.as_deref().unwrap_or("")
                ));
            }
        }
        out::print(&s)?;
    }
    if let Some(class) = first_fail {
        let n = results.iter().filter(|r| !r.ok).count();
        ctx.note(format!(
            "{n} of {} deltas failed verification",
            results.len()
        ));
        return Err(Failure::new(class, String::new()).into());
    }
    Ok(())
}

fn verify_vectors(ctx: &Ctx, manifest_path: &Path, json: bool) -> anyhow::Result<()> {
    use crate::core::delta::vectors::{MANIFEST_FORMAT, Manifest};
    let text = std::fs::read_to_string(manifest_path)
        .with_context(|| format!("reading {}", manifest_path.display()))?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| {
        Failure::new(
            ErrorClass::Malformed,
            format!("{}: {e}", manifest_path.display()),
        )
    })?;
    if manifest.format != MANIFEST_FORMAT {
        return Err(Failure::new(
            ErrorClass::Unsupported,
            format!(
                "{}: format {:?}, expected {MANIFEST_FORMAT:?}",
                manifest_path.display(),
                manifest.format
            ),
        )
        .into());
    }
    let dir = manifest_path.parent().unwrap_or(Path::new("."));
    let mut rows = Vec::new();
    let mut mismatches = 0;
    for case in &manifest.vectors {
        let mut opts = VerifyOptions {
            min_seq: case.min_seq,
            base_hash: case.base_hash.clone(),
            ..Default::default()
        };
        if let Some(k) = &case.trusted_keys {
            opts.trusted = Some(TrustedKeys::load(&dir.join(k))?);
        }
        let path = dir.join(&case.file);
        let got = verify_file(&path, &opts);
        let (verdict, class, kind, detail, digest) = match &got {
            Ok(r) => ("valid", None, None, String::new(), Some(r.digest_hex())),
            Err((c, m, k)) => ("invalid", Some(c.as_str()), Some(*k), m.clone(), None),
        };
        let mut ok = verdict == case.expect && class == case.class.as_deref();
        if ok && case.error.is_some() && kind != case.error.as_deref() {
            ok = false;
        }
        if ok && case.expect == "valid" && case.digest.is_some() && digest != case.digest {
            ok = false;
        }
        if !ok {
            mismatches += 1;
        }
        rows.push(serde_json::json!({
            "file": case.file,
            "description": case.description,
            "expect": case.expect,
            "expect_class": case.class,
            "got": verdict,
            "got_class": class,
            "expect_error": case.error,
            "got_error": kind,
            "detail": detail,
            "pass": ok,
        }));
    }
    if json {
        out::json(&serde_json::json!({
            "format": "gym-delta-vectors-result/1",
            "manifest": manifest_path,
            "cases": rows.len(),
            "mismatches": mismatches,
            "results": rows,
        }))?;
    } else {
        let mut t = out::table(&["vector", "expected", "got", "result"]);
        for r in &rows {
            let fmt = |v: &serde_json::Value, c: &serde_json::Value| match c.as_str() {
                Some(c) => format!("{} ({c})", v.as_str().unwrap_or("")),
                None => v.as_str().unwrap_or("").to_string(),
            };
            t.add_row(vec![
                r["file"].as_str().unwrap_or("").to_string(),
                fmt(&r["expect"], &r["expect_class"]),
                fmt(&r["got"], &r["got_class"]),
                if r["pass"].as_bool().unwrap_or(false) {
                    "pass".into()
                } else {
                    "MISMATCH".into()
                },
            ]);
        }
        out::print(&format!(
            "{t}\n{} cases, {} passed, {mismatches} mismatched\n",
            rows.len(),
            rows.len() - mismatches
        ))?;
    }
    if mismatches > 0 {
        ctx.note(format!(
            "{mismatches} test vectors did not give their expected verdict"
        ));
        return Err(Failure::new(ErrorClass::Vectors, String::new()).into());
    }
    Ok(())
}

/// Arguments of `gym delta diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    #[arg(value_name = "A.delta")]
    pub a: PathBuf,
    #[arg(value_name = "B.delta")]
    pub b: PathBuf,
    /// Print JSON (format `gym-delta-diff/1`).
    #[arg(long)]
    pub json: bool,
}

fn diff(a: DiffArgs) -> anyhow::Result<()> {
    let sa = open_delta(&a.a)?;
    let sb = open_delta(&a.b)?;
    let ra = delta::verify(&sa, &VerifyOptions::default())
        .with_context(|| format!("{}", a.a.display()))?;
    let rb = delta::verify(&sb, &VerifyOptions::default())
        .with_context(|| format!("{}", a.b.display()))?;
    let report = delta::diff(&sa as &dyn Source, &ra.delta, &sb, &rb.delta)?;
    if a.json {
        out::json(&serde_json::json!({
            "format": "gym-delta-diff/1",
            "a": a.a, "b": a.b,
            "digest_a": ra.digest_hex(), "digest_b": rb.digest_hex(),
            "tensors": report.tensors,
        }))?;
        return Ok(());
    }
    let mut t = out::table(&["tensor", "status", "L2(a-b)", "max |a-b|", "cosine"]);
    let f = |v: Option<f64>| v.map(|x| format!("{x:.6e}")).unwrap_or_else(|| "-".into());
    for d in &report.tensors {
        t.add_row(vec![
            d.name.clone(),
            match (d.status, d.identical_bytes) {
                ("both", Some(true)) => "identical".to_string(),
                (s, _) => s.replace('_', " "),
            },
            f(d.l2),
            f(d.max_abs),
            d.cosine
                .map(|x| format!("{x:.6}"))
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    out::print(&format!("{t}\n"))?;
    Ok(())
}
