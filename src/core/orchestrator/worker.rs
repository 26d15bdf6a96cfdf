//! The `gym work` loop: register with the orchestrator, then, round after round, train
//! `aggregate_interval` steps from the current aggregate (through the same `Trainer` and run
//! folder as `gym train`), upload and report the signed delta, join the round's ring with it
//! (the same ring driver as `gym ring join`), upload and report the agreed result, and continue
//! from it. A worker that restarts, or is evicted, registers again and enters at the next round
//! from the last accepted aggregate. Nothing here prints: events go to a callback.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::Device;

use super::client::{Client, ClientError};
use super::server::{ReportBody, ResultBody, WorkerView};
use super::{OrchError, checkpoint, job};
use crate::core::error::{Classify, ErrorClass};
use crate::core::keys::Identity;
use crate::core::model::{self, lora};
use crate::core::reward::records;
use crate::core::ring::{config::RingSpec, io as rio, net};
use crate::core::train::checkpoint::{DeltaWritten, RunDir};
use crate::core::train::config::{ConfigError, TOY_DATA, TrainConfig};
use crate::core::train::data::{self, ChatTemplate};
use crate::core::train::scoring::Scorer;
use crate::core::train::trainer::{self, StepMetrics, TrainError, Trainer};

#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Orch(#[from] OrchError),
    #[error("{0}")]
    Setup(String),
}

impl Classify for WorkError {
    fn class(&self) -> ErrorClass {
        match self {
            WorkError::Client(e) => e.class(),
            WorkError::Train(e) => e.class(),
            WorkError::Config(e) => e.class(),
            WorkError::Orch(e) => e.class(),
            WorkError::Setup(_) => ErrorClass::Usage,
        }
    }
}

/// How to work.
#[derive(Clone)]
pub struct WorkOptions {
    pub url: String,
    pub key: Arc<Identity>,
    pub output: PathBuf,
    /// The address other ring members dial (default: 127.0.0.1 and a free port).
    pub ring_addr: Option<String>,
    /// The pause between retries while the orchestrator is unreachable (polls themselves are
    /// long polls: the orchestrator answers when the worker's view changes).
    pub poll: Duration,
    /// Ring step timeout (a stalled member is dropped after this long).
    pub ring_timeout: Duration,
    /// How long the orchestrator may be unreachable before the worker gives up.
    pub patience: Duration,
    /// Test seam (`gym work --attack`, hidden): misbehave as the attack table needs.
    pub attack: Option<super::attack::Attack>,
}

/// What the loop reports.
#[derive(Debug, Clone)]
pub enum WorkEvent {
    Registered {
        worker: String,
        index: usize,
        ring_addr: String,
    },
    Trained {
        round: u64,
        steps: usize,
        reward: f64,
        loss: f64,
    },
    Ring {
        round: u64,
        members: usize,
        result: String,
    },
    RingFailed {
        round: u64,
        error: String,
    },
    Readmitted,
    Finished {
        aggregate: Option<String>,
    },
}

/// The end of a worker's job.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkSummary {
    pub worker: String,
    pub rounds_trained: u64,
    pub rings: u64,
    pub aggregate: Option<String>,
    pub adapter: Option<PathBuf>,
}

/// The model and data a job names, as `gym train` loads them.
fn build_trainer(cfg: TrainConfig) -> Result<(Trainer, String), WorkError> {
    let dev = Device::Cpu;
    let (m, tok, base_hash) = match &cfg.model {
        Some(dir) => (
            model::load_with(
                dir,
                &dev,
                model::LoadOptions {
                    nf4: cfg.use_4bit,
                    double_quant: trainer::NF4_DOUBLE_QUANT,
                },
            )
            .map_err(TrainError::from)?,
            model::load_tokenizer(dir).map_err(TrainError::from)?,
            trainer::base_hash_dir(dir).map_err(TrainError::from)?,
        ),
        None => {
            let (m, t) = model::embedded::tiny_qwen3(&dev).map_err(TrainError::from)?;
            let h = trainer::base_hash_files(&[(
                "model.safetensors".into(),
                model::embedded::TINY_WEIGHTS.to_vec(),
            )]);
            (m, t, h)
        }
    };
    let chat = match cfg.model.as_deref() {
        Some(dir) => crate::core::chat::ChatTemplate::from_model_dir(dir)
            .map_err(|e| WorkError::Setup(e.to_string()))?,
        None => Some(crate::core::chat::ChatTemplate::qwen3()),
    };
    let template = ChatTemplate::from_model(chat.as_ref(), cfg.enable_thinking);
    let examples = match &cfg.data {
        Some(p) => data::load_jsonl(p, template),
        None => data::parse_jsonl(TOY_DATA, "<bundled toy task>", template),
    }
    .map_err(|e| WorkError::Setup(e.to_string()))?;
    let scorer = Scorer::new(&cfg.reward).map_err(TrainError::from)?;
    if !cfg
        .aggregate_interval
        .is_multiple_of(cfg.steps_per_rollout())
    {
        return Err(WorkError::Setup(format!(
            "the job's aggregate_interval ({}) must be a multiple of the optimiser steps per rollout ({})",
            cfg.aggregate_interval,
            cfg.steps_per_rollout()
        )));
    }
    Ok((Trainer::new(cfg, m, tok, examples, scorer)?, base_hash))
}

/// 127.0.0.1 and a port that was free a moment ago, with the next [`LEADER_PORTS`] ports
/// free too (a hierarchical round's leader rings listen on them: `hier::leader_addr`).
fn free_loopback() -> Result<String, WorkError> {
    for _ in 0..64 {
        let l = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| WorkError::Setup(format!("finding a free port: {e}")))?;
        let a = l
            .local_addr()
            .map_err(|e| WorkError::Setup(format!("finding a free port: {e}")))?;
        let next_free = (1..=LEADER_PORTS).all(|k| {
            a.port()
                .checked_add(k)
                .is_some_and(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        });
        if next_free {
            return Ok(a.to_string());
        }
    }
    Err(WorkError::Setup(
        "finding a free port: no port with the next few free".into(),
    ))
}

/// Ports after the ring port kept for leader rings (levels 0 to 2: up to `ring_size^4`
/// workers).
const LEADER_PORTS: u16 = 3;

#[path = "worker_hier.rs"]
mod worker_hier;

/// Replaces the LoRA factors with an aggregate's.
fn load_aggregate(t: &Trainer, bytes: &[u8]) -> Result<(), WorkError> {
    let tensors = checkpoint::load_tensors(bytes, t.model.device())?;
    for (name, var) in lora::trainable(&t.model) {
        let v = tensors.get(&name).ok_or_else(|| {
            OrchError::Object(format!("the aggregate lacks the model's tensor {name}"))
        })?;
        var.set(v).map_err(TrainError::from)?;
    }
    Ok(())
}

/// A report the orchestrator already has (its answer was lost in a restart) is not an error.
fn accepted_or_duplicate(r: Result<serde_json::Value, ClientError>) -> Result<(), WorkError> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == Some("duplicate") => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// How long one long poll may be held by the orchestrator.
const LONG_POLL: Duration = Duration::from_secs(25);

/// This round's own delta, kept for the ring.
struct Trained {
    round: u64,
    delta: DeltaWritten,
    weight: u64,
}

struct Worker<'a> {
    opts: &'a WorkOptions,
    client: Client,
    id: String,
    ring_addr: String,
    /// The aggregate the model holds (None: the base model, or nothing loaded yet).
    loaded: Option<String>,
    trained: Option<Trained>,
    rounds_trained: u64,
    rings: u64,
    on_event: &'a dyn Fn(WorkEvent),
    /// The first delta this worker reported (for `--attack replay`).
    first_object: Option<String>,
    /// Hierarchical rounds: the round whose final result this worker (not in the top leader
    /// ring) waits to take from the store and report.
    pending_final: Option<u64>,
    /// The receipt of this round's group ring (hierarchical rounds), sent with the result.
    group_receipt: Option<records::RingReceipt>,
}

impl Worker<'_> {
    /// Long-polls (the answer comes when this worker's view differs from `seen`), riding out
    /// an orchestrator restart for up to `patience`.
    fn poll(&self, seen: Option<&str>) -> Result<WorkerView, WorkError> {
        let start = Instant::now();
        loop {
            match self.client.poll_wait(&self.opts.key, seen, LONG_POLL) {
                Ok(v) => return Ok(v),
                Err(e @ ClientError::Network { .. }) => {
                    if start.elapsed() > self.opts.patience {
                        return Err(e.into());
                    }
                    std::thread::sleep(self.opts.poll.max(Duration::from_millis(200)));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn register(&self) -> Result<serde_json::Value, WorkError> {
        Ok(self.client.register(&self.opts.key, &self.ring_addr)?)
    }

    /// Makes the model hold `base` (downloading it when it is not the one loaded).
    fn sync_base(&mut self, t: &Trainer, base: &Option<String>) -> Result<(), WorkError> {
        if *base == self.loaded {
            return Ok(());
        }
        if let Some(addr) = base {
            let bytes = self.client.get_object(addr)?;
            load_aggregate(t, &bytes)?;
        }
        self.loaded = base.clone();
        Ok(())
    }

    fn train_round(
        &mut self,
        t: &mut Trainer,
        run: &mut RunDir<'_>,
        seen: &RefCell<Vec<StepMetrics>>,
        v: &WorkerView,
    ) -> Result<(), WorkError> {
        self.sync_base(t, &v.base)?;
        run.state.parent_hash = v.base.clone();
        run.epoch = Some(v.epoch); // the job's epoch: the one its epoch folder counts
        if let Some(p) = &mut run.privacy {
            p.restart(t)?; // the norm bound and DP measure this round's update
        }
        let before = (t.train_tokens, seen.borrow().len());
        t.cfg.max_steps = t.step + t.cfg.aggregate_interval;
        t.run(run)?;
        let delta = run
            .deltas
            .last()
            .cloned()
            .ok_or_else(|| WorkError::Setup("the round wrote no delta".into()))?;
        let weight = (t.train_tokens - before.0).max(1);
        let steps = &seen.borrow()[before.1..];
        let n = steps.len().max(1) as f64;
        let reward = steps.iter().map(|m| m.reward_mean).sum::<f64>() / n;
        let loss = steps.iter().map(|m| m.loss).sum::<f64>() / n;
        let bytes = std::fs::read(&delta.path)
            .map_err(|e| TrainError::Io(format!("{}: {e}", delta.path.display())))?;
        let (bytes, delta, weight) = self.attacked(bytes, delta, weight, v)?;
        let mut object = self.client.put_object(&self.opts.key, bytes)?;
        if self.opts.attack == Some(super::attack::Attack::Replay) {
            object = self.first_object.get_or_insert(object).clone();
        }
        let sent = self.client.report(
            &self.opts.key,
            &ReportBody {
                round: v.round,
                object,
                weight,
                reward,
                loss,
            },
        );
        accepted_or_duplicate(sent)?;
        self.loaded = None; // the model now holds this worker's own update
        self.rounds_trained += 1;
        (self.on_event)(WorkEvent::Trained {
            round: v.round,
            steps: steps.len(),
            reward,
            loss,
        });
        self.trained = Some(Trained {
            round: v.round,
            delta,
            weight,
        });
        Ok(())
    }

    /// `--attack`: this round's delta and weight as the attacker sends them.
    fn attacked(
        &self,
        bytes: Vec<u8>,
        mut delta: DeltaWritten,
        weight: u64,
        v: &WorkerView,
    ) -> Result<(Vec<u8>, DeltaWritten, u64), WorkError> {
        use super::attack::{self, Attack};
        let Some(a) = self.opts.attack else {
            return Ok((bytes, delta, weight));
        };
        // the round's start: the aggregate, or in the first round this worker's own start
        // adapter (as validators rebuild it), written before its first delta
        let start_bytes = match &v.base {
            Some(b) => Some(self.client.get_object(b)?),
            None => std::fs::read(self.opts.output.join("deltas").join("start.delta")).ok(),
        };
        let start = start_bytes
            .map(|b| attack::factors(&b))
            .transpose()
            .map_err(WorkError::Setup)?;
        let out = attack::tamper(a, &bytes, start.as_deref(), &self.opts.key, v.round)
            .map_err(WorkError::Setup)?;
        let path = delta.path.with_extension("attack.delta");
        std::fs::write(&path, &out)
            .map_err(|e| TrainError::Io(format!("{}: {e}", path.display())))?;
        delta.path = path;
        let weight = if a == Attack::Inflate {
            crate::core::ring::fixed::MAX_WEIGHT
        } else {
            weight
        };
        Ok((out, delta, weight))
    }

    /// The `forward` receipt this member issues about its predecessor in `spec`'s final view,
    /// kept in `OUTPUT/receipts/` (as `gym train --ring` keeps them) and sent with the result.
    fn keep_receipt(
        &self,
        v: &WorkerView,
        spec: &RingSpec,
        index: usize,
        joined: &net::Joined,
    ) -> Result<Option<records::RingReceipt>, WorkError> {
        let r = records::issue_forward(
            v.epoch,
            v.round,
            spec,
            &joined.outcome.members,
            index,
            joined.reduced,
            &self.opts.key,
        );
        if let Some(r) = &r {
            let dir = self.opts.output.join("receipts");
            let p = dir.join(format!("forward-r{:06}.json", v.round));
            let text = serde_json::to_string_pretty(r).expect("a receipt serialises") + "\n";
            std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(&p, text))
                .map_err(|e| TrainError::Io(format!("{}: {e}", p.display())))?;
        }
        Ok(r)
    }

    /// Reports a ring result with its receipt; a receipt the orchestrator refuses (400
    /// `bad_receipt`) costs only the receipt: the result is sent again without it.
    fn send_result(
        &self,
        round: u64,
        object: &str,
        receipt: Option<records::RingReceipt>,
    ) -> Result<serde_json::Value, ClientError> {
        let body = |receipt| ResultBody {
            round,
            object: object.to_string(),
            receipt,
        };
        let had = receipt.is_some();
        match self.client.result(&self.opts.key, &body(receipt)) {
            Err(e) if had && e.kind() == Some("bad_receipt") => {
                self.client.result(&self.opts.key, &body(None))
            }
            sent => sent,
        }
    }

    /// Joins the round's ring with this round's delta; uploads and reports the result.
    fn ring_round(&mut self, t: &Trainer, v: &WorkerView) -> Result<(), WorkError> {
        let Some(a) = &v.ring else { return Ok(()) };
        if self.pending_final == Some(v.round) {
            return self.adopt_final(t, v, a);
        }
        let Some(mine) = self.trained.take_if(|x| x.round == v.round) else {
            return Ok(()); // restarted after reporting: nothing to bring to this ring
        };
        let spec = RingSpec::parse(&a.toml, Path::new("<ring from the orchestrator>"))
            .map_err(|e| OrchError::Object(e.to_string()))?;
        let spec = Arc::new(spec);
        if spec.hier.output == crate::core::ring::config::Output::Sum {
            return self.hier_round(t, v, a, spec, mine);
        }
        let ring_err = |e: String| WorkError::Train(TrainError::Ring(e));
        let (input, layout) = rio::load_input(&mine.delta.path, a.weight.unwrap_or(mine.weight))
            .map_err(|e| ring_err(e.to_string()))?;
        let opts = net::JoinOptions {
            step_timeout: self.opts.ring_timeout,
            connect_timeout: self.opts.ring_timeout,
            listen: None,
        };
        let joined = net::join_blocking(
            spec.clone(),
            a.index,
            self.opts.key.clone(),
            Arc::new(input),
            opts,
            Arc::new(|_| {}),
        );
        let joined = match joined {
            Ok(j) => j,
            Err(e) => {
                (self.on_event)(WorkEvent::RingFailed {
                    round: v.round,
                    error: e.to_string(),
                });
                return Ok(());
            }
        };
        let path = self
            .opts
            .output
            .join("deltas")
            .join(format!("avg-{:06}.delta", spec.round));
        rio::write_output(&path, true, &spec, &layout, &joined.outcome)
            .map_err(|e| ring_err(e.to_string()))?;
        let receipt = self.keep_receipt(v, &spec, a.index, &joined)?;
        let bytes =
            std::fs::read(&path).map_err(|e| TrainError::Io(format!("{}: {e}", path.display())))?;
        load_aggregate(t, &bytes)?;
        let object = self.client.put_object(&self.opts.key, bytes)?;
        let sent = self.send_result(v.round, &object, receipt);
        if let Err(e) = &sent
            && e.kind() == Some("unbound_input")
        {
            // another member brought an input other than its admitted delta: the orchestrator
            // refuses the result; the round times out and is trained again
            (self.on_event)(WorkEvent::RingFailed {
                round: v.round,
                error: e.to_string(),
            });
            return Ok(());
        }
        accepted_or_duplicate(sent)?;
        self.loaded = Some(object.clone());
        self.rings += 1;
        (self.on_event)(WorkEvent::Ring {
            round: v.round,
            members: joined.outcome.members.len(),
            result: object,
        });
        Ok(())
    }

    /// The job is over: the final aggregate as a PEFT adapter in OUTPUT/adapter.
    fn finish(&self, v: &WorkerView) -> Result<Option<PathBuf>, WorkError> {
        let Some(addr) = &v.base else { return Ok(None) };
        let bytes = self.client.get_object(addr)?;
        let dir = self.opts.output.join("adapter");
        checkpoint::write_peft(&bytes, &dir)?;
        Ok(Some(dir))
    }
}

/// Runs the worker loop until the job is finished or stopped.
pub fn work(opts: &WorkOptions, on_event: &dyn Fn(WorkEvent)) -> Result<WorkSummary, WorkError> {
    let (mut client, job) = Client::connect(&opts.url)?;
    client.patience = opts.patience;
    let ring_addr = match &opts.ring_addr {
        Some(a) => a.clone(),
        None => free_loopback()?,
    };
    let mut w = Worker {
        opts,
        client,
        id: opts.key.public().worker_id(),
        ring_addr,
        loaded: None,
        trained: None,
        rounds_trained: 0,
        rings: 0,
        on_event,
        first_object: None,
        pending_final: None,
        group_receipt: None,
    };
    let reg = w.register()?;
    let index = reg["index"].as_u64().unwrap_or(0) as usize;
    on_event(WorkEvent::Registered {
        worker: w.id.clone(),
        index,
        ring_addr: w.ring_addr.clone(),
    });
    let toml = job["train_toml"].as_str().unwrap_or_default();
    let mut cfg = job::train_config(toml, Path::new("<the job's [train] table>"))?;
    if opts.attack == Some(super::attack::Attack::Poison) {
        cfg.reward.iter_mut().for_each(|r| r.weight = -r.weight);
    }
    let (mut t, base_hash) = build_trainer(cfg)?;
    t.set_stream(index as u64 + 1);
    std::fs::create_dir_all(&opts.output)
        .map_err(|e| TrainError::Io(format!("{}: {e}", opts.output.display())))?;
    let seen = Rc::new(RefCell::new(Vec::new()));
    let seen2 = seen.clone();
    let mut on_step = move |m: &StepMetrics, _: Option<&DeltaWritten>| {
        seen2.borrow_mut().push(m.clone());
    };
    let key = opts.key.clone();
    let mut run = RunDir::new(
        &opts.output,
        &key,
        base_hash,
        "cpu".into(),
        &t,
        &mut on_step,
    );
    run.privacy = crate::core::train::checkpoint::Privacy::new(&t.cfg, &t)?;
    // the tag of the view last acted on: the next poll waits until the view differs
    let mut tag: Option<String> = None;
    let last = loop {
        let v = w.poll(tag.as_deref())?;
        tag = Some(v.tag.clone());
        if v.finished {
            break v;
        }
        if !v.admitted {
            w.register()?;
            on_event(WorkEvent::Readmitted);
            continue;
        }
        match v.phase.as_str() {
            "training" if v.member && !v.reported => w.train_round(&mut t, &mut run, &seen, &v)?,
            "ring" if v.member && !v.result_reported && v.ring.is_some() => w.ring_round(&t, &v)?,
            _ => {}
        }
    };
    drop(run);
    let adapter = w.finish(&last)?;
    on_event(WorkEvent::Finished {
        aggregate: last.base.clone(),
    });
    Ok(WorkSummary {
        worker: w.id.clone(),
        rounds_trained: w.rounds_trained,
        rings: w.rings,
        aggregate: last.base,
        adapter,
    })
}
