//! The lock-free value queue of bounded and unbounded channels, and the
//! protocol that lets uncontended sends and receives skip the channel's lock.
//!
//! # Protocol
//!
//! Values live in a lock-free MPMC queue: crossbeam-queue's `ArrayQueue`
//! (Vyukov's bounded ring with per-slot stamps) for bounded channels, its
//! `SegQueue` (linked blocks) for unbounded ones. Wait queues stay under the
//! channel's lock, and two flags mirror whether they are non-empty
//! (`recv_waiting`, `send_waiting`); they are rewritten (plain relaxed
//! stores) at the end of every critical section that changed a queue.
//!
//! * **Fast send**: if no receiver waits (`recv_waiting` clear), push into
//!   the ring without locking; then a SeqCst fence and a load of
//!   `recv_waiting`: only if a receiver started waiting meanwhile, lock and
//!   notify one (`recv_q.pop()`). A full ring, or a receiver already waiting
//!   (it gets the value by direct hand-off, see `handoff`), takes the locked
//!   path.
//! * **Fast receive**: pop from the ring without locking; then the fence and
//!   `send_waiting`: only if a sender waits for room, lock and notify one.
//!   An empty ring falls back to the locked path.
//! * **Registering** (locked path): after queueing itself, a waiter (its
//!   section's epilogue has stored the flag) issues a SeqCst fence and
//!   re-checks the ring (non-empty for a receiver, not full for a sender); if
//!   the check passes it retries instead of parking.
//!
//! Why no wake is lost (Dekker's pattern): the pusher does *push; fence;
//! load flag*, the waiter *store flag; fence; load ring*. With both fences
//! SeqCst, at least one sees the other's write (the fences are ordered in the
//! single total order of SeqCst operations; whichever comes second is
//! followed by a load that sees the store before the first one), so the
//! accesses themselves may be relaxed: the pusher sees the flag and
//! notifies, or the waiter sees the value and does not park. (A flag seen
//! cleared again, or a value taken again, means another party already
//! popped that waiter or took that value.) The same holds
//! for room with the roles swapped.
//!
//! The same pattern closes the race between a fast send and the last
//! receiver's drop: the sender checked `receivers_gone` before its push, the
//! drop *stores the flag; fence; drains the ring*, and the sender *pushes;
//! fence; loads the flag*. Either the drain takes the value, or the sender
//! sees the flag and drains the ring itself; either way the send counts as
//! done before the disconnection and no value stays behind in a channel
//! nobody can receive from. Notifications keep the channel's rule of
//! one wake per value or slot, and a notified waiter that leaves unused
//! passes it on (see the parent module).
//!
//! # Forced preemption
//!
//! Neither queue is lock-free in the strict sense: `ArrayQueue::pop` claims
//! a slot (CAS on `head`) and only then marks it free (its stamp), and a push
//! that wraps around to that slot spins until it is marked; `SegQueue` has
//! the same window between claiming and publishing a slot. A GVThread frozen
//! by SIGURG inside that window would make every pusher (poppers, for
//! `SegQueue`) reaching the slot spin until it resumes, and it needs a
//! worker role to resume: with the pusher spinning under the channel's lock
//! (a runtime section, never preempted) on the role it would get, the
//! runtime deadlocks (seen: 4×4 MPMC on 2 workers hung within seconds). So
//! every ring push and pop runs in a runtime section (`in_section`: the
//! fast paths wrap them; the locked paths already are in one), where the
//! signal handler never freezes a GVThread.

use crossbeam_queue::{ArrayQueue, SegQueue};

/// A bounded or unbounded lock-free queue of values.
pub(crate) enum Ring<T> {
    Array(ArrayQueue<T>),
    List(SegQueue<T>),
}

impl<T> Ring<T> {
    /// A ring holding up to `cap` values (`usize::MAX`: unbounded).
    pub(crate) fn new(cap: usize) -> Ring<T> {
        if cap == usize::MAX { Ring::List(SegQueue::new()) } else { Ring::Array(ArrayQueue::new(cap)) }
    }

    /// Appends `v`, or hands it back if the ring is full.
    #[inline]
    pub(crate) fn push(&self, v: T) -> Result<(), T> {
        match self {
            Ring::Array(q) => q.push(v),
            Ring::List(q) => {
                q.push(v);
                Ok(())
            }
        }
    }

    /// Removes the oldest value.
    ///
    /// An empty ring is told by two plain loads first: crossbeam-queue's
    /// `pop` on an empty queue issues a SeqCst fence (`mfence`) to be sure,
    /// and a blocking receive in ping-pong finds the ring empty twice per
    /// message (fast path, then under the lock). Missing a value pushed
    /// concurrently is fine here: callers either take the locked path or, as
    /// a registering waiter, re-check after their own fence (module docs).
    #[inline]
    pub(crate) fn pop(&self) -> Option<T> {
        if self.is_empty() {
            return None;
        }
        match self {
            Ring::Array(q) => q.pop(),
            Ring::List(q) => q.pop(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Ring::Array(q) => q.len(),
            Ring::List(q) => q.len(),
        }
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Ring::Array(q) => q.is_empty(),
            Ring::List(q) => q.is_empty(),
        }
    }

    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        match self {
            Ring::Array(q) => q.is_full(),
            Ring::List(_) => false,
        }
    }
}

/// The flag protocol of the fast paths against a registering waiter, every
/// interleaving (loom). The ring is abstracted to one atomic (a push is a
/// store of "non-empty", the re-check a load), and every access is relaxed,
/// the waiter's flag store included, as in `Chan::locked`: only the two
/// SeqCst fences order them. The model checks the fences, not
/// crossbeam-queue's ring.
/// Run: `RUSTFLAGS="--cfg loom" cargo test -p gvthread --lib --release loom_`.
#[cfg(all(test, loom))]
mod loom_tests {
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};

    /// Either the pusher sees the waiter's flag (and notifies it) or the
    /// waiter's re-check sees the value (and does not park): never neither.
    #[test]
    fn loom_fast_push_against_registration() {
        loom::model(|| {
            let ring = Arc::new(AtomicUsize::new(0));
            let waiting = Arc::new(AtomicBool::new(false));
            let pusher = {
                let (ring, waiting) = (ring.clone(), waiting.clone());
                loom::thread::spawn(move || {
                    ring.store(1, Ordering::Relaxed);
                    fence(Ordering::SeqCst);
                    waiting.load(Ordering::Relaxed)
                })
            };
            // Relaxed, as in `Chan::locked`: the fence orders it.
            waiting.store(true, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            let saw_value = ring.load(Ordering::Relaxed) != 0;
            let notified = pusher.join().unwrap();
            assert!(notified || saw_value, "lost wake-up");
        });
    }
}
