//! A FIFO queue of parked waiters, shared by channels, [`SchedMutex`] and
//! cancellation tokens.
//!
//! # Protocol
//!
//! A `WaitQueue` is always kept inside some lock owned by the primitive that
//! uses it (the channel's state mutex, the `SchedMutex`'s queue mutex, a
//! token's node mutex); it has no synchronisation of its own. That lock is
//! only ever held inside a runtime section (`sched::machine::in_section`), so
//! a forced preemption never freezes a GVThread holding it: other workers
//! would otherwise block on it in the kernel. Hence nothing done under it may
//! park, and wakes happen after it is released (below). Every entry carries a
//! [`WaitId`] taken from a per-queue counter that only grows (or, for the
//! rare entry that joins at the front, from one that only shrinks, below all
//! of the first's), so the queue is always sorted by id and lookups are
//! binary searches.
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
//! # Select entries
//!
//! A `select` waits on several queues at once with one [`SelectCtx`] (see
//! `sync::select`): it pushes a [`push_select`](WaitQueue::push_select) entry
//! naming its context and the arm, into every queue it waits on. Popping such
//! an entry first tries to *claim* the context for that arm (one CAS on the
//! context's state word). Exactly one claim succeeds per select round; an
//! entry whose claim fails belongs to a select that has already been served
//! by another arm (or gave up), so it is discarded and popping continues with
//! the next entry: the notification is never spent on a select that will not
//! use it. The claimer copies the select's [`Waiter`] out while it still
//! holds the lock, so it never touches the context after unlocking.
//!
//! Why a context pointer is valid: a select removes each of its entries,
//! under the queue's lock, before its context is dropped or reused (a drop
//! guard does it on every exit path, unwinding included), so any select entry
//! seen under the lock points to a live context.
//!
//! Why this is correct: the lock makes "check the condition, then enqueue"
//! atomic with respect to "make the condition true, then pop", so a waiter
//! either sees the condition or is in the queue when it becomes true. The
//! wake itself goes through [`Waiter::wake`], which never loses a wake that
//! arrives before the waiter actually parks (see `sched::park`).
//!
//! # Uncounted registrations
//!
//! A GVThread that waits is stored as a [`GvPtr`] (its runtime's address,
//! slot and generation), not as a [`Waiter`] holding an `Arc` of the
//! runtime: registering and waking cost no reference-count traffic on the
//! runtime, whose count every worker would otherwise keep bouncing between
//! caches. Popping turns the entry into a [`Waiter`] *under the lock*
//! ([`GvPtr::waiter`]): while the entry is queued its GVThread has not left
//! the wait, so it has not ended, so its runtime is alive (a runtime is freed
//! only after all its GVThreads ended, see [`GvPtr`]). A popper running on a
//! machine of that runtime (a GVThread waking a GVThread) gets a reference
//! that counts nothing, kept alive by its own machine until it wakes the
//! waiter after unlocking; any other popper takes a counted reference there.
//! Select contexts store their owner the same way, and claims convert it
//! under the lock just the same.
//!
//! Nothing here allocates except `push` growing the queue's buffer: popping,
//! claiming and collecting every waiter for a disconnection reuse it.
//!
//! [`SchedMutex`]: crate::SchedMutex

use std::collections::VecDeque;
use std::ptr::NonNull;

use super::select::SelectCtx;
use crate::sched::park::{GvPtr, Waiter};

/// Identity of one entry of a [`WaitQueue`]; unique within its queue.
pub(crate) type WaitId = u64;

/// A select's registration: its context and the arm this queue serves.
#[derive(Clone, Copy)]
struct SelRef {
    ctx: NonNull<SelectCtx>,
    arm: usize,
}

impl SelRef {
    /// Claims the select for this arm; on success, its waiter (to wake once
    /// the queue's lock is released).
    fn claim(self) -> Option<Waiter> {
        // SAFETY: the entry is still queued and we hold the queue's lock, so
        // its select has not removed it yet and the context is alive (module
        // docs).
        let ctx = unsafe { self.ctx.as_ref() };
        // SAFETY: the select has not left (its entry is queued, we hold the
        // lock), so its party and runtime are alive (module docs).
        ctx.try_select(self.arm).then(|| unsafe { ctx.waiter().to_waiter() })
    }

    fn owned_by(self, ctx: Option<&SelectCtx>) -> bool {
        ctx.is_some_and(|c| std::ptr::eq(self.ctx.as_ptr(), c))
    }
}

/// Who a plain entry (or a select context) wakes: a GVThread without a
/// counted reference (see the module docs), or any other [`Waiter`].
#[derive(Clone)]
pub(crate) enum WaitRef {
    Gv(GvPtr),
    Other(Waiter),
}

impl WaitRef {
    /// The caller: its GVThread if it runs in one, else its OS thread.
    #[inline]
    pub(crate) fn current() -> WaitRef {
        match GvPtr::current() {
            Some(p) => WaitRef::Gv(p),
            None => WaitRef::Other(Waiter::current()),
        }
    }

    /// A waiter to wake after the lock is released.
    ///
    /// # Safety
    ///
    /// Called under the lock of a queue that still holds this entry (or the
    /// entry of the select owning it): see the module docs.
    #[inline]
    pub(crate) unsafe fn to_waiter(&self) -> Waiter {
        match self {
            // SAFETY: the caller's contract (the GVThread is still waiting).
            WaitRef::Gv(p) => unsafe { p.waiter() },
            WaitRef::Other(w) => w.clone(),
        }
    }

    /// [`to_waiter`](Self::to_waiter), consuming the entry's reference.
    ///
    /// # Safety
    ///
    /// As for `to_waiter`: the entry was queued until now, under the lock
    /// the caller still holds.
    #[inline]
    unsafe fn into_waiter(self) -> Waiter {
        match self {
            // SAFETY: the caller's contract.
            WaitRef::Gv(p) => unsafe { p.waiter() },
            WaitRef::Other(w) => w,
        }
    }

    fn same(&self, w: &Waiter) -> bool {
        match self {
            WaitRef::Gv(_) => false,
            WaitRef::Other(o) => o.same(w),
        }
    }
}

enum Entry {
    /// A blocked party; with a hand-off slot (see [`WaitQueue::push_slot`]).
    Plain(WaitRef, Option<NonNull<()>>),
    Select(SelRef),
}

impl Entry {
    /// What popping this entry yields: its waiter, or nothing for a select
    /// that another arm already won.
    fn notify(self) -> Option<Waiter> {
        self.notify_slot().map(|(w, _)| w)
    }

    /// [`notify`](Self::notify), with the entry's hand-off slot if it has one.
    ///
    /// Only for an entry just taken out of its queue, under the queue's lock.
    fn notify_slot(self) -> Option<(Waiter, Option<NonNull<()>>)> {
        match self {
            // SAFETY: the entry was queued until now and the caller holds the
            // queue's lock, so its party is still waiting (module docs).
            Entry::Plain(w, slot) => Some((unsafe { w.into_waiter() }, slot)),
            Entry::Select(s) => s.claim().map(|w| (w, None)),
        }
    }
}

/// A FIFO queue of waiters with identities (see the module docs).
pub(crate) struct WaitQueue {
    entries: VecDeque<(WaitId, Entry)>,
    /// The next id for the back: grows from [`FIRST_BACK_ID`].
    next_id: WaitId,
    /// The next id for the front: shrinks from just below it, so entries
    /// stay sorted by id whichever end they join.
    next_front_id: WaitId,
}

/// Where back ids start; front ids count down from just below.
const FIRST_BACK_ID: WaitId = 1 << 62;

// SAFETY: the only non-Send part is the select context pointer, which is only
// dereferenced under the owning lock while the context is alive (module docs);
// `SelectCtx` itself is Sync (atomics and a Send + Sync `Waiter`).
unsafe impl Send for WaitQueue {}

impl WaitQueue {
    /// An empty queue.
    pub(crate) const fn new() -> WaitQueue {
        WaitQueue { entries: VecDeque::new(), next_id: FIRST_BACK_ID, next_front_id: FIRST_BACK_ID - 1 }
    }

    /// Takes a fresh id without queueing anything (back ids of one queue
    /// are strictly increasing, whether queued or not).
    pub(crate) fn alloc_id(&mut self) -> WaitId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Appends `w` (an async task, typically) at the back and returns its id.
    pub(crate) fn push(&mut self, w: Waiter) -> WaitId {
        let id = self.alloc_id();
        self.entries.push_back((id, Entry::Plain(WaitRef::Other(w), None)));
        id
    }

    /// Appends the caller (its GVThread, uncounted, or its OS thread) at the
    /// back and returns its id. The caller must remove the entry (or find it
    /// popped) before it leaves its wait, on every path (module docs).
    #[inline]
    pub(crate) fn push_current(&mut self) -> WaitId {
        let id = self.alloc_id();
        self.entries.push_back((id, Entry::Plain(WaitRef::current(), None)));
        id
    }

    /// Like [`push_current`](Self::push_current), but at the front: the
    /// caller keeps its turn (a waiter woken to compete that lost). Its id
    /// is smaller than every other entry's.
    pub(crate) fn push_current_front(&mut self) -> WaitId {
        let id = self.next_front_id;
        self.next_front_id -= 1;
        self.entries.push_front((id, Entry::Plain(WaitRef::current(), None)));
        id
    }

    /// [`push_current`](Self::push_current) with a *hand-off slot*: an
    /// address, owned by the waiter and valid while the entry is queued,
    /// where the party that pops the entry with [`pop_slot`](Self::pop_slot)
    /// may deliver what the waiter waits for (the primitive defines the
    /// slot's type and protocol).
    #[inline]
    pub(crate) fn push_slot(&mut self, slot: NonNull<()>) -> WaitId {
        let id = self.alloc_id();
        self.entries.push_back((id, Entry::Plain(WaitRef::current(), Some(slot))));
        id
    }

    /// Appends a select's registration for `arm` (see the module docs): the
    /// select must remove it before `ctx` is dropped or reused.
    pub(crate) fn push_select(&mut self, ctx: &SelectCtx, arm: usize) -> WaitId {
        let id = self.alloc_id();
        self.entries.push_back((id, Entry::Select(SelRef { ctx: NonNull::from(ctx), arm })));
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
    pub(crate) fn remove(&mut self, id: WaitId) -> Option<()> {
        let i = self.position(id)?;
        self.entries.remove(i).map(drop)
    }

    /// Notifies one particular entry: removes `id` and returns its waiter
    /// (`None` if it was no longer queued, or is a select already served).
    pub(crate) fn notify(&mut self, id: WaitId) -> Option<Waiter> {
        let i = self.position(id)?;
        self.entries.remove(i).and_then(|e| e.1.notify())
    }

    /// Replaces the waiter of a still-queued plain `id` (an async task polled
    /// again with another waker). Returns whether `id` was still queued.
    pub(crate) fn refresh(&mut self, id: WaitId, w: &Waiter) -> bool {
        match self.position(id) {
            Some(i) => {
                if let Entry::Plain(slot, _) = &mut self.entries[i].1
                    && !slot.same(w)
                {
                    *slot = WaitRef::Other(w.clone());
                }
                true
            }
            None => false,
        }
    }

    /// Notifies the front entry that takes it: removes entries from the front
    /// until one is a plain waiter or a select that can be claimed, and
    /// returns that waiter, which the caller wakes after releasing the lock.
    pub(crate) fn pop(&mut self) -> Option<Waiter> {
        while let Some((_, e)) = self.entries.pop_front() {
            if let Some(w) = e.notify() {
                return Some(w);
            }
        }
        None
    }

    /// Like [`pop`](Self::pop), and also returns the entry's id.
    pub(crate) fn pop_entry(&mut self) -> Option<(WaitId, Waiter)> {
        while let Some((id, e)) = self.entries.pop_front() {
            if let Some(w) = e.notify() {
                return Some((id, w));
            }
        }
        None
    }

    /// Like [`pop`](Self::pop), and also returns the entry's hand-off slot
    /// if it has one (the caller may deliver into it, under the lock).
    pub(crate) fn pop_slot(&mut self) -> Option<(Waiter, Option<NonNull<()>>)> {
        while let Some((_, e)) = self.entries.pop_front() {
            if let Some(r) = e.notify_slot() {
                return Some(r);
            }
        }
        None
    }

    /// Like [`pop`](Self::pop), but skips (and keeps) the entries of the
    /// select `mine`: a select never pairs with itself.
    pub(crate) fn pop_other(&mut self, mine: Option<&SelectCtx>) -> Option<Waiter> {
        let mut i = 0;
        while i < self.entries.len() {
            if matches!(self.entries[i].1, Entry::Select(s) if s.owned_by(mine)) {
                i += 1;
                continue;
            }
            let (_, e) = self.entries.remove(i).expect("index checked");
            if let Some(w) = e.notify() {
                return Some(w);
            }
        }
        None
    }

    /// Whether an entry other than those of the select `mine` is queued
    /// (it may belong to a select that was already served elsewhere).
    pub(crate) fn has_other(&self, mine: Option<&SelectCtx>) -> bool {
        self.entries.iter().any(|(_, e)| !matches!(e, Entry::Select(s) if s.owned_by(mine)))
    }

    /// Notifies every entry (for disconnection or cancellation); wake them
    /// after unlocking. Selects are claimed here, under the lock; those
    /// already served elsewhere are dropped.
    pub(crate) fn take_all(&mut self) -> Wakeups {
        let mut taken = std::mem::take(&mut self.entries);
        taken.retain_mut(|(_, e)| match e {
            Entry::Plain(w, _) => {
                if let WaitRef::Gv(p) = w {
                    // SAFETY: queued until now, under the lock we hold
                    // (module docs).
                    *w = WaitRef::Other(unsafe { p.waiter() });
                }
                true
            }
            Entry::Select(s) => match s.claim() {
                Some(w) => {
                    *e = Entry::Plain(WaitRef::Other(w), None);
                    true
                }
                None => false,
            },
        });
        Wakeups(taken)
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
pub(crate) struct Wakeups(VecDeque<(WaitId, Entry)>);

impl Wakeups {
    /// Wakes them all.
    pub(crate) fn wake_all(self) {
        for (_, e) in self.0 {
            // Every `Gv` reference was turned into a waiter by `take_all`.
            if let Entry::Plain(WaitRef::Other(w), _) = e {
                w.wake();
            }
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

    #[test]
    fn a_select_is_claimed_once_and_skipped_afterwards() {
        let ctx = SelectCtx::new();
        let other = SelectCtx::new();
        let mut q1 = WaitQueue::new();
        let mut q2 = WaitQueue::new();
        q1.push_select(&ctx, 0);
        let behind = q1.push(me());
        q2.push_select(&ctx, 1);
        assert!(q1.has_other(Some(&ctx)), "the plain waiter is someone else");
        assert!(!q2.has_other(Some(&ctx)) && q2.has_other(Some(&other)));
        assert!(q2.pop_other(Some(&ctx)).is_none(), "never pairs with itself");
        assert!(q2.pop().is_some(), "claims arm 1");
        assert_eq!(ctx.selected(), Some(1));
        // Arm 0's entry is dead now: popping q1 skips it and serves `behind`.
        assert!(q1.pop().is_some());
        assert!(!q1.contains(behind) && q1.is_empty());
        let mut q3 = WaitQueue::new();
        q3.push_select(&ctx, 2);
        q3.push_select(&other, 0);
        let w = q3.take_all();
        assert_eq!(other.selected(), Some(0), "take_all claims live selects");
        w.wake_all();
    }
}
