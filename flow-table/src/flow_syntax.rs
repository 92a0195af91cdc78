//! The flow syntax of ovs-ofctl: parsing `add-flow`/`del-flows` strings and printing rules as
//! `dump-flows` does. (Being written; see issue 4.)
