//! The SIGURG handler: forced preemption by hand-off.
//!
//! Everything here runs inside a signal handler: only atomics, futexes and
//! plain memory reads and writes; no allocation, no locks, no formatting.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::alloc;
use super::deadline::{self, DEADLINE_TAG};
use super::foreign;
use super::spares::{request_spare, take_spare};
use super::syscall;
use crate::arch::Interrupted;
use crate::sched::machine::{self, Machine, NO_GVTHREAD, PREEMPT_BLOCKED, PREEMPT_DEADLINE, PREEMPT_NONE};
use crate::task::state;
use crate::util::signal::{self, ChainedHandler};

/// The signal used for forced preemption (as Go does: rarely used by
/// programs, and not reserved by libc).
pub(crate) const PREEMPT_SIGNAL: libc::c_int = libc::SIGURG;

static HANDLER: ChainedHandler = ChainedHandler::new();

/// Installs the handler once per process, remembering the previous one so
/// that signals that are not ours are passed on.
pub(crate) fn install() {
    foreign::init();
    HANDLER.install(PREEMPT_SIGNAL, handler, libc::SA_ONSTACK | libc::SA_RESTART);
}

/// The value our preemption signals carry: any other SIGURG (`raise`, another
/// library's `pthread_kill`, socket out-of-band data) goes to the previous
/// handler, even while a request is pending.
pub(crate) const PREEMPT_TAG: usize = 0x6776_7468_7572_6721;

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: reading errno of this thread.
    let saved_errno = unsafe { *libc::__errno_location() };
    // SAFETY: `info` is the kernel's siginfo for this signal.
    let tag = unsafe { signal::tag_of(info) };
    if tag == Some(PREEMPT_TAG) || tag == Some(DEADLINE_TAG) {
        let m = machine::current_ptr();
        if !m.is_null() {
            // SAFETY: a non-null machine pointer of this thread is valid (see
            // `machine::current`); `ctx` is the kernel's ucontext for this
            // signal.
            unsafe { on_our_signal(&*m, ctx) };
        }
    } else {
        // SAFETY: forwarding the handler's own arguments. With no previous
        // handler there is nothing to do: SIGURG's default action is to
        // ignore it.
        unsafe { HANDLER.call_previous(sig, info, ctx) };
    }
    // SAFETY: restoring errno of this thread.
    unsafe { *libc::__errno_location() = saved_errno };
}

/// Handles one of our signals on `m`'s thread. Both kinds are handled
/// whichever arrived: SIGURG is not a real-time signal, so while one is
/// pending another sent to the thread is lost (the monitor's request sent
/// while a deadline timer's signal is pending, or the other way round).
///
/// # Safety
/// Called only from the signal handler on `m`'s own thread, with the
/// kernel's ucontext for the signal.
unsafe fn on_our_signal(m: &Machine, ctx: *mut libc::c_void) {
    // A request already taken by an earlier signal (the monitor asks again
    // while one is on its way) leaves nothing here.
    let request = m.preempt_request.swap(PREEMPT_NONE, Ordering::AcqRel);
    let w = m.worker_ptr();
    // SAFETY: a non-null role pointer targets an element of the runtime's
    // worker array, which `m.shared` keeps alive.
    let activity = (!w.is_null()).then(|| unsafe { &*w }.activity.load(Ordering::Relaxed));
    if request != PREEMPT_NONE {
        // SAFETY: the caller's contract.
        unsafe { preempt_here(m, request, Interrupted::from_ucontext(ctx)) };
    }
    let w = m.worker_ptr();
    // SAFETY: as above.
    if w.is_null() || Some(unsafe { &*w }.activity.load(Ordering::Relaxed)) != activity {
        return; // frozen and resumed since: the resume looked at the timers
    }
    // SAFETY: the caller's contract; read again, as nothing above changed
    // the interrupted context (it changes only with a freeze).
    unsafe { deadline::on_signal(m, Interrupted::from_ucontext(ctx)) };
}

/// First delay of a retry after a preemption declined at an unsafe point
/// (the C library, an allocator) or in a runtime section: such code is
/// usually left within microseconds.
const RETRY_FIRST: Duration = Duration::from_micros(20);

/// Retries after an unsafe point, doubling from [`RETRY_FIRST`] (20 us to
/// 640 us, about 1.3 ms in all); after that the monitor's own retries and
/// ticks take over.
const MAX_RETRIES: u32 = 6;

/// A request declined at an unsafe point or in a runtime section is put
/// back and this thread's retry timer re-sends it shortly
/// (`util::thread_timer`): the kernel interrupts the thread on its own CPU,
/// so the retry does not wait for the timer thread to get a CPU, which on a
/// loaded machine took milliseconds.
/// Async-signal-safe (`timer_settime` is).
fn retry_soon(m: &Machine, request: u8) {
    let Some(timer) = &m.retry_timer else { return };
    let n = m.unsafe_retries.get();
    if n >= MAX_RETRIES {
        m.unsafe_retries.set(0);
        return;
    }
    // Only if no newer request came meanwhile (it has its own signal).
    if m.preempt_request.compare_exchange(PREEMPT_NONE, request, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
        m.unsafe_retries.set(n + 1);
        timer.fire_after(RETRY_FIRST * (1 << n));
    }
}

/// Freezes the GVThread running on `m` right where it was interrupted (the
/// kernel saved every register, FPU and SIMD state included, in the signal
/// frame), queues it on its role's `frozen` queue, hands the role to another
/// thread of the same role, and waits until a scheduler picks the GVThread and
/// hands the role back; then returns, resuming the GVThread on its own OS
/// thread. Declines (returns at once; retried shortly or at the monitor's
/// next request) where freezing is not safe or not possible.
///
/// The role goes to, in order of preference:
/// * for a GVThread blocked in a system call (`PREEMPT_BLOCKED`, or a hog
///   request that found it in the kernel): the thread of the oldest frozen
///   GVThread of the role, which may hold the lock it waits for;
/// * otherwise a spare thread of the role, which runs everything else;
/// * failing a spare (the role's threads are all taken): the oldest frozen
///   GVThread's thread, so frozen GVThreads are resumed in turn; and if
///   GVThreads of the role that are not frozen wait to run, a spare is
///   asked for beyond the role's cap (unless a frozen GVThread of the role
///   is blocked in a system call), so that they do not wait for a hog to
///   end.
///
/// # Safety
/// Called only from the signal handler on `m`'s own thread.
pub(super) unsafe fn preempt_here(m: &Machine, request: u8, at: Interrupted) {
    if m.in_handler.get() {
        return;
    }
    let slot = m.current_slot();
    let w = m.worker_ptr();
    if slot == NO_GVTHREAD || w.is_null() {
        return;
    }
    // SAFETY: a non-null role pointer targets an element of the runtime's
    // worker array.
    if unsafe { &*w }.activity.load(Ordering::Relaxed) != m.preempt_activity.load(Ordering::Relaxed) {
        return; // the role switched since the request: not the GVThread it was about
    }
    if m.in_runtime() > 0 {
        // Inside the runtime, which is left within microseconds: ask again
        // shortly, as at an unsafe point. (Left to the monitor's next
        // request, a time slice later, loops that spend most of their time
        // in runtime calls dodged most signals.) Nothing of the GVThread is
        // read before this point: a section may be half-way through a
        // switch, its `current` naming a stack not yet ready.
        m.shared.metrics.unsafe_point_retries.fetch_add(1, Ordering::Relaxed);
        retry_soon(m, request);
        return;
    }
    let sh = &*m.shared;
    if sh.no_preempt_depth(slot) > 0 {
        return;
    }
    if request == PREEMPT_BLOCKED && !at.in_syscall {
        return; // running, not waiting: not a lock waiter
    }
    if foreign::may_hold_lock(&at) || alloc::in_allocator() {
        sh.metrics.unsafe_point_retries.fetch_add(1, Ordering::Relaxed);
        // May hold a C library or allocator lock: ask again shortly.
        retry_soon(m, request);
        return;
    }
    m.unsafe_retries.set(0);
    let w = m.worker();
    let to_frozen = |sh: &crate::runtime::shared::Shared| {
        let f = w.frozen.pop(&sh.links)?;
        let holder = sh.take_bound_machine(f);
        // Every entry of `frozen` is bound to the machine that froze it.
        (!holder.is_null()).then_some(holder)
    };
    // `rotating`: no spare, so the role goes to a frozen GVThread.
    let (next, rotating) = if request == PREEMPT_DEADLINE {
        // Only a spare runs the scheduler loop that fires the due timers.
        (take_spare(w), false)
    } else if at.in_syscall {
        (to_frozen(sh).or_else(|| take_spare(w)), false)
    } else {
        match take_spare(w) {
            Some(spare) => (Some(spare), false),
            None => (to_frozen(sh), true),
        }
    };
    let Some(next) = next else {
        sh.metrics.no_spare.fetch_add(1, Ordering::Relaxed);
        if request == PREEMPT_DEADLINE {
            request_spare(sh, w, false);
            deadline::no_spare(m);
            return;
        }
        // A GVThread blocked while unwinding cannot leave this thread: the
        // role may need a thread beyond its cap to go on (see `Worker`).
        let unwinding = state::kind(sh.slots.state(slot).load(Ordering::Relaxed)) == state::BLOCKED;
        request_spare(sh, w, unwinding);
        return;
    };
    m.in_handler.set(true);
    sh.metrics.forced_preemptions.fetch_add(1, Ordering::Relaxed);
    if request == PREEMPT_DEADLINE {
        sh.metrics.deadline_preemptions.fetch_add(1, Ordering::Relaxed);
        // The spare taking the role fires the due timer (published to it by
        // `give_role`).
        w.due_timer.store(m.due_slot.get(), Ordering::Relaxed);
    }
    sh.note_hog(w);
    if at.in_syscall {
        w.blocked_holds.fetch_add(1, Ordering::Relaxed);
    }
    // Rotating, every thread of the role holds a frozen GVThread. If others
    // of the role wait to run, it needs one more thread (beyond its cap if
    // need be), or they would wait until a hog ends. Not while a frozen
    // one was blocked in a system call: that is a lock waiter, and more
    // threads would block on the same lock (see `Worker::thread_cap`).
    let relief = rotating && w.blocked_holds.load(Ordering::Relaxed) == 0 && sh.has_unfrozen_work(w);
    let role = m.drop_role();
    if let Some(call) = at.syscall().and_then(syscall::resumable) {
        // Blocked in the kernel: the role goes on without us while the call
        // finishes here (see `syscall`).
        sh.metrics.syscall_handoffs.fetch_add(1, Ordering::Relaxed);
        // SAFETY: machines stay alive (registry) while the runtime runs.
        unsafe { (*next).give_role(role) };
        request_spare(sh, w, false);
        let result = syscall::carry_out(call);
        // SAFETY: `call` was the interrupted call, now carried out; the
        // handler returns to the interrupted code after the role is back.
        unsafe { at.complete_syscall(result) };
        sh.bind(slot, m);
        w.push_frozen(&sh.links, slot);
        // The role's holder may sleep. The idle lock is never held by the
        // code a handler interrupts (it is taken only inside runtime
        // sections, where the handler declines), so taking it here cannot
        // deadlock this thread.
        sh.idle_for(w).wake_worker(w.index, &sh.workers);
    } else {
        // The state word stays as it is: queued-but-bound is still "not
        // parked". Queued before the role leaves: its next holder may take it.
        sh.bind(slot, m);
        w.push_frozen(&sh.links, slot);
        // SAFETY: machines stay alive (registry) while the runtime runs.
        unsafe { (*next).give_role(role) };
        request_spare(sh, w, relief);
    }
    match m.wait_for_role() {
        Some(r) => m.take_role(r),
        // The runtime stopped while we waited: this GVThread is abandoned.
        // Never return into it without a role.
        None => loop {
            // SAFETY: pause has no preconditions; it only waits for a signal.
            unsafe { libc::pause() };
        },
    }
    let w = m.worker();
    if at.in_syscall {
        w.blocked_holds.fetch_sub(1, Ordering::Relaxed);
    }
    w.note_switch(sh.coarse_now());
    // A known hog resumes: its evidence of running counts from here (see
    // `cpu_time`), not from the monitor's next tick.
    w.cpu_watch.look(m, w.activity.load(Ordering::Relaxed));
    w.busy.store(true, Ordering::SeqCst);
    // A sleeper of the role may be due before this hog's slice ends.
    deadline::arm_for_role(m);
    // The monitor may have gone idle while the role sat on another thread's
    // scheduler stack; it must watch this GVThread again.
    sh.wake_monitor();
    m.in_handler.set(false);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use crate::preempt::spares::{request_spare, spare_count};
    use crate::sched::machine::{self, PREEMPT_BLOCKED, PREEMPT_HOG, PREEMPT_NONE};
    use crate::{Runtime, SchedulerConfig};

    /// A request whose signal was lost (SIGURG is not queued: see
    /// `Machine::resend_if_stale`) gets its signal again once it has been
    /// pending a while, and the handler takes it; a request sent just now
    /// is left alone.
    #[test]
    fn a_request_whose_signal_was_lost_is_sent_again() {
        let mut rt = Runtime::new(SchedulerConfig::default().num_workers(1));
        let (fresh, stale, left) = rt.block_on(|| {
            let m = machine::current().expect("inside a GVThread");
            // A request about no GVThread that ever runs (the handler takes
            // it and declines), stored as if its signal had been lost.
            machine::in_section(|| {
                m.preempt_activity.store(u64::MAX, Ordering::Relaxed);
                m.preempt_request.store(PREEMPT_BLOCKED, Ordering::Release);
            });
            let fresh = m.resend_if_stale(u64::MAX);
            let stale = m.resend_if_stale(0);
            // A signal to the calling thread is delivered before the sending
            // call returns (under an emulator, soon after): the handler
            // takes the request then.
            let give_up = std::time::Instant::now() + Duration::from_secs(10);
            while m.preempt_request.load(Ordering::Acquire) != PREEMPT_NONE && std::time::Instant::now() < give_up {
                std::hint::spin_loop();
            }
            (fresh, stale, m.preempt_request.load(Ordering::Acquire))
        });
        assert!(!fresh, "a request pending for less than the wait was sent again");
        assert!(stale, "a stale request was not sent again");
        assert_eq!(left, PREEMPT_NONE, "the handler did not take the request sent again");
    }

    /// A preemption signal that lands inside a runtime section is declined
    /// there and sent again shortly (`retry_soon`): the GVThread is frozen
    /// once it runs outside, not at the monitor's next request.
    #[test]
    fn a_request_declined_in_a_runtime_section_is_retried_soon() {
        // A long slice: the monitor sends nothing of its own meanwhile.
        let mut rt = Runtime::new(SchedulerConfig::default().num_workers(1).time_slice(Duration::from_secs(30)));
        let (inside, after) = rt.block_on(|| {
            let m = machine::current().expect("inside a GVThread");
            request_spare(&m.shared, m.worker(), false);
            for _ in 0..10_000 {
                if spare_count(machine::current().expect("inside a GVThread").worker()) > 0 {
                    break;
                }
                crate::sleep(Duration::from_millis(1));
            }
            let m = machine::current().expect("inside a GVThread");
            assert!(spare_count(m.worker()) > 0, "no spare thread started");
            let forced = || m.shared.metrics.forced_preemptions.load(Ordering::Relaxed);
            let before = forced();
            let inside = machine::in_section(|| {
                // A signal to this thread is delivered before the send
                // returns: inside the section, so it is declined.
                m.request_preemption(PREEMPT_HOG, m.worker().activity.load(Ordering::Relaxed));
                forced() - before
            });
            // Outside now: compute (bounded) until the retry freezes us. The
            // GVThread resumes on the thread that froze it, so `m` is still
            // this thread's machine.
            let t = std::time::Instant::now();
            while forced() == before && t.elapsed() < Duration::from_secs(10) {
                std::hint::spin_loop();
            }
            (inside, forced() - before)
        });
        assert_eq!(inside, 0, "frozen inside a runtime section");
        assert_eq!(after, 1, "the request declined inside the section was not retried");
    }
}
