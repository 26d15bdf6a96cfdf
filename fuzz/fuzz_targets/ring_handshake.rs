//! Feeds arbitrary bytes to the ring handshake's state machines: `Hello` to a responder,
//! `Accept` (or `Reject`) to an initiator, `Finish` to a responder that answered a `Hello`
//! (`gym::fuzzing::ring_handshake`). No panic; what is accepted names the expected peer.
//! Seeds: `cargo run --example fuzz-seeds`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gym::fuzzing::ring_handshake(data));
