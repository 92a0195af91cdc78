//! ONF bundles (OpenFlow 1.3's extension, what `ovs-ofctl --bundle` sends): flow mods held
//! per bundle id and applied on COMMIT. A bundle of adds only (what `--bundle add-flows`
//! makes) is applied as one change: one rule-set swap and one journal record, all or none.
//! A bundle that mixes commands applies them in order and stops at the first failure (a
//! deliberate difference: Open vSwitch undoes the ones before it).

use std::collections::HashMap;

use openflow::bundle::{BundleAdd, BundleCtrl, BundleCtrlType};
use openflow::error::BundleFailed;
use openflow::{ErrorCode, FlowMod, FlowModCommand};

use switch_core::Visibility;

use super::{apply_flow_mod, error, flow_mod_error, xid_of, Conn};
use crate::api::service_call;

/// Bundles one connection may have open at once.
const MAX_BUNDLES: usize = 64;
/// Messages one bundle may hold (a bound on the memory a peer can make the switch keep).
const MAX_MESSAGES: usize = 4_000_000;

/// One open bundle.
struct Bundle {
    /// Closed bundles take no more messages (COMMIT still applies them).
    closed: bool,
    /// The flow mods, decoded when added, with their raw bytes for error replies.
    msgs: Vec<(FlowMod, Vec<u8>)>,
}

/// A connection's open bundles, by id.
#[derive(Default)]
pub(in crate::ofchannel) struct Bundles {
    open: HashMap<u32, Bundle>,
}

fn failed(c: &Conn, xid: u32, code: BundleFailed, msg: &[u8]) -> Vec<Vec<u8>> {
    error(c.version, xid, ErrorCode::BundleFailed(code), msg)
}

impl Conn {
    pub(super) async fn bundle_control(
        &mut self,
        xid: u32,
        c: BundleCtrl,
        msg: &[u8],
    ) -> Vec<Vec<u8>> {
        match c.kind {
            BundleCtrlType::Open => {
                if self.bundles.open.contains_key(&c.bundle_id) {
                    return failed(self, xid, BundleFailed::BundleExist, msg);
                }
                if self.bundles.open.len() >= MAX_BUNDLES {
                    return failed(self, xid, BundleFailed::OutOfBundles, msg);
                }
                self.bundles.open.insert(
                    c.bundle_id,
                    Bundle {
                        closed: false,
                        msgs: Vec::new(),
                    },
                );
                vec![c.encode_reply(xid)]
            }
            BundleCtrlType::Close => match self.bundles.open.get_mut(&c.bundle_id) {
                None => failed(self, xid, BundleFailed::BadId, msg),
                Some(b) if b.closed => failed(self, xid, BundleFailed::BundleClosed, msg),
                Some(b) => {
                    b.closed = true;
                    vec![c.encode_reply(xid)]
                }
            },
            BundleCtrlType::Discard => match self.bundles.open.remove(&c.bundle_id) {
                None => failed(self, xid, BundleFailed::BadId, msg),
                Some(_) => vec![c.encode_reply(xid)],
            },
            BundleCtrlType::Commit => {
                let Some(b) = self.bundles.open.remove(&c.bundle_id) else {
                    return failed(self, xid, BundleFailed::BadId, msg);
                };
                let mut out = self.commit(b).await;
                if out.is_empty() {
                    out.push(c.encode_reply(xid));
                } else {
                    out.extend(failed(self, xid, BundleFailed::MsgFailed, msg));
                }
                out
            }
        }
    }

    pub(super) fn bundle_add(&mut self, xid: u32, a: BundleAdd<'_>, msg: &[u8]) -> Vec<Vec<u8>> {
        let version = self.version;
        let Some(b) = self.bundles.open.get_mut(&a.bundle_id) else {
            return failed(self, xid, BundleFailed::BadId, msg);
        };
        if b.closed {
            return failed(self, xid, BundleFailed::BundleClosed, msg);
        }
        if b.msgs.len() >= MAX_MESSAGES {
            return failed(self, xid, BundleFailed::MsgTooMany, msg);
        }
        match FlowMod::parse_with(a.message, self.opts.flow_mod_table_id) {
            Ok(fm) => {
                b.msgs.push((fm, a.message.to_vec()));
                Vec::new()
            }
            Err(e) => vec![e.to_error_msg(version, a.message)],
        }
    }

    /// Applies a bundle's flow mods; the errors to send when one failed (empty: all done).
    async fn commit(&self, b: Bundle) -> Vec<Vec<u8>> {
        let (version, bridge) = (self.version, self.bridge.clone());
        if b.msgs
            .iter()
            .all(|(fm, _)| fm.command == FlowModCommand::Add)
        {
            let specs = b.msgs.iter().map(|(fm, _)| fm.to_rule_spec()).collect();
            let first = b
                .msgs
                .first()
                .map(|(_, raw)| raw.clone())
                .unwrap_or_default();
            let done = service_call(&self.app, move |s| {
                s.add_rules_visible(&bridge, specs, None, Visibility::Tables)
                    .map(drop)
            })
            .await;
            return match done {
                Ok(()) => Vec::new(),
                Err(e) => {
                    tracing::info!(bridge = %self.bridge, "OpenFlow bundle refused: {e:?}");
                    error(version, xid_of(&first), flow_mod_error(&e), &first)
                }
            };
        }
        let done = service_call(&self.app, move |s| {
            for (i, (fm, _)) in b.msgs.iter().enumerate() {
                if let Err(e) = apply_flow_mod(s, &bridge, version, fm) {
                    let raw = b.msgs[i].1.clone();
                    return Ok(Some((e, raw)));
                }
            }
            Ok(None)
        })
        .await;
        match done {
            Ok(None) => Vec::new(),
            Ok(Some((e, raw))) => {
                tracing::info!(bridge = %self.bridge, "OpenFlow bundle stopped: {e:?}");
                error(version, xid_of(&raw), flow_mod_error(&e), &raw)
            }
            Err(e) => error(version, 0, flow_mod_error(&e), &[]),
        }
    }
}
