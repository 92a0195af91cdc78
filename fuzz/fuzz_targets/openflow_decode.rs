//! Every OpenFlow decoder on arbitrary bytes (as one message, and as a match, action list
//! and instruction list): never panics, and whatever decodes re-encodes to the same value.
//! Seeds: messages ovs-ofctl 3.1 sent (fuzz/corpus/openflow_decode/). The same check runs
//! on stable in openflow/tests/decode_fuzz.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    openflow::fuzzing::decode_all(data);
});
