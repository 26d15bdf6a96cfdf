//! `gym delta verify`: structure, checksum, signatures, trust and policy; `--vectors`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;

use super::{parse_hex32, signer_json};
use crate::cmd::Failure;
use crate::cmd::out::{self, Ctx};
use crate::core::delta::{ReplayGuard, VerifyFailure, VerifyOptions, VerifyReport, verify_path};
use crate::core::error::ErrorClass;
use crate::core::keys::TrustedKeys;

/// Arguments of `gym delta verify`.
#[derive(Debug, Args)]
#[command(after_help = "\
A trusted-keys file has one signer per line: the Ed25519 public key (base64 or 64 hex digits,
optionally prefixed `ed25519:`), an optional `mldsa87:<base64>` key that then must sign too, and an
optional label; or a JSON line as printed by `gym key show --json`. Lines starting with # are
comments.

Exit codes: 0 all valid; 10 malformed; 11 unsupported; 12 checksum; 13 signature; 14 unsigned
or untrusted; 15 policy (stale or replayed sequence number, base hash); 16 a test vector did not
give its expected verdict. With several files, the code is that of the first failure.")]
pub struct VerifyArgs {
    #[arg(value_name = "IN.delta", required_unless_present = "vectors")]
    pub inputs: Vec<PathBuf>,
    /// Require every delta to be signed by a key in this file.
    #[arg(long, value_name = "FILE")]
    pub trusted_keys: Option<PathBuf>,
    /// Require a signature (from anyone) even without --trusted-keys.
    #[arg(long)]
    pub require_signature: bool,
    /// Reject deltas whose sequence number is below N.
    #[arg(long, value_name = "N")]
    pub min_seq: Option<u64>,
    /// Reject deltas whose base model hash differs.
    #[arg(long, value_parser = parse_hex32, value_name = "HEX")]
    pub base_hash: Option<String>,
    /// Check every test vector of a manifest against its expected verdict.
    #[arg(long, value_name = "MANIFEST.json", conflicts_with_all = ["inputs", "trusted_keys", "min_seq", "base_hash", "require_signature"])]
    pub vectors: Option<PathBuf>,
    /// Print JSON (format `gym-delta-verify/1`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, serde::Serialize)]
struct VerifyJson {
    file: PathBuf,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    class: Option<ErrorClass>,
    /// Stable error identifier (`DeltaError::kind`).
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    worker_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signer: Option<serde_json::Value>,
    trusted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    trusted_label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attestation: Option<serde_json::Value>,
}

fn failed(file: &Path, f: VerifyFailure) -> VerifyJson {
    VerifyJson {
        file: file.to_path_buf(),
        ok: false,
        class: Some(f.class),
        kind: Some(f.kind),
        exit_code: Some(f.class.exit_code()),
        error: Some(f.message),
        digest: None,
        worker_id: None,
        seq: None,
        signer: None,
        trusted: false,
        trusted_label: None,
        attestation: None,
    }
}

fn passed(file: &Path, r: &VerifyReport) -> VerifyJson {
    let m = &r.delta.metadata;
    VerifyJson {
        file: file.to_path_buf(),
        ok: true,
        class: None,
        kind: None,
        exit_code: None,
        error: None,
        digest: Some(r.digest_hex()),
        worker_id: Some(m.worker_id.clone()),
        seq: Some(m.seq),
        signer: Some(signer_json(&r.delta)).filter(|v| !v.is_null()),
        trusted: r.trusted,
        trusted_label: r.trusted_label.clone(),
        attestation: Some(serde_json::json!({"type": m.attestation.kind, "verified": false})),
    }
}

pub(super) fn run(ctx: &Ctx, a: VerifyArgs) -> anyhow::Result<()> {
    if let Some(m) = &a.vectors {
        return verify_vectors(ctx, m, a.json);
    }
    let mut opts = VerifyOptions {
        trusted: None,
        require_signature: a.require_signature,
        min_seq: a.min_seq,
        base_hash: a.base_hash.clone(),
    };
    if let Some(p) = &a.trusted_keys {
        opts.trusted = Some(TrustedKeys::load(p)?);
    }
    let mut results = Vec::new();
    let mut replays = ReplayGuard::default();
    for path in &a.inputs {
        let r = match verify_path(path, &opts) {
            Err(f) => failed(path, f),
            Ok(rep) => match replays.check(&rep) {
                Err(e) => failed(path, VerifyFailure::from(&e)),
                Ok(()) => passed(path, &rep),
            },
        };
        results.push(r);
    }
    let first_fail = results
        .iter()
        .find(|r| !r.ok)
        .map(|r| r.class.unwrap_or(ErrorClass::Other));
    if a.json {
        out::json(&serde_json::json!({"format": "gym-delta-verify/1", "results": results}))?;
    } else {
        let mut s = String::new();
        for r in &results {
            if r.ok {
                let signer = match (&r.signer, &r.trusted_label) {
                    (Some(sig), Some(l)) => format!(
                        "signed by {} (trusted: {l})",
                        sig["worker_id"].as_str().unwrap_or("?")
                    ),
                    (Some(sig), None) if r.trusted => format!(
                        "signed by {} (trusted)",
                        sig["worker_id"].as_str().unwrap_or("?")
                    ),
                    (Some(sig), None) => {
                        format!("signed by {}", sig["worker_id"].as_str().unwrap_or("?"))
                    }
                    (None, _) => "unsigned".into(),
                };
                s.push_str(&format!(
                    "ok    {}  digest {}  {signer}, seq {}\n",
                    r.file.display(),
                    r.digest.as_deref().unwrap_or(""),
                    r.seq.unwrap_or(0)
                ));
            } else {
                s.push_str(&format!(
                    "FAIL  {}  {}: {}\n",
                    r.file.display(),
                    r.class.map(|c| c.as_str()).unwrap_or("other"),
                    r.error.as_deref().unwrap_or("")
                ));
            }
        }
        out::print(&s)?;
    }
    if let Some(class) = first_fail {
        let n = results.iter().filter(|r| !r.ok).count();
        ctx.note(format!(
            "{n} of {} deltas failed verification",
            results.len()
        ));
        return Err(Failure::new(class, String::new()).into());
    }
    Ok(())
}

fn verify_vectors(ctx: &Ctx, manifest_path: &Path, json: bool) -> anyhow::Result<()> {
    use crate::core::delta::vectors::{self, MANIFEST_FORMAT, Manifest};
    let text = std::fs::read_to_string(manifest_path)
        .with_context(|| format!("reading {}", manifest_path.display()))?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| {
        Failure::new(
            ErrorClass::Malformed,
            format!("{}: {e}", manifest_path.display()),
        )
    })?;
    if manifest.format != MANIFEST_FORMAT {
        return Err(Failure::new(
            ErrorClass::Unsupported,
            format!(
                "{}: format {:?}, expected {MANIFEST_FORMAT:?}",
                manifest_path.display(),
                manifest.format
            ),
        )
        .into());
    }
    let dir = manifest_path.parent().unwrap_or(Path::new("."));
    let rows = vectors::check(&manifest, dir)?;
    let mismatches = rows.iter().filter(|r| !r.pass).count();
    if json {
        out::json(&serde_json::json!({
            "format": "gym-delta-vectors-result/1",
            "manifest": manifest_path,
            "cases": rows.len(),
            "mismatches": mismatches,
            "results": rows,
        }))?;
    } else {
        let mut t = out::table(&["vector", "expected", "got", "result"]);
        for r in &rows {
            let fmt = |verdict: &str, class: Option<&str>| match class {
                Some(c) => format!("{verdict} ({c})"),
                None => verdict.to_string(),
            };
            t.add_row(vec![
                r.file.clone(),
                fmt(&r.expect, r.expect_class.as_deref()),
                fmt(r.got.as_str(), r.got_class.map(ErrorClass::as_str)),
                if r.pass { "pass" } else { "MISMATCH" }.to_string(),
            ]);
        }
        out::print(&format!(
            "{t}\n{} cases, {} passed, {mismatches} mismatched\n",
            rows.len(),
            rows.len() - mismatches
        ))?;
    }
    if mismatches > 0 {
        ctx.note(format!(
            "{mismatches} test vectors did not give their expected verdict"
        ));
        return Err(Failure::new(ErrorClass::Vectors, String::new()).into());
    }
    Ok(())
}
