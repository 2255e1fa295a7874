//! Criterion benches live next to this crate's Cargo.toml; see docs/benchmarks.md.
//! This library holds what several of them share.

pub mod host;
