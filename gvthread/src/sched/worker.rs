//! The worker *role* (Go's P): a run queue and the right to run GVThreads.
//!
//! A role is held by exactly one OS thread at a time (a [`Machine`], Go's M).
//! Keeping them apart lets a role move to another OS thread while the thread
//! that held it stays blocked (forced preemption, stuck system calls) without
//! the run queue noticing.
//!
//! [`Machine`]: super::machine::Machine

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use super::machine::Machine;

use super::queue::LocalQueue;
use crate::memory::SlotCache;
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
    /// Bumped at every switch (and by a yield that found nothing else to
    /// run); the preemption monitor watches it.
    pub(crate) activity: AtomicU64,
    /// Running GVThreads (not in the scheduler loop); the monitor watches only
    /// busy roles.
    pub(crate) busy: AtomicBool,
    /// Cooperative preemption requested: the next safepoint yields.
    pub(crate) preempt: AtomicBool,
    /// The machine holding this role (for the monitor's signals).
    pub(crate) holder: AtomicPtr<Machine>,
    /// A GVThread just frozen by the preemption handler of this role's
    /// previous holder (`u32::MAX` if none). The next holder moves it to the
    /// tail of the global queue before running anything, so it waits behind
    /// everything already runnable (as Go does with preempted goroutines);
    /// the handler itself cannot push there (the global queue allocates).
    pub(crate) preempted: AtomicU32,
    /// The GVThread this role runs next (Go's `runnext`): the last one woken
    /// or spawned by a GVThread on this role (`u32::MAX` if none). It keeps a
    /// waker and its wakee on one worker (a channel ping-pong never crosses
    /// OS threads) and is not stealable; the preemption monitor moves it to
    /// the global queue if it waits there for more than a monitor tick.
    pub(crate) runnext: AtomicU32,
    /// Free slots kept by this role (see `SlotCache`).
    pub(crate) slot_cache: SlotCache,
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
            busy: AtomicBool::new(false),
            preempt: AtomicBool::new(false),
            holder: AtomicPtr::new(std::ptr::null_mut()),
            preempted: AtomicU32::new(u32::MAX),
            runnext: AtomicU32::new(u32::MAX),
            slot_cache: SlotCache::new(),
        }
    }

    /// Counts progress. Only the holder writes `activity`, so a
    /// plain load and store suffice (no read-modify-write).
    #[inline]
    pub(crate) fn note_activity(&self) {
        self.activity.store(self.activity.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }

    /// Counts a switch and drops a cooperative preemption request (the
    /// switch honours it).
    #[inline]
    pub(crate) fn note_switch(&self) {
        self.note_activity();
        self.clear_preempt_request();
    }

    /// Drops a cooperative preemption request.
    #[inline]
    pub(crate) fn clear_preempt_request(&self) {
        if self.preempt.load(Ordering::Relaxed) {
            self.preempt.store(false, Ordering::Relaxed);
        }
    }
}
