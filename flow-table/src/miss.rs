//! What a bridge does with a packet its rules do not decide: the OpenFlow fail mode and
//! table-miss behaviour a controller connection sets.

/// A bridge's table-miss and fail-mode settings, carried in its [`crate::RuleTables`] so that
/// a change is published (and cached decisions invalidated) like any rule change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MissConfig {
    /// Fail-open (OVS's `fail_mode=standalone` without a controller): every packet gets NORMAL
    /// whatever the rules say. The rules stay installed, counters untouched, and take over
    /// again when this is turned off.
    pub fail_open: bool,
    /// `Some(max_len)`: a packet that matches no rule in table 0 or in a `goto_table` target is
    /// sent to the controller with reason `no_match` (its first `max_len` bytes), as OVS does
    /// for OpenFlow 1.0 controllers; `None`: it is dropped. A `resubmit` that finds no rule
    /// goes on silently in either case, as in OVS.
    pub controller: Option<u16>,
}
