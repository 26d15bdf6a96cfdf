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

/// The per-node metrics of an epoch, as the folder's records are read into them.
struct Tally<'a> {
    p: &'a Params,
    opts: &'a EpochOptions,
    epoch: u64,
    inputs: Inputs,
    /// Node id → its index in `inputs.nodes`.
    index: HashMap<String, usize>,
    exclusions: Vec<Vec<String>>,
    metrics: Vec<[i128; super::METRICS.len()]>,
}

/// The eval reports counted per delta digest, with their issuers.
type ReportsByDelta = BTreeMap<String, Vec<(String, EvalReport)>>;

/// Loads the epoch folder `dir`: the roster, then the deltas (compute), the eval reports
/// (quality) and the ring receipts (participation).
pub fn load(dir: &Path, p: &Params, opts: &EpochOptions) -> Result<Inputs, RewardError> {
    let mut tally = Tally::from_roster(dir, p, opts)?;
    let deltas = tally.read_deltas(dir)?;
    let reports = tally.read_eval_reports(dir, &deltas)?;
    tally.add_quality(&reports, &deltas);
    tally.read_ring_receipts(dir)?;
    Ok(tally.finish())
}

impl<'a> Tally<'a> {
    /// The roster (`nodes.json` or `nodes.csv`) and the epoch to estimate.
    fn from_roster(dir: &Path, p: &'a Params, opts: &'a EpochOptions) -> Result<Self, RewardError> {
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
        let inputs = Inputs {
            epoch: Some(epoch),
            nodes: roster.nodes,
            ..Inputs::default()
        };
        let index = inputs
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.node.clone(), i))
            .collect();
        let n = inputs.nodes.len();
        Ok(Tally {
            p,
            opts,
            epoch,
            inputs,
            index,
            exclusions: vec![Vec::new(); n],
            metrics: vec![[0; super::METRICS.len()]; n],
        })
    }

    fn reject(&mut self, file: &str, reason: String) {
        self.inputs.rejected.push(Rejected {
            file: file.to_string(),
            reason,
        });
    }

    fn role_of(&self, w: &str) -> Option<Role> {
        self.index.get(w).map(|&i| self.inputs.nodes[i].role)
    }

    /// Why a record by `w` is not counted when `w` is below its role's minimum stake (a sybil
    /// must stake every identity it attests with).
    fn understaked(&self, w: &str) -> Option<String> {
        let n = &self.inputs.nodes[*self.index.get(w)?];
        (n.stake < self.p.min_stake(n.role)).then(|| {
            format!(
                "issuer {w} has less than the {} minimum stake; not counted",
                n.role.name()
            )
        })
    }

    /// Adds `values` to node `i`'s metrics (saturating).
    fn add(&mut self, i: usize, values: &[(Metric, i128)]) {
        let m = &mut self.metrics[i];
        for &(metric, v) in values {
            m[metric.index()] = m[metric.index()].saturating_add(v);
        }
    }

    /// Deltas: each verified delta's compute record, capped, counted for its signer. Returns
    /// the counted deltas by digest.
    fn read_deltas(&mut self, dir: &Path) -> Result<HashMap<String, DeltaInfo>, RewardError> {
        let mut deltas: HashMap<String, DeltaInfo> = HashMap::new();
        let mut seqs: HashMap<(String, u64), String> = HashMap::new();
        for path in files(&dir.join("deltas"), &["delta"])? {
            let file = path.display().to_string();
            let Some((report, node, i)) = self.verified_delta(&path, &file)? else {
                continue;
            };
            let meta = &report.delta.metadata;
            if meta.epoch != self.epoch {
                let why = format!(
                    "delta is for epoch {}, estimating epoch {}",
                    meta.epoch, self.epoch
                );
                self.reject(&file, why);
                continue;
            }
            let digest = report.digest_hex();
            if let Some(prev) = deltas.get(&digest) {
                let why = format!("same delta as {}", prev.file);
                self.reject(&file, why);
                continue;
            }
            if let Some(prev) = seqs.insert((node.clone(), meta.seq), file.clone()) {
                self.exclusions[i].push(format!(
                    "two different deltas with sequence number {} ({prev}, {file})",
                    meta.seq
                ));
            }
            let tokens = self.add_compute(i, &node, &file, meta)?;
            deltas.insert(digest, DeltaInfo { node, tokens, file });
        }
        Ok(deltas)
    }

    /// A delta file that verifies with a signature, its signer and the signer's roster index;
    /// `None` (rejected, or the claimed node excluded) otherwise.
    fn verified_delta(
        &mut self,
        path: &Path,
        file: &str,
    ) -> Result<Option<(delta::VerifyReport, String, usize)>, RewardError> {
        let src = FileSource::open(path).map_err(|source| RewardError::Read {
            path: file.to_string(),
            source,
        })?;
        let scanned = match Delta::scan(&src) {
            Ok(d) => d,
            Err(e) => {
                self.reject(file, format!("not a readable delta: {e}"));
                return Ok(None);
            }
        };
        let claimed = match &scanned.signature {
            Some(s) => worker_id(&s.ed25519_public),
            None => scanned.metadata.worker_id.clone(),
        };
        let options = VerifyOptions {
            require_signature: true,
            ..VerifyOptions::default()
        };
        let report = match delta::verify(&src, &options) {
            Ok(r) => r,
            Err(e) => {
                match self.index.get(&claimed) {
                    Some(&i) => {
                        self.exclusions[i].push(format!("delta {file} failed verification: {e}"))
                    }
                    None => self.reject(
                        file,
                        format!("failed verification ({e}); {claimed} is not in the roster"),
                    ),
                }
                return Ok(None);
            }
        };
        let node = report
            .signer
            .as_ref()
            .map(|s| s.worker_id())
            .unwrap_or(claimed);
        let Some(&i) = self.index.get(&node) else {
            self.reject(file, format!("signer {node} is not in the roster"));
            return Ok(None);
        };
        Ok(Some((report, node, i)))
    }

    /// Adds a delta's compute record (tokens and wall seconds bounded by the job, FLOPs capped
    /// by the model size) to node `i`; returns the tokens counted.
    fn add_compute(
        &mut self,
        i: usize,
        node: &str,
        file: &str,
        meta: &delta::Metadata,
    ) -> Result<u64, RewardError> {
        let (p, model_params) = (self.p, self.opts.model_params);
        let mut compute = meta.compute.clone().unwrap_or(delta::Compute {
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
            file: file.to_string(),
            record: "compute".into(),
            reason,
        };
        bound_claims(p, node, file, &mut compute, &mut self.inputs.notes);
        let mut flops = to_fixed(compute.flops).map_err(|e| bad(format!("flops: {e}")))?;
        let cap = contrib::flops_cap(p, model_params, u128::from(compute.tokens));
        if flops > cap {
            self.inputs.notes.push(format!(
                "{node}: {file} claims {} FLOPs, capped at {} ({} x {} params x {} tokens)",
                compute.flops,
                cap / FIXED_POINT,
                p.flops_per_param_token,
                model_params,
                compute.tokens
            ));
            flops = cap;
        }
        let gpu = to_fixed(compute.wall_seconds).map_err(|e| bad(format!("wall_seconds: {e}")))?;
        let mem = to_fixed(mem).map_err(|e| bad(format!("extra.memory_bytes: {e}")))?;
        if mem < 0 {
            return Err(bad("extra.memory_bytes is negative".into()));
        }
        self.add(
            i,
            &[
                (Metric::Flops, flops),
                (Metric::GpuSeconds, gpu),
                (Metric::MemoryBytes, mem),
            ],
        );
        Ok(compute.tokens)
    }

    /// Eval reports: quality, measured by validators; one report per validator and counted
    /// delta.
    fn read_eval_reports(
        &mut self,
        dir: &Path,
        deltas: &HashMap<String, DeltaInfo>,
    ) -> Result<ReportsByDelta, RewardError> {
        let mut reports = ReportsByDelta::new();
        for path in files(&dir.join("eval"), &["json", "jsonl"])? {
            let file = path.display().to_string();
            for (label, r) in records::read_file::<EvalReport>(&path, EVAL_FORMAT)? {
                let issuer = r.verify(&file, &label)?.worker_id();
                let where_ = format!("{file} ({label})");
                if !self.admit(
                    &file,
                    &label,
                    &where_,
                    &issuer,
                    &r.subject,
                    r.epoch,
                    "report",
                    &[Role::Validator],
                )? {
                    continue;
                }
                match deltas.get(&r.delta) {
                    Some(d) if d.node == r.subject => {}
                    _ => {
                        let why = format!(
                            "delta {} is not a verified delta of {} in this epoch",
                            r.delta, r.subject
                        );
                        self.reject(&where_, why);
                        continue;
                    }
                }
                let list = reports.entry(r.delta.clone()).or_default();
                if list.iter().any(|(v, _)| *v == issuer) {
                    // a delta reported again in a later round (a replay) is judged again: a
                    // `fail` among its reports still excludes its node
                    if r.verdict == Verdict::Fail {
                        let i = self.index[&r.subject];
                        let why = r.reason.as_deref().unwrap_or("no reason given");
                        self.exclusions[i].push(format!(
                            "validator {issuer} failed delta {} when it came again: {why}",
                            deltas[&r.delta].file
                        ));
                    }
                    self.reject(
                        &where_,
                        format!("second report by {issuer} on the same delta"),
                    );
                    continue;
                }
                list.push((issuer, r));
            }
        }
        Ok(reports)
    }

    /// The checks every attesting record passes before it counts, in order: its epoch (else
    /// rejected), its issuer (a roster member of an `allowed` role, not its subject: else an
    /// error) and the issuer's stake (else rejected). Returns whether the record counts.
    #[allow(clippy::too_many_arguments)]
    fn admit(
        &mut self,
        file: &str,
        label: &str,
        where_: &str,
        issuer: &str,
        subject: &str,
        epoch: u64,
        what: &str,
        allowed: &[Role],
    ) -> Result<bool, RewardError> {
        if epoch != self.epoch {
            let why = format!(
                "{what} is for epoch {epoch}, estimating epoch {}",
                self.epoch
            );
            self.reject(where_, why);
            return Ok(false);
        }
        check_issuer(file, label, issuer, subject, self.role_of(issuer), allowed)?;
        if let Some(why) = self.understaked(issuer) {
            self.reject(where_, why);
            return Ok(false);
        }
        Ok(true)
    }

    /// Quality per counted delta: failed verdicts exclude its node; the lower medians of the
    /// validators' measures, clamped per delta before anything is summed (docs/rewards.md,
    /// "Quality").
    fn add_quality(&mut self, reports: &ReportsByDelta, deltas: &HashMap<String, DeltaInfo>) {
        for (digest, list) in reports {
            let d = &deltas[digest];
            let i = self.index[&d.node];
            for (v, r) in list.iter().filter(|(_, r)| r.verdict == Verdict::Fail) {
                let why = r.reason.as_deref().unwrap_or("no reason given");
                self.exclusions[i].push(format!("validator {v} failed delta {}: {why}", d.file));
            }
            let med =
                |f: fn(&EvalReport) -> f64| lower_median(list.iter().map(|(_, r)| f(r)).collect());
            let loss = to_fixed(med(|r| r.loss_improvement)).unwrap_or(0).max(0);
            let conv = to_fixed(med(|r| r.convergence)).unwrap_or(0).max(0);
            let stable = to_fixed(med(|r| r.grad_norm_stability) * d.tokens as f64)
                .unwrap_or(0)
                .max(0);
            self.add(
                i,
                &[
                    (Metric::LossImprovement, loss),
                    (Metric::Convergence, conv),
                    (Metric::StableTokens, stable),
                ],
            );
        }
    }

    /// Ring receipts: participation, attested by other members (the median uptime per
    /// subject and round, one ring round each), checkpoints and faults.
    fn read_ring_receipts(&mut self, dir: &Path) -> Result<(), RewardError> {
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
                    RingKind::Checkpoint | RingKind::Fault => {
                        &[Role::Validator, Role::Orchestrator]
                    }
                };
                if !self.admit(
                    &file, &label, &where_, &issuer, &r.subject, r.epoch, "receipt", allowed,
                )? {
                    continue;
                }
                let Some(&i) = self.index.get(&r.subject) else {
                    let why = format!("subject {} is not in the roster", r.subject);
                    self.reject(&where_, why);
                    continue;
                };
                if !seen.insert((issuer.clone(), r.subject.clone(), r.round, r.kind.name())) {
                    let why = format!("duplicate {} receipt by {issuer}", r.kind.name());
                    self.reject(&where_, why);
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
                        self.exclusions[i].push(format!(
                            "ring fault in round {} reported by {issuer}: {why}",
                            r.round
                        ));
                    }
                }
            }
        }
        for ((subject, _round), values) in uptime {
            let up = to_fixed(lower_median(values)).unwrap_or(0);
            let i = self.index[&subject];
            self.add(
                i,
                &[
                    (Metric::UptimeSeconds, up),
                    (Metric::RingRounds, FIXED_POINT),
                ],
            );
        }
        for (subject, _round) in checkpoints {
            let i = self.index[&subject];
            self.add(i, &[(Metric::Checkpoints, FIXED_POINT)]);
        }
        Ok(())
    }

    /// The roster with each node's metrics and exclusions.
    fn finish(self) -> Inputs {
        let mut inputs = self.inputs;
        for ((n, m), x) in inputs
            .nodes
            .iter_mut()
            .zip(self.metrics)
            .zip(self.exclusions)
        {
            n.metrics = m;
            n.exclusions.extend(x);
        }
        inputs
    }
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
