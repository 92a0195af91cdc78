//! The ovs-ofctl flow parser on arbitrary text, in its three modes: never panics, errors point
//! inside the text, and a flow that parses prints back to text that parses to the same flow.
#![no_main]

use flow_table::flow_syntax::{format_actions, format_match_named, parse_flow, FlowMode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let ports = |name: &str| match name {
        "p1" => Some(1),
        "vm-a" => Some(7),
        _ => None,
    };
    for mode in [FlowMode::Add, FlowMode::Modify, FlowMode::Delete] {
        match parse_flow(text, mode, &ports) {
            Ok(f) => {
                if mode != FlowMode::Add {
                    continue;
                }
                let m = format_match_named(&f.r#match, &|_| None);
                let again = format!(
                    "priority={}{}{} actions={}",
                    f.priority,
                    if m.is_empty() { "" } else { "," },
                    m,
                    format_actions(&f.actions, &|_| None)
                );
                let g = parse_flow(&again, mode, &ports)
                    .unwrap_or_else(|e| panic!("{again:?} (from {text:?}) does not parse: {e}"));
                assert_eq!(f.r#match, g.r#match, "{text:?} -> {again:?}");
                assert_eq!(f.actions, g.actions, "{text:?} -> {again:?}");
            }
            Err(e) => assert!(e.pos <= text.len(), "error position beyond the text"),
        }
    }
});
