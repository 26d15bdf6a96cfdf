//! Feeds arbitrary bytes to the sum-file reader (docs/ring-protocol.md "Sum files"): what a
//! leader reads from a group ring before bringing it into a leader ring. Properties
//! (`gym::fuzzing::ring_sumfile`): no panic; an accepted file re-encodes to one that decodes to
//! the same content, and that re-encoding is stable. Seed: the known-answer vector.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gym::fuzzing::ring_sumfile(data));
