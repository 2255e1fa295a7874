//! Runtime construction, handles, and shutdown.

pub(crate) mod config;
pub(crate) mod error;
pub(crate) mod handle;
#[allow(clippy::module_inception)]
pub(crate) mod runtime;
pub(crate) mod shared;
