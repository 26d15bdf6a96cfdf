//! `gym delta unpack`: a DELTA file to .safetensors or a PEFT adapter folder.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use super::open_delta;
use crate::cmd::Failure;
use crate::cmd::out::{Ctx, human_bytes};
use crate::core::atomic::{AtomicDir, AtomicFile};
use crate::core::delta::{self, Delta, VerifyOptions};
use crate::core::error::ErrorClass;
use crate::core::keys::TrustedKeys;

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

pub(super) fn run(ctx: &Ctx, a: UnpackArgs) -> anyhow::Result<()> {
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
    let progress = |n: u64| pb.set_position(n);
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
    pb.finish();
    ctx.note(format!(
        "unpacked {} tensors ({}) to {}{}",
        scanned.tensors.len(),
        human_bytes(scanned.raw_bytes()),
        a.output.display(),
        if peft { " (PEFT adapter folder)" } else { "" }
    ));
    Ok(())
}
