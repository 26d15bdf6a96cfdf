//! `gym download`: a model or dataset by hub id into the Hugging Face cache, the way
//! `huggingface-cli download` fills it; prints the snapshot folder. Also the resolution of
//! `--model ORG/NAME[@REV]` and `--data ORG/NAME[@REV]` for `gym train`.
//!
//! Settings come from the environment as `huggingface_hub` reads it: `HF_ENDPOINT`,
//! `HF_TOKEN`, `HF_HOME`, `HF_HUB_CACHE`, `HF_HUB_OFFLINE`, `HF_HUB_DISABLE_PROGRESS_BARS`.
//!
//! JSON output (`--json`), format `gym-download/1`:
//! ```json
//! {"format": "gym-download/1", "repo": "Qwen/Qwen3-0.6B", "kind": "model",
//!  "revision": "main", "commit": "c1899de…", "dir": "/root/.cache/huggingface/hub/models--Qwen--Qwen3-0.6B/snapshots/c1899de…",
//!  "offline": false,
//!  "files": [{"path": "config.json", "size": 726, "etag": "…", "origin": "downloaded"}]}
//! ```
//! `origin` is `cached`, `downloaded` or `resumed` (continued from an interrupted download).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::out::{self, Ctx};
use crate::core::hub::cache::HubRef;
use crate::core::hub::download::{self, HubSettings, Origin, Progress, Snapshot};
use crate::core::train::data::ChatTemplate;
use crate::core::train::dataset::{self, Columns, Examples};

#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// Repository id with an optional branch, tag or commit: ORG/NAME[@REVISION].
    #[arg(value_name = "ORG/NAME[@REV]")]
    pub repo: String,
    /// A dataset repository (default: a model: config, tokenizer, generation config and the
    /// safetensors weights, shards by their index).
    #[arg(long)]
    pub dataset: bool,
    /// With --dataset: the split whose data files to fetch.
    #[arg(long, value_name = "NAME", default_value = "train")]
    pub split: String,
    /// With --dataset: the configuration (first folder) when the split exists in several.
    #[arg(long, value_name = "NAME")]
    pub data_config: Option<String>,
    /// Print JSON (format `gym-download/1`).
    #[arg(long)]
    pub json: bool,
}

/// One byte progress bar on stderr for all files of a snapshot (a terminal only; not with
/// --quiet or HF_HUB_DISABLE_PROGRESS_BARS).
struct Bars {
    show: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl Bars {
    fn new(ctx: &Ctx) -> Bars {
        let disabled = std::env::var("HF_HUB_DISABLE_PROGRESS_BARS")
            .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"));
        Bars {
            show: !ctx.quiet && !disabled && std::io::stderr().is_terminal(),
            bar: Mutex::new(None),
        }
    }

    fn done(&self) {
        if let Some(pb) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
            pb.finish_and_clear();
        }
    }
}

impl Progress for Bars {
    fn start(&self, path: &str, size: u64, done: u64) {
        if !self.show {
            return;
        }
        let mut slot = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        let pb = slot.get_or_insert_with(|| {
            let pb = ProgressBar::new(0);
            pb.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            pb
        });
        pb.inc_length(size);
        pb.inc(done);
        pb.set_message(format!("downloading {path}"));
    }

    fn advance(&self, bytes: u64) {
        if let Some(pb) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            pb.inc(bytes);
        }
    }

    fn finish(&self, _path: &str) {}
}

fn settings() -> HubSettings {
    HubSettings::from_env(&|k| std::env::var(k).ok())
}

/// One line about what a snapshot took from where.
fn summary(s: &Snapshot) -> String {
    let count = |o: Origin| s.files.iter().filter(|f| f.origin == o).count();
    let bytes: u64 = s
        .files
        .iter()
        .filter(|f| f.origin != Origin::Cached)
        .map(|f| f.size)
        .sum();
    format!(
        "{} {}@{} ({}): {} files, {} downloaded ({bytes} bytes), {} resumed, {} from the cache{}",
        match s.kind {
            crate::core::hub::cache::RepoType::Model => "model",
            crate::core::hub::cache::RepoType::Dataset => "dataset",
        },
        s.repo,
        s.revision,
        &s.commit[..12.min(s.commit.len())],
        s.files.len(),
        count(Origin::Downloaded),
        count(Origin::Resumed),
        count(Origin::Cached),
        if s.offline { " (offline)" } else { "" }
    )
}

fn parse_ref(s: &str) -> anyhow::Result<HubRef> {
    HubRef::parse(s).ok_or_else(|| {
        super::Failure::new(
            crate::core::error::ErrorClass::Usage,
            format!("{s:?} is not a hub id (expected ORG/NAME or ORG/NAME@REVISION)"),
        )
        .into()
    })
}

fn fetch_dataset(
    ctx: &Ctx,
    r: &HubRef,
    split: &str,
    config: Option<&str>,
) -> anyhow::Result<Snapshot> {
    let bars = Bars::new(ctx);
    let repo = r.repo.to_string();
    let snap = download::dataset(&settings(), r, &bars, &|listing| {
        dataset::split_files(&repo, listing, split, config).map_err(|e| e.to_string())
    });
    bars.done();
    let snap = snap?;
    ctx.note(summary(&snap));
    Ok(snap)
}

fn fetch_model(ctx: &Ctx, r: &HubRef) -> anyhow::Result<Snapshot> {
    let bars = Bars::new(ctx);
    let snap = download::model(&settings(), r, &bars);
    bars.done();
    let snap = snap?;
    ctx.note(summary(&snap));
    Ok(snap)
}

pub fn run(ctx: &Ctx, a: DownloadArgs) -> anyhow::Result<()> {
    let r = parse_ref(&a.repo)?;
    let snap = if a.dataset {
        fetch_dataset(ctx, &r, &a.split, a.data_config.as_deref())?
    } else {
        fetch_model(ctx, &r)?
    };
    if a.json {
        let mut v = serde_json::to_value(&snap)?;
        v.as_object_mut()
            .map(|o| o.insert("format".into(), "gym-download/1".into()));
        return out::json(&v);
    }
    out::println(&snap.dir.display().to_string())?;
    Ok(())
}

/// `--model`: a folder as it is; else a hub id, resolved through the cache. Returns the folder
/// and the name to show.
pub fn model_dir(ctx: &Ctx, spec: &Path) -> anyhow::Result<(PathBuf, String)> {
    let shown = spec.display().to_string();
    if spec.exists() {
        return Ok((spec.to_path_buf(), shown));
    }
    let Some(r) = spec.to_str().and_then(HubRef::parse) else {
        return Ok((spec.to_path_buf(), shown)); // the loader names the missing folder
    };
    let snap = fetch_model(ctx, &r).with_context(|| {
        format!("{shown} is not a local folder; as a Hugging Face Hub model id")
    })?;
    Ok((snap.dir, format!("{r} ({})", &snap.commit[..12])))
}

/// Where `--data` points and how to read it.
pub struct DataSpec<'a> {
    pub spec: &'a Path,
    pub split: &'a str,
    pub config: Option<&'a str>,
    pub columns: Columns,
}

/// `--data`: a local JSONL / JSON / Parquet file; else a hub dataset id, its split's files
/// fetched through the cache. Returns the examples and the name to show.
pub fn load_data(
    ctx: &Ctx,
    d: &DataSpec,
    template: ChatTemplate<'_>,
) -> anyhow::Result<(Examples, String)> {
    let shown = d.spec.display().to_string();
    let hub = (!d.spec.exists())
        .then(|| d.spec.to_str().and_then(HubRef::parse))
        .flatten();
    let Some(r) = hub else {
        let ex = dataset::load_files(&[d.spec.to_path_buf()], &d.columns, template)?;
        return Ok((ex, shown));
    };
    let snap = fetch_dataset(ctx, &r, d.split, d.config).with_context(|| {
        format!("{shown} is not a local file; as a Hugging Face Hub dataset id")
    })?;
    let paths: Vec<PathBuf> = snap.files.iter().map(|f| snap.dir.join(&f.path)).collect();
    let ex = dataset::load_files(&paths, &d.columns, template)?;
    Ok((
        ex,
        format!("{r} split {} ({})", d.split, &snap.commit[..12]),
    ))
}
