//! gym: decentralized GSPO fine-tuning of language models.
//!
//! `core` is the library (it never prints); `cmd` is the command-line layer over it.
#![deny(unsafe_code)] // allowed only in the SIMD kernels (`core::hash::multi`, `core::ring::fixed`)
// and the CUDA kernel launches (`core::model::kernels`, cuda feature only),
// each block under a `// SAFETY:` comment. The `gym` binary is its own crate: its one `unsafe`
// block sets thread variables before any thread exists.

pub mod cmd;
pub mod core;
pub mod fuzzing;
