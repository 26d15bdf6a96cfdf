//! `gym ring`: authenticated, encrypted, verifiable ring all-reduce of deltas. The protocol is
//! specified in `docs/ring-protocol.md`. `proto` and `crypto` are state machines without I/O;
//! `net` is the thin tokio driver around them.

pub mod audit;
pub mod codec;
pub mod config;
pub mod crypto;
pub mod fixed;
pub mod io;
pub mod net;
#[cfg(test)]
mod net_tests;
pub mod proto;
pub mod quant;
pub mod sketch;
pub mod sumfile;
pub mod wire;
