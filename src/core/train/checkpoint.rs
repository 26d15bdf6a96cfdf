//! The output folder of a training run and everything written into it:
//!
//! ```text
//! OUTPUT/
//!   config.toml              resolved settings of the run
//!   metrics.jsonl            one StepMetrics per optimiser step
//!   state/                   resumable state (replaced atomically at each save)
//!     state.json             step, rollouts, data sampler, counters, delta chain
//!     lora.safetensors       LoRA factors (PEFT names)
//!     optim.safetensors      AdamW moments m.<i>, v.<i>
//!   checkpoint-<step>/       PEFT adapter folders (adapter_config.json + adapter_model.safetensors)
//!   adapter/                 the final PEFT adapter
//!   deltas/delta-<seq>.delta signed DELTA files of the LoRA update, every aggregate_interval steps
//!   deltas/update-<seq>.delta with --ring: the signed update since the round's start (its input)
//!   deltas/ring-<seq>.delta   with --ring: the ring's mean update
//!   deltas/avg-<seq>.delta    with --ring: the factors every member continues from
//! ```
//!
//! A state is saved only after a whole rollout batch has been used, so resuming needs no
//! partial batch; metrics and deltas written after the last state (by a run that was killed)
//! are dropped and written again, identically but for timestamps and timings.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use candle_core::{Device::Cpu, Tensor};
use serde::{Deserialize, Serialize};

use super::config::TrainConfig;
use super::data::Sampler;
use super::trainer::{Observer, Result, StepMetrics, TrainError, Trainer, lora_tensors};
use crate::core::atomic::{self, AtomicDir};

mod ring;
use crate::core::delta::{self, Compression, Compute, Dtype, Metadata};
use crate::core::keys::Identity;
use crate::core::model::lora;

pub const STATE_FORMAT: &str = "gym-train-state/1";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub format: String,
    pub step: usize,
    pub rollouts: usize,
    pub optim_step: u64,
    pub sampler: Sampler,
    pub train_tokens: u64,
    pub gen_tokens: u64,
    /// Last delta written: its sequence number and body digest (the next one's parent).
    pub delta_seq: u64,
    pub parent_hash: Option<String>,
    /// Training tokens and wall seconds accumulated since the last delta.
    pub tokens_since_delta: u64,
    pub seconds_since_delta: f64,
    pub seconds_total: f64,
    /// Deltas released under differential privacy so far (the accountant's rounds).
    #[serde(default)]
    pub dp_rounds: u64,
    /// The settings that change results; a resume with different ones is refused.
    pub fingerprint: serde_json::Map<String, serde_json::Value>,
}

/// Where a delta, once written, is reported.
#[derive(Debug, Clone, Serialize)]
pub struct DeltaWritten {
    pub path: PathBuf,
    pub seq: u64,
    pub step: usize,
    pub digest: String,
    /// With a norm bound: the update's norm before clipping; with DP noise also (ε, δ) so far.
    pub privacy: Option<PrivacyNote>,
}

/// What the norm bound and DP did to one delta (also in its metadata, `extra.dp`).
#[derive(Debug, Clone, Serialize)]
pub struct PrivacyNote {
    pub clip: f64,
    pub update_norm: f64,
    pub noise_multiplier: f64,
    pub sigma: f64,
    pub spent: Option<crate::core::validate::rdp::Spent>,
}

/// The worker's side of the norm bound and DP: the factors every update is measured from
/// (the last released delta, or the ring's mean) and the accountant.
pub struct Privacy {
    pub clip: f64,
    pub noise_multiplier: f64,
    pub accountant: Option<crate::core::validate::rdp::Accountant>,
    pub start: Vec<f32>,
}

impl Privacy {
    pub fn new(cfg: &super::config::TrainConfig, t: &Trainer) -> Result<Option<Self>> {
        let Some(clip) = cfg.clip_norm() else {
            return Ok(None);
        };
        let z = cfg.dp_noise_multiplier.unwrap_or(0.0);
        let accountant = (z > 0.0).then(|| {
            crate::core::validate::rdp::Accountant::new(
                z,
                cfg.dp_delta.unwrap_or(1e-5),
                cfg.dp_epsilon,
            )
        });
        Ok(Some(Privacy {
            clip,
            noise_multiplier: z,
            accountant,
            start: flat(&lora_tensors(&t.model)?),
        }))
    }
}

impl Privacy {
    /// Measures the next updates from the factors the model holds now (an orchestrated
    /// round's starting aggregate).
    pub fn restart(&mut self, t: &Trainer) -> Result<()> {
        self.start = flat(&lora_tensors(&t.model)?);
        Ok(())
    }
}

fn flat(ts: &[super::trainer::NamedTensor]) -> Vec<f32> {
    ts.iter().flat_map(|(_, v, _)| v.iter().copied()).collect()
}

pub fn io_err(path: &Path) -> impl Fn(std::io::Error) -> TrainError + '_ {
    move |e| TrainError::Io(format!("{}: {e}", path.display()))
}

/// Averaging with other workers every `aggregate_interval` steps (`gym train --ring`).
pub struct RingPlan {
    /// The ring file as given; round r of this run uses round `spec.round + r`.
    pub spec: crate::core::ring::config::RingSpec,
    pub me: usize,
    pub identity: std::sync::Arc<Identity>,
    pub opts: crate::core::ring::net::JoinOptions,
    pub progress: crate::core::ring::net::Progress,
}

/// What an aggregation gave: the averaged delta (identical bytes at every member).
#[derive(Debug, Clone, Serialize)]
pub struct Aggregated {
    pub path: PathBuf,
    pub round: u64,
    pub members: usize,
    pub digest: String,
}

/// Persists a run; wraps the caller's observer (progress display).
pub struct RunDir<'a> {
    pub dir: PathBuf,
    pub identity: &'a Identity,
    pub base_hash: String,
    /// The compute record's device and each metrics line's `device`
    /// ([`crate::core::device::DeviceInfo::label`]).
    pub device: String,
    /// Epoch number written to delta metadata: the aggregation round (step / interval).
    pub deltas: Vec<DeltaWritten>,
    pub state: State,
    started: std::time::Instant,
    seconds_at_start: f64,
    /// `Trainer::train_tokens` at the last step seen, and the step of the last saved state.
    last_train_tokens: u64,
    saved_at: usize,
    /// Set with [`RunDir::set_ring`], which also records the first round's start.
    ring: Option<RingPlan>,
    /// With a ring: the factors the current round started from (the last agreed mean, or the
    /// initialisation), flattened; set by [`RunDir::set_ring`].
    ring_start: Vec<f32>,
    /// The epoch the deltas name: an orchestrated job's epoch (rounds / rounds per epoch);
    /// `None`: the aggregations so far (step / aggregate_interval).
    pub epoch: Option<u64>,
    /// Norm bound and differential privacy (None: deltas are released as trained).
    pub privacy: Option<Privacy>,
    pub aggregated: Vec<Aggregated>,
    aggregated_this_rollout: bool,
    pub inner: &'a mut dyn FnMut(&StepMetrics, Option<&DeltaWritten>),
}

/// The 1-D f32 tensor `name` of the safetensors file at `path`.
fn load_vec(path: &Path, name: &str) -> Result<Vec<f32>> {
    let m = candle_core::safetensors::load(path, &Cpu)?;
    let s = m.get(name).ok_or_else(|| {
        TrainError::State(format!("{}: tensor {name} is missing", path.display()))
    })?;
    Ok(s.to_vec1::<f32>()?)
}

fn save_tensors(map: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    candle_core::safetensors::save(map, path)?;
    Ok(())
}

impl<'a> RunDir<'a> {
    pub fn new(
        dir: &Path,
        identity: &'a Identity,
        base_hash: String,
        device: String,
        t: &Trainer,
        inner: &'a mut dyn FnMut(&StepMetrics, Option<&DeltaWritten>),
    ) -> Self {
        RunDir {
            dir: dir.to_path_buf(),
            identity,
            base_hash,
            device,
            deltas: Vec::new(),
            state: State {
                format: STATE_FORMAT.into(),
                step: 0,
                rollouts: 0,
                optim_step: 0,
                sampler: t.sampler.clone(),
                train_tokens: 0,
                gen_tokens: 0,
                delta_seq: 0,
                parent_hash: None,
                tokens_since_delta: 0,
                seconds_since_delta: 0.0,
                seconds_total: 0.0,
                dp_rounds: 0,
                fingerprint: t.cfg.fingerprint(),
            },
            started: std::time::Instant::now(),
            seconds_at_start: 0.0,
            last_train_tokens: 0,
            saved_at: 0,
            ring: None,
            ring_start: Vec::new(),
            epoch: None,
            privacy: None,
            aggregated: Vec::new(),
            aggregated_this_rollout: false,
            inner,
        }
    }

    pub fn metrics_path(&self) -> PathBuf {
        self.dir.join("metrics.jsonl")
    }

    fn elapsed(&self) -> f64 {
        self.seconds_at_start + self.started.elapsed().as_secs_f64()
    }

    /// Writes the resumable state of `t` (atomically replacing the previous one).
    pub fn save_state(&mut self, t: &Trainer) -> Result<()> {
        let path = self.dir.join("state");
        let staged = AtomicDir::create(&path, true).map_err(TrainError::Output)?;
        let lora: HashMap<String, Tensor> = lora::trainable(&t.model)
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().detach()))
            .collect();
        save_tensors(&lora, &staged.staging().join("lora.safetensors"))?;
        let mut om = HashMap::new();
        for (i, (m, v)) in t.opt.m.iter().zip(&t.opt.v).enumerate() {
            om.insert(format!("m.{i}"), m.clone());
            om.insert(format!("v.{i}"), v.clone());
        }
        save_tensors(&om, &staged.staging().join("optim.safetensors"))?;
        if let Some(p) = &self.privacy {
            let s = Tensor::from_slice(&p.start, p.start.len(), &Cpu)?;
            let map = HashMap::from([("start".to_string(), s)]);
            save_tensors(&map, &staged.staging().join("start.safetensors"))?;
        }
        if self.ring.is_some() {
            let s = Tensor::from_slice(&self.ring_start, self.ring_start.len(), &Cpu)?;
            let map = HashMap::from([("ring_start".to_string(), s)]);
            save_tensors(&map, &staged.staging().join("ring_start.safetensors"))?;
        }
        self.state.step = t.step;
        self.state.rollouts = t.rollouts;
        self.state.optim_step = t.opt.step;
        self.state.sampler = t.sampler.clone();
        self.state.train_tokens = t.train_tokens;
        self.state.gen_tokens = t.gen_tokens;
        self.state.seconds_total = self.elapsed();
        let text = serde_json::to_string_pretty(&self.state).expect("state serialises");
        let sp = staged.staging().join("state.json");
        std::fs::write(&sp, text + "\n").map_err(io_err(&sp))?;
        staged.commit().map_err(TrainError::Output)?;
        Ok(())
    }

    /// Restores `t` and this run's counters from `OUTPUT/state`, and cuts `metrics.jsonl`
    /// and the deltas back to the saved step.
    pub fn resume(&mut self, t: &mut Trainer) -> Result<()> {
        let sdir = self.dir.join("state");
        let sp = sdir.join("state.json");
        let text = std::fs::read_to_string(&sp).map_err(|e| {
            TrainError::Io(format!(
                "{}: {e} (nothing to resume: the run saved no state yet)",
                sp.display()
            ))
        })?;
        let st: State = serde_json::from_str(&text)
            .map_err(|e| TrainError::State(format!("{}: {e}", sp.display())))?;
        if st.format != STATE_FORMAT {
            return Err(TrainError::State(format!(
                "{}: format {:?}, expected {STATE_FORMAT}",
                sp.display(),
                st.format
            )));
        }
        let now = t.cfg.fingerprint();
        if st.fingerprint != now {
            let diff: Vec<String> = now
                .iter()
                .filter(|(k, v)| st.fingerprint.get(*k) != Some(*v))
                .map(|(k, v)| {
                    format!(
                        "{k}: saved {} now {v}",
                        st.fingerprint
                            .get(k)
                            .map(|x| x.to_string())
                            .unwrap_or("absent".into())
                    )
                })
                .collect();
            return Err(TrainError::Invalid(format!(
                "cannot resume {}: the settings differ from the saved run ({})",
                self.dir.display(),
                diff.join("; ")
            )));
        }
        let dev = t.model.device().clone();
        let lp = sdir.join("lora.safetensors");
        let lmap = candle_core::safetensors::load(&lp, &dev)?;
        for (name, var) in lora::trainable(&t.model) {
            let v = lmap.get(&name).ok_or_else(|| {
                TrainError::State(format!("{}: tensor {name} is missing", lp.display()))
            })?;
            var.set(v)?;
        }
        let op = sdir.join("optim.safetensors");
        let omap = candle_core::safetensors::load(&op, &dev)?;
        for i in 0..t.opt.m.len() {
            let get = |k: String| {
                omap.get(&k).cloned().ok_or_else(|| {
                    TrainError::State(format!("{}: tensor {k} is missing", op.display()))
                })
            };
            t.opt.m[i] = get(format!("m.{i}"))?;
            t.opt.v[i] = get(format!("v.{i}"))?;
        }
        if let Some(p) = &mut self.privacy {
            p.start = load_vec(&sdir.join("start.safetensors"), "start")?;
            if let Some(a) = &mut p.accountant {
                a.rounds = st.dp_rounds;
            }
        }
        if self.ring.is_some() {
            self.ring_start = load_vec(&sdir.join("ring_start.safetensors"), "ring_start")?;
        }
        t.opt.step = st.optim_step;
        t.step = st.step;
        t.rollouts = st.rollouts;
        t.sampler = st.sampler.clone();
        t.train_tokens = st.train_tokens;
        t.gen_tokens = st.gen_tokens;
        self.seconds_at_start = st.seconds_total;
        self.last_train_tokens = st.train_tokens;
        self.saved_at = st.step;
        self.state = st;
        // drop what a killed run wrote after its last state
        let mp = self.metrics_path();
        if mp.exists() {
            let text = std::fs::read_to_string(&mp).map_err(io_err(&mp))?;
            let mut kept = String::new();
            for line in text.lines() {
                let Ok(m) = serde_json::from_str::<StepMetrics>(line) else {
                    break; // a torn last line
                };
                if m.step > self.state.step {
                    break;
                }
                kept.push_str(line);
                kept.push('\n');
            }
            atomic::write_file(&mp, kept.as_bytes(), true, None).map_err(TrainError::Output)?;
        }
        let dd = self.dir.join("deltas");
        if let Ok(rd) = std::fs::read_dir(&dd) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(seq) = name
                    .strip_prefix("delta-")
                    .and_then(|s| s.strip_suffix(".delta"))
                    .and_then(|s| s.parse::<u64>().ok())
                    && seq > self.state.delta_seq
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(())
    }

    fn append_metrics(&self, m: &StepMetrics) -> Result<()> {
        let p = self.metrics_path();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .map_err(io_err(&p))?;
        let mut line = serde_json::to_value(m).expect("metrics serialise");
        if let Some(o) = line.as_object_mut() {
            o.insert("device".into(), self.device.clone().into());
        }
        writeln!(f, "{line}").map_err(io_err(&p))?;
        Ok(())
    }

    /// Signs and writes the current LoRA factors as the next delta of the chain.
    fn write_delta(&mut self, t: &Trainer, loss: f64) -> Result<DeltaWritten> {
        let seq = self.state.delta_seq + 1;
        let mut tensors = lora_tensors(&t.model)?;
        let privacy = self.privatize(t, &mut tensors)?;
        let bytes: Vec<Vec<u8>> = tensors
            .iter()
            .map(|(_, v, _)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
            .collect();
        let inputs: Vec<delta::PackInput> = tensors
            .iter()
            .zip(&bytes)
            .map(|((name, _, shape), b)| delta::PackInput {
                name: name.clone(),
                dtype: Dtype::F32,
                shape: shape.iter().map(|&d| d as u64).collect(),
                data: delta::TensorSource::Bytes(b),
            })
            .collect();
        let mut meta = Metadata::new(self.identity.public().worker_id());
        meta.epoch = self
            .epoch
            .unwrap_or((t.step / t.cfg.aggregate_interval) as u64);
        meta.step = t.step as u64;
        meta.seq = seq;
        meta.loss = Some(loss);
        meta.base_hash = Some(self.base_hash.clone());
        meta.parent_hash = self.state.parent_hash.clone();
        meta.config = Some(t.cfg.fingerprint());
        let now = self.elapsed();
        meta.compute = Some(Compute {
            tokens: self.state.tokens_since_delta,
            flops: t.flops(self.state.tokens_since_delta),
            device: self.device.clone(),
            wall_seconds: now - self.state.seconds_since_delta,
        });
        let ac = serde_json::to_value(&t.lora_cfg).expect("lora config serialises");
        meta.adapter_config = ac.as_object().cloned();
        let mut extra = serde_json::Map::new();
        extra.insert("data_epoch".into(), t.sampler.epoch.into());
        extra.insert("generated_tokens".into(), t.gen_tokens.into());
        extra.insert("producer".into(), "gym train".into());
        if let Some(p) = &privacy {
            extra.insert("dp".into(), serde_json::to_value(p).expect("serialises"));
        }
        meta.extra = Some(extra);
        let opts = delta::PackOptions {
            compression: Compression::Lz4,
            chunk_size: 1 << 20,
            metadata: meta,
            identity: Some(self.identity),
        };
        let (bytes, summary) = delta::pack_to_vec(&inputs, &opts)
            .map_err(|e| TrainError::Invalid(format!("packing delta {seq}: {e}")))?;
        let dd = self.dir.join("deltas");
        std::fs::create_dir_all(&dd).map_err(io_err(&dd))?;
        let path = dd.join(format!("delta-{seq:06}.delta"));
        atomic::write_file(&path, &bytes, true, None).map_err(TrainError::Output)?;
        let digest = hex::encode(summary.digest);
        self.state.delta_seq = seq;
        self.state.parent_hash = Some(digest.clone());
        self.state.tokens_since_delta = 0;
        self.state.seconds_since_delta = now;
        Ok(DeltaWritten {
            path,
            seq,
            step: t.step,
            digest,
            privacy,
        })
    }

    /// With a norm bound: clips the update (factors minus the start) in `tensors`, adds the
    /// DP noise, accounts it (refusing past the budget), sets the model to the released
    /// factors and makes them the next start. Before the first delta, writes the start as
    /// `deltas/start.delta` so validators can check every update's norm.
    fn privatize(
        &mut self,
        t: &Trainer,
        tensors: &mut [super::trainer::NamedTensor],
    ) -> Result<Option<PrivacyNote>> {
        if self.privacy.is_none() {
            return Ok(None);
        }
        if self.state.parent_hash.is_none() {
            self.state.parent_hash = Some(self.write_start(t)?);
        }
        let p = self.privacy.as_mut().expect("checked");
        let spent = match &mut p.accountant {
            None => None,
            Some(a) => Some(a.spend().map_err(|over| {
                TrainError::PrivacyBudget(format!(
                    "the differential-privacy budget ε = {} would be exceeded by delta {} \
                     (ε = {:.4} at δ = {} after {} releases); training stops here",
                    a.budget.unwrap_or(f64::INFINITY),
                    self.state.delta_seq + 1,
                    over.epsilon,
                    over.delta,
                    over.rounds
                ))
            })?),
        };
        let mut x = flat(tensors);
        let r = crate::core::validate::dp::privatize(&mut x, &p.start, p.clip, p.noise_multiplier);
        let mut k = 0;
        let vars: HashMap<String, candle_core::Var> =
            lora::trainable(&t.model).into_iter().collect();
        for (name, v, shape) in tensors.iter_mut() {
            let n = v.len();
            v.copy_from_slice(&x[k..k + n]);
            k += n;
            if let Some(var) = vars.get(name) {
                var.set(&Tensor::from_slice(v, shape.as_slice(), t.model.device())?)?;
            }
        }
        p.start = x;
        self.state.dp_rounds = p.accountant.as_ref().map_or(0, |a| a.rounds);
        Ok(Some(PrivacyNote {
            clip: p.clip,
            update_norm: r.norm,
            noise_multiplier: p.noise_multiplier,
            sigma: r.sigma,
            spent,
        }))
    }

    /// Writes the factors training started from as `deltas/start.delta` (sequence 0); returns
    /// its digest. A start written by an earlier attempt of this run is reused.
    fn write_start(&self, t: &Trainer) -> Result<String> {
        let path = self.dir.join("deltas").join("start.delta");
        if path.exists() {
            let src = delta::FileSource::open(&path).map_err(io_err(&path))?;
            let rep = delta::verify(&src, &delta::VerifyOptions::default())?;
            return Ok(rep.digest_hex());
        }
        let p = self.privacy.as_ref().expect("privacy");
        let names = lora_tensors(&t.model)?;
        let mut k = 0;
        let bytes: Vec<Vec<u8>> = names
            .iter()
            .map(|(_, v, _)| {
                let b = p.start[k..k + v.len()]
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect();
                k += v.len();
                b
            })
            .collect();
        let inputs: Vec<delta::PackInput> = names
            .iter()
            .zip(&bytes)
            .map(|((name, _, shape), b)| delta::PackInput {
                name: name.clone(),
                dtype: Dtype::F32,
                shape: shape.iter().map(|&d| d as u64).collect(),
                data: delta::TensorSource::Bytes(b),
            })
            .collect();
        let mut meta = Metadata::new(self.identity.public().worker_id());
        meta.base_hash = Some(self.base_hash.clone());
        meta.config = Some(t.cfg.fingerprint());
        let ac = serde_json::to_value(&t.lora_cfg).expect("lora config serialises");
        meta.adapter_config = ac.as_object().cloned();
        let mut extra = serde_json::Map::new();
        extra.insert("producer".into(), "gym train (start of the run)".into());
        meta.extra = Some(extra);
        let opts = delta::PackOptions {
            compression: Compression::Lz4,
            chunk_size: 1 << 20,
            metadata: meta,
            identity: Some(self.identity),
        };
        let (bytes, summary) = delta::pack_to_vec(&inputs, &opts)
            .map_err(|e| TrainError::Invalid(format!("packing the start delta: {e}")))?;
        let dd = self.dir.join("deltas");
        std::fs::create_dir_all(&dd).map_err(io_err(&dd))?;
        atomic::write_file(&path, &bytes, true, None).map_err(TrainError::Output)?;
        Ok(hex::encode(summary.digest))
    }

    /// Writes a PEFT adapter folder of the current factors (replacing one of the same name).
    pub fn save_adapter(&self, t: &Trainer, name: &str) -> Result<PathBuf> {
        let path = self.dir.join(name);
        let staged = AtomicDir::create(&path, true).map_err(TrainError::Output)?;
        lora::save_peft(&t.model, &t.lora_cfg, staged.staging())?;
        staged.commit().map_err(TrainError::Output)?;
        Ok(path)
    }
}

impl Observer for RunDir<'_> {
    fn step(&mut self, m: &StepMetrics, t: &Trainer) -> Result<()> {
        self.state.tokens_since_delta += t.train_tokens - self.last_train_tokens;
        self.last_train_tokens = t.train_tokens;
        self.append_metrics(m)?;
        let mut written = None;
        if t.step.is_multiple_of(t.cfg.aggregate_interval) {
            let weight = self.state.tokens_since_delta;
            let d = self.write_delta(t, m.loss)?;
            self.deltas.push(d.clone());
            if self.ring.is_some() {
                let a = self.aggregate(t, &d, weight)?;
                // the next delta is trained on top of the agreed mean
                self.state.parent_hash = Some(a.digest.clone());
                if let Some(p) = &mut self.privacy {
                    p.start = flat(&lora_tensors(&t.model)?);
                }
                self.aggregated.push(a);
                self.aggregated_this_rollout = true;
            }
            written = Some(d);
        }
        (self.inner)(m, written.as_ref());
        Ok(())
    }

    fn rollout_done(&mut self, t: &Trainer) -> Result<()> {
        let due = t.step / t.cfg.save_steps > self.saved_at / t.cfg.save_steps;
        // after an all-reduce, save at once: a resumed run must not redo a finished round
        let after_ring = std::mem::take(&mut self.aggregated_this_rollout);
        if due || after_ring || t.step >= t.cfg.max_steps {
            self.save_state(t)?;
            self.saved_at = t.step;
            if due {
                self.save_adapter(t, &format!("checkpoint-{}", t.step))?;
            }
        }
        Ok(())
    }
}

/// Checks that `cfg` and `dir` make a consistent new run (refusing to mix with an old one).
pub fn check_fresh(dir: &Path, force: bool) -> std::result::Result<(), atomic::AtomicError> {
    for f in ["metrics.jsonl", "state"] {
        let p = dir.join(f);
        if p.exists() && !force {
            return Err(atomic::AtomicError::Exists { path: p });
        }
    }
    Ok(())
}

/// The resolved config of a run, as written to `OUTPUT/config.toml`.
pub fn write_config(dir: &Path, cfg: &TrainConfig) -> Result<()> {
    let p = dir.join("config.toml");
    atomic::write_file(&p, cfg.to_toml().as_bytes(), true, None).map_err(TrainError::Output)
}
