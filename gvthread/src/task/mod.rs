//! GVThreads themselves: state word, header, ids, priorities, spawning,
//! joining, and GVThread-local storage.

pub(crate) mod builder;
pub(crate) mod header;
pub(crate) mod id;
pub(crate) mod join;
pub(crate) mod local;
pub(crate) mod priority;
pub(crate) mod spawn;
pub(crate) mod state;
