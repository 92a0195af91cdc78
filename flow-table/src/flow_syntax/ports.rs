//! Port numbers and OpenFlow's reserved port names, as ovs-ofctl reads them.
//!
//! Port numbers are decimal and 16-bit (OpenFlow 1.0); OpenFlow 1.1's 32-bit spelling of the
//! reserved ports (`4294967294` for `LOCAL`) is taken too. `0xff00` and above are reserved:
//! only the named ones below can be used, and as an output only those vswitch implements.

use super::values::parse_dec;
use crate::actions::{Action, CONTROLLER_MAX_LEN};

/// OpenFlow's number for the bridge's own (internal) port, `LOCAL`.
pub const OFPP_LOCAL: u32 = 0xfffe;

/// `CONTROLLER`: the OpenFlow controller.
pub const OFPP_CONTROLLER: u32 = 0xfffd;
/// `NONE` (and `ANY`): no port.
pub const OFPP_NONE: u32 = 0xffff;

/// `IN_PORT`: the packet's ingress port.
const OFPP_IN_PORT: u32 = 0xfff8;
/// First reserved port number; ports below it are real ports.
const OFPP_MAX: u32 = 0xff00;

/// The reserved ports by name (any case), with their numbers.
const RESERVED: [(&str, u32); 9] = [
    ("IN_PORT", OFPP_IN_PORT),
    ("TABLE", 0xfff9),
    ("NORMAL", 0xfffa),
    ("FLOOD", 0xfffb),
    ("ALL", 0xfffc),
    ("CONTROLLER", OFPP_CONTROLLER),
    ("LOCAL", OFPP_LOCAL),
    ("ANY", 0xffff),
    ("NONE", 0xffff),
];

/// The number of a reserved port name, in any case.
pub(super) fn reserved(name: &str) -> Option<u32> {
    RESERVED
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, p)| *p)
}

/// Reads a port: a decimal number, a reserved name, or a name `ports` knows.
pub(super) fn parse_port(s: &str, ports: &dyn Fn(&str) -> Option<u32>) -> Result<u32, String> {
    if let Some(v) = parse_dec(s) {
        return match v {
            0..=0xffff => Ok(v as u32),
            // OpenFlow 1.1's numbers for the reserved ports.
            0xffff_ff00..=0xffff_ffff => Ok(v as u32 - 0xffff_0000),
            _ => Err(format!(
                "port number '{s}' out of range (0-65535, or 4294967040-4294967295)"
            )),
        };
    }
    if let Some(p) = reserved(s) {
        return Ok(p);
    }
    ports(s).ok_or_else(|| format!("unknown port '{s}'"))
}

/// What `output:PORT` (or a bare port) does for a port number read by [`parse_port`].
pub(super) fn output_to(port: u32, text: &str) -> Result<Action, String> {
    match port {
        OFPP_IN_PORT => Ok(Action::InPort),
        0xfffa => Ok(Action::Normal),
        0xfffb => Ok(Action::Flood),
        OFPP_LOCAL => Ok(Action::Output(OFPP_LOCAL)),
        // The whole packet, as ovs-ofctl reads `output:CONTROLLER`.
        OFPP_CONTROLLER => Ok(Action::Controller {
            max_len: CONTROLLER_MAX_LEN,
        }),
        0xfff9 | 0xfffc => Err(format!(
            "output to the reserved port '{text}' is not supported by vswitch"
        )),
        p if (OFPP_MAX..=0xffff).contains(&p) => Err(format!(
            "'{text}' is a reserved port number, not an output port"
        )),
        p => Ok(Action::Output(p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<u32> {
        None
    }

    #[test]
    fn reserved_ports() {
        assert_eq!(parse_port("LOCAL", &none), Ok(OFPP_LOCAL));
        assert_eq!(parse_port("local", &none), Ok(OFPP_LOCAL));
        assert_eq!(parse_port("4294967294", &none), Ok(OFPP_LOCAL));
        assert_eq!(parse_port("010", &none), Ok(10));
        assert!(parse_port("0x1", &none).is_err());
        assert!(parse_port("70000", &none).is_err());
        assert_eq!(output_to(0xfff8, "IN_PORT"), Ok(Action::InPort));
        assert_eq!(output_to(65534, "65534"), Ok(Action::Output(65534)));
        assert!(output_to(0xfffc, "ALL")
            .unwrap_err()
            .contains("not supported"));
        assert!(output_to(0xff00, "65280").is_err());
        assert!(output_to(0xffff, "ANY").is_err());
        assert_eq!(
            output_to(OFPP_CONTROLLER, "CONTROLLER"),
            Ok(Action::Controller { max_len: 65535 })
        );
    }
}
