//! Run-queue policy and the state transitions of scheduling, as methods of
//! the runtime's shared state.

use std::sync::atomic::Ordering;

use super::idle::Idle;
use super::machine;
use super::worker::Worker;
use crate::Priority;
use crate::arch::Context;
use crate::runtime::shared::Shared;
use crate::task::state::{self, ACTIVE, NOTIFIED, PARKED};
use crate::util::rand::FastRand;

/// "No slot" in `Worker::runnext` and `Worker::preempted`.
pub(crate) const NO_SLOT: u32 = u32::MAX;

/// Every this many scheduling decisions a worker looks at the global queue
/// before its local one, so that global work is never starved (Go uses 61).
const GLOBAL_CHECK_INTERVAL: u32 = 61;

impl Shared {
    /// The idle bookkeeping of the group `w` belongs to.
    #[inline]
    pub(crate) fn idle_for(&self, w: &Worker) -> &Idle {
        if w.low_priority { &self.idle_low } else { &self.idle }
    }

    /// Where the saved context of `slot` lives.
    #[inline]
    pub(crate) fn context_of(&self, slot: u32) -> *mut Context {
        // SAFETY: the header of an allocated slot is in mapped memory; we only
        // form a raw pointer to its `ctx` field here.
        unsafe { (*self.header(slot)).ctx.get() }
    }

    /// Next GVThread for `w` without stealing: urgent global work, local
    /// queue, global queue, then low priority (when no dedicated workers).
    #[inline]
    pub(crate) fn next_quick(&self, w: &Worker) -> Option<u32> {
        if w.low_priority {
            return self.global.pop(Priority::Low);
        }
        if self.global.has_urgent()
            && let Some(s) = self.global.pop(Priority::Critical).or_else(|| self.global.pop(Priority::High))
        {
            return Some(s);
        }
        // Only the holding machine touches `ticks`; relaxed is enough.
        let tick = w.ticks.load(Ordering::Relaxed).wrapping_add(1);
        w.ticks.store(tick, Ordering::Relaxed);
        if tick.is_multiple_of(GLOBAL_CHECK_INTERVAL) {
            // Fairness: a pair of GVThreads waking each other through
            // `runnext`, or a busy local ring, cannot starve the others.
            if let Some(s) =
                self.global.pop(Priority::Normal).or_else(|| self.global.pop_preempted()).or_else(|| w.local.pop())
            {
                return Some(s);
            }
        }
        if w.runnext.load(Ordering::Relaxed) != NO_SLOT {
            let s = w.runnext.swap(NO_SLOT, Ordering::AcqRel);
            if s != NO_SLOT {
                return Some(s);
            }
        }
        if let Some(s) = w.local.pop() {
            return Some(s);
        }
        if let Some(s) = self.global.pop(Priority::Normal) {
            return Some(s);
        }
        if let Some(s) = self.global.pop_preempted() {
            return Some(s);
        }
        if self.num_low_workers == 0 {
            return self.global.pop(Priority::Low);
        }
        None
    }

    /// Whether `next_quick` would find something (racy hint).
    #[inline]
    pub(crate) fn has_quick_work(&self, w: &Worker) -> bool {
        if w.low_priority {
            return !self.global.is_empty(Priority::Low);
        }
        self.global.has_urgent()
            || w.runnext.load(Ordering::Relaxed) != NO_SLOT
            || !w.local.is_empty()
            || !self.global.is_empty(Priority::Normal)
            || self.global.has_preempted()
            || (self.num_low_workers == 0 && !self.global.is_empty(Priority::Low))
    }

    /// Steals half of another worker's local queue into `w`'s.
    pub(crate) fn steal(&self, w: &Worker, rand: &FastRand) -> Option<u32> {
        if w.low_priority {
            return self.global.pop(Priority::Low);
        }
        let n = self.num_normal_workers;
        if n > 1 {
            let start = rand.below(n as u32) as usize;
            for i in 0..n {
                let v = (start + i) % n;
                if v != w.index
                    && let Some(s) = self.workers[v].local.steal_into(&w.local)
                {
                    return Some(s);
                }
            }
        }
        self.next_quick(w)
    }

    /// Whether any work `w` could run is visible anywhere (the final look
    /// before sleeping).
    pub(crate) fn has_work_for(&self, w: &Worker) -> bool {
        self.has_quick_work(w)
            || (!w.low_priority && self.workers[..self.num_normal_workers].iter().any(|v| !v.local.is_empty()))
    }

    /// Queues a runnable slot and wakes a worker for it if needed. Callable
    /// from any thread.
    pub(crate) fn ready(&self, slot: u32, prio: Priority) {
        debug_assert_eq!(
            state::kind(self.slots.state(slot).load(Ordering::Relaxed)),
            ACTIVE,
            "ready() of a non-runnable GVThread"
        );
        match prio {
            Priority::Normal => {
                if let Some(m) = machine::current()
                    && std::ptr::eq(&*m.shared, self)
                    && !m.worker_ptr().is_null()
                    && !m.worker().low_priority
                {
                    // A runtime section: the role's owner must not be frozen
                    // (and its role handed off) mid-push.
                    m.enter();
                    let w = m.worker();
                    // Runs next on this worker; the GVThread it displaces goes
                    // to the (stealable) local ring.
                    let displaced = w.runnext.swap(slot, Ordering::AcqRel);
                    if displaced != NO_SLOT {
                        w.local.push(displaced, |s| self.global.push(Priority::Normal, s));
                    }
                    m.leave();
                    // Only stealable work is worth waking another worker for;
                    // with a group of one there is nobody else to wake.
                    if displaced != NO_SLOT && self.num_normal_workers > 1 {
                        self.idle.notify_one(&self.workers);
                    }
                    return;
                }
                self.global.push(Priority::Normal, slot);
                self.idle.notify_one(&self.workers);
            }
            Priority::Low if self.num_low_workers > 0 => {
                self.global.push(Priority::Low, slot);
                self.idle_low.notify_one(&self.workers);
            }
            p => {
                self.global.push(p, slot);
                self.idle.notify_one(&self.workers);
            }
        }
    }

    /// Pushes a slot the worker itself just made runnable (no wake-ups).
    fn requeue_local(&self, slot: u32, prio: Priority, w: &Worker) {
        debug_assert_eq!(
            state::kind(self.slots.state(slot).load(Ordering::Relaxed)),
            ACTIVE,
            "requeue of a non-runnable GVThread"
        );
        if prio == Priority::Normal && !w.low_priority {
            w.local.push(slot, |s| self.global.push(Priority::Normal, s));
        } else {
            self.global.push(prio, slot);
        }
    }

    /// Wakes the GVThread in `slot` if it still has `generation`; a wake for
    /// an older generation is ignored. Returns whether it was delivered.
    pub(crate) fn wake(&self, slot: u32, generation: u32) -> bool {
        let st = self.slots.state(slot);
        let mut cur = st.load(Ordering::Acquire);
        loop {
            if state::generation(cur) != generation {
                return false;
            }
            let new = match state::kind(cur) {
                PARKED => state::with_kind(cur, ACTIVE),
                ACTIVE => {
                    if cur & NOTIFIED != 0 {
                        return true;
                    }
                    cur | NOTIFIED
                }
                _ => return false,
            };
            // AcqRel: Acquire pairs with the Release in `finish_park` (the
            // context is saved); Release publishes our wake to the parker.
            match st.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    if state::kind(cur) == PARKED {
                        self.ready(slot, Priority::from_u8(state::priority(cur)));
                    }
                    return true;
                }
                Err(c) => cur = c,
            }
        }
    }

    /// Moves a GVThread frozen by the preemption handler of `w`'s previous
    /// holder to the tail of the global queue (see `Worker::preempted`).
    pub(crate) fn requeue_preempted(&self, w: &Worker) {
        let slot = w.preempted.swap(u32::MAX, Ordering::AcqRel);
        if slot != u32::MAX {
            self.queue_preempted(slot);
        }
    }

    /// Queues a GVThread that used up its time slice (or must wait for a
    /// role): Normal ones on the preempted queue, others on their priority's
    /// queue; wakes a worker for it.
    pub(crate) fn queue_preempted(&self, slot: u32) {
        let word = self.slots.state(slot).load(Ordering::Relaxed);
        let prio = Priority::from_u8(state::priority(word));
        if prio == Priority::Normal {
            self.global.push_preempted(slot);
        } else {
            self.global.push(prio, slot);
        }
        if prio == Priority::Low && self.num_low_workers > 0 {
            self.idle_low.notify_one(&self.workers);
        } else {
            self.idle.notify_one(&self.workers);
        }
    }

    /// After a cooperative preemption switched away: Normal GVThreads go
    /// behind fresh work (the preempted queue), others back to their queue.
    pub(crate) fn finish_preempted(&self, slot: u32, w: &Worker) {
        let word = self.slots.state(slot).load(Ordering::Relaxed);
        match Priority::from_u8(state::priority(word)) {
            Priority::Normal => self.global.push_preempted(slot),
            prio => self.requeue_local(slot, prio, w),
        }
    }

    /// Whether anything at all is runnable (the monitor only forces a
    /// preemption when someone else could use the worker).
    pub(crate) fn any_runnable(&self) -> bool {
        (0..4).any(|p| !self.global.is_empty(Priority::from_u8(p)))
            || self.global.has_preempted()
            || self.workers.iter().any(|w| !w.local.is_empty() || w.runnext.load(Ordering::Relaxed) != NO_SLOT)
    }

    /// Moves `w`'s `runnext` to the global queue if it still holds `slot`
    /// (called by the monitor when it sat there for a whole tick while its
    /// worker kept running something else). Returns whether it moved.
    pub(crate) fn evict_runnext(&self, w: &Worker, slot: u32) -> bool {
        if w.runnext.compare_exchange(slot, NO_SLOT, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            self.global.push(Priority::Normal, slot);
            self.idle.notify_one(&self.workers);
            true
        } else {
            false
        }
    }

    /// After a yield switched away: back on the queue (the state stays ACTIVE).
    pub(crate) fn finish_yield(&self, slot: u32, w: &Worker) {
        let word = self.slots.state(slot).load(Ordering::Relaxed);
        self.requeue_local(slot, Priority::from_u8(state::priority(word)), w);
    }

    /// After a park switched away: publish PARKED, unless a wake came in
    /// meanwhile, in which case the GVThread goes straight back to the queue.
    pub(crate) fn finish_park(&self, slot: u32, w: &Worker) {
        let st = self.slots.state(slot);
        let mut cur = st.load(Ordering::Acquire);
        loop {
            debug_assert_eq!(state::kind(cur), ACTIVE);
            let notified = cur & NOTIFIED != 0;
            let new = if notified { cur & !NOTIFIED } else { state::with_kind(cur, PARKED) };
            // Release: the saved context is visible to whoever wakes it.
            match st.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    if notified {
                        self.requeue_local(slot, Priority::from_u8(state::priority(cur)), w);
                    }
                    return;
                }
                Err(c) => cur = c,
            }
        }
    }

    /// After an exit switched away: the slot is free for reuse.
    pub(crate) fn finish_exit(&self, slot: u32, w: &Worker) {
        let st = self.slots.state(slot);
        let cur = st.load(Ordering::Acquire);
        // Release: everything the GVThread did happens-before the slot's reuse.
        st.store(state::with_kind(cur & !NOTIFIED, state::FREE), Ordering::Release);
        // SAFETY: post-switch actions run on the machine holding `w`, inside
        // the switch's runtime section.
        if unsafe { w.slot_cache.push(slot) } {
            self.gvthread_exited();
            return;
        }
        if self.slots.release(slot) {
            // Enough free slots pile up: let the timer thread give pages back.
            self.timers.parker.unpark();
        }
        self.gvthread_exited();
    }
}
