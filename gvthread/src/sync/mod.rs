//! Synchronisation: channels and `select`, `SchedMutex`, cancellation tokens,
//! and the wait queue they share.

pub(crate) mod cancel;
pub(crate) mod chan;
pub(crate) mod mutex;
pub(crate) mod select;
pub(crate) mod waitq;
