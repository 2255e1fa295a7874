//! Timers: the sleep queue and the timer thread.
//!
//! The sleep queue is an ordered map keyed by (deadline, sequence number), so
//! the earliest deadline is the first entry and a timer that is no longer
//! needed (its GVThread was woken by something else first) is removed in
//! O(log n) instead of lingering. Entries name (slot, generation): a GVThread
//! that has ended or whose slot was reused is not woken.
//!
//! The timer thread sleeps until the earliest deadline (or indefinitely when
//! there is nothing to do, so an idle runtime costs no CPU), wakes the
//! GVThreads whose deadlines passed, and does housekeeping (giving back the
//! pages of free slots).

pub(crate) mod thread;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::util::futex::Parker;

/// Identifies a registered timer, for cancellation.
pub(crate) type TimerKey = (Instant, u64);

/// The sleep queue.
pub(crate) struct Timers {
    pub(crate) queue: Mutex<BTreeMap<TimerKey, (u32, u32)>>,
    /// Where the timer thread sleeps. A futex parker rather than a condvar so
    /// that the preemption signal handler may wake it (async-signal-safe).
    pub(crate) parker: Parker,
    seq: AtomicU64,
}

impl Timers {
    pub(crate) fn new() -> Timers {
        Timers { queue: Mutex::new(BTreeMap::new()), parker: Parker::new(), seq: AtomicU64::new(0) }
    }

    /// Wakes (slot, generation) at `deadline`.
    pub(crate) fn add(&self, deadline: Instant, slot: u32, generation: u32) -> TimerKey {
        let key = (deadline, self.seq.fetch_add(1, Ordering::Relaxed));
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let earliest = q.first_key_value().is_none_or(|(k, _)| key < *k);
        q.insert(key, (slot, generation));
        drop(q);
        if earliest {
            self.parker.unpark();
        }
        key
    }

    /// Removes a timer that has not fired (no-op if it fired).
    pub(crate) fn cancel(&self, key: TimerKey) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.remove(&key);
    }
}
