//! PORT_STATUS: the switch tells the controller a port was added, removed or changed.

use crate::codec::Put;
use crate::features::{put_phy_port10, put_port13, PhyPort};
use crate::header::{message, MsgType, Version};

/// OFPPR_*: what happened to the port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortReason {
    /// The port was added.
    Add = 0,
    /// The port was removed.
    Delete = 1,
    /// Some attribute of the port changed (link state, configuration).
    Modify = 2,
}

/// The PORT_STATUS message (asynchronous: xid 0) for `port`, described as FEATURES_REPLY
/// (1.0) or PORT_DESC (1.3) describe it.
pub fn encode_port_status(version: Version, reason: PortReason, port: &PhyPort) -> Vec<u8> {
    message(version, MsgType::PortStatus, 0, |b| {
        b.put_u8(reason as u8);
        b.put_zeros(7);
        match version {
            Version::Of10 => put_phy_port10(b, port),
            Version::Of13 => put_port13(b, port),
        }
    })
}

#[cfg(test)]
mod tests {
    use flow_table::MacAddr;

    use super::*;

    #[test]
    fn layouts() {
        let p = PhyPort {
            port_no: 2,
            hw_addr: MacAddr([2, 0, 0, 0, 0, 2]),
            name: "vm2".into(),
            config: 0,
            state: 1,
            curr: 0,
        };
        let m = encode_port_status(Version::Of10, PortReason::Modify, &p);
        assert_eq!(m.len(), 8 + 8 + 48);
        assert_eq!(m[8], 2);
        let m = encode_port_status(Version::Of13, PortReason::Delete, &p);
        assert_eq!(m.len(), 8 + 8 + 64);
        assert_eq!(&m[16..20], &[0, 0, 0, 2]);
    }
}
