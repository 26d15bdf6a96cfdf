//! `gym demo`: the whole protocol on one machine — an orchestrator and three workers on
//! loopback in one process, the bundled tiny model and toy task, two epochs, each epoch's
//! checkpoint published to a local CID-named folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::validator::{self, Judge, ValidatorEvent, ValidatorOptions};
use super::worker::{self, WorkEvent, WorkOptions, WorkSummary};
use super::{GspoOrchestrator, JobSpec, OrchError, machine::Decision, server, store};
use crate::core::keys::Identity;

/// What the demo reports as it goes.
#[derive(Debug, Clone)]
pub enum DemoEvent {
    Orchestrator(Decision),
    Worker { index: usize, event: WorkEvent },
    Validator { index: usize, event: ValidatorEvent },
}

pub struct DemoOptions {
    pub folder: PathBuf,
    pub workers: usize,
    pub epochs: u64,
    pub rounds_per_epoch: u64,
    pub aggregate_interval: usize,
    /// Validators (0: deltas go to the ring unvalidated); with 2 or more the job admits a
    /// delta with a majority of `pass` verdicts (at least 2).
    pub validators: usize,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            folder: PathBuf::from("runs/demo"),
            workers: 3,
            epochs: 2,
            rounds_per_epoch: 3,
            aggregate_interval: 4,
            validators: 2,
        }
    }
}

/// The demo's outcome.
#[derive(Debug, serde::Serialize)]
pub struct DemoSummary {
    pub job_file: PathBuf,
    pub status: serde_json::Value,
    pub workers: Vec<WorkSummary>,
}

/// The job file the demo writes for `n` fresh worker keys.
pub fn job_toml(opts: &DemoOptions, ids: &[String], validators: &[String]) -> String {
    let mut s = format!(
        "name = \"demo\"\nepochs = {}\nrounds_per_epoch = {}\nmin_workers = {n}\nmax_workers = {n}\nring_size = {n}\nredundancy = 0\n\n[timeouts]\njoin = 120\ntrain = 300\nring = 120\n\n[train]\naggregate_interval = {}\n\n[publish]\nto = \"published\"\n",
        opts.epochs,
        opts.rounds_per_epoch,
        opts.aggregate_interval,
        n = ids.len()
    );
    for id in ids {
        s.push_str(&format!(
            "\n[[worker]]\nid = \"{id}\"\nrole = \"trainer\"\nstake = 10000\n"
        ));
    }
    if validators.len() >= 2 {
        let quorum = validators.len() / 2 + 1;
        s.push_str(&format!(
            "\n[validation]\nquorum = {quorum}\ntimeout = 120\ntolerance = 0.05\nmodel_params = {}\n",
            tiny_params()
        ));
        for id in validators {
            s.push_str(&format!(
                "\n[[worker]]\nid = \"{id}\"\nrole = \"validator\"\nstake = 25000\n"
            ));
        }
    }
    s
}

/// Parameters of the bundled tiny model (for the reward estimate's FLOPs cap).
fn tiny_params() -> u64 {
    safetensors::SafeTensors::deserialize(crate::core::model::embedded::TINY_WEIGHTS)
        .map(|st| {
            st.tensors()
                .iter()
                .map(|(_, t)| t.shape().iter().product::<usize>() as u64)
                .sum()
        })
        .unwrap_or(1)
}

/// A validator of the demo: the bundled model, judging on the bundled task's answers.
fn demo_judge() -> Result<Judge, OrchError> {
    use crate::core::model;
    use crate::core::train::config::TOY_DATA;
    use crate::core::train::data::{self, ChatTemplate};
    let dev = candle_core::Device::Cpu;
    let (m, tok) =
        model::embedded::tiny_qwen3(&dev).map_err(|e| OrchError::Io(format!("model: {e}")))?;
    let base_hash = crate::core::train::trainer::base_hash_files(&[(
        "model.safetensors".into(),
        model::embedded::TINY_WEIGHTS.to_vec(),
    )]);
    let chat = crate::core::chat::ChatTemplate::qwen3();
    let data = data::parse_jsonl(
        TOY_DATA,
        "<bundled toy task>",
        ChatTemplate::from_model(Some(&chat), false),
    )
    .map_err(|e| OrchError::Io(e.to_string()))?;
    Ok(Judge {
        model: m,
        tokenizer: tok,
        base_hash,
        data,
    })
}

fn io(p: &Path) -> impl Fn(std::io::Error) -> OrchError + '_ {
    move |e| OrchError::Io(format!("{}: {e}", p.display()))
}

/// Runs the demo in `opts.folder` (created; an earlier demo there is replaced).
pub fn run(
    opts: &DemoOptions,
    on_event: Arc<dyn Fn(DemoEvent) + Send + Sync>,
) -> Result<DemoSummary, OrchError> {
    let dir = &opts.folder;
    if dir.join("demo.orch").exists() {
        std::fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let keys: Vec<Arc<Identity>> = (0..opts.workers)
        .map(|_| Arc::new(Identity::generate(false)))
        .collect();
    let ids: Vec<String> = keys.iter().map(|k| k.public().worker_id()).collect();
    let vkeys: Vec<Arc<Identity>> = (0..opts.validators)
        .map(|_| Arc::new(Identity::generate(false)))
        .collect();
    let vids: Vec<String> = vkeys.iter().map(|k| k.public().worker_id()).collect();
    let job_file = dir.join("job.toml");
    std::fs::write(&job_file, job_toml(opts, &ids, &vids)).map_err(io(&job_file))?;
    let job = JobSpec::load(&job_file)?;
    let folder = dir.join("demo.orch");
    std::fs::create_dir_all(&folder).map_err(io(&folder))?;
    let st = store::open(&format!("sqlite:{}", folder.join("state.sqlite").display()))?;
    let orch_seed: [u8; 32] = rand::random();
    let orch = GspoOrchestrator::new(job, Identity::from_seeds(&orch_seed, None), st, &folder)?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| OrchError::Io(format!("starting the runtime: {e}")))?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .map_err(|e| OrchError::Io(format!("binding 127.0.0.1: {e}")))?;
    let url = format!(
        "http://{}",
        listener
            .local_addr()
            .map_err(|e| OrchError::Io(e.to_string()))?
    );
    let ev = on_event.clone();
    let served = rt.spawn(server::serve(
        orch,
        listener,
        Duration::from_millis(1500),
        Arc::new(move |d: &Decision| ev(DemoEvent::Orchestrator(d.clone()))),
    ));
    let handles: Vec<_> = keys
        .into_iter()
        .enumerate()
        .map(|(index, key)| {
            let o = WorkOptions {
                url: url.clone(),
                key,
                output: dir.join(format!("worker-{index}")),
                ring_addr: None,
                poll: Duration::from_millis(50),
                ring_timeout: Duration::from_secs(60),
                patience: Duration::from_secs(30),
                attack: None,
            };
            let ev = on_event.clone();
            std::thread::spawn(move || {
                worker::work(&o, &|event| ev(DemoEvent::Worker { index, event }))
            })
        })
        .collect();
    let vhandles: Vec<_> = vkeys
        .into_iter()
        .enumerate()
        .filter(|_| opts.validators >= 2)
        .map(|(index, key)| {
            let o = ValidatorOptions {
                url: url.clone(),
                key,
                output: dir.join(format!("validator-{index}")),
                poll: Duration::from_millis(50),
                patience: Duration::from_secs(30),
            };
            let ev = on_event.clone();
            std::thread::spawn(move || {
                let judge = demo_judge().map_err(|e| e.to_string())?;
                validator::validate_job(&o, judge, &|event| {
                    ev(DemoEvent::Validator { index, event })
                })
                .map_err(|e| e.to_string())
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
    for (i, h) in vhandles.into_iter().enumerate() {
        h.join()
            .map_err(|_| OrchError::Io(format!("validator {i} panicked")))?
            .map_err(|e| OrchError::Io(format!("validator {i}: {e}")))?;
    }
    // the orchestrator's own error explains the workers' failures: report it first
    rt.block_on(served)
        .map_err(|e| OrchError::Io(format!("orchestrator task: {e}")))??;
    let mut workers = Vec::new();
    for (i, r) in results.into_iter().enumerate() {
        let r = r.map_err(|_| OrchError::Io(format!("worker {i} panicked")))?;
        workers.push(r.map_err(|e| OrchError::Io(format!("worker {i}: {e}")))?);
    }
    // the orchestrator has stopped serving: reopen its store for the final status
    let st = store::open(&format!("sqlite:{}", folder.join("state.sqlite").display()))?;
    let job = JobSpec::load(&job_file)?;
    let status =
        GspoOrchestrator::new(job, Identity::from_seeds(&orch_seed, None), st, &folder)?.status();
    Ok(DemoSummary {
        job_file,
        status,
        workers,
    })
}
