//! Content identifiers (CIDs) for sha2-256 blocks.
//!
//! Byte layout:
//! - multihash: `0x12` (sha2-256) ‖ `0x20` (32 bytes) ‖ digest.
//! - CIDv0: the multihash alone, always dag-pb; printed in base58btc (`Qm…`, no multibase prefix).
//! - CIDv1: varint version `0x01` ‖ varint codec ‖ multihash; printed in multibase base32 lower,
//!   no padding, with the prefix `b` (`bafy…` for dag-pb, `bafk…` for raw).

use sha2::{Digest, Sha256};

/// Multicodec of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// dag-pb, `0x70`.
    DagPb,
    /// raw bytes, `0x55`.
    Raw,
}

impl Codec {
    pub fn code(self) -> u8 {
        match self {
            Codec::DagPb => 0x70,
            Codec::Raw => 0x55,
        }
    }
}

/// CID version, as `ipfs add --cid-version` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CidVersion {
    V0,
    V1,
}

impl CidVersion {
    pub fn number(self) -> u8 {
        match self {
            CidVersion::V0 => 0,
            CidVersion::V1 => 1,
        }
    }
}

/// A CID over a sha2-256 multihash. A v0 CID is always dag-pb (the constructor enforces it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cid {
    version: CidVersion,
    codec: Codec,
    digest: [u8; 32],
}

impl Cid {
    /// The CID of `block`. A raw block under v0 is not representable and is given as v1, which
    /// is what IPFS does too.
    pub fn of_block(version: CidVersion, codec: Codec, block: &[u8]) -> Cid {
        let digest: [u8; 32] = Sha256::digest(block).into();
        let version = if codec == Codec::Raw {
            CidVersion::V1
        } else {
            version
        };
        Cid {
            version,
            codec,
            digest,
        }
    }

    pub fn version(&self) -> CidVersion {
        self.version
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// The binary form, as links inside dag-pb nodes hold it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(36);
        if self.version == CidVersion::V1 {
            v.push(0x01);
            v.push(self.codec.code());
        }
        v.push(0x12);
        v.push(0x20);
        v.extend_from_slice(&self.digest);
        v
    }
}

impl std::fmt::Display for Cid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.version {
            CidVersion::V0 => f.write_str(&base58btc(&self.to_bytes())),
            CidVersion::V1 => {
                let b32 = data_encoding::BASE32_NOPAD
                    .encode(&self.to_bytes())
                    .to_ascii_lowercase();
                write!(f, "b{b32}")
            }
        }
    }
}

const B58: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// Bitcoin-alphabet base58 (leading zero bytes become `1`).
pub fn base58btc(bytes: &[u8]) -> String {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    // Little-endian base-58 digits.
    let mut digits: Vec<u8> = Vec::with_capacity(bytes.len() * 138 / 100 + 1);
    for &b in &bytes[zeros..] {
        let mut carry = b as u32;
        for d in digits.iter_mut() {
            carry += (*d as u32) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let mut s = String::with_capacity(zeros + digits.len());
    s.extend(std::iter::repeat_n('1', zeros));
    s.extend(digits.iter().rev().map(|d| B58[*d as usize] as char));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base58_known_answers() {
        assert_eq!(base58btc(b""), "");
        assert_eq!(base58btc(&[0, 0, 1]), "112");
        assert_eq!(base58btc(b"hello world"), "StV1DL6CwTryKyV");
    }
}
