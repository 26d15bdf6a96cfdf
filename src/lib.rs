//! gym: decentralized GSPO fine-tuning of language models.
//!
//! `core` is the library (it never prints); `cmd` is the command-line layer over it.
#![deny(unsafe_code)] // allowed in core::hash::multi and core::ring::fixed (SIMD intrinsics) and in
// bin/gym.rs (setting thread variables before any thread exists)

pub mod cmd;
pub mod core;
pub mod fuzzing;
