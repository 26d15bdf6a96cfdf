//! Reading an epoch folder into per-node metrics.
//!
//! ```text
//! EPOCH/
//!   nodes.json | nodes.csv   roster: node (worker id), role, stake — no metrics
//!   deltas/*.delta           signed deltas; their metadata carries the compute record
//!   eval/*.json[l]           gym-eval-report/1, signed by validators
//!   ring/*.json[l]           gym-ring-receipt/1, signed by other ring members
//! ```
//!
//! A delta that fails verification makes its node ineligible (with the reason); a receipt or
//! report that is unsigned, tampered, self-issued or issued by a node outside the roster is an
//! error naming the file and record. Records for another epoch, or about nodes outside the
//! roster, are listed as rejected and not counted. See `docs/rewards.md`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::contrib::{self, Mode};
use super::records::{self, EVAL_FORMAT, EvalReport, RING_FORMAT, RingKind, RingReceipt, Verdict};
use super::{FIXED_POINT, Inputs, Metric, Params, Rejected, RewardError, Role, to_fixed};
use crate::core::delta::{self, Delta, FileSource, VerifyOptions};
use crate::core::keys::worker_id;

#[derive(Debug, Clone, Default)]
pub struct EpochOptions {
    /// The epoch to estimate; defaults to the roster's `epoch` field.
    pub epoch: Option<u64>,
    /// Model size in parameters, for the FLOPs cap.
    pub model_params: u128,
}

/// Files of `dir` whose names end in one of `exts`, sorted; none when `dir` does not exist.
fn files(dir: &Path, exts: &[&str]) -> Result<Vec<PathBuf>, RewardError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let rd = std::fs::read_dir(dir).map_err(|source| RewardError::Read {
        path: dir.display().to_string(),
        source,
    })?;
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| exts.contains(&e))
        })
        .collect();
    v.sort();
    Ok(v)
}

fn lower_median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get((v.len().saturating_sub(1)) / 2)
        .copied()
        .unwrap_or(0.0)
}

struct DeltaInfo {
    node: String,
    tokens: u64,
    file: String,
}

/// Loads the epoch folder `dir`.
pub fn load(dir: &Path, p: &Params, opts: &EpochOptions) -> Result<Inputs, RewardError> {
    let roster_path = ["nodes.json", "nodes.csv"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| RewardError::NoRoster {
            path: dir.display().to_string(),
        })?;
    let roster = contrib::load(&roster_path, p, Mode::Roster, None)?;
    let epoch = opts
        .epoch
        .or(roster.epoch)
        .ok_or_else(|| RewardError::Record {
            file: roster_path.display().to_string(),
            record: "document".into(),
            reason: "no epoch: pass --epoch or add an \"epoch\" field".into(),
        })?;
    let mut inputs = Inputs {
        epoch: Some(epoch),
        nodes: roster.nodes,
        ..Inputs::default()
    };
    let index: HashMap<String, usize> = inputs
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.node.clone(), i))
        .collect();
    let role_of = |w: &str| index.get(w).map(|&i| inputs.nodes[i].role);
    // Records from members below their role's minimum stake are not counted: a sybil must stake
    // every identity it attests with.
    let understaked = |w: &str| {
        let n = &inputs.nodes[*index.get(w)?];
        (n.stake < p.min_stake(n.role)).then(|| {
            format!(
                "issuer {w} has less than the {} minimum stake; not counted",
                n.role.name()
            )
        })
    };
    let mut exclusions: Vec<Vec<String>> = vec![Vec::new(); inputs.nodes.len()];
    let mut metrics: Vec<[i128; super::METRICS.len()]> =
        vec![[0; super::METRICS.len()]; inputs.nodes.len()];
    let mut rejected = Vec::new();
    let mut notes = Vec::new();
    let reject = |rejected: &mut Vec<Rejected>, file: &str, reason: String| {
        rejected.push(Rejected {
            file: file.to_string(),
            reason,
        })
    };

    // Deltas: the compute record, capped.
    let mut deltas: HashMap<String, DeltaInfo> = HashMap::new();
    let mut seqs: HashMap<(String, u64), String> = HashMap::new();
    for path in files(&dir.join("deltas"), &["delta"])? {
        let file = path.display().to_string();
        let src = FileSource::open(&path).map_err(|source| RewardError::Read {
            path: file.clone(),
            source,
        })?;
        let scanned = match Delta::scan(&src) {
            Ok(d) => d,
            Err(e) => {
                reject(&mut rejected, &file, format!("not a readable delta: {e}"));
                continue;
            }
        };
        let claimed = match &scanned.signature {
            Some(s) => worker_id(&s.ed25519_public),
            None => scanned.metadata.worker_id.clone(),
        };
        let report = match delta::verify(
            &src,
            &VerifyOptions {
                require_signature: true,
                ..VerifyOptions::default()
            },
        ) {
            Ok(r) => r,
            Err(e) => {
                match index.get(&claimed) {
                    Some(&i) => {
                        exclusions[i].push(format!("delta {file} failed verification: {e}"))
                    }
                    None => reject(
                        &mut rejected,
                        &file,
                        format!("failed verification ({e}); {claimed} is not in the roster"),
                    ),
                }
                continue;
            }
        };
        let node = report
            .signer
            .as_ref()
            .map(|s| s.worker_id())
            .unwrap_or(claimed);
        let Some(&i) = index.get(&node) else {
            reject(
                &mut rejected,
                &file,
                format!("signer {node} is not in the roster"),
            );
            continue;
        };
        let meta = &report.delta.metadata;
        if meta.epoch != epoch {
            reject(
                &mut rejected,
                &file,
                format!(
                    "delta is for epoch {}, estimating epoch {epoch}",
                    meta.epoch
                ),
            );
            continue;
        }
        let digest = report.digest_hex();
        if let Some(prev) = deltas.get(&digest) {
            reject(&mut rejected, &file, format!("same delta as {}", prev.file));
            continue;
        }
        if let Some(prev) = seqs.insert((node.clone(), meta.seq), file.clone()) {
            exclusions[i].push(format!(
                "two different deltas with sequence number {} ({prev}, {file})",
                meta.seq
            ));
        }
        let compute = meta.compute.clone().unwrap_or(delta::Compute {
            tokens: 0,
            flops: 0.0,
            device: String::new(),
            wall_seconds: 0.0,
        });
        let mem = meta
            .extra
            .as_ref()
            .and_then(|x| x.get("memory_bytes"))
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0);
        let bad = |reason: String| RewardError::Record {
            file: file.clone(),
            record: "compute".into(),
            reason,
        };
        let mut compute = compute;
        bound_claims(p, &node, &file, &mut compute, &mut notes);
        let mut flops = to_fixed(compute.flops).map_err(|e| bad(format!("flops: {e}")))?;
        let cap = contrib::flops_cap(p, opts.model_params, u128::from(compute.tokens));
        if flops > cap {
            notes.push(format!(
                "{node}: {file} claims {} FLOPs, capped at {} ({} x {} params x {} tokens)",
                compute.flops,
                cap / FIXED_POINT,
                p.flops_per_param_token,
                opts.model_params,
                compute.tokens
            ));
            flops = cap;
        }
        let gpu = to_fixed(compute.wall_seconds).map_err(|e| bad(format!("wall_seconds: {e}")))?;
        let mem = to_fixed(mem).map_err(|e| bad(format!("extra.memory_bytes: {e}")))?;
        if mem < 0 {
            return Err(bad("extra.memory_bytes is negative".into()));
        }
        let m = &mut metrics[i];
        for (metric, v) in [
            (Metric::Flops, flops),
            (Metric::GpuSeconds, gpu),
            (Metric::MemoryBytes, mem),
        ] {
            m[metric.index()] = m[metric.index()].saturating_add(v);
        }
        deltas.insert(
            digest,
            DeltaInfo {
                node,
                tokens: compute.tokens,
                file,
            },
        );
    }

    // Eval reports: quality, measured by validators.
    let mut reports: BTreeMap<String, Vec<(String, EvalReport)>> = BTreeMap::new();
    for path in files(&dir.join("eval"), &["json", "jsonl"])? {
        let file = path.display().to_string();
        for (label, r) in records::read_file::<EvalReport>(&path, EVAL_FORMAT)? {
            let issuer = r.verify(&file, &label)?.worker_id();
            let where_ = format!("{file} ({label})");
            if r.epoch != epoch {
                reject(
                    &mut rejected,
                    &where_,
                    format!("report is for epoch {}, estimating epoch {epoch}", r.epoch),
                );
                continue;
            }
            check_issuer(
                &file,
                &label,
                &issuer,
                &r.subject,
                role_of(&issuer),
                &[Role::Validator],
            )?;
            if let Some(why) = understaked(&issuer) {
                reject(&mut rejected, &where_, why);
                continue;
            }
            match deltas.get(&r.delta) {
                Some(d) if d.node == r.subject => {}
                _ => {
                    let why = format!(
                        "delta {} is not a verified delta of {} in this epoch",
                        r.delta, r.subject
                    );
                    reject(&mut rejected, &where_, why);
                    continue;
                }
            }
            let list = reports.entry(r.delta.clone()).or_default();
            if list.iter().any(|(v, _)| *v == issuer) {
                reject(
                    &mut rejected,
                    &where_,
                    format!("second report by {issuer} on the same delta"),
                );
                continue;
            }
            list.push((issuer, r));
        }
    }
    for (digest, list) in &reports {
        let d = &deltas[digest];
        let i = index[&d.node];
        for (v, r) in list.iter().filter(|(_, r)| r.verdict == Verdict::Fail) {
            let why = r.reason.as_deref().unwrap_or("no reason given");
            exclusions[i].push(format!("validator {v} failed delta {}: {why}", d.file));
        }
        let med =
            |f: fn(&EvalReport) -> f64| lower_median(list.iter().map(|(_, r)| f(r)).collect());
        // Clamped per delta, before anything is summed (docs/rewards.md, "Quality").
        let loss = to_fixed(med(|r| r.loss_improvement)).unwrap_or(0).max(0);
        let conv = to_fixed(med(|r| r.convergence)).unwrap_or(0).max(0);
        let stable = to_fixed(med(|r| r.grad_norm_stability) * d.tokens as f64)
            .unwrap_or(0)
            .max(0);
        let m = &mut metrics[i];
        for (metric, v) in [
            (Metric::LossImprovement, loss),
            (Metric::Convergence, conv),
            (Metric::StableTokens, stable),
        ] {
            m[metric.index()] = m[metric.index()].saturating_add(v);
        }
    }

    // Ring receipts: participation, attested by other members.
    let mut uptime: BTreeMap<(String, u64), Vec<f64>> = BTreeMap::new();
    let mut checkpoints: HashSet<(String, u64)> = HashSet::new();
    let mut seen: HashSet<(String, String, u64, &'static str)> = HashSet::new();
    for path in files(&dir.join("ring"), &["json", "jsonl"])? {
        let file = path.display().to_string();
        for (label, r) in records::read_file::<RingReceipt>(&path, RING_FORMAT)? {
            let issuer = r.verify(&file, &label)?.worker_id();
            let where_ = format!("{file} ({label})");
            let allowed: &[Role] = match r.kind {
                RingKind::Forward => &Role::ALL,
                RingKind::Checkpoint | RingKind::Fault => &[Role::Validator, Role::Orchestrator],
            };
            if r.epoch != epoch {
                reject(
                    &mut rejected,
                    &where_,
                    format!("receipt is for epoch {}, estimating epoch {epoch}", r.epoch),
                );
                continue;
            }
            check_issuer(
                &file,
                &label,
                &issuer,
                &r.subject,
                role_of(&issuer),
                allowed,
            )?;
            if let Some(why) = understaked(&issuer) {
                reject(&mut rejected, &where_, why);
                continue;
            }
            let Some(&i) = index.get(&r.subject) else {
                reject(
                    &mut rejected,
                    &where_,
                    format!("subject {} is not in the roster", r.subject),
                );
                continue;
            };
            if !seen.insert((issuer.clone(), r.subject.clone(), r.round, r.kind.name())) {
                reject(
                    &mut rejected,
                    &where_,
                    format!("duplicate {} receipt by {issuer}", r.kind.name()),
                );
                continue;
            }
            match r.kind {
                RingKind::Forward => uptime
                    .entry((r.subject.clone(), r.round))
                    .or_default()
                    .push(r.uptime_seconds),
                RingKind::Checkpoint => {
                    checkpoints.insert((r.subject.clone(), r.round));
                }
                RingKind::Fault => {
                    let why = r.reason.as_deref().unwrap_or_default();
                    exclusions[i].push(format!(
                        "ring fault in round {} reported by {issuer}: {why}",
                        r.round
                    ));
                }
            }
        }
    }
    for ((subject, _round), values) in uptime {
        let m = &mut metrics[index[&subject]];
        let up = to_fixed(lower_median(values)).unwrap_or(0);
        m[Metric::UptimeSeconds.index()] = m[Metric::UptimeSeconds.index()].saturating_add(up);
        m[Metric::RingRounds.index()] = m[Metric::RingRounds.index()].saturating_add(FIXED_POINT);
    }
    for (subject, _round) in checkpoints {
        let m = &mut metrics[index[&subject]];
        m[Metric::Checkpoints.index()] = m[Metric::Checkpoints.index()].saturating_add(FIXED_POINT);
    }

    for ((n, m), x) in inputs.nodes.iter_mut().zip(metrics).zip(exclusions) {
        n.metrics = m;
        n.exclusions.extend(x);
    }
    inputs.rejected = rejected;
    inputs.notes = notes;
    Ok(inputs)
}

/// A record must be issued by a roster member of an allowed role about someone else.
fn check_issuer(
    file: &str,
    record: &str,
    issuer: &str,
    subject: &str,
    role: Option<Role>,
    allowed: &[Role],
) -> Result<(), RewardError> {
    let Some(role) = role else {
        return Err(RewardError::UnknownSigner {
            file: file.into(),
            record: record.into(),
            worker_id: issuer.into(),
        });
    };
    let policy = |reason: String| RewardError::Policy {
        file: file.into(),
        record: record.into(),
        reason,
    };
    if issuer == subject {
        return Err(policy(format!(
            "issued by its own subject {subject} (participation and quality cannot be self-attested)"
        )));
    }
    if !allowed.contains(&role) {
        let names: Vec<&str> = allowed.iter().map(|r| r.name()).collect();
        return Err(policy(format!(
            "issuer {issuer} is a {} node; only {} may issue this record",
            role.name(),
            names.join(" or ")
        )));
    }
    Ok(())
}

/// Cuts a delta's self-reported tokens to the job's assignment and its wall seconds to the
/// round's wall time (`[caps]`), noting each cut.
fn bound_claims(
    p: &Params,
    node: &str,
    file: &str,
    c: &mut delta::Compute,
    notes: &mut Vec<String>,
) {
    if let Some(cap) = p.tokens_per_delta
        && c.tokens > cap
    {
        notes.push(format!(
            "{node}: {file} claims {} tokens, capped at the assignment {cap}",
            c.tokens
        ));
        c.tokens = cap;
    }
    if let Some(cap) = p.wall_seconds_per_delta
        && c.wall_seconds > cap
    {
        notes.push(format!(
            "{node}: {file} claims {} wall seconds, capped at the round's {cap}",
            c.wall_seconds
        ));
        c.wall_seconds = cap;
    }
}
