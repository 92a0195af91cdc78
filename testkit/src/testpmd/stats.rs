//! Counters testpmd reports, read from its answers to `show port stats` and
//! `show fwd stats all`.

/// Counters of one port from `show port stats N` (the ethdev's basic statistics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TestpmdPortStats {
    /// Packets received (and handed to testpmd).
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets the device dropped for lack of room (`imissed`).
    pub rx_missed: u64,
    /// Erroneous packets received.
    pub rx_errors: u64,
    /// Receive failures for lack of mbufs.
    pub rx_nombuf: u64,
    /// Packets transmitted (accepted by the device's ring).
    pub tx_packets: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Transmit errors; for `net_vhost`, packets the frontend had no room for.
    pub tx_errors: u64,
}

/// Counters of one port kept by testpmd's forwarding engine since the last `start`
/// (`show fwd stats all`); unlike [`TestpmdPortStats`] they count what the engine failed to send.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FwdStats {
    /// Packets the engine received on the port.
    pub rx_packets: u64,
    /// Received packets the engine dropped (e.g. bad checksum in `csum` mode).
    pub rx_dropped: u64,
    /// Packets the engine transmitted on the port.
    pub tx_packets: u64,
    /// Packets the port's ring refused (full): freed, never sent.
    pub tx_dropped: u64,
}

/// The value after the token `key` (such as `RX-packets:`) in `text`.
pub(super) fn stat(text: &str, key: &str) -> Option<u64> {
    let mut it = text.split_whitespace();
    while let Some(tok) = it.next() {
        if tok == key {
            return it.next()?.parse().ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_port_stats() {
        let out = "\n  ######################## NIC statistics for port 1  ########################\n  \
                   RX-packets: 14         RX-missed: 2          RX-bytes:  896\n  RX-errors: 1\n  \
                   RX-nombuf:  3         \n  TX-packets: 7          TX-errors: 5          TX-bytes:  448\n";
        assert_eq!(stat(out, "RX-packets:"), Some(14));
        assert_eq!(stat(out, "RX-missed:"), Some(2));
        assert_eq!(stat(out, "RX-bytes:"), Some(896));
        assert_eq!(stat(out, "RX-nombuf:"), Some(3));
        assert_eq!(stat(out, "TX-errors:"), Some(5));
        assert_eq!(stat(out, "TX-bytes:"), Some(448));
        assert_eq!(stat(out, "RX-dropped:"), None);
    }
}
