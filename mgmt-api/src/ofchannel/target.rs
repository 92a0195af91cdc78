//! Controller targets in Open vSwitch's syntax: where a bridge connects to its controllers
//! (`tcp:IP[:PORT]`, `unix:PATH`) or where it waits for them (`ptcp:[PORT][:IP]`,
//! `punix:PATH`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// The OpenFlow port IANA assigned, the default of every TCP target.
pub const DEFAULT_PORT: u16 = 6653;

/// One controller target.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// `tcp:IP[:PORT]`: connect to a controller.
    Tcp(SocketAddr),
    /// `unix:PATH`: connect to a controller's unix socket.
    Unix(PathBuf),
    /// `ptcp:[PORT][:IP]`: listen for controllers (on loopback unless an address is given).
    Ptcp(SocketAddr),
    /// `punix:PATH`: listen for controllers on a unix socket.
    Punix(PathBuf),
}

impl Target {
    /// Parses a target. A relative unix path is taken under `run_dir`, as OVS takes it under
    /// its run directory.
    pub fn parse(text: &str, run_dir: &Path) -> Result<Target, String> {
        let (kind, rest) = text
            .split_once(':')
            .ok_or_else(|| format!("'{text}': a target is tcp:, unix:, ptcp: or punix:"))?;
        let path = |p: &str| {
            if p.is_empty() {
                Err(format!("'{text}': the socket path is missing"))
            } else if p.as_bytes().contains(&0) {
                Err(format!("'{text}': the socket path holds a NUL byte"))
            } else {
                Ok(run_dir.join(p))
            }
        };
        match kind {
            "tcp" => tcp(rest)
                .map(Target::Tcp)
                .map_err(|e| format!("'{text}': {e} (want tcp:IP[:PORT])")),
            "ptcp" => ptcp(rest)
                .map(Target::Ptcp)
                .map_err(|e| format!("'{text}': {e} (want ptcp:[PORT][:IP])")),
            "unix" => path(rest).map(Target::Unix),
            "punix" => path(rest).map(Target::Punix),
            "ssl" | "pssl" => Err(format!(
                "'{text}': SSL connections are not supported by vswitch (use tcp: on a trusted \
                 network, or unix:)"
            )),
            _ => Err(format!(
                "'{text}': unknown connection method '{kind}' (tcp:, unix:, ptcp: or punix:)"
            )),
        }
    }

    /// Whether the bridge listens (`ptcp:`, `punix:`) rather than connects.
    pub fn is_passive(&self) -> bool {
        matches!(self, Target::Ptcp(_) | Target::Punix(_))
    }
}

fn port(s: &str) -> Result<u16, String> {
    s.parse()
        .map_err(|_| format!("'{s}' is not a port number (0-65535)"))
}

fn ip(s: &str) -> Result<IpAddr, String> {
    let bare = s
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(s);
    bare.parse()
        .map_err(|_| format!("'{s}' is not an IP address"))
}

/// `IP[:PORT]`, IPv6 in brackets when a port follows.
fn tcp(rest: &str) -> Result<SocketAddr, String> {
    if rest.is_empty() {
        return Err("the controller's address is missing".into());
    }
    if let Ok(a) = rest.parse::<SocketAddr>() {
        return Ok(a);
    }
    Ok(SocketAddr::new(ip(rest)?, DEFAULT_PORT))
}

/// `[PORT][:IP]`; the address defaults to loopback.
fn ptcp(rest: &str) -> Result<SocketAddr, String> {
    let (p, addr) = match rest.split_once(':') {
        Some((p, a)) => (p, Some(a)),
        None => (rest, None),
    };
    let p = if p.is_empty() { DEFAULT_PORT } else { port(p)? };
    let a = match addr {
        Some(a) if !a.is_empty() => ip(a)?,
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    Ok(SocketAddr::new(a, p))
}

impl fmt::Display for Target {
    /// Writes the target as OVS writes it back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = |a: &SocketAddr| match a.ip() {
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        };
        match self {
            Target::Tcp(a) => write!(f, "tcp:{}:{}", host(a), a.port()),
            Target::Unix(p) => write!(f, "unix:{}", p.display()),
            Target::Ptcp(a) => write!(f, "ptcp:{}:{}", a.port(), host(a)),
            Target::Punix(p) => write!(f, "punix:{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Target, String> {
        Target::parse(s, Path::new("/run/vs"))
    }

    #[test]
    fn targets_read_as_ovs_writes_them() {
        assert_eq!(
            parse("tcp:127.0.0.1").unwrap(),
            Target::Tcp("127.0.0.1:6653".parse().unwrap())
        );
        assert_eq!(
            parse("tcp:10.0.0.1:6633").unwrap().to_string(),
            "tcp:10.0.0.1:6633"
        );
        assert_eq!(
            parse("tcp:[::1]:6654").unwrap(),
            Target::Tcp("[::1]:6654".parse().unwrap())
        );
        assert_eq!(parse("tcp:::1").unwrap().to_string(), "tcp:[::1]:6653");
        assert_eq!(parse("ptcp:").unwrap().to_string(), "ptcp:6653:127.0.0.1");
        assert_eq!(
            parse("ptcp:6700").unwrap().to_string(),
            "ptcp:6700:127.0.0.1"
        );
        assert_eq!(
            parse("ptcp:6700:10.1.1.1").unwrap().to_string(),
            "ptcp:6700:10.1.1.1"
        );
        assert_eq!(
            parse("ptcp::[::1]").unwrap(),
            Target::Ptcp("[::1]:6653".parse().unwrap())
        );
        assert_eq!(
            parse("unix:/tmp/c.sock").unwrap(),
            Target::Unix("/tmp/c.sock".into())
        );
        assert_eq!(
            parse("punix:br0.ctl").unwrap(),
            Target::Punix("/run/vs/br0.ctl".into())
        );
        assert!(parse("ptcp:1").unwrap().is_passive());
        assert!(!parse("unix:/x").unwrap().is_passive());
    }

    #[test]
    fn bad_targets_say_what_is_wrong() {
        for (t, want) in [
            ("tcp:", "missing"),
            ("tcp:host.example", "not an IP address"),
            ("tcp:1.2.3.4:99999", "not an IP address"),
            ("ptcp:http", "not a port number"),
            ("ptcp:80:nowhere", "not an IP address"),
            ("unix:", "path is missing"),
            ("ssl:1.2.3.4", "SSL"),
            ("udp:1.2.3.4", "unknown connection method 'udp'"),
            ("127.0.0.1", "tcp:, unix:"),
        ] {
            let e = parse(t).unwrap_err();
            assert!(e.contains(want), "{t}: {e}");
        }
    }
}
