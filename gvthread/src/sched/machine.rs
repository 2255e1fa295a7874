//! Machines (Go's M): the OS threads that hold worker roles and run GVThreads.
//!
//! Each machine has its own scheduler context (the OS thread's original
//! stack, Go's g0) where [`Machine::schedule_loop`] runs. GVThreads usually
//! switch directly to the next runnable GVThread; they fall back to the
//! scheduler context when nothing else is runnable or when they exit.
//!
//! # Post-switch actions
//!
//! A GVThread that stops running (yield, park, exit) cannot publish that fact
//! while it still runs on its stack: another worker could resume it before its
//! registers are saved. So it leaves a [`Pending`] action in the machine and
//! switches; whatever runs next on that machine (the next GVThread, or the
//! scheduler loop) completes the action first thing (Go's `mcall` + `park_m`).
//!
//! # Runtime sections
//!
//! `in_runtime` counts how deep the machine is in runtime code that uses its
//! role (run queue, pending action). A forced preemption never interrupts such
//! code (see `preempt`). Every switch is bracketed: the switching side enters
//! a section before choosing a successor, and the resumed side (whatever runs
//! next on that machine) completes the pending action and leaves it, so the
//! count stays balanced per machine even though GVThreads migrate.
//!
//! # Roles move between machines, machines never change roles
//!
//! A machine may give its role away (to a machine holding a preempted
//! GVThread, see `preempt`) and become a *spare*, waiting for the role to
//! come back. Each machine serves exactly one role for its whole life (see
//! the `sched` module docs: a role's GVThreads may have kept addresses of the
//! thread-locals of every OS thread the role ran on, so those threads must
//! never run another role's GVThreads).
//!
//! # Thread-local access
//!
//! A GVThread may resume on another machine after any switch, and LLVM may
//! keep a thread-local's address in a register across a call. Every read of
//! the current machine therefore goes through [`current_ptr`], which is
//! `#[inline(never)]` with compiler fences, so each call computes the
//! thread-local address afresh on the thread that is running it.

use std::cell::{Cell, UnsafeCell};
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, Ordering, compiler_fence};

use super::worker::Worker;
use crate::arch::{self, Context};
use crate::memory::SlotAt;
use crate::preempt::signal::{PREEMPT_SIGNAL, PREEMPT_TAG};
use crate::runtime::shared::Shared;
use crate::util::futex;
use crate::util::rand::FastRand;
use crate::util::thread_timer::ThreadTimer;

/// `current` when the machine runs its scheduler loop.
pub(crate) const NO_GVTHREAD: u32 = u32::MAX;

/// What the previous GVThread on this machine asked to be done once its
/// context was saved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pending {
    None,
    /// Re-queue the slot.
    Yield(u32),
    /// Re-queue the slot behind fresh work: it used up its time slice.
    Preempted(u32),
    /// Publish the slot as parked (or re-queue it if a wake came in).
    Park(u32),
    /// Free the slot.
    Exit(u32),
}

/// No preemption requested (see [`Machine::preempt_request`]).
pub(crate) const PREEMPT_NONE: u8 = 0;
/// Preempt the running GVThread: it used up its time slice.
pub(crate) const PREEMPT_HOG: u8 = 1;
/// Freeze the running GVThread only if it is blocked in a system call
/// (frozen GVThreads of the role wait, and may hold the lock it waits for).
pub(crate) const PREEMPT_BLOCKED: u8 = 2;
/// Preempt the running GVThread for a timer of its role that fell due
/// (`preempt::deadline`): only to a spare thread, which fires the timers.
pub(crate) const PREEMPT_DEADLINE: u8 = 3;

/// One OS thread running GVThreads for one worker role of a runtime.
pub(crate) struct Machine {
    pub(crate) shared: Arc<Shared>,
    /// The role this machine serves, for life.
    pub(crate) role: usize,
    /// The role held (always `role`'s), or null while spare (or while
    /// waiting in the preemption handler).
    worker: Cell<*const Worker>,
    sched_ctx: UnsafeCell<Context>,
    current: Cell<u32>,
    /// Where `current`'s state word and header are (`SlotAt::NONE` with
    /// `NO_GVTHREAD`): the park and switch paths need no slot lookup.
    current_at: Cell<SlotAt>,
    pending: Cell<Pending>,
    /// Where the slot named by `pending` is (its `current_at` when it
    /// switched away).
    pending_at: Cell<SlotAt>,
    /// Depth of runtime sections (see the module docs).
    in_runtime: Cell<u32>,
    /// A GVThread taken from a queue by `successor` that is held by another
    /// machine (preempted there): handed off from the scheduler loop.
    deferred: Cell<u32>,
    rand: FastRand,
    /// Idle polls in a row that waited out [`SIBLING_GRACE`] for nothing
    /// (see [`spin_for_work`]).
    grace_misses: Cell<u32>,
    /// The kernel thread id of this machine, where preemption signals go.
    pub(crate) tid: libc::pid_t,
    /// Set by the preemption monitor right before it signals this machine
    /// (`PREEMPT_*`); the handler takes it.
    pub(crate) preempt_request: AtomicU8,
    /// The role's activity counter when the request was made: the handler
    /// freezes only the GVThread the request was about (one that has run
    /// without switching since), never one that started running since.
    pub(crate) preempt_activity: AtomicU64,
    /// When the last request's signal was sent (coarse clock, ns): a
    /// request still pending long after may have lost its signal (see
    /// [`resend_if_stale`](Self::resend_if_stale)).
    requested_ns: AtomicU64,
    /// Waiting for its role as a spare, and free to be taken
    /// (`preempt::spares::take_spare`).
    pub(crate) spare: AtomicBool,
    /// Set while this machine waits inside the preemption handler.
    pub(crate) in_handler: Cell<bool>,
    /// A role handed to this machine while it waits (spare or preempted).
    handoff: AtomicPtr<Worker>,
    /// Futex word: 1 when `handoff` (or a stop) is ready to be taken.
    handoff_ready: AtomicU32,
    /// Re-sends a preemption request that the handler declined at an unsafe
    /// point (`preempt::signal`); `None` with forced preemption off, or if
    /// the kernel refused a timer.
    pub(crate) retry_timer: Option<ThreadTimer>,
    /// Retries in a row by `retry_timer` (handler only).
    pub(crate) unsafe_retries: Cell<u32>,
    /// Signals this thread when a timer of its role falls due while it runs
    /// a hog (`preempt::deadline`); `None` as `retry_timer`.
    pub(crate) deadline_timer: Option<ThreadTimer>,
    /// The sleeper a deadline freeze on this thread is for (handler only,
    /// see `preempt::deadline`).
    pub(crate) due_slot: Cell<u32>,
}

// SAFETY: the `Cell` fields are only touched by the machine's own OS thread
// (its scheduler loop, the GVThreads it runs, and its signal handler, which
// interrupts that same thread); other threads only use the atomics.
unsafe impl Sync for Machine {}
// SAFETY: as above; a Machine is created on, and stays with, its thread.
unsafe impl Send for Machine {}

thread_local! {
    static MACHINE: Cell<*const Machine> = const { Cell::new(ptr::null()) };
}

/// The machine of the calling OS thread, or null. Opaque to the optimizer
/// (see the module docs); call it again after anything that may switch.
/// Async-signal-safe (a const-initialised thread-local without destructor).
#[inline(never)]
pub(crate) fn current_ptr() -> *const Machine {
    compiler_fence(Ordering::SeqCst);
    let p = MACHINE.with(Cell::get);
    compiler_fence(Ordering::SeqCst);
    p
}

/// Like [`current_ptr`] but inlined: only for callers that are themselves
/// `#[inline(never)]` and read it once, before anything that may switch (so
/// no caller can keep the thread-local's address across a switch).
#[inline(always)]
pub(crate) fn current_ptr_inlined() -> *const Machine {
    MACHINE.with(Cell::get)
}

/// The machine of the calling OS thread. The reference must not be kept
/// across anything that may switch GVThreads.
#[inline]
pub(crate) fn current() -> Option<&'static Machine> {
    let p = current_ptr();
    // SAFETY: a non-null pointer was installed by `run` for this OS thread and
    // stays valid (the registry in `Shared` keeps machines alive) until `run`
    // returns; callers do not keep it across switches.
    unsafe { p.as_ref() }
}

/// The machine and slot of the calling GVThread, if the caller is one.
#[inline]
pub(crate) fn current_gvthread() -> Option<(&'static Machine, u32)> {
    let m = current()?;
    let slot = m.current.get();
    (slot != NO_GVTHREAD).then_some((m, slot))
}

/// Runs a machine of role `role` on the calling OS thread until the runtime
/// stops: holding the role first if `primary`, otherwise starting as one of
/// the role's spares.
pub(crate) fn run(shared: Arc<Shared>, role: usize, primary: bool) {
    let m = Arc::new(Machine {
        role,
        worker: Cell::new(ptr::null()),
        sched_ctx: UnsafeCell::new(Context::default()),
        current: Cell::new(NO_GVTHREAD),
        current_at: Cell::new(SlotAt::NONE),
        pending: Cell::new(Pending::None),
        pending_at: Cell::new(SlotAt::NONE),
        in_runtime: Cell::new(0),
        deferred: Cell::new(NO_GVTHREAD),
        rand: FastRand::new(0x9E37_79B9_7F4A_7C15 ^ (role as u64 + 1) ^ (&shared as *const _ as u64)),
        grace_misses: Cell::new(0),
        // SAFETY: gettid has no preconditions.
        tid: unsafe { libc::gettid() },
        preempt_request: AtomicU8::new(PREEMPT_NONE),
        preempt_activity: AtomicU64::new(0),
        requested_ns: AtomicU64::new(0),
        spare: AtomicBool::new(false),
        in_handler: Cell::new(false),
        handoff: AtomicPtr::new(ptr::null_mut()),
        handoff_ready: AtomicU32::new(0),
        retry_timer: if shared.config.enable_forced_preempt {
            // SAFETY: gettid has no preconditions.
            ThreadTimer::new(unsafe { libc::gettid() }, PREEMPT_SIGNAL, PREEMPT_TAG)
        } else {
            None
        },
        unsafe_retries: Cell::new(0),
        deadline_timer: if shared.config.enable_forced_preempt {
            // SAFETY: gettid has no preconditions.
            ThreadTimer::new(unsafe { libc::gettid() }, PREEMPT_SIGNAL, crate::preempt::deadline::DEADLINE_TAG)
        } else {
            None
        },
        due_slot: Cell::new(u32::MAX),
        shared,
    });
    if !m.shared.register_machine(&m) {
        return; // the role has as many threads as it may have
    }
    MACHINE.with(|c| c.set(Arc::as_ptr(&m)));
    let mut next_role = primary.then(|| &m.shared.workers[role] as *const Worker);
    loop {
        let r = match next_role.take() {
            Some(r) => r,
            None => match m.wait_as_spare() {
                Some(r) => r,
                None => break,
            },
        };
        m.take_role(r);
        // A sleeper of the role may fall due while this thread runs a hog.
        crate::preempt::deadline::arm_for_role(&m);
        m.schedule_loop();
        if m.shared.is_stopped() {
            break;
        }
    }
    MACHINE.with(|c| c.set(ptr::null()));
}

impl Machine {
    /// The role this machine holds. Only called while it holds one.
    #[inline]
    pub(crate) fn worker(&self) -> &Worker {
        let w = self.worker.get();
        debug_assert!(!w.is_null(), "machine without a role used its role");
        // SAFETY: the pointer targets an element of `shared.workers`, which
        // lives as long as `shared`, which this machine keeps alive.
        unsafe { &*w }
    }

    /// The role held, if any.
    pub(crate) fn worker_ptr(&self) -> *const Worker {
        self.worker.get()
    }

    /// The slot of the GVThread running on this machine, or `NO_GVTHREAD`.
    #[inline]
    pub(crate) fn current_slot(&self) -> u32 {
        self.current.get()
    }

    /// Where the running GVThread's state word and header are
    /// (`SlotAt::NONE` in the scheduler loop).
    #[inline]
    pub(crate) fn current_at(&self) -> SlotAt {
        self.current_at.get()
    }

    /// Names the GVThread about to run (or `NO_GVTHREAD`).
    #[inline]
    fn set_current(&self, slot: u32, at: SlotAt) {
        self.current.set(slot);
        self.current_at.set(at);
    }

    /// Depth of runtime sections.
    pub(crate) fn in_runtime(&self) -> u32 {
        self.in_runtime.get()
    }

    /// Enters a runtime section (see the module docs).
    #[inline]
    pub(crate) fn enter(&self) {
        self.in_runtime.set(self.in_runtime.get() + 1);
        // The signal handler (same thread) reads the count: keep the
        // compiler from moving section code above this point.
        compiler_fence(Ordering::SeqCst);
    }

    /// Leaves a runtime section.
    #[inline]
    pub(crate) fn leave(&self) {
        compiler_fence(Ordering::SeqCst);
        self.in_runtime.set(self.in_runtime.get() - 1);
    }

    /// Becomes the holder of `role`.
    pub(crate) fn take_role(&self, role: *const Worker) {
        self.worker.set(role);
        // SAFETY: roles live as long as `shared`.
        unsafe { (*role).holder.store(self as *const Machine as *mut Machine, Ordering::Release) };
    }

    /// Gives up the held role (the caller hands it to someone else).
    pub(crate) fn drop_role(&self) -> *const Worker {
        self.worker.replace(ptr::null())
    }

    /// Hands `role` to this machine, which is waiting for one.
    /// Async-signal-safe.
    pub(crate) fn give_role(&self, role: *const Worker) {
        self.handoff.store(role as *mut Worker, Ordering::Release);
        self.handoff_ready.store(1, Ordering::Release);
        futex::wake(&self.handoff_ready, 1);
    }

    /// Asks this machine's thread, by signal, to preempt the GVThread that
    /// has been running on role `w` since its activity counter read
    /// `activity`. A `PREEMPT_BLOCKED` request does not replace a
    /// `PREEMPT_HOG` one still on its way for the same GVThread (a freeze
    /// covers it). Async-signal-safe.
    pub(crate) fn request_preemption(&self, request: u8, activity: u64) {
        if request == PREEMPT_BLOCKED
            && self.preempt_request.load(Ordering::Acquire) == PREEMPT_HOG
            && self.preempt_activity.load(Ordering::Relaxed) == activity
        {
            return;
        }
        self.preempt_activity.store(activity, Ordering::Relaxed);
        self.preempt_request.store(request, Ordering::Release);
        self.send_request_signal();
    }

    fn send_request_signal(&self) {
        self.requested_ns.store(self.shared.coarse_now(), Ordering::Relaxed);
        // The thread of a registered machine lives until the runtime has
        // stopped its threads, so `tid` names it.
        crate::util::signal::send_tagged(
            self.tid,
            crate::preempt::signal::PREEMPT_SIGNAL,
            crate::preempt::signal::PREEMPT_TAG,
        );
    }

    /// Sends the signal of a request still pending `after_ns` after its
    /// last signal, again; returns whether it did. A signal can be lost:
    /// SIGURG is not queued, so one sent while the thread's deadline timer
    /// has its own SIGURG pending is dropped, and that timer's signal is
    /// then discarded if the timer is re-armed before the thread runs
    /// (`preempt::deadline`). Async-signal-safe.
    pub(crate) fn resend_if_stale(&self, after_ns: u64) -> bool {
        let sent = self.requested_ns.load(Ordering::Relaxed);
        if self.shared.coarse_now().saturating_sub(sent) < after_ns {
            return false;
        }
        if self.preempt_request.load(Ordering::Acquire) == PREEMPT_NONE {
            return false; // taken meanwhile
        }
        self.send_request_signal();
        true
    }

    /// Wakes this machine from a wait for a role without giving it one
    /// (shutdown).
    pub(crate) fn release_waiter(&self) {
        self.handoff_ready.store(1, Ordering::Release);
        futex::wake(&self.handoff_ready, 1);
    }

    /// Waits until a role is handed over; `None` if the runtime stopped
    /// instead. Async-signal-safe (futex only).
    pub(crate) fn wait_for_role(&self) -> Option<*const Worker> {
        loop {
            if self.handoff_ready.load(Ordering::Acquire) == 1 {
                self.handoff_ready.store(0, Ordering::Relaxed);
                let r = self.handoff.swap(ptr::null_mut(), Ordering::Acquire);
                if !r.is_null() {
                    return Some(r);
                }
                if self.shared.is_stopped() {
                    return None;
                }
                continue;
            }
            if self.shared.is_stopped() {
                return None;
            }
            futex::wait(&self.handoff_ready, 0, None);
        }
    }

    /// Offers this machine as a spare of its role and waits for the role.
    fn wait_as_spare(&self) -> Option<*const Worker> {
        if self.shared.is_stopped() {
            return None;
        }
        self.spare.store(true, Ordering::Release);
        self.wait_for_role()
    }

    /// The scheduler loop; runs on the machine's own stack. Returns when the
    /// runtime stops or when the machine handed its role away.
    fn schedule_loop(&self) {
        let sh = &*self.shared;
        let mut searching = false;
        // On the scheduler stack the role runs no GVThread (a role taken over
        // from a preempted machine may still say busy).
        self.worker().busy.store(false, Ordering::Relaxed);
        loop {
            self.complete_pending();
            if sh.is_stopped() {
                break;
            }
            // The role was handed here from a hog frozen because a timer of
            // the role fell due (`preempt::deadline`): fire it.
            let w = self.worker();
            if w.due_timer.load(Ordering::Relaxed) != u32::MAX {
                crate::preempt::deadline::fire_for_role(sh, w);
            }
            let deferred = self.deferred.replace(NO_GVTHREAD);
            if deferred != NO_GVTHREAD {
                if self.run_gvthread(deferred) {
                    break;
                }
                continue;
            }
            let w = self.worker();
            let idle = sh.idle_for(w);
            let mut next = sh.next_quick(w);
            if next.is_none() {
                if !searching {
                    searching = idle.try_start_search();
                }
                if searching {
                    next = sh.steal(w, &self.rand);
                }
            }
            if let Some(slot) = next {
                if searching {
                    searching = false;
                    if idle.stop_search() {
                        idle.notify_one(&sh.workers);
                    }
                }
                if self.run_gvthread(slot) {
                    break;
                }
                continue;
            }
            // Nothing to do: spin briefly first (work often arrives within
            // microseconds, e.g. the other side of a ping-pong on another
            // worker, and a futex sleep + wake costs far more), then
            // announce, look once more, and sleep.
            if spin_for_work(sh, w, &self.grace_misses) {
                continue;
            }
            self.enter();
            // SAFETY: we hold `w`'s role, inside the section just entered.
            unsafe { sh.return_cached_slots(w) };
            self.leave();
            idle.prepare_sleep(w.index, searching);
            searching = false;
            if (sh.is_stopped() || sh.has_work_for(w)) && idle.cancel_sleep(w.index) {
                continue;
            }
            // Either nothing to do, or a notifier already took us off the
            // sleeper list and will unpark us: consume that token now so it
            // does not count us twice later.
            w.parker.park(None);
            // Whoever unparked us counted us as searching.
            searching = true;
        }
        // Also when the role was just handed away (to the machine of a
        // frozen GVThread): the searcher count belongs to the role's group.
        if searching {
            sh.idle_for(&sh.workers[self.role]).stop_search();
        }
    }

    /// Runs `slot` from the scheduler context. Returns true if, instead, the
    /// role was handed to the machine holding `slot` (a preempted GVThread),
    /// which leaves this machine a spare.
    fn run_gvthread(&self, slot: u32) -> bool {
        let sh = &*self.shared;
        let at = sh.slots.locate(slot);
        // SAFETY: our `Shared` keeps the pool alive.
        let st = unsafe { at.state() };
        // Stack compaction (memory/compact.rs): a long-parked GVThread's
        // stack is copied back before anything reads its header.
        sh.slots.restore_if_compacted(slot, st);
        let holder = sh.take_bound_machine(slot);
        if !holder.is_null() {
            let role = self.drop_role();
            sh.metrics.handoffs.fetch_add(1, Ordering::Relaxed);
            // SAFETY: a bound machine stays alive (registry) while it waits.
            unsafe { (*holder).give_role(role) };
            return true;
        }
        let w = self.worker();
        sh.about_to_run(slot, st, w);
        // Enter the section before `current` names the GVThread: the signal
        // handler must never take the scheduler stack for the GVThread's.
        self.enter();
        self.set_current(slot, at);
        let was_idle = !w.busy.load(Ordering::Relaxed);
        if was_idle {
            // The timer thread advances the coarse clock only while some
            // role is busy: bring it up to date before it dates anything
            // (the switch below, the parks that follow).
            sh.set_coarse_now(std::time::Instant::now());
        }
        w.note_switch(sh.coarse_now());
        if was_idle {
            w.busy.store(true, Ordering::SeqCst);
            sh.wake_monitor();
        }
        // SAFETY: the header of an allocated slot is mapped (and restored).
        let to = unsafe { (*at.header).ctx.get() };
        // SAFETY: `slot` was taken from a run queue, so it is ACTIVE with a
        // saved (or fresh) context that nobody else will resume; the scheduler
        // context is ours to save into.
        unsafe { arch::switch(self.sched_ctx.get(), to) };
        // Back on the scheduler stack: whoever switched here entered a section.
        self.complete_pending();
        self.leave();
        if !self.worker.get().is_null() {
            self.worker().busy.store(false, Ordering::Relaxed);
        }
        false
    }

    /// Completes what the GVThread that ran before left to do.
    #[inline]
    pub(crate) fn complete_pending(&self) {
        let pending = self.pending.replace(Pending::None);
        if pending == Pending::None {
            return;
        }
        // SAFETY: our `Shared` keeps the pool alive.
        let st = unsafe { self.pending_at.get().state() };
        match pending {
            Pending::None => {}
            Pending::Yield(slot) => self.shared.finish_yield(slot, st, self.worker()),
            Pending::Preempted(slot) => self.shared.finish_preempted(slot, self.worker()),
            Pending::Park(slot) => self.shared.finish_park(slot, st, self.worker()),
            Pending::Exit(slot) => self.shared.finish_exit(slot, self.worker()),
        }
    }

    /// The next GVThread for this machine's role, without stealing (none once
    /// the runtime stopped).
    fn next_runnable(&self) -> Option<u32> {
        let sh = &*self.shared;
        if sh.is_stopped() { None } else { sh.next_quick(self.worker()) }
    }

    /// What to switch to after the current GVThread: `next`, or the scheduler
    /// context (when there is none, or it is held by another machine).
    fn successor(&self, next: Option<u32>) -> *const Context {
        let sh = &*self.shared;
        let Some(n) = next else {
            self.set_current(NO_GVTHREAD, SlotAt::NONE);
            return self.sched_ctx.get();
        };
        let at = sh.slots.locate(n);
        // SAFETY: our `Shared` keeps the pool alive.
        let st = unsafe { at.state() };
        // Stack compaction (memory/compact.rs): a long-parked GVThread's
        // stack is copied back before anything reads its header.
        sh.slots.restore_if_compacted(n, st);
        // SAFETY: the header of a queued slot is mapped (and restored);
        // `bound` is atomic.
        if unsafe { !(*at.header).bound.load(Ordering::Acquire).is_null() } {
            // Held by a machine waiting in the preemption handler: the
            // scheduler loop hands it our role once we are off this stack.
            self.deferred.set(n);
            self.set_current(NO_GVTHREAD, SlotAt::NONE);
            return self.sched_ctx.get();
        }
        sh.about_to_run(n, st, self.worker());
        self.set_current(n, at);
        self.worker().note_switch(sh.coarse_now());
        // SAFETY: as above; we only form a pointer to its `ctx`.
        unsafe { (*at.header).ctx.get() }
    }
}

/// How long an idle worker polls for work before sleeping on its futex,
/// once it has seen another worker of its group run a GVThread.
const IDLE_SPIN: std::time::Duration = std::time::Duration::from_micros(20);
/// How long it polls while the other workers of its group are awake but none
/// runs a GVThread: a sibling between two GVThreads, or about to run one it
/// was just handed, looks idle for a moment.
const SIBLING_GRACE: std::time::Duration = std::time::Duration::from_micros(5);

/// After this many graces in a row waited out for nothing, a worker polls
/// through the grace only on every [`GRACE_PROBE`]-th idle moment.
const GRACE_MISSES: u32 = 4;
/// See [`GRACE_MISSES`].
const GRACE_PROBE: u32 = 16;

/// Polls for work `w` could run; true if some showed up. Work then often
/// comes from a sibling within microseconds (the other side of a channel on
/// another worker), and a futex sleep and wake costs far more. Polls for up
/// to [`IDLE_SPIN`] once another worker of the group is seen running a
/// GVThread, for up to [`SIBLING_GRACE`] while some are merely awake, and not
/// at all when all of them sleep: new work then comes from outside (timers,
/// other runtimes), and spinning would only take CPU from it.
///
/// Why the grace: a worker that goes idle while its sibling is between two
/// GVThreads used to sleep at once, and the sibling's next wake for it then
/// paid a futex wake: producers on one worker and consumers on the other
/// (4 and 4 on one channel) took 250-530 ns per message, 30-120 ns with it.
/// Where the siblings are idle for good (GVThreads woken by timers, one at a
/// time), the grace is CPU spent for nothing; `misses` (the machine's
/// count of graces in a row that ended with nothing) turns it down to one
/// idle moment in [`GRACE_PROBE`] after [`GRACE_MISSES`] of them.
fn spin_for_work(sh: &Shared, w: &Worker, misses: &Cell<u32>) -> bool {
    let group =
        if w.low_priority { &sh.workers[sh.num_normal_workers..] } else { &sh.workers[..sh.num_normal_workers] };
    let sibling_busy = || group.iter().any(|o| o.index != w.index && o.busy.load(Ordering::Relaxed));
    let mut seen_busy = sibling_busy();
    if !seen_busy {
        let m = misses.get();
        let probe = m < GRACE_MISSES || m.is_multiple_of(GRACE_PROBE);
        if !probe || !sh.idle_for(w).others_awake() {
            if m >= GRACE_MISSES {
                misses.set(m.wrapping_add(1).max(GRACE_MISSES));
            }
            return false;
        }
    }
    let start = std::time::Instant::now();
    loop {
        for _ in 0..64 {
            std::hint::spin_loop();
        }
        if sh.is_stopped() || sh.has_work_for(w) {
            misses.set(0);
            return true;
        }
        if !seen_busy && sibling_busy() {
            seen_busy = true;
            misses.set(0);
        }
        if start.elapsed() >= if seen_busy { IDLE_SPIN } else { SIBLING_GRACE } {
            if !seen_busy {
                misses.set(misses.get().wrapping_add(1).max(1));
            }
            return false;
        }
    }
}

/// Suspends the calling GVThread; `action` is completed once its registers are
/// saved. Returns when the GVThread is resumed, possibly on another machine.
///
/// Must be called by a GVThread (`m` is its machine, `slot` its slot).
pub(crate) fn switch_away(m: &Machine, slot: u32, action: Pending) {
    m.enter();
    let next = m.next_runnable();
    switch_to(m, slot, action, next);
}

/// Like [`switch_away`] with the successor already chosen; the caller has
/// entered a runtime section (the resumed side leaves it).
fn switch_to(m: &Machine, slot: u32, action: Pending, next: Option<u32>) {
    debug_assert_eq!(m.current.get(), slot, "only the running GVThread switches away");
    let at = m.current_at();
    // SAFETY: the running GVThread's header is mapped; we only form a
    // pointer to its `ctx`.
    let from = unsafe { (*at.header).ctx.get() };
    let to = m.successor(next);
    m.pending.set(action);
    m.pending_at.set(at);
    // The pending action (which makes `slot` resumable by others) runs only
    // after the switch below has saved `slot`'s registers.
    // SAFETY: we run on `slot`'s stack, so its context is ours to save; `to` is
    // a context nobody else resumes (from a run queue, or our scheduler stack).
    unsafe { arch::switch(from, to) };
    // Resumed, possibly on another machine: `m` is stale, fetch it again.
    resumed();
}

/// What every resumed context does first: complete the pending action of
/// the machine it now runs on and leave the switch's runtime section.
#[inline]
pub(crate) fn resumed() {
    if let Some(m) = current() {
        m.complete_pending();
        m.leave();
    }
}

/// Gives the worker to another runnable GVThread, if there is one, and
/// re-queues the caller. Must be called by a GVThread.
pub(crate) fn yield_gvthread(m: &Machine, slot: u32) {
    yield_as(m, slot, Pending::Yield(slot));
}

/// Yields because the time slice is used up (a safepoint saw the monitor's
/// request): re-queued behind fresh work, like a forced preemption.
pub(crate) fn yield_preempted(m: &Machine, slot: u32) {
    yield_as(m, slot, Pending::Preempted(slot));
}

fn yield_as(m: &Machine, slot: u32, action: Pending) {
    if std::thread::panicking() {
        // Unwinding: the GVThread must stay on this OS thread, which holds
        // its panic count (see `park`); a yield would let it resume on another.
        std::thread::yield_now();
        return;
    }
    m.enter();
    m.worker().clear_preempt_request();
    match m.next_runnable() {
        Some(next) => switch_to(m, slot, action, Some(next)),
        // Nothing else is runnable: keep running, but count it as a switch so
        // the monitor does not preempt a GVThread that is alone anyway.
        None => {
            m.worker().note_switch(m.shared.coarse_now());
            m.leave();
        }
    }
}

/// Ends the calling GVThread: switches away for the last time.
pub(crate) fn exit_gvthread(m: &Machine, slot: u32) -> ! {
    switch_away(m, slot, Pending::Exit(slot));
    // An exited GVThread is never resumed: its slot was freed.
    std::process::abort();
}

/// Runs `f` in a runtime section of the caller's machine (if any), so a
/// forced preemption cannot interrupt it. `f` must not switch.
#[inline]
pub(crate) fn in_section<R>(f: impl FnOnce() -> R) -> R {
    in_section_of(current(), f)
}

/// [`in_section`] with the caller's machine already read (`current()`,
/// since the last switch), for callers that pass it on to what runs in the
/// section.
#[inline]
pub(crate) fn in_section_of<R>(m: Option<&Machine>, f: impl FnOnce() -> R) -> R {
    struct Leave(*const Machine);
    impl Drop for Leave {
        #[inline]
        fn drop(&mut self) {
            // SAFETY: the machine outlives the section (no switch inside).
            unsafe { (*self.0).leave() };
        }
    }
    match m {
        Some(m) => {
            m.enter();
            let _leave = Leave(m);
            f()
        }
        None => f(),
    }
}
