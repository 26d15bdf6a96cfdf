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
//! A quantized ring adds `"quantize": BITS` (and a ring with input bounds other than the
//! defaults `"max_weight"` / `"max_exponent"`), as the result's record does.
//!
//! JSON output of `gym ring audit --json`, format `gym-ring-audit/1` (also printed when the
//! audit fails, before the error):
//! ```json
//! {"format": "gym-ring-audit/1", "ok": false, "result": "out.delta", "result_kind": "mean",
//!  "keys": "ring_file",
//!  "ring": "…", "round": 0, "view": 0, "scale_bits": 54, "total_weight": "3",
//!  "result_digest": "…", "seed": "…", "receipts_verified": 3, "exact_mean_checked": false,
//!  "members": [{"index": 1, "id": "gym1…", "weight": 1, "input_digest": "…",
//!               "signatures_ok": true, "input": "in1.delta", "sketch_matches_input": false}],
//!  "excluded": [],
//!  "findings": [{"kind": "convicted", "class": "ring", "exit_code": 20, "index": 1,
//!                "id": "gym1…", "path": "in1.delta", "reason": "…",
//!                "message": "member 1 (gym1…) convicted by in1.delta: …"}]}
//! ```
//! `result_kind` is `mean` (a DELTA file) or `sum` (a group ring's sum file in a hierarchical
//! round; `exact_mean_checked` then means the exact sum was recomputed from every input).
//! `keys` is `ring_file` when `--ring` was given (its digest must be the recorded one), else
//! `record`: the member list recorded in the result, which only hashes to the recorded digest.

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
use crate::core::ring::proto::{Input, Outcome};
use crate::core::ring::quant::Bits;
use crate::core::ring::{audit as ring_audit, io, net, sumfile};

#[derive(Debug, Subcommand)]
pub enum RingCommand {
    /// Write a ring file from lines of `ADDRESS PUBLIC-KEY` (or `ADDRESS {gym key show --json}`).
    Plan(PlanArgs),
    /// Join a ring, run one all-reduce (weighted mean of the members' deltas), write the result.
    Join(JoinArgs),
    /// Audit a result of `gym ring join` offline: receipts, transcript, members' inputs, mean.
    ///
    /// In a hierarchical round: a group ring's sum file is audited like a mean (its integers
    /// against the signed sum digest, and with every input against their exact sum); a leader
    /// ring's result takes the groups' sum files as --input.
    ///
    /// Checks every receipt, commit and sketch signature (in a hybrid ring both halves, Ed25519
    /// and ML-DSA-87) and the record against the signed transcript; for each --input, that its member's published sketch is the sketch of that
    /// input at the transcript's points (a mismatch convicts the member, by id); with every
    /// member's input, that the result is byte for byte their exact weighted mean.
    ///
    /// Exit codes: 20 a member is convicted; 13 a signature does not verify; 12 the result is not
    /// the mean the members signed (or the file's checksum fails); 15 an input is no member's
    /// committed input, or the ring file is another ring's; 10 the record contradicts the
    /// transcript; 11 the result was written by an older gym. With several findings, the first
    /// one's code.
    Audit(AuditArgs),
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Files of member lines (default: standard input). A line is `HOST:PORT KEY`, where KEY is
    /// an Ed25519 public key (base64 or hex, optionally followed by `mldsa87:BASE64`) or the
    /// one-line JSON of `gym key show --json`. Blank lines and `#` comments are skipped. When
    /// every member has an ML-DSA-87 key the ring is hybrid (Ed25519 + ML-DSA-87 signatures);
    /// members where only some have one are refused.
    #[arg(value_name = "MEMBERS")]
    pub inputs: Vec<PathBuf>,
    /// Where to write the ring file (default: standard output).
    #[arg(short, long, value_name = "RING.toml")]
    pub output: Option<PathBuf>,
    /// Round number: increase it for every all-reduce, so messages of one cannot be replayed
    /// into another.
    #[arg(long, default_value_t = 0)]
    pub round: u64,
    /// Elements per data message (pipelining granularity). Default: 65536, or 262144 in a
    /// hybrid ring (every member with an ML-DSA-87 key), whose signatures cost ~20× more.
    #[arg(long, value_name = "N")]
    pub chunk_elements: Option<u32>,
    /// Largest weight a member may commit (1 to 2^32, default 2^32). A member committing more
    /// is excluded by the others. Together with --max-exponent it fixes the precision every
    /// honest member is guaranteed (printed).
    #[arg(long, value_name = "W")]
    pub max_weight: Option<u64>,
    /// Largest input exponent a member may commit: every element of its delta must be below
    /// 2^E in magnitude (default 8). A member committing more is excluded by the others.
    #[arg(long, value_name = "E", allow_hyphen_values = true)]
    pub max_exponent: Option<i32>,
    /// Fix the fixed-point scale at 2^F instead of the one the members' commits give: every
    /// ring of a hierarchical round uses the round's F, 58 − max_exponent − bitlen(N ·
    /// max_weight) over its N members (docs/ring-protocol.md "Hierarchical rounds").
    #[arg(long, value_name = "F")]
    pub scale_bits: Option<u32>,
    /// Make every member write the group's exact integer sum and weight total (a sum file,
    /// the input of a leader ring) instead of the mean. Needs --scale-bits.
    #[arg(long, requires = "scale_bits")]
    pub sum_output: bool,
    /// Quantized averaging: every member rounds its delta, per block of 64 values, to BITS-bit
    /// signed multiples of a power of two (2 to 16 bits) before the exact sum. Smaller data
    /// messages; each element's error is at most half a step, 2^(e−BITS) for a block whose
    /// values are below 2^e (docs/ring-protocol.md, "Quantized averaging"). Default: lossless.
    #[arg(long, value_name = "BITS", value_parser = parse_bits)]
    pub quantize: Option<Bits>,
    /// Replace an existing output.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The ring file (`gym ring plan`).
    #[arg(long, value_name = "RING.toml")]
    pub ring: PathBuf,
    /// This member's key (`gym keygen`); its public key must be in the ring file. In a hybrid
    /// ring (every member with an ML-DSA-87 key) it needs its listed ML-DSA-87 half too.
    #[arg(long, value_name = "KEY.pem")]
    pub key: PathBuf,
    /// This member's delta. All members' deltas must have the same tensors. In a leader ring
    /// of a hierarchical round: a group's sum file (written by a ring with --sum-output), whose
    /// integers enter the exact sum as they are, with its weight total.
    #[arg(long, value_name = "IN.delta")]
    pub input: PathBuf,
    /// Where to write the averaged delta (identical on every member); a sum file when the ring
    /// file says `output = "sum"`.
    #[arg(short, long, value_name = "OUT.delta")]
    pub output: PathBuf,
    /// This member's weight in the mean (e.g. tokens or samples), 1 to 2^32. A sum file input
    /// brings its own weight total.
    #[arg(long, value_name = "W", default_value_t = 1)]
    pub weight: u64,
    /// Seconds without progress before the member starts a view change.
    #[arg(long, value_name = "S", default_value_t = 30.0)]
    pub timeout: f64,
    /// Expect a quantized ring of BITS bits per element: refused unless the ring file says
    /// `quantize = BITS` (the ring file decides; `gym ring plan --quantize`).
    #[arg(long, value_name = "BITS", value_parser = parse_bits)]
    pub quantize: Option<Bits>,
    /// Seconds to wait for all members to connect at the start.
    #[arg(long, value_name = "S", default_value_t = 60.0)]
    pub connect_timeout: f64,
    /// Listen on this address instead of this member's address in the ring file (the others
    /// still dial the ring file's address: for a port forward, a NAT or a proxy in front).
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<std::net::SocketAddr>,
    /// Replace an existing output.
    #[arg(long)]
    pub force: bool,
    /// Print a JSON report (format `gym-ring-join/1`).
    #[arg(long)]
    pub json: bool,
    /// Write the signed `forward` receipt (gym-ring-receipt/1, docs/rewards.md §7) this member
    /// issues to its predecessor in the final view, for `gym reward estimate`'s ring/ folder.
    #[arg(long, value_name = "FILE.json", requires = "epoch")]
    pub receipts: Option<PathBuf>,
    /// The reward epoch the receipt is for.
    #[arg(long, value_name = "N", requires = "receipts")]
    pub epoch: Option<u64>,
}

/// Arguments of `gym ring audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The averaged delta written by `gym ring join`.
    #[arg(value_name = "RESULT.delta")]
    pub result: PathBuf,
    /// A member's input delta (repeatable): matched to the member that committed to its body
    /// digest.
    #[arg(long = "input", value_name = "M.delta")]
    pub inputs: Vec<PathBuf>,
    /// The ring file: take the members' keys from it instead of from the result's record.
    #[arg(long, value_name = "RING.toml")]
    pub ring: Option<PathBuf>,
    /// Print a JSON report (format `gym-ring-audit/1`).
    #[arg(long)]
    pub json: bool,
}

pub fn run(ctx: &Ctx, c: RingCommand) -> anyhow::Result<()> {
    match c {
        RingCommand::Plan(a) => plan(ctx, a),
        RingCommand::Join(a) => join(ctx, a),
        RingCommand::Audit(a) => audit(ctx, a),
    }
}

/// `--quantize BITS`: 2 to 16.
pub(super) fn parse_bits(s: &str) -> Result<Bits, String> {
    let b: u64 = s
        .parse()
        .map_err(|_| format!("quantize must be a number of bits (2 to 16), got {s:?}"))?;
    Bits::new(b)
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
    let hybrid = !members.is_empty() && members.iter().all(|m| m.public.ml_dsa_87.is_some());
    let chunk = a.chunk_elements.unwrap_or(if hybrid {
        config::DEFAULT_HYBRID_CHUNK_ELEMENTS
    } else {
        config::DEFAULT_CHUNK_ELEMENTS
    });
    let defaults = config::InputBounds::default();
    let bounds = config::InputBounds {
        max_weight: a.max_weight.unwrap_or(defaults.max_weight),
        max_exponent: a.max_exponent.unwrap_or(defaults.max_exponent),
    };
    let hier = config::Hier {
        scale_bits: a.scale_bits,
        output: if a.sum_output {
            config::Output::Sum
        } else {
            config::Output::Mean
        },
    };
    let spec = RingSpec::new(a.round, chunk, members)
        .and_then(|s| s.with_bounds(bounds))
        .map(|s| s.with_quantize(a.quantize))
        .and_then(|s| s.with_hier(hier))
        .map_err(|reason| crate::core::ring::config::RingFileError::Invalid {
            path: PathBuf::from("(members)"),
            reason,
        })?;
    let text = spec.to_toml();
    match &a.output {
        Some(p) => {
            atomic::write_file(p, text.as_bytes(), a.force, None)?;
            ctx.note(format!(
                "wrote ring file {} ({n} members, round {}, digest {}); every honest member's \
                 elements are kept to within 2^-{} (max_weight {}, max_exponent {})",
                p.display(),
                a.round,
                hex::encode(spec.digest()),
                bounds.min_scale(n) + 1,
                bounds.max_weight,
                bounds.max_exponent
            ));
            if let Some(b) = a.quantize {
                ctx.note(format!(
                    "quantized averaging: {b} bits per element (per block of 64, error at most \
                     half a step: 2^-{b} of the block's power-of-two bound)"
                ));
            }
        }
        None => out::print(&text)?,
    }
    Ok(())
}

fn join(ctx: &Ctx, a: JoinArgs) -> anyhow::Result<()> {
    let step_timeout = super::seconds(a.timeout, "timeout")?;
    let connect_timeout = super::seconds(a.connect_timeout, "connect-timeout")?;
    atomic::check_writable(&a.output, a.force)?;
    if let Some(r) = &a.receipts {
        atomic::check_writable(r, a.force)?;
    }
    let spec = Arc::new(RingSpec::load(&a.ring)?);
    spec.check_quantize_flag("--quantize", a.quantize, &a.ring)?;
    let id = Identity::load(&a.key)?;
    // A member of the ring; in a hybrid ring its key file must hold the listed ML-DSA-87 key.
    let me = spec.member_index(&id, &a.ring)?;
    let (input, layout) = load_join_input(&a)?;
    ctx.note(format!(
        "ring {} round {}: {} members, this is member {me} ({}), {} elements, weight {}{}",
        &hex::encode(spec.digest())[..16],
        spec.round,
        spec.len(),
        spec.members[me].id,
        input.values.len(),
        input.weight,
        spec.quantize
            .map_or(String::new(), |b| format!(", quantized to {b} bits"))
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
            listen: a.listen,
        },
        progress,
    )
    .with_context(|| format!("ring all-reduce as member {me}"))?;
    let outcome = joined.outcome;
    let file_digest = write_join_output(&a, &spec, &layout, &outcome)
        .with_context(|| format!("writing {}", a.output.display()))?;
    ctx.note(format!(
        "wrote {}: {} of {} members in view {} (total weight {}), digest {}",
        a.output.display(),
        match spec.hier.output {
            config::Output::Mean => "mean",
            config::Output::Sum => "exact sum (a sum file)",
        },
        outcome.members.len(),
        outcome.view,
        outcome.total_weight,
        hex::encode(file_digest)
    ));
    if let (Some(path), Some(epoch)) = (&a.receipts, a.epoch) {
        let w = ReceiptOut {
            path,
            force: a.force,
            epoch,
            key: &a.key,
        };
        write_receipt(ctx, &w, &spec, me, &outcome, &joined.reduced)?;
    }
    if a.json {
        let mut v = io::record(&spec, &outcome);
        let obj = v.as_object_mut().expect("object");
        obj.insert("format".into(), "gym-ring-join/1".into());
        obj.insert("excluded".into(), io::exclusions(&spec, &outcome));
        obj.insert("output".into(), a.output.display().to_string().into());
        obj.insert("file_digest".into(), hex::encode(file_digest).into());
        obj.insert(
            "allreduce_seconds".into(),
            joined.reduced.as_secs_f64().into(),
        );
        out::json(&v)?;
    }
    Ok(())
}

/// The member's input: a delta, or a group's sum file in a leader ring (its own weight).
fn load_join_input(a: &JoinArgs) -> anyhow::Result<(Input, io::Layout)> {
    if !sumfile::is_sum_file(&a.input) {
        return Ok(io::load_input(&a.input, a.weight)?);
    }
    if a.weight != 1 {
        return Err(super::Failure::new(
            crate::core::error::ErrorClass::Usage,
            format!(
                "--weight {}: the input {} is a sum file, which brings its own weight total",
                a.weight,
                a.input.display()
            ),
        )
        .into());
    }
    Ok(sumfile::SumFile::read(&a.input)?.into_input(&a.input)?)
}

/// Writes the mean (a DELTA file) or, in a group ring, the exact sum (a sum file); returns
/// the file's digest.
fn write_join_output(
    a: &JoinArgs,
    spec: &RingSpec,
    layout: &io::Layout,
    outcome: &Outcome,
) -> anyhow::Result<[u8; 32]> {
    Ok(match spec.hier.output {
        config::Output::Mean => io::write_output(&a.output, a.force, spec, layout, outcome)?.digest,
        config::Output::Sum => {
            sumfile::SumFile::of_outcome(spec, layout, outcome).write(&a.output, a.force)?
        }
    })
}

fn audit(ctx: &Ctx, a: AuditArgs) -> anyhow::Result<()> {
    let spec = a.ring.as_ref().map(|p| RingSpec::load(p)).transpose()?;
    let ring = spec.as_ref().zip(a.ring.as_deref());
    let report = ring_audit::audit(&a.result, ring, &a.inputs)?;
    if a.json {
        let mut v = serde_json::to_value(&report)?;
        let obj = v.as_object_mut().expect("object");
        obj.insert("format".into(), ring_audit::AUDIT_FORMAT.into());
        obj.insert("ok".into(), report.ok().into());
        if let Some(fs) = obj.get_mut("findings").and_then(|f| f.as_array_mut()) {
            for (j, f) in report.findings.iter().enumerate() {
                fs[j]["class"] = f.class().as_str().into();
                fs[j]["exit_code"] = f.class().exit_code().into();
                fs[j]["message"] = f.to_string().into();
            }
        }
        out::json(&v)?;
    } else {
        let keys = match report.keys {
            ring_audit::KeySource::RingFile => "the ring file",
            ring_audit::KeySource::Record => {
                "the result's own record (give --ring to check against a ring file)"
            }
        };
        let mut t = out::table(&["member", "id", "weight", "signatures", "input", "sketch"]);
        for m in &report.members {
            t.add_row(vec![
                m.index.to_string(),
                m.id.clone(),
                m.weight.to_string(),
                if m.signatures_ok { "ok" } else { "BAD" }.to_string(),
                m.input
                    .as_ref()
                    .map_or("-".into(), |p| p.display().to_string()),
                match m.sketch_matches_input {
                    Some(true) => "matches input",
                    Some(false) => "MISMATCH",
                    None => "-",
                }
                .to_string(),
            ]);
        }
        let sigs = if report.hybrid {
            "hybrid: Ed25519 + ML-DSA-87, both verified"
        } else {
            "Ed25519"
        };
        let mut s = format!(
            "{}: ring {} round {}, view {}, {} members, total weight {}\nkeys from {keys}\n\
             signatures: {sigs}\n{t}\n",
            report.result.display(),
            &report.ring[..16.min(report.ring.len())],
            report.round,
            report.view,
            report.members.len(),
            report.total_weight,
        );
        s.push_str(&format!(
            "receipts: {} of {} verify\n",
            report.receipts_verified,
            report.members.len()
        ));
        s.push_str(match (report.kind, report.exact_mean_checked) {
            (ring_audit::ResultKind::Mean, true) => {
                "exact mean: recomputed from every member's input and compared byte for byte\n"
            }
            (ring_audit::ResultKind::Mean, false) => {
                "exact mean: not checked (needs every member's input)\n"
            }
            (ring_audit::ResultKind::Sum, true) => {
                "group sum file: its integers checked against the signed sum digest and against \
                 the exact sum recomputed from every member's input\n"
            }
            (ring_audit::ResultKind::Sum, false) => {
                "group sum file: its integers checked against the signed sum digest; the exact \
                 sum of the inputs not recomputed (needs every member's input)\n"
            }
        });
        for f in &report.findings {
            s.push_str(&format!("FAILED: {f}\n"));
        }
        if report.ok() {
            s.push_str("audit passed\n");
        }
        out::print(&s)?;
    }
    if let Some(e) = report.failure() {
        return Err(e.into());
    }
    ctx.note(format!("audit of {} passed", a.result.display()));
    Ok(())
}

/// Where and for which epoch `gym ring join --receipts` writes its receipt.
struct ReceiptOut<'a> {
    path: &'a std::path::Path,
    force: bool,
    epoch: u64,
    key: &'a std::path::Path,
}

/// Signs and writes the `forward` receipt member `me` issues after the round (none when it
/// was not in the final view).
fn write_receipt(
    ctx: &Ctx,
    w: &ReceiptOut,
    spec: &RingSpec,
    me: usize,
    outcome: &crate::core::ring::proto::Outcome,
    reduced: &Duration,
) -> anyhow::Result<()> {
    use crate::core::reward::records;
    let Some(p) = records::predecessor(&outcome.members, me) else {
        ctx.note("no receipt: this member was not in the final view");
        return Ok(());
    };
    let subject = spec.members[p].public.worker_id();
    let id = Identity::load(w.key)?;
    let r = records::forward_receipt(w.epoch, spec.round, subject, reduced.as_secs_f64(), &id);
    let text = serde_json::to_string_pretty(&r)? + "\n";
    atomic::write_file(w.path, text.as_bytes(), w.force, None)
        .with_context(|| format!("writing {}", w.path.display()))?;
    ctx.note(format!(
        "wrote {}: forward receipt for member {p} ({})",
        w.path.display(),
        r.subject
    ));
    Ok(())
}
