//! Home of the `vswitchd` and `vswitchctl` binaries (issue 4); nothing here yet.
