//! The validator service (`gym validate --orchestrator URL --key K`): a roster member with
//! `role = "validator"` that, round after round, fetches the reported deltas by content address,
//! judges them with the offline checks of `core::validate` (signature, epoch, base model,
//! parent = the round's start, finite values, norm bound, leave-one-out held-out loss) and posts
//! a signed `gym-eval-report/1` verdict for each. Nothing here prints: events go to a callback.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::client::{Client, ClientError};
use super::validator_api::{ValidatorView, VerdictBody};
use super::worker::WorkError;
use super::{OrchError, job};
use crate::core::delta::VerifyOptions;
use crate::core::keys::Identity;
use crate::core::model::{Qwen3, lora};
use crate::core::reward::records::{EvalReport, Verdict};
use crate::core::train::data::Example;
use crate::core::train::trainer::{self, TrainError};
use crate::core::validate::{self, Finding, ModelLoss, Policy, Start};

/// How to validate.
pub struct ValidatorOptions {
    pub url: String,
    pub key: Arc<Identity>,
    /// Deltas and reports are kept here (`round-NNNNNN/`).
    pub output: PathBuf,
    pub poll: Duration,
    pub patience: Duration,
}

/// The validator's model and held-out data.
pub struct Judge {
    pub model: Qwen3,
    pub tokenizer: tokenizers::Tokenizer,
    /// The model's base hash (as `gym train` writes it into deltas).
    pub base_hash: String,
    pub data: Vec<Example>,
}

/// What the service reports.
#[derive(Debug, Clone)]
pub enum ValidatorEvent {
    Connected {
        validator: String,
        job: String,
    },
    Judged {
        round: u64,
        findings: Vec<Finding>,
    },
    Posted {
        round: u64,
        subject: String,
        verdict: Verdict,
    },
    Finished,
}

/// The end of a validator's job.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ValidatorSummary {
    pub validator: String,
    pub rounds: u64,
    pub verdicts: u64,
    pub failed: u64,
}

fn io(p: &Path, e: std::io::Error) -> WorkError {
    WorkError::Train(TrainError::Io(format!("{}: {e}", p.display())))
}

/// The job's policy for this round.
fn policy(job: &serde_json::Value, base_hash: &str) -> Result<Policy, WorkError> {
    let toml = job["train_toml"].as_str().unwrap_or_default();
    let cfg = job::train_config(toml, Path::new("<the job's [train] table>"))?;
    let v: Option<job::Validation> = serde_json::from_value(job["validation"].clone())
        .map_err(|e| WorkError::Setup(format!("the job's [validation]: {e}")))?;
    Ok(Policy {
        max_norm: cfg.clip_norm(),
        // the parent check (the round's start by content address) binds a delta to its round
        epoch: None,
        base_hash: Some(base_hash.to_string()),
        tolerance: v.as_ref().map_or(0.0, |v| v.tolerance),
        max_tokens: Some(
            v.as_ref()
                .and_then(|v| v.max_tokens)
                .unwrap_or(crate::core::ring::fixed::MAX_WEIGHT),
        ),
        noise_multiplier: cfg.dp_noise_multiplier.unwrap_or(0.0),
        claim_bound: cfg.max_tokens_per_delta(),
    })
}

struct Service<'a> {
    opts: &'a ValidatorOptions,
    client: Client,
    job: serde_json::Value,
    id: String,
    on_event: &'a dyn Fn(ValidatorEvent),
}

impl Service<'_> {
    fn poll(&self) -> Result<ValidatorView, WorkError> {
        let start = Instant::now();
        loop {
            match self.client.validator_poll(&self.opts.key) {
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

    /// Downloads an object into the round's folder (kept: the epoch's evidence).
    fn fetch(&self, dir: &Path, name: &str, object: &str) -> Result<PathBuf, WorkError> {
        let p = dir.join(name);
        if !p.exists() {
            let bytes = self.client.get_object(object)?;
            crate::core::atomic::write_file(&p, &bytes, true, None)
                .map_err(|e| WorkError::Setup(format!("{}: {e}", p.display())))?;
        }
        Ok(p)
    }

    /// Judges the round's deltas; the findings and the members' content addresses. The model
    /// gets the adapter of the first round's first delta, then only its factors change.
    fn judge<'t>(
        &self,
        j: &mut Loaded<'t>,
        v: &ValidatorView,
    ) -> Result<Vec<(Finding, String)>, WorkError> {
        let dir = self.opts.output.join(format!("round-{:06}", v.round));
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let mut members = Vec::new();
        let mut objects = Vec::new();
        for d in &v.deltas {
            // named by content too: an abandoned round is trained again under the same number
            let name = format!("{}-{}.delta", d.worker, &d.object[..16.min(d.object.len())]);
            let p = self.fetch(&dir, &name, &d.object)?;
            match validate::load_member(&p, &VerifyOptions::default()) {
                Ok(m) => {
                    members.push(m);
                    objects.push(d.object.clone());
                }
                // no verdict: without a quorum of passes it is refused at the deadline
                Err(_) => continue,
            }
        }
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let policy = policy(&self.job, j.base_hash)?;
        if let Some(mut m) = j.model.take() {
            // the adapter every worker starts from: the job's LoRA settings and seed
            let cfg = job::train_config(
                self.job["train_toml"].as_str().unwrap_or_default(),
                Path::new("<the job's [train] table>"),
            )?;
            let seed = trainer::derive_seed(cfg.seed, 0, 0);
            lora::attach(&mut m, &trainer::lora_config(&cfg), seed).map_err(TrainError::from)?;
            let ml = ModelLoss::attached(m, j.tokenizer, j.data, &members[0].layout)?;
            j.init = ml.factors()?;
            j.loss = Some(ml);
        }
        let start = match &v.base {
            Some(b) => {
                let p = self.fetch(&dir, &format!("start-{}.delta", &b[..16.min(b.len())]), b)?;
                let mut s: Start = validate::load_start(&p)?;
                s.digest = Some(b.clone()); // deltas name their parent by content address
                s
            }
            None => Start {
                digest: None,
                layout: members[0].layout.clone(),
                factors: j.init.clone(),
            },
        };
        let ml = j.loss.as_mut().expect("built from the model");
        let judged = validate::judge(&members, Some(&start), &policy, &mut |f: &[f32]| ml.loss(f))?;
        // reports name the job's epoch (rounds / rounds_per_epoch), the one the epoch folders
        // and the reward estimate count in; a delta's own `epoch` counts its aggregations
        let findings = judged.findings.into_iter().map(|mut f| {
            f.epoch = v.epoch;
            f
        });
        Ok(findings.zip(objects).collect())
    }

    fn post(&self, round: u64, f: &Finding, object: &str) -> Result<bool, WorkError> {
        let report: EvalReport = f.report(&self.opts.key);
        let dir = self.opts.output.join(format!("round-{round:06}"));
        let p = dir.join(format!("{}.eval.json", f.subject));
        let text = serde_json::to_string_pretty(&report).expect("a report serialises");
        crate::core::atomic::write_file(&p, text.as_bytes(), true, None)
            .map_err(|e| WorkError::Setup(format!("{}: {e}", p.display())))?;
        let body = VerdictBody {
            round,
            object: object.to_string(),
            report,
        };
        match self.client.verdict(&self.opts.key, &body) {
            Ok(_) => Ok(true),
            // already counted (a restart), or admission decided without it
            Err(e) if matches!(e.kind(), Some("duplicate" | "wrong_round")) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// The judge's model, before (`model`) and after (`loss`) the adapter is attached.
struct Loaded<'t> {
    model: Option<Qwen3>,
    loss: Option<ModelLoss<'t>>,
    /// The initial adapter (the first round's start).
    init: Vec<f32>,
    tokenizer: &'t tokenizers::Tokenizer,
    data: &'t [Example],
    base_hash: &'t str,
}

fn vfail(e: validate::ValidateError) -> WorkError {
    WorkError::Setup(e.to_string())
}

impl From<validate::ValidateError> for WorkError {
    fn from(e: validate::ValidateError) -> Self {
        vfail(e)
    }
}

/// Runs the validator loop until the job is finished or stopped.
pub fn validate_job(
    opts: &ValidatorOptions,
    judge: Judge,
    on_event: &dyn Fn(ValidatorEvent),
) -> Result<ValidatorSummary, WorkError> {
    let (mut client, job) = Client::connect(&opts.url)?;
    client.patience = opts.patience;
    let s = Service {
        opts,
        client,
        id: opts.key.public().worker_id(),
        job,
        on_event,
    };
    if s.job["validation"].is_null() {
        return Err(OrchError::Object("the job has no [validation] rule".into()).into());
    }
    (s.on_event)(ValidatorEvent::Connected {
        validator: s.id.clone(),
        job: s.job["name"].as_str().unwrap_or_default().to_string(),
    });
    let mut sum = ValidatorSummary {
        validator: s.id.clone(),
        rounds: 0,
        verdicts: 0,
        failed: 0,
    };
    let Judge {
        model,
        tokenizer,
        base_hash,
        data,
    } = judge;
    let mut loaded = Loaded {
        model: Some(model),
        loss: None,
        init: Vec::new(),
        tokenizer: &tokenizer,
        data: &data,
        base_hash: &base_hash,
    };
    loop {
        let v = s.poll()?;
        if v.finished {
            break;
        }
        let todo = v.deltas.iter().any(|d| !v.judged.contains(&d.worker));
        if v.phase != "validating" || !todo {
            std::thread::sleep(opts.poll);
            continue;
        }
        let findings = s.judge(&mut loaded, &v)?;
        if findings.is_empty() {
            // nothing readable to judge: those deltas are refused at the deadline
            std::thread::sleep(opts.poll);
            continue;
        }
        (s.on_event)(ValidatorEvent::Judged {
            round: v.round,
            findings: findings.iter().map(|(f, _)| f.clone()).collect(),
        });
        sum.rounds += 1;
        for (f, object) in &findings {
            if v.judged.contains(&f.subject) || f.subject == s.id {
                continue; // a validator never reports on itself
            }
            if s.post(v.round, f, object)? {
                sum.verdicts += 1;
                sum.failed += u64::from(f.verdict == Verdict::Fail);
                (s.on_event)(ValidatorEvent::Posted {
                    round: v.round,
                    subject: f.subject.clone(),
                    verdict: f.verdict,
                });
            }
        }
    }
    (s.on_event)(ValidatorEvent::Finished);
    Ok(sum)
}
