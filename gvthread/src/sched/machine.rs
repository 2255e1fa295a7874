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
use std::sync::atomic::{Ordering, compiler_fence};

use super::worker::Worker;
use crate::arch::{self, Context};
use crate::runtime::shared::Shared;
use crate::util::rand::FastRand;

/// `current` when the machine runs its scheduler loop.
pub(crate) const NO_GVTHREAD: u32 = u32::MAX;

/// What the previous GVThread on this machine asked to be done once its
/// context was saved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pending {
    None,
    /// Re-queue the slot.
    Yield(u32),
    /// Publish the slot as parked (or re-queue it if a wake came in).
    Park(u32),
    /// Free the slot.
    Exit(u32),
}

/// One OS thread running GVThreads for a runtime.
pub(crate) struct Machine {
    pub(crate) shared: Arc<Shared>,
    worker: Cell<*const Worker>,
    sched_ctx: UnsafeCell<Context>,
    current: Cell<u32>,
    pending: Cell<Pending>,
    rand: FastRand,
}

thread_local! {
    static MACHINE: Cell<*const Machine> = const { Cell::new(ptr::null()) };
}

/// The machine of the calling OS thread, or null. Opaque to the optimizer
/// (see the module docs); call it again after anything that may switch.
#[inline(never)]
pub(crate) fn current_ptr() -> *const Machine {
    compiler_fence(Ordering::SeqCst);
    let p = MACHINE.with(Cell::get);
    compiler_fence(Ordering::SeqCst);
    p
}

/// The machine of the calling OS thread. The reference must not be kept
/// across anything that may switch GVThreads.
#[inline]
pub(crate) fn current() -> Option<&'static Machine> {
    let p = current_ptr();
    // SAFETY: a non-null pointer was installed by `run` for this OS thread and
    // stays valid until `run` returns, which is after every GVThread this
    // thread runs has switched away; callers do not keep it across switches.
    unsafe { p.as_ref() }
}

/// The machine and slot of the calling GVThread, if the caller is one.
#[inline]
pub(crate) fn current_gvthread() -> Option<(&'static Machine, u32)> {
    let m = current()?;
    let slot = m.current.get();
    (slot != NO_GVTHREAD).then_some((m, slot))
}

/// Runs worker role `index` of `shared` on the calling OS thread until the
/// runtime stops.
pub(crate) fn run(shared: Arc<Shared>, index: usize) {
    let m = Machine {
        worker: Cell::new(&shared.workers[index]),
        shared,
        sched_ctx: UnsafeCell::new(Context::default()),
        current: Cell::new(NO_GVTHREAD),
        pending: Cell::new(Pending::None),
        rand: FastRand::new(0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1)),
    };
    MACHINE.with(|c| c.set(&m));
    m.schedule_loop();
    MACHINE.with(|c| c.set(ptr::null()));
}

impl Machine {
    /// The role this machine holds.
    #[inline]
    pub(crate) fn worker(&self) -> &Worker {
        // SAFETY: the pointer targets an element of `shared.workers`, which
        // lives as long as `shared`, which this machine keeps alive.
        unsafe { &*self.worker.get() }
    }

    /// The scheduler loop; runs on the machine's own stack.
    fn schedule_loop(&self) {
        let sh = &*self.shared;
        let mut searching = false;
        loop {
            self.complete_pending();
            if sh.is_stopped() {
                break;
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
                self.run_gvthread(slot);
                continue;
            }
            // Nothing to do: announce, look once more, then sleep.
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
        if searching {
            self.shared.idle_for(self.worker()).stop_search();
        }
    }

    /// Switches from the scheduler context into `slot`; returns when some
    /// GVThread switches back to the scheduler context.
    fn run_gvthread(&self, slot: u32) {
        let sh = &*self.shared;
        sh.mark_running(slot);
        self.current.set(slot);
        self.worker().activity.fetch_add(1, Ordering::Relaxed);
        let to = sh.context_of(slot);
        // SAFETY: `slot` was taken from a run queue, so it is RUNNABLE with a
        // saved (or fresh) context that nobody else will resume; the scheduler
        // context is ours to save into.
        unsafe { arch::switch(self.sched_ctx.get(), to) };
    }

    /// Completes what the GVThread that ran before left to do.
    #[inline]
    pub(crate) fn complete_pending(&self) {
        match self.pending.replace(Pending::None) {
            Pending::None => {}
            Pending::Yield(slot) => self.shared.finish_yield(slot, self.worker()),
            Pending::Park(slot) => self.shared.finish_park(slot, self.worker()),
            Pending::Exit(slot) => self.shared.finish_exit(slot),
        }
    }

    /// Picks what runs after the current GVThread: a runnable GVThread, or the
    /// scheduler context.
    fn successor(&self) -> *const Context {
        let sh = &*self.shared;
        let next = if sh.is_stopped() { None } else { sh.next_quick(self.worker()) };
        match next {
            Some(n) => {
                sh.mark_running(n);
                self.current.set(n);
                self.worker().activity.fetch_add(1, Ordering::Relaxed);
                sh.context_of(n)
            }
            None => {
                self.current.set(NO_GVTHREAD);
                self.sched_ctx.get()
            }
        }
    }
}

/// Suspends the calling GVThread; `action` is completed once its registers are
/// saved. Returns when the GVThread is resumed, possibly on another machine.
///
/// Must be called by a GVThread (`m` is its machine, `slot` its slot).
pub(crate) fn switch_away(m: &Machine, slot: u32, action: Pending) {
    let from = m.shared.context_of(slot);
    let to = m.successor();
    m.pending.set(action);
    // SAFETY: we run on `slot`'s stack, so saving into its context is ours to
    // do; `to` is a context nobody else resumes (taken from a run queue and
    // marked RUNNING, or this machine's scheduler context). The action that
    // makes `slot` resumable by others runs only after the switch saved it.
    unsafe { arch::switch(from, to) };
    // Resumed, possibly on another machine: `m` is stale, fetch it again.
    if let Some(m) = current() {
        m.complete_pending();
    }
}

/// Gives the worker to another runnable GVThread, if there is one, and
/// re-queues the caller. Must be called by a GVThread.
pub(crate) fn yield_gvthread(m: &Machine, slot: u32) {
    let sh = &*m.shared;
    if sh.is_stopped() || !sh.has_quick_work(m.worker()) {
        return;
    }
    switch_away(m, slot, Pending::Yield(slot));
}

/// Ends the calling GVThread: switches away for the last time.
pub(crate) fn exit_gvthread(m: &Machine, slot: u32) -> ! {
    switch_away(m, slot, Pending::Exit(slot));
    // An exited GVThread is never resumed: its slot was freed.
    std::process::abort();
}
