//! A stable, bounded stand-in for the `openflow_decode` fuzz target (cargo-fuzz needs a
//! nightly toolchain): the seed corpus (`fuzz/corpus/openflow_decode/`, messages captured
//! from ovs-ofctl 3.1) and many seeded mutations of it run through
//! [`openflow::fuzzing::decode_all`], which asserts that no decoder panics and that what
//! decodes survives its encoders. Crashes found by the real fuzzer go to
//! `fuzz/regressions/openflow_decode/` and are replayed here too.

use std::path::Path;

use openflow::fuzzing::decode_all;

fn inputs(dir: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(dir);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One mutation of `m`: byte and bit changes, interesting 16-bit values (lengths, ports),
/// cuts, insertions, splices with `other`; the header's length is usually made right so the
/// input gets past framing.
fn mutate(m: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut t = m.to_vec();
    for _ in 0..1 + rng.below(4) {
        if t.is_empty() {
            t.push(0);
        }
        let i = rng.below(t.len());
        match rng.below(7) {
            0 => t[i] = rng.next() as u8,
            1 => t[i] ^= 1 << rng.below(8),
            2 if i + 1 < t.len() => {
                const SPECIAL: [u16; 10] = [0, 1, 4, 7, 8, 16, 0xfff8, 0xfffd, 0xffff, 0x8000];
                let v = SPECIAL[rng.below(SPECIAL.len())];
                t[i..i + 2].copy_from_slice(&v.to_be_bytes());
            }
            3 => t.truncate(i),
            4 => {
                let n = rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                t.splice(i..i, bytes);
            }
            5 if !other.is_empty() => {
                let j = rng.below(other.len());
                let n = rng.below(other.len() - j + 1);
                t.splice(i..(i + n).min(t.len()), other[j..j + n].iter().copied());
            }
            _ => {
                let n = rng.below(t.len() - i + 1);
                t.drain(i..i + n);
            }
        }
    }
    if t.len() >= 4 && t.len() <= 0xffff && rng.below(8) != 0 {
        let n = t.len() as u16;
        t[2..4].copy_from_slice(&n.to_be_bytes());
    }
    t
}

#[test]
fn seed_corpus_decodes_clean() {
    let seeds = inputs("corpus/openflow_decode");
    assert!(seeds.len() >= 40, "seed corpus missing: {}", seeds.len());
    for (_, s) in &seeds {
        decode_all(s);
    }
    for (_, s) in inputs("regressions/openflow_decode") {
        decode_all(&s);
    }
}

#[test]
fn mutated_messages_never_panic() {
    let seeds = inputs("corpus/openflow_decode");
    // OPENFLOW_FUZZ_SEED and OPENFLOW_FUZZ_ROUNDS (per seed message) search further.
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let mut rng = Rng(env("OPENFLOW_FUZZ_SEED").unwrap_or(0x9e37_79b9_7f4a_7c15) | 1);
    let rounds = env("OPENFLOW_FUZZ_ROUNDS").unwrap_or(1500);
    let mut n = 0;
    for (name, s) in &seeds {
        // Every cut of the seed, its length fixed.
        for len in 0..s.len() {
            let mut t = s[..len].to_vec();
            if t.len() >= 4 {
                t[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            }
            decode_all(&t);
        }
        for _ in 0..rounds {
            let other = &seeds[rng.below(seeds.len())].1;
            let t = mutate(s, other, &mut rng);
            let r = std::panic::catch_unwind(|| decode_all(&t));
            if r.is_err() {
                let hex: String = t.iter().map(|b| format!("{b:02x}")).collect();
                panic!("a mutation of {name} failed: {hex}");
            }
            n += 1;
        }
    }
    eprintln!("{n} mutated messages decoded");
}

/// `Received::parse` classifies every seed as its name says (the names come from what
/// ovs-ofctl meant to send) or refuses it with the error vswitch answers.
#[test]
fn seeds_classify() {
    use openflow::error::{BadRequest, ErrorCode};
    use openflow::nicira::Experimenter as E;
    use openflow::{ParseOptions, Received, Request as R, Version};
    for nxm in [false, true] {
        let opts = ParseOptions {
            flow_mod_table_id: true,
            nxm,
        };
        for (name, m) in inputs("corpus/openflow_decode") {
            let v = if name.starts_with("of10") {
                Version::Of10
            } else {
                Version::Of13
            };
            let kind = name[5..].trim_end_matches(|c: char| c.is_ascii_digit() || c == '_');
            let got = Received::parse_with(&m, v, opts);
            let ok = match (kind, &got) {
                ("barrier", Ok(r)) => r.request == R::BarrierRequest,
                ("features_request", Ok(r)) => r.request == R::FeaturesRequest,
                ("get_config", Ok(r)) => r.request == R::GetConfigRequest,
                ("set_config", Ok(r)) => matches!(r.request, R::SetConfig(_)),
                ("hello", Ok(r)) => matches!(r.request, R::Hello(_)),
                ("echo_request", Ok(r)) => r.request == R::EchoRequest,
                ("error", Ok(r)) => matches!(r.request, R::Error { .. }),
                ("flow_mod", Ok(r)) => matches!(r.request, R::FlowMod(_)),
                ("packet_out", Ok(r)) => matches!(r.request, R::PacketOut(_)),
                ("role_request", Ok(r)) => matches!(r.request, R::RoleRequest(_)),
                ("set_async", Ok(r)) => matches!(r.request, R::SetAsync(_)),
                ("get_async_request", Ok(r)) => r.request == R::GetAsyncRequest,
                ("nx_role_request", Ok(r)) => {
                    matches!(r.request, R::Experimenter(E::NxRoleRequest(_)))
                }
                ("bundle_discard", Ok(r)) => {
                    matches!(r.request, R::Experimenter(E::BundleControl(_)))
                }
                ("experimenter", Ok(r)) => matches!(
                    r.request,
                    R::Experimenter(E::BundleControl(_) | E::BundleAdd(_))
                ),
                // Nicira messages: the flow-mod table id, NXT_FLOW_MODs, and the NXM format
                // when the connection takes it; NXT_PACKET_IN2 refused.
                ("vendor", Ok(r)) => match &r.request {
                    R::Experimenter(E::FlowModTableId(true)) | R::FlowMod(_) => true,
                    R::Experimenter(E::SetFlowFormatNxm) => nxm,
                    _ => false,
                },
                ("vendor", Err(e)) => {
                    e.reply == ErrorCode::BadRequest(BadRequest::Eperm)
                        && (!nxm || e.field == "nx_set_packet_in_format.format")
                }
                ("port_stats_request" | "stats_request" | "multipart_request", Ok(r)) => {
                    matches!(r.request, R::Multipart(_))
                }
                _ => false,
            };
            assert!(ok, "{name} (nxm {nxm}): {got:?}");
        }
    }
}
