//! `gym delta diff`: two DELTA files compared tensor by tensor.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use super::open_delta;
use crate::cmd::out;
use crate::core::delta::{self, DiffStatus, Source, VerifyOptions};

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

pub(super) fn run(a: DiffArgs) -> anyhow::Result<()> {
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
                (DiffStatus::Both, Some(true)) => "identical".to_string(),
                (s, _) => s.as_str().replace('_', " "),
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
