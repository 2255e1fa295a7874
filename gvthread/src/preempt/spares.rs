//! The pool of spare machines, usable from a signal handler.

use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use crate::sched::machine::Machine;

/// Spare machines waiting for a role: a fixed array of pointers, so that
/// taking one is a lock-free, allocation-free scan (async-signal-safe).
pub(crate) struct SparePool {
    slots: Box<[AtomicPtr<Machine>]>,
    count: AtomicUsize,
}

impl SparePool {
    pub(crate) fn new(capacity: usize) -> SparePool {
        SparePool {
            slots: (0..capacity).map(|_| AtomicPtr::new(ptr::null_mut())).collect(),
            count: AtomicUsize::new(0),
        }
    }

    /// Offers `m` as a spare; false if the pool is full (the caller exits).
    pub(crate) fn push(&self, m: &Machine) -> bool {
        let p = m as *const Machine as *mut Machine;
        for s in self.slots.iter() {
            if s.compare_exchange(ptr::null_mut(), p, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                self.count.fetch_add(1, Ordering::AcqRel);
                return true;
            }
        }
        false
    }

    /// Takes a spare, if any. Async-signal-safe.
    pub(crate) fn pop(&self) -> Option<*const Machine> {
        if self.count.load(Ordering::Acquire) == 0 {
            return None;
        }
        for s in self.slots.iter() {
            let p = s.load(Ordering::Acquire);
            if !p.is_null() && s.compare_exchange(p, ptr::null_mut(), Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                self.count.fetch_sub(1, Ordering::AcqRel);
                return Some(p);
            }
        }
        None
    }

    /// Spares waiting now.
    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }
}
