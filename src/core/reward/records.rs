//! Records that other members sign about a node: ring receipts (`gym-ring-receipt/1`, written by
//! `gym ring`) and eval reports (`gym-eval-report/1`, written by `gym eval`). Both formats are
//! specified in `docs/rewards.md`; a file holds one JSON record (`.json`) or one per line
//! (`.jsonl`). Records are signed as described in [`super::signed`].

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::RewardError;
use super::signed::{self, Envelope, SignatureJson, SignerJson};
use crate::core::keys::{Identity, PublicIdentity};
use crate::core::timefmt;

pub const RING_FORMAT: &str = "gym-ring-receipt/1";
pub const RING_DOMAIN: &str = "gym-ring-receipt-v1";
pub const EVAL_FORMAT: &str = "gym-eval-report/1";
pub const EVAL_DOMAIN: &str = "gym-eval-report-v1";

/// What a ring receipt attests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RingKind {
    /// The subject delivered its chunks to the issuer in this round and was reachable for
    /// `uptime_seconds`. Issued by the member that received them.
    Forward,
    /// The subject validated the round's checkpoint. Issued by a validator or orchestrator.
    Checkpoint,
    /// The subject cheated in this round (`reason` says how). Issued by a validator or
    /// orchestrator; makes the subject ineligible for the epoch.
    Fault,
}

impl RingKind {
    pub fn name(self) -> &'static str {
        match self {
            RingKind::Forward => "forward",
            RingKind::Checkpoint => "checkpoint",
            RingKind::Fault => "fault",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RingReceipt {
    pub format: String,
    pub epoch: u64,
    pub round: u64,
    pub kind: RingKind,
    /// Worker id (`gym1…`) of the node the receipt is about.
    pub subject: String,
    #[serde(default)]
    pub uptime_seconds: f64,
    #[serde(default)]
    pub reason: Option<String>,
    /// RFC 3339 UTC.
    pub issued: String,
    #[serde(default)]
    pub signer: Option<SignerJson>,
    #[serde(default)]
    pub signature: Option<SignatureJson>,
}

impl RingReceipt {
    pub fn new(epoch: u64, round: u64, kind: RingKind, subject: impl Into<String>) -> Self {
        RingReceipt {
            format: RING_FORMAT.into(),
            epoch,
            round,
            kind,
            subject: subject.into(),
            uptime_seconds: 0.0,
            reason: None,
            issued: timefmt::now_rfc3339(),
            signer: None,
            signature: None,
        }
    }

    fn fields(&self) -> Envelope {
        Envelope::new(RING_DOMAIN)
            .str(&self.format)
            .u64(self.epoch)
            .u64(self.round)
            .str(self.kind.name())
            .str(&self.subject)
            .f64(self.uptime_seconds)
            .opt_str(self.reason.as_deref())
            .str(&self.issued)
    }

    pub fn sign(&mut self, id: &Identity) {
        let fields = self.fields();
        sign_into(
            id,
            RING_DOMAIN,
            fields,
            &mut self.signer,
            &mut self.signature,
        );
    }

    /// Checks the fields and the signature; returns the issuer.
    pub fn verify(&self, file: &str, record: &str) -> Result<PublicIdentity, RewardError> {
        let bad = record_error(file, record);
        check_subject_and_issued(&self.subject, &self.issued).map_err(&bad)?;
        if !(self.uptime_seconds.is_finite()
            && self.uptime_seconds >= 0.0
            && self.uptime_seconds <= super::MAX_METRIC)
        {
            return Err(bad(format!(
                "uptime_seconds must be finite and non-negative, got {}",
                self.uptime_seconds
            )));
        }
        if self.kind == RingKind::Fault && self.reason.as_deref().unwrap_or("").trim().is_empty() {
            return Err(bad("a fault receipt needs a reason".into()));
        }
        signed::verify(
            RING_DOMAIN,
            self.fields(),
            self.signer.as_ref(),
            self.signature.as_ref(),
            file,
            record,
        )
    }
}

/// A validator's verdict on a delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalReport {
    pub format: String,
    pub epoch: u64,
    /// Worker id of the delta's signer.
    pub subject: String,
    /// Body digest (SHA3-256, hex) of the delta evaluated.
    pub delta: String,
    pub verdict: Verdict,
    #[serde(default)]
    pub reason: Option<String>,
    /// Validation loss of the aggregate without the delta minus with it (positive = better).
    #[serde(default)]
    pub loss_improvement: f64,
    /// Gradient-norm stability score in [0, 1].
    #[serde(default)]
    pub grad_norm_stability: f64,
    /// Projection of the delta onto the aggregate update, ⟨δ, Δ⟩ / ‖Δ‖ (signed).
    #[serde(default)]
    pub convergence: f64,
    pub issued: String,
    #[serde(default)]
    pub signer: Option<SignerJson>,
    #[serde(default)]
    pub signature: Option<SignatureJson>,
}

impl EvalReport {
    pub fn new(
        epoch: u64,
        subject: impl Into<String>,
        delta: impl Into<String>,
        verdict: Verdict,
    ) -> Self {
        EvalReport {
            format: EVAL_FORMAT.into(),
            epoch,
            subject: subject.into(),
            delta: delta.into(),
            verdict,
            reason: None,
            loss_improvement: 0.0,
            grad_norm_stability: 0.0,
            convergence: 0.0,
            issued: timefmt::now_rfc3339(),
            signer: None,
            signature: None,
        }
    }

    fn fields(&self) -> Envelope {
        Envelope::new(EVAL_DOMAIN)
            .str(&self.format)
            .u64(self.epoch)
            .str(&self.subject)
            .str(&self.delta)
            .str(self.verdict.name())
            .opt_str(self.reason.as_deref())
            .f64(self.loss_improvement)
            .f64(self.grad_norm_stability)
            .f64(self.convergence)
            .str(&self.issued)
    }

    pub fn sign(&mut self, id: &Identity) {
        let fields = self.fields();
        sign_into(
            id,
            EVAL_DOMAIN,
            fields,
            &mut self.signer,
            &mut self.signature,
        );
    }

    pub fn verify(&self, file: &str, record: &str) -> Result<PublicIdentity, RewardError> {
        let bad = record_error(file, record);
        check_subject_and_issued(&self.subject, &self.issued).map_err(&bad)?;
        if !(self.delta.len() == 64
            && self
                .delta
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)))
        {
            return Err(bad(format!(
                "delta must be 64 lowercase hex digits, got {:?}",
                self.delta
            )));
        }
        for (name, v) in [
            ("loss_improvement", self.loss_improvement),
            ("convergence", self.convergence),
        ] {
            if !(v.is_finite() && v.abs() <= super::MAX_METRIC) {
                return Err(bad(format!("{name} must be a finite number, got {v}")));
            }
        }
        let s = self.grad_norm_stability;
        if !(s.is_finite() && (0.0..=1.0).contains(&s)) {
            return Err(bad(format!(
                "grad_norm_stability must be in [0, 1], got {s}"
            )));
        }
        signed::verify(
            EVAL_DOMAIN,
            self.fields(),
            self.signer.as_ref(),
            self.signature.as_ref(),
            file,
            record,
        )
    }
}

/// The member whose chunks member `me` received in a ring round: its predecessor among
/// `view` (ring indices of the final view's members, in ring order). None when `me` is not in
/// the view or is alone.
pub fn predecessor(view: &[usize], me: usize) -> Option<usize> {
    let pos = view.iter().position(|&m| m == me)?;
    (view.len() > 1).then(|| view[(pos + view.len() - 1) % view.len()])
}

/// The signed `forward` receipt a ring member issues about its predecessor after a round:
/// `subject` delivered its chunks and stayed reachable for the round's `uptime_seconds`.
pub fn forward_receipt(
    epoch: u64,
    round: u64,
    subject: String,
    uptime_seconds: f64,
    id: &Identity,
) -> RingReceipt {
    let mut r = RingReceipt::new(epoch, round, RingKind::Forward, subject);
    r.uptime_seconds = uptime_seconds;
    r.sign(id);
    r
}

/// The `forward` receipt ring member `me` issues after ring `spec` (for `round`: the job's
/// round in an orchestrated job, else the ring's) whose final view was `view`, about its
/// predecessor in that view, with the round's reduce time as its uptime (None when `me` was
/// not in the final view or was alone).
pub fn issue_forward(
    epoch: u64,
    round: u64,
    spec: &crate::core::ring::config::RingSpec,
    view: &[usize],
    me: usize,
    reduced: std::time::Duration,
    id: &Identity,
) -> Option<RingReceipt> {
    let p = predecessor(view, me)?;
    let subject = spec.members[p].public.worker_id();
    Some(forward_receipt(
        epoch,
        round,
        subject,
        reduced.as_secs_f64(),
        id,
    ))
}

/// Signs `fields` under `domain` into a record's signer and signature slots.
fn sign_into(
    id: &Identity,
    domain: &str,
    fields: Envelope,
    signer: &mut Option<SignerJson>,
    signature: &mut Option<SignatureJson>,
) {
    let (s, sig) = signed::sign(id, domain, fields);
    *signer = Some(s);
    *signature = Some(sig);
}

/// The error for a bad field of record `record` in `file`.
fn record_error<'a>(file: &'a str, record: &'a str) -> impl Fn(String) -> RewardError + 'a {
    move |reason| RewardError::Record {
        file: file.into(),
        record: record.into(),
        reason,
    }
}

/// What every attesting record starts with: a valid subject and an RFC 3339 UTC issue time.
fn check_subject_and_issued(subject: &str, issued: &str) -> Result<(), String> {
    check_subject(subject)?;
    timefmt::validate_utc(issued).map_err(|e| format!("issued: {e}"))?;
    Ok(())
}

fn check_subject(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 128 || s.chars().any(char::is_control) {
        return Err(format!(
            "subject {s:?} must be 1 to 128 characters without control characters"
        ));
    }
    Ok(())
}

/// Reads the records of one file: the whole file (`.json`) or each non-empty line (`.jsonl`).
/// Returns (record label, record). A wrong or missing `format` is reported before any other
/// field.
pub fn read_file<T: DeserializeOwned>(
    path: &Path,
    format: &'static str,
) -> Result<Vec<(String, T)>, RewardError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| RewardError::Read {
        path: file.clone(),
        source,
    })?;
    let jsonl = path.extension().is_some_and(|e| e == "jsonl");
    let chunks: Vec<(String, &str)> = if jsonl {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| (format!("line {}", i + 1), l))
            .collect()
    } else {
        vec![("record".to_string(), text.as_str())]
    };
    let mut out = Vec::new();
    for (label, chunk) in chunks {
        let bad = |reason: String| RewardError::Record {
            file: file.clone(),
            record: label.clone(),
            reason,
        };
        let v: serde_json::Value =
            serde_json::from_str(chunk).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let found = v.get("format").and_then(|f| f.as_str()).unwrap_or("(none)");
        if found != format {
            return Err(RewardError::Format {
                file: file.clone(),
                record: label,
                found: found.into(),
                expected: format,
            });
        }
        let rec: T = serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
        out.push((label, rec));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_round_trip_and_tamper() {
        let id = Identity::from_seeds(&[3; 32], None);
        let mut r = RingReceipt::new(1, 2, RingKind::Forward, "gym1subject");
        r.uptime_seconds = 60.0;
        r.sign(&id);
        let json = serde_json::to_string(&r).unwrap();
        let back: RingReceipt = serde_json::from_str(&json).unwrap();
        assert_eq!(back.verify("f", "record").unwrap(), id.public());
        let mut t = back.clone();
        t.uptime_seconds = 6000.0;
        assert!(matches!(
            t.verify("f", "record"),
            Err(RewardError::BadSignature { .. })
        ));
        let mut t = back.clone();
        t.subject = "gym1other".into();
        assert!(matches!(
            t.verify("f", "record"),
            Err(RewardError::BadSignature { .. })
        ));
    }

    #[test]
    fn report_checks_fields() {
        let id = Identity::from_seeds(&[3; 32], None);
        let mut r = EvalReport::new(1, "gym1subject", "ab".repeat(32), Verdict::Pass);
        r.grad_norm_stability = 1.5;
        r.sign(&id);
        let e = r.verify("f", "record").unwrap_err();
        assert!(
            e.to_string()
                .contains("grad_norm_stability must be in [0, 1]"),
            "{e}"
        );
    }

    proptest::proptest! {
        /// Any change to any signed field of a receipt breaks its signature.
        #[test]
        fn any_tampered_receipt_field_fails(
            epoch in 0u64..1000,
            round in 0u64..1000,
            uptime in 0.0f64..1e6,
            which in 0usize..6,
            delta in 1u64..1000,
        ) {
            let id = Identity::from_seeds(&[5; 32], None);
            let mut r = RingReceipt::new(epoch, round, RingKind::Forward, "gym1subject");
            r.uptime_seconds = uptime;
            r.issued = "2026-01-01T00:00:00Z".into();
            r.sign(&id);
            proptest::prop_assert!(r.verify("f", "r").is_ok());
            let mut t = r.clone();
            match which {
                0 => t.epoch += delta,
                1 => t.round += delta,
                2 => t.uptime_seconds += delta as f64,
                3 => t.kind = RingKind::Checkpoint,
                4 => t.subject.push('x'),
                _ => t.issued = "2026-01-01T00:00:01Z".into(),
            }
            let tampered = matches!(t.verify("f", "r"), Err(RewardError::BadSignature { .. }));
            proptest::prop_assert!(tampered);
        }
    }
}
