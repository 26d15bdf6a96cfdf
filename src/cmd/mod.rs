//! The command-line layer: one module per subcommand, each a clap `Args` struct and a `run`
//! that maps arguments onto `core` and formats the result. Nothing here implements a feature.

pub mod cid;
pub mod delta;
pub mod demo;
pub mod docs;
pub mod download;
pub mod eval;
pub mod exit;
pub mod generate;
pub mod job;
pub mod key;
pub mod model;
pub mod orchestrate;
pub mod out;
pub mod plot;
pub mod publish;
pub mod reward;
pub mod ring;
pub mod train;
pub mod validate;
pub mod work;

use clap::{CommandFactory, Parser, Subcommand};

use crate::core::error::ErrorClass;

/// gym: decentralized GSPO fine-tuning of language models with signed, verifiable deltas.
#[derive(Debug, Parser)]
#[command(name = "gym", version, about, long_about = None, after_help = crate::core::error::help_table(), propagate_version = true)]
pub struct Cli {
    /// Print nothing on stderr except errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Worker threads for parallel work (default: one per core).
    #[arg(long, global = true, env = "GYM_THREADS", value_name = "N")]
    pub threads: Option<usize>,
    /// The CPU's large matrix products: `auto` (a system oneMKL or OpenBLAS when installed,
    /// else builtin), `builtin` (the gemm crate), or a CBLAS library's path or file name.
    #[arg(
        long,
        global = true,
        env = "GYM_BLAS",
        value_name = "auto|builtin|LIBRARY",
        default_value = "auto"
    )]
    pub blas: String,
    #[command(subcommand)]
    pub command: Command,
}

// `Train`'s arguments, by far the largest, are boxed to keep `Command` small; the other variants
// may differ in size (a command line is parsed once per process, hence the `allow`).
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum Command {
    /// Create a worker key (Ed25519, optionally with ML-DSA-87).
    Keygen(key::KeygenArgs),
    /// Work with key files.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Pack, unpack, inspect, verify and compare DELTA files.
    #[command(subcommand)]
    Delta(delta::DeltaCommand),
    /// Estimate epoch rewards; sign and verify reward claims.
    #[command(subcommand)]
    Reward(reward::RewardCommand),
    /// Average deltas with other workers: authenticated, encrypted, verifiable ring all-reduce.
    #[command(subcommand)]
    Ring(ring::RingCommand),
    /// Print the CIDs `ipfs add` would give files or directories, computed offline.
    Cid(cid::CidArgs),
    /// Publish a file or folder: to a local CID-named folder, an IPFS node, the Hugging Face Hub.
    Publish(publish::PublishArgs),
    /// Inspect model folders (architecture, parameters, memory, LoRA size).
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Fine-tune with GSPO (LoRA over an NF4 base); write metrics, checkpoints, signed deltas.
    Train(Box<train::TrainArgs>),
    /// Evaluate a model or adapter: mean reward, accuracy, NLL of reference answers.
    Eval(eval::EvalArgs),
    /// Complete prompts with a model (default: the bundled tiny Qwen3).
    Generate(generate::GenerateArgs),
    /// Draw training curves (metrics JSON Lines) into an SVG, one panel per metric.
    Plot(plot::PlotArgs),
    /// Print a shell completion script.
    Completions(docs::CompletionsArgs),
    /// Download a model or dataset by hub id into the Hugging Face cache; print its folder.
    Download(download::DownloadArgs),
    /// Check a round's deltas (signature, sequence, base, norm, held-out loss); signed verdicts.
    Validate(validate::ValidateArgs),
    /// Run a job's orchestrator: rounds, rings, signed decision log, checkpoint publishing.
    Orchestrate(orchestrate::OrchestrateArgs),
    /// Train for an orchestrator's job: register, train, report, join each round's ring.
    Work(work::WorkArgs),
    /// Inspect or stop a running job.
    #[command(subcommand)]
    Job(job::JobCommand),
    /// The whole protocol on one machine: an orchestrator and 3 workers, 2 epochs, on loopback.
    Demo(demo::DemoArgs),
}

/// The clap definition, for docs generation and tests.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Hands the library the environment variables it honours (it never reads the environment
/// itself): `SOURCE_DATE_EPOCH` fixes the time written into records, `GYM_NO_SIMD` turns SIMD
/// kernels off. Called once at start by every edge (the `gym` binary, the Python module).
pub fn apply_environment() {
    if let Some(secs) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
    {
        crate::core::timefmt::fix_now(secs);
    }
    if std::env::var_os("GYM_NO_SIMD").is_some() {
        crate::core::cpu::disable_simd();
    }
}

/// Selects the CPU's matrix products (`--blas`, `GYM_BLAS`; the Python module reads
/// `GYM_BLAS` at import): a library that cannot be used is a usage error naming it.
pub fn select_blas(value: &str) -> anyhow::Result<()> {
    let choice: crate::core::blas::Choice = value.parse().unwrap_or_default();
    crate::core::blas::select(choice)?;
    Ok(())
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(n) = cli.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global()
            .map_err(|e| anyhow::anyhow!("setting up {n} threads: {e}"))?;
    }
    select_blas(&cli.blas)?;
    let ctx = out::Ctx { quiet: cli.quiet };
    match cli.command {
        Command::Keygen(a) => key::keygen(&ctx, a),
        Command::Key(c) => key::run(&ctx, c),
        Command::Delta(c) => delta::run(&ctx, c),
        Command::Reward(c) => reward::run(&ctx, c),
        Command::Ring(c) => ring::run(&ctx, c),
        Command::Cid(a) => cid::run(&ctx, a),
        Command::Publish(a) => publish::run(&ctx, a),
        Command::Model(c) => model::run(&ctx, c),
        Command::Generate(a) => generate::run(&ctx, a),
        Command::Train(a) => train::run(&ctx, *a),
        Command::Eval(a) => eval::run(&ctx, a),
        Command::Plot(a) => plot::run(&ctx, a),
        Command::Completions(a) => docs::completions(a),
        Command::Download(a) => download::run(&ctx, a),
        Command::Validate(a) => validate::run(&ctx, a),
        Command::Orchestrate(a) => orchestrate::run(&ctx, a),
        Command::Work(a) => work::run(&ctx, a),
        Command::Job(c) => job::run(&ctx, c),
        Command::Demo(a) => demo::run(&ctx, a),
    }
}

/// An error that carries its own class, for outcomes that are not a single typed error
/// (for example "2 of 5 files failed verification"). An empty message prints nothing.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub class: ErrorClass,
    pub message: String,
}

impl Failure {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Failure {
            class,
            message: message.into(),
        }
    }
}

/// A `--FLAG` number of seconds as a duration: positive, finite and below 10^7 (about 115
/// days, well inside what `Duration` holds); anything else is a usage error naming the flag.
pub fn seconds(s: f64, flag: &str) -> anyhow::Result<std::time::Duration> {
    if !(s.is_finite() && s > 0.0 && s < 1e7) {
        return Err(Failure::new(
            ErrorClass::Usage,
            format!("--{flag} must be a positive number of seconds, got {s}"),
        )
        .into());
    }
    Ok(std::time::Duration::from_secs_f64(s))
}
