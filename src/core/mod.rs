//! The gym library. Nothing in here prints: every function returns values or typed errors, and
//! the `cmd` layer decides what the user sees.

pub mod atomic;
pub mod blas;
pub mod chat;
pub mod cpu;
pub mod delta;
pub mod device;
pub mod error;
pub mod hash;
pub mod hub;
pub mod ipfs;
pub mod keys;
pub mod model;
pub mod net;
pub mod orchestrator;
pub mod plot;
pub mod reward;
pub mod ring;
pub mod safetensors_io;
pub mod timefmt;
pub mod train;
pub mod validate;
