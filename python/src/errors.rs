//! Python exceptions, one per gym error class, with the CLI's exit code as `exit_code`.

use gym::core::error::{Classify, ErrorClass};
use pyo3::prelude::*;
use pyo3::types::PyType;

pyo3::create_exception!(
    _native,
    GymError,
    pyo3::exceptions::PyException,
    "Base class of every gym error; `exit_code` and `error_class` match the `gym` CLI."
);

macro_rules! classes {
    ($($name:ident => $class:ident, $doc:literal;)*) => {
        $(pyo3::create_exception!(_native, $name, GymError, $doc);)*

        /// The exception type for a class.
        fn new_err(class: ErrorClass, msg: String) -> PyErr {
            match class {
                $(ErrorClass::$class => $name::new_err(msg),)*
                ErrorClass::Other => GymError::new_err(msg),
            }
        }

        /// Adds the exception types to the module, each with its class name and exit code.
        pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
            let py = m.py();
            let base = py.get_type::<GymError>();
            set_class(&base, ErrorClass::Other)?;
            m.add("GymError", base)?;
            $(
                let t = py.get_type::<$name>();
                set_class(&t, ErrorClass::$class)?;
                m.add(stringify!($name), t)?;
            )*
            Ok(())
        }
    };
}

classes! {
    IoError => Io, "A file could not be read or written (exit code 3).";
    ExistsError => Exists, "An output exists and `force` was not given (exit code 4).";
    MalformedError => Malformed, "The input is not well-formed (exit code 10).";
    UnsupportedError => Unsupported, "Well-formed, but uses something this version does not support (exit code 11).";
    ChecksumError => Checksum, "The checksum does not match the content (exit code 12).";
    SignatureError => Signature, "A signature does not verify (exit code 13).";
    UntrustedError => Untrusted, "The signer is not trusted, or a required signature is missing (exit code 14).";
    PolicyError => Policy, "Valid, but violates a policy: stale sequence, wrong base model (exit code 15).";
    VectorsError => Vectors, "Test vectors did not give their expected verdicts (exit code 16).";
    NetworkError => Network, "A server could not be reached or kept failing (exit code 17).";
    AuthError => Auth, "A server refused the credentials (exit code 18).";
    RemoteError => Remote, "A server rejected the request or answered something unexpected (exit code 19).";
    RingError => Ring, "A ring all-reduce could not complete (exit code 20).";
    UsageError => Usage, "Settings that cannot work together (exit code 2).";
    TrainingError => Training, "Training could not go on (exit code 21).";
    DeviceError => Device, "The device asked for is not available (exit code 22).";
}

fn set_class(t: &Bound<'_, PyType>, class: ErrorClass) -> PyResult<()> {
    t.setattr("exit_code", class.exit_code())?;
    t.setattr("error_class", class.as_str())
}

/// The class of the first classified cause, as the `gym` binary decides its exit code.
pub fn classify(err: &anyhow::Error) -> (ErrorClass, Option<&'static str>) {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<gym::core::delta::DeltaError>() {
            return (e.class(), Some(e.kind()));
        }
        if let Some(e) = cause.downcast_ref::<Classified>() {
            return (e.class, None);
        }
        // the one list the `gym` binary looks exit codes up in
        if let Some(class) = gym::core::error::class_of(cause) {
            return (class, None);
        }
        if cause.downcast_ref::<std::io::Error>().is_some() {
            return (ErrorClass::Io, None);
        }
    }
    (ErrorClass::Other, None)
}

/// An error raised by this crate itself, with its class.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Classified {
    pub class: ErrorClass,
    pub message: String,
}

pub fn fail(class: ErrorClass, message: impl Into<String>) -> anyhow::Error {
    Classified {
        class,
        message: message.into(),
    }
    .into()
}

/// "a: b: c" without repeating a cause that its parent already quoted (as the CLI prints).
fn message(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if s.is_empty() || parts.last().is_some_and(|p| p.contains(&s)) {
            continue;
        }
        parts.push(s);
    }
    parts.join(": ")
}

/// Converts a library error into the matching Python exception; `kind` is set for delta errors
/// (the stable identifiers of `docs/delta-format.md`), else None.
pub fn to_py(err: anyhow::Error) -> PyErr {
    let (class, kind) = classify(&err);
    let e = new_err(class, message(&err));
    Python::attach(|py| {
        let _ = e.value(py).setattr("kind", kind);
    });
    e
}

/// `?` for anyhow results inside `#[pyfunction]`s.
pub trait IntoPy<T> {
    fn py_err(self) -> PyResult<T>;
}

impl<T, E: Into<anyhow::Error>> IntoPy<T> for Result<T, E> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(|e| to_py(e.into()))
    }
}
