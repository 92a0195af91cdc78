//! A bridge's OpenFlow controllers and fail mode (`set-controller`, `set-fail-mode`), kept
//! with the bridge in the state directory. The connections themselves are the OpenFlow
//! channel's (`crate::ofchannel`), which reads these settings.

use super::{Service, ServiceError};
use crate::ofchannel::target::Target;

/// What a bridge does while no controller is connected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FailMode {
    /// Forward as a plain learning switch (NORMAL) until a controller connects.
    #[default]
    Standalone,
    /// Forward only by the flows installed.
    Secure,
}

impl FailMode {
    /// Reads `standalone` or `secure`.
    pub fn parse(s: &str) -> Result<FailMode, ServiceError> {
        match s {
            "standalone" => Ok(FailMode::Standalone),
            "secure" => Ok(FailMode::Secure),
            _ => Err(ServiceError::BadRequest(
                format!("fail mode '{s}': want standalone or secure"),
                Some(serde_json::json!({ "fail_mode": s })),
            )),
        }
    }

    /// The name `parse` reads.
    pub fn name(self) -> &'static str {
        match self {
            FailMode::Standalone => "standalone",
            FailMode::Secure => "secure",
        }
    }
}

/// A bridge's controller settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ControllerSettings {
    /// Targets, parsed.
    pub targets: Vec<Target>,
    /// The datapath id kept for the bridge (bridges made before it was kept have none).
    pub datapath_id: Option<u64>,
    /// The fail mode as set (`None`: unset, which acts as standalone).
    pub fail_mode: Option<FailMode>,
}

/// The datapath id a MAC address gives (its 48 bits, as OVS derives it).
pub fn mac_dpid(mac: flow_table::MacAddr) -> u64 {
    mac.octets()
        .iter()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

fn no_bridge(bridge: &str) -> ServiceError {
    ServiceError::NotFound(format!("no bridge named '{bridge}'"))
}

impl Service {
    /// Parses controller targets, checking each and refusing repeats.
    pub fn parse_targets(&self, targets: &[String]) -> Result<Vec<Target>, ServiceError> {
        let mut out: Vec<Target> = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            let target = Target::parse(t, &self.run_dir).map_err(|e| {
                ServiceError::BadRequest(e, Some(serde_json::json!({ "target": i })))
            })?;
            if out.contains(&target) {
                return Err(ServiceError::BadRequest(
                    format!("target '{t}' is given twice"),
                    Some(serde_json::json!({ "target": i })),
                ));
            }
            out.push(target);
        }
        Ok(out)
    }

    /// Replaces the controllers of `bridge` (an empty list removes them all).
    pub fn set_controllers(&self, bridge: &str, targets: &[String]) -> Result<(), ServiceError> {
        let parsed = self.parse_targets(targets)?;
        let mut state = self.lock();
        let mut next = state.clone();
        next.bridge_mut(bridge)
            .ok_or_else(|| no_bridge(bridge))?
            .controllers = parsed.iter().map(Target::to_string).collect();
        self.commit(&mut state, next, || {})
    }

    /// Sets (or with `None` clears) the fail mode of `bridge`.
    pub fn set_fail_mode(&self, bridge: &str, mode: Option<FailMode>) -> Result<(), ServiceError> {
        let mut state = self.lock();
        let mut next = state.clone();
        next.bridge_mut(bridge)
            .ok_or_else(|| no_bridge(bridge))?
            .fail_mode = mode.map(|m| m.name().to_owned());
        self.commit(&mut state, next, || {})
    }

    /// The controller settings of `bridge`. Saved targets that no longer parse (a file edited
    /// by hand) are logged and skipped rather than stopping the bridge.
    pub fn controller_settings(&self, bridge: &str) -> Result<ControllerSettings, ServiceError> {
        let state = self.read();
        let b = state.bridge(bridge).ok_or_else(|| no_bridge(bridge))?;
        let targets = b
            .controllers
            .iter()
            .filter_map(|t| match Target::parse(t, &self.run_dir) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::error!(bridge, "saved controller target skipped: {e}");
                    None
                }
            })
            .collect();
        let fail_mode = b.fail_mode.as_deref().and_then(|m| FailMode::parse(m).ok());
        let datapath_id = b
            .datapath_id
            .as_deref()
            .and_then(|d| u64::from_str_radix(d, 16).ok());
        Ok(ControllerSettings {
            targets,
            fail_mode,
            datapath_id,
        })
    }
}
