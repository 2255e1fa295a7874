//! The worker *role* (Go's P): a run queue and the right to run GVThreads.
//!
//! A role is held by exactly one OS thread at a time (a [`Machine`], Go's M).
//! Keeping them apart lets a role move to another OS thread while the thread
//! that held it stays blocked (forced preemption, stuck system calls) without
//! the run queue noticing.
//!
//! [`Machine`]: super::machine::Machine

use std::sync::atomic::{AtomicU32, AtomicU64};

use super::queue::LocalQueue;
use crate::util::futex::Parker;

/// One worker role.
pub(crate) struct Worker {
    /// Index in `Shared::workers`.
    pub(crate) index: usize,
    /// Runs only `Priority::Low` GVThreads.
    pub(crate) low_priority: bool,
    /// Normal-priority run queue (owner: the machine holding this role).
    pub(crate) local: LocalQueue,
    /// Where the holding machine sleeps when idle.
    pub(crate) parker: Parker,
    /// Scheduling decisions made; every 61st looks at the global queue first.
    pub(crate) ticks: AtomicU32,
    /// Bumped at every switch and safepoint; the preemption monitor watches it.
    pub(crate) activity: AtomicU64,
}

impl Worker {
    pub(crate) fn new(index: usize, low_priority: bool) -> Worker {
        Worker {
            index,
            low_priority,
            local: LocalQueue::new(),
            parker: Parker::new(),
            ticks: AtomicU32::new(0),
            activity: AtomicU64::new(0),
        }
    }
}
