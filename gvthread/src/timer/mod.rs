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

mod policy;
pub(crate) mod thread;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::util::futex::Parker;

/// Identifies a registered timer, for cancellation.
pub(crate) type TimerKey = (Instant, u64);

/// [`Timers::wake_at`] while the timer thread is awake: it will read the
/// queue again before it sleeps, but a timer added meanwhile may have been
/// missed, so adders wake it (a token: its next park returns at once).
const AWAKE: u64 = u64::MAX;

/// The sleep queue.
pub(crate) struct Timers {
    pub(crate) queue: Mutex<BTreeMap<TimerKey, (u32, u32)>>,
    /// Where the timer thread sleeps. A futex parker rather than a condvar so
    /// that the preemption signal handler may wake it (async-signal-safe).
    pub(crate) parker: Parker,
    /// When the sleeping timer thread wakes anyway (ns since `epoch`), or
    /// [`AWAKE`]. A timer due later needs no wake-up: on a machine whose CPUs
    /// are busy, every needless wake-up of the timer thread can leave it
    /// waiting for a CPU when its real deadline comes (see `util::slice`).
    wake_at: AtomicU64,
    /// When a waker asked the timer thread to look again at wake-up
    /// preemption (ns since `epoch`; `u64::MAX`: not asked), see
    /// [`recheck_at`](Self::recheck_at).
    recheck_at: AtomicU64,
    epoch: Instant,
    seq: AtomicU64,
}

impl Timers {
    pub(crate) fn new() -> Timers {
        Timers {
            queue: Mutex::new(BTreeMap::new()),
            parker: Parker::new(),
            wake_at: AtomicU64::new(AWAKE),
            recheck_at: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
            seq: AtomicU64::new(0),
        }
    }

    fn ns(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_nanos().min(u64::MAX as u128 - 1) as u64
    }

    /// Wakes (slot, generation) at `deadline`.
    pub(crate) fn add(&self, deadline: Instant, slot: u32, generation: u32) -> TimerKey {
        let key = (deadline, self.seq.fetch_add(1, Ordering::Relaxed));
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let earliest = q.first_key_value().is_none_or(|(k, _)| key < *k);
        q.insert(key, (slot, generation));
        drop(q);
        // Pairs with `awake`/`sleeping_until` (SeqCst): either the timer
        // thread read the queue after the insert, or this load sees what it
        // planned after reading it, or it sees `AWAKE`.
        if earliest && self.ns(deadline) < self.wake_at.load(Ordering::SeqCst) {
            self.parker.unpark();
        }
        key
    }

    /// Asks the timer thread to run `Monitor::after_wakes` at `at` (or
    /// sooner, if asked for sooner). Async-signal-safe.
    pub(crate) fn recheck_at(&self, at: Instant) {
        let ns = self.ns(at);
        self.recheck_at.fetch_min(ns, Ordering::SeqCst);
        // Pairs with `awake`/`sleeping_until` as in `add`.
        if ns < self.wake_at.load(Ordering::SeqCst) {
            self.parker.unpark();
        }
    }

    /// The timer thread: the recheck asked for since its last call, if any.
    pub(crate) fn take_recheck(&self) -> Option<Instant> {
        let ns = self.recheck_at.swap(u64::MAX, Ordering::SeqCst);
        (ns != u64::MAX).then(|| self.epoch + std::time::Duration::from_nanos(ns))
    }

    /// The timer thread: awake, about to read the queue.
    pub(crate) fn awake(&self) {
        self.wake_at.store(AWAKE, Ordering::SeqCst);
    }

    /// The timer thread: about to sleep for `wait` (`None`: until woken),
    /// having read the queue.
    pub(crate) fn sleeping_until(&self, now: Instant, wait: Option<std::time::Duration>) {
        let at = wait.and_then(|w| now.checked_add(w)).map_or(AWAKE, |t| self.ns(t));
        self.wake_at.store(at, Ordering::SeqCst);
    }

    /// Removes a timer that has not fired (no-op if it fired).
    pub(crate) fn cancel(&self, key: TimerKey) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.remove(&key);
    }
}
