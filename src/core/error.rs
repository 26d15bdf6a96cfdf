//! Failure classes shared by every part of gym. Each typed error in `core` maps onto one class,
//! and the binary maps each class onto one documented exit code (see README.md, "Exit codes").

/// Declares [`ErrorClass`] from one table: variant, exit code, stable name, and the meaning
/// printed in `gym --help` and README.md ("Exit codes"). Rows are in exit-code order, which is
/// the order of [`ErrorClass::ALL`] and of both tables.
macro_rules! error_classes {
    ($( $(#[doc = $doc:literal])* $variant:ident = $code:literal, $name:literal, $meaning:literal; )*) => {
        /// What kind of failure an error is, independent of which module raised it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorClass {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl ErrorClass {
            /// Every class, in exit-code order.
            pub const ALL: &'static [ErrorClass] = &[$(ErrorClass::$variant),*];

            /// The process exit code for this class.
            pub fn exit_code(self) -> i32 {
                match self { $(ErrorClass::$variant => $code,)* }
            }

            /// The stable name (`--json` outputs, test-vector manifests).
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorClass::$variant => $name,)* }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($name => Some(ErrorClass::$variant),)* _ => None }
            }

            /// What the exit code means, for users; Markdown (`--help` drops the backticks).
            pub fn meaning(self) -> &'static str {
                match self { $(ErrorClass::$variant => $meaning,)* }
            }
        }
    };
}

error_classes! {
    /// Anything not covered below.
    Other = 1, "other", "other failure";
    /// Settings that cannot work together (bad arguments, bad configuration values, inconsistent
    /// batch sizes).
    Usage = 2, "usage", "usage error (bad arguments)";
    /// A file could not be read or written (missing, permission, disk full).
    Io = 3, "io", "input/output error (missing file, permission)";
    /// An output exists and `--force` was not given.
    Exists = 4, "exists", "output exists (use `--force`)";
    /// The input is not well-formed (truncation, bad lengths, limits, duplicates, bad metadata).
    Malformed = 10, "malformed", "malformed input (truncated, bad lengths, limits, duplicates)";
    /// Well-formed, but uses something this version does not support (version, codec, dtype, flag).
    Unsupported = 11, "unsupported", "unsupported (version, compression, dtype, flag bit)";
    /// The checksum or body digest does not match the content.
    Checksum = 12, "checksum", "checksum mismatch";
    /// A signature does not verify.
    Signature = 13, "signature", "invalid signature";
    /// The signer is not trusted, or a signature was required and is missing.
    Untrusted = 14, "untrusted", "unsigned or untrusted signer (also: a key not in the ring file, or without the ML-DSA-87 half a hybrid ring needs)";
    /// The delta is valid but violates a policy (stale sequence number, wrong base model).
    Policy = 15, "policy", "policy violation (stale or replayed sequence number, wrong base model)";
    /// Test vectors did not give their expected verdicts (`gym delta verify --vectors`).
    Vectors = 16, "vectors", "test vectors did not give their expected verdicts";
    /// A server could not be reached, timed out, or kept failing (5xx) after retries.
    Network = 17, "network", "network failure (unreachable, timeout, server errors after retries)";
    /// A server refused the credentials (HTTP 401/403): token missing, invalid or lacking rights.
    Auth = 18, "auth", "authentication refused (HTTP 401/403: token missing, invalid or without rights)";
    /// A server rejected the request or answered something unexpected (other 4xx, bad answers).
    Remote = 19, "remote", "server rejected the request or gave an unexpected answer";
    /// A ring all-reduce could not complete (too few members left, or this member was excluded),
    /// or an audit of its result convicted a member.
    Ring = 20, "ring", "ring all-reduce failed (fewer than 2 members left, or this member was excluded), or a ring audit convicted a member";
    /// Training could not go on: the reward scorer failed or answered garbage, the loss diverged.
    Training = 21, "training", "training stopped (the reward scorer failed or answered garbage, the loss diverged)";
    /// The device asked for (`--device`, `GYM_DEVICE`) cannot be used: a build without the
    /// `cuda` feature, no CUDA driver, or no such GPU.
    Device = 22, "device", "device not available (`--device cuda` in a build without CUDA, no driver, or no such GPU)";
}

/// The meaning of exit code 0, which no error class has.
const SUCCESS: &str = "success";

/// Width at which [`help_table`] wraps a meaning onto an indented next line.
const HELP_WIDTH: usize = 88;

/// The exit-code table of `gym --help` (its `after_help`), generated from [`ErrorClass`].
pub fn help_table() -> String {
    let mut out = String::from("Exit codes:");
    let rows = std::iter::once((0, SUCCESS))
        .chain(ErrorClass::ALL.iter().map(|c| (c.exit_code(), c.meaning())));
    for (code, meaning) in rows {
        let mut line = format!("\n  {code:<4}");
        let mut width = 6;
        for (i, word) in meaning.replace('`', "").split(' ').enumerate() {
            if i > 0 && width + 1 + word.len() > HELP_WIDTH {
                line.push_str("\n      ");
                width = 6;
            } else if i > 0 {
                line.push(' ');
                width += 1;
            }
            line.push_str(word);
            width += word.len();
        }
        out.push_str(&line);
    }
    out
}

/// The exit-code table of README.md ("Exit codes"), generated from [`ErrorClass`]; a test
/// checks that README.md holds exactly this.
pub fn markdown_table() -> String {
    let mut out = String::from("| code | meaning |\n|-----:|---------|\n");
    out.push_str(&format!("| 0 | {SUCCESS} |\n"));
    for c in ErrorClass::ALL {
        out.push_str(&format!("| {} | {} |\n", c.exit_code(), c.meaning()));
    }
    out
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

/// Every typed error of the library that can reach the binary, as the one list the exit code is
/// looked up in. Listing a type that does not implement [`Classify`] fails to compile; a test
/// (`every_error_type_is_classified`) fails when a `core` error type is missing here.
macro_rules! classified {
    ($($t:ty),* $(,)?) => {
        /// The class of `err` when it is one of the library's typed errors.
        pub fn class_of(err: &(dyn std::error::Error + 'static)) -> Option<ErrorClass> {
            $(
                if let Some(e) = err.downcast_ref::<$t>() {
                    return Some(e.class());
                }
            )*
            None
        }

        #[cfg(test)]
        fn classified_type_names() -> Vec<&'static str> {
            vec![$(std::any::type_name::<$t>()),*]
        }
    };
}

classified!(
    crate::core::delta::DeltaError,
    crate::core::delta::PackError,
    crate::core::delta::UnpackError,
    crate::core::atomic::AtomicError,
    crate::core::keys::KeyError,
    crate::core::reward::RewardError,
    crate::core::safetensors_io::SafetensorsError,
    crate::core::ipfs::AddError,
    crate::core::ipfs::api::IpfsApiError,
    crate::core::ipfs::local::LocalError,
    crate::core::net::NetError,
    crate::core::hub::HubError,
    crate::core::ring::config::RingFileError,
    crate::core::ring::crypto::HandshakeError,
    crate::core::ring::proto::RingError,
    crate::core::ring::proto::Refused,
    crate::core::ring::io::RingIoError,
    crate::core::ring::sumfile::SumFileError,
    crate::core::ring::net::RingNetError,
    crate::core::ring::audit::AuditError,
    crate::core::model::ModelError,
    crate::core::train::trainer::TrainError,
    crate::core::train::config::ConfigError,
    crate::core::plot::PlotError,
    crate::core::train::data::DataError,
    crate::core::train::scoring::ScoringError,
    crate::core::hub::download::FetchError,
    crate::core::train::dataset::DatasetError,
    crate::core::chat::ChatError,
    crate::core::validate::ValidateError,
    crate::core::orchestrator::OrchError,
    crate::core::orchestrator::job::JobError,
    crate::core::orchestrator::store::StoreError,
    crate::core::orchestrator::log::LogError,
    crate::core::orchestrator::client::ClientError,
    crate::core::orchestrator::worker::WorkError,
    crate::core::device::DeviceError,
    crate::core::blas::BlasError,
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Error types of `core` that never reach the binary on their own: each is carried inside a
    /// classified error (`#[from]` or a field), which gives the exit code.
    const CARRIED: &[(&str, &str)] = &[
        (
            "gym::core::orchestrator::auth::AuthError",
            "answered as an HTTP status by the orchestrator's server; never reaches the binary",
        ),
        (
            "gym::core::orchestrator::machine::Refusal",
            "inside OrchError::Refused",
        ),
        (
            "gym::core::ring::wire::WireError",
            "inside RingError/Refused::Decode",
        ),
        (
            "gym::core::ring::codec::CodecError",
            "inside WireError::Packed",
        ),
        (
            "gym::core::ring::fixed::FixedError",
            "inside RingError::Fixed",
        ),
        (
            "gym::core::ring::audit::Finding",
            "inside AuditError; has its own class()",
        ),
    ];

    /// `(module path, type name)` of every `thiserror::Error` derive or `std::error::Error`
    /// impl under `src/core`, read from the source.
    fn declared_error_types() -> Vec<String> {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push(p);
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        walk(&root.join("core"), &mut files);
        let mut found = Vec::new();
        for f in files {
            let rel = f.strip_prefix(&root).unwrap().with_extension("");
            let mut module: Vec<String> = std::iter::once("gym".to_string())
                .chain(rel.iter().map(|c| c.to_string_lossy().into_owned()))
                .collect();
            if module.last().is_some_and(|m| m == "mod") {
                module.pop();
            }
            let module = module.join("::");
            let text = std::fs::read_to_string(&f).unwrap();
            let mut derive = false;
            for line in text.lines() {
                let t = line.trim();
                if t.starts_with("#[derive(") && t.contains("thiserror::Error") {
                    derive = true;
                    continue;
                }
                if let Some(rest) = t.strip_prefix("impl std::error::Error for ") {
                    let name = rest.split([' ', '{', '<']).next().unwrap();
                    found.push(format!("{module}::{name}"));
                }
                if derive && !t.starts_with("#[") && !t.starts_with("///") {
                    let words: Vec<&str> = t.split([' ', '{', '<', '(']).collect();
                    if let Some(i) = words.iter().position(|w| *w == "enum" || *w == "struct") {
                        found.push(format!("{module}::{}", words[i + 1]));
                    }
                    derive = false;
                }
            }
        }
        found
    }

    #[test]
    fn every_error_type_is_classified() {
        let listed = classified_type_names();
        let declared = declared_error_types();
        assert!(declared.len() >= listed.len(), "{declared:?}");
        for name in &declared {
            let carried = CARRIED.iter().any(|(n, _)| n == name);
            assert!(
                listed.contains(&name.as_str()) || carried,
                "{name} is an error type of core but is not listed in `classified!` \
                 (src/core/error.rs): implement Classify for it and list it, or it exits 1"
            );
        }
        for name in &listed {
            assert!(
                declared.iter().any(|d| d == name),
                "{name} listed but not found"
            );
        }
    }

    #[test]
    fn classes_are_in_exit_code_order_with_unique_names() {
        let codes: Vec<i32> = ErrorClass::ALL.iter().map(|c| c.exit_code()).collect();
        assert!(codes.windows(2).all(|w| w[0] < w[1]), "{codes:?}");
        for c in ErrorClass::ALL {
            assert_eq!(ErrorClass::parse(c.as_str()), Some(*c));
            let json = serde_json::to_string(c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
        }
    }

    #[test]
    fn readme_holds_the_generated_exit_code_table() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let table = markdown_table();
        assert!(
            readme.contains(&format!("## Exit codes\n\n{table}\n")),
            "README.md's \"Exit codes\" table differs from ErrorClass (src/core/error.rs); \
             it should read:\n{table}"
        );
    }
}
