//! Runtime construction, handles, and shutdown.

pub(crate) mod block_on;
pub(crate) mod config;
pub(crate) mod dump;
pub(crate) mod error;
pub(crate) mod handle;
pub(crate) mod live;
pub(crate) mod metrics;
pub(crate) mod role_threads;
#[allow(clippy::module_inception)]
pub(crate) mod runtime;
pub(crate) mod shared;
