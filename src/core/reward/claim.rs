//! Reward claims (`gym-reward-claim/1`): the seed's `claim_rewards(cid, proof_of_work)`. A claim
//! binds a worker's delta (its body digest, the SHA3-256 of the whole file and, optionally, its
//! IPFS CID) to the compute record in the delta's signed metadata, signed by the same key that
//! signed the delta. Signed as described in [`super::signed`] under `gym-reward-claim-v1`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::RewardError;
use super::signed::{self, Envelope, SignatureJson, SignerJson};
use crate::core::delta::{self, FileSource, VerifyOptions, VerifyReport};
use crate::core::keys::{Identity, PublicIdentity};
use crate::core::{hash, timefmt};

pub const CLAIM_FORMAT: &str = "gym-reward-claim/1";
pub const CLAIM_DOMAIN: &str = "gym-reward-claim-v1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimDelta {
    /// Body digest (SHA3-256, hex) of the delta: what its signature covers.
    pub digest: String,
    /// SHA3-256 (hex) of the whole file as published.
    pub file_sha3: String,
    /// IPFS CID the delta was published under, as given by the worker (not recomputed).
    pub cid: Option<String>,
    pub base_hash: Option<String>,
}

/// The compute record, copied from the delta's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimCompute {
    pub tokens: u64,
    pub flops: f64,
    pub device: String,
    pub wall_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    pub format: String,
    pub worker_id: String,
    pub epoch: u64,
    pub seq: u64,
    pub delta: ClaimDelta,
    pub compute: ClaimCompute,
    /// RFC 3339 UTC.
    pub created: String,
    #[serde(default)]
    pub signer: Option<SignerJson>,
    #[serde(default)]
    pub signature: Option<SignatureJson>,
}

impl Claim {
    fn fields(&self) -> Envelope {
        Envelope::new(CLAIM_DOMAIN)
            .str(&self.format)
            .str(&self.worker_id)
            .u64(self.epoch)
            .u64(self.seq)
            .str(&self.delta.digest)
            .str(&self.delta.file_sha3)
            .opt_str(self.delta.cid.as_deref())
            .opt_str(self.delta.base_hash.as_deref())
            .u64(self.compute.tokens)
            .f64(self.compute.flops)
            .str(&self.compute.device)
            .f64(self.compute.wall_seconds)
            .str(&self.created)
    }
}

/// A syntactic check of a CID: CIDv0 (`Qm…`, 46 base58 characters) or CIDv1 in base32 (`b…`,
/// lowercase). The CID is not recomputed from the file.
pub fn check_cid(cid: &str) -> Result<(), String> {
    const B58: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let v0 = cid.len() == 46 && cid.starts_with("Qm") && cid.chars().all(|c| B58.contains(c));
    let v1 = cid.len() > 8
        && cid.len() <= 128
        && cid.starts_with('b')
        && cid
            .bytes()
            .all(|c| c.is_ascii_lowercase() || (b'2'..=b'7').contains(&c));
    if v0 || v1 {
        Ok(())
    } else {
        Err(format!(
            "{cid:?} is not a CID (CIDv0 \"Qm…\" or base32 CIDv1 \"b…\")"
        ))
    }
}

fn verify_delta(path: &Path) -> Result<(VerifyReport, String), RewardError> {
    let file = path.display().to_string();
    let src = FileSource::open(path).map_err(|source| RewardError::Read {
        path: file.clone(),
        source,
    })?;
    let opts = VerifyOptions {
        require_signature: true,
        ..VerifyOptions::default()
    };
    let report = delta::verify(&src, &opts).map_err(|source| RewardError::Delta {
        file: file.clone(),
        source,
    })?;
    let f = std::fs::File::open(path).map_err(|source| RewardError::Read {
        path: file.clone(),
        source,
    })?;
    let sha =
        hash::sha3_256_reader(f).map_err(|source| RewardError::Read { path: file, source })?;
    Ok((report, hex::encode(sha)))
}

/// Builds and signs a claim for the delta at `path`, which `id` must have signed.
pub fn make(path: &Path, cid: Option<&str>, id: &Identity) -> Result<Claim, RewardError> {
    let file = path.display().to_string();
    if let Some(c) = cid {
        check_cid(c).map_err(|reason| RewardError::Record {
            file: "--cid".into(),
            record: "cid".into(),
            reason,
        })?;
    }
    let (report, file_sha3) = verify_delta(path)?;
    let public = id.public();
    let signer = report.signer.clone().ok_or_else(|| RewardError::Delta {
        file: file.clone(),
        source: crate::core::delta::DeltaError::Unsigned,
    })?;
    if signer.ed25519 != public.ed25519 {
        return Err(RewardError::ClaimSigner {
            delta_signer: signer.worker_id(),
            key: public.worker_id(),
        });
    }
    let meta = &report.delta.metadata;
    let c = meta.compute.as_ref().ok_or_else(|| RewardError::Record {
        file: file.clone(),
        record: "metadata".into(),
        reason: "the delta has no compute record to claim (pack it with --tokens/--flops/--wall-seconds)".into(),
    })?;
    let mut claim = Claim {
        format: CLAIM_FORMAT.into(),
        worker_id: public.worker_id(),
        epoch: meta.epoch,
        seq: meta.seq,
        delta: ClaimDelta {
            digest: report.digest_hex(),
            file_sha3,
            cid: cid.map(str::to_string),
            base_hash: meta.base_hash.clone(),
        },
        compute: ClaimCompute {
            tokens: c.tokens,
            flops: c.flops,
            device: c.device.clone(),
            wall_seconds: c.wall_seconds,
        },
        created: timefmt::now_rfc3339(),
        signer: None,
        signature: None,
    };
    let (s, sig) = signed::sign(id, CLAIM_DOMAIN, claim.fields());
    claim.signer = Some(s);
    claim.signature = Some(sig);
    Ok(claim)
}

/// Reads and checks a claim file: format, fields, signature, and that `worker_id` is the signer's.
pub fn verify(path: &Path) -> Result<(Claim, PublicIdentity), RewardError> {
    let file = path.display().to_string();
    let mut list = super::records::read_file::<Claim>(path, CLAIM_FORMAT)?;
    let (label, claim) = match (list.pop(), list.is_empty()) {
        (Some(c), true) => c,
        _ => {
            return Err(RewardError::Record {
                file,
                record: "document".into(),
                reason: "expected exactly one claim".into(),
            });
        }
    };
    let bad = |reason: String| RewardError::Record {
        file: file.clone(),
        record: label.clone(),
        reason,
    };
    timefmt::validate_utc(&claim.created).map_err(|e| bad(format!("created: {e}")))?;
    if let Some(c) = &claim.delta.cid {
        check_cid(c).map_err(|e| bad(format!("delta.cid: {e}")))?;
    }
    let who = signed::verify(
        CLAIM_DOMAIN,
        claim.fields(),
        claim.signer.as_ref(),
        claim.signature.as_ref(),
        &file,
        &label,
    )?;
    if who.worker_id() != claim.worker_id {
        return Err(RewardError::ClaimMismatch {
            file,
            field: "worker_id",
            claim: claim.worker_id.clone(),
            delta: format!("signer {}", who.worker_id()),
        });
    }
    Ok((claim, who))
}

/// Checks that the delta at `path` is the one the claim names, signed by the claimant, with the
/// same compute record.
pub fn check_delta(claim: &Claim, claim_file: &str, path: &Path) -> Result<(), RewardError> {
    let (report, file_sha3) = verify_delta(path)?;
    let mismatch = |field: &'static str, claim: String, delta: String| {
        Err(RewardError::ClaimMismatch {
            file: claim_file.to_string(),
            field,
            claim,
            delta,
        })
    };
    let signer = report
        .signer
        .as_ref()
        .map(|s| s.worker_id())
        .unwrap_or_default();
    if signer != claim.worker_id {
        return mismatch(
            "worker_id",
            claim.worker_id.clone(),
            format!("signer {signer}"),
        );
    }
    if report.digest_hex() != claim.delta.digest {
        return mismatch(
            "delta.digest",
            claim.delta.digest.clone(),
            report.digest_hex(),
        );
    }
    if file_sha3 != claim.delta.file_sha3 {
        return mismatch("delta.file_sha3", claim.delta.file_sha3.clone(), file_sha3);
    }
    let meta = &report.delta.metadata;
    if (meta.epoch, meta.seq) != (claim.epoch, claim.seq) {
        return mismatch(
            "epoch/seq",
            format!("{}/{}", claim.epoch, claim.seq),
            format!("{}/{}", meta.epoch, meta.seq),
        );
    }
    let c = meta.compute.as_ref();
    let same = c.is_some_and(|c| {
        c.tokens == claim.compute.tokens
            && c.flops.to_bits() == claim.compute.flops.to_bits()
            && c.device == claim.compute.device
            && c.wall_seconds.to_bits() == claim.compute.wall_seconds.to_bits()
    });
    if !same {
        return mismatch("compute", format!("{:?}", claim.compute), format!("{c:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cid_syntax() {
        assert!(check_cid("QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG").is_ok());
        assert!(check_cid("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi").is_ok());
        for bad in [
            "",
            "Qm0",
            "bafy BEI",
            "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbd0",
            "zb2rhe5P4gXftAwvA4eXQ5HJwsER2owDyS9sKaQRRVQPn93bA",
        ] {
            assert!(check_cid(bad).is_err(), "{bad:?}");
        }
    }
}
