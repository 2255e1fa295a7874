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
//! pages of free slots). A worker role whose hog was frozen because a timer
//! of the role fell due fires due timers itself ([`fire_due`], see
//! `preempt::deadline`): on a machine whose CPUs are all busy, Linux may
//! keep the timer thread waiting for a CPU for milliseconds.

mod policy;
pub(crate) mod thread;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use crate::runtime::shared::Shared;
use crate::util::futex::Parker;

/// Identifies a registered timer, for cancellation.
pub(crate) type TimerKey = (Instant, u64);

/// [`Timers::wake_at`] while the timer thread is awake: it will read the
/// queue again before it sleeps, but a timer added meanwhile may have been
/// missed, so adders wake it (a token: its next park returns at once).
const AWAKE: u64 = u64::MAX;

/// [`Timers::head`] when no timer is queued.
const NO_TIMER: u64 = u64::MAX;

/// A wake of the timer thread this much after the end of its timed sleep
/// counts as late: Linux kept it waiting for a CPU. On time it wakes within
/// tens of microseconds.
const LATE_WAKE: std::time::Duration = std::time::Duration::from_micros(250);

/// How long after a late wake the timer thread counts as late recently.
const LATE_FOR: std::time::Duration = std::time::Duration::from_secs(2);

/// Most timers one [`fire_due`] call takes from the queue.
const FIRE_BATCH: usize = 32;

/// The sleep queue.
pub(crate) struct Timers {
    queue: Mutex<BTreeMap<TimerKey, (u32, u32)>>,
    /// The earliest deadline queued (ns since `epoch`), or [`NO_TIMER`], and
    /// the slot whose timer it is: written under the queue's lock at every
    /// change of the head, read without it (by the preemption handler, see
    /// `preempt::deadline`). The two words are read apart, so a reader may
    /// pair a deadline with the slot of the next head; both are hints that
    /// the reader checks against the queue or the slot's state.
    head_ns: AtomicU64,
    head_slot: AtomicU32,
    /// Until when (ns since `epoch`) the timer thread counts as having woken
    /// late recently (see [`note_wake`](Self::note_wake)).
    late_until: AtomicU64,
    /// Tests: the timer thread fires nothing while set, as if Linux kept it
    /// off the CPU.
    #[cfg(test)]
    pub(crate) hold_firing: std::sync::atomic::AtomicBool,
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
            head_ns: AtomicU64::new(NO_TIMER),
            head_slot: AtomicU32::new(u32::MAX),
            late_until: AtomicU64::new(0),
            #[cfg(test)]
            hold_firing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<TimerKey, (u32, u32)>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes the head of `q` (see `head_ns`). Called under the lock.
    fn publish_head(&self, q: &BTreeMap<TimerKey, (u32, u32)>) {
        let (ns, slot) = q.first_key_value().map_or((NO_TIMER, u32::MAX), |(k, v)| (self.ns(k.0), v.0));
        self.head_slot.store(slot, Ordering::Relaxed);
        self.head_ns.store(ns, Ordering::Release);
    }

    /// The earliest timer queued: how long until it is due (zero: due now)
    /// and its slot, or `None` if no timer is queued. A hint (see
    /// `head_ns`). Async-signal-safe.
    pub(crate) fn head(&self, now: Instant) -> Option<(std::time::Duration, u32)> {
        let ns = self.head_ns.load(Ordering::Acquire);
        if ns == NO_TIMER {
            return None;
        }
        let slot = self.head_slot.load(Ordering::Relaxed);
        Some((std::time::Duration::from_nanos(ns.saturating_sub(self.ns(now))), slot))
    }

    /// Removes the timers due at `now` (at most `room`), handing each to
    /// `take`; returns the earliest deadline left.
    fn take_due(&self, now: Instant, room: usize, mut take: impl FnMut((u32, u32))) -> Option<Instant> {
        let mut q = self.lock();
        let mut taken = 0;
        while taken < room
            && let Some(entry) = q.first_entry()
        {
            if entry.key().0 > now {
                break;
            }
            take(entry.remove());
            taken += 1;
        }
        if taken > 0 {
            self.publish_head(&q);
        }
        q.first_key_value().map(|(k, _)| k.0)
    }

    fn ns(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_nanos().min(u64::MAX as u128 - 1) as u64
    }

    /// Wakes (slot, generation) at `deadline`.
    pub(crate) fn add(&self, deadline: Instant, slot: u32, generation: u32) -> TimerKey {
        let key = (deadline, self.seq.fetch_add(1, Ordering::Relaxed));
        let mut q = self.lock();
        let earliest = q.first_key_value().is_none_or(|(k, _)| key < *k);
        q.insert(key, (slot, generation));
        if earliest {
            self.publish_head(&q);
        }
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

    /// The timer thread: its timed sleep was to end at `planned` and it runs
    /// again at `now` (woken early by an adder: not late).
    pub(crate) fn note_wake(&self, planned: Instant, now: Instant) {
        if now.saturating_duration_since(planned) >= LATE_WAKE {
            self.late_until.store(self.ns(now + LATE_FOR), Ordering::Relaxed);
        }
    }

    /// Whether the timer thread woke late in the last [`LATE_FOR`]: then
    /// hogs beside sleepers are interrupted at the sleepers' deadlines by
    /// their own threads' kernel timers (`preempt::deadline`), which costs a
    /// signal and a system call or two per deadline and is pointless while
    /// the timer thread is on time. Async-signal-safe.
    pub(crate) fn recently_late(&self, now: Instant) -> bool {
        self.ns(now) < self.late_until.load(Ordering::Relaxed)
    }

    /// Tests: the timer thread counts as late from now on.
    #[cfg(test)]
    pub(crate) fn pretend_late(&self) {
        self.late_until.store(u64::MAX - 1, Ordering::Relaxed);
    }

    /// Removes a timer that has not fired (no-op if it fired).
    pub(crate) fn cancel(&self, key: TimerKey) {
        let mut q = self.lock();
        let was_head = q.first_key_value().is_some_and(|(k, _)| *k == key);
        if q.remove(&key).is_some() && was_head {
            self.publish_head(&q);
        }
    }

    /// The timer thread: moves the timers due at `now` to `due` (up to its
    /// capacity); returns the earliest deadline left.
    pub(crate) fn take_due_for_thread(&self, now: Instant, due: &mut Vec<(u32, u32)>) -> Option<Instant> {
        #[cfg(test)]
        if self.hold_firing.load(Ordering::Relaxed) {
            // Held (tests): nothing fires here, and nothing counts as due
            // for the thread's sleep either.
            let q = self.lock();
            return q.range((now, u64::MAX)..).next().map(|(k, _)| k.0);
        }
        let room = due.capacity() - due.len();
        self.take_due(now, room, |t| due.push(t))
    }
}

/// Fires the timers due now, from a worker role's scheduler loop (see
/// `preempt::deadline`): wakes their GVThreads like the timer thread would.
pub(crate) fn fire_due(shared: &Shared) {
    let mut due = [(0u32, 0u32); FIRE_BATCH];
    let mut n = 0;
    // Waits for the lock if need be: its holders never keep it long (the
    // timer thread takes due timers under it, GVThreads add and cancel
    // inside runtime sections, where they are not frozen).
    shared.timers.take_due(Instant::now(), FIRE_BATCH, |t| {
        due[n] = t;
        n += 1;
    });
    for &(slot, generation) in &due[..n] {
        shared.wake(slot, generation);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::Timers;

    /// The published head follows the queue through adds, a cancel of the
    /// head, a cancel of another timer, and firing.
    #[test]
    fn the_published_head_is_the_earliest_timer() {
        let t = Timers::new();
        let now = Instant::now();
        assert_eq!(t.head(now), None);
        let later = t.add(now + Duration::from_millis(20), 5, 1);
        assert_eq!(t.head(now).map(|(_, slot)| slot), Some(5));
        let sooner = t.add(now + Duration::from_millis(10), 7, 1);
        let (until, slot) = t.head(now).expect("two timers queued");
        assert_eq!(slot, 7);
        assert_eq!(until, Duration::from_millis(10));
        // Not the head: nothing changes.
        let other = t.add(now + Duration::from_millis(30), 9, 1);
        t.cancel(other);
        assert_eq!(t.head(now).map(|(_, slot)| slot), Some(7));
        t.cancel(sooner);
        assert_eq!(t.head(now).map(|(_, slot)| slot), Some(5));
        // Due: zero time left.
        assert_eq!(t.head(now + Duration::from_millis(25)), Some((Duration::ZERO, 5)));
        let mut due = Vec::with_capacity(4);
        assert_eq!(t.take_due_for_thread(now + Duration::from_millis(25), &mut due), None);
        assert_eq!(due, vec![(5, 1)]);
        assert_eq!(t.head(now), None);
        t.cancel(later); // fired already: a no-op
        assert_eq!(t.head(now), None);
    }

    /// Only a wake well after the planned end of a sleep counts as late, and
    /// it counts for a while.
    #[test]
    fn a_late_wake_is_remembered_for_a_while() {
        let t = Timers::new();
        let now = Instant::now();
        assert!(!t.recently_late(now));
        t.note_wake(now, now + Duration::from_micros(20));
        assert!(!t.recently_late(now + Duration::from_micros(20)), "on time");
        // Woken early by an adder: not late either.
        t.note_wake(now + Duration::from_millis(5), now + Duration::from_millis(1));
        assert!(!t.recently_late(now + Duration::from_millis(1)));
        let woke = now + Duration::from_millis(3);
        t.note_wake(now, woke);
        assert!(t.recently_late(woke + Duration::from_millis(100)));
        assert!(!t.recently_late(woke + super::LATE_FOR + Duration::from_millis(1)), "forgotten after LATE_FOR");
    }
}
