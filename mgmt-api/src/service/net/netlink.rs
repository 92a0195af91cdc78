//! The links of `attach-netns` and `detach-netns`, made and removed with route netlink
//! requests (`rtnetlink`) instead of the `ip` command.
//!
//! Each operation runs on a short-lived thread of its own, with its own netlink socket and a
//! single-threaded async runtime: a thread that enters a namespace (setns(2) moves only the
//! calling thread) does nothing else and ends with the operation, so no other code ever runs
//! in the wrong namespace. The callers are the service's blocking calls, inside or outside a
//! Tokio runtime alike.

use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use nix::sched::CloneFlags;
use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::{Handle, LinkUnspec, LinkVeth};

/// Why a netlink operation failed.
#[derive(Debug)]
pub enum Error {
    /// The kernel refused the request; the errno says why.
    Refused(io::Error),
    /// The operation could not be set up: `what` (a thread, the namespace, a socket) failed.
    Setup(&'static str, io::Error),
    /// The kernel's answer was not one the request expects.
    Protocol(String),
}

impl Error {
    /// The errno of a refused request or a failed setup step.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Refused(e) | Error::Setup(_, e) => e.raw_os_error(),
            Error::Protocol(_) => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Refused(e) => write!(f, "{e}"),
            Error::Setup(what, e) => write!(f, "{what}: {e}"),
            Error::Protocol(m) => write!(f, "unexpected netlink answer: {m}"),
        }
    }
}

impl From<rtnetlink::Error> for Error {
    fn from(e: rtnetlink::Error) -> Self {
        match e {
            rtnetlink::Error::NetlinkError(m) if m.code.is_some() => Error::Refused(m.to_io()),
            other => Error::Protocol(other.to_string()),
        }
    }
}

/// Runs `job` with a netlink connection on a new thread, inside the namespace `netns` if
/// given (else in the caller's), and waits for it.
fn run<T, F, Fut>(netns: Option<File>, job: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, Error>>,
{
    let thread = std::thread::Builder::new()
        .name("vswitch-netlink".into())
        .spawn(move || {
            if let Some(ns) = netns {
                nix::sched::setns(&ns, CloneFlags::CLONE_NEWNET)
                    .map_err(|e| Error::Setup("cannot enter the namespace", e.into()))?;
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .map_err(|e| Error::Setup("cannot start a runtime", e))?;
            rt.block_on(async move {
                // The socket is made here, in the namespace this thread is in.
                let (conn, handle, _) = rtnetlink::new_connection()
                    .map_err(|e| Error::Setup("cannot open a netlink socket", e))?;
                tokio::spawn(conn);
                job(handle).await
            })
        })
        .map_err(|e| Error::Setup("cannot start a thread", e))?;
    thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Creates the veth pair `port` / `peer` with one request: `port` here and up, `peer` made
/// directly inside the namespace `netns` (so its name may exist here), with the MAC address
/// `mac` if given. The peer stays down: the kernel cannot bring up a veth end before its pair
/// is complete (ENOTCONN), so [`configure_peer`] does.
pub fn create_veth(
    port: &str,
    peer: &str,
    netns: &File,
    mac: Option<[u8; 6]>,
) -> Result<(), Error> {
    let netns = netns
        .try_clone()
        .map_err(|e| Error::Setup("cannot duplicate the namespace handle", e))?;
    let mut peer_link = LinkUnspec::new_with_name(peer).setns_by_fd(netns.as_raw_fd());
    if let Some(mac) = mac {
        peer_link = peer_link.address(mac.to_vec());
    }
    let msg = LinkVeth::new(port, peer)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_link.build())))
        .up()
        .build();
    run(None, move |h| async move {
        let done = h.link().add(msg).execute().await;
        // The descriptor the request names stays open until the kernel has answered.
        drop(netns);
        done.map_err(Error::from)
    })
}

/// Inside the namespace `netns`: adds the address `addr` (address, prefix length) to the
/// interface `ifname` if given, and brings it up. One request each, after looking up the
/// interface's index there.
pub fn configure_peer(netns: &File, ifname: &str, addr: Option<(IpAddr, u8)>) -> Result<(), Error> {
    let netns = netns
        .try_clone()
        .map_err(|e| Error::Setup("cannot duplicate the namespace handle", e))?;
    let ifname = ifname.to_owned();
    run(Some(netns), move |h| async move {
        let index =
            nix::net::if_::if_nametoindex(ifname.as_str()).map_err(|e| Error::Refused(e.into()))?;
        if let Some((addr, prefix)) = addr {
            h.address().add(index, addr, prefix).execute().await?;
        }
        let up = LinkUnspec::new_with_index(index).up().build();
        h.link().set(up).execute().await.map_err(Error::from)
    })
}

/// Deletes the link `name` in the caller's namespace (for a veth, the pair) with one
/// request. `Ok(false)` if there is none.
pub fn delete_link(name: &str) -> Result<bool, Error> {
    let msg = LinkUnspec::new_with_name(name).build();
    let done = run(None, move |h| async move {
        h.link()
            .del_with_message(msg)
            .execute()
            .await
            .map_err(Error::from)
    });
    match done {
        Ok(()) => Ok(true),
        Err(e) if e.errno() == Some(libc::ENODEV) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::netns::{sh, unique, Netns};
    use testkit::require::{can_run, Need};

    fn ip(args: &[&str]) -> String {
        String::from_utf8_lossy(&sh(&[&["ip"], args].concat()).stdout).into_owned()
    }

    #[test]
    fn veth_into_a_namespace_configured_and_deleted() {
        if !can_run("veth_into_a_namespace", &[Need::Netns]) {
            return;
        }
        let ns = Netns::new();
        let file = File::open(format!("/run/netns/{}", ns.name)).unwrap();
        let port = unique("vsnl");
        // The peer takes the port's own name: names are per namespace, and the peer is made
        // inside its namespace.
        let mac = [0x02, 0, 0, 0, 0x4e, 0x01];
        create_veth(&port, &port, &file, Some(mac)).unwrap();
        let there = ip(&["-n", &ns.name, "-br", "link", "show", &port]);
        assert!(there.contains("02:00:00:00:4e:01"), "{there}");
        let addr = "10.211.0.1".parse().unwrap();
        configure_peer(&file, &port, Some((addr, 24))).unwrap();
        let there = ip(&["-n", &ns.name, "-br", "addr", "show", &port]);
        assert!(there.contains("10.211.0.1/24"), "{there}");
        assert!(there.contains(" UP "), "{there}");
        let here = ip(&["-br", "link", "show", &port]);
        assert!(here.contains(" UP "), "{here}");

        // Refusals carry the errno.
        let e = create_veth(&port, "eth9", &file, None).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");
        let e = configure_peer(&file, "nosuch0", None).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENODEV), "{e}");

        assert!(delete_link(&port).unwrap());
        assert!(ip(&["-n", &ns.name, "-br", "link", "show", &port]).is_empty());
        assert!(!delete_link(&port).unwrap(), "already gone");
    }
}
