//! Experimenter (1.0: vendor) messages: the Nicira extensions `ovs-ofctl` sends before its
//! real work, and ONF's 1.3 bundles ([`crate::bundle`]).
//!
//! What ovs-ofctl sends, and what vswitch answers:
//! - NXT_SET_PACKET_IN_FORMAT (`monitor`, both versions): NXT_PACKET_IN2 then (1.0)
//!   NXT_PACKET_IN are refused (BAD_REQUEST/EPERM, as OVS refuses a format it cannot
//!   do); ovs-ofctl then takes standard PACKET_INs. The standard format is accepted.
//! - NXT_FLOW_MOD_TABLE_ID (a 1.0 flow mod with `table=N`): accepted; from then on the
//!   high byte of a 1.0 flow mod's command is the table
//!   ([`crate::request::ParseOptions::flow_mod_table_id`]).
//! - NXT_SET_FLOW_FORMAT (a 1.0 flow mod matching a field 1.0 lacks, such as `tun_id`,
//!   and every 1.0 `dump-flows`): OpenFlow 1.0's format is accepted; NXM is accepted only
//!   when the caller says it answers NXST_FLOW ([`parse_experimenter_with`],
//!   [`crate::request::ParseOptions::nxm`]), as ovs-ofctl then dumps flows with NXST_FLOW
//!   ([`crate::multipart::encode_nx_flow_stats`]) and sends NXT_FLOW_MODs (decoded by
//!   [`crate::FlowMod::parse`]); otherwise NXM is refused (EPERM), ovs-ofctl dumps with
//!   1.0's OFPST_FLOW and reports that the switch lacks the format for flows 1.0 cannot
//!   say.
//! - NXT_ROLE_REQUEST (1.0's role request): decoded; answer with [`encode_nx_role_reply`].
//! - Any other Nicira message is BAD_REQUEST/BAD_SUBTYPE (1.3: BAD_EXP_TYPE), any other
//!   vendor BAD_VENDOR (1.3: BAD_EXPERIMENTER).

use crate::actions::NX_VENDOR;
use crate::bundle::{BundleAdd, BundleCtrl, ONFT_BUNDLE_ADD_MESSAGE, ONFT_BUNDLE_CONTROL};
use crate::codec::{Put, Reader};
use crate::error::{BadRequest, DecodeError, ErrorCode, RoleRequestFailed, ONF_EXPERIMENTER};
use crate::header::{expect_type, message, Header, MsgType, Version};
use crate::role::Role;

/// NXT_* message subtypes.
#[allow(missing_docs)] // each is the NXT_ constant of the same name
pub mod nxt {
    pub const ROLE_REQUEST: u32 = 10;
    pub const ROLE_REPLY: u32 = 11;
    pub const SET_FLOW_FORMAT: u32 = 12;
    pub const FLOW_MOD: u32 = 13;
    pub const FLOW_MOD_TABLE_ID: u32 = 15;
    pub const SET_PACKET_IN_FORMAT: u32 = 16;
    pub const FLOW_AGE: u32 = 18;
    pub const SET_CONTROLLER_ID: u32 = 20;
}

/// NXFF_OPENFLOW10: NXT_SET_FLOW_FORMAT's 1.0 match format.
const NXFF_OPENFLOW10: u32 = 0;
/// NXFF_NXM.
const NXFF_NXM: u32 = 2;
/// NXPIF_STANDARD: plain PACKET_IN (OFPT_PACKET_IN of the connection's version).
const NXPIF_STANDARD: u32 = 0;

/// An experimenter message vswitch takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Experimenter<'a> {
    /// NXT_SET_FLOW_FORMAT asking for OpenFlow 1.0's own match format: nothing changes.
    SetFlowFormatOpenFlow10,
    /// NXT_SET_FLOW_FORMAT asking for NXM (only when accepted: see
    /// [`parse_experimenter_with`]): flow statistics go out as NXST_FLOW from now on.
    SetFlowFormatNxm,
    /// NXT_FLOW_MOD_TABLE_ID: whether 1.0 flow mods carry a table in their command's high
    /// byte from now on.
    FlowModTableId(bool),
    /// NXT_SET_PACKET_IN_FORMAT asking for standard PACKET_INs: nothing changes.
    SetPacketInFormatStandard,
    /// NXT_ROLE_REQUEST (OTHER is [`Role::Equal`]).
    NxRoleRequest(Role),
    /// ONFT_BUNDLE_CONTROL (1.3).
    BundleControl(BundleCtrl),
    /// ONFT_BUNDLE_ADD_MESSAGE (1.3).
    BundleAdd(BundleAdd<'a>),
}

fn refuse(field: &'static str, msg: String, code: BadRequest) -> DecodeError {
    DecodeError::new(field, msg, ErrorCode::BadRequest(code))
}

/// Decodes a whole EXPERIMENTER (1.0 VENDOR) message; what vswitch does not do is an error
/// naming the OpenFlow error to answer with. The NXM flow format is refused.
pub fn parse_experimenter(msg: &[u8]) -> Result<Experimenter<'_>, DecodeError> {
    parse_experimenter_with(msg, false)
}

/// [`parse_experimenter`], accepting the NXM flow format when `accept_nxm` (the caller
/// answers NXST_FLOW/NXST_AGGREGATE with [`crate::multipart::encode_nx_flow_stats`] and
/// [`crate::multipart::encode_nx_aggregate`]).
pub fn parse_experimenter_with(
    msg: &[u8],
    accept_nxm: bool,
) -> Result<Experimenter<'_>, DecodeError> {
    let (h, version, body) = expect_type(msg, MsgType::Experimenter)?;
    let mut r = Reader::new(body);
    let vendor = r.u32("ofp_experimenter_header.experimenter")?;
    // 1.0's nicira_header has a 32-bit subtype where 1.3 has exp_type: the same bytes.
    let sub = r.u32("ofp_experimenter_header.exp_type")?;
    match (vendor, sub) {
        (NX_VENDOR, _) => nicira(sub, &mut r, accept_nxm),
        (ONF_EXPERIMENTER, ONFT_BUNDLE_CONTROL) if version == Version::Of13 => Ok(
            Experimenter::BundleControl(BundleCtrl::parse_body(r.rest())?),
        ),
        (ONF_EXPERIMENTER, ONFT_BUNDLE_ADD_MESSAGE) if version == Version::Of13 => Ok(
            Experimenter::BundleAdd(BundleAdd::parse_body(&h, r.rest())?),
        ),
        (ONF_EXPERIMENTER, _) if version == Version::Of13 => Err(refuse(
            "ofp_experimenter_header.exp_type",
            format!("ONF message {sub} is not supported by vswitch"),
            BadRequest::BadExpType,
        )),
        _ => Err(refuse(
            "ofp_experimenter_header.experimenter",
            format!("experimenter {vendor:#x} is not known to vswitch in {version:?}"),
            BadRequest::BadExperimenter,
        )),
    }
}

fn nicira<'a>(
    sub: u32,
    r: &mut Reader<'_>,
    accept_nxm: bool,
) -> Result<Experimenter<'a>, DecodeError> {
    match sub {
        nxt::SET_FLOW_FORMAT => match r.u32("nx_set_flow_format.format")? {
            NXFF_OPENFLOW10 => Ok(Experimenter::SetFlowFormatOpenFlow10),
            NXFF_NXM if accept_nxm => Ok(Experimenter::SetFlowFormatNxm),
            NXFF_NXM => Err(refuse(
                "nx_set_flow_format.format",
                "the NXM flow format is not supported by vswitch".into(),
                BadRequest::Eperm,
            )),
            f => Err(refuse(
                "nx_set_flow_format.format",
                format!("unknown flow format {f}"),
                BadRequest::Eperm,
            )),
        },
        nxt::FLOW_MOD_TABLE_ID => {
            let set = r.u8("nx_flow_mod_table_id.set")?;
            r.skip(7, "nx_flow_mod_table_id.pad")?;
            Ok(Experimenter::FlowModTableId(set != 0))
        }
        nxt::SET_PACKET_IN_FORMAT => match r.u32("nx_set_packet_in_format.format")? {
            NXPIF_STANDARD => Ok(Experimenter::SetPacketInFormatStandard),
            f => Err(refuse(
                "nx_set_packet_in_format.format",
                format!("packet-in format {f} is not supported by vswitch (only standard, 0)"),
                BadRequest::Eperm,
            )),
        },
        nxt::ROLE_REQUEST => {
            let role = match r.u32("nx_role_request.role")? {
                0 => Role::Equal,
                1 => Role::Master,
                2 => Role::Slave,
                v => {
                    return Err(DecodeError::new(
                        "nx_role_request.role",
                        format!("unknown Nicira role {v}"),
                        ErrorCode::RoleRequestFailed(RoleRequestFailed::BadRole),
                    ))
                }
            };
            Ok(Experimenter::NxRoleRequest(role))
        }
        // A flow mod: FlowMod::parse decodes it (Received::parse routes it there).
        nxt::FLOW_MOD => Err(refuse(
            "nicira_header.subtype",
            "NXT_FLOW_MOD is a flow mod, not a message of its own".into(),
            BadRequest::BadExpType,
        )),
        _ => Err(refuse(
            "nicira_header.subtype",
            format!("Nicira message {sub} is not supported by vswitch"),
            BadRequest::BadExpType,
        )),
    }
}

/// The NXT_ROLE_REPLY (1.0) telling the connection's role after an NXT_ROLE_REQUEST
/// with `xid` ([`Role::NoChange`] is not a Nicira role: the reply says OTHER).
pub fn encode_nx_role_reply(version: Version, xid: u32, role: Role) -> Vec<u8> {
    message(version, MsgType::Experimenter, xid, |b| {
        b.put_u32(NX_VENDOR);
        b.put_u32(nxt::ROLE_REPLY);
        b.put_u32(match role {
            Role::Master => 1,
            Role::Slave => 2,
            Role::Equal | Role::NoChange => 0,
        });
    })
}

/// Whether a whole message is a Nicira or ONF experimenter message (for logging what a
/// peer tried): its (experimenter, subtype), if it is one.
pub fn experimenter_ids(msg: &[u8]) -> Option<(u32, u32)> {
    let h = Header::parse(msg).ok()?;
    (h.msg_type().ok()? == MsgType::Experimenter && h.length >= 16).then(|| {
        let w = |i: usize| u32::from_be_bytes([msg[i], msg[i + 1], msg[i + 2], msg[i + 3]]);
        (w(8), w(12))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Messages captured from ovs-ofctl 3.1.
    #[test]
    fn ovs_ofctl_messages() {
        // `-O OpenFlow10 add-flow table=3,...`
        let tid = hex("0104001800000002000023200000000f0100000000000000");
        assert_eq!(
            parse_experimenter(&tid).unwrap(),
            Experimenter::FlowModTableId(true)
        );
        // `monitor`: NXT_PACKET_IN2, then (1.0) NXT_PACKET_IN, refused.
        for m in [
            "0104001400000002000023200000001000000002",
            "0404001400000002000023200000001000000002",
            "0104001400000004000023200000001000000001",
        ] {
            let e = parse_experimenter(&hex(m)).unwrap_err();
            assert_eq!(e.reply.wire(Version::Of10), (1, 5), "{m}");
        }
        let std = hex("0104001400000004000023200000001000000000");
        assert_eq!(
            parse_experimenter(&std).unwrap(),
            Experimenter::SetPacketInFormatStandard
        );
        // `-O OpenFlow10 add-flow tun_id=5,...`: NXM refused.
        let nxm = hex("0104001400000002000023200000000c00000002");
        let e = parse_experimenter(&nxm).unwrap_err();
        assert_eq!(e.reply, ErrorCode::BadRequest(BadRequest::Eperm));
        assert_eq!(
            parse_experimenter_with(&nxm, true).unwrap(),
            Experimenter::SetFlowFormatNxm
        );
        let of10 = hex("0104001400000002000023200000000c00000000");
        assert_eq!(
            parse_experimenter(&of10).unwrap(),
            Experimenter::SetFlowFormatOpenFlow10
        );
        // NXT_FLOW_MOD, an unknown subtype, an unknown vendor, ONF in 1.0, truncated.
        let nx_fm = hex("0104001000000004000023200000000d");
        let e = parse_experimenter(&nx_fm).unwrap_err();
        assert_eq!(e.reply.wire(Version::Of10), (1, 4));
        let other = hex("0104001000000004000023200000006f");
        assert_eq!(
            parse_experimenter(&other).unwrap_err().reply,
            ErrorCode::BadRequest(BadRequest::BadExpType)
        );
        let vendor = hex("0104001000000004000000420000000c");
        assert_eq!(
            parse_experimenter(&vendor)
                .unwrap_err()
                .reply
                .wire(Version::Of13),
            (1, 3)
        );
        let onf10 = hex("01040018000000044f4e4600000008fc0000000000000003");
        assert_eq!(
            parse_experimenter(&onf10).unwrap_err().reply,
            ErrorCode::BadRequest(BadRequest::BadExperimenter)
        );
        let short = hex("0104000c0000000400002320");
        assert_eq!(
            parse_experimenter(&short).unwrap_err().reply,
            ErrorCode::BadRequest(BadRequest::BadLen)
        );
        assert_eq!(experimenter_ids(&tid), Some((NX_VENDOR, 15)));
    }

    #[test]
    fn nx_role() {
        let m = hex("0104001400000007000023200000000a00000001");
        assert_eq!(
            parse_experimenter(&m).unwrap(),
            Experimenter::NxRoleRequest(Role::Master)
        );
        let r = encode_nx_role_reply(Version::Of10, 7, Role::Master);
        assert_eq!(r, hex("0104001400000007000023200000000b00000001"));
    }
}
