//! The DELTA file format, version 1. The byte layout is specified in `docs/delta-format.md`;
//! this module is its reference implementation. Reading uses checked arithmetic only and never
//! panics on any input; writing is streaming, parallel and atomic.

mod check;
mod decode;
mod diff;
mod dtype;
mod meta;
mod pack;
mod read;
mod sign;
#[cfg(test)]
mod tests;
pub mod vectors;

pub use check::{ReplayGuard, VerifyFailure, verify_path};
pub use decode::decode_into;
pub use diff::{DiffReport, DiffStatus, TensorDiff, diff};
pub use dtype::Dtype;
pub use meta::{Attestation, Compute, Metadata};
pub use pack::{PackError, PackInput, PackOptions, PackSummary, TensorSource, pack, pack_to_vec};
pub use read::{
    ChunkRef, Delta, FileSource, Source, TensorEntry, UnpackError, UnpackSummary, VerifyOptions,
    VerifyReport, read_bytes, read_tensor, unpack_to_safetensors, verify, verify_streaming,
};
pub use sign::{SIGNATURE_CONTEXT, SignatureBlock, signing_message};

use crate::core::error::{Classify, ErrorClass};

/// `DELTA` in ASCII.
pub const MAGIC: [u8; 5] = *b"DELTA";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 24;

/// Flag bit 0: a signature section follows the tensor section.
pub const FLAG_SIGNED: u8 = 0x01;
/// Flag bit 1: the signature section also holds an ML-DSA-87 key and signature. Requires bit 0.
pub const FLAG_HYBRID: u8 = 0x02;
pub const KNOWN_FLAGS: u8 = FLAG_SIGNED | FLAG_HYBRID;

/// Longest metadata JSON, in bytes.
pub const MAX_METADATA_LEN: u32 = 1 << 20;
/// Most tensors in one file.
pub const MAX_TENSORS: u32 = 1 << 16;
/// Longest tensor name, in bytes.
pub const MAX_NAME_LEN: u32 = 1024;
/// Highest tensor rank.
pub const MAX_RANK: u8 = 8;
/// Largest decompressed tensor, in bytes (1 TiB).
pub const MAX_TENSOR_BYTES: u64 = 1 << 40;
/// Smallest and largest chunk size (raw bytes per chunk), both powers of two.
pub const MIN_CHUNK_SIZE: u32 = 1 << 8;
pub const MAX_CHUNK_SIZE: u32 = 1 << 26;
/// What `gym delta pack` uses unless told otherwise.
pub const DEFAULT_CHUNK_SIZE: u32 = 1 << 20;

/// How chunk payloads are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Code 0: every chunk is stored raw.
    None,
    /// Code 1: each chunk is one LZ4 block (no frame, no size prefix), or raw when LZ4 would not
    /// make it smaller.
    Lz4,
}

impl Compression {
    pub fn code(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Lz4 => 1,
        }
    }
    pub fn from_code(c: u8) -> Option<Self> {
        match c {
            0 => Some(Compression::None),
            1 => Some(Compression::Lz4),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
        }
    }
}

/// Every way reading or checking a delta can fail. Offsets are absolute byte offsets in the file.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    #[error("I/O error at offset {offset}: {source}")]
    Io { offset: u64, source: std::io::Error },
    #[error("not a DELTA file: magic is {found:02x?}, expected 44 45 4c 54 41 (\"DELTA\")")]
    BadMagic { found: Vec<u8> },
    #[error("unsupported format version {version} (this gym reads version {VERSION})")]
    UnsupportedVersion { version: u8 },
    #[error("unknown compression code {code} (known: 0 none, 1 lz4)")]
    UnknownCompression { code: u8 },
    #[error("unknown flag bits {bits:#04x} in flags byte {flags:#04x}")]
    UnknownFlags { flags: u8, bits: u8 },
    #[error("flags byte {flags:#04x} sets the hybrid bit without the signed bit")]
    HybridWithoutSigned { flags: u8 },
    #[error("file truncated in {what} at offset {offset}: needs {need} more bytes, {have} left")]
    Truncated {
        what: String,
        offset: u64,
        need: u64,
        have: u64,
    },
    #[error("metadata length {len} at offset 24 exceeds the limit of {MAX_METADATA_LEN} bytes")]
    MetadataTooLong { len: u32 },
    #[error("metadata at offset {offset}: {reason}")]
    Metadata { offset: u64, reason: String },
    #[error(
        "chunk size {size} at offset {offset} is not a power of two in [{MIN_CHUNK_SIZE}, {MAX_CHUNK_SIZE}]"
    )]
    BadChunkSize { offset: u64, size: u32 },
    #[error("tensor count {count} at offset {offset} exceeds the limit of {MAX_TENSORS}")]
    TooManyTensors { offset: u64, count: u32 },
    #[error("tensor #{index} at offset {offset}: name length {len} is {problem}")]
    NameLength {
        index: u32,
        offset: u64,
        len: u32,
        problem: &'static str,
    },
    #[error("tensor #{index} at offset {offset}: name is not valid UTF-8")]
    NameNotUtf8 { index: u32, offset: u64 },
    #[error("tensor {name:?} at offset {offset}: duplicate name (first at tensor #{first})")]
    DuplicateName {
        name: String,
        offset: u64,
        first: u32,
    },
    #[error("tensor {name:?} at offset {offset}: unknown dtype code {code}")]
    UnknownDtype { name: String, offset: u64, code: u8 },
    #[error("tensor {name:?} at offset {offset}: rank {rank} exceeds the limit of {MAX_RANK}")]
    RankTooLarge { name: String, offset: u64, rank: u8 },
    #[error(
        "tensor {name:?} at offset {offset}: shape {shape:?} overflows or exceeds {MAX_TENSOR_BYTES} bytes"
    )]
    ShapeOverflow {
        name: String,
        offset: u64,
        shape: Vec<u64>,
    },
    #[error("tensor {name:?}: {elements} {dtype} elements are not a whole number of bytes")]
    NotByteAligned {
        name: String,
        elements: u64,
        dtype: &'static str,
    },
    #[error(
        "tensor {name:?} at offset {offset}: data length {declared} does not match its chunks ({actual})"
    )]
    DataLength {
        name: String,
        offset: u64,
        declared: u64,
        actual: u64,
    },
    #[error(
        "tensor {name:?} chunk {chunk} at offset {offset}: raw length {raw} should be {expected}"
    )]
    ChunkRawLength {
        name: String,
        chunk: u64,
        offset: u64,
        raw: u32,
        expected: u64,
    },
    #[error("tensor {name:?} chunk {chunk} at offset {offset}: stored length {stored} {problem}")]
    ChunkStoredLength {
        name: String,
        chunk: u64,
        offset: u64,
        stored: u32,
        problem: String,
    },
    #[error("tensor {name:?} chunk {chunk} at offset {offset}: LZ4 data is corrupt: {reason}")]
    Decompress {
        name: String,
        chunk: u64,
        offset: u64,
        reason: String,
    },
    #[error(
        "tensor {name:?} chunk {chunk} at offset {offset}: decompressed to {actual} bytes, declared {declared}"
    )]
    DecompressedSize {
        name: String,
        chunk: u64,
        offset: u64,
        declared: u32,
        actual: u64,
    },
    #[error("{count} trailing bytes at offset {offset} after the end of the {after}")]
    TrailingBytes {
        offset: u64,
        count: u64,
        after: &'static str,
    },
    #[error("checksum mismatch: header says {stored}, content hashes to {computed}")]
    Checksum { stored: String, computed: String },
    #[error("{algorithm} signature at offset {offset} does not verify")]
    BadSignature {
        algorithm: &'static str,
        offset: u64,
    },
    #[error("invalid {algorithm} public key at offset {offset}: {reason}")]
    BadPublicKey {
        algorithm: &'static str,
        offset: u64,
        reason: String,
    },
    #[error("the delta is not signed, and a signature is required")]
    Unsigned,
    #[error("signer {worker_id} (ed25519 {ed25519}) is not in the trusted keys")]
    Untrusted { worker_id: String, ed25519: String },
    #[error("signer {worker_id} is trusted with an ML-DSA-87 key, but {problem}")]
    TrustedPqMismatch {
        worker_id: String,
        problem: &'static str,
    },
    #[error("sequence number {seq} is below the minimum {min} (stale or replayed delta)")]
    StaleSequence { seq: u64, min: u64 },
    #[error(
        "sequence number {seq} of signer {worker_id} is not above {previous} from an earlier input (replay)"
    )]
    ReplayedSequence {
        seq: u64,
        previous: u64,
        worker_id: String,
    },
    #[error("base model hash {found} differs from the required {expected}")]
    BaseHash { found: String, expected: String },
}

impl DeltaError {
    /// A stable identifier of the variant, used by the test-vector manifest and `--json`
    /// output, and listed in `docs/delta-format.md`.
    pub fn kind(&self) -> &'static str {
        use DeltaError::*;
        match self {
            Io { .. } => "io",
            BadMagic { .. } => "bad_magic",
            UnsupportedVersion { .. } => "unsupported_version",
            UnknownCompression { .. } => "unknown_compression",
            UnknownFlags { .. } => "unknown_flags",
            HybridWithoutSigned { .. } => "hybrid_without_signed",
            Truncated { .. } => "truncated",
            MetadataTooLong { .. } => "metadata_too_long",
            Metadata { .. } => "metadata",
            BadChunkSize { .. } => "bad_chunk_size",
            TooManyTensors { .. } => "too_many_tensors",
            NameLength { .. } => "name_length",
            NameNotUtf8 { .. } => "name_not_utf8",
            DuplicateName { .. } => "duplicate_name",
            UnknownDtype { .. } => "unknown_dtype",
            RankTooLarge { .. } => "rank_too_large",
            ShapeOverflow { .. } => "shape_overflow",
            NotByteAligned { .. } => "not_byte_aligned",
            DataLength { .. } => "data_length",
            ChunkRawLength { .. } => "chunk_raw_length",
            ChunkStoredLength { .. } => "chunk_stored_length",
            Decompress { .. } => "decompress",
            DecompressedSize { .. } => "decompressed_size",
            TrailingBytes { .. } => "trailing_bytes",
            Checksum { .. } => "checksum",
            BadSignature { .. } => "bad_signature",
            BadPublicKey { .. } => "bad_public_key",
            Unsigned => "unsigned",
            Untrusted { .. } => "untrusted",
            TrustedPqMismatch { .. } => "trusted_pq_mismatch",
            StaleSequence { .. } => "stale_sequence",
            ReplayedSequence { .. } => "replayed_sequence",
            BaseHash { .. } => "base_hash",
        }
    }
}

impl Classify for DeltaError {
    fn class(&self) -> ErrorClass {
        use DeltaError::*;
        match self {
            Io { .. } => ErrorClass::Io,
            UnsupportedVersion { .. } | UnknownCompression { .. } | UnknownFlags { .. } => {
                ErrorClass::Unsupported
            }
            UnknownDtype { .. } => ErrorClass::Unsupported,
            Checksum { .. } => ErrorClass::Checksum,
            BadSignature { .. } | BadPublicKey { .. } => ErrorClass::Signature,
            Unsigned | Untrusted { .. } | TrustedPqMismatch { .. } => ErrorClass::Untrusted,
            StaleSequence { .. } | ReplayedSequence { .. } | BaseHash { .. } => ErrorClass::Policy,
            BadMagic { .. }
            | HybridWithoutSigned { .. }
            | Truncated { .. }
            | MetadataTooLong { .. }
            | Metadata { .. }
            | BadChunkSize { .. }
            | TooManyTensors { .. }
            | NameLength { .. }
            | NameNotUtf8 { .. }
            | DuplicateName { .. }
            | RankTooLarge { .. }
            | ShapeOverflow { .. }
            | NotByteAligned { .. }
            | DataLength { .. }
            | ChunkRawLength { .. }
            | ChunkStoredLength { .. }
            | Decompress { .. }
            | DecompressedSize { .. }
            | TrailingBytes { .. } => ErrorClass::Malformed,
        }
    }
}

/// Lowercase hex of a digest.
pub fn hex32(d: &[u8]) -> String {
    hex::encode(d)
}
