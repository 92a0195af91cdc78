//! Bridges, PMD threads, action execution, L2 learning and statistics (issue 3, in progress:
//! so far the MAC learning table and the NORMAL action's resolution).

#![warn(missing_docs)]

pub mod mac_table;
pub mod normal;
