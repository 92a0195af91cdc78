//! The control side of dummy ports: injecting frames and taking what the switch sent.
//!
//! The handle is looked up under the control lock and used after it is released, so a
//! `receive` or `take_sent` never waits for other control operations (nor they for it).

use ports::DummyHandle;

use super::{resolve_port, Switch, SwitchError};

impl Switch {
    /// The handle of the dummy port `port` (name or number, `LOCAL` for the bridge's own) of
    /// `bridge`; [`SwitchError::NotDummy`] for a port of another type.
    pub fn dummy_handle(&self, bridge: &str, port: &str) -> Result<DummyHandle, SwitchError> {
        let ctl = self.inner.lock();
        let br = ctl.bridge(bridge)?;
        let no = resolve_port(br, port)?;
        let p = &br.ports[&no];
        p.dummy
            .clone()
            .ok_or_else(|| SwitchError::NotDummy(p.name.clone()))
    }

    /// Queues `frames` for the dummy port to receive, as if they came off a wire, in order.
    /// All or nothing: returns how many were queued (all), or [`SwitchError::DummyFull`] when
    /// the queue ([`ports::DUMMY_QUEUE`] frames) lacks room for them. The PMD takes them on its
    /// next poll.
    pub fn dummy_receive(
        &self,
        bridge: &str,
        port: &str,
        frames: Vec<Vec<u8>>,
    ) -> Result<usize, SwitchError> {
        let h = self.dummy_handle(bridge, port)?;
        h.receive(frames)
            .map_err(|e| SwitchError::DummyFull(port.to_owned(), e))
    }

    /// Takes the frames the dummy port sent since the last call, oldest first, and how many
    /// were dropped meanwhile because its buffer of [`ports::DUMMY_QUEUE`] frames was full.
    pub fn dummy_take_sent(
        &self,
        bridge: &str,
        port: &str,
    ) -> Result<(Vec<Vec<u8>>, u64), SwitchError> {
        Ok(self.dummy_handle(bridge, port)?.take_sent())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use flow_table::flow_syntax::{parse_flow, FlowMode};

    use crate::{BridgeOptions, DatapathType, PortConfig, Switch, SwitchConfig, LOCAL_PORT};

    use super::*;

    fn switch() -> Switch {
        // Two PMDs, so that instances of one port run on both; taps would need root, and the
        // dummy bridge must not create any even when internal ports are on.
        Switch::start(SwitchConfig {
            pmd_cores: vec![None, None],
            internal_ports: true,
            ..SwitchConfig::default()
        })
        .unwrap()
    }

    fn frame(dst: u8, src: u8, tag: u8) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, dst]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, src]);
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
        f[14] = tag;
        f
    }

    /// Takes what `port` sent until `n` frames came (or 5 s passed).
    fn take(sw: &Switch, br: &str, port: &str, n: usize) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        while got.len() < n && Instant::now() < deadline {
            let (frames, lost) = sw.dummy_take_sent(br, port).unwrap();
            assert_eq!(lost, 0);
            got.extend(frames);
            std::thread::sleep(Duration::from_millis(2));
        }
        got
    }

    #[test]
    fn a_dummy_bridge_forwards_injected_frames_by_its_rules() {
        let sw = switch();
        let br = "vsdum0";
        let opts = BridgeOptions {
            datapath_type: DatapathType::Dummy,
        };
        sw.add_bridge_with(br, opts).unwrap();
        assert_eq!(sw.bridge_options(br).unwrap(), opts);
        let local = &sw.ports(br).unwrap()[0];
        assert_eq!(
            (local.port_no, local.config.clone(), local.link_up),
            (LOCAL_PORT, PortConfig::Dummy, true)
        );
        assert!(
            !std::path::Path::new("/sys/class/net").join(br).exists(),
            "no kernel device for a dummy bridge"
        );
        for p in ["p1", "p2", "p3"] {
            sw.add_port(br, p, PortConfig::Dummy, None).unwrap();
        }
        let spec = parse_flow(
            "priority=10,in_port=1,actions=output:2,output:3",
            FlowMode::Add,
            &|_| None,
        )
        .unwrap()
        .to_rule_spec();
        sw.add_flow(br, spec).unwrap();
        let frames: Vec<Vec<u8>> = (0..50).map(|i| frame(9, 1, i)).collect();
        assert_eq!(sw.dummy_receive(br, "p1", frames.clone()).unwrap(), 50);
        assert_eq!(take(&sw, br, "p2", 50), frames);
        assert_eq!(take(&sw, br, "3", 50), frames, "by number too");
        std::thread::sleep(Duration::from_millis(20));
        assert!(sw.dummy_take_sent(br, "p1").unwrap().0.is_empty());
        assert!(sw.dummy_take_sent(br, "LOCAL").unwrap().0.is_empty());
        let ports = sw.ports(br).unwrap();
        let p1 = ports.iter().find(|p| p.name == "p1").unwrap();
        assert_eq!((p1.port_no, p1.stats.rx_packets), (1, 50));

        // NORMAL (the default rule) floods to every other port, the LOCAL one included.
        let f = frame(0xff, 7, 1);
        sw.dummy_receive(br, "p2", vec![f.clone()]).unwrap();
        for p in ["p1", "p3", br] {
            assert_eq!(
                take(&sw, br, p, 1),
                std::slice::from_ref(&f),
                "flooded to {p}"
            );
        }
    }

    #[test]
    fn only_dummy_ports_take_frames() {
        let sw = switch();
        sw.add_bridge_with(
            "vsdum1",
            BridgeOptions {
                datapath_type: DatapathType::Dummy,
            },
        )
        .unwrap();
        sw.add_port(
            "vsdum1",
            "pa",
            PortConfig::Patch { peer: "pb".into() },
            None,
        )
        .unwrap();
        let e = sw.dummy_receive("vsdum1", "pa", vec![frame(1, 2, 3)]);
        assert!(
            matches!(e, Err(SwitchError::NotDummy(ref p)) if p == "pa"),
            "{e:?}"
        );
        assert!(matches!(
            sw.dummy_take_sent("vsdum1", "nope"),
            Err(SwitchError::NoSuchPort(_))
        ));
        assert!(matches!(
            sw.dummy_take_sent("nobr", "LOCAL"),
            Err(SwitchError::NoSuchBridge(_))
        ));
        // A netdev bridge without internal ports has no LOCAL port at all.
        let quiet = Switch::start(SwitchConfig {
            internal_ports: false,
            ..SwitchConfig::default()
        })
        .unwrap();
        quiet.add_bridge("vsdum2").unwrap();
        assert_eq!(
            quiet.bridge_options("vsdum2").unwrap().datapath_type,
            DatapathType::Netdev
        );
        assert!(quiet.ports("vsdum2").unwrap().is_empty());
    }
}
