//! Run-queue policy and the state transitions of scheduling, as methods of
//! the runtime's shared state.

use std::sync::atomic::{AtomicU64, Ordering};

use super::attention;
use super::idle::Idle;
use super::machine;
use super::worker::Worker;
use crate::Priority;
use crate::arch::Context;
use crate::runtime::shared::Shared;
use crate::task::state::{self, ACTIVE, BLOCKED, NOTIFIED, PARKED};
use crate::util::rand::FastRand;

/// Every this many scheduling decisions a worker looks at the global queue
/// before its local one, so that global work is never starved (Go uses 61).
const GLOBAL_CHECK_INTERVAL: u32 = 61;

/// Most Normal GVThreads a worker moves from the global queue into its local
/// one when it takes from the global queue (see `take_global_normal`).
const GLOBAL_BATCH: usize = 32;

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

    /// Called by `w`'s holder right before it runs `slot` (state word `st`):
    /// binds it to `w` if it has never run (not under free migration), and
    /// records its priority as the one running.
    #[inline]
    pub(crate) fn about_to_run(&self, slot: u32, st: &AtomicU64, w: &Worker) {
        let word = st.load(Ordering::Relaxed);
        if word & state::STARTED == 0 && !self.free_migration {
            // Only the role about to run it writes these bits; wakers only
            // read them after it parked (publication through the state word).
            st.fetch_or(state::home_bits(w.index), Ordering::Relaxed);
        }
        w.fair.note_running(slot);
        let prio = state::priority(word);
        if w.running_prio.load(Ordering::Relaxed) != prio {
            w.running_prio.store(prio, Ordering::Relaxed);
        }
    }

    /// How long (ns) woken work waiting on `w` may go before a GVThread that
    /// is due again after its time slice (see `next_quick`).
    #[inline]
    fn woken_credit(&self, w: &Worker) -> u64 {
        if w.has_woken() { self.wakeup_granularity_ns() } else { 0 }
    }

    /// `wakeup_granularity` in ns.
    #[inline]
    pub(crate) fn wakeup_granularity_ns(&self) -> u64 {
        self.config.wakeup_granularity.as_nanos().min(u64::MAX as u128) as u64
    }

    /// Next GVThread for `w` without stealing: urgent work, `runnext`, the
    /// role's bound and fresh GVThreads, global work, then GVThreads that had
    /// their time slice, then low priority (when no dedicated workers).
    ///
    /// Inlined: the common case of a message-passing pair (nothing urgent,
    /// no GVThread that had its slice waiting, not a global-queue turn, a
    /// GVThread in `runnext`) costs a few loads; everything else is
    /// [`next_quick_full`](Self::next_quick_full), which decides the same.
    #[inline]
    pub(crate) fn next_quick(&self, w: &Worker) -> Option<u32> {
        // `runnext` first: without it the full path decides, and looks at
        // the rest only once.
        if !w.runnext.is_empty() && !w.low_priority && !w.attention.any() && w.drain_local.load(Ordering::Relaxed) == 0
        {
            // Only the holding machine touches `ticks`; relaxed is enough.
            let tick = w.ticks.load(Ordering::Relaxed).wrapping_add(1);
            if !tick.is_multiple_of(GLOBAL_CHECK_INTERVAL)
                && let Some(s) = w.runnext.take()
            {
                w.ticks.store(tick, Ordering::Relaxed);
                return Some(s);
            }
        }
        self.next_quick_full(w)
    }

    /// [`next_quick`](Self::next_quick), every case.
    #[inline(never)]
    fn next_quick_full(&self, w: &Worker) -> Option<u32> {
        let links = &self.links;
        if w.attention.any() {
            self.refresh_attention(w);
        }
        if w.low_priority {
            return w
                .home_queue(Priority::Low)
                .pop(links)
                .or_else(|| self.pop_had_slice(w, 0))
                .or_else(|| self.global.pop(Priority::Low));
        }
        if self.has_urgent(w)
            && let Some(s) = w
                .home_queue(Priority::Critical)
                .pop(links)
                .or_else(|| self.global.pop(Priority::Critical))
                .or_else(|| w.home_queue(Priority::High).pop(links))
                .or_else(|| self.global.pop(Priority::High))
        {
            return Some(s);
        }
        // Only the holding machine touches `ticks`; relaxed is enough.
        let tick = w.ticks.load(Ordering::Relaxed).wrapping_add(1);
        w.ticks.store(tick, Ordering::Relaxed);
        // CPU-time fairness: a GVThread that used up its time slice is due
        // again once the role gave each GVThread sharing it as much time (up
        // to three of them, see `sched::fair_share`), however much woken
        // work keeps arriving. Woken work that waits goes
        // first for up to `wakeup_granularity` past that (like a sleeper's
        // credit): the preemption that froze the hog was for it.
        if (!w.frozen.is_empty() || !w.preempted.is_empty())
            && self.coarse_now() >= w.fair.hog_due().saturating_add(self.woken_credit(w))
            && let Some(s) = self.pop_had_slice(w, tick)
        {
            return Some(s);
        }
        if tick.is_multiple_of(GLOBAL_CHECK_INTERVAL) {
            // Fairness: a pair of GVThreads waking each other through
            // `runnext`, or a busy local queue, cannot starve the others.
            if let Some(s) = self
                .global
                .pop(Priority::Normal)
                .or_else(|| self.global.pop_preempted())
                .or_else(|| w.local.pop())
                .or_else(|| w.home_queue(Priority::Normal).pop(links))
            {
                return Some(s);
            }
        }
        let draining = self.draining(w);
        if !draining && let Some(s) = w.runnext.take() {
            return Some(s);
        }
        // Bound (woken, yielded) and fresh GVThreads take turns first.
        let home = w.home_queue(Priority::Normal);
        let local = if draining {
            // A spawner yielded to let its spilled queue run
            // (`park::help_after_spill`), or a joiner waits for a GVThread
            // still queued (`park::park_for_join`): fresh GVThreads first,
            // the spilled ones included, then `runnext`.
            w.local
                .pop()
                .or_else(|| self.take_global_normal(w))
                .or_else(|| w.runnext.take())
                .or_else(|| home.pop(links))
        } else if tick & 1 == 0 {
            home.pop(links).or_else(|| w.local.pop())
        } else {
            w.local.pop().or_else(|| home.pop(links))
        };
        if local.is_some() {
            self.prefetch_next_local(w);
            return local;
        }
        if let Some(s) = self.take_global_normal(w) {
            return Some(s);
        }
        if let Some(s) = self.pop_had_slice(w, tick) {
            return Some(s);
        }
        if let Some(s) = self.global.pop_preempted() {
            return Some(s);
        }
        if let Some(s) = w.home_queue(Priority::Low).pop(links) {
            return Some(s);
        }
        if self.num_low_workers == 0 {
            return self.global.pop(Priority::Low);
        }
        None
    }

    /// Whether this decision of `w` still takes fresh GVThreads before the
    /// home queue after a spill (counts it; see `Worker::drain_local`).
    #[inline]
    fn draining(&self, w: &Worker) -> bool {
        let left = w.drain_local.load(Ordering::Relaxed);
        if left == 0 {
            return false;
        }
        if self.coarse_now() >= w.drain_until_ns.load(Ordering::Relaxed) {
            w.drain_local.store(0, Ordering::Relaxed);
            return false;
        }
        w.drain_local.store(left - 1, Ordering::Relaxed);
        true
    }

    /// Takes the oldest Normal GVThread of the global queue to run on `w`,
    /// and moves up to [`GLOBAL_BATCH`] of those after it (a share for each
    /// ordinary role) into `w`'s local queue, as Go's `globrunqget` does:
    /// one pass over the shared queue serves several decisions, other roles
    /// still steal them from there, and the next GVThread to run is known
    /// one decision ahead (see `prefetch_next_local`).
    fn take_global_normal(&self, w: &Worker) -> Option<u32> {
        let s = self.global.pop(Priority::Normal)?;
        let share = self.global.len(Priority::Normal) / self.num_normal_workers.max(1);
        w.local.push_from(|| self.global.pop(Priority::Normal), share.min(GLOBAL_BATCH) as u32);
        self.prefetch_next_local(w);
        Some(s)
    }

    /// Starts loading the state word and header of the GVThread `w` will
    /// probably run after the one just chosen: in a large burst each one is
    /// cold, and its page walk and line misses then overlap with the current
    /// one's run instead of stalling the next switch.
    #[inline]
    fn prefetch_next_local(&self, w: &Worker) {
        if let Some(next) = w.local.peek() {
            self.slots.prefetch_for_run(next);
        }
    }

    /// A GVThread of `w` that used up its time slice: frozen ones (each holds
    /// an OS thread, and may hold a lock others wait for) and cooperatively
    /// preempted ones take turns, so neither kind starves the other.
    #[inline]
    fn pop_had_slice(&self, w: &Worker, tick: u32) -> Option<u32> {
        let links = &self.links;
        if tick & 2 == 0 {
            w.frozen.pop(links).or_else(|| w.preempted.pop(links))
        } else {
            w.preempted.pop(links).or_else(|| w.frozen.pop(links))
        }
    }

    /// Clears `w`'s attention bits whose queues are empty (see
    /// `sched::attention`). Only `w`'s holder calls it.
    fn refresh_attention(&self, w: &Worker) {
        let no_hogs = || w.frozen.is_empty() && w.preempted.is_empty();
        if w.attention.has(attention::HOGS) && no_hogs() {
            w.attention.lower(attention::HOGS, no_hogs);
        }
        let no_urgent = || !self.has_urgent(w);
        if w.attention.has(attention::URGENT) && no_urgent() {
            w.attention.lower(attention::URGENT, no_urgent);
        }
    }

    /// Queues `slot` (unbound, or of a priority only the global queues
    /// take) on the global queue of `prio`; urgent work raises every
    /// ordinary role's attention (see `sched::attention`).
    fn push_global(&self, prio: Priority, slot: u32) {
        self.global.push(prio, slot);
        if matches!(prio, Priority::Critical | Priority::High) {
            for w in &self.workers[..self.num_normal_workers] {
                w.attention.raise(attention::URGENT);
            }
        }
    }

    /// Whether Critical or High work waits for `w`.
    #[inline]
    fn has_urgent(&self, w: &Worker) -> bool {
        self.global.has_urgent()
            || !w.home_queue(Priority::Critical).is_empty()
            || !w.home_queue(Priority::High).is_empty()
    }

    /// Whether `next_quick` would find something (racy hint).
    #[inline]
    pub(crate) fn has_quick_work(&self, w: &Worker) -> bool {
        !w.frozen.is_empty() || self.has_unfrozen_work(w)
    }

    /// Whether `next_quick` would find something besides `w`'s frozen
    /// GVThreads (racy hint): work any thread of the role can run.
    /// Async-signal-safe (atomic loads only).
    #[inline]
    pub(crate) fn has_unfrozen_work(&self, w: &Worker) -> bool {
        let own = !w.preempted.is_empty() || !w.home_queue(Priority::Low).is_empty();
        if w.low_priority {
            return own || !self.global.is_empty(Priority::Low);
        }
        own || self.has_urgent(w)
            || !w.runnext.is_empty()
            || !w.local.is_empty()
            || !w.home_queue(Priority::Normal).is_empty()
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

    /// Queues a runnable slot (state word `word`) and wakes a worker for it
    /// if needed. Callable from any thread; `here`: the caller's machine, if
    /// it read it since its last switch (`None` reads it here).
    ///
    /// On a machine of this runtime it runs as a runtime section: the idle
    /// bookkeeping it may touch takes a lock, which a GVThread frozen by the
    /// preemption handler must never be holding.
    #[inline]
    pub(crate) fn ready_word_here(&self, slot: u32, word: u64, here: Option<&machine::Machine>) {
        debug_assert_eq!(state::kind(word), ACTIVE, "ready of a non-runnable GVThread");
        self.ready_word_from(slot, word, here);
    }

    /// [`ready_word_here`](Self::ready_word_here); `here`: the caller's machine, if
    /// the caller read it (see [`wake_from`](Self::wake_from)).
    ///
    /// Inlined: the common case (a GVThread wakes a Normal one bound to its
    /// own role, on which nothing Low runs: it goes to `runnext`, with
    /// nothing else to do) is a few loads and the `runnext` exchange; every
    /// other case is [`ready_word_any`](Self::ready_word_any).
    #[inline]
    fn ready_word_from(&self, slot: u32, word: u64, here: Option<&machine::Machine>) {
        if let Some(m) = here
            && let Some(h) = state::home(word)
            && state::priority(word) == Priority::Normal as u8
            && std::ptr::eq(&*m.shared, self)
        {
            m.enter();
            let w = &self.workers[h];
            // `note_wake` for a wake into our own `runnext` only acts when
            // the running GVThread (the waker) is less urgent: then it
            // preempts, which `ready_word_any` does.
            if std::ptr::eq(m.worker_ptr(), w)
                && !(w.busy.load(Ordering::Relaxed)
                    && (Priority::Normal as u8) < w.running_prio.load(Ordering::Relaxed))
            {
                self.set_runnext(w, slot, false);
                m.leave();
                return;
            }
            m.leave();
        }
        self.ready_word_any(slot, word, here);
    }

    /// [`ready_word_from`](Self::ready_word_from), every case.
    #[inline(never)]
    fn ready_word_any(&self, slot: u32, word: u64, here: Option<&machine::Machine>) {
        let prio = Priority::from_u8(state::priority(word));
        let m = match here {
            Some(m) => Some(m),
            None => machine::current(),
        };
        let m = m.filter(|m| std::ptr::eq(&*m.shared, self));
        if let Some(m) = m {
            m.enter();
        }
        let mine = m.map_or(std::ptr::null(), |m| m.worker_ptr());
        match state::home(word) {
            Some(h) => {
                let w = &self.workers[h];
                let own = std::ptr::eq(mine, w);
                let in_runnext = own && prio == Priority::Normal;
                if in_runnext {
                    // Bound here, and we hold the role: it runs on this worker.
                    self.set_runnext(w, slot, false);
                } else {
                    w.push_home(&self.links, prio, slot);
                    if !own {
                        self.idle_for(w).wake_worker(h, &self.workers);
                    }
                }
                self.note_wake(w, prio, own, mine.is_null(), in_runnext);
            }
            None => self.ready_fresh(slot, prio, mine, word & state::STARTED != 0),
        }
        if let Some(m) = m {
            m.leave();
        }
    }

    /// Wake-up preemption: a GVThread of priority `prio` was just made
    /// runnable for role `w` (`own`: by the GVThread running on `w`). A more
    /// urgent one (Critical or High over Normal, anything over Low) preempts
    /// the running GVThread at once; so does any wake from elsewhere when the
    /// running GVThread has already run for `wakeup_granularity` (by the
    /// coarse clock, then by its thread's CPU time: see
    /// `preempt::preempt_for_wake`; a signal still pending is not repeated). Otherwise
    /// the monitor preempts it once it has run that long. `from_outside`:
    /// the waker is no machine of this runtime (an OS thread, the timer
    /// thread, an async task); it advances the coarse clock first, which
    /// otherwise only the timer thread does. `in_runnext`: the GVThread went
    /// to `w`'s `runnext`, which counts as woken work by itself
    /// ([`Worker::has_woken`]), so the flag is left alone: a ping-pong pair
    /// then never sets it, and its switches skip clearing it.
    fn note_wake(&self, w: &Worker, prio: Priority, own: bool, from_outside: bool, in_runnext: bool) {
        if !in_runnext {
            w.note_woken();
        }
        if !w.busy.load(Ordering::Relaxed) {
            return;
        }
        if (prio as u8) < w.running_prio.load(Ordering::Relaxed) {
            w.urgent_wake.store(true, Ordering::Relaxed);
            crate::preempt::preempt_now(self, w, own);
        } else if !own {
            if from_outside {
                self.set_coarse_now(std::time::Instant::now());
            }
            if self.coarse_now().saturating_sub(w.since_ns.load(Ordering::Relaxed)) >= self.wakeup_granularity_ns() {
                crate::preempt::preempt_for_wake(self, w);
            }
        }
    }

    /// Queues a GVThread that has not started (any role may run it), or any
    /// GVThread under free migration.
    fn ready_fresh(&self, slot: u32, prio: Priority, mine: *const Worker, started: bool) {
        match prio {
            Priority::Normal => {
                // SAFETY: a non-null role pointer of the current machine
                // targets an element of `self.workers`.
                if let Some(w) = unsafe { mine.as_ref() }
                    && !w.low_priority
                {
                    // A wake under free migration: woken work, though the
                    // monitor may move it (see `Worker::has_woken`).
                    if started {
                        w.note_woken();
                    } else if w.runnext.holds_movable() {
                        // A fresh GVThread is next already (a burst of
                        // spawns): this one queues behind it, so a burst
                        // runs in the order it was spawned, and no spawn
                        // displaces the one before (an exchange and a state
                        // read each).
                        self.push_fresh_local(w, slot);
                        return;
                    }
                    self.set_runnext(w, slot, true);
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
                self.push_global(p, slot);
                self.idle.notify_one(&self.workers);
            }
        }
    }

    /// Makes `slot` run next on `w` (held by the caller, inside a section);
    /// the GVThread it displaces goes back to its queue. `movable`: not
    /// bound to a role (unstarted, or free migration), so the monitor may
    /// move it (see `sched::runnext`).
    #[inline]
    fn set_runnext(&self, w: &Worker, slot: u32, movable: bool) {
        if let Some(displaced) = w.runnext.put(slot, movable) {
            self.requeue_displaced(w, displaced);
        }
    }

    /// Queues the GVThread `set_runnext` took out of `w`'s `runnext`.
    #[inline(never)]
    fn requeue_displaced(&self, w: &Worker, displaced: u32) {
        let word = self.slots.state(displaced).load(Ordering::Relaxed);
        // A woken GVThread displaced waits in a queue now: woken work that
        // `runnext` alone no longer shows (see `Worker::has_woken`). An
        // unstarted one is no wake.
        if word & state::STARTED != 0 {
            w.note_woken();
        }
        if state::home(word).is_some() {
            w.push_home(&self.links, Priority::Normal, displaced);
        } else {
            self.push_fresh_local(w, displaced);
        }
    }

    /// Queues a Normal GVThread that any role may run in `w`'s ring (held
    /// by the caller, inside a section), and wakes an idle worker to steal.
    #[inline]
    fn push_fresh_local(&self, w: &Worker, slot: u32) {
        if w.local.push(slot, |s| self.global.push(Priority::Normal, s)) {
            w.spilled.store(true, Ordering::Relaxed);
        }
        // Only stealable work is worth waking another worker for; with a
        // group of one there is nobody else to wake.
        if self.num_normal_workers > 1 {
            self.idle.notify_one(&self.workers);
        }
    }

    /// Pushes a slot the worker itself just made runnable (no wake-ups).
    fn requeue_local(&self, slot: u32, word: u64, w: &Worker) {
        debug_assert_eq!(state::kind(word), ACTIVE, "requeue of a non-runnable GVThread");
        let prio = Priority::from_u8(state::priority(word));
        if let Some(h) = state::home(word) {
            self.workers[h].push_home(&self.links, prio, slot);
        } else if prio == Priority::Normal && !w.low_priority {
            w.local.push(slot, |s| self.global.push(Priority::Normal, s));
        } else {
            self.push_global(prio, slot);
        }
    }

    /// Wakes the GVThread in `slot` if it still has `generation`; a wake for
    /// an older generation is ignored. Returns whether it was delivered.
    pub(crate) fn wake(&self, slot: u32, generation: u32) -> bool {
        self.wake_from(slot, generation, None)
    }

    /// [`wake`](Self::wake); `here`: the caller's machine when the caller
    /// read it (`machine::current()`) in the runtime section it wakes
    /// from, which saves reading it again; `None`: unknown.
    pub(crate) fn wake_from(&self, slot: u32, generation: u32, here: Option<&machine::Machine>) -> bool {
        let st = self.slots.state(slot);
        let mut cur = st.load(Ordering::Acquire);
        loop {
            if state::generation(cur) != generation {
                return false;
            }
            let new = match state::kind(cur) {
                PARKED | BLOCKED => state::with_kind(cur, ACTIVE),
                // Also when `NOTIFIED` is already set: the exchange (of the
                // word for itself, then) is what publishes everything the
                // waker did before this wake to the GVThread's next park,
                // whose consuming read-modify-write acquires it. A plain
                // "already notified" return would leave the waker's last
                // writes (say, a fast waiter's poke) possibly unseen by a
                // wakee that consumed an earlier notification.
                ACTIVE => cur | NOTIFIED,
                _ => return false,
            };
            // AcqRel: Acquire pairs with the Release in `finish_park` (the
            // context is saved); Release publishes our wake to the parker.
            match st.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    match state::kind(cur) {
                        PARKED => self.ready_word_from(slot, new, here),
                        // Its OS thread waits on the word's futex (see `park`).
                        BLOCKED => crate::util::futex::wake_word_upper(st),
                        _ => {}
                    }
                    return true;
                }
                Err(c) => cur = c,
            }
        }
    }

    /// After a cooperative preemption switched away: bound Normal GVThreads
    /// go behind fresh and woken work on their role, others back to their
    /// queue.
    pub(crate) fn finish_preempted(&self, slot: u32, w: &Worker) {
        self.note_hog(w);
        let word = self.slots.state(slot).load(Ordering::Relaxed);
        match (Priority::from_u8(state::priority(word)), state::home(word)) {
            (Priority::Normal, Some(h)) => self.workers[h].push_preempted(&self.links, slot),
            (Priority::Normal, None) => self.global.push_preempted(slot),
            _ => self.requeue_local(slot, word, w),
        }
    }

    /// Moves `w`'s `runnext` to the global queue if it still holds the
    /// GVThread `seen` names (a [`RunNext::peek`] the monitor made a tick
    /// before, while the worker kept running something else) and that one
    /// is movable: a bound GVThread could not run anywhere else. Returns
    /// whether it moved.
    ///
    /// [`RunNext::peek`]: super::runnext::RunNext::peek
    pub(crate) fn evict_runnext(&self, w: &Worker, seen: u32) -> bool {
        let Some(slot) = w.runnext.evict(seen) else {
            return false;
        };
        // Movable words name unstarted GVThreads (or free migration), but
        // look again now that it is ours: a started one stays on its home
        // role whatever the word said.
        let word = self.slots.state(slot).load(Ordering::Acquire);
        match state::home(word) {
            Some(h) => {
                let home = &self.workers[h];
                home.push_home(&self.links, Priority::Normal, slot);
                self.idle_for(home).wake_worker(h, &self.workers);
            }
            None => {
                self.global.push(Priority::Normal, slot);
                self.idle.notify_one(&self.workers);
            }
        }
        true
    }

    /// After a yield switched away: back on the queue (the state stays
    /// ACTIVE). `st` is `slot`'s state word.
    pub(crate) fn finish_yield(&self, slot: u32, st: &AtomicU64, w: &Worker) {
        let word = st.load(Ordering::Relaxed);
        self.requeue_local(slot, word, w);
    }

    /// After a park switched away: publish PARKED, unless a wake came in
    /// meanwhile, in which case the GVThread goes straight back to the queue.
    /// `st` is `slot`'s state word.
    pub(crate) fn finish_park(&self, slot: u32, st: &AtomicU64, w: &Worker) {
        let mut cur = st.load(Ordering::Acquire);
        loop {
            debug_assert_eq!(state::kind(cur), ACTIVE);
            let notified = cur & NOTIFIED != 0;
            let new = if notified { cur & !NOTIFIED } else { state::with_kind(cur, PARKED) };
            // Release: the saved context is visible to whoever wakes it.
            match st.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    if notified {
                        self.requeue_local(slot, new, w);
                    }
                    return;
                }
                Err(c) => cur = c,
            }
        }
    }

    /// Gives the free slots `w` keeps for its spawns back to the pool: the
    /// role is about to sleep. The scavenger gives back only the memory of
    /// chunks with no slot in use, and a cached slot counts as in use, so
    /// without this an idle runtime could keep a chunk's page tables (about
    /// 1 MiB per chunk) for every slot cached, for good (`SlotCache`).
    ///
    /// # Safety
    ///
    /// The caller holds `w`'s role, inside a runtime section.
    pub(crate) unsafe fn return_cached_slots(&self, w: &Worker) {
        let mut wake = false;
        // SAFETY: the caller's contract.
        while let Some(slot) = unsafe { w.slot_cache.pop() } {
            wake |= self.slots.release(slot);
        }
        // The depot too: an idle runtime must not keep slots there (a role
        // still awake fills it again as its own cache overflows).
        self.slots.depot.drain(|slot| wake |= self.slots.release(slot));
        if wake {
            self.timers.parker.unpark();
        }
    }

    /// After an exit switched away: the slot is free for reuse.
    ///
    /// The GVThread is counted out first, before its state word says FREE:
    /// whoever sees FREE (`block_on` waiting for its root GVThread to be
    /// gone) then also sees `live_gvthreads` without it. Meanwhile the live
    /// count may be one below the slots in use, per worker: the pool keeps a
    /// chunk of slack beyond the limit (`SlotPool::new`). Shutdown frees
    /// stacks only once every worker thread has ended, so nothing below
    /// races with it.
    pub(crate) fn finish_exit(&self, slot: u32, w: &Worker) {
        self.count_exit(w);
        let st = self.slots.state(slot);
        let cur = st.load(Ordering::Acquire);
        // Release: everything the GVThread did happens-before the slot's reuse.
        st.store(state::with_kind(cur & !NOTIFIED, state::FREE), Ordering::Release);
        // SAFETY: post-switch actions run on the machine holding `w`, inside
        // the switch's runtime section.
        if unsafe { w.slot_cache.push(slot) } {
            return;
        }
        // Full: the older half goes to the depot, for a role that spawns
        // (`memory::depot`), or back to the pool.
        let default = self.config.stack_class();
        let mut wake = false;
        // SAFETY: as above.
        unsafe {
            w.slot_cache.spill(
                &self.slots.depot,
                |s| self.slots.class_of(s) == default,
                |s| wake |= self.slots.release(s),
            );
            let pushed = w.slot_cache.push(slot);
            debug_assert!(pushed, "a spilled cache has room");
        }
        if wake {
            // Enough free slots pile up: let the timer thread give pages back.
            self.timers.parker.unpark();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use super::attention;
    use crate::{Runtime, SchedulerConfig};

    /// Waits (bounded: fails after `limit`) until `cond` holds.
    fn wait_until(what: &str, limit: Duration, cond: impl Fn() -> bool) {
        let give_up = Instant::now() + limit;
        while !cond() {
            assert!(Instant::now() < give_up, "gave up waiting for {what}");
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// A role's `HOGS` attention bit goes up while a GVThread that used up
    /// its slice waits, and comes down once no such GVThread is left: the
    /// scheduler's fast path (which needs every bit down) works again after
    /// the hog ends.
    #[test]
    fn the_hogs_bit_comes_down_when_the_hog_ends() {
        let rt = Runtime::new(SchedulerConfig::default().num_workers(1).time_slice(Duration::from_millis(2)));
        let h = rt.handle();
        let stop_hog = Arc::new(AtomicBool::new(false));
        let stop_sleeper = Arc::new(AtomicBool::new(false));
        let naps = Arc::new(AtomicU64::new(0));
        let s = stop_hog.clone();
        let hog = h.spawn(move |_| {
            let limit = Instant::now() + Duration::from_secs(60);
            while !s.load(Ordering::Relaxed) && Instant::now() < limit {
                std::hint::spin_loop();
            }
        });
        let (s, n) = (stop_sleeper.clone(), naps.clone());
        let sleeper = h.spawn(move |_| {
            while !s.load(Ordering::Relaxed) {
                crate::sleep(Duration::from_millis(1));
                n.fetch_add(1, Ordering::Relaxed);
            }
        });
        let w = &h.shared.workers[0];
        wait_until("the hog to wait with the bit up", Duration::from_secs(30), || w.attention.has(attention::HOGS));
        stop_hog.store(true, Ordering::Relaxed);
        hog.join().unwrap();
        // The sleeper's wakes make scheduling decisions on the role.
        let before = naps.load(Ordering::Relaxed);
        wait_until("the bit to come down", Duration::from_secs(30), || {
            !w.attention.has(attention::HOGS) && naps.load(Ordering::Relaxed) > before + 2
        });
        stop_sleeper.store(true, Ordering::Relaxed);
        sleeper.join().unwrap();
        let m = h.metrics();
        assert!(m.forced_preemptions + m.cooperative_preemptions > 0, "{m:?}");
    }
}
