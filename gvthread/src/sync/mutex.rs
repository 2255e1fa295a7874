//! [`SchedMutex`]: a mutex whose waiters park (only the GVThread, not its
//! worker) and whose guard may be held across blocking gvthread calls.
//!
//! # Protocol
//!
//! Go's `sync.Mutex` design (barging with a bounded wait), on one state byte
//! plus a [`WaitQueue`] behind a small std mutex (the *queue lock*, held only
//! for a few instructions, never across a park):
//!
//! * `LOCKED`: someone owns the lock;
//! * `QUEUED`: the wait queue is non-empty (set and cleared only under the
//!   queue lock);
//! * `WOKEN`: a waiter was popped and woken to try again; no other waiter is
//!   woken until it has either taken the lock or queued again;
//! * `HANDOFF` (starvation mode): unlocking hands the lock to the front
//!   waiter and nobody barges. Set only under the queue lock, by a waiter
//!   that queues while the lock is held, so `HANDOFF ⇒ LOCKED ∧ QUEUED`.
//!
//! **Normal mode** (`HANDOFF` clear). `lock` takes the lock whenever `LOCKED`
//! is clear, waiters or not: one CAS `0 → LOCKED` (Acquire) when uncontended,
//! otherwise a CAS adding `LOCKED`. A locker that finds it held spins for a
//! few hundred nanoseconds first (only where another worker or OS thread can
//! be running the owner), then, under the queue lock, takes the lock if it
//! became free or sets `QUEUED` and queues, and parks until popped. `unlock`
//! clears `LOCKED` (Release) and, if waiters are queued, nobody holds the lock
//! again yet and no woken waiter is on its way, sets `WOKEN` and pops and
//! wakes the front waiter, which competes for the lock like a newcomer.
//! This is what keeps a contended lock fast: the owner of a short critical
//! section usually takes the lock again, or a running locker on another
//! worker does, instead of every acquisition waiting for a parked GVThread
//! to be scheduled (a FIFO hand-off on every unlock cost about 3.5 µs per
//! acquisition with 4 GVThreads on 2 workers, against 20 ns for Go).
//!
//! **Losing and starving.** A woken waiter that loses queues again at the
//! *front* (it keeps its turn). Once it has lost [`STARVE_AFTER_LOSSES`]
//! times, or has waited [`STARVE_AFTER`], it sets `HANDOFF` as it queues.
//! In starvation mode `unlock` leaves `LOCKED` set, pops the front waiter and
//! records its id as the one handed the lock (under the queue lock); the
//! waiter learns it owns the lock from that record. The mode ends when the
//! queue empties, or when the waiter handed the lock was not starving itself.
//!
//! **Why nobody starves.** Every unlock either hands the lock to the front
//! waiter or, in normal mode, wakes the front waiter unless the lock is
//! already held again (whose owner will unlock) or a woken waiter is on its
//! way (which takes the lock or queues at the front). The front waiter
//! therefore gets the lock after at most [`STARVE_AFTER_LOSSES`] lost rounds,
//! and every waiter reaches the front.
//!
//! **Why no wake is lost.** `QUEUED` and the queue change together under the
//! queue lock, and a locker queues only after a CAS (under that lock) that
//! saw `LOCKED` set: an unlock whose release comes after that CAS sees
//! `QUEUED`; one that came before made the CAS fail, and the locker re-reads
//! and takes the lock. A starving waiter sets `HANDOFF` in the same CAS, so
//! an unlock either released the lock before it (the waiter takes the lock)
//! or sees `HANDOFF` and hands over. Memory written under the lock reaches
//! the next owner through the Release/Acquire pair on the state byte, or on a
//! hand-off through the queue lock.
//!
//! **Leaving early**: `park` may unwind (runtime shutdown). A drop guard then
//! removes the entry; if it had been popped, the waiter passes on what it was
//! given: a handed lock is unlocked again (handing it on), a wake (`WOKEN`)
//! is given up and the next waiter woken in its place.
//!
//! There is no poisoning: a panic while holding the guard releases the lock
//! (the guard's `Drop` runs during unwinding) and the next owner sees the data
//! as the panicking code left it.
//!
//! **Forced preemption**: every hold of the queue lock is a runtime section
//! ([`SchedMutex::with_queue`]), so the SIGURG handler never freezes a
//! GVThread holding it (a locker or unlocker on another worker would block on
//! it in the kernel, stalling that worker). Wakes run after the section. The
//! `SchedMutex` itself may of course be held across a forced preemption, like
//! across any switch: its waiters spin briefly, then park.

use std::cell::UnsafeCell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::waitq::{self, WaitId, WaitQueue};
use crate::sched::machine::{self, in_section};
use crate::sched::park;

const UNLOCKED: u8 = 0;
const LOCKED: u8 = 1;
const QUEUED: u8 = 2;
const WOKEN: u8 = 4;
const HANDOFF: u8 = 8;

/// A woken waiter that lost the lock this many times asks for hand-off.
const STARVE_AFTER_LOSSES: u32 = 2;
/// A waiter that has waited this long asks for hand-off when it next loses
/// (Go's threshold).
const STARVE_AFTER: Duration = Duration::from_millis(1);
/// Spin rounds before queueing, each [`SPIN_PAUSES`] pause instructions
/// (Go's `active_spin` and `active_spin_cnt`).
const SPIN_ROUNDS: u32 = 4;
const SPIN_PAUSES: u32 = 30;

/// What the queue lock protects: the waiters, and which of them was handed
/// the lock by the last hand-off (until it has seen so).
struct Waiters {
    queue: WaitQueue,
    handed: Option<WaitId>,
}

/// How a parked waiter's entry left the queue.
enum Popped {
    /// Handed the lock (starvation mode): it owns it.
    Handed,
    /// Woken to compete (normal mode): it holds `WOKEN`.
    Woken,
}

impl Waiters {
    /// `None` while `id` is still queued (a spurious return from `park`).
    fn popped(&mut self, id: WaitId) -> Option<Popped> {
        if self.queue.contains(id) {
            None
        } else if self.handed == Some(id) {
            self.handed = None;
            Some(Popped::Handed)
        } else {
            Some(Popped::Woken)
        }
    }
}

/// A mutual-exclusion lock for GVThreads.
///
/// Unlike `std::sync::Mutex`, a contended [`lock`](SchedMutex::lock) parks
/// only the calling GVThread (its worker runs others; on a plain OS thread the
/// OS thread parks), and the guard may be held across [`yield_now`],
/// [`sleep`], channel operations and other blocking gvthread calls.
///
/// * **Fast under contention, and no waiter starves**: like Go's
///   `sync.Mutex`, unlocking wakes the longest waiter to compete for the lock
///   (a running locker may take it first, which keeps short critical sections
///   cheap); a waiter that keeps losing, or has waited a millisecond, switches
///   the mutex to handing the lock over in first-in first-out order until its
///   waiters are served.
/// * **Cheap when uncontended**: one compare-and-swap to lock, one to unlock.
/// * **No poisoning**: if a holder panics, the guard is dropped during
///   unwinding, the lock is released, and the data stays as the panicking
///   code left it.
///
/// ```
/// use gvthread::{Runtime, SchedMutex, SchedulerConfig};
/// use std::sync::Arc;
///
/// let mut rt = Runtime::new(SchedulerConfig::default().num_workers(2));
/// let total = rt.block_on(|| {
///     let counter = Arc::new(SchedMutex::new(0u32));
///     let handles: Vec<_> = (0..10)
///         .map(|_| {
///             let counter = counter.clone();
///             gvthread::spawn(move |_| {
///                 let mut n = counter.lock();
///                 let seen = *n;
///                 gvthread::yield_now(); // fine: the guard may cross a switch
///                 *n = seen + 1;
///             })
///         })
///         .collect();
///     for h in handles {
///         h.join().unwrap();
///     }
///     *counter.lock()
/// });
/// assert_eq!(total, 10);
/// ```
///
/// [`yield_now`]: crate::yield_now
/// [`sleep`]: crate::sleep
pub struct SchedMutex<T: ?Sized> {
    state: AtomicU8,
    waiters: Mutex<Waiters>,
    data: UnsafeCell<T>,
}

// SAFETY: the mutex gives exclusive access to `data` to one owner at a time;
// moving the mutex moves the `T`, so `T: Send` suffices.
unsafe impl<T: ?Sized + Send> Send for SchedMutex<T> {}
// SAFETY: `&SchedMutex` only grants `&mut T` to the single lock owner (the
// state protocol in the module docs), and the owner may be on any thread,
// hence `T: Send` (as for `std::sync::Mutex`).
unsafe impl<T: ?Sized + Send> Sync for SchedMutex<T> {}

impl<T> SchedMutex<T> {
    /// A new unlocked mutex holding `value`.
    ///
    /// ```
    /// let m = gvthread::SchedMutex::new(vec![1, 2]);
    /// m.lock().push(3);
    /// assert_eq!(m.into_inner(), [1, 2, 3]);
    /// ```
    pub const fn new(value: T) -> SchedMutex<T> {
        SchedMutex {
            state: AtomicU8::new(UNLOCKED),
            waiters: Mutex::new(Waiters { queue: WaitQueue::new(), handed: None }),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the mutex and returns the data (no locking needed: `self` is
    /// owned, so nobody else can hold the lock).
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> SchedMutex<T> {
    /// Acquires the lock, parking while another owner holds it.
    ///
    /// Inside a GVThread only the GVThread waits; on a plain OS thread the
    /// OS thread parks. A waiter may be overtaken by lockers that arrive while
    /// it is being woken, but only a bounded number of times (see the type's
    /// docs). Not reentrant: locking a mutex the caller already holds
    /// deadlocks that caller.
    ///
    /// ```
    /// let m = gvthread::SchedMutex::new(1);
    /// *m.lock() += 1;
    /// assert_eq!(*m.lock(), 2);
    /// ```
    #[inline]
    pub fn lock(&self) -> SchedMutexGuard<'_, T> {
        // Acquire: pairs with the Release of the previous owner's unlock.
        if self.state.compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.lock_slow();
        }
        SchedMutexGuard { mutex: self }
    }

    /// Acquires the lock if nobody holds it, without waiting.
    ///
    /// Fails while the mutex hands the lock over to its waiters in turn (it
    /// does so only while some waiter has waited long).
    ///
    /// ```
    /// let m = gvthread::SchedMutex::new(());
    /// let g = m.try_lock().expect("free");
    /// assert!(m.try_lock().is_none());
    /// drop(g);
    /// assert!(m.try_lock().is_some());
    /// ```
    #[inline]
    pub fn try_lock(&self) -> Option<SchedMutexGuard<'_, T>> {
        self.try_take(0).then(|| SchedMutexGuard { mutex: self })
    }

    /// Mutable access without locking: `&mut self` proves nobody else can
    /// hold the lock.
    ///
    /// ```
    /// let mut m = gvthread::SchedMutex::new(5);
    /// *m.get_mut() += 1;
    /// assert_eq!(m.into_inner(), 6);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// Takes the lock if it is free and not being handed over, clearing
    /// `also_clear` (`WOKEN` for the woken waiter) in the same CAS.
    #[inline]
    fn try_take(&self, also_clear: u8) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        while s & (LOCKED | HANDOFF) == 0 {
            // Acquire: pairs with the Release of the previous owner's unlock.
            match self.state.compare_exchange_weak(s, (s | LOCKED) & !also_clear, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(cur) => s = cur,
            }
        }
        false
    }

    fn waiters(&self) -> MutexGuard<'_, Waiters> {
        // Poison cannot happen (no user code runs under the queue lock), but
        // stay robust anyway.
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` under the queue lock, inside a runtime section (see the
    /// module docs). `f` must not park or wake anyone.
    #[inline]
    fn with_queue<R>(&self, f: impl FnOnce(&mut Waiters) -> R) -> R {
        in_section(|| f(&mut self.waiters()))
    }

    /// Spins briefly for a held lock where its owner can be running at the
    /// same time (not on a one-worker runtime, whose owner waits for us to
    /// park). Returns whether it took the lock.
    fn spin(&self, also_clear: u8) -> bool {
        let rounds = match machine::current() {
            Some(m) if m.shared.num_normal_workers + m.shared.num_low_workers <= 1 => 0,
            _ => SPIN_ROUNDS,
        };
        for round in 0..=rounds {
            if self.try_take(also_clear) {
                return true;
            }
            if round == rounds || self.state.load(Ordering::Relaxed) & HANDOFF != 0 {
                break;
            }
            for _ in 0..SPIN_PAUSES {
                std::hint::spin_loop();
            }
        }
        false
    }

    #[cold]
    fn lock_slow(&self) {
        // `WOKEN` is ours to clear once we have been woken (normal mode).
        let mut woken = 0;
        let mut losses = 0;
        let mut since: Option<Instant> = None;
        loop {
            if self.spin(woken) {
                return;
            }
            let starving = losses >= STARVE_AFTER_LOSSES || since.is_some_and(|t| t.elapsed() >= STARVE_AFTER);
            let queued = self.with_queue(|w| {
                // Relaxed: the decisive CAS for taking the lock is Acquire, and
                // QUEUED and HANDOFF are only meaningful under the queue lock.
                let mut s = self.state.load(Ordering::Relaxed);
                loop {
                    if s & (LOCKED | HANDOFF) == 0 {
                        match self.state.compare_exchange_weak(
                            s,
                            (s | LOCKED) & !woken,
                            Ordering::Acquire,
                            Ordering::Relaxed,
                        ) {
                            Ok(_) => return None,
                            Err(cur) => s = cur,
                        }
                        continue;
                    }
                    // Held (HANDOFF ⇒ LOCKED): announce ourselves, give up the
                    // wake, and ask for hand-off if we have starved.
                    let new = (s | QUEUED | if starving { HANDOFF } else { 0 }) & !woken;
                    match self.state.compare_exchange_weak(s, new, Ordering::Relaxed, Ordering::Relaxed) {
                        Ok(_) => break,
                        Err(cur) => s = cur,
                    }
                }
                // A waiter that was woken keeps its turn at the front.
                Some(if woken != 0 { w.queue.push_current_front() } else { w.queue.push_current() })
            });
            let Some(id) = queued else { return };
            since.get_or_insert_with(Instant::now);
            let mut guard = QueuedWaiter { mutex: self, id: Some(id) };
            let popped = loop {
                park::park();
                // The queue lock's acquire pairs with the unlocker's release,
                // so on a hand-off the previous owner's writes are visible.
                let popped = self.with_queue(|w| {
                    let p = w.popped(id);
                    if matches!(p, Some(Popped::Handed)) && !starving {
                        // Go's rule: a waiter that did not starve ends the
                        // mode (others that starve will set it again).
                        self.state.fetch_and(!HANDOFF, Ordering::Relaxed);
                    }
                    p
                });
                if let Some(p) = popped {
                    break p;
                }
            };
            guard.id = None;
            match popped {
                Popped::Handed => return,
                Popped::Woken => {
                    woken = WOKEN;
                    losses += 1;
                }
            }
        }
    }

    /// Releases the lock (see the module docs).
    #[inline]
    fn unlock(&self) {
        // Release: publishes the owner's writes to the next locker.
        if self.state.compare_exchange(LOCKED, UNLOCKED, Ordering::Release, Ordering::Relaxed).is_err() {
            self.unlock_slow();
        }
    }

    #[cold]
    fn unlock_slow(&self) {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & HANDOFF != 0 {
                return self.hand_off();
            }
            // Release: publishes the owner's writes to the next locker.
            match self.state.compare_exchange_weak(s, s & !LOCKED, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => break,
                Err(cur) => s = cur,
            }
        }
        self.wake_front(s & !LOCKED);
    }

    /// Normal mode, after a release that left state `s`: wakes the front
    /// waiter unless nobody waits, someone holds the lock again (its unlock
    /// will do this), or a woken waiter is already on its way.
    fn wake_front(&self, mut s: u8) {
        loop {
            if s & QUEUED == 0 || s & (LOCKED | WOKEN | HANDOFF) != 0 {
                return;
            }
            match self.state.compare_exchange_weak(s, s | WOKEN, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break,
                Err(cur) => s = cur,
            }
        }
        let next = self.with_queue(|w| {
            let next = w.queue.pop();
            if w.queue.is_empty() {
                // Under the queue lock: QUEUED is ours to clear; WOKEN too if
                // nobody was left to wake (the waiters left early).
                let clear = if next.is_some() { QUEUED } else { QUEUED | WOKEN };
                self.state.fetch_and(!clear, Ordering::Relaxed);
            }
            next
        });
        waitq::wake(next);
    }

    /// Starvation mode: hands the lock to the front waiter (`LOCKED` stays
    /// set), or releases it if the waiters all left.
    fn hand_off(&self) {
        let next = self.with_queue(|w| match w.queue.pop_entry() {
            Some((id, next)) => {
                w.handed = Some(id);
                if w.queue.is_empty() {
                    self.state.fetch_and(!(QUEUED | HANDOFF), Ordering::Relaxed);
                }
                Some(next)
            }
            None => {
                // Release: publishes the owner's writes to the next locker.
                self.state.fetch_and(!(QUEUED | HANDOFF | LOCKED), Ordering::Release);
                None
            }
        });
        waitq::wake(next);
    }
}

/// Removes a waiter whose `park` unwound, and passes on what it was given if
/// it had already been popped: a handed lock, or a wake.
struct QueuedWaiter<'a, T: ?Sized> {
    mutex: &'a SchedMutex<T>,
    id: Option<WaitId>,
}

impl<T: ?Sized> Drop for QueuedWaiter<'_, T> {
    fn drop(&mut self) {
        let Some(id) = self.id else { return };
        let m = self.mutex;
        let popped = m.with_queue(|w| {
            if w.queue.remove(id).is_some() {
                if w.queue.is_empty() {
                    // Under the queue lock: QUEUED and HANDOFF are ours to clear.
                    m.state.fetch_and(!(QUEUED | HANDOFF), Ordering::Relaxed);
                }
                return None;
            }
            w.popped(id)
        });
        match popped {
            None => {}
            Some(Popped::Handed) => m.unlock(),
            Some(Popped::Woken) => {
                let s = m.state.fetch_and(!WOKEN, Ordering::Relaxed) & !WOKEN;
                m.wake_front(s);
            }
        }
    }
}

impl<T: Default> Default for SchedMutex<T> {
    fn default() -> Self {
        SchedMutex::new(T::default())
    }
}

impl<T> From<T> for SchedMutex<T> {
    fn from(value: T) -> Self {
        SchedMutex::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for SchedMutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("SchedMutex");
        match self.try_lock() {
            Some(g) => d.field("data", &&*g),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

/// Proof of holding a [`SchedMutex`]; dereferences to the data and releases
/// the lock when dropped (also during a panic's unwinding).
#[must_use = "if unused the SchedMutex unlocks immediately"]
pub struct SchedMutexGuard<'a, T: ?Sized> {
    mutex: &'a SchedMutex<T>,
}

// SAFETY: sharing the guard shares `&T` only, which needs `T: Sync` (this
// replaces the auto impl, which would only ask for `T: Send`). The guard is
// `Send` by the auto rules when `T: Send`, which is right: the lock is not tied
// to an OS thread, and a GVThread holding it may migrate between workers.
unsafe impl<T: ?Sized + Sync> Sync for SchedMutexGuard<'_, T> {}

impl<T: ?Sized> Deref for SchedMutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the guard proves we own the lock, so no `&mut T` exists
        // elsewhere.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T: ?Sized> DerefMut for SchedMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves we own the lock, and `&mut self` that no
        // other reference derived from this guard is alive.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T: ?Sized> Drop for SchedMutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.mutex.unlock();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for SchedMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for SchedMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn os_threads_contend_and_count_exactly() {
        let m = Arc::new(SchedMutex::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        let mut g = m.lock();
                        let v = *g;
                        std::thread::yield_now();
                        *g = v + 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*m.lock(), 8000);
        assert_eq!(m.state.load(Ordering::Relaxed), UNLOCKED);
        assert!(m.waiters().queue.is_empty());
    }

    #[test]
    fn panic_while_locked_releases() {
        let m = Arc::new(SchedMutex::new(1));
        let m2 = m.clone();
        let r = std::thread::spawn(move || {
            let _g = m2.lock();
            panic!("holder panics");
        })
        .join();
        assert!(r.is_err());
        assert_eq!(*m.try_lock().expect("released by unwinding"), 1);
    }

    #[test]
    fn waiters_that_keep_losing_switch_to_hand_off_and_back() {
        // One worker, owners holding the lock across a yield: every woken
        // waiter finds the lock taken again by the owner that woke it, so
        // waiters starve and ask for hand-off; once served, the mode ends.
        let mut rt = crate::Runtime::new(crate::SchedulerConfig::default().num_workers(1).enable_forced_preempt(false));
        let (modes, m) = rt.block_on(|| {
            let m = Arc::new(SchedMutex::new(0u64));
            let modes = Arc::new(AtomicU8::new(0));
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    let (m, modes) = (m.clone(), modes.clone());
                    crate::spawn(move |_| {
                        for _ in 0..200 {
                            let mut g = m.lock();
                            modes.fetch_or(m.state.load(Ordering::Relaxed), Ordering::Relaxed);
                            crate::yield_now();
                            *g += 1;
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            (modes.load(Ordering::Relaxed), m)
        });
        assert_eq!(modes & (WOKEN | HANDOFF), WOKEN | HANDOFF, "both modes seen: {modes:#b}");
        assert_eq!(*m.lock(), 800);
        assert_eq!(m.state.load(Ordering::Relaxed), UNLOCKED);
        let w = m.waiters();
        assert!(w.queue.is_empty() && w.handed.is_none());
    }

    /// Queues the caller as a waiter of `m` (held by the test) the way
    /// `lock_slow` does, optionally asking for hand-off.
    fn queue_as_waiter(m: &SchedMutex<()>, starving: bool) -> WaitId {
        let mut w = m.waiters();
        m.state.fetch_or(QUEUED | if starving { HANDOFF } else { 0 }, Ordering::Relaxed);
        w.queue.push_current()
    }

    #[test]
    fn early_leave_of_a_handed_over_waiter_passes_the_lock_on() {
        // The drop guard of a waiter whose park unwound after the lock had
        // been handed to it.
        let m = SchedMutex::new(());
        let g = m.lock();
        let id = queue_as_waiter(&m, true);
        drop(g); // hands over to `id`
        assert_eq!(m.state.load(Ordering::Relaxed), LOCKED);
        assert_eq!(m.waiters().handed, Some(id));
        drop(QueuedWaiter { mutex: &m, id: Some(id) });
        assert_eq!(m.state.load(Ordering::Relaxed), UNLOCKED);
        assert_eq!(m.waiters().handed, None);
    }

    #[test]
    fn early_leave_of_a_woken_waiter_wakes_the_next() {
        let m = SchedMutex::new(());
        let g = m.lock();
        let first = queue_as_waiter(&m, false);
        let second = queue_as_waiter(&m, false);
        drop(g); // releases, wakes `first` to compete
        assert_eq!(m.state.load(Ordering::Relaxed), QUEUED | WOKEN);
        assert!(!m.waiters().queue.contains(first));
        drop(QueuedWaiter { mutex: &m, id: Some(first) });
        // `first` gave up its wake: `second` was popped and holds it now.
        assert!(!m.waiters().queue.contains(second));
        assert_eq!(m.state.load(Ordering::Relaxed), WOKEN);
        // As `second` leaves too, nobody is left to wake.
        drop(QueuedWaiter { mutex: &m, id: Some(second) });
        assert_eq!(m.state.load(Ordering::Relaxed), UNLOCKED);
    }

    #[test]
    fn early_leave_while_queued_clears_the_waiter_bits() {
        let m = SchedMutex::new(());
        let g = m.lock();
        let id = queue_as_waiter(&m, true);
        drop(QueuedWaiter { mutex: &m, id: Some(id) });
        assert_eq!(m.state.load(Ordering::Relaxed), LOCKED);
        drop(g);
        assert_eq!(m.state.load(Ordering::Relaxed), UNLOCKED);
    }

    #[test]
    fn try_lock_barges_past_queued_waiters_but_not_a_hand_off() {
        let m = SchedMutex::new(());
        let g = m.lock();
        let id = queue_as_waiter(&m, false);
        drop(g); // wakes `id`; the lock is free
        let barged = m.try_lock().expect("free in normal mode");
        drop(QueuedWaiter { mutex: &m, id: Some(id) });
        drop(barged);
        let g = m.lock();
        let id = queue_as_waiter(&m, true);
        drop(g); // hands over to `id`
        assert!(m.try_lock().is_none());
        assert_eq!(m.state.load(Ordering::Relaxed), LOCKED, "still handed to `id`");
        drop(QueuedWaiter { mutex: &m, id: Some(id) });
        assert!(m.try_lock().is_some());
    }
}

/// Every interleaving of the state protocol (loom): lockers barging, woken
/// waiters losing and queueing at the front, starving and the hand-off, with
/// the queue lock as a loom mutex and `park`/`wake` as a per-thread flag (a
/// wake before the park is kept, as `sched::park` keeps it). The model
/// starves after one loss so that small runs reach the hand-off; time and
/// spinning are left out (a spin is one more `try_take`).
/// Run: `RUSTFLAGS="--cfg loom" cargo test -p gvthread --lib --release loom_`.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::{HANDOFF, LOCKED, QUEUED, WOKEN};
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::{AtomicBool, AtomicU8, Ordering};
    use loom::sync::{Arc, Mutex};
    use std::collections::VecDeque;

    const PARTIES: usize = 2;

    struct Queue {
        /// (id, party), sorted by id as in `WaitQueue`.
        entries: VecDeque<(u32, usize)>,
        handed: Option<u32>,
        next_back: u32,
        next_front: u32,
    }

    struct Model {
        state: AtomicU8,
        queue: Mutex<Queue>,
        notified: [AtomicBool; PARTIES],
        data: UnsafeCell<u32>,
    }

    impl Model {
        fn new() -> Model {
            Model {
                state: AtomicU8::new(0),
                queue: Mutex::new(Queue { entries: VecDeque::new(), handed: None, next_back: 100, next_front: 99 }),
                notified: std::array::from_fn(|_| AtomicBool::new(false)),
                data: UnsafeCell::new(0),
            }
        }

        fn wake(&self, party: usize) {
            self.notified[party].store(true, Ordering::Release);
        }

        fn park(&self, me: usize) {
            // Spin on a load (loom cannot tell a spinning read-modify-write
            // from progress), then take the wake.
            while !self.notified[me].load(Ordering::Relaxed) {
                loom::thread::yield_now();
            }
            self.notified[me].store(false, Ordering::Relaxed);
            loom::sync::atomic::fence(Ordering::Acquire);
        }

        fn try_take(&self, also_clear: u8) -> bool {
            let mut s = self.state.load(Ordering::Relaxed);
            while s & (LOCKED | HANDOFF) == 0 {
                match self.state.compare_exchange(s, (s | LOCKED) & !also_clear, Ordering::Acquire, Ordering::Relaxed) {
                    Ok(_) => return true,
                    Err(cur) => s = cur,
                }
            }
            false
        }

        fn lock(&self, me: usize) {
            if self.state.compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                return;
            }
            let (mut woken, mut losses) = (0, 0);
            loop {
                if self.try_take(woken) {
                    return;
                }
                let starving = losses >= 1;
                let id = {
                    let mut q = self.queue.lock().unwrap();
                    let mut s = self.state.load(Ordering::Relaxed);
                    let mut took = false;
                    loop {
                        if s & (LOCKED | HANDOFF) == 0 {
                            match self.state.compare_exchange(
                                s,
                                (s | LOCKED) & !woken,
                                Ordering::Acquire,
                                Ordering::Relaxed,
                            ) {
                                Ok(_) => {
                                    took = true;
                                    break;
                                }
                                Err(cur) => s = cur,
                            }
                            continue;
                        }
                        let new = (s | QUEUED | if starving { HANDOFF } else { 0 }) & !woken;
                        match self.state.compare_exchange(s, new, Ordering::Relaxed, Ordering::Relaxed) {
                            Ok(_) => break,
                            Err(cur) => s = cur,
                        }
                    }
                    if took {
                        return;
                    }
                    if woken != 0 {
                        let id = q.next_front;
                        q.next_front -= 1;
                        q.entries.push_front((id, me));
                        id
                    } else {
                        let id = q.next_back;
                        q.next_back += 1;
                        q.entries.push_back((id, me));
                        id
                    }
                };
                let handed = loop {
                    self.park(me);
                    let mut q = self.queue.lock().unwrap();
                    if q.entries.iter().any(|e| e.0 == id) {
                        continue;
                    }
                    if q.handed == Some(id) {
                        q.handed = None;
                        if !starving {
                            self.state.fetch_and(!HANDOFF, Ordering::Relaxed);
                        }
                        break true;
                    }
                    break false;
                };
                if handed {
                    return;
                }
                woken = WOKEN;
                losses += 1;
            }
        }

        fn unlock(&self) {
            if self.state.compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed).is_ok() {
                return;
            }
            let mut s = self.state.load(Ordering::Relaxed);
            loop {
                if s & HANDOFF != 0 {
                    let next = {
                        let mut q = self.queue.lock().unwrap();
                        match q.entries.pop_front() {
                            Some((id, party)) => {
                                q.handed = Some(id);
                                if q.entries.is_empty() {
                                    self.state.fetch_and(!(QUEUED | HANDOFF), Ordering::Relaxed);
                                }
                                Some(party)
                            }
                            None => {
                                self.state.fetch_and(!(QUEUED | HANDOFF | LOCKED), Ordering::Release);
                                None
                            }
                        }
                    };
                    if let Some(p) = next {
                        self.wake(p);
                    }
                    return;
                }
                match self.state.compare_exchange(s, s & !LOCKED, Ordering::Release, Ordering::Relaxed) {
                    Ok(_) => break,
                    Err(cur) => s = cur,
                }
            }
            let mut s = s & !LOCKED;
            loop {
                if s & QUEUED == 0 || s & (LOCKED | WOKEN | HANDOFF) != 0 {
                    return;
                }
                match self.state.compare_exchange(s, s | WOKEN, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => break,
                    Err(cur) => s = cur,
                }
            }
            let next = {
                let mut q = self.queue.lock().unwrap();
                let next = q.entries.pop_front().map(|e| e.1);
                if q.entries.is_empty() {
                    let clear = if next.is_some() { QUEUED } else { QUEUED | WOKEN };
                    self.state.fetch_and(!clear, Ordering::Relaxed);
                }
                next
            };
            if let Some(p) = next {
                self.wake(p);
            }
        }

        fn increment(&self, me: usize) {
            self.lock(me);
            // SAFETY: we hold the lock; loom reports any access not ordered
            // after the previous owner's.
            self.data.with_mut(|d| unsafe { *d += 1 });
            self.unlock();
        }
    }

    /// Two parties, each taking the lock twice (so an unlocker re-locks past
    /// the waiter it woke, which then starves and is handed the lock): the
    /// increments are exclusive and ordered, nobody waits forever (a lost
    /// wake leaves a party spinning in `park`, which loom reports), and the
    /// mutex ends unlocked with nobody queued or handed the lock.
    #[test]
    fn loom_mutex_hands_over_or_wakes_and_never_loses_a_waiter() {
        loom::model(|| {
            let m = Arc::new(Model::new());
            let others: Vec<_> = (1..PARTIES)
                .map(|me| {
                    let m = m.clone();
                    loom::thread::spawn(move || {
                        m.increment(me);
                        m.increment(me);
                    })
                })
                .collect();
            m.increment(0);
            m.increment(0);
            for t in others {
                t.join().unwrap();
            }
            // SAFETY: every party has finished (joined).
            assert_eq!(m.data.with_mut(|d| unsafe { *d }), 2 * PARTIES as u32);
            assert_eq!(m.state.load(Ordering::Relaxed), 0);
            let q = m.queue.lock().unwrap();
            assert!(q.entries.is_empty() && q.handed.is_none());
        });
    }
}
