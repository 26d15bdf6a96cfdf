//! gym: decentralized GSPO fine-tuning of language models.
//!
//! `core` is the library (it never prints); `cmd` is the command-line layer over it.
#![deny(unsafe_code)] // allowed only in core::hash::multi (SIMD intrinsics)

pub mod cmd;
pub mod core;
