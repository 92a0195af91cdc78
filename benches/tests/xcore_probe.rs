//! The cross-core probe runs briefly and prints plausible samples.

use std::process::Command;

#[test]
fn probe_prints_timed_round_trips() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        eprintln!("SKIPPED: xcore_probe needs two CPUs, this machine has {cpus}");
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_xcore_probe"))
        .args([
            "--cpus",
            "0,1",
            "--every-ms",
            "50",
            "--trips",
            "200",
            "--secs",
            "0.3",
        ])
        .output()
        .expect("run xcore_probe");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let samples: Vec<(u128, u64)> = text
        .lines()
        .map(|l| {
            let mut f = l.split_whitespace();
            let ms = f.next().and_then(|v| v.parse().ok()).expect("time");
            let ns = f.next().and_then(|v| v.parse().ok()).expect("round trip");
            (ms, ns)
        })
        .collect();
    assert!(samples.len() >= 2, "too few samples: {text}");
    assert!(
        samples.windows(2).all(|w| w[0].0 <= w[1].0),
        "times go forward"
    );
    // A round trip between two cores takes tens to hundreds of nanoseconds; the probe gives up
    // on a sample after 50 ms, which must not be the median.
    assert!(
        samples.iter().all(|&(_, ns)| ns > 0 && ns < 50_000_000),
        "{text}"
    );
}
