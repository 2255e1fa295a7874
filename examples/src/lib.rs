//! Examples live next to this crate's Cargo.toml; see README.md.
