//! How a bridge is created: its datapath type, as OVS's `Bridge.datapath_type` column.

use std::fmt;
use std::str::FromStr;

/// What a bridge's own port (LOCAL, number 65534, named like the bridge) is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DatapathType {
    /// The userspace datapath with kernel devices: the LOCAL port is a tap named like the
    /// bridge (when [`SwitchConfig::internal_ports`](crate::SwitchConfig::internal_ports)).
    #[default]
    Netdev,
    /// As OVS's `datapath_type=dummy`: the LOCAL port is a dummy port in memory, so the bridge
    /// creates no kernel device at all (whatever `internal_ports` says: it needs no rights).
    Dummy,
}

impl DatapathType {
    /// Every type, in the order they are listed to people.
    pub const ALL: [DatapathType; 2] = [DatapathType::Netdev, DatapathType::Dummy];

    /// The name as `datapath_type=` takes it.
    pub fn name(self) -> &'static str {
        match self {
            DatapathType::Netdev => "netdev",
            DatapathType::Dummy => "dummy",
        }
    }
}

impl fmt::Display for DatapathType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is no [`DatapathType`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownDatapathType(pub String);

impl fmt::Display for UnknownDatapathType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown datapath_type {:?}: want netdev or dummy",
            self.0
        )
    }
}

impl std::error::Error for UnknownDatapathType {}

impl FromStr for DatapathType {
    type Err = UnknownDatapathType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DatapathType::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| UnknownDatapathType(s.to_owned()))
    }
}

/// Settings of a new bridge ([`Switch::add_bridge_with`](crate::Switch::add_bridge_with)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BridgeOptions {
    /// What its LOCAL port is.
    pub datapath_type: DatapathType,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_others_are_refused() {
        for t in DatapathType::ALL {
            assert_eq!(t.name().parse::<DatapathType>(), Ok(t));
        }
        assert_eq!(DatapathType::default(), DatapathType::Netdev);
        let e = "system".parse::<DatapathType>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown datapath_type \"system\": want netdev or dummy"
        );
    }
}
