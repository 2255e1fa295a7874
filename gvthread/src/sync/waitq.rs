//! A FIFO queue of parked waiters, shared by channels and [`SchedMutex`].
//!
//! # Protocol
//!
//! A `WaitQueue` is always kept inside some lock owned by the primitive that
//! uses it (the channel's state mutex, the `SchedMutex`'s queue mutex); it
//! has no synchronisation of its own. That lock is only ever held inside a
//! runtime section (`sched::machine::in_section`), so a forced preemption
//! never freezes a GVThread holding it: other workers would otherwise block
//! on it in the kernel. Hence nothing done under it may park, and wakes
//! happen after it is released (below). Every entry carries a [`WaitId`] taken
//! from a per-queue counter that only grows, so the queue is always sorted by
//! id and lookups are binary searches.
//!
//! * A blocking operation that cannot proceed pushes its [`Waiter`], unlocks,
//!   and parks. It re-locks after every return from `park` and checks its
//!   condition again (parks may be spurious).
//! * A party that makes the condition true for *one* waiter (an item pushed,
//!   a slot freed, a lock released) pops the **front** entry and wakes it
//!   after releasing the lock (wakers never run under the lock, so a waker
//!   that re-enters the primitive cannot deadlock). Popping is how the
//!   waker's intent is recorded: an entry that is no longer in the queue
//!   ([`WaitQueue::contains`] is false) has been *notified*.
//! * A waiter that leaves without using what it was notified for (timeout,
//!   a cancelled future, an unwind out of `park` at shutdown) must call
//!   [`WaitQueue::remove`]: `None` tells it that it had been notified, and it
//!   then passes the notification on to the next entry if the condition
//!   still holds. So one wake is spent per item or slot (no thundering herd)
//!   and no wake is ever lost.
//!
//! Why this is correct: the lock makes "check the condition, then enqueue"
//! atomic with respect to "make the condition true, then pop", so a waiter
//! either sees the condition or is in the queue when it becomes true. The
//! wake itself goes through [`Waiter::wake`], which never loses a wake that
//! arrives before the waiter actually parks (see `sched::park`).
//!
//! [`SchedMutex`]: crate::SchedMutex

use std::collections::VecDeque;

use crate::sched::park::Waiter;

/// Identity of one entry of a [`WaitQueue`]; unique within its queue.
pub(crate) type WaitId = u64;

/// A FIFO queue of waiters with identities (see the module docs).
pub(crate) struct WaitQueue {
    entries: VecDeque<(WaitId, Waiter)>,
    next_id: WaitId,
}

impl WaitQueue {
    /// An empty queue.
    pub(crate) const fn new() -> WaitQueue {
        WaitQueue { entries: VecDeque::new(), next_id: 1 }
    }

    /// Takes a fresh id without queueing anything (ids of one queue are
    /// strictly increasing, whether queued or not).
    pub(crate) fn alloc_id(&mut self) -> WaitId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Appends `w` at the back and returns its id.
    pub(crate) fn push(&mut self, w: Waiter) -> WaitId {
        let id = self.alloc_id();
        self.entries.push_back((id, w));
        id
    }

    fn position(&self, id: WaitId) -> Option<usize> {
        self.entries.binary_search_by_key(&id, |e| e.0).ok()
    }

    /// Whether `id` is still queued (false: it was notified or removed).
    pub(crate) fn contains(&self, id: WaitId) -> bool {
        self.position(id).is_some()
    }

    /// Removes `id`; `None` if it was no longer queued (it was notified).
    pub(crate) fn remove(&mut self, id: WaitId) -> Option<Waiter> {
        let i = self.position(id)?;
        self.entries.remove(i).map(|e| e.1)
    }

    /// Replaces the waiter of a still-queued `id` (an async task polled again
    /// with another waker). Returns whether `id` was still queued.
    pub(crate) fn refresh(&mut self, id: WaitId, w: &Waiter) -> bool {
        match self.position(id) {
            Some(i) => {
                let slot = &mut self.entries[i].1;
                if !slot.same(w) {
                    *slot = w.clone();
                }
                true
            }
            None => false,
        }
    }

    /// Notifies the front entry: removes it and returns its waiter, which the
    /// caller wakes after releasing the lock.
    pub(crate) fn pop(&mut self) -> Option<Waiter> {
        self.entries.pop_front().map(|e| e.1)
    }

    /// Notifies every entry (for disconnection); wake them after unlocking.
    pub(crate) fn take_all(&mut self) -> Wakeups {
        Wakeups(std::mem::take(&mut self.entries))
    }

    /// Whether nobody waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of queued waiters.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Waiters taken out of a queue, to be woken once the lock is released.
pub(crate) struct Wakeups(VecDeque<(WaitId, Waiter)>);

impl Wakeups {
    /// Wakes them all.
    pub(crate) fn wake_all(self) {
        for (_, w) in self.0 {
            w.wake();
        }
    }
}

/// Wakes `w` if there is one (call after releasing the queue's lock).
pub(crate) fn wake(w: Option<Waiter>) {
    if let Some(w) = w {
        w.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Waiter {
        Waiter::current()
    }

    #[test]
    fn fifo_order_and_notified_detection() {
        let mut q = WaitQueue::new();
        let a = q.push(me());
        let b = q.push(me());
        let c = q.push(me());
        assert!(a < b && b < c);
        assert_eq!(q.len(), 3);
        assert!(q.pop().is_some()); // notifies `a`
        assert!(!q.contains(a) && q.contains(b) && q.contains(c));
        assert!(q.remove(a).is_none(), "a was notified, not removable");
        assert!(q.remove(c).is_some());
        assert!(q.contains(b) && !q.contains(c));
        assert!(q.refresh(b, &me()));
        assert!(!q.refresh(c, &me()));
        q.take_all().wake_all();
        assert!(q.is_empty());
        let d = q.push(me());
        assert!(d > c, "ids keep growing after the queue empties");
        assert!(q.alloc_id() > d);
    }
}
