//! The one park/wake mechanism every blocking primitive uses.
//!
//! A blocking primitive:
//!
//! 1. takes a [`Waiter::current`] for the caller and stores it where its
//!    waker will find it (a wait queue, a join state, a timer);
//! 2. re-checks its condition (so a wake that raced in is not missed);
//! 3. calls [`park`] (or [`park_until`]) and loops back to 2 when it returns.
//!
//! At runtime shutdown, a GVThread parked in (or entering) `park` unwinds out
//! of it with a private payload; its join reports `JoinError::is_cancelled`.
//! Primitives keep their state consistent under that unwind (RAII guards).
//!
//! `park` may return spuriously (a wake left over from an earlier wait, or a
//! timer that raced), exactly like `std::thread::park`; primitives loop on
//! their condition. Inside a GVThread only the GVThread parks and its worker
//! runs others; on any other thread the OS thread parks.

use std::panic::Location;
use std::ptr::NonNull;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicU64, Ordering};

use super::machine::{self, Pending};
use crate::runtime::shared::Shared;
use crate::task::header::WaitInfo;
use crate::task::state;
use crate::util::futex;

/// A reference to one incarnation of a GVThread: waking it after it ended or
/// after its slot was reused is a no-op.
#[derive(Clone)]
pub(crate) struct GvRef {
    shared: Arc<Shared>,
    slot: u32,
    generation: u32,
}

impl GvRef {
    /// Wakes the GVThread if it is still the same incarnation.
    pub(crate) fn wake(&self) -> bool {
        self.shared.wake(self.slot, self.generation)
    }

    /// Whether both refer to the same GVThread incarnation.
    pub(crate) fn same(&self, other: &GvRef) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared) && self.slot == other.slot && self.generation == other.generation
    }
}

/// Whoever waits: a GVThread, an OS thread, or an async task.
#[derive(Clone)]
pub(crate) enum Waiter {
    GvThread(GvRef),
    /// A GVThread of the runtime the waking party runs on, without a
    /// counted reference (see [`GvPtr::waiter`]). Made only by a waker that
    /// wakes it right away, from the same OS thread; never stored.
    Near(GvPtr),
    Thread(std::thread::Thread),
    Task(Waker),
}

impl Waiter {
    /// The caller: its GVThread if it runs in one, else its OS thread.
    pub(crate) fn current() -> Waiter {
        match current_gvref() {
            Some(r) => Waiter::GvThread(r),
            None => Waiter::Thread(std::thread::current()),
        }
    }

    /// The runtime and slot of a GVThread waiter (`None` for an OS thread
    /// or a task).
    #[inline]
    pub(crate) fn gvthread(&self) -> Option<(&Shared, u32)> {
        match self {
            Waiter::GvThread(r) => Some((&r.shared, r.slot)),
            // SAFETY: a `Near` waiter's runtime is kept alive by the machine
            // of the party holding it (see the variant).
            Waiter::Near(p) => Some((unsafe { p.shared.as_ref() }, p.slot)),
            Waiter::Thread(_) | Waiter::Task(_) => None,
        }
    }

    /// Wakes the waiter.
    pub(crate) fn wake(&self) {
        self.wake_on(None);
    }

    /// Wakes the waiter; `here` is the caller's machine if the caller read
    /// it (`machine::current()`) in the runtime section it calls this from,
    /// which saves the wake reading it again.
    #[inline]
    pub(crate) fn wake_on(&self, here: Option<&machine::Machine>) {
        match self {
            Waiter::GvThread(r) => {
                r.wake();
            }
            Waiter::Near(p) => {
                // SAFETY: a `Near` waiter is woken by the party that made it
                // (`GvPtr::waiter`), still on a machine of that runtime, and
                // every machine holds an `Arc<Shared>`.
                let shared = unsafe { p.shared.as_ref() };
                // A `Near` waiter's runtime is the caller's machine's.
                shared.wake_from(p.slot, p.generation, here);
            }
            Waiter::Thread(t) => t.unpark(),
            Waiter::Task(w) => w.wake_by_ref(),
        }
    }

    /// Whether waking `self` would wake the same party as `other`.
    pub(crate) fn same(&self, other: &Waiter) -> bool {
        match (self, other) {
            (Waiter::GvThread(a), Waiter::GvThread(b)) => a.same(b),
            (Waiter::Near(a), Waiter::Near(b)) => a.same(b),
            (Waiter::Thread(a), Waiter::Thread(b)) => a.id() == b.id(),
            (Waiter::Task(a), Waiter::Task(b)) => a.will_wake(b),
            _ => false,
        }
    }
}

/// One incarnation of a GVThread, named *without* a counted reference to its
/// runtime: what wait queues store for a parked GVThread (`sync::waitq`), so
/// that registering a wait costs no atomic read-modify-write on the
/// runtime's reference count (and no cache-line traffic between workers).
///
/// Whoever turns it into a [`Waiter`] must know the runtime is alive then
/// ([`GvPtr::waiter`]'s contract). The rule that makes that easy: a runtime's
/// `Shared` is freed only after every GVThread of it has ended (shutdown
/// waits for them, and leaks the runtime if it abandons any), so while the
/// GVThread named here has not ended, its runtime is alive. A wait queue
/// keeps an entry only while its GVThread waits: the GVThread removes it,
/// under the queue's lock, before leaving the wait on every path (drop
/// guards; unwinding at shutdown included). Hence, under that lock, a queued
/// entry's runtime is alive.
#[derive(Clone, Copy)]
pub(crate) struct GvPtr {
    shared: NonNull<Shared>,
    slot: u32,
    generation: u32,
}

// SAFETY: `Shared` is Send + Sync; the pointer is only dereferenced while the
// runtime is known to be alive (see the type docs), from any thread.
unsafe impl Send for GvPtr {}
// SAFETY: as above; `GvPtr` has no interior mutability.
unsafe impl Sync for GvPtr {}

impl GvPtr {
    /// The calling GVThread, if the caller is one.
    #[inline]
    pub(crate) fn current() -> Option<GvPtr> {
        Self::current_on(machine::current()?)
    }

    /// The GVThread running on `m`, the caller's machine (read since the
    /// last switch), if any.
    #[inline]
    pub(crate) fn current_on(m: &machine::Machine) -> Option<GvPtr> {
        let slot = m.current_slot();
        if slot == machine::NO_GVTHREAD {
            return None;
        }
        // SAFETY: the machine keeps its runtime's pool alive.
        let generation = state::generation(unsafe { m.current_at().state() }.load(Ordering::Relaxed));
        Some(GvPtr { shared: NonNull::from(&*m.shared), slot, generation })
    }

    /// The runtime pointer and the (slot, generation) pair packed in a
    /// word, for storing in atomics ([`from_parts`](Self::from_parts)).
    #[inline]
    pub(crate) fn to_parts(self) -> (*mut Shared, u64) {
        (self.shared.as_ptr(), u64::from(self.slot) << 32 | u64::from(self.generation))
    }

    /// The inverse of [`to_parts`](Self::to_parts); `None` for a null runtime.
    #[inline]
    pub(crate) fn from_parts(shared: *mut Shared, id: u64) -> Option<GvPtr> {
        Some(GvPtr { shared: NonNull::new(shared)?, slot: (id >> 32) as u32, generation: id as u32 })
    }

    /// A waiter that wakes this GVThread, for a party that wakes it soon
    /// (after releasing the lock it popped it under). When that party runs
    /// on a machine of the same runtime (the common case: a GVThread waking
    /// a GVThread) it is a [`Waiter::Near`], which costs nothing, because
    /// that machine keeps the runtime alive until the wake; otherwise it
    /// takes a counted reference now, while the runtime is known to be
    /// alive, as [`Waiter::GvThread`].
    ///
    /// # Safety
    ///
    /// The runtime of this GVThread must be alive now: typically, the caller
    /// holds the lock of a wait queue that still holds this entry (see the
    /// type docs).
    #[inline]
    pub(crate) unsafe fn waiter(self) -> Waiter {
        // SAFETY: the caller's contract.
        unsafe { self.waiter_on(machine::current()) }
    }

    /// [`waiter`](Self::waiter) with the caller's machine already read
    /// (`machine::current()`, since the last switch).
    ///
    /// # Safety
    ///
    /// As for [`waiter`](Self::waiter).
    #[inline]
    pub(crate) unsafe fn waiter_on(self, here: Option<&machine::Machine>) -> Waiter {
        if here.is_some_and(|m| self.is_near(m)) {
            return Waiter::Near(self);
        }
        let rt = self.shared.as_ptr().cast_const();
        // SAFETY: the runtime is alive (the caller's contract), and the
        // pointer came from an `Arc<Shared>` (`current`), so it may gain a
        // counted reference.
        let shared = unsafe {
            Arc::increment_strong_count(rt);
            Arc::from_raw(rt)
        };
        Waiter::GvThread(GvRef { shared, slot: self.slot, generation: self.generation })
    }

    /// Whether this GVThread belongs to the runtime of `m` (which then keeps
    /// it alive: such a GVThread can be woken through `m.shared` without a
    /// [`Waiter`]).
    #[inline]
    pub(crate) fn is_near(&self, m: &machine::Machine) -> bool {
        std::ptr::eq(Arc::as_ptr(&m.shared), self.shared.as_ptr())
    }

    /// Its slot.
    #[inline]
    pub(crate) fn slot(&self) -> u32 {
        self.slot
    }

    /// Its generation.
    #[inline]
    pub(crate) fn generation(&self) -> u32 {
        self.generation
    }

    /// Whether both name the same GVThread incarnation.
    pub(crate) fn same(&self, other: &GvPtr) -> bool {
        self.shared == other.shared && self.slot == other.slot && self.generation == other.generation
    }
}

/// A reference to the calling GVThread, if the caller is one.
pub(crate) fn current_gvref() -> Option<GvRef> {
    let (m, slot) = machine::current_gvthread()?;
    // SAFETY: the machine keeps its runtime's pool alive.
    let generation = state::generation(unsafe { m.current_at().state() }.load(Ordering::Relaxed));
    Some(GvRef { shared: m.shared.clone(), slot, generation })
}

/// Parks the caller until woken. May return spuriously.
///
/// The caller's location is recorded for `Handle::dump` (what a parked
/// GVThread waits on is told by the file of the call site).
#[inline]
#[track_caller]
pub(crate) fn park() {
    match machine::current_gvthread() {
        Some((m, slot)) => park_gvthread(m, slot, Location::caller(), None),
        None => std::thread::park(),
    }
}

/// Parks the caller until woken or `deadline` passes. May return spuriously.
#[track_caller]
pub(crate) fn park_until(deadline: Instant) {
    let now = Instant::now();
    if now >= deadline {
        return;
    }
    match machine::current_gvthread() {
        Some((m, slot)) => {
            let generation = state::generation(m.shared.slots.state(slot).load(Ordering::Relaxed));
            let shared = m.shared.clone();
            let key = machine::in_section(|| shared.timers.add(deadline, slot, generation));
            // Cancel the timer however the park ends (it unwinds at shutdown).
            struct CancelTimer(Arc<Shared>, crate::timer::TimerKey);
            impl Drop for CancelTimer {
                fn drop(&mut self) {
                    let (shared, key) = (&self.0, self.1);
                    machine::in_section(|| shared.timers.cancel(key));
                }
            }
            let _cancel = CancelTimer(shared, key);
            park_gvthread(m, slot, Location::caller(), Some(deadline - now));
        }
        None => std::thread::park_timeout(deadline - now),
    }
}

/// Payload of the unwind that ends GVThreads parked at runtime shutdown.
pub(crate) struct ShutdownUnwind;

/// At shutdown, a GVThread in (or entering) a park unwinds out of it, so its
/// destructors run and shutdown does not wait for a wake that never comes.
/// Not while already unwinding: a second panic would abort.
fn unwind_if_shutting_down(shared: &Shared) {
    if shared.is_shutting_down() && !std::thread::panicking() {
        std::panic::resume_unwind(Box::new(ShutdownUnwind));
    }
}

fn park_gvthread(m: &machine::Machine, slot: u32, site: &'static Location<'static>, timeout: Option<Duration>) {
    unwind_if_shutting_down(&m.shared);
    // In a forked child nothing would ever wake this GVThread or run the
    // others: say so instead of hanging.
    if crate::util::fork::generation() != m.shared.config.fork_generation {
        panic!("{}", crate::util::fork::FORKED_MESSAGE);
    }
    // SAFETY: the running GVThread's own header; `wait` is a set of atomics,
    // and the slot (so the pointer) stays ours across the park.
    let wait: *const WaitInfo = unsafe { &(*m.current_at().header).wait };
    // Bookkeeping for `Handle::dump` and compaction: three relaxed stores
    // on the GVThread's own header, dated by the runtime's coarse clock (an
    // atomic load: no clock read on the park path).
    // SAFETY: see above.
    unsafe { (*wait).parking(site, timeout, m.shared.mono_coarse_now()) };
    // The runtime outlives its GVThreads (see `GvPtr`); unlike `m`, it is
    // the same on whatever machine the park returns.
    let shared: *const Shared = &*m.shared;
    park_gvthread_inner(m, slot);
    // SAFETY: see above (possibly on another machine now; the header is the
    // slot's, not the thread's).
    unsafe { (*wait).resumed() };
    // SAFETY: this GVThread has not ended, so its runtime is alive.
    unwind_if_shutting_down(unsafe { &*shared });
}

fn park_gvthread_inner(m: &machine::Machine, slot: u32) {
    // SAFETY: the machine keeps its runtime's pool alive.
    let st = unsafe { m.current_at().state() };
    // Fast path: a wake already arrived; consume it without switching.
    if st.load(Ordering::Acquire) & state::NOTIFIED != 0 {
        st.fetch_and(!state::NOTIFIED, Ordering::Acquire);
        return;
    }
    if std::thread::panicking() {
        park_blocking(st);
        return;
    }
    machine::switch_away(m, slot, Pending::Park(slot));
}

/// Parks an unwinding GVThread without switching away from its OS thread.
///
/// std counts panics per OS thread: a GVThread that blocks in a destructor
/// while unwinding and resumed on another OS thread would finish its unwind
/// there, leaving one thread's count stuck at "panicking" and taking the
/// other's below zero (later panics then abort). So the OS thread itself
/// waits, on the futex in the state word (kind `BLOCKED`); `Shared::wake`
/// makes the word `ACTIVE` and wakes the futex. Meanwhile the worker role
/// stays with this thread; the preemption monitor finds it blocked in a
/// system call and hands the role to a spare thread, as for any GVThread
/// blocked in the kernel.
fn park_blocking(st: &AtomicU64) {
    let mut cur = st.load(Ordering::Acquire);
    loop {
        let (new, done) = if cur & state::NOTIFIED != 0 {
            (cur & !state::NOTIFIED, true)
        } else {
            (state::with_kind(cur, state::BLOCKED), false)
        };
        match st.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) if done => return,
            Ok(_) => break,
            Err(c) => cur = c,
        }
    }
    loop {
        let w = st.load(Ordering::Acquire);
        if state::kind(w) != state::BLOCKED {
            return;
        }
        futex::wait_word_upper(st, (w >> 32) as u32);
    }
}

/// Lets other GVThreads run; returns at once when nothing else is runnable.
/// Outside a GVThread it yields the OS thread.
///
/// ```
/// let mut rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(1));
/// rt.block_on(|| {
///     let h = gvthread::spawn(|_| 1 + 1);
///     gvthread::yield_now(); // the spawned GVThread runs meanwhile
///     assert!(h.is_finished());
/// });
/// ```
#[inline(never)]
pub fn yield_now() {
    // Inlined thread-local read: this function is never inlined and reads the
    // thread-local only here, before the switch; after it, `resumed` reads it
    // through the opaque accessor on whatever thread runs it then.
    // SAFETY: a non-null machine pointer of this thread is valid (see
    // `machine::current`).
    let m = unsafe { machine::current_ptr_inlined().as_ref() };
    match m {
        Some(m) if m.current_slot() != machine::NO_GVTHREAD => {
            // Without a role (after a system-call hand-off) the yield waits for
            // one; in a forked child no other thread would ever hand it over:
            // fail instead of hanging. Checked only in that rare case, off the
            // fast path.
            if m.worker_ptr().is_null() && crate::util::fork::generation() != m.shared.config.fork_generation {
                panic!("{}", crate::util::fork::FORKED_MESSAGE);
            }
            machine::yield_gvthread(m, m.current_slot())
        }
        _ => std::thread::yield_now(),
    }
}

/// After a spawn: if it spilled the worker's local queue into the global
/// queue (the queue was full: the spawner outpaces the workers running its
/// GVThreads), the spawning GVThread yields behind the GVThreads still in the
/// queue, so that they run (here and on workers stealing them) while their
/// stacks are warm, instead of piling up until its time slice ends. Bounds
/// what a spawn loop keeps alive and cold on a worker to about two queues'
/// worth; a spawner that spills nothing never yields here, and neither does
/// one beside GVThreads that had their time slice (hogs) or woken ones
/// waiting in the role's home queue.
#[inline(never)]
pub(crate) fn help_after_spill() {
    // Inlined thread-local read: never inlined itself, and `m` is not used
    // after the yield, which may resume on another thread.
    // SAFETY: a non-null machine pointer of this thread is valid (see
    // `machine::current`).
    let Some(m) = (unsafe { machine::current_ptr_inlined().as_ref() }) else { return };
    let w = m.worker_ptr();
    if w.is_null() {
        return;
    }
    // SAFETY: a non-null role pointer targets an element of the runtime's
    // worker array, which the machine's `shared` keeps alive.
    let w = unsafe { &*w };
    if !w.spilled.load(Ordering::Relaxed) {
        return;
    }
    w.spilled.store(false, Ordering::Relaxed);
    let slot = m.current_slot();
    if slot == machine::NO_GVTHREAD || m.in_runtime() != 0 || std::thread::panicking() {
        return;
    }
    // The ring's entries and the half of it that went to the global queue.
    if start_drain(&m.shared, w, w.local.len() + crate::sched::queue::CAPACITY / 2 + 1) {
        machine::yield_gvthread(m, slot);
    }
}

/// Makes `w`'s next `decisions` scheduling decisions take fresh GVThreads
/// first (`Worker::drain_local`), for at most a time slice, so that the
/// calling GVThread, about to yield or park, resumes behind them. Returns
/// false, changing nothing, while GVThreads of the role use up whole time
/// slices: what is queued then runs long anyway (warm slots gain nothing),
/// and the caller would wait behind them for a slice each (see
/// docs/preemption.md, "Where the role goes"); nor while woken GVThreads wait
/// in the role's home queue, where the caller would queue behind them all (a
/// spawner among a hundred thousand sleepers that wake every millisecond
/// would wait there at every spill); they keep the worker busy anyway.
/// Called by `w`'s holder.
fn start_drain(sh: &Shared, w: &super::worker::Worker, decisions: u32) -> bool {
    if !w.frozen.is_empty() || !w.preempted.is_empty() || !w.home_queue(crate::Priority::Normal).is_empty() {
        return false;
    }
    w.drain_local.store(decisions, Ordering::Relaxed);
    // At most a time slice: GVThreads that run long do not keep the caller
    // waiting for a slice each.
    w.drain_until_ns.store(sh.coarse_now().saturating_add(sh.time_slice_ns()), Ordering::Relaxed);
    true
}

/// Parks a GVThread that joins `child`, which has not ended. On a runtime
/// with one ordinary worker, if `child` has not started yet and the
/// joiner's role has fresh GVThreads queued, the role
/// first runs its fresh GVThreads (in the order they were queued) and only
/// then the joiner, instead of taking turns: a GVThread that spawned a batch
/// and joins it one by one then parks once for the batch, not once per
/// GVThread (each join of a child that has not run parked the joiner, and the
/// child's exit put it back in `runnext`). Bounded like the wait after a
/// spill (`help_after_spill`): the queued count, at most a time slice, and
/// not beside hogs or woken GVThreads waiting in the home queue.
#[track_caller]
pub(crate) fn park_for_join(child: crate::GVThreadId) {
    match machine::current_gvthread() {
        Some((m, slot)) => {
            run_fresh_first(m, child);
            park_gvthread(m, slot, Location::caller(), None)
        }
        None => std::thread::park(),
    }
}

/// The first half of [`park_for_join`]: sets the role's drain if `child` is
/// unstarted and fresh GVThreads are queued.
fn run_fresh_first(m: &machine::Machine, child: crate::GVThreadId) {
    let w = m.worker_ptr();
    if w.is_null() || m.in_runtime() != 0 {
        return;
    }
    // SAFETY: a non-null role pointer targets an element of the runtime's
    // worker array, which the machine's `shared` keeps alive.
    let w = unsafe { &*w };
    if w.low_priority || w.local.is_empty() || w.drain_local.load(Ordering::Relaxed) != 0 {
        return;
    }
    let sh = &m.shared;
    // Only with one ordinary worker. With more, the fresh GVThreads in the
    // ring are what the other workers steal, and where one first runs binds
    // it for good: running the ring first starts them all here twice as
    // fast (children that yield soon after starting were all bound to the
    // spawner's role beside a loaded host's busy loops).
    if sh.num_normal_workers > 1 {
        return;
    }
    let Some(st) = sh.slots.state_if_valid(child.slot()) else { return };
    let word = st.load(Ordering::Relaxed);
    if state::generation(word) != child.generation() || word & state::STARTED != 0 || state::kind(word) != state::ACTIVE
    {
        return;
    }
    // The ring's entries, this role's share of the global queue (where the
    // monitor moves an unstarted `runnext` that waited a tick, and where
    // spawns from outside go), `runnext`, and the one the joiner's wake
    // will displace from it.
    let global = sh.global.len(crate::Priority::Normal) / sh.num_normal_workers.max(1);
    let share = global.min(crate::sched::queue::CAPACITY as usize / 2) as u32;
    start_drain(sh, w, w.local.len() + share + 2);
}

/// Sleeps for at least `d`. Inside a GVThread only the GVThread sleeps (the
/// timer thread wakes it); elsewhere the OS thread sleeps.
///
/// ```
/// use std::time::{Duration, Instant};
/// let mut rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(1));
/// let slept = rt.block_on(|| {
///     let t = Instant::now();
///     gvthread::sleep(Duration::from_millis(5));
///     t.elapsed()
/// });
/// assert!(slept >= Duration::from_millis(5));
/// ```
pub fn sleep(d: Duration) {
    if machine::current_gvthread().is_none() {
        std::thread::sleep(d);
        return;
    }
    if d.is_zero() {
        yield_now();
        return;
    }
    // An unrepresentable deadline means "forever" (until shutdown unwinds it).
    let Some(deadline) = Instant::now().checked_add(d) else {
        loop {
            park();
        }
    };
    while Instant::now() < deadline {
        park_until(deadline);
    }
}

/// The wake protocol's publication rule (loom): everything a waker wrote
/// before `Shared::wake` is visible to the wakee once its park returns, even
/// when the wake finds `NOTIFIED` already set by an earlier, unrelated wake
/// (the wakee may consume that one first). The word is abstracted to its
/// `NOTIFIED` bit of an `ACTIVE` GVThread; `wake` is `Shared::wake`'s
/// `ACTIVE` branch, the wakee's loop `park`'s consuming fast path.
/// Run: `RUSTFLAGS="--cfg loom" cargo test -p gvthread --lib --release loom_`.
#[cfg(all(test, loom))]
mod loom_tests {
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicU64, Ordering};

    use crate::task::state::NOTIFIED;

    /// `Shared::wake` on an `ACTIVE` word: always an exchange, even when the
    /// bit is already set (a plain "already notified" return publishes
    /// nothing).
    fn wake(word: &AtomicU64) {
        let mut cur = word.load(Ordering::Acquire);
        loop {
            match word.compare_exchange_weak(cur, cur | NOTIFIED, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                Err(c) => cur = c,
            }
        }
    }

    #[test]
    fn loom_a_wake_publishes_the_wakers_writes() {
        loom::model(|| {
            let word = Arc::new(AtomicU64::new(0));
            let data = Arc::new(AtomicU64::new(0));
            let stale = {
                let word = word.clone();
                loom::thread::spawn(move || wake(&word))
            };
            let waker = {
                let (word, data) = (word.clone(), data.clone());
                loom::thread::spawn(move || {
                    data.store(1, Ordering::Relaxed); // e.g. a fast waiter's poke
                    wake(&word);
                })
            };
            // The wakee parks until it sees the data, consuming one
            // notification per return from `park`.
            loop {
                while word.load(Ordering::Acquire) & NOTIFIED == 0 {
                    loom::thread::yield_now();
                }
                word.fetch_and(!NOTIFIED, Ordering::Acquire);
                if data.load(Ordering::Relaxed) == 1 {
                    break;
                }
            }
            stale.join().unwrap();
            waker.join().unwrap();
        });
    }
}
