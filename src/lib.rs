//! gym: decentralized GSPO fine-tuning of language models.
//!
//! `core` is the library (it never prints); `cmd` is the command-line layer over it.
#![forbid(unsafe_code)]

pub mod cmd;
pub mod core;
