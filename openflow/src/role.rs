//! ROLE_REQUEST/ROLE_REPLY (1.3): a controller asks to be master, slave or equal.
//! (1.0 has Nicira's NXT_ROLE_REQUEST instead; see [`crate::nicira`].)

use crate::codec::{Put, Reader};
use crate::error::{DecodeError, ErrorCode, RoleRequestFailed};
use crate::header::{expect_type, message, MsgType, Version};

/// A controller's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Keep the current role (a request that only reads it).
    NoChange,
    /// Full access, like every other equal controller (the default).
    Equal,
    /// Full access; the switch makes every other master a slave.
    Master,
    /// Read-only access, no asynchronous messages but PORT_STATUS.
    Slave,
}

impl Role {
    /// The OFPCR_ROLE_* value.
    pub fn wire(self) -> u32 {
        match self {
            Role::NoChange => 0,
            Role::Equal => 1,
            Role::Master => 2,
            Role::Slave => 3,
        }
    }

    /// The role of an OFPCR_ROLE_* value; ROLE_REQUEST_FAILED/BAD_ROLE otherwise.
    pub fn from_wire(v: u32) -> Result<Role, DecodeError> {
        Ok(match v {
            0 => Role::NoChange,
            1 => Role::Equal,
            2 => Role::Master,
            3 => Role::Slave,
            _ => {
                return Err(DecodeError::new(
                    "ofp_role_request.role",
                    format!("unknown role {v}"),
                    ErrorCode::RoleRequestFailed(RoleRequestFailed::BadRole),
                ))
            }
        })
    }
}

/// A decoded ROLE_REQUEST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoleRequest {
    /// The role asked for.
    pub role: Role,
    /// The master election generation (only meaningful for MASTER and SLAVE: the switch
    /// refuses, as STALE, a generation older than the newest it has seen).
    pub generation_id: u64,
}

impl RoleRequest {
    /// Decodes a whole 1.3 ROLE_REQUEST.
    pub fn parse(msg: &[u8]) -> Result<RoleRequest, DecodeError> {
        let (_, _, body) = expect_type(msg, MsgType::RoleRequest)?;
        let mut r = Reader::new(body);
        let role = Role::from_wire(r.u32("ofp_role_request.role")?)?;
        r.skip(4, "ofp_role_request.pad")?;
        let generation_id = r.u64("ofp_role_request.generation_id")?;
        Ok(RoleRequest {
            role,
            generation_id,
        })
    }
}

/// The 1.3 ROLE_REPLY: the connection's role (after the request) and the generation id.
pub fn encode_role_reply(xid: u32, role: Role, generation_id: u64) -> Vec<u8> {
    message(Version::Of13, MsgType::RoleReply, xid, |b| {
        b.put_u32(role.wire());
        b.put_zeros(4);
        b.put_u64(generation_id);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round() {
        let m = message(Version::Of13, MsgType::RoleRequest, 3, |b| {
            b.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 0]);
            b.extend_from_slice(&9u64.to_be_bytes());
        });
        let r = RoleRequest::parse(&m).unwrap();
        assert_eq!((r.role, r.generation_id), (Role::Master, 9));
        let reply = encode_role_reply(3, r.role, 9);
        assert_eq!(reply[1], 25);
        assert_eq!(&reply[8..], &m[8..]);
        let mut bad = m.clone();
        bad[11] = 7;
        assert_eq!(
            RoleRequest::parse(&bad)
                .unwrap_err()
                .reply
                .wire(Version::Of13),
            (11, 2)
        );
        assert!(RoleRequest::parse(&m[..20]).is_err());
    }
}
