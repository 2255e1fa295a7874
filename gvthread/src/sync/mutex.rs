//! [`SchedMutex`]: a mutex whose waiters park (only the GVThread, not its
//! worker) and whose guard may be held across blocking gvthread calls.
//!
//! # Protocol
//!
//! The lock is one state byte plus a [`WaitQueue`] behind a small std mutex
//! (the *queue lock*, held only for a few instructions, never across a park):
//!
//! * `LOCKED`: someone owns the lock;
//! * `QUEUED`: the wait queue is non-empty. It is set and cleared only while
//!   holding the queue lock, and only while `LOCKED` is set, so
//!   `QUEUED ⇒ LOCKED`.
//!
//! **Fast paths** (uncontended): `lock` is one CAS `0 → LOCKED` (Acquire),
//! `unlock` one CAS `LOCKED → 0` (Release).
//!
//! **Slow lock**: under the queue lock, either grab the lock if it became
//! free (CAS clearing nothing but adding `LOCKED`), or set `QUEUED` and push
//! a waiter at the back of the queue; then park until our entry has left
//! the queue.
//!
//! **Slow unlock** (the CAS failed because `QUEUED` is set): under the queue
//! lock, pop the front waiter and *hand the lock over*: `LOCKED` stays set, so
//! nobody can barge in between, and the popped waiter owns the lock as soon
//! as it is popped. `QUEUED` is cleared when the queue becomes empty. The
//! waiter learns that it was handed the lock by seeing its entry gone.
//!
//! Why it is correct and fair: the state changes that matter to a waiter
//! (`QUEUED` set/cleared, an entry pushed/popped) all happen under the queue
//! lock, so an unlocker either sees the waiter's `QUEUED` (its fast CAS fails
//! and it hands over) or released the lock before the waiter re-checked
//! `LOCKED` under the queue lock (the waiter then takes it). Memory written
//! under the `SchedMutex` is published to the next owner by the fast-path
//! Release/Acquire pair, or on hand-over by the queue lock's own
//! release/acquire. A queued waiter only moves forward: while it waits
//! `QUEUED` is set, so the fast path cannot barge, and every unlock serves the
//! front of the queue. A waiter therefore gets the lock after at most as many
//! hand-offs as there were waiters ahead of it (strict FIFO, no starvation).
//!
//! **Leaving early**: `park` may unwind (runtime shutdown). A drop guard then
//! removes the entry; if the entry was already popped, the lock was handed to
//! us, so the guard releases it again (handing it to the next waiter).
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
//! across any switch: its waiters park.

use std::cell::UnsafeCell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::waitq::{WaitId, WaitQueue};
use crate::sched::machine::in_section;
use crate::sched::park;

const UNLOCKED: u8 = 0;
const LOCKED: u8 = 1;
const QUEUED: u8 = 2;

/// A mutual-exclusion lock for GVThreads.
///
/// Unlike `std::sync::Mutex`, a contended [`lock`](SchedMutex::lock) parks
/// only the calling GVThread (its worker runs others; on a plain OS thread the
/// OS thread parks), and the guard may be held across [`yield_now`],
/// [`sleep`], channel operations and other blocking gvthread calls.
///
/// * **Fair**: waiters are served first-in first-out; unlocking hands the lock
///   directly to the longest waiter, so no waiter starves.
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
    waiters: Mutex<WaitQueue>,
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
            waiters: Mutex::new(WaitQueue::new()),
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
    /// OS thread parks. Waiters are served in FIFO order. Not reentrant:
    /// locking a mutex the caller already holds deadlocks that caller.
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

    /// Acquires the lock if nobody holds it (and nobody waits for it).
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
        // Acquire: as in `lock`. `QUEUED ⇒ LOCKED`, so this never overtakes
        // a queued waiter.
        self.state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| SchedMutexGuard { mutex: self })
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

    fn queue(&self) -> MutexGuard<'_, WaitQueue> {
        // Poison cannot happen (no user code runs under the queue lock), but
        // stay robust anyway.
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` under the queue lock, inside a runtime section (see the
    /// module docs). `f` must not park or wake anyone.
    #[inline]
    fn with_queue<R>(&self, f: impl FnOnce(&mut WaitQueue) -> R) -> R {
        in_section(|| f(&mut self.queue()))
    }

    #[cold]
    fn lock_slow(&self) {
        let queued = self.with_queue(|q| {
            // Relaxed loads/CAS failures: the decisive CAS below is Acquire, and
            // QUEUED is only meaningful under the queue lock we hold.
            let mut s = self.state.load(Ordering::Relaxed);
            loop {
                if s & LOCKED == 0 {
                    // Free and (QUEUED ⇒ LOCKED) nobody queued: take it.
                    match self.state.compare_exchange_weak(s, s | LOCKED, Ordering::Acquire, Ordering::Relaxed) {
                        Ok(_) => return None,
                        Err(cur) => s = cur,
                    }
                } else if s & QUEUED == 0 {
                    // Held: announce a waiter so the owner's fast unlock fails.
                    match self.state.compare_exchange_weak(s, s | QUEUED, Ordering::Relaxed, Ordering::Relaxed) {
                        Ok(_) => break,
                        Err(cur) => s = cur,
                    }
                } else {
                    break;
                }
            }
            Some(q.push_current())
        });
        let Some(id) = queued else { return };
        let mut wait = QueuedWaiter { mutex: self, id: Some(id) };
        loop {
            park::park();
            // The queue lock's acquire pairs with the unlocker's release, so
            // the previous owner's writes are visible once we see the pop.
            if !self.with_queue(|q| q.contains(id)) {
                wait.id = None;
                return;
            }
        }
    }

    /// Releases the lock, handing it to the first waiter if there is one.
    #[inline]
    fn unlock(&self) {
        // Release: publishes the owner's writes to the next fast-path locker.
        if self.state.compare_exchange(LOCKED, UNLOCKED, Ordering::Release, Ordering::Relaxed).is_err() {
            self.unlock_slow();
        }
    }

    #[cold]
    fn unlock_slow(&self) {
        let next = self.with_queue(|q| {
            // We own the lock and hold the queue lock: no other party can change
            // the state byte now (lockers' CASes fail while LOCKED is set, and
            // QUEUED only changes under the queue lock), so plain stores are fine.
            match q.pop() {
                Some(w) => {
                    if q.is_empty() {
                        self.state.store(LOCKED, Ordering::Relaxed);
                    }
                    Some(w)
                }
                None => {
                    // The last waiter left early (see `QueuedWaiter`).
                    self.state.store(UNLOCKED, Ordering::Release);
                    None
                }
            }
        });
        if let Some(w) = next {
            // Hand-over: LOCKED stays set; `w` owns the lock now.
            w.wake();
        }
    }
}

/// Removes a waiter whose `park` unwound; releases the lock if it had already
/// been handed over to it.
struct QueuedWaiter<'a, T: ?Sized> {
    mutex: &'a SchedMutex<T>,
    id: Option<WaitId>,
}

impl<T: ?Sized> Drop for QueuedWaiter<'_, T> {
    fn drop(&mut self) {
        let Some(id) = self.id else { return };
        let handed_over = self.mutex.with_queue(|q| {
            if q.remove(id).is_some() {
                if q.is_empty() {
                    // Under the queue lock: QUEUED is ours to clear.
                    self.mutex.state.fetch_and(!QUEUED, Ordering::Relaxed);
                }
                false
            } else {
                true
            }
        });
        if handed_over {
            // Popped: the lock was handed to us. Pass it on.
            self.mutex.unlock();
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
        assert!(m.queue().is_empty());
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
    fn early_leave_of_a_handed_over_waiter_passes_the_lock_on() {
        // Simulate the drop guard of a waiter whose park unwound after the
        // lock had been handed to it.
        let m = SchedMutex::new(());
        let g = m.lock();
        let id = {
            let mut q = m.queue();
            m.state.fetch_or(QUEUED, Ordering::Relaxed);
            q.push_current()
        };
        drop(g); // hands over to `id`
        assert_eq!(m.state.load(Ordering::Relaxed), LOCKED);
        drop(QueuedWaiter { mutex: &m, id: Some(id) });
        assert_eq!(m.state.load(Ordering::Relaxed), UNLOCKED);

        // And one that leaves while still queued clears QUEUED.
        let g = m.lock();
        let id = {
            let mut q = m.queue();
            m.state.fetch_or(QUEUED, Ordering::Relaxed);
            q.push_current()
        };
        drop(QueuedWaiter { mutex: &m, id: Some(id) });
        assert_eq!(m.state.load(Ordering::Relaxed), LOCKED);
        drop(g);
        assert_eq!(m.state.load(Ordering::Relaxed), UNLOCKED);
    }
}
