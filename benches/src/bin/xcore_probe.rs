//! Cross-core latency probe: how long a cache line takes to go from CPU A to CPU B and back.
//!
//! This 2-vCPU VM runs in one of a few "modes" that change every few tens of seconds (the host
//! moves the vCPUs between core complexes): a line's round trip takes about 80, 150 or 330 ns.
//! Every vhost packet crosses between the generator's core and the PMD's, so throughput follows
//! the mode. This probe runs beside a benchmark and logs the mode, so that windows can be
//! compared within one mode. Each sample preempts both cores for well under a millisecond
//! (SCHED_FIFO), so the benchmark is barely disturbed.
//!
//!     xcore_probe [--cpus 0,1] [--every-ms 250] [--trips 1000] [--secs N]
//!
//! Prints `unix_time_ms median_roundtrip_ns` per sample on stdout.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The line the two threads pass between them, alone on its cache line.
#[repr(align(128))]
struct Line(AtomicU64);

fn pin_fifo(cpu: usize) {
    // SAFETY: plain libc calls on this thread with initialised arguments.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
        let p = libc::sched_param { sched_priority: 50 };
        if libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) != 0 {
            eprintln!("xcore_probe: no SCHED_FIFO (not root?): samples will be noisier");
        }
    }
}

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let cpus: Vec<usize> = arg(&args, "--cpus", "0,1")
        .split(',')
        .map(|c| c.parse().expect("--cpus A,B"))
        .collect();
    let every = Duration::from_millis(arg(&args, "--every-ms", "250").parse().expect("ms"));
    let trips: u64 = arg(&args, "--trips", "1000").parse().expect("trips");
    let secs: f64 = arg(&args, "--secs", "86400").parse().expect("secs");
    let line = Arc::new(Line(AtomicU64::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    // Both threads sleep between samples and meet at a barrier, so neither spins while idle.
    let start = Arc::new(Barrier::new(2));
    let done = Arc::new(Barrier::new(2));
    let (l2, s2, b2, d2, cpu_b) = (
        line.clone(),
        stop.clone(),
        start.clone(),
        done.clone(),
        cpus[1],
    );
    let echo = std::thread::spawn(move || {
        pin_fifo(cpu_b);
        loop {
            b2.wait();
            if s2.load(Ordering::Relaxed) {
                return;
            }
            for i in 0..trips {
                let deadline = Instant::now() + Duration::from_millis(50);
                while l2.0.load(Ordering::Acquire) != 2 * i + 1 {
                    if Instant::now() > deadline {
                        break; // the other side gave up on this sample
                    }
                }
                l2.0.store(2 * i + 2, Ordering::Release);
            }
            d2.wait();
        }
    });
    pin_fifo(cpus[0]);
    let t0 = Instant::now();
    let mut rtts = Vec::with_capacity(trips as usize);
    while t0.elapsed().as_secs_f64() < secs {
        line.0.store(0, Ordering::Release);
        start.wait();
        rtts.clear();
        for i in 0..trips {
            let t = Instant::now();
            line.0.store(2 * i + 1, Ordering::Release);
            let deadline = t + Duration::from_millis(50);
            while line.0.load(Ordering::Acquire) != 2 * i + 2 && Instant::now() < deadline {}
            rtts.push(t.elapsed().as_nanos() as u64);
        }
        done.wait();
        rtts.sort_unstable();
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        println!("{ms} {}", rtts[rtts.len() / 2]);
        std::thread::sleep(every);
    }
    stop.store(true, Ordering::Relaxed);
    start.wait();
    let _ = echo.join();
}
