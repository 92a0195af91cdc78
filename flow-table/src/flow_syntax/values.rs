//! Values as ovs-ofctl reads them: integers in C's notations, addresses, masks.
//!
//! ovs-ofctl reads most numbers the way C's `strtoull(s, NULL, 0)` does (`0x` hex, a leading
//! `0` octal, else decimal; `+` allowed), but port and table numbers in decimal only (`010` is
//! ten there). Both are mirrored here, so a number means the same in both switches.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::wire::MacAddr;

/// Reads an unsigned integer as C's `strtoull` with base 0 does: `0x1f`, `017` (octal), `15`,
/// and `-N` as 2^64 - N (so `-1` is all ones, which only 64-bit fields take).
pub(super) fn parse_uint(s: &str) -> Option<u128> {
    if let Some(n) = s.strip_prefix('-') {
        let n = parse_unsigned(n)?;
        let n = u64::try_from(n).ok()?;
        return Some(0u64.wrapping_sub(n) as u128);
    }
    parse_unsigned(s.strip_prefix('+').unwrap_or(s))
}

/// `parse_uint` without the sign.
fn parse_unsigned(s: &str) -> Option<u128> {
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u128::from_str_radix(digits, radix).ok()
}

/// Reads a decimal integer (leading zeros and `+` allowed), as ports and tables are read.
pub(super) fn parse_dec(s: &str) -> Option<u128> {
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Reads an integer (C notation) no greater than `max`.
pub(super) fn parse_max(s: &str, max: u128, what: &str) -> Result<u128, String> {
    match parse_uint(s) {
        Some(v) if v <= max => Ok(v),
        Some(_) => Err(format!("{what} value '{s}' out of range (max {max})")),
        None => Err(format!("'{s}' is not a valid {what}")),
    }
}

/// Reads a MAC address: six groups of one or two hex digits separated by `:`.
pub(super) fn parse_mac(s: &str) -> Option<u128> {
    MacAddr::parse_short_groups(s)
        .ok()
        .map(|m| m.to_u64() as u128)
}

/// Reads a MAC address as ovs-ofctl reads the argument of `mod_dl_src`/`mod_dl_dst`: six
/// groups of hex digits, each taken modulo 256, and whatever follows the sixth ignored
/// (`0:0:0:0:0:1/ff:ff:ff:0:0:0` is `00:00:00:00:00:01`).
pub(super) fn parse_mac_loose(s: &str) -> Option<MacAddr> {
    let mut out = [0u8; 6];
    let mut rest = s;
    for (i, byte) in out.iter_mut().enumerate() {
        if i > 0 {
            rest = rest.strip_prefix(':')?;
        }
        let end = rest
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(rest.len());
        if end == 0 {
            return None;
        }
        let group = &rest[..end];
        // Only the last two digits count, as a byte-sized scanf conversion keeps them.
        *byte = u8::from_str_radix(&group[group.len().saturating_sub(2)..], 16).ok()?;
        rest = &rest[end..];
    }
    Some(MacAddr(out))
}

/// Reads an IPv4 address as ovs-ofctl reads one in a match or `set_field`: four decimal
/// numbers, each taken modulo 256 (`1.2.3.256` is `1.2.3.0` there, and `010` is ten).
pub(super) fn parse_ipv4_loose(s: &str) -> Option<u32> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut v = 0u32;
    for p in parts {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n = p.parse::<u128>().ok()?;
        v = (v << 8) | (n % 256) as u32;
    }
    Some(v)
}

/// Reads an IPv4 address strictly (no leading zeros, no octet above 255), as ovs-ofctl reads
/// the argument of `mod_nw_src`/`mod_nw_dst`.
pub(super) fn parse_ipv4_strict(s: &str) -> Option<u32> {
    s.parse::<Ipv4Addr>().ok().map(u32::from)
}

/// All ones in the top `len` bits of a `bits`-wide field.
pub(super) fn prefix_mask(len: u32, bits: u32) -> u128 {
    let all = if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    if len == 0 {
        0
    } else {
        (all << (bits - len)) & all
    }
}

/// The prefix length of `mask` when it is a CIDR prefix of a `bits`-wide field.
pub(super) fn prefix_len(mask: u128, bits: u32) -> Option<u32> {
    let len = mask.count_ones();
    (prefix_mask(len, bits) == mask).then_some(len)
}

/// Splits `value/mask`.
pub(super) fn split_mask(s: &str) -> (&str, Option<&str>) {
    match s.split_once('/') {
        Some((v, m)) => (v, Some(m)),
        None => (s, None),
    }
}

/// Reads `addr[/len|/mask]` of an IPv4 field (match syntax).
pub(super) fn parse_ipv4_masked(s: &str) -> Result<(u128, u128), String> {
    let (v, m) = split_mask(s);
    let bad = || format!("'{s}' is not a valid IPv4 address");
    let value = parse_ipv4_loose(v).ok_or_else(bad)? as u128;
    let mask = match m {
        None => u32::MAX as u128,
        Some(m) if m.contains('.') => parse_ipv4_loose(m).ok_or_else(bad)? as u128,
        Some(m) => match parse_dec(m) {
            Some(len) if len <= 32 => prefix_mask(len as u32, 32),
            Some(_) => return Err(format!("'{s}': prefix length out of range (0-32)")),
            None => return Err(bad()),
        },
    };
    Ok((value, mask))
}

/// Reads `addr[/len|/mask]` of an IPv6 field.
pub(super) fn parse_ipv6_masked(s: &str) -> Result<(u128, u128), String> {
    let (v, m) = split_mask(s);
    let bad = || format!("'{s}' is not a valid IPv6 address");
    let value = v.parse::<Ipv6Addr>().map_err(|_| bad())?.into();
    let mask = match m {
        None => u128::MAX,
        Some(m) if m.contains(':') => m.parse::<Ipv6Addr>().map_err(|_| bad())?.into(),
        Some(m) => match parse_dec(m) {
            Some(len) if len <= 128 => prefix_mask(len as u32, 128),
            Some(_) => return Err(format!("'{s}': prefix length out of range (0-128)")),
            None => return Err(bad()),
        },
    };
    Ok((value, mask))
}

/// Reads `mac[/mask]`.
pub(super) fn parse_mac_masked(s: &str) -> Result<(u128, u128), String> {
    let (v, m) = split_mask(s);
    let bad = || format!("'{s}' is not a valid MAC address");
    let value = parse_mac(v).ok_or_else(bad)?;
    let mask = match m {
        None => (1u128 << 48) - 1,
        Some(m) => parse_mac(m).ok_or_else(bad)?,
    };
    Ok((value, mask))
}

/// Reads `value[/mask]` of an integer field `bits` wide (C notation for both).
pub(super) fn parse_int_masked(s: &str, bits: u32, what: &str) -> Result<(u128, u128), String> {
    let all = prefix_mask(bits, bits);
    let (v, m) = split_mask(s);
    let value = parse_max(v, all, what)?;
    let mask = match m {
        None => all,
        Some(m) => parse_max(m, all, &format!("{what} mask"))?,
    };
    Ok((value, mask))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_read_as_c_reads_them() {
        assert_eq!(parse_uint("10"), Some(10));
        assert_eq!(parse_uint("010"), Some(8));
        assert_eq!(parse_uint("0x10"), Some(16));
        assert_eq!(parse_uint("0X1f"), Some(31));
        assert_eq!(parse_uint("+5"), Some(5));
        assert_eq!(parse_uint("0"), Some(0));
        assert_eq!(parse_uint("08"), None);
        assert_eq!(parse_uint("0x"), None);
        assert_eq!(parse_uint("-1"), Some(u64::MAX as u128));
        assert_eq!(parse_uint("-0x2"), Some(u64::MAX as u128 - 1));
        assert_eq!(parse_uint("--1"), None);
        assert_eq!(parse_uint("-+1"), None);
        assert_eq!(parse_uint(""), None);
        assert_eq!(parse_dec("010"), Some(10));
        assert_eq!(parse_dec("0x1"), None);
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_ipv4_loose("010.0.0.1"), Some(0x0a00_0001));
        assert_eq!(parse_ipv4_loose("1.2.3.256"), Some(0x0102_0300));
        assert_eq!(parse_ipv4_loose("1.2.3"), None);
        assert_eq!(parse_ipv4_strict("010.0.0.1"), None);
        assert_eq!(
            parse_ipv4_masked("1.2.3.4/024"),
            Ok((0x0102_0304, 0xffff_ff00))
        );
        assert!(parse_ipv4_masked("1.2.3.4/0x10").is_err());
        assert!(parse_ipv4_masked("1.2.3.4/").is_err());
        assert_eq!(parse_mac("0:1:2:3:4:5"), Some(0x0001_0203_0405));
        assert_eq!(parse_mac("00-11-22-33-44-55"), None);
        assert_eq!(
            parse_mac_loose("0:0:0:0:0:123/x"),
            Some(MacAddr([0, 0, 0, 0, 0, 0x23]))
        );
        assert_eq!(parse_mac_loose("0:0:0:0:0"), None);
        assert!(parse_ipv6_masked("::1/0x10").is_err());
        assert_eq!(parse_ipv6_masked("::1/::").unwrap().1, 0);
    }
}
