//! The one integration-test binary: every test here runs the real `gym` executable.
//! Each area has its own module file.

mod common;
mod delta;
mod docs;
mod keys;
mod reward;
