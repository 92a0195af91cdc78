//! Resource caps: OpenFlow rules and ports per bridge (checked by the service) and requests
//! served at once (a layer around the router). Each answers with an error that names the limit
//! and the configuration key that sets it, so an operator knows what to raise.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::Router;
use tokio::sync::Semaphore;

use crate::api::ApiError;
use crate::service::ServiceError;

/// Per-bridge caps of the datapath configuration.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `datapath.max_flows`.
    pub max_flows: usize,
    /// `datapath.max_ports`.
    pub max_ports: usize,
}

impl Limits {
    /// Refuses `adding` rules to a bridge holding `have`. Counted before the change (a rule
    /// that replaces an identical one counts too), so the table never exceeds the cap.
    pub fn check_flows(
        &self,
        bridge: &str,
        have: usize,
        adding: usize,
    ) -> Result<(), ServiceError> {
        if have.saturating_add(adding) > self.max_flows {
            return Err(ServiceError::Conflict(format!(
                "flow limit reached: bridge {bridge} has {have} flows and the request adds \
                 {adding}, above datapath.max_flows = {}",
                self.max_flows
            )));
        }
        Ok(())
    }

    /// Refuses a port on a bridge holding `have` ports.
    pub fn check_ports(&self, bridge: &str, have: usize) -> Result<(), ServiceError> {
        if have >= self.max_ports {
            return Err(ServiceError::Conflict(format!(
                "port limit reached: bridge {bridge} has {have} ports, datapath.max_ports = {}",
                self.max_ports
            )));
        }
        Ok(())
    }
}

/// Serves at most `max` requests at once; the others get 503 at once (a client that holds a
/// request open, e.g. by sending its body slowly, cannot queue up the rest behind it).
pub fn limit_clients(router: Router, max: usize) -> Router {
    let permits = Arc::new(Semaphore::new(max));
    router.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| {
            let permits = Arc::clone(&permits);
            async move {
                match permits.try_acquire_owned() {
                    Ok(_permit) => next.run(req).await,
                    Err(_) => ApiError(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!(
                            "too many concurrent requests: api.max_clients = {max}; retry later"
                        ),
                        serde_json::Value::Null,
                    )
                    .into_response(),
                }
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_name_the_key_that_raises_them() {
        let l = Limits {
            max_flows: 10,
            max_ports: 2,
        };
        assert!(l.check_flows("br0", 5, 5).is_ok());
        let e = format!("{:?}", l.check_flows("br0", 5, 6).unwrap_err());
        assert!(
            e.contains("Conflict") && e.contains("datapath.max_flows = 10"),
            "{e}"
        );
        assert!(l.check_ports("br0", 1).is_ok());
        let e = format!("{:?}", l.check_ports("br0", 2).unwrap_err());
        assert!(e.contains("datapath.max_ports = 2"), "{e}");
    }
}
