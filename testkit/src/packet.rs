//! Ethernet frames as bytes: building test frames ([`build`]), finding their headers
//! ([`Layout`]), naming their fields to say how two frames differ ([`fields`], [`diff`]), the
//! Internet checksum ([`checksum`]), and the [`sample`] frames the port tests send.

pub mod build;
pub mod checksum;
pub mod sample;

use std::fmt::Write as _;

/// EtherTypes of VLAN tags: 802.1Q and 802.1ad (QinQ's outer tag).
pub const VLAN_TPIDS: [u16; 2] = [0x8100, 0x88a8];

/// Where a frame's headers are, as a switch parses them: at most two VLAN tags (as Open
/// vSwitch does), then IPv4, IPv6 or ARP, then a transport header unless the packet is a later
/// fragment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// Offsets of the VLAN tags (TPID then TCI), outermost first.
    pub tags: Vec<usize>,
    /// The EtherType after the tags (0 for a frame too short to have one).
    pub ethertype: u16,
    /// The network header, when it is IPv4, IPv6 or ARP and whole.
    pub l3: Option<usize>,
    /// The IP protocol (0 when not IP).
    pub proto: u8,
    /// IPv4 fragments: whether the packet is one, and whether it is a later one.
    pub frag: bool,
    pub frag_later: bool,
    /// The transport header, when the packet carries one (TCP, UDP, ICMP, ICMPv6).
    pub l4: Option<usize>,
    /// Where the IP payload starts, also in a later fragment (whose payload is not a
    /// transport header): Open vSwitch's datapath keeps this offset as the "L4" one.
    pub after_ip: Option<usize>,
}

impl Layout {
    /// Finds the headers of `b`.
    pub fn parse(b: &[u8]) -> Layout {
        let mut l = Layout::default();
        let be16 = |at: usize| b.get(at..at + 2).map(|s| u16::from_be_bytes([s[0], s[1]]));
        let mut off = 12;
        let Some(mut ethertype) = be16(off) else {
            return l;
        };
        while VLAN_TPIDS.contains(&ethertype) && l.tags.len() < 2 {
            match be16(off + 4) {
                Some(next) => {
                    l.tags.push(off);
                    off += 4;
                    ethertype = next;
                }
                None => break,
            }
        }
        l.ethertype = ethertype;
        let l3 = off + 2;
        match ethertype {
            0x0800 if b.len() >= l3 + 20 && b[l3] >> 4 == 4 && b[l3] & 0xf >= 5 => {
                let ihl = usize::from(b[l3] & 0xf) * 4;
                if b.len() < l3 + ihl {
                    return l;
                }
                l.l3 = Some(l3);
                l.proto = b[l3 + 9];
                let frag = u16::from_be_bytes([b[l3 + 6], b[l3 + 7]]);
                l.frag = frag & 0x3fff != 0;
                l.frag_later = frag & 0x1fff != 0;
                l.after_ip = Some(l3 + ihl);
                if !l.frag_later && has_l4(l.proto, false) {
                    l.l4 = Some(l3 + ihl);
                }
            }
            0x86dd if b.len() >= l3 + 40 => {
                l.l3 = Some(l3);
                l.proto = b[l3 + 6];
                l.after_ip = Some(l3 + 40);
                if has_l4(l.proto, true) {
                    l.l4 = Some(l3 + 40);
                }
            }
            0x0806 if b.len() >= l3 + 28 => l.l3 = Some(l3),
            _ => {}
        }
        if let Some(at) = l.l4 {
            if b.len() < at + l4_min(l.proto) {
                l.l4 = None;
            }
        }
        l
    }

    /// Whether the IPv4 header checksum is right (`None`: no IPv4 header).
    pub fn ip_checksum_ok(&self, b: &[u8]) -> Option<bool> {
        let l3 = self.l3.filter(|_| self.ethertype == 0x0800)?;
        let ihl = usize::from(b[l3] & 0xf) * 4;
        Some(checksum::checksum(&b[l3..l3 + ihl]) == 0)
    }

    /// Whether the TCP, UDP or ICMP checksum is right over the whole datagram (`None`: no
    /// transport header, a fragment, or a UDP datagram without a checksum).
    pub fn l4_checksum_ok(&self, b: &[u8]) -> Option<bool> {
        let (l3, l4) = (self.l3?, self.l4?);
        if self.frag {
            return None;
        }
        let v6 = self.ethertype == 0x86dd;
        let end = if v6 {
            l3 + 40 + usize::from(u16::from_be_bytes([b[l3 + 4], b[l3 + 5]]))
        } else {
            l3 + usize::from(u16::from_be_bytes([b[l3 + 2], b[l3 + 3]]))
        };
        let seg = b.get(l4..end)?;
        if self.proto == 17 && seg[6..8] == [0, 0] {
            return None;
        }
        let mut s = 0;
        if v6 {
            s = checksum::sum(&b[l3 + 8..l3 + 40], s);
            s = checksum::sum(&(seg.len() as u32).to_be_bytes(), s);
            s = checksum::sum(&[0, 0, 0, self.proto], s);
        } else if self.proto != 1 {
            s = checksum::sum(&b[l3 + 12..l3 + 20], s);
            s = checksum::sum(&[0, self.proto], s);
            s = checksum::sum(&(seg.len() as u16).to_be_bytes(), s);
        }
        Some(checksum::finish(checksum::sum(seg, s)) == 0)
    }

    /// Whether every checksum the frame has is right.
    pub fn checksums_ok(&self, b: &[u8]) -> bool {
        self.ip_checksum_ok(b) != Some(false) && self.l4_checksum_ok(b) != Some(false)
    }
}

fn has_l4(proto: u8, v6: bool) -> bool {
    matches!((proto, v6), (6 | 17, _) | (1, false) | (58, true))
}

fn l4_min(proto: u8) -> usize {
    match proto {
        6 => 20,
        17 => 8,
        _ => 4,
    }
}

/// Lower-case hex of `b`.
pub fn hex(b: &[u8]) -> String {
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

/// The bytes of a hex string (whitespace ignored).
pub fn unhex(s: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits in {s:?}"));
    }
    digits
        .chunks(2)
        .map(|p| {
            std::str::from_utf8(p)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| format!("not hex: {s:?}"))
        })
        .collect()
}

/// A MAC address as `xx:xx:xx:xx:xx:xx`.
pub fn mac(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The frame's fields, named, in header order: what a reader compares to see how two frames
/// differ. All the VLAN tags are one field, `vlans` (so a frame with one tag more differs in
/// that, not in every field behind it); the headers behind them are read as if untagged.
/// Checksums carry whether they are right (`0x1234 ok`, `0x1234 bad`).
pub fn fields(frame: &[u8]) -> Vec<(&'static str, String)> {
    let mut f = Vec::new();
    if frame.len() < 14 {
        f.push(("short", hex(frame)));
        return f;
    }
    f.push(("eth_dst", mac(&frame[0..6])));
    f.push(("eth_src", mac(&frame[6..12])));
    let tags: Vec<String> = vlan_tags(frame)
        .into_iter()
        .map(|(tpid, tci)| {
            let dei = if tci & 0x1000 != 0 { ",dei=1" } else { "" };
            format!("0x{tpid:04x}(vid={},pcp={}{dei})", tci & 0xfff, tci >> 13)
        })
        .collect();
    let off = 12 + 4 * tags.len();
    f.push((
        "vlans",
        if tags.is_empty() {
            "none".into()
        } else {
            tags.join(" ")
        },
    ));
    // The rest as an untagged frame.
    let mut b = frame[..12].to_vec();
    b.extend_from_slice(&frame[off..]);
    let b = &b[..];
    let l = Layout::parse(b);
    f.push(("eth_type", format!("0x{:04x}", l.ethertype)));
    let csum = |at: usize, ok: Option<bool>| {
        let ok = match ok {
            Some(true) => " ok",
            Some(false) => " bad",
            None => "",
        };
        format!("0x{}{ok}", hex(&b[at..at + 2]))
    };
    let mut rest = l.l3.unwrap_or(14);
    if let Some(n) = l.l3 {
        match l.ethertype {
            0x0800 => {
                f.push(("ip_tos", format!("0x{:02x}", b[n + 1])));
                f.push(("ip_len", hex(&b[n + 2..n + 4])));
                f.push(("ip_frag", hex(&b[n + 6..n + 8])));
                f.push(("ip_ttl", b[n + 8].to_string()));
                f.push(("ip_proto", b[n + 9].to_string()));
                f.push(("ip_csum", csum(n + 10, l.ip_checksum_ok(b))));
                f.push(("ip_src", dotted(&b[n + 12..n + 16])));
                f.push(("ip_dst", dotted(&b[n + 16..n + 20])));
                rest = n + usize::from(b[n] & 0xf) * 4;
            }
            0x86dd => {
                let w = u32::from_be_bytes([b[n], b[n + 1], b[n + 2], b[n + 3]]);
                f.push(("ipv6_tclass", format!("0x{:02x}", (w >> 20) & 0xff)));
                f.push(("ipv6_label", format!("0x{:05x}", w & 0xfffff)));
                f.push(("ipv6_plen", hex(&b[n + 4..n + 6])));
                f.push(("ipv6_next", b[n + 6].to_string()));
                f.push(("ipv6_hlimit", b[n + 7].to_string()));
                f.push(("ipv6_src", hex(&b[n + 8..n + 24])));
                f.push(("ipv6_dst", hex(&b[n + 24..n + 40])));
                rest = n + 40;
            }
            _ => {
                f.push(("arp_op", hex(&b[n + 6..n + 8])));
                f.push(("arp_sha", mac(&b[n + 8..n + 14])));
                f.push(("arp_spa", dotted(&b[n + 14..n + 18])));
                f.push(("arp_tha", mac(&b[n + 18..n + 24])));
                f.push(("arp_tpa", dotted(&b[n + 24..n + 28])));
                rest = n + 28;
            }
        }
    }
    if let Some(t) = l.l4 {
        let l4ok = l.l4_checksum_ok(b);
        match l.proto {
            6 | 17 => {
                f.push(("l4_src", u16::from_be_bytes([b[t], b[t + 1]]).to_string()));
                f.push((
                    "l4_dst",
                    u16::from_be_bytes([b[t + 2], b[t + 3]]).to_string(),
                ));
                let at = if l.proto == 6 { t + 16 } else { t + 6 };
                f.push(("l4_csum", csum(at, l4ok)));
                rest = if l.proto == 6 { t + 20 } else { t + 8 };
            }
            _ => {
                f.push(("icmp_type", b[t].to_string()));
                f.push(("icmp_code", b[t + 1].to_string()));
                f.push(("l4_csum", csum(t + 2, l4ok)));
                rest = t + 4;
            }
        }
    }
    f.push(("payload", hex(b.get(rest..).unwrap_or(&[]))));
    f
}

/// Every VLAN tag of the frame as (TPID, TCI), outermost first (however many there are).
pub fn vlan_tags(frame: &[u8]) -> Vec<(u16, u16)> {
    let mut tags = Vec::new();
    let mut off = 12;
    while let Some(t) = frame.get(off..off + 6) {
        let tpid = u16::from_be_bytes([t[0], t[1]]);
        if !VLAN_TPIDS.contains(&tpid) {
            break;
        }
        tags.push((tpid, u16::from_be_bytes([t[2], t[3]])));
        off += 4;
    }
    tags
}

/// The names of the fields in which two frames differ (a field only one has counts).
pub fn diff(a: &[u8], b: &[u8]) -> Vec<&'static str> {
    let (fa, fb) = (fields(a), fields(b));
    let mut names: Vec<&'static str> = Vec::new();
    for (name, _) in fa.iter().chain(&fb) {
        let va = fa.iter().find(|f| f.0 == *name).map(|f| &f.1);
        let vb = fb.iter().find(|f| f.0 == *name).map(|f| &f.1);
        if va != vb && !names.contains(name) {
            names.push(name);
        }
    }
    names
}

fn dotted(b: &[u8]) -> String {
    format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_of_tagged_and_fragmented_frames() {
        // 802.1ad + 802.1Q over an IPv4 later fragment (offset 8 words): no transport header.
        let f = unhex(
            "ffffffffffff020000000001 88a80005 81002003 0800
             4500001c0001200840110000 0a000001 0a000002 03e807d0 00080000",
        )
        .unwrap();
        let l = Layout::parse(&f);
        assert_eq!(l.tags, vec![12, 16]);
        assert_eq!((l.ethertype, l.l3, l.proto), (0x0800, Some(22), 17));
        assert!(l.frag && l.frag_later);
        assert_eq!(l.l4, None);
        assert_eq!(l.after_ip, Some(42));
        assert_eq!(
            diff(&f, &f[..f.len() - 1]),
            vec!["payload"],
            "a cut frame differs in its payload"
        );
    }

    #[test]
    fn the_diff_names_the_fields() {
        let a =
            unhex("ffffffffffff02000000000108004500001400010000401100000a0000010a000002").unwrap();
        let mut b = a.clone();
        b[0] = 0x01;
        b[22] = 63;
        let d = diff(&a, &b);
        assert_eq!(d, vec!["eth_dst", "ip_ttl"]);
        // One tag more is one field, however many tags there are.
        let tagged = |n: usize| {
            let mut t = a.clone();
            for _ in 0..n {
                t.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
            }
            t
        };
        assert_eq!(diff(&tagged(2), &tagged(3)), vec!["vlans"]);
        assert_eq!(diff(&a, &tagged(1)), vec!["vlans"]);
        assert_eq!(hex(&unhex("0aFF").unwrap()), "0aff");
    }
}
