//! `gym plot`: draw training curves from a metrics JSON Lines file into an SVG or a PNG (chosen
//! by the output's extension), one panel per metric against `step`: the reward as its mean with
//! a ±std band (and each reward function when there are several), then the other metrics; a
//! metric without values or that never changes (KL at β = 0) gets no panel.
//!
//! JSON output (`--json`), format `gym-plot/2`:
//! ```json
//! {"format": "gym-plot/2", "input": "metrics.jsonl", "output": "curves.png", "rows": 100,
//!  "width": 1200, "height": 1190,
//!  "panels": [{"title": "reward (mean ± std)", "lines": [{"name": "mean", "points": 100}],
//!              "band": 100}],
//!  "skipped": [{"metric": "kl", "reason": "constant at 0"}]}
//! ```

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use serde_json::json;

use super::Failure;
use super::out::{self, Ctx};
use crate::core::atomic;
use crate::core::error::ErrorClass;
use crate::core::plot;

/// Arguments of `gym plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// Metrics file written by `gym train` (JSON Lines, one object with `step` per line).
    #[arg(value_name = "METRICS.jsonl")]
    pub input: PathBuf,
    /// The picture to write: `.svg` or `.png` (1200 px wide, DejaVu Sans).
    #[arg(short, long, value_name = "FILE.svg|FILE.png")]
    pub output: PathBuf,
    /// Metrics to draw, one panel each, comma-separated.
    #[arg(
        long,
        value_name = "NAMES",
        value_delimiter = ',',
        default_value = "reward_mean,completion_len,kl,grad_norm,lr,loss"
    )]
    pub metrics: Vec<String>,
    /// Title above the panels (default: the input's file name).
    #[arg(long, value_name = "TEXT")]
    pub title: Option<String>,
    /// Replace the output if it exists.
    #[arg(long)]
    pub force: bool,
    /// Print a JSON summary (format `gym-plot/2`).
    #[arg(long)]
    pub json: bool,
}

pub fn run(ctx: &Ctx, a: PlotArgs) -> anyhow::Result<()> {
    let ext = a
        .output
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    let png = match ext.as_deref() {
        Some("svg") => false,
        Some("png") => true,
        _ => {
            return Err(Failure::new(
                ErrorClass::Unsupported,
                format!(
                    "{}: gym plot writes .svg or .png files (name the output FILE.svg or FILE.png)",
                    a.output.display()
                ),
            )
            .into());
        }
    };
    atomic::check_writable(&a.output, a.force)?;
    let origin = a.input.display().to_string();
    let text = std::fs::read_to_string(&a.input).with_context(|| format!("reading {origin}"))?;
    let rows = plot::parse_rows(&text, &origin)?;
    let metrics: Vec<String> = a
        .metrics
        .iter()
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .collect();
    let title = a.title.clone().unwrap_or_else(|| {
        a.input
            .file_name()
            .map_or_else(|| origin.clone(), |n| n.to_string_lossy().into_owned())
    });
    let (panels, skipped) = plot::panels(&rows, &metrics, &origin)?;
    let bytes = if png {
        plot::draw::png(&panels, &title)?
    } else {
        plot::draw::svg(&panels, &title)?.into_bytes()
    };
    atomic::write_file(&a.output, &bytes, a.force, None)?;
    let (width, height) = plot::draw::size(panels.len());
    if a.json {
        out::json(&json!({
            "format": "gym-plot/2",
            "input": origin,
            "output": a.output.display().to_string(),
            "rows": rows.len(),
            "width": width,
            "height": height,
            "panels": panels.iter().map(|p| json!({
                "title": p.title,
                "lines": p.lines.iter().map(|l| json!({"name": l.name, "points": l.points.len()})).collect::<Vec<_>>(),
                "band": p.band.len(),
            })).collect::<Vec<_>>(),
            "skipped": skipped.iter().map(|s| json!({"metric": s.metric, "reason": s.reason})).collect::<Vec<_>>(),
        }))?;
    } else {
        ctx.note(format!(
            "wrote {} ({} panels, {} rows)",
            a.output.display(),
            panels.len(),
            rows.len()
        ));
        for s in &skipped {
            ctx.note(format!("no panel for {}: {}", s.metric, s.reason));
        }
    }
    Ok(())
}
