//! `gym plot`: draw training curves from a metrics JSON Lines file into an SVG or a PNG (chosen
//! by the output's extension), one panel per metric against `step`.
//!
//! JSON output (`--json`), format `gym-plot/1`:
//! ```json
//! {"format": "gym-plot/1", "input": "metrics.jsonl", "output": "curves.svg", "rows": 100,
//!  "metrics": [{"name": "reward_mean", "points": 100}, {"name": "kl", "points": 0}]}
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
    /// The picture to write: `.svg`, or `.png` (twice the size, 8×8 bitmap text).
    #[arg(short, long, value_name = "FILE.svg|FILE.png")]
    pub output: PathBuf,
    /// Metrics to draw, one panel each, comma-separated.
    #[arg(
        long,
        value_name = "NAMES",
        value_delimiter = ',',
        default_value = "reward_mean,kl,loss,clip_frac"
    )]
    pub metrics: Vec<String>,
    /// Title above the panels (default: the input's file name).
    #[arg(long, value_name = "TEXT")]
    pub title: Option<String>,
    /// Replace the output if it exists.
    #[arg(long)]
    pub force: bool,
    /// Print a JSON summary (format `gym-plot/1`).
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
    let scene = plot::scene(&rows, &metrics, &title, &origin)?;
    let bytes = if png {
        plot::png::to_png(&scene)
    } else {
        plot::to_svg(&scene).into_bytes()
    };
    atomic::write_file(&a.output, &bytes, a.force, None)?;
    let counts: Vec<(String, usize)> = metrics
        .iter()
        .map(|m| Ok((m.clone(), plot::series(&rows, m, &origin)?.len())))
        .collect::<Result<_, plot::PlotError>>()?;
    if a.json {
        out::json(&json!({
            "format": "gym-plot/1",
            "input": origin,
            "output": a.output.display().to_string(),
            "rows": rows.len(),
            "metrics": counts.iter().map(|(n, p)| json!({"name": n, "points": p})).collect::<Vec<_>>(),
        }))?;
    } else {
        let empty: Vec<&str> = counts
            .iter()
            .filter(|(_, p)| *p == 0)
            .map(|(n, _)| n.as_str())
            .collect();
        ctx.note(format!(
            "wrote {} ({} panels, {} rows)",
            a.output.display(),
            metrics.len(),
            rows.len()
        ));
        if !empty.is_empty() {
            ctx.note(format!("no values for: {}", empty.join(", ")));
        }
    }
    Ok(())
}
