//! FEATURES_REPLY: the datapath id and table count; in 1.0 also every port (`ofp_phy_port`),
//! which 1.3 moved to a PORT_DESC multipart reply.

use flow_table::MacAddr;

use crate::codec::Put;
use crate::header::{message, MsgType, Version};

/// OFPC_FLOW_STATS: per-flow counters are kept.
pub const CAP_FLOW_STATS: u32 = 1 << 0;
/// OFPC_TABLE_STATS.
pub const CAP_TABLE_STATS: u32 = 1 << 1;
/// OFPC_PORT_STATS.
pub const CAP_PORT_STATS: u32 = 1 << 2;

/// Length of a 1.0 `ofp_phy_port`.
pub const PHY_PORT10_LEN: usize = 48;
/// The most ports a 1.0 FEATURES_REPLY can list (its 16-bit length).
pub const MAX_PORTS10: usize = (65535 - 32) / PHY_PORT10_LEN;
/// Length of the port name field.
const NAME_LEN: usize = 16;

/// A port as 1.0's FEATURES_REPLY lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhyPort {
    /// OpenFlow port number (1.0 numbers are 16-bit; LOCAL is 0xfffe).
    pub port_no: u16,
    /// Hardware address.
    pub hw_addr: MacAddr,
    /// Name; cut to 15 bytes so it stays NUL-terminated.
    pub name: String,
    /// OFPPC_* bits (administratively down...).
    pub config: u32,
    /// OFPPS_* bits (link down...).
    pub state: u32,
    /// OFPPF_* bits of the current speed (0 when unknown, as for virtual ports).
    pub curr: u32,
}

/// The FEATURES_REPLY.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeaturesReply {
    /// Datapath id (low 48 bits: a MAC address by convention).
    pub datapath_id: u64,
    /// Packets buffered for PACKET_IN (0: vswitch sends whole packets).
    pub n_buffers: u32,
    /// Number of flow tables.
    pub n_tables: u8,
    /// OFPC_* capabilities.
    pub capabilities: u32,
    /// Ports, listed in 1.0 only.
    pub ports: Vec<PhyPort>,
}

/// 1.0's OFPAT_* support bits for the actions vswitch decodes: OUTPUT, SET_VLAN_VID,
/// SET_VLAN_PCP, STRIP_VLAN, SET_DL_SRC/DST, SET_NW_SRC/DST/TOS, SET_TP_SRC/DST.
const OF10_ACTIONS: u32 = 0x7ff;

impl FeaturesReply {
    /// The reply to a FEATURES_REQUEST with `xid`.
    pub fn encode(&self, version: Version, xid: u32) -> Vec<u8> {
        message(version, MsgType::FeaturesReply, xid, |b| {
            b.put_u64(self.datapath_id);
            b.put_u32(self.n_buffers);
            b.put_u8(self.n_tables);
            match version {
                Version::Of10 => {
                    b.put_zeros(3);
                    b.put_u32(self.capabilities);
                    b.put_u32(OF10_ACTIONS);
                    // A message holds at most 1364 ports; a peer seeing a full reply asks
                    // for the rest by PORT_DESC, as OVS does.
                    for p in self.ports.iter().take(MAX_PORTS10) {
                        put_phy_port10(b, p);
                    }
                }
                Version::Of13 => {
                    b.put_u8(0); // auxiliary_id: this is the main connection
                    b.put_zeros(2);
                    b.put_u32(self.capabilities);
                    b.put_u32(0); // reserved
                }
            }
        })
    }
}

/// Appends `p` as 1.3's `ofp_port` (64 bytes; the port number widened to 1.3's reserved
/// range), as PORT_DESC and PORT_STATUS carry it.
pub(crate) fn put_port13(b: &mut Vec<u8>, p: &PhyPort) {
    b.put_u32(crate::ports::to_of13(p.port_no as u32));
    b.put_zeros(4);
    b.extend_from_slice(&p.hw_addr.0);
    b.put_zeros(2);
    put_name(b, &p.name);
    b.put_u32(p.config);
    b.put_u32(p.state);
    b.put_u32(p.curr);
    b.put_zeros(12); // advertised, supported, peer
    b.put_zeros(8); // curr_speed, max_speed (kb/s; unknown for virtual ports)
}

fn put_name(b: &mut Vec<u8>, name: &str) {
    let name = name.as_bytes();
    let n = name.len().min(NAME_LEN - 1);
    b.extend_from_slice(&name[..n]);
    b.put_zeros(NAME_LEN - n);
}

/// Appends `p` as 1.0's `ofp_phy_port` (48 bytes), as FEATURES_REPLY and PORT_STATUS
/// carry it.
pub(crate) fn put_phy_port10(b: &mut Vec<u8>, p: &PhyPort) {
    b.put_u16(p.port_no);
    b.extend_from_slice(&p.hw_addr.0);
    put_name(b, &p.name);
    b.put_u32(p.config);
    b.put_u32(p.state);
    b.put_u32(p.curr);
    b.put_zeros(12); // advertised, supported, peer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply() -> FeaturesReply {
        FeaturesReply {
            datapath_id: 0x0000_0a0b_0c0d_0e0f,
            n_buffers: 0,
            n_tables: 254,
            capabilities: CAP_FLOW_STATS | CAP_PORT_STATS,
            ports: vec![PhyPort {
                port_no: 1,
                hw_addr: MacAddr([2, 0, 0, 0, 0, 1]),
                name: "a-very-long-port-name".into(),
                config: 0,
                state: 0,
                curr: 0,
            }],
        }
    }

    #[test]
    fn layouts() {
        let m13 = reply().encode(Version::Of13, 2);
        assert_eq!(m13.len(), 32);
        assert_eq!(&m13[..8], &[4, 6, 0, 32, 0, 0, 0, 2]);
        assert_eq!(&m13[8..16], &0x0a0b_0c0d_0e0fu64.to_be_bytes());
        assert_eq!(m13[20], 254);
        let m10 = reply().encode(Version::Of10, 2);
        assert_eq!(m10.len(), 32 + PHY_PORT10_LEN);
        assert_eq!(&m10[32..34], &[0, 1]);
        assert_eq!(&m10[40..56], b"a-very-long-por\0");
        let mut many = reply();
        many.ports = vec![many.ports[0].clone(); 2000];
        let m = many.encode(Version::Of10, 1);
        assert_eq!(m.len(), 32 + MAX_PORTS10 * PHY_PORT10_LEN);
    }
}
