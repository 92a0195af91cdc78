//! Every input that once crashed a vhost-user fuzz target (`fuzz/regressions/<target>/`) runs
//! through its entry point again: it must return normally.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let data = std::fs::read(e.path()).unwrap();
        run(&data);
        n += 1;
    }
    n
}

#[test]
fn vhost_fuzz_crashes_stay_fixed() {
    let n = replay("vhost_messages", ports::vhost_fuzz::fuzz_vhost_messages)
        + replay(
            "vhost_descriptors",
            ports::vhost_fuzz::fuzz_descriptor_chains,
        );
    assert!(n >= 1, "no regression inputs found");
}

#[test]
fn the_seed_corpora_run_clean() {
    let n = replay(
        "../corpus/vhost_messages",
        ports::vhost_fuzz::fuzz_vhost_messages,
    ) + replay(
        "../corpus/vhost_descriptors",
        ports::vhost_fuzz::fuzz_descriptor_chains,
    );
    assert!(n >= 6, "seed corpora missing: {n}");
}
