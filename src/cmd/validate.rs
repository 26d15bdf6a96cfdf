//! `gym validate DELTA… --data HELDOUT.jsonl`: a validator's checks of a round's deltas,
//! written as signed `gym-eval-report/1` records (docs/validation.md).
//!
//! JSON (`--json`, format `gym-validate/1`): `start_loss`, `aggregate_loss`, `admitted`
//! (files), `findings` (one per judged delta: file, digest, subject, epoch, seq, verdict,
//! reasons, weight, norm, loss_without, loss_with, loss_improvement, grad_norm_stability,
//! convergence), `refused` ([{file, error}]), `reports` (the file written, or null).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use candle_core::Device;
use clap::Args;
use serde_json::json;

use super::Failure;
use super::out::{self, Ctx};
use crate::core::atomic;
use crate::core::delta::VerifyOptions;
use crate::core::error::ErrorClass;
use crate::core::keys::{Identity, TrustedKeys};
use crate::core::model::{self, Qwen3};
use crate::core::orchestrator::validator::{self, Judge, ValidatorEvent, ValidatorOptions};
use crate::core::reward::records::Verdict;
use crate::core::train::data::{self, ChatTemplate};
use crate::core::train::trainer;
use crate::core::validate::offline::{self, Refused};
use crate::core::validate::{Finding, Judgement, Policy};

const AFTER: &str = "\
Exit codes: 0 every delta passed; 15 at least one delta got a `fail` verdict (its report is
still written); a delta that cannot be verified at all (unreadable, checksum, signature,
untrusted signer) gets no report and the command exits with that error's code (10-14) after
judging the others. Checks and metrics are defined in docs/validation.md.";

/// Arguments of `gym validate`.
#[derive(Debug, Args)]
#[command(after_help = AFTER)]
pub struct ValidateArgs {
    /// The round's deltas (signed, as `gym train` writes them).
    #[arg(value_name = "DELTA", required_unless_present = "orchestrator")]
    pub deltas: Vec<PathBuf>,
    /// Run as a job's validator service: judge every round's reported deltas and post signed
    /// verdicts to this orchestrator until the job ends (needs --key of a roster member with
    /// role = "validator"; policy from the job file; -o is then the folder for the rounds'
    /// deltas and reports, default runs/validate-<id>).
    #[arg(long, value_name = "URL", conflicts_with_all = ["deltas", "start", "max_norm", "epoch", "max_tokens", "trusted_keys"], requires = "key")]
    pub orchestrator: Option<String>,
    /// Held-out data, JSONL with `answer` fields (the loss is their NLL per token).
    #[arg(long, value_name = "FILE.jsonl")]
    pub data: PathBuf,
    /// Hugging Face model folder (default: the bundled tiny Qwen3).
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// The round's starting point (the previous aggregate, or the run's start delta): updates
    /// are measured from it and every delta's parent_hash must be its digest.
    #[arg(long, value_name = "DELTA")]
    pub start: Option<PathBuf>,
    /// Validator key: signs the reports.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Write the signed reports here (JSON Lines; `.json` for a single delta).
    #[arg(short, long, value_name = "PATH", requires = "key")]
    pub output: Option<PathBuf>,
    /// Overwrite the output.
    #[arg(long)]
    pub force: bool,
    /// L2 bound C on each update (delta minus start); larger ones fail.
    #[arg(long, value_name = "C")]
    pub max_norm: Option<f64>,
    /// The job's DP noise multiplier z: the bound becomes C + z·C·(√d + 6) for d factors.
    #[arg(long, value_name = "Z", default_value_t = 0.0, requires = "max_norm")]
    pub dp_noise_multiplier: f64,
    /// Required epoch of every delta (default: not checked).
    #[arg(long, value_name = "N")]
    pub epoch: Option<u64>,
    /// Fail a delta that makes the held-out loss worse by more than this (nats per token).
    #[arg(long, value_name = "NATS", default_value_t = 0.0)]
    pub tolerance: f64,
    /// Cap on the tokens a delta may claim as its averaging weight (the job's assignment).
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<u64>,
    /// Signers must be listed here.
    #[arg(long, value_name = "FILE")]
    pub trusted_keys: Option<PathBuf>,
    /// Evaluate only the first N examples of the data.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Quantize the base to NF4 (as training with use_4bit does).
    #[arg(long)]
    pub nf4: bool,
    /// Print JSON (format `gym-validate/1`).
    #[arg(long)]
    pub json: bool,
}

/// The validator's model, tokenizer and base hash (as `gym train` computes it).
pub(crate) fn load_model(
    dir: Option<&Path>,
    nf4: bool,
) -> anyhow::Result<(Qwen3, tokenizers::Tokenizer, String)> {
    let dev = Device::Cpu;
    let (mut m, tok, hash) = match dir {
        Some(d) => (
            model::load(d, &dev).with_context(|| format!("loading {}", d.display()))?,
            model::load_tokenizer(d)?,
            trainer::base_hash_dir(d)?,
        ),
        None => {
            let (m, t) = model::embedded::tiny_qwen3(&dev)?;
            let h = trainer::base_hash_files(&[(
                "model.safetensors".into(),
                model::embedded::TINY_WEIGHTS.to_vec(),
            )]);
            (m, t, h)
        }
    };
    if nf4 {
        m.quantize_nf4(true)?;
    }
    Ok((m, tok, hash))
}

/// Writes the signed reports of `findings` (skipping any about the validator itself).
pub(crate) fn write_reports(
    ctx: &Ctx,
    findings: &[Finding],
    id: &Identity,
    path: &Path,
    force: bool,
) -> anyhow::Result<usize> {
    let me = id.public().worker_id();
    let mut lines = Vec::new();
    for f in findings {
        if f.subject == me {
            ctx.note(format!(
                "{}: not reporting on my own delta (a validator never reports on itself)",
                f.file
            ));
            continue;
        }
        lines.push(serde_json::to_string(&f.report(id))?);
    }
    let single = path.extension().is_some_and(|e| e == "json");
    if single && lines.len() != 1 {
        anyhow::bail!(
            "{}: a .json file holds one report, there are {}; use .jsonl",
            path.display(),
            lines.len()
        );
    }
    let text = lines.join("\n") + "\n";
    atomic::write_file(path, text.as_bytes(), force, None)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(lines.len())
}

pub fn run(ctx: &Ctx, a: ValidateArgs) -> anyhow::Result<()> {
    if let Some(url) = a.orchestrator.clone() {
        return serve(ctx, a, &url);
    }
    if let Some(o) = &a.output {
        atomic::check_writable(o, a.force)?;
    }
    let id = match &a.key {
        Some(k) => Some(Identity::load(k).with_context(|| format!("loading key {}", k.display()))?),
        None => None,
    };
    let verify = VerifyOptions {
        trusted: match &a.trusted_keys {
            Some(p) => Some(TrustedKeys::load(p)?),
            None => None,
        },
        require_signature: true,
        ..VerifyOptions::default()
    };
    let (members, start, refused) = offline::load_round(&a.deltas, a.start.as_deref(), &verify)?;
    for r in &refused {
        ctx.note(format!("refused: {}", r.error));
    }
    let (m, tok, base_hash) = load_model(a.model.as_deref(), a.nf4)?;
    let chat = match a.model.as_deref() {
        Some(dir) => crate::core::chat::ChatTemplate::from_model_dir(dir)?,
        None => Some(crate::core::chat::ChatTemplate::qwen3()),
    };
    let mut examples = data::load_jsonl(&a.data, ChatTemplate::from_model(chat.as_ref(), false))?;
    if let Some(n) = a.limit {
        examples.truncate(n);
    }
    let policy = Policy {
        max_norm: a.max_norm,
        epoch: a.epoch,
        base_hash: Some(base_hash),
        tolerance: a.tolerance,
        max_tokens: a.max_tokens,
        noise_multiplier: a.dp_noise_multiplier,
        claim_bound: None,
    };
    let judged = if members.is_empty() {
        None
    } else {
        let (j, evals) =
            offline::judge_with_model(m, &tok, &examples, &members, start.as_ref(), &policy)?;
        ctx.note(format!("{evals} held-out evaluations"));
        Some(j)
    };
    let mut written = None;
    if let (Some(j), Some(o), Some(id)) = (&judged, &a.output, &id) {
        let n = write_reports(ctx, &j.findings, id, o, a.force)?;
        ctx.note(format!("{n} signed reports written to {}", o.display()));
        written = Some(o.display().to_string());
    }
    print(&a, judged.as_ref(), &refused, written)?;
    outcome(judged.as_ref(), &refused)
}

fn print(
    a: &ValidateArgs,
    j: Option<&Judgement>,
    refused: &[Refused],
    written: Option<String>,
) -> anyhow::Result<()> {
    let findings: &[Finding] = j.map(|j| j.findings.as_slice()).unwrap_or(&[]);
    if a.json {
        return out::json(&json!({
            "format": "gym-validate/1",
            "start_loss": j.map(|j| j.start_loss),
            "aggregate_loss": j.and_then(|j| j.aggregate_loss),
            "admitted": j.map(|j| j.admitted.iter().map(|&i| findings[i].file.clone()).collect::<Vec<_>>()),
            "findings": findings,
            "refused": refused,
            "reports": written,
        }));
    }
    let mut t = out::table(&[
        "delta",
        "subject",
        "verdict",
        "norm",
        "loss Δ",
        "stability",
        "convergence",
        "reasons",
    ]);
    for f in findings {
        t.add_row(vec![
            f.file.clone(),
            short(&f.subject),
            f.verdict.name().to_string(),
            format!("{:.4}", f.norm),
            format!("{:+.5}", f.loss_improvement),
            format!("{:.3}", f.grad_norm_stability),
            format!("{:+.4}", f.convergence),
            f.reasons.join("; "),
        ]);
    }
    for r in refused {
        let row = vec![r.file.clone(), "?".into(), "refused".into()];
        t.add_row([row, vec![String::new(); 4], vec![r.error.clone()]].concat());
    }
    out::println(&t.to_string())?;
    if let Some(j) = j {
        out::println(&format!(
            "held-out loss: start {:.5}, aggregate of the admitted {}",
            j.start_loss,
            j.aggregate_loss
                .map_or("– (none admitted)".to_string(), |l| format!("{l:.5}"))
        ))?;
    }
    Ok(())
}

fn short(id: &str) -> String {
    if id.len() > 14 {
        format!("{}…", &id[..14])
    } else {
        id.to_string()
    }
}

/// The exit status: a refused delta's error class first, then 15 for any `fail`.
fn outcome(j: Option<&Judgement>, refused: &[Refused]) -> anyhow::Result<()> {
    if let Some(r) = refused.first() {
        return Err(Failure::new(
            r.class,
            format!(
                "{} of the deltas could not be verified: {}",
                refused.len(),
                r.error
            ),
        )
        .into());
    }
    let failed = j.map_or(0, |j| {
        j.findings
            .iter()
            .filter(|f| f.verdict == Verdict::Fail)
            .count()
    });
    if failed > 0 {
        return Err(Failure::new(
            ErrorClass::Policy,
            format!("{failed} delta(s) failed validation"),
        )
        .into());
    }
    Ok(())
}

fn describe(e: &ValidatorEvent) -> String {
    match e {
        ValidatorEvent::Connected { validator, job } => {
            format!("validating job {job} as {validator}")
        }
        ValidatorEvent::Judged { round, findings } => {
            let pass = findings
                .iter()
                .filter(|f| f.verdict == Verdict::Pass)
                .count();
            format!(
                "round {round}: judged {} delta(s), {pass} pass",
                findings.len()
            )
        }
        ValidatorEvent::Posted {
            round,
            subject,
            verdict,
        } => format!("round {round}: {} for {}", verdict.name(), short(subject)),
        ValidatorEvent::Finished => "job finished".into(),
    }
}

/// `gym validate --orchestrator URL`: the validator service.
fn serve(ctx: &Ctx, a: ValidateArgs, url: &str) -> anyhow::Result<()> {
    let kp = a.key.as_ref().expect("clap requires --key");
    let key = Identity::load(kp).with_context(|| format!("loading key {}", kp.display()))?;
    let id = key.public().worker_id();
    let (model, tokenizer, base_hash) = load_model(a.model.as_deref(), a.nf4)?;
    let chat = match a.model.as_deref() {
        Some(dir) => crate::core::chat::ChatTemplate::from_model_dir(dir)?,
        None => Some(crate::core::chat::ChatTemplate::qwen3()),
    };
    let mut data = data::load_jsonl(&a.data, ChatTemplate::from_model(chat.as_ref(), false))?;
    if let Some(n) = a.limit {
        data.truncate(n);
    }
    let output = a
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(format!("validate-{id}")));
    let opts = ValidatorOptions {
        url: url.to_string(),
        key: std::sync::Arc::new(key),
        output,
        poll: std::time::Duration::from_millis(100),
        patience: std::time::Duration::from_secs(120),
    };
    let judge = Judge {
        model,
        tokenizer,
        base_hash,
        data,
    };
    let quiet = ctx.quiet;
    let sum = validator::validate_job(&opts, judge, &|e| {
        if !quiet {
            eprintln!("{}", describe(&e));
        }
    })
    .with_context(|| format!("validating for {url}"))?;
    if a.json {
        return out::json(&json!({
            "format": "gym-validator/1",
            "validator": sum.validator,
            "rounds": sum.rounds,
            "verdicts": sum.verdicts,
            "failed": sum.failed,
        }));
    }
    Ok(())
}
