//! Failure classes shared by every part of gym. Each typed error in `core` maps onto one class,
//! and the binary maps each class onto one documented exit code (see README.md, "Exit codes").

/// What kind of failure an error is, independent of which module raised it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Anything not covered below.
    Other,
    /// A file could not be read or written (missing, permission, disk full).
    Io,
    /// An output exists and `--force` was not given.
    Exists,
    /// The input is not well-formed (truncation, bad lengths, limits, duplicates, bad metadata).
    Malformed,
    /// Well-formed, but uses something this version does not support (version, codec, dtype, flag).
    Unsupported,
    /// The checksum or body digest does not match the content.
    Checksum,
    /// A signature does not verify.
    Signature,
    /// The signer is not trusted, or a signature was required and is missing.
    Untrusted,
    /// The delta is valid but violates a policy (stale sequence number, wrong base model).
    Policy,
    /// A server could not be reached, timed out, or kept failing (5xx) after retries.
    Network,
    /// A server refused the credentials (HTTP 401/403): token missing, invalid or lacking rights.
    Auth,
    /// A server rejected the request or answered something unexpected (other 4xx, bad answers).
    Remote,
    /// A ring all-reduce could not complete (too few members left, or this member was excluded),
    /// or an audit of its result convicted a member.
    Ring,
    /// Settings that cannot work together (bad configuration values, inconsistent batch sizes).
    Usage,
    /// Training could not go on: the reward scorer failed or answered garbage, the loss diverged.
    Training,
}

impl ErrorClass {
    /// The process exit code for this class. Documented in README.md; keep both in step.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorClass::Other => 1,
            ErrorClass::Io => 3,
            ErrorClass::Exists => 4,
            ErrorClass::Malformed => 10,
            ErrorClass::Unsupported => 11,
            ErrorClass::Checksum => 12,
            ErrorClass::Signature => 13,
            ErrorClass::Untrusted => 14,
            ErrorClass::Policy => 15,
            ErrorClass::Network => 17,
            ErrorClass::Auth => 18,
            ErrorClass::Remote => 19,
            ErrorClass::Ring => 20,
            ErrorClass::Usage => 2,
            ErrorClass::Training => 21,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Other => "other",
            ErrorClass::Io => "io",
            ErrorClass::Exists => "exists",
            ErrorClass::Malformed => "malformed",
            ErrorClass::Unsupported => "unsupported",
            ErrorClass::Checksum => "checksum",
            ErrorClass::Signature => "signature",
            ErrorClass::Untrusted => "untrusted",
            ErrorClass::Policy => "policy",
            ErrorClass::Network => "network",
            ErrorClass::Auth => "auth",
            ErrorClass::Remote => "remote",
            ErrorClass::Ring => "ring",
            ErrorClass::Usage => "usage",
            ErrorClass::Training => "training",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "other" => ErrorClass::Other,
            "io" => ErrorClass::Io,
            "exists" => ErrorClass::Exists,
            "malformed" => ErrorClass::Malformed,
            "unsupported" => ErrorClass::Unsupported,
            "checksum" => ErrorClass::Checksum,
            "signature" => ErrorClass::Signature,
            "untrusted" => ErrorClass::Untrusted,
            "policy" => ErrorClass::Policy,
            "network" => ErrorClass::Network,
            "auth" => ErrorClass::Auth,
            "remote" => ErrorClass::Remote,
            "ring" => ErrorClass::Ring,
            "usage" => ErrorClass::Usage,
            "training" => ErrorClass::Training,
            _ => return None,
        })
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Implemented by every typed error of the library.
pub trait Classify {
    fn class(&self) -> ErrorClass;
}
