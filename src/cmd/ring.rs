//! `gym ring plan` and `gym ring join`: the ring all-reduce of docs/ring-protocol.md.
//!
//! JSON output of `gym ring join --json`, format `gym-ring-join/1`:
//! ```json
//! {"format": "gym-ring-join/1", "output": "out.delta", "view": 1,
//!  "members": [{"index": 0, "id": "gym1…", "weight": 3, "input_digest": "…", "receipt": "…"}],
//!  "excluded": [{"index": 2, "id": "gym1…", "view": 0, "reason": "connection lost"}],
//!  "scale_bits": 54, "total_weight": "7", "result_digest": "…", "seed": "…",
//!  "file_digest": "…", "ring": "…", "round": 0, "allreduce_seconds": 0.8}
//! ```
//! `allreduce_seconds` runs from the first data message (all commits in) to the agreed result.

use std::io::Read as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::out::{self, Ctx};
use crate::core::atomic;
use crate::core::keys::{self, Identity, PublicIdentity};
use crate::core::ring::config::{self, Member, RingSpec};
use crate::core::ring::{io, net};

#[derive(Debug, Subcommand)]
pub enum RingCommand {
    /// Write a ring file from lines of `ADDRESS PUBLIC-KEY` (or `ADDRESS {gym key show --json}`).
    Plan(PlanArgs),
    /// Join a ring, run one all-reduce (weighted mean of the members' deltas), write the result.
    Join(JoinArgs),
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Files of member lines (default: standard input). A line is `HOST:PORT KEY`, where KEY is
    /// an Ed25519 public key (base64 or hex, optionally followed by `mldsa87:BASE64`) or the
    /// one-line JSON of `gym key show --json`. Blank lines and `#` comments are skipped.
    #[arg(value_name = "MEMBERS")]
    pub inputs: Vec<PathBuf>,
    /// Where to write the ring file (default: standard output).
    #[arg(short, long, value_name = "RING.toml")]
    pub output: Option<PathBuf>,
    /// Round number: increase it for every all-reduce, so messages of one cannot be replayed
    /// into another.
    #[arg(long, default_value_t = 0)]
    pub round: u64,
    /// Elements per data message (pipelining granularity).
    #[arg(long, value_name = "N", default_value_t = config::DEFAULT_CHUNK_ELEMENTS)]
    pub chunk_elements: u32,
    /// Replace an existing output.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The ring file (`gym ring plan`).
    #[arg(long, value_name = "RING.toml")]
    pub ring: PathBuf,
    /// This member's key (`gym keygen`); its public key must be in the ring file.
    #[arg(long, value_name = "KEY.pem")]
    pub key: PathBuf,
    /// This member's delta. All members' deltas must have the same tensors.
    #[arg(long, value_name = "IN.delta")]
    pub input: PathBuf,
    /// Where to write the averaged delta (identical on every member).
    #[arg(short, long, value_name = "OUT.delta")]
    pub output: PathBuf,
    /// This member's weight in the mean (e.g. tokens or samples), 1 to 2^32.
    #[arg(long, value_name = "W", default_value_t = 1)]
    pub weight: u64,
    /// Seconds without progress before the member starts a view change.
    #[arg(long, value_name = "S", default_value_t = 30.0)]
    pub timeout: f64,
    /// Seconds to wait for all members to connect at the start.
    #[arg(long, value_name = "S", default_value_t = 60.0)]
    pub connect_timeout: f64,
    /// Replace an existing output.
    #[arg(long)]
    pub force: bool,
    /// Print a JSON report (format `gym-ring-join/1`).
    #[arg(long)]
    pub json: bool,
}

pub fn run(ctx: &Ctx, c: RingCommand) -> anyhow::Result<()> {
    match c {
        RingCommand::Plan(a) => plan(ctx, a),
        RingCommand::Join(a) => join(ctx, a),
    }
}

fn parse_member(line: &str) -> Result<Member, String> {
    let (address, rest) = line
        .split_once(char::is_whitespace)
        .ok_or_else(|| "expected `HOST:PORT KEY`".to_string())?;
    let rest = rest.trim();
    let (ed, pq) = if rest.starts_with('{') {
        let v: serde_json::Value =
            serde_json::from_str(rest).map_err(|e| format!("invalid JSON: {e}"))?;
        let ed = v
            .get("ed25519")
            .and_then(|x| x.as_str())
            .ok_or("JSON has no string field `ed25519`")?
            .to_string();
        let pq = v
            .get("ml_dsa_87")
            .and_then(|x| x.as_str())
            .map(str::to_string);
        (ed, pq)
    } else {
        let mut words = rest.split_whitespace();
        let ed = words.next().unwrap_or_default().to_string();
        let pq = words
            .find_map(|w| w.strip_prefix("mldsa87:"))
            .map(str::to_string);
        (ed, pq)
    };
    let ed = keys::parse_ed25519_public(&ed).map_err(|e| e.to_string())?;
    let pq = match pq {
        Some(s) => Some(keys::unb64(&s).ok_or("mldsa87 key is not base64")?),
        None => None,
    };
    let public = PublicIdentity::from_raw(&ed, pq.as_deref())?;
    Ok(Member {
        id: public.worker_id(),
        address: address.to_string(),
        public,
    })
}

fn plan(ctx: &Ctx, a: PlanArgs) -> anyhow::Result<()> {
    let mut texts = Vec::new();
    if a.inputs.is_empty() {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading standard input")?;
        texts.push(("<stdin>".to_string(), s));
    }
    for p in &a.inputs {
        let s = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        texts.push((p.display().to_string(), s));
    }
    let mut members = Vec::new();
    for (name, text) in &texts {
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let m = parse_member(line).map_err(|reason| {
                crate::core::ring::config::RingFileError::Invalid {
                    path: PathBuf::from(name),
                    reason: format!("line {}: {reason}", i + 1),
                }
            })?;
            members.push(m);
        }
    }
    let n = members.len();
    let spec = RingSpec::new(a.round, a.chunk_elements, members).map_err(|reason| {
        crate::core::ring::config::RingFileError::Invalid {
            path: PathBuf::from("(members)"),
            reason,
        }
    })?;
    let text = spec.to_toml();
    match &a.output {
        Some(p) => {
            atomic::write_file(p, text.as_bytes(), a.force, None)?;
            ctx.note(format!(
                "wrote ring file {} ({n} members, round {}, digest {})",
                p.display(),
                a.round,
                hex::encode(spec.digest())
            ));
        }
        None => out::print(&text)?,
    }
    Ok(())
}

fn seconds(s: f64, what: &str) -> anyhow::Result<Duration> {
    if !(s.is_finite() && s > 0.0 && s < 1e7) {
        return Err(super::Failure::new(
            crate::core::error::ErrorClass::Other,
            format!("--{what} must be a positive number of seconds, got {s}"),
        )
        .into());
    }
    Ok(Duration::from_secs_f64(s))
}

fn join(ctx: &Ctx, a: JoinArgs) -> anyhow::Result<()> {
    let step_timeout = seconds(a.timeout, "timeout")?;
    let connect_timeout = seconds(a.connect_timeout, "connect-timeout")?;
    atomic::check_writable(&a.output, a.force)?;
    let spec = Arc::new(RingSpec::load(&a.ring)?);
    let id = Identity::load(&a.key)?;
    let me = spec
        .index_of(id.public().ed25519.as_bytes())
        .ok_or_else(|| config::RingFileError::NotMember {
            worker_id: id.public().worker_id(),
            path: a.ring.clone(),
        })?;
    let (input, layout) = io::load_input(&a.input, a.weight)?;
    ctx.note(format!(
        "ring {} round {}: {} members, this is member {me} ({}), {} elements, weight {}",
        &hex::encode(spec.digest())[..16],
        spec.round,
        spec.len(),
        spec.members[me].id,
        input.values.len(),
        a.weight
    ));
    let quiet = ctx.quiet;
    let progress: net::Progress = Arc::new(move |m: String| {
        if !quiet {
            eprintln!("member {me}: {m}");
        }
    });
    let joined = net::join_blocking(
        spec.clone(),
        me,
        Arc::new(id),
        Arc::new(input),
        net::JoinOptions {
            step_timeout,
            connect_timeout,
        },
        progress,
    )
    .with_context(|| format!("ring all-reduce as member {me}"))?;
    let outcome = joined.outcome;
    let summary = io::write_output(&a.output, a.force, &spec, &layout, &outcome)
        .with_context(|| format!("writing {}", a.output.display()))?;
    ctx.note(format!(
        "wrote {}: mean of {} members in view {} (total weight {}), digest {}",
        a.output.display(),
        outcome.members.len(),
        outcome.view,
        outcome.total_weight,
        hex::encode(summary.digest)
    ));
    if a.json {
        let mut v = io::record(&spec, &outcome);
        let obj = v.as_object_mut().expect("object");
        obj.insert("format".into(), "gym-ring-join/1".into());
        obj.insert("output".into(), a.output.display().to_string().into());
        obj.insert("file_digest".into(), hex::encode(summary.digest).into());
        obj.insert(
            "allreduce_seconds".into(),
            joined.reduced.as_secs_f64().into(),
        );
        out::json(&v)?;
    }
    Ok(())
}
