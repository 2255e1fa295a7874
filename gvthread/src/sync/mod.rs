//! Synchronisation: cancellation tokens (channels and mutexes live here too).

pub(crate) mod cancel;
pub(crate) mod chan;
pub(crate) mod mutex;
pub(crate) mod waitq;
