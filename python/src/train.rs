//! `GSPOTrainer`: gym's trainer in-process. Each `train_epoch` runs the same loop as `gym train`
//! (same run folder, metrics, signed deltas, resumable state) with the GIL released; after each
//! optimiser step it takes the GIL briefly to report progress and to run Python's signal
//! handlers, so Ctrl-C stops at the next step with the state and adapter saved.

use std::path::{Path, PathBuf};

use candle_core::Device;
use gym::core::error::ErrorClass;
use gym::core::hub::cache::HubRef;
use gym::core::hub::download::{self, HubSettings};
use gym::core::keys::Identity;
use gym::core::model;
use gym::core::ring::config::RingSpec;
use gym::core::ring::net;
use gym::core::train::checkpoint::{self, DeltaWritten, RunDir};
use gym::core::train::config::{TOY_DATA, TOY_REWARD, TrainConfig};
use gym::core::train::data::{self, ChatTemplate, Example};
use gym::core::train::scoring::{ScoreSpec, Scorer};
use gym::core::train::trainer::{self, Observer, StepMetrics, TrainError, Trainer};
use pyo3::prelude::*;

use crate::errors::{IntoPy, fail};

/// Settings given to the constructor.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub struct TrainerOptions {
    model: Option<PathBuf>,
    use_4bit: bool,
    /// None: 0, or this member's position when `ring` is given.
    ring_position: Option<u64>,
    /// Average with a ring after each epoch, as `gym train --ring`.
    ring: Option<crate::ring::RingSource>,
    ring_timeout: f64,
    ring_connect_timeout: f64,
    key: Option<PathBuf>,
    output: PathBuf,
    force: bool,
    /// GSPO/TRL settings (`gym train --config` key names), as a JSON object.
    config_json: String,
}

/// The trainer lives on the thread that made it (candle's model types are not all `Send`).
#[pyclass(unsendable, module = "gym_protocol._native")]
pub struct NativeTrainer {
    t: Trainer,
    identity: std::sync::Arc<Identity>,
    ring: Option<RingSetup>,
    base_hash: String,
    output: PathBuf,
    stream: u64,
    started: bool,
}

fn resolve_config(model: Option<&Path>, use_4bit: bool, json: &str) -> anyhow::Result<TrainConfig> {
    let base = if model.is_none() {
        TrainConfig::toy()
    } else {
        TrainConfig::default()
    };
    let mut map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json)
        .map_err(|e| fail(ErrorClass::Usage, format!("gspo_config: {e}")))?;
    let rewards = map.remove("reward").map(reward_specs).transpose()?;
    let table: toml::Table = serde_json::from_value(map.into())
        .map_err(|e| fail(ErrorClass::Usage, format!("gspo_config: {e}")))?;
    let text = toml::to_string(&table)
        .map_err(|e| fail(ErrorClass::Usage, format!("gspo_config: {e}")))?;
    let mut cfg = TrainConfig::from_toml(&text, Path::new("<gspo_config>"), &base)?;
    cfg.model = model.map(Path::to_path_buf);
    cfg.use_4bit = use_4bit;
    if let Some(r) = rewards {
        cfg.reward = r;
    }
    if cfg.reward.is_empty() {
        cfg.reward = vec![TOY_REWARD.parse()?];
    }
    cfg.validate()?;
    Ok(cfg)
}

/// `reward=`: a spec string (`coverage:[0-9]@0.5`, as `--reward`), a `[[reward]]` table as a
/// dict, or a list of either.
fn reward_specs(v: serde_json::Value) -> anyhow::Result<Vec<ScoreSpec>> {
    let items = match v {
        serde_json::Value::Array(a) => a,
        other => vec![other],
    };
    items
        .into_iter()
        .map(|item| -> anyhow::Result<ScoreSpec> {
            Ok(match item {
                serde_json::Value::String(s) => s.parse()?,
                other => serde_json::from_value(other)
                    .map_err(|e| fail(ErrorClass::Usage, format!("gspo_config reward: {e}")))?,
            })
        })
        .collect()
}

type Loaded = (model::Qwen3, tokenizers::Tokenizer, String);

fn load_model(cfg: &TrainConfig) -> anyhow::Result<Loaded> {
    let dev = Device::Cpu;
    Ok(match &cfg.model {
        Some(dir) => (
            model::load_with(
                dir,
                &dev,
                model::LoadOptions {
                    nf4: cfg.use_4bit,
                    double_quant: trainer::NF4_DOUBLE_QUANT,
                },
            )
            .map_err(|e| anyhow::Error::new(e).context(format!("loading {}", dir.display())))?,
            model::load_tokenizer(dir)?,
            trainer::base_hash_dir(dir)?,
        ),
        None => {
            let (m, t) = model::embedded::tiny_qwen3(&dev)?;
            let h = trainer::base_hash_files(&[(
                "model.safetensors".into(),
                model::embedded::TINY_WEIGHTS.to_vec(),
            )]);
            (m, t, h)
        }
    })
}

fn load_identity(key: Option<&Path>, out: &Path) -> anyhow::Result<Identity> {
    if let Some(p) = key {
        return Identity::load(p).map_err(|e| {
            anyhow::Error::new(e).context(format!("loading signing key {}", p.display()))
        });
    }
    let p = out.join("worker.key");
    if p.exists() {
        return Ok(Identity::load(&p)?);
    }
    let id = Identity::generate(false);
    id.save(&p, false)?;
    Ok(id)
}

/// The dataset: JSON lines text (from Python dicts), or a file path.
fn examples(
    cfg: &TrainConfig,
    jsonl: Option<&str>,
    path: Option<&Path>,
) -> anyhow::Result<Vec<Example>> {
    let chat = match cfg.model.as_deref() {
        Some(dir) => gym::core::chat::ChatTemplate::from_model_dir(dir)?,
        None => Some(gym::core::chat::ChatTemplate::qwen3()),
    };
    let template = ChatTemplate::from_model(chat.as_ref(), cfg.enable_thinking);
    Ok(match (jsonl, path) {
        (Some(text), _) => data::parse_jsonl(text, "<dataset>", template)?,
        (None, Some(p)) => data::load_jsonl(p, template)?,
        (None, None) => data::parse_jsonl(TOY_DATA, "<bundled toy task>", template)?,
    })
}

/// What each epoch needs to join the ring (a [`checkpoint::RingPlan`] is made from it).
struct RingSetup {
    spec: RingSpec,
    me: usize,
    opts: net::JoinOptions,
}

impl RingSetup {
    fn new(o: &TrainerOptions, identity: &Identity) -> anyhow::Result<Option<RingSetup>> {
        let Some(src) = &o.ring else {
            return Ok(None);
        };
        let (spec, path) = src.load()?;
        let me = spec.member_index(identity, &path)?;
        if let Some(p) = o.ring_position
            && p != me as u64
        {
            return Err(fail(
                ErrorClass::Usage,
                format!("ring_position {p}: this key is member {me} of the ring"),
            ));
        }
        let opts = net::JoinOptions {
            step_timeout: crate::ring::seconds(o.ring_timeout, "ring_timeout")?,
            connect_timeout: crate::ring::seconds(o.ring_connect_timeout, "ring_connect_timeout")?,
            listen: None,
        };
        Ok(Some(RingSetup { spec, me, opts }))
    }

    fn plan(&self, identity: &std::sync::Arc<Identity>) -> checkpoint::RingPlan {
        checkpoint::RingPlan {
            spec: self.spec.clone(),
            me: self.me,
            identity: identity.clone(),
            opts: self.opts,
            progress: std::sync::Arc::new(|_m: String| {}),
        }
    }
}

/// `model_name`: a local folder as it is; else a hub id `ORG/NAME[@REV]`, fetched into the
/// Hugging Face cache the way `gym train --model` does (core `hub::download::model`, settings
/// from `HF_ENDPOINT`, `HF_TOKEN`, `HF_HOME`, `HF_HUB_CACHE`, `HF_HUB_OFFLINE`).
fn resolve_model(spec: &Path) -> anyhow::Result<PathBuf> {
    if spec.is_dir() {
        return Ok(spec.to_path_buf());
    }
    let Some(r) = spec.to_str().and_then(HubRef::parse) else {
        return Err(fail(
            ErrorClass::Usage,
            format!(
                "model_name {:?}: neither a local model folder nor a hub id (ORG/NAME[@REV])",
                spec.display().to_string()
            ),
        ));
    };
    let settings = HubSettings::from_env(&|k| std::env::var(k).ok());
    let snap = download::model(&settings, &r, &download::Silent).map_err(|e| {
        anyhow::Error::new(e).context(format!(
            "{} is not a local folder; as a Hugging Face Hub model id",
            spec.display()
        ))
    })?;
    Ok(snap.dir)
}

/// Builds everything the constructor needs, without the GIL.
fn build(o: &TrainerOptions) -> anyhow::Result<NativeTrainer> {
    let model = o.model.as_deref().map(resolve_model).transpose()?;
    let cfg = resolve_config(model.as_deref(), o.use_4bit, &o.config_json)?;
    checkpoint::check_fresh(&o.output, o.force)?;
    std::fs::create_dir_all(&o.output)
        .map_err(|e| anyhow::Error::new(e).context(format!("creating {}", o.output.display())))?;
    if o.force {
        let _ = std::fs::remove_file(o.output.join("metrics.jsonl"));
        let _ = std::fs::remove_dir_all(o.output.join("state"));
        let _ = std::fs::remove_dir_all(o.output.join("deltas"));
    }
    let (m, tok, base_hash) = load_model(&cfg)?;
    let scorer = Scorer::new(&cfg.reward)?;
    let identity = std::sync::Arc::new(load_identity(o.key.as_deref(), &o.output)?);
    let ring = RingSetup::new(o, &identity)?;
    let stream = ring
        .as_ref()
        .map_or(o.ring_position.unwrap_or(0), |r| r.me as u64)
        + 1;
    checkpoint::write_config(&o.output, &cfg)?;
    // placeholder data until the first epoch names its own (Trainer::new needs one example)
    let data = examples(&cfg, None, None)?;
    let mut t = Trainer::new(cfg, m, tok, data, scorer)?;
    t.set_stream(stream);
    Ok(NativeTrainer {
        t,
        identity,
        ring,
        base_hash,
        output: o.output.clone(),
        stream,
        started: false,
    })
}

/// Wraps the run folder: after each step, reports to Python and runs its signal handlers.
struct PyObserver<'a, 'b> {
    run: RunDir<'a>,
    callback: Option<&'b Py<PyAny>>,
    /// The Python exception (KeyboardInterrupt, or the callback's own) that stopped the run.
    raised: Option<PyErr>,
}

impl Observer for PyObserver<'_, '_> {
    fn step(&mut self, m: &StepMetrics, t: &Trainer) -> trainer::Result<()> {
        let before = self.run.deltas.len();
        self.run.step(m, t)?;
        let delta = self
            .run
            .deltas
            .get(before)
            .map(|d| d.path.display().to_string());
        let metrics = serde_json::to_string(m).unwrap_or_default();
        let res = Python::attach(|py| -> PyResult<()> {
            if let Some(cb) = self.callback {
                cb.call1(py, (metrics, delta))?;
            }
            py.check_signals()
        });
        if let Err(e) = res {
            self.raised = Some(e);
            return Err(TrainError::Invalid("stopped from Python".into()));
        }
        Ok(())
    }
    fn rollout_done(&mut self, t: &Trainer) -> trainer::Result<()> {
        self.run.rollout_done(t)
    }
}

/// What one epoch produced.
struct EpochResult {
    deltas: Vec<DeltaWritten>,
    /// The ring's averaged deltas of this epoch (with `ring=`).
    aggregated: Vec<checkpoint::Aggregated>,
    adapter: PathBuf,
    raised: Option<PyErr>,
}

impl NativeTrainer {
    fn epoch(
        &mut self,
        steps: usize,
        callback: Option<&Py<PyAny>>,
        data: Option<Vec<Example>>,
    ) -> anyhow::Result<EpochResult> {
        let mut ignore = |_: &StepMetrics, _: Option<&DeltaWritten>| {};
        let mut run = RunDir::new(
            &self.output,
            &*self.identity,
            self.base_hash.clone(),
            "cpu".into(),
            &self.t,
            &mut ignore,
        );
        if self.started {
            run.resume(&mut self.t)?;
        }
        if let Some(d) = data {
            self.t.data = d.into();
            self.t.set_stream(self.stream);
        }
        self.started = true;
        self.t.cfg.max_steps = self.t.step + steps;
        if self.t.cfg.aggregate_interval > steps || steps % self.t.cfg.aggregate_interval != 0 {
            self.t.cfg.aggregate_interval = steps;
        }
        if let Some(r) = &self.ring {
            let per = self.t.cfg.steps_per_rollout().max(1);
            if self.t.cfg.aggregate_interval % per != 0 {
                return Err(fail(
                    ErrorClass::Usage,
                    format!(
                        "with a ring, aggregate_interval ({}) must be a multiple of the optimiser steps per rollout ({per})",
                        self.t.cfg.aggregate_interval
                    ),
                ));
            }
            run.set_ring(Some(r.plan(&self.identity)), &self.t)?;
        }
        let mut obs = PyObserver {
            run,
            callback,
            raised: None,
        };
        let res = self.t.run(&mut obs);
        if res.is_err() && obs.raised.is_none() {
            res?;
        }
        // Stopped from Python between the steps of one rollout batch, the state would not resume
        // to the same run: keep the one saved at the last batch boundary instead.
        if obs.raised.is_none() || self.t.step % self.t.cfg.steps_per_rollout().max(1) == 0 {
            obs.run.save_state(&self.t)?;
        }
        let adapter = obs.run.save_adapter(&self.t, "adapter")?;
        Ok(EpochResult {
            deltas: obs.run.deltas.clone(),
            aggregated: obs.run.aggregated.clone(),
            adapter,
            raised: obs.raised,
        })
    }
}

/// What `train` returns to Python: deltas, adapter folder, averaged deltas.
type Epoch = (
    Vec<(String, u64, usize, String)>,
    String,
    Vec<(String, u64, usize, String)>,
);

#[pymethods]
impl NativeTrainer {
    #[new]
    fn new(py: Python<'_>, options: TrainerOptions) -> PyResult<Self> {
        let b = crate::SendBox(&options);
        py.detach(move || build(b.0).map(crate::SendBox))
            .py_err()
            .map(|b| b.0)
    }

    /// Optimiser steps one pass over `n` prompts takes.
    fn steps_for(&self, n: usize) -> usize {
        let c = &self.t.cfg;
        let rollouts = n.div_ceil(c.prompts_per_generation().max(1)).max(1);
        rollouts * c.steps_per_rollout()
    }

    /// Trains `steps` optimiser steps on the dataset (JSON lines, or a file, or the data
    /// already set). Returns (deltas written: [(path, seq, step, digest)], adapter folder,
    /// the ring's averaged deltas: [(path, round, members, digest)]).
    #[pyo3(signature = (steps, jsonl=None, path=None, callback=None))]
    fn train(
        &mut self,
        py: Python<'_>,
        steps: usize,
        jsonl: Option<String>,
        path: Option<PathBuf>,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<Epoch> {
        if steps == 0 {
            return Err(fail(ErrorClass::Usage, "steps must be at least 1")).py_err();
        }
        let data = if jsonl.is_some() || path.is_some() {
            Some(examples(&self.t.cfg, jsonl.as_deref(), path.as_deref()).py_err()?)
        } else {
            None
        };
        let me = crate::SendBox(self);
        let cb = callback.as_ref();
        let cbs = crate::SendBox(&cb);
        let r = py
            .detach(move || me.0.epoch(steps, *cbs.0, data).map(crate::SendBox))
            .py_err()?
            .0;
        if let Some(e) = r.raised {
            return Err(e);
        }
        let deltas = r
            .deltas
            .into_iter()
            .map(|d| (d.path.display().to_string(), d.seq, d.step, d.digest))
            .collect();
        let aggregated = r
            .aggregated
            .into_iter()
            .map(|a| (a.path.display().to_string(), a.round, a.members, a.digest))
            .collect();
        Ok((deltas, r.adapter.display().to_string(), aggregated))
    }

    #[getter]
    fn step(&self) -> usize {
        self.t.step
    }
    #[getter]
    fn worker_id(&self) -> String {
        self.identity.public().worker_id()
    }
    #[getter]
    fn output(&self) -> String {
        self.output.display().to_string()
    }
    #[getter]
    fn config_toml(&self) -> String {
        self.t.cfg.to_toml()
    }
}
