//! REST management API (axum) and the persistent configuration store. Filled by issue 4; nothing
//! here yet.
