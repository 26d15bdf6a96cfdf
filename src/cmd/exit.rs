//! The one mapping from an error to the process exit code.

use super::Failure;
use crate::core::error::{ErrorClass, class_of};

/// The exit code for `err`: the class of the first cause that has one ([`Failure`], a typed
/// error of `core`, an I/O error), 0 for a closed pipe, else 1.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if let Some(f) = cause.downcast_ref::<Failure>() {
            return f.class.exit_code();
        }
        if let Some(class) = class_of(cause) {
            return class.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<std::io::Error>() {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return 0;
            }
            return ErrorClass::Io.exit_code();
        }
    }
    ErrorClass::Other.exit_code()
}
