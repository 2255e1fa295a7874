//! The std/loom switch for the hand-written lock-free structures.
//!
//! Built with `RUSTFLAGS="--cfg loom"`, these names are loom's instrumented
//! types, and the `loom_*` tests explore every interleaving of the
//! structures' atomic operations (see `.ci/run`). Otherwise they are std's.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::AtomicU32;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::AtomicU32;
