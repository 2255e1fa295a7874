//! Criterion benches live next to this crate's Cargo.toml; see docs/benchmarks.md.
