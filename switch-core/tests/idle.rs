//! An idle switch costs (almost) no CPU: PMD threads back off when there is no traffic, and
//! still forward the next packet.

use std::time::Duration;

use ports::SystemMode;
use switch_core::{PortConfig, Switch, SwitchConfig};
use testkit::netns::{unique, Host};
use testkit::require::{can_run, serial, Need};

/// CPU time (user + system, in clock ticks) of this process's threads named `name`.
fn thread_ticks(name: &str) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let dir = task.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        total += f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    }
    total
}

#[test]
fn idle_pmd_sleeps_and_wakes_for_traffic() {
    let _serial = serial();
    if !can_run(
        "idle_pmd_sleeps_and_wakes_for_traffic",
        &[Need::Netns, Need::Tool("ping")],
    ) {
        return;
    }
    let (h1, v1) = Host::veth("10.207.0.1");
    let (h2, v2) = Host::veth("10.207.0.2");
    let sw = Switch::start(SwitchConfig::default()).unwrap();
    let br = unique("vsbr");
    sw.add_bridge(&br).unwrap();
    for v in [&v1, &v2] {
        sw.add_port(
            &br,
            v,
            PortConfig::System {
                mode: SystemMode::AfPacket,
            },
            None,
        )
        .unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let before = thread_ticks("pmd0");
    std::thread::sleep(Duration::from_secs(2));
    let used = thread_ticks("pmd0") - before;
    let percent = 100.0 * used as f64 / (2 * hz) as f64;
    eprintln!("idle PMD used {percent:.1}% of a core");
    assert!(percent < 15.0, "an idle PMD burns {percent:.1}% of a core");
    let stats = &sw.pmd_stats()[0];
    assert!(stats.idle_cycles > 0);
    // And it still answers at once.
    assert!(h1.ping_until_ok(&h2.ip, Duration::from_secs(3)));
    assert!(h1.ping(&h2.ip, 3));
}
