//! Synchronisation: cancellation tokens (channels and mutexes live here too).

pub(crate) mod cancel;
