//! The per-burst scratch state of a PMD: what one stage of the burst pipeline leaves for the
//! next (see `Pmd::process`).
//!
//! It lives in the PMD and is reused for every burst, so that running a burst allocates
//! nothing: every array is sized for [`BATCH_SIZE`] packets, and the one vector (translations
//! the megaflow cache could not hold) has that capacity from the start.

use flow_table::key::FlowKey;
use flow_table::{FlowRef, Translation};
use ports::BATCH_SIZE;

use crate::datapath::stats::DropReason;

/// What a packet gets, as `classify_burst` decides and `dispatch_burst` carries out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Its megaflow is exactly one output to the port at this index of the bridge's ports: it
    /// stays in the receive batch and joins that port's transmit batch without running actions.
    Port(u32),
    /// Run the actions of this installed megaflow.
    Flow(FlowRef),
    /// Run the actions of the translation at this index of [`BurstScratch::uncached`] (the flow
    /// limit kept it out of the megaflow cache).
    Uncached(u8),
    /// Drop it, counting this reason.
    Drop(DropReason),
}

/// Keys, hashes and verdicts of the burst in flight.
pub(crate) struct BurstScratch {
    /// Packets in the burst.
    pub n: usize,
    /// The port they came in on (its number).
    pub in_port: u32,
    /// Their flow keys (boxed: 32 keys take 3.3 KB).
    pub keys: Box<[FlowKey; BATCH_SIZE]>,
    /// Whether the parser accepted each frame (a rejected one is dropped as malformed).
    pub valid: [bool; BATCH_SIZE],
    /// The keys' hashes, computed only for bursts that consult the EMC.
    pub hashes: [u32; BATCH_SIZE],
    /// Destination port indexes of the packets with a [`Verdict::Port`], in packet order; those
    /// packets stay in the batch, so the `kept` first entries describe it after the others
    /// have left.
    pub dest: [u32; BATCH_SIZE],
    /// Entries of `dest` in use.
    pub kept: usize,
    /// The other packets, by index in the batch, with their verdict, in packet order.
    pub slow: [(u8, Verdict); BATCH_SIZE],
    /// Entries of `slow` in use.
    pub n_slow: usize,
    /// Translations of the burst's uncached decisions (rare: only at the flow limit).
    pub uncached: Vec<Translation>,
}

impl BurstScratch {
    /// Scratch for bursts of up to [`BATCH_SIZE`] packets (allocated once, per PMD).
    pub fn new() -> BurstScratch {
        BurstScratch {
            n: 0,
            in_port: 0,
            keys: Box::new([FlowKey::ZERO; BATCH_SIZE]),
            valid: [false; BATCH_SIZE],
            hashes: [0; BATCH_SIZE],
            dest: [0; BATCH_SIZE],
            kept: 0,
            slow: [(0, Verdict::Drop(DropReason::Policy)); BATCH_SIZE],
            n_slow: 0,
            uncached: Vec::with_capacity(BATCH_SIZE),
        }
    }
}
