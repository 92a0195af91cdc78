//! Flow key extraction on arbitrary frames (what a PMD does to every received packet): never
//! panics nor reads out of bounds, a frame called well formed has its Ethernet header, and the
//! key depends on the input port only through `in_port`.
#![no_main]

use flow_table::{extract, extract_checked, FlowKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (port, frame) = match data.split_first() {
        Some((p, f)) => (*p as u32, f),
        None => (0, data),
    };
    let mut k = FlowKey::default();
    let ok = extract_checked(frame, port, &mut k);
    assert!(
        !ok || frame.len() >= 14,
        "a {}-byte frame called well formed",
        frame.len()
    );
    let mut other = extract(frame, port.wrapping_add(1));
    assert_eq!(other.in_port, port.wrapping_add(1));
    other.in_port = port;
    assert_eq!(k.words(), other.words(), "the key depends on the port");
    let _ = k.hash();
});
