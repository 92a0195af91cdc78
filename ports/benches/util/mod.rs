//! What the ports benches share: full or quick run, rounds and their median.

#![allow(dead_code)]

use std::time::Duration;

/// How much to measure. `cargo bench` passes `--bench` and gets the full measurement; without it
/// (`cargo test --all-targets` runs bench targets once as a smoke test) a single short round
/// only checks that the bench still works.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Whether this is a real measurement (`--bench`).
    pub full: bool,
    /// Measured rounds; the median is reported.
    pub rounds: usize,
    /// Length of one round, for benches that measure for a fixed time.
    pub round_time: Duration,
    /// Warm-up before the first round.
    pub warmup: Duration,
}

impl Plan {
    /// `rounds` rounds of `round_time` with `--bench`, one 20 ms round otherwise.
    pub fn from_args(rounds: usize, round_time: Duration) -> Plan {
        if std::env::args().any(|a| a == "--bench") {
            Plan {
                full: true,
                rounds,
                round_time,
                warmup: round_time / 2,
            }
        } else {
            Plan {
                full: false,
                rounds: 1,
                round_time: Duration::from_millis(20),
                warmup: Duration::ZERO,
            }
        }
    }
}

/// Median of the samples (mean of the middle two for an even count).
pub fn median(samples: &[f64]) -> f64 {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Prints one result line: the median and the rounds it came from.
pub fn report(what: &str, unit: &str, samples: &[f64], plan: &Plan) {
    let rounds: Vec<String> = samples.iter().map(|s| format!("{s:.3}")).collect();
    let tag = if plan.full {
        ""
    } else {
        " [smoke run, not a measurement]"
    };
    println!(
        "{what}: median {:.3} {unit} over {} rounds [{}]{tag}",
        median(samples),
        samples.len(),
        rounds.join(", ")
    );
}
