//! Open vSwitch's datapath actions as `ofproto/trace` prints them ("Datapath actions: ..."),
//! parsed into [`OdpAction`]s. Only what the flow generator's OpenFlow actions can produce is
//! understood; anything else is an [`Unsupported`] error naming it, so a test learns what to
//! add rather than guessing.

use std::fmt;

/// One datapath action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OdpAction {
    /// Send a copy of the packet as it is now to this datapath port.
    Output(u32),
    /// Insert a VLAN tag after the MAC addresses. `tci` has the CFI bit (0x1000) set as
    /// Open vSwitch's "tag present" mark; the frame gets the tag without it.
    PushVlan { tpid: u16, tci: u16 },
    /// Remove the outermost VLAN tag.
    PopVlan,
    /// Rewrite fields of one header, each under its mask.
    Set(Header, Vec<SetField>),
    /// A packet-in to the controller (`userspace(...,controller(...))`): nothing leaves a
    /// port. The text is kept for reports.
    Controller(String),
}

/// A header a `set(...)` action rewrites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Header {
    Eth,
    Ipv4,
    Ipv6,
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
    Arp,
}

/// A field of a `set(...)`: its name in the header, the new value and the bits to change, as
/// big-endian bytes of the field's width.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetField {
    pub name: &'static str,
    pub value: Vec<u8>,
    pub mask: Vec<u8>,
}

/// A datapath action (or field) this parser does not know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported(pub String);

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unsupported datapath action: {}", self.0)
    }
}

impl std::error::Error for Unsupported {}

/// How a field's value is written.
#[derive(Clone, Copy)]
enum Kind {
    Mac,
    Ipv4,
    Ipv6,
    /// An integer of this many bytes (decimal or 0x hex).
    Int(usize),
}

/// The fields of each header that `set()` may name, with their kinds.
fn field_kind(h: Header, name: &str) -> Option<(&'static str, Kind)> {
    use Kind::*;
    let table: &[(&'static str, Kind)] = match h {
        Header::Eth => &[("src", Mac), ("dst", Mac)],
        Header::Ipv4 => &[
            ("src", Ipv4),
            ("dst", Ipv4),
            ("proto", Int(1)),
            ("tos", Int(1)),
            ("ttl", Int(1)),
        ],
        Header::Ipv6 => &[
            ("src", Ipv6),
            ("dst", Ipv6),
            ("label", Int(4)),
            ("proto", Int(1)),
            ("tclass", Int(1)),
            ("hlimit", Int(1)),
        ],
        Header::Tcp | Header::Udp => &[("src", Int(2)), ("dst", Int(2))],
        Header::Icmp | Header::Icmpv6 => &[("type", Int(1)), ("code", Int(1))],
        Header::Arp => &[
            ("sip", Ipv4),
            ("tip", Ipv4),
            ("op", Int(2)),
            ("sha", Mac),
            ("tha", Mac),
        ],
    };
    table.iter().copied().find(|(n, _)| *n == name)
}

/// Parses the text after "Datapath actions: ".
pub fn parse(text: &str) -> Result<Vec<OdpAction>, Unsupported> {
    let text = text.trim();
    if text == "drop" || text.is_empty() {
        return Ok(Vec::new());
    }
    split_top(text)
        .into_iter()
        .map(|a| parse_one(a.trim()))
        .collect()
}

fn parse_one(a: &str) -> Result<OdpAction, Unsupported> {
    let unsupported = || Unsupported(a.to_owned());
    if let Ok(port) = a.parse::<u32>() {
        return Ok(OdpAction::Output(port));
    }
    if a == "pop_vlan" {
        return Ok(OdpAction::PopVlan);
    }
    let (name, args) = call(a).ok_or_else(unsupported)?;
    match name {
        "push_vlan" => {
            let (mut tpid, mut vid, mut pcp, mut cfi) = (0x8100u16, 0u16, 0u16, 1u16);
            for kv in split_top(args) {
                let (k, v) = kv.split_once('=').ok_or_else(unsupported)?;
                let v = int(v).ok_or_else(unsupported)?;
                match k {
                    "tpid" => tpid = v as u16,
                    "vid" if v < 4096 => vid = v as u16,
                    "pcp" if v < 8 => pcp = v as u16,
                    "cfi" if v < 2 => cfi = v as u16,
                    _ => return Err(unsupported()),
                }
            }
            Ok(OdpAction::PushVlan {
                tpid,
                tci: pcp << 13 | cfi << 12 | vid,
            })
        }
        "set" => {
            let (hname, fields) = call(args).ok_or_else(unsupported)?;
            let header = match hname {
                "eth" => Header::Eth,
                "ipv4" => Header::Ipv4,
                "ipv6" => Header::Ipv6,
                "tcp" => Header::Tcp,
                "udp" => Header::Udp,
                "icmp" => Header::Icmp,
                "icmpv6" => Header::Icmpv6,
                "arp" => Header::Arp,
                _ => return Err(unsupported()),
            };
            let fields = split_top(fields)
                .into_iter()
                .map(|kv| {
                    let (k, v) = kv.split_once('=').ok_or_else(unsupported)?;
                    let (name, kind) = field_kind(header, k).ok_or_else(unsupported)?;
                    let (value, mask) = match v.split_once('/') {
                        Some((v, m)) => (value(kind, v), value(kind, m)),
                        None => {
                            let v = value(kind, v);
                            let m = v.as_ref().map(|v| vec![0xff; v.len()]);
                            (v, m)
                        }
                    };
                    Ok(SetField {
                        name,
                        value: value.ok_or_else(unsupported)?,
                        mask: mask.ok_or_else(unsupported)?,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(OdpAction::Set(header, fields))
        }
        "userspace" if split_top(args).iter().any(|a| a.starts_with("controller(")) => {
            Ok(OdpAction::Controller(a.to_owned()))
        }
        _ => Err(unsupported()),
    }
}

/// `name(args)` split into its name and the text between the outer parentheses.
fn call(a: &str) -> Option<(&str, &str)> {
    let open = a.find('(')?;
    let inner = a[open + 1..].strip_suffix(')')?;
    Some((&a[..open], inner))
}

/// Splits at the commas outside parentheses, without an empty last piece.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = split_top_level(s);
    if out.last() == Some(&"") {
        out.pop();
    }
    out
}

/// Splits at the commas outside parentheses (`resubmit(,1)` is one piece), in OVS's datapath
/// actions and in OpenFlow action lists alike; every piece, an empty last one too.
pub(crate) fn split_top_level(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0i32, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn int(v: &str) -> Option<u64> {
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

fn value(kind: Kind, v: &str) -> Option<Vec<u8>> {
    match kind {
        Kind::Mac => {
            let b: Vec<u8> = v
                .split(':')
                .map(|x| u8::from_str_radix(x, 16).ok())
                .collect::<Option<_>>()?;
            (b.len() == 6).then_some(b)
        }
        Kind::Ipv4 => v
            .parse::<std::net::Ipv4Addr>()
            .ok()
            .map(|a| a.octets().to_vec()),
        Kind::Ipv6 => v
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|a| a.octets().to_vec()),
        Kind::Int(n) => {
            let x = int(v)?;
            (n == 8 || x >> (8 * n) == 0).then(|| x.to_be_bytes()[8 - n..].to_vec())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_of_many_actions() {
        let a = parse(
            "set(ipv4(src=1.2.3.4,tos=0x8/0xfc)),set(udp(dst=99)),2,push_vlan(vid=5,pcp=0),3,\
             set(eth(src=01:80:c2:00:00:01)),pop_vlan,push_vlan(tpid=0x88a8,vid=0,pcp=3),100,\
             userspace(pid=0,controller(reason=2,dont_send=0,continuation=0,recirc_id=1,rule_cookie=0,controller_id=0,max_len=65535))",
        )
        .unwrap();
        assert_eq!(a.len(), 10);
        assert_eq!(
            a[0],
            OdpAction::Set(
                Header::Ipv4,
                vec![
                    SetField {
                        name: "src",
                        value: vec![1, 2, 3, 4],
                        mask: vec![0xff; 4]
                    },
                    SetField {
                        name: "tos",
                        value: vec![8],
                        mask: vec![0xfc]
                    }
                ]
            )
        );
        assert_eq!(a[2], OdpAction::Output(2));
        assert_eq!(
            a[3],
            OdpAction::PushVlan {
                tpid: 0x8100,
                tci: 0x1005
            }
        );
        assert_eq!(a[6], OdpAction::PopVlan);
        assert_eq!(
            a[7],
            OdpAction::PushVlan {
                tpid: 0x88a8,
                tci: 0x7000
            }
        );
        assert!(matches!(a[9], OdpAction::Controller(_)));
        assert_eq!(parse("drop").unwrap(), vec![]);
    }

    #[test]
    fn masked_and_ipv6_fields() {
        let a = parse("set(ipv6(tclass=0x20/0xfc,hlimit=7,src=2001:db8::1)),set(eth(dst=01:00:00:00:00:00/01:00:00:00:00:00))").unwrap();
        let OdpAction::Set(Header::Ipv6, f) = &a[0] else {
            panic!("{a:?}")
        };
        assert_eq!((f[0].value[0], f[0].mask[0]), (0x20, 0xfc));
        assert_eq!(f[2].value.len(), 16);
        let OdpAction::Set(Header::Eth, f) = &a[1] else {
            panic!("{a:?}")
        };
        assert_eq!(f[0].mask, vec![1, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn anything_else_is_named_as_unsupported() {
        assert_eq!(
            parse("2,recirc(0x1)").unwrap_err(),
            Unsupported("recirc(0x1)".into())
        );
        assert_eq!(
            parse("set(ipv4(frag=no))").unwrap_err().0,
            "set(ipv4(frag=no))"
        );
        assert!(parse("userspace(pid=0,sflow(vid=0))").is_err());
        assert!(parse("clone(1)").is_err());
    }
}
