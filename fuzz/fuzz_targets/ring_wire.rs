//! Feeds arbitrary bytes to the ring message decoder (`ring::wire::decode`), as a member's
//! reader task does with every decrypted frame. Properties (`gym::fuzzing::ring_wire`): no
//! panic, allocation bounded by the frame, accepted frames are canonical (re-encode to the
//! same bytes), `decode_split` agrees with `decode`. Seeds: `cargo run --example fuzz-seeds`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gym::fuzzing::ring_wire(data));
