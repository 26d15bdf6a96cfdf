//! The metadata section: one JSON object describing where the delta came from.

use serde::{Deserialize, Serialize};

use crate::core::timefmt;

/// Metadata of a delta. Field names and meaning are specified in `docs/delta-format.md`.
/// Unknown fields are rejected so that a typo cannot silently drop information; free-form
/// additions belong in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// When the delta was produced, RFC 3339 in UTC (`2024-01-01T00:00:00Z`).
    pub timestamp: String,
    pub epoch: u64,
    #[serde(default)]
    pub step: u64,
    /// Sequence number, strictly increasing per worker.
    pub seq: u64,
    #[serde(default)]
    pub loss: Option<f64>,
    pub worker_id: String,
    /// SHA3-256 (hex) of the base model state this delta was trained against.
    #[serde(default)]
    pub base_hash: Option<String>,
    /// Body digest (hex) of the delta this one applies on top of, if any.
    #[serde(default)]
    pub parent_hash: Option<String>,
    /// Summary of the training configuration (free-form object).
    #[serde(default)]
    pub config: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub compute: Option<Compute>,
    #[serde(default)]
    pub attestation: Attestation,
    /// A PEFT `adapter_config.json`, verbatim, when the tensors are a PEFT adapter.
    #[serde(default)]
    pub adapter_config: Option<serde_json::Map<String, serde_json::Value>>,
    /// Anything else, free-form.
    #[serde(default)]
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Self-reported compute record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compute {
    #[serde(default)]
    pub tokens: u64,
    #[serde(default)]
    pub flops: f64,
    #[serde(default)]
    pub device: String,
    #[serde(default)]
    pub wall_seconds: f64,
}

/// Hardware attestation. `type: "none"` is valid and means no attestation. gym verifies no
/// attestation type yet and reports any other type as present but unverified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attestation {
    #[serde(rename = "type")]
    pub kind: String,
    /// Evidence, base64, as produced by the attesting platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
}

impl Default for Attestation {
    fn default() -> Self {
        Attestation {
            kind: "none".into(),
            evidence: None,
        }
    }
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

impl Metadata {
    /// A minimal record with the current time.
    pub fn new(worker_id: impl Into<String>) -> Self {
        Metadata {
            timestamp: timefmt::now_rfc3339(),
            epoch: 0,
            step: 0,
            seq: 0,
            loss: None,
            worker_id: worker_id.into(),
            base_hash: None,
            parent_hash: None,
            config: None,
            compute: None,
            attestation: Attestation::default(),
            adapter_config: None,
            extra: None,
        }
    }

    /// Parses and validates the section's JSON bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
        let m: Metadata = serde_json::from_str(text).map_err(|e| format!("invalid: {e}"))?;
        m.validate()?;
        Ok(m)
    }

    /// The canonical bytes gym writes: compact JSON, fields in declaration order.
    pub fn to_json(&self) -> Result<Vec<u8>, String> {
        self.validate()?;
        serde_json::to_vec(self).map_err(|e| e.to_string())
    }

    pub fn validate(&self) -> Result<(), String> {
        timefmt::validate_utc(&self.timestamp)?;
        if self.worker_id.is_empty() || self.worker_id.len() > 128 {
            return Err(format!(
                "worker_id must be 1 to 128 bytes, got {}",
                self.worker_id.len()
            ));
        }
        if self.worker_id.chars().any(char::is_control) {
            return Err("worker_id contains control characters".into());
        }
        if let Some(l) = self.loss
            && !l.is_finite()
        {
            return Err(format!("loss must be finite, got {l}"));
        }
        for (field, v) in [
            ("base_hash", &self.base_hash),
            ("parent_hash", &self.parent_hash),
        ] {
            if let Some(h) = v
                && !is_hex64(h)
            {
                return Err(format!(
                    "{field} must be 64 lowercase hex digits (SHA3-256), got {h:?}"
                ));
            }
        }
        if let Some(c) = &self.compute {
            if !(c.flops.is_finite() && c.flops >= 0.0) {
                return Err(format!(
                    "compute.flops must be finite and non-negative, got {}",
                    c.flops
                ));
            }
            if !(c.wall_seconds.is_finite() && c.wall_seconds >= 0.0) {
                return Err(format!(
                    "compute.wall_seconds must be finite and non-negative, got {}",
                    c.wall_seconds
                ));
            }
        }
        let k = &self.attestation.kind;
        if k.is_empty()
            || k.len() > 64
            || !k
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
        {
            return Err(format!(
                "attestation.type {k:?} must be 1 to 64 characters of [a-z0-9_-]"
            ));
        }
        if k == "none" && self.attestation.evidence.is_some() {
            return Err("attestation.type is \"none\" but evidence is present".into());
        }
        Ok(())
    }
}
