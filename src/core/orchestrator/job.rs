//! The job file (`JOB.toml`): what to train, how many epochs and rounds, who may take part and
//! where checkpoints go. Parsed strictly: an unknown key, a wrong type or a value out of range
//! is an error that names the key.
//!
//! ```toml
//! name = "digits"
//! epochs = 2
//! rounds_per_epoch = 2
//! min_workers = 3
//! max_workers = 16
//! ring_size = 16
//! redundancy = 1
//!
//! [timeouts]            # seconds
//! join = 300            # waiting for min_workers before a round starts
//! train = 600           # from a round's start to the last report
//! ring = 300            # from the ring files to the last result
//!
//! [train]               # the keys of `gym train --config` (model, data, GSPO settings)
//! aggregate_interval = 2
//!
//! [[worker]]            # the roster: only these keys are admitted
//! id = "gym1…"
//! role = "trainer"
//! stake = 100
//!
//! [publish]             # where each epoch's checkpoint goes
//! to = "published"      # a local folder (relative to the job file), files named by CID
//! ipfs = "http://127.0.0.1:5001"
//! hf = "owner/name"     # the Hugging Face Hub (HF_TOKEN, HF_ENDPOINT)
//! merged = true         # and, after the last epoch, the merged model
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::core::error::{Classify, ErrorClass};
use crate::core::train::config::{ConfigError, TrainConfig};

/// A job file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("reading job file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("job file {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("job file {path}: key `{key}`: {reason}")]
    Invalid {
        path: PathBuf,
        key: String,
        reason: String,
    },
    #[error("job file {path}: [train]: {source}")]
    Train { path: PathBuf, source: ConfigError },
}

impl Classify for JobError {
    fn class(&self) -> ErrorClass {
        match self {
            JobError::Read { .. } => ErrorClass::Io,
            JobError::Parse { .. } | JobError::Invalid { .. } => ErrorClass::Malformed,
            JobError::Train { source, .. } => source.class(),
        }
    }
}

/// What a roster member does in the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Trainer,
    Validator,
}

/// One roster entry (also the reward roster).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterEntry {
    pub id: String,
    #[serde(default = "default_role")]
    pub role: Role,
    #[serde(default)]
    pub stake: u64,
}

fn default_role() -> Role {
    Role::Trainer
}

/// Seconds allowed for each phase of a round.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    pub join: f64,
    pub train: f64,
    pub ring: f64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            join: 300.0,
            train: 600.0,
            ring: 300.0,
        }
    }
}

/// Where epoch checkpoints are published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishTargets {
    /// A local folder; relative paths are taken from the job file's folder.
    #[serde(default)]
    pub to: Option<PathBuf>,
    /// A Kubo RPC API URL.
    #[serde(default)]
    pub ipfs: Option<String>,
    /// A Hugging Face Hub repository, OWNER/NAME: each epoch's adapter is one commit at the
    /// repository's root, the merged model one commit under `merged/`. Token from `HF_TOKEN`,
    /// server from `HF_ENDPOINT`, as `gym publish --hf`.
    #[serde(default)]
    pub hf: Option<String>,
    /// The branch the Hub commits go to.
    #[serde(default = "default_revision")]
    pub hf_revision: String,
    /// After the last epoch, also publish the merged model (the base's f32 weights plus the
    /// adapter, a folder transformers loads) to the same targets.
    #[serde(default = "default_merged")]
    pub merged: bool,
}

fn default_revision() -> String {
    "main".into()
}

fn default_merged() -> bool {
    true
}

impl Default for PublishTargets {
    fn default() -> Self {
        PublishTargets {
            to: None,
            ipfs: None,
            hf: None,
            hf_revision: default_revision(),
            merged: default_merged(),
        }
    }
}

/// The validators' admission rule (`[validation]`): a delta enters its round's ring only with
/// `quorum` `pass` verdicts from the roster's validators (docs/validation.md, "Admission").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validation {
    /// Pass verdicts needed to admit a delta: at least 2 and more than half of the roster's
    /// validators, so one validator can neither admit a delta alone nor outvote the others.
    pub quorum: usize,
    /// Seconds from the last report to the admission decision; deltas without a quorum of
    /// `pass` verdicts by then are refused.
    #[serde(default = "default_validate_timeout")]
    pub timeout: f64,
    /// Cap on the tokens a delta may claim as its averaging weight (`compute.tokens` of the
    /// signed delta, capped at this); default 2^32.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// A delta fails when the held-out loss with it is worse by more than this (nats/token).
    #[serde(default)]
    pub tolerance: f64,
    /// Model size in parameters, for the epoch reward estimate's FLOPs cap (unset: epoch
    /// folders are written without an estimate).
    #[serde(default)]
    pub model_params: Option<u64>,
    /// The orchestrator's stake in the epoch folders' roster (tokens): it signs the
    /// validators' `checkpoint` receipts, which count only from an issuer with at least its
    /// role's minimum stake (docs/rewards.md; default that minimum, 50,000).
    #[serde(default = "default_orchestrator_stake")]
    pub orchestrator_stake: u64,
}

fn default_validate_timeout() -> f64 {
    300.0
}

fn default_orchestrator_stake() -> u64 {
    50_000
}

impl Validation {
    /// The averaging weight of a delta whose signed compute record claims `tokens`.
    pub fn weight(&self, tokens: u64) -> u64 {
        tokens
            .min(
                self.max_tokens
                    .unwrap_or(crate::core::ring::fixed::MAX_WEIGHT),
            )
            .max(1)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobToml {
    name: String,
    #[serde(default = "one")]
    epochs: u64,
    #[serde(default = "one")]
    rounds_per_epoch: u64,
    #[serde(default = "two")]
    min_workers: usize,
    #[serde(default = "sixteen")]
    max_workers: usize,
    #[serde(default = "sixteen")]
    ring_size: usize,
    #[serde(default)]
    redundancy: usize,
    #[serde(default)]
    timeouts: Timeouts,
    #[serde(default)]
    train: Option<toml::Table>,
    #[serde(default, rename = "worker")]
    workers: Vec<RosterEntry>,
    #[serde(default)]
    publish: PublishTargets,
    #[serde(default)]
    validation: Option<Validation>,
}

fn one() -> u64 {
    1
}
fn two() -> usize {
    2
}
fn sixteen() -> usize {
    16
}

/// A validated job. Built only by [`JobSpec::parse`], so every value is in range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobSpec {
    pub name: String,
    pub epochs: u64,
    pub rounds_per_epoch: u64,
    pub min_workers: usize,
    pub max_workers: usize,
    pub ring_size: usize,
    /// Member failures a round survives: a round is accepted when at least
    /// `members − redundancy` (and at least 2) members report the same result.
    pub redundancy: usize,
    pub timeouts: Timeouts,
    /// The `[train]` table as written (sent to workers, who resolve it as `gym train` does).
    pub train_toml: String,
    #[serde(skip)]
    pub train: TrainConfig,
    pub roster: Vec<RosterEntry>,
    pub publish: PublishTargets,
    /// The validators' admission rule; None: deltas go to the ring unvalidated.
    pub validation: Option<Validation>,
    /// SHA3-256 of the job file's bytes: the job's identity in signed requests and the log.
    pub job_id: String,
}

impl JobSpec {
    pub fn load(path: &Path) -> Result<Self, JobError> {
        let text = std::fs::read_to_string(path).map_err(|source| JobError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut spec = Self::parse(&text, path)?;
        if let Some(to) = &spec.publish.to
            && to.is_relative()
        {
            let base = path.parent().unwrap_or(Path::new("."));
            spec.publish.to = Some(base.join(to));
        }
        Ok(spec)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, JobError> {
        let raw: JobToml = toml::from_str(text).map_err(|e| JobError::Parse {
            path: path.to_path_buf(),
            reason: e.to_string().trim_end().replace('\n', " "),
        })?;
        let invalid = |key: &str, reason: String| JobError::Invalid {
            path: path.to_path_buf(),
            key: key.into(),
            reason,
        };
        check_ranges(&raw).map_err(|(k, r)| invalid(k, r))?;
        check_roster(&raw.workers).map_err(|(k, r)| invalid(&k, r))?;
        check_validation(&raw).map_err(|(k, r)| invalid(k, r))?;
        if let Some(repo) = &raw.publish.hf {
            crate::core::hub::RepoId::parse(repo)
                .map_err(|e| invalid("publish.hf", e.to_string()))?;
        }
        let train_table = raw.train.clone().unwrap_or_default();
        let train_toml = toml::to_string(&train_table).expect("a TOML table serialises");
        let train = train_config(&train_toml, path).map_err(|source| JobError::Train {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(JobSpec {
            name: raw.name,
            epochs: raw.epochs,
            rounds_per_epoch: raw.rounds_per_epoch,
            min_workers: raw.min_workers,
            max_workers: raw.max_workers,
            ring_size: raw.ring_size,
            redundancy: raw.redundancy,
            timeouts: raw.timeouts,
            train_toml,
            train,
            roster: raw.workers,
            publish: raw.publish,
            validation: raw.validation,
            job_id: hex::encode(crate::core::hash::sha3_256(text.as_bytes())),
        })
    }

    /// Rounds in the whole job.
    pub fn total_rounds(&self) -> u64 {
        self.epochs * self.rounds_per_epoch
    }

    pub fn roster_entry(&self, worker: &str) -> Option<&RosterEntry> {
        self.roster.iter().find(|r| r.id == worker)
    }

    /// The ids of the roster's validators.
    pub fn validators(&self) -> Vec<String> {
        self.roster
            .iter()
            .filter(|r| r.role == Role::Validator)
            .map(|r| r.id.clone())
            .collect()
    }
}

/// The training settings of a job, resolved as `gym train --config` resolves a file: on top of
/// the bundled toy task's defaults when the table names neither a model nor data.
pub fn train_config(train_toml: &str, path: &Path) -> Result<TrainConfig, ConfigError> {
    use crate::core::train::config::TOY_REWARD;
    let plain = TrainConfig::from_toml(train_toml, path, &TrainConfig::default())?;
    let mut cfg = if plain.model.is_none() && plain.data.is_none() {
        TrainConfig::from_toml(train_toml, path, &TrainConfig::toy())?
    } else {
        plain
    };
    if cfg.data.is_none() && cfg.reward.is_empty() {
        cfg.reward = vec![TOY_REWARD.parse().expect("the toy reward parses")];
    }
    cfg.validate()?;
    Ok(cfg)
}

fn check_ranges(j: &JobToml) -> Result<(), (&'static str, String)> {
    let name_ok = !j.name.is_empty()
        && j.name.len() <= 64
        && j.name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !name_ok {
        return Err((
            "name",
            format!("{:?}: 1 to 64 characters of A-Z a-z 0-9 - _ .", j.name),
        ));
    }
    if !(1..=10_000).contains(&j.epochs) {
        return Err(("epochs", format!("{} is not in 1..=10000", j.epochs)));
    }
    if !(1..=100_000).contains(&j.rounds_per_epoch) {
        return Err((
            "rounds_per_epoch",
            format!("{} is not in 1..=100000", j.rounds_per_epoch),
        ));
    }
    if j.min_workers < 2 {
        return Err((
            "min_workers",
            format!("{}: a ring needs at least 2 workers", j.min_workers),
        ));
    }
    if j.max_workers < j.min_workers {
        return Err((
            "max_workers",
            format!("{} is below min_workers ({})", j.max_workers, j.min_workers),
        ));
    }
    let max_ring = crate::core::ring::config::MAX_MEMBERS;
    if !(2..=max_ring).contains(&j.ring_size) {
        return Err((
            "ring_size",
            format!("{} is not in 2..={max_ring}", j.ring_size),
        ));
    }
    // Past ring_size a round runs groups and leader rings (hierarchical rounds). Groups of
    // ring_size 2 can leave a worker alone in its group, which no ring can hold; validated
    // jobs bind every ring input to an admitted delta, which a leader's sum file is not.
    if j.max_workers > j.ring_size && (j.ring_size < 3 || j.validation.is_some()) {
        return Err((
            "max_workers",
            format!(
                "{} exceeds ring_size ({}): rounds past ring_size run leader rings, which need \
                 ring_size ≥ 3 and a job without [validation]",
                j.max_workers, j.ring_size
            ),
        ));
    }
    if j.redundancy + 2 > j.min_workers {
        return Err((
            "redundancy",
            format!(
                "{}: surviving that many failures needs min_workers ≥ redundancy + 2 (min_workers is {})",
                j.redundancy, j.min_workers
            ),
        ));
    }
    for (k, v) in [
        ("timeouts.join", j.timeouts.join),
        ("timeouts.train", j.timeouts.train),
        ("timeouts.ring", j.timeouts.ring),
    ] {
        if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
            return Err((k, format!("{v} is not a number of seconds in (0, 86400]")));
        }
    }
    Ok(())
}

fn check_validation(j: &JobToml) -> Result<(), (&'static str, String)> {
    let Some(v) = &j.validation else {
        return Ok(());
    };
    let n = j
        .workers
        .iter()
        .filter(|w| w.role == Role::Validator)
        .count();
    if v.quorum < 2 || v.quorum > n || v.quorum * 2 <= n {
        return Err((
            "validation.quorum",
            format!(
                "{} with {n} validator(s) on the roster: a quorum is at least 2, at most the \
                 validators, and more than half of them (role = \"validator\")",
                v.quorum
            ),
        ));
    }
    if !(v.timeout.is_finite() && v.timeout > 0.0 && v.timeout <= 86_400.0) {
        return Err((
            "validation.timeout",
            format!("{} is not a number of seconds in (0, 86400]", v.timeout),
        ));
    }
    if v.max_tokens == Some(0) {
        return Err(("validation.max_tokens", "must be at least 1".into()));
    }
    if !(v.tolerance.is_finite() && v.tolerance >= 0.0) {
        return Err((
            "validation.tolerance",
            format!("{} is not a finite number ≥ 0", v.tolerance),
        ));
    }
    Ok(())
}

fn check_roster(roster: &[RosterEntry]) -> Result<(), (String, String)> {
    if roster.is_empty() {
        return Err((
            "worker".into(),
            "the roster is empty: add [[worker]] entries with the ids of `gym key show`".into(),
        ));
    }
    for (i, w) in roster.iter().enumerate() {
        if !w.id.starts_with("gym1") || w.id.len() < 10 {
            return Err((
                format!("worker[{i}].id"),
                format!(
                    "{:?} is not a worker id (gym1…, as `gym key show` prints)",
                    w.id
                ),
            ));
        }
        if roster[..i].iter().any(|o| o.id == w.id) {
            return Err((
                format!("worker[{i}].id"),
                format!("{} is listed twice", w.id),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(ids: &[String]) -> String {
        let mut s = String::from(
            "name = \"t\"\nepochs = 2\nrounds_per_epoch = 2\nmin_workers = 2\nmax_workers = 4\nring_size = 4\nredundancy = 0\n[train]\naggregate_interval = 1\n",
        );
        for id in ids {
            s.push_str(&format!("[[worker]]\nid = \"{id}\"\nstake = 10\n"));
        }
        s
    }

    fn ids(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                crate::core::keys::Identity::from_seeds(&[i as u8 + 1; 32], None)
                    .public()
                    .worker_id()
            })
            .collect()
    }

    #[test]
    fn parses_a_valid_job() {
        let j = JobSpec::parse(&sample(&ids(3)), Path::new("j.toml")).unwrap();
        assert_eq!(j.total_rounds(), 4);
        assert_eq!(j.roster.len(), 3);
        assert_eq!(j.roster[0].role, Role::Trainer);
        assert_eq!(j.train.aggregate_interval, 1);
        assert_eq!(j.job_id.len(), 64);
    }

    fn err(text: &str) -> String {
        JobSpec::parse(text, Path::new("j.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn errors_name_the_key() {
        let base = sample(&ids(2));
        let e = err(&base.replace("epochs = 2", "epochs = 0"));
        assert!(e.contains("key `epochs`"), "{e}");
        let e = err(&base.replace("min_workers = 2", "min_workers = 1"));
        assert!(e.contains("key `min_workers`"), "{e}");
        let e = err(&base.replace("redundancy = 0", "redundancy = 1"));
        assert!(e.contains("key `redundancy`"), "{e}");
        // Past ring_size: hierarchical rounds, with groups of at least 3.
        let past = base.replace("max_workers = 4", "max_workers = 8");
        JobSpec::parse(&past, Path::new("job.toml")).unwrap();
        let e = err(&past.replace("ring_size = 4", "ring_size = 2"));
        assert!(
            e.contains("key `max_workers`") && e.contains("ring_size ≥ 3"),
            "{e}"
        );
        let e = err(&base.replace("name = \"t\"", "name = \"t\"\nepoch = 3"));
        assert!(e.contains("epoch"), "{e}");
        let e = err(&base.replace("aggregate_interval = 1", "aggregate_intervall = 1"));
        assert!(
            e.contains("[train]") && e.contains("aggregate_intervall"),
            "{e}"
        );
        let e = err(&sample(&[]));
        assert!(e.contains("key `worker`"), "{e}");
        let e = err(&sample(&["nope".into()]));
        assert!(e.contains("worker[0].id"), "{e}");
        let dup = ids(1);
        let e = err(&sample(&[dup[0].clone(), dup[0].clone()]));
        assert!(e.contains("worker[1].id") && e.contains("twice"), "{e}");
    }
}
