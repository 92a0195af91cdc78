//! Shared helpers for the benchmarks (packet builders).
