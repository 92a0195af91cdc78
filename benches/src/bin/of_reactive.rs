//! A minimal reactive OpenFlow 1.3 controller for `benches/e2e/run-openflow.sh`: it measures
//! how many new flows per second a switch sets up when every new flow is a table miss
//! answered by the controller, as a reactive controller (simple_switch, faucet's learning)
//! works.
//!
//!     of_reactive --listen 127.0.0.1:PORT [--secs 5] [--window 32] [--warmup-secs 1]
//!                 [--accept-secs 30]
//!
//! It waits for the switch to connect, clears its flows and installs a table-miss flow to the
//! controller. Then it keeps `--window` new flows in flight: each starts as a PACKET_OUT
//! (in_port 1, output TABLE) of a UDP frame from a source address never used before, which
//! misses and comes back as a PACKET_IN; the controller answers that with a FLOW_MOD for the
//! flow's 5-tuple (output 2) and a PACKET_OUT of the packet to port 2, and starts the next new
//! flow. The same switch work as traffic from a port, without a traffic generator, so dummy
//! datapaths (vswitch's and OVS's) can be compared in one run. A BARRIER at the end confirms
//! the switch took every flow mod. Prints one JSON object:
//! `{"flows": N, "secs": S, "flows_per_sec": R, "installed_confirmed": true}`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

const OF13: u8 = 4;
const HELLO: u8 = 0;
const ECHO_REQUEST: u8 = 2;
const ECHO_REPLY: u8 = 3;
const FEATURES_REQUEST: u8 = 5;
const SET_CONFIG: u8 = 9;
const PACKET_IN: u8 = 10;
const PACKET_OUT: u8 = 13;
const FLOW_MOD: u8 = 14;
const BARRIER_REQUEST: u8 = 20;
const BARRIER_REPLY: u8 = 21;
const ERROR: u8 = 1;
const OFPP_TABLE: u32 = 0xffff_fff9;
const OFPP_CONTROLLER: u32 = 0xffff_fffd;
const OFPP_ANY: u32 = 0xffff_ffff;
const NO_BUFFER: u32 = 0xffff_ffff;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn die(msg: &str) -> ! {
    eprintln!("of_reactive: {msg}");
    std::process::exit(2)
}

fn msg(t: u8, xid: u32, body: &[u8]) -> Vec<u8> {
    let len = 8 + body.len();
    let mut m = vec![OF13, t];
    m.extend_from_slice(&(len as u16).to_be_bytes());
    m.extend_from_slice(&xid.to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// An OXM field of the OpenFlow basic class.
fn oxm(out: &mut Vec<u8>, field: u8, value: &[u8]) {
    out.extend_from_slice(&0x8000u16.to_be_bytes());
    out.push(field << 1);
    out.push(value.len() as u8);
    out.extend_from_slice(value);
}

/// `ofp_match` (OXM) holding `fields`, padded to 8 bytes.
fn ofp_match(fields: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&1u16.to_be_bytes());
    m.extend_from_slice(&((4 + fields.len()) as u16).to_be_bytes());
    m.extend_from_slice(fields);
    while m.len() % 8 != 0 {
        m.push(0);
    }
    m
}

fn output(port: u32, max_len: u16) -> Vec<u8> {
    let mut a = Vec::new();
    a.extend_from_slice(&0u16.to_be_bytes());
    a.extend_from_slice(&16u16.to_be_bytes());
    a.extend_from_slice(&port.to_be_bytes());
    a.extend_from_slice(&max_len.to_be_bytes());
    a.extend_from_slice(&[0; 6]);
    a
}

fn flow_mod(command: u8, priority: u16, fields: &[u8], actions: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0u64.to_be_bytes()); // cookie
    b.extend_from_slice(&0u64.to_be_bytes()); // cookie mask
    b.push(if command == 3 { 0xff } else { 0 }); // table (all, for delete)
    b.push(command);
    b.extend_from_slice(&0u16.to_be_bytes()); // idle
    b.extend_from_slice(&0u16.to_be_bytes()); // hard
    b.extend_from_slice(&priority.to_be_bytes());
    b.extend_from_slice(&NO_BUFFER.to_be_bytes());
    b.extend_from_slice(&OFPP_ANY.to_be_bytes());
    b.extend_from_slice(&OFPP_ANY.to_be_bytes()); // out_group
    b.extend_from_slice(&0u16.to_be_bytes()); // flags
    b.extend_from_slice(&[0; 2]);
    b.extend_from_slice(&ofp_match(fields));
    if !actions.is_empty() {
        b.extend_from_slice(&4u16.to_be_bytes()); // APPLY_ACTIONS
        b.extend_from_slice(&((8 + actions.len()) as u16).to_be_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(actions);
    }
    b
}

fn packet_out(in_port: u32, actions: &[u8], data: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&NO_BUFFER.to_be_bytes());
    b.extend_from_slice(&in_port.to_be_bytes());
    b.extend_from_slice(&(actions.len() as u16).to_be_bytes());
    b.extend_from_slice(&[0; 6]);
    b.extend_from_slice(actions);
    b.extend_from_slice(data);
    b
}

/// A UDP frame from 10.(n>>16).(n>>8).n to 192.168.0.1.
fn frame(n: u32) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0];
    let src = [10, (n >> 16) as u8, (n >> 8) as u8, n as u8];
    f.extend_from_slice(&[0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[192, 168, 0, 1]);
    f.extend_from_slice(&[0x1f, 0x90, 0x1f, 0x91, 0, 8, 0, 0]);
    f
}

/// The 5-tuple match of `frame(n)`, arriving on port 1.
fn five_tuple(data: &[u8]) -> Option<Vec<u8>> {
    if data.len() < 42 || data[12..14] != [8, 0] || data[23] != 17 {
        return None;
    }
    let mut m = Vec::new();
    oxm(&mut m, 0, &1u32.to_be_bytes()); // in_port
    oxm(&mut m, 5, &[8, 0]); // eth_type
    oxm(&mut m, 10, &[17]); // ip_proto
    oxm(&mut m, 11, &data[26..30]); // ipv4_src
    oxm(&mut m, 12, &data[30..34]); // ipv4_dst
    oxm(&mut m, 15, &data[34..36]); // udp_src
    oxm(&mut m, 16, &data[36..38]); // udp_dst
    Some(m)
}

struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl Conn {
    fn send(&mut self, m: &[u8]) {
        self.out.extend_from_slice(m);
    }

    fn flush(&mut self) {
        if !self.out.is_empty() {
            self.s
                .write_all(&self.out)
                .unwrap_or_else(|e| die(&format!("write: {e}")));
            self.out.clear();
        }
    }

    /// The next whole message.
    fn recv(&mut self) -> Vec<u8> {
        loop {
            if self.buf.len() >= 8 {
                let len = u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize;
                if len < 8 {
                    die("a message shorter than its header");
                }
                if self.buf.len() >= len {
                    return self.buf.drain(..len).collect();
                }
            }
            let mut chunk = [0u8; 65536];
            let n = self
                .s
                .read(&mut chunk)
                .unwrap_or_else(|e| die(&format!("read: {e}")));
            if n == 0 {
                die("the switch closed the connection");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads until a message of type `t`, answering echoes and failing on errors.
    fn expect(&mut self, t: u8) -> Vec<u8> {
        loop {
            let m = self.recv();
            match m[1] {
                x if x == t => return m,
                ECHO_REQUEST => {
                    let mut r = m.clone();
                    r[1] = ECHO_REPLY;
                    self.send(&r);
                    self.flush();
                }
                ERROR => die(&format!(
                    "the switch sent an ERROR: {:02x?}",
                    &m[..m.len().min(24)]
                )),
                _ => {}
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let listen = arg(&args, "--listen", "127.0.0.1:6653");
    let secs: f64 = arg(&args, "--secs", "5").parse().unwrap_or(5.0);
    let warmup: f64 = arg(&args, "--warmup-secs", "1").parse().unwrap_or(1.0);
    let window: u32 = arg(&args, "--window", "32").parse().unwrap_or(32);
    let accept_secs: u64 = arg(&args, "--accept-secs", "30").parse().unwrap_or(30);
    let l = TcpListener::bind(&listen).unwrap_or_else(|e| die(&format!("{listen}: {e}")));
    l.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(accept_secs);
    let s = loop {
        match l.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    die("no switch connected");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => die(&format!("accept: {e}")),
        }
    };
    s.set_nonblocking(false).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut c = Conn {
        s,
        buf: Vec::new(),
        out: Vec::new(),
    };
    // HELLO offering 1.3 only, then the usual start of a controller.
    c.send(&msg(HELLO, 1, &[]));
    c.flush();
    c.expect(HELLO);
    c.send(&msg(FEATURES_REQUEST, 2, &[]));
    c.send(&msg(SET_CONFIG, 3, &[0, 0, 0xff, 0xff]));
    c.send(&msg(FLOW_MOD, 4, &flow_mod(3, 0, &[], &[])));
    c.send(&msg(
        FLOW_MOD,
        5,
        &flow_mod(0, 0, &[], &output(OFPP_CONTROLLER, 0xffff)),
    ));
    c.send(&msg(BARRIER_REQUEST, 6, &[]));
    c.flush();
    c.expect(BARRIER_REPLY);

    let to_table = output(OFPP_TABLE, 0);
    let to_two = output(2, 0);
    let mut next = 1u32;
    let mut xid = 100u32;
    for _ in 0..window {
        c.send(&msg(
            PACKET_OUT,
            xid,
            &packet_out(1, &to_table, &frame(next)),
        ));
        next += 1;
        xid += 1;
    }
    c.flush();
    let start = Instant::now();
    let mut measuring: Option<(Instant, u64)> = None;
    let mut done = 0u64;
    loop {
        let m = c.expect(PACKET_IN);
        // buffer_id 4, total_len 2, reason 1, table 1, cookie 8, then the match.
        let mlen = u16::from_be_bytes([m[26], m[27]]) as usize;
        let data_at = 24 + mlen.div_ceil(8) * 8 + 2;
        let Some(data) = m.get(data_at..) else {
            die("a PACKET_IN shorter than its match")
        };
        let Some(fields) = five_tuple(data) else {
            die("a PACKET_IN that is not one of the bench's frames")
        };
        c.send(&msg(FLOW_MOD, xid, &flow_mod(0, 100, &fields, &to_two)));
        c.send(&msg(PACKET_OUT, xid + 1, &packet_out(1, &to_two, data)));
        c.send(&msg(
            PACKET_OUT,
            xid + 2,
            &packet_out(1, &to_table, &frame(next)),
        ));
        c.flush();
        next += 1;
        xid = xid.wrapping_add(3);
        done += 1;
        let t = start.elapsed().as_secs_f64();
        match measuring {
            None if t >= warmup => measuring = Some((Instant::now(), done)),
            Some((t0, d0)) if t0.elapsed().as_secs_f64() >= secs => {
                let flows = done - d0;
                let el = t0.elapsed().as_secs_f64();
                c.send(&msg(BARRIER_REQUEST, 7, &[]));
                c.flush();
                c.expect(BARRIER_REPLY);
                println!(
                    "{{\"flows\": {flows}, \"secs\": {el:.3}, \"flows_per_sec\": {:.1}, \"installed_confirmed\": true, \"total_flows\": {done}}}",
                    flows as f64 / el
                );
                return;
            }
            _ => {}
        }
    }
}
