//! The vhost-user control socket against a frontend that breaks the protocol: the port drops
//! that connection, counts the error, and serves the next frontend.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ports::{VhostMode, VhostUserConfig, VhostUserPort};

fn socket(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("vsw-proto-{tag}-{}.sock", std::process::id()))
}

fn server(tag: &str) -> (Vec<VhostUserPort>, PathBuf) {
    let path = socket(tag);
    let cfg = VhostUserConfig::new(tag, &path, VhostMode::Server);
    (VhostUserPort::open_instances(&cfg, 1).unwrap(), path)
}

/// A vhost-user message header: request, flags (version 1), payload size.
fn header(request: u32, size: u32) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend(request.to_le_bytes());
    m.extend(1u32.to_le_bytes());
    m.extend(size.to_le_bytes());
    m
}

const GET_FEATURES: u32 = 1;
const SET_VRING_NUM: u32 = 8;

/// Sends GET_FEATURES and returns the features in the reply.
fn get_features(s: &mut UnixStream) -> u64 {
    s.write_all(&header(GET_FEATURES, 0)).unwrap();
    let mut reply = [0u8; 20];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(
        u32::from_le_bytes(reply[0..4].try_into().unwrap()),
        GET_FEATURES
    );
    assert_eq!(
        u32::from_le_bytes(reply[4..8].try_into().unwrap()) & 0x4,
        0x4,
        "a reply"
    );
    u64::from_le_bytes(reply[12..20].try_into().unwrap())
}

/// Whether the switch closed the connection within two seconds.
fn closed_by_switch(s: &mut UnixStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut b = [0u8; 64];
    matches!(s.read(&mut b), Ok(0)) || matches!(s.read(&mut b), Ok(0))
}

fn wait_errors(port: &VhostUserPort, n: u64) -> bool {
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end {
        if port.protocol_errors() >= n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn a_well_formed_frontend_gets_the_features() {
    let (ports, path) = server("good");
    let mut s = UnixStream::connect(&path).unwrap();
    let f = get_features(&mut s);
    assert_ne!(f & (1 << 32), 0, "VIRTIO_F_VERSION_1");
    assert_ne!(f & (1 << 15), 0, "VIRTIO_NET_F_MRG_RXBUF");
    assert_ne!(f & (1 << 30), 0, "VHOST_USER_F_PROTOCOL_FEATURES");
    assert_eq!(ports[0].protocol_errors(), 0);
}

#[test]
fn garbage_drops_the_connection_and_the_next_frontend_is_served() {
    let (ports, path) = server("garbage");
    let mut s = UnixStream::connect(&path).unwrap();
    // An unknown request code with a bad version.
    s.write_all(&[0xff; 12]).unwrap();
    assert!(
        closed_by_switch(&mut s),
        "the switch kept a broken connection"
    );
    assert!(wait_errors(&ports[0], 1));
    let mut s = UnixStream::connect(&path).unwrap();
    assert_ne!(get_features(&mut s), 0);
}

#[test]
fn an_oversized_or_truncated_message_is_refused() {
    let (ports, path) = server("oversized");
    let mut s = UnixStream::connect(&path).unwrap();
    // GET_FEATURES claiming a 1 MB payload.
    s.write_all(&header(GET_FEATURES, 1 << 20)).unwrap();
    assert!(closed_by_switch(&mut s));
    // SET_VRING_NUM with a payload too short for its body, then hang up half-way.
    let mut s = UnixStream::connect(&path).unwrap();
    let mut m = header(SET_VRING_NUM, 8);
    m.extend([0u8; 4]);
    s.write_all(&m).unwrap();
    drop(s);
    let mut s = UnixStream::connect(&path).unwrap();
    assert_ne!(get_features(&mut s), 0);
    assert!(wait_errors(&ports[0], 1));
}

#[test]
fn a_vring_index_beyond_the_device_is_refused() {
    let (ports, path) = server("index");
    let mut s = UnixStream::connect(&path).unwrap();
    get_features(&mut s);
    let mut m = header(SET_VRING_NUM, 8);
    m.extend(1000u32.to_le_bytes());
    m.extend(256u32.to_le_bytes());
    s.write_all(&m).unwrap();
    // Without REPLY_ACK a failed request ends the connection.
    assert!(closed_by_switch(&mut s));
    assert!(wait_errors(&ports[0], 1));
    drop(ports);
    assert!(!path.exists(), "the socket is removed with the port");
}

#[test]
fn a_stale_socket_file_is_replaced_but_other_files_are_not() {
    let path = socket("stale");
    let _ = std::fs::remove_file(&path);
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let cfg = VhostUserConfig::new("stale", &path, VhostMode::Server);
    let ports = VhostUserPort::open_instances(&cfg, 1).expect("a stale socket is replaced");
    drop(ports);
    std::fs::write(&path, b"not a socket").unwrap();
    let err = VhostUserPort::open_instances(&cfg, 1)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("not a socket"), "{err}");
    std::fs::remove_file(&path).unwrap();
}
