//! Named fields of the flow key: names as ovs-ofctl writes them, offsets, widths and formatting.
//!
//! Lets code outside the hot path (formatting, the flow-string parser, masks built by name)
//! address a field without a hand-written `match` per use.

use std::fmt;
use std::mem::offset_of;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::key::{FlowKey, FlowMask};
use crate::wire::MacAddr;

/// How a field's value is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// Decimal integer.
    Dec,
    /// Hexadecimal integer (`0x0800`).
    Hex,
    /// MAC address.
    Mac,
    /// IPv4 address.
    Ipv4,
    /// IPv6 address.
    Ipv6,
}

/// A field of [`FlowKey`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // each variant is the field of the same name in FlowKey
pub enum Field {
    InPort,
    EthType,
    VlanTci,
    EthDst,
    EthSrc,
    InnerVlanTci,
    NwProto,
    NwTos,
    NwTtl,
    NwFrag,
    TcpFlags,
    NwSrc,
    NwDst,
    TpSrc,
    TpDst,
    Ipv6Src,
    Ipv6Dst,
    ArpSha,
    ArpTha,
    TunSrc,
    TunId,
    TunDst,
    Ipv6Label,
}

impl Field {
    /// Every field, in key order.
    pub const ALL: [Field; 23] = [
        Field::InPort,
        Field::EthType,
        Field::VlanTci,
        Field::EthDst,
        Field::EthSrc,
        Field::InnerVlanTci,
        Field::NwProto,
        Field::NwTos,
        Field::NwTtl,
        Field::NwFrag,
        Field::TcpFlags,
        Field::NwSrc,
        Field::NwDst,
        Field::TpSrc,
        Field::TpDst,
        Field::Ipv6Src,
        Field::Ipv6Dst,
        Field::ArpSha,
        Field::ArpTha,
        Field::TunSrc,
        Field::TunId,
        Field::TunDst,
        Field::Ipv6Label,
    ];

    /// The name ovs-ofctl uses for the field.
    pub fn name(self) -> &'static str {
        match self {
            Field::InPort => "in_port",
            Field::EthType => "dl_type",
            Field::VlanTci => "vlan_tci",
            Field::EthDst => "dl_dst",
            Field::EthSrc => "dl_src",
            Field::InnerVlanTci => "inner_vlan_tci",
            Field::NwProto => "nw_proto",
            Field::NwTos => "nw_tos",
            Field::NwTtl => "nw_ttl",
            Field::NwFrag => "nw_frag",
            Field::TcpFlags => "tcp_flags",
            Field::NwSrc => "nw_src",
            Field::NwDst => "nw_dst",
            Field::TpSrc => "tp_src",
            Field::TpDst => "tp_dst",
            Field::Ipv6Src => "ipv6_src",
            Field::Ipv6Dst => "ipv6_dst",
            Field::ArpSha => "arp_sha",
            Field::ArpTha => "arp_tha",
            Field::TunSrc => "tun_src",
            Field::TunId => "tun_id",
            Field::TunDst => "tun_dst",
            Field::Ipv6Label => "ipv6_label",
        }
    }

    /// Looks a field up by its ovs-ofctl name.
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Byte offset and width in [`FlowKey`].
    pub fn span(self) -> (usize, usize) {
        match self {
            Field::InPort => (offset_of!(FlowKey, in_port), 4),
            Field::EthType => (offset_of!(FlowKey, eth_type), 2),
            Field::VlanTci => (offset_of!(FlowKey, vlan_tci), 2),
            Field::EthDst => (offset_of!(FlowKey, eth_dst), 6),
            Field::EthSrc => (offset_of!(FlowKey, eth_src), 6),
            Field::InnerVlanTci => (offset_of!(FlowKey, inner_vlan_tci), 2),
            Field::NwProto => (offset_of!(FlowKey, nw_proto), 1),
            Field::NwTos => (offset_of!(FlowKey, nw_tos), 1),
            Field::NwTtl => (offset_of!(FlowKey, nw_ttl), 1),
            Field::NwFrag => (offset_of!(FlowKey, nw_frag), 1),
            Field::TcpFlags => (offset_of!(FlowKey, tcp_flags), 2),
            Field::NwSrc => (offset_of!(FlowKey, nw_src), 4),
            Field::NwDst => (offset_of!(FlowKey, nw_dst), 4),
            Field::TpSrc => (offset_of!(FlowKey, tp_src), 2),
            Field::TpDst => (offset_of!(FlowKey, tp_dst), 2),
            Field::Ipv6Src => (offset_of!(FlowKey, ipv6_src), 16),
            Field::Ipv6Dst => (offset_of!(FlowKey, ipv6_dst), 16),
            Field::ArpSha => (offset_of!(FlowKey, arp_sha), 6),
            Field::ArpTha => (offset_of!(FlowKey, arp_tha), 6),
            Field::TunSrc => (offset_of!(FlowKey, tun_src), 4),
            Field::TunId => (offset_of!(FlowKey, tun_id), 8),
            Field::TunDst => (offset_of!(FlowKey, tun_dst), 4),
            Field::Ipv6Label => (offset_of!(FlowKey, ipv6_label), 4),
        }
    }

    /// How values of the field are written.
    pub fn kind(self) -> FieldKind {
        match self {
            Field::EthType | Field::VlanTci | Field::InnerVlanTci | Field::TcpFlags => {
                FieldKind::Hex
            }
            Field::NwFrag | Field::TunId | Field::Ipv6Label => FieldKind::Hex,
            Field::EthDst | Field::EthSrc | Field::ArpSha | Field::ArpTha => FieldKind::Mac,
            Field::NwSrc | Field::NwDst | Field::TunSrc | Field::TunDst => FieldKind::Ipv4,
            Field::Ipv6Src | Field::Ipv6Dst => FieldKind::Ipv6,
            _ => FieldKind::Dec,
        }
    }

    /// All bits of the field set: its full mask value.
    pub fn all_ones(self) -> u128 {
        let bits = self.span().1 * 8;
        if bits == 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        }
    }

    /// True when integers of this field are stored in host order (rather than as a byte array
    /// in network order).
    fn is_int(self) -> bool {
        !matches!(self.kind(), FieldKind::Mac | FieldKind::Ipv6)
    }

    /// The field's value in `key`, as an unsigned integer (arrays read big-endian).
    pub fn get(self, key: &FlowKey) -> u128 {
        let (off, len) = self.span();
        let b = &key.bytes()[off..off + len];
        if self.is_int() {
            let mut buf = [0u8; 8];
            buf[..len].copy_from_slice(b);
            u64::from_le_bytes(if cfg!(target_endian = "little") {
                buf
            } else {
                let mut be = [0u8; 8];
                be[8 - len..].copy_from_slice(b);
                be
            }) as u128
        } else {
            b.iter().fold(0u128, |acc, &x| (acc << 8) | x as u128)
        }
    }

    /// Sets the field's value in `key` (bits beyond the field's width are ignored).
    pub fn set(self, key: &mut FlowKey, value: u128) {
        let (off, len) = self.span();
        let value = value & self.all_ones();
        let bytes = bytemuck::bytes_of_mut(key);
        let dst = &mut bytes[off..off + len];
        if self.is_int() {
            let v = value as u64;
            if cfg!(target_endian = "little") {
                dst.copy_from_slice(&v.to_le_bytes()[..len]);
            } else {
                dst.copy_from_slice(&v.to_be_bytes()[8 - len..]);
            }
        } else {
            for (i, d) in dst.iter_mut().enumerate() {
                *d = (value >> (8 * (len - 1 - i))) as u8;
            }
        }
    }

    /// Writes a value of this field the way ovs-ofctl does.
    pub fn fmt_value(self, v: u128, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind() {
            FieldKind::Dec => write!(f, "{v}"),
            FieldKind::Hex => write!(f, "{v:#x}"),
            FieldKind::Ipv4 => write!(f, "{}", Ipv4Addr::from(v as u32)),
            FieldKind::Ipv6 => write!(f, "{}", Ipv6Addr::from(v)),
            FieldKind::Mac => write!(f, "{}", MacAddr::from_u64(v as u64)),
        }
    }
}

/// Writes `name=value[/mask]` for every field: those set in `mask` when one is given, else the
/// non-zero ones.
pub fn fmt_fields(
    key: &FlowKey,
    mask: Option<&FlowMask>,
    f: &mut fmt::Formatter<'_>,
) -> fmt::Result {
    let mut first = true;
    for field in Field::ALL {
        let v = field.get(key);
        let m = mask.map_or(field.all_ones(), |m| field.get(&m.0));
        if m == 0 || (mask.is_none() && v == 0) {
            continue;
        }
        if !first {
            f.write_str(",")?;
        }
        first = false;
        write!(f, "{}=", field.name())?;
        field.fmt_value(v & m, f)?;
        if m != field.all_ones() {
            f.write_str("/")?;
            field.fmt_value(m, f)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_set_round_trip_for_every_field() {
        for field in Field::ALL {
            let mut k = FlowKey::ZERO;
            let v = 0x0123_4567_89ab_cdef_1122_3344_5566_7788u128 & field.all_ones();
            field.set(&mut k, v);
            assert_eq!(field.get(&k), v, "{}", field.name());
            // No other field changed.
            for other in Field::ALL.into_iter().filter(|o| *o != field) {
                assert_eq!(
                    other.get(&k),
                    0,
                    "{} leaked into {}",
                    field.name(),
                    other.name()
                );
            }
        }
    }

    #[test]
    fn typed_access_agrees_with_named_access() {
        let mut k = FlowKey::ZERO;
        k.eth_type = 0x0800;
        k.eth_src = MacAddr([0, 1, 2, 3, 4, 5]);
        k.nw_dst = 0x0a00_0001;
        assert_eq!(Field::EthType.get(&k), 0x0800);
        assert_eq!(Field::EthSrc.get(&k), 0x0001_0203_0405);
        assert_eq!(Field::NwDst.get(&k), 0x0a00_0001);
        assert_eq!(Field::from_name("nw_dst"), Some(Field::NwDst));
        assert_eq!(
            format!("{k:?}"),
            "FlowKey(dl_type=0x800,dl_src=00:01:02:03:04:05,nw_dst=10.0.0.1)"
        );
    }
}
