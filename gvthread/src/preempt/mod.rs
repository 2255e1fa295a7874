//! Preemption: cooperative safepoints and forced preemption by hand-off.
//!
//! # Model
//!
//! A GVThread that runs for a whole `time_slice` without switching is asked
//! to yield: the preemption monitor (`monitor`, in the timer thread) sets its
//! worker role's preemption flag, and the next [`safepoint!`](crate::safepoint)
//! yields. (A yield that finds nothing else to run counts as a switch: a
//! GVThread alone on its worker is not preempted for nothing.) If it is still running `grace_period` later and forced preemption
//! is on, its OS thread gets SIGURG.
//!
//! # Why hand-off, not a switch inside the handler
//!
//! The interrupted code may hold anything: a malloc arena lock, std's
//! reentrant stdout lock (owned by the OS thread), a `std::sync::Mutex`.
//! Running another GVThread on that OS thread before the interrupted one
//! resumes could deadlock, or panic inside an already-borrowed `RefCell`.
//! Rust has no compiler-marked async-safe points (Go does), so the handler
//! never switches stacks. Instead (Go's syscall hand-off applied to
//! preemption, see `signal`):
//!
//! 1. the handler marks the GVThread runnable but *bound* to its OS thread,
//!    leaves it with its role, hands the role to a spare OS thread, and waits
//!    on a futex inside the handler;
//! 2. the spare queues the GVThread at the tail of the global queue (behind
//!    everything already runnable, like a preempted goroutine in Go) and runs
//!    the role's other GVThreads;
//! 3. whichever machine later dequeues the bound GVThread gives its own role
//!    to the waiting thread and becomes a spare itself; the handler returns
//!    and the GVThread resumes exactly where it was, on the same OS thread.
//!
//! The GVThread never changes OS thread mid-instruction-stream, and nothing
//! else runs on its thread meanwhile, so malloc, std's locks and thread-locals
//! stay consistent; the kernel saved and restores every register, FPU and SIMD
//! state included. A forced switch costs a few microseconds, paid at most
//! once per time slice by a CPU hog.
//!
//! # What is never interrupted
//!
//! * runtime code that uses the worker role (run queues, the pending action
//!   of a switch): machines count *runtime sections* and the handler returns
//!   at once inside one, asking again shortly (the thread's retry timer, as
//!   at an unsafe point below);
//! * code inside [`no_preempt`];
//! * anything when no spare thread is available (the thread cap,
//!   [`SchedulerConfig::max_os_threads`](crate::SchedulerConfig::max_os_threads),
//!   was reached; counted in [`RuntimeMetrics::no_spare`](crate::RuntimeMetrics)).
//!
//! # Signals
//!
//! The handler is installed with `SA_ONSTACK | SA_SIGINFO | SA_RESTART` and
//! passes SIGURG signals that are not ours to the previously installed
//! handler. Ours are told apart by their value: the monitor sends them with
//! `rt_tgsigqueueinfo` and a tag, so a `raise(SIGURG)` or out-of-band socket
//! data reaches the previous handler even while a preemption is pending. With `SA_RESTART` most interrupted system calls restart; those
//! that never restart after a handler (`nanosleep`, `epoll_wait`, `poll`,
//! `select`, calls with timeouts set via `setsockopt`, see signal(7)) return
//! `EINTR`: `std::thread::sleep` and tokio retry it, but a direct `poll`,
//! `epoll_wait` or a plain `Read::read` hands `ErrorKind::Interrupted` to its
//! caller (see `docs/preemption.md`).

pub(crate) mod alloc;
mod cpu_time;
pub(crate) mod deadline;
mod foreign;
mod monitor;
pub(crate) mod signal;
mod spares;
mod syscall;

pub(crate) use cpu_time::CpuWatch;
pub(crate) use monitor::Monitor;
pub(crate) use spares::{spare_count, starter_thread};

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::runtime::shared::Shared;
use crate::sched::machine::{self, PREEMPT_BLOCKED, PREEMPT_HOG};
use crate::sched::worker::Worker;

/// Asks role `w` to switch now: a more urgent GVThread was just woken for
/// it. `own`: the caller is the GVThread running on `w` (it gets the
/// cooperative request; its next safepoint or blocking call switches, and
/// the monitor forces it otherwise). Any other caller signals `w`'s thread
/// at once when forced preemption is on.
pub(crate) fn preempt_now(shared: &Shared, w: &Worker, own: bool) {
    w.preempt.store(true, Ordering::Release);
    if own || !shared.config.enable_forced_preempt {
        return;
    }
    let holder = w.holder.load(Ordering::Acquire);
    // SAFETY: machines stay alive while registered in `shared`.
    if let Some(holder) = unsafe { holder.as_ref() } {
        holder.request_preemption(PREEMPT_HOG, w.activity.load(Ordering::Relaxed));
        shared.metrics.signals_sent.fetch_add(1, Ordering::Relaxed);
    }
}

/// A request still pending this long after its signal (ns) gets the signal
/// again (see `Machine::resend_if_stale`): a handled signal takes the
/// request within microseconds of landing.
const RESEND_AFTER_NS: u64 = 100_000;

/// Shortest wait before the timer thread looks again at a GVThread's CPU
/// time after a look that could not tell (see `cpu_time`).
const RECHECK_AFTER_FIRST_LOOK: Duration = Duration::from_micros(20);

/// Wake-up preemption of role `w` whose running GVThread has had its
/// granularity in wall-clock time: the cooperative request, and the signal
/// to the role's thread unless the same request to that thread is still
/// unhandled (a declined one is handled: this retries it). The signal asks
/// for a freeze only if the GVThread is known to be running (see
/// `cpu_time`); otherwise it asks to free the role only from a blocking
/// system call, and the timer thread looks again when the GVThread could
/// have gathered that evidence. Async-signal-safe.
pub(crate) fn preempt_for_wake(shared: &Shared, w: &Worker) {
    if !w.preempt.load(Ordering::Relaxed) {
        w.preempt.store(true, Ordering::Release);
        shared.metrics.wakeup_preemptions.fetch_add(1, Ordering::Relaxed);
    }
    if !shared.config.enable_forced_preempt || !shared.has_work_for(w) {
        return;
    }
    let holder = w.holder.load(Ordering::Acquire);
    // SAFETY: machines stay alive while registered in `shared`.
    let Some(holder) = (unsafe { holder.as_ref() }) else { return };
    let pending = holder.preempt_request.load(Ordering::Acquire);
    if pending == PREEMPT_HOG {
        // On its way, unless its signal was lost.
        if holder.resend_if_stale(RESEND_AFTER_NS) {
            shared.metrics.signals_sent.fetch_add(1, Ordering::Relaxed);
        }
        return;
    }
    let activity = w.activity.load(Ordering::Relaxed);
    let granularity = shared.wakeup_granularity_ns();
    let missing = cpu_time::used_since_look(w, holder, activity).map(|used| cpu_time::running(used, granularity));
    if missing != Some(0) {
        // No evidence yet (the first look was just made) or not enough:
        // look again when there could be.
        shared.metrics.not_running.fetch_add(1, Ordering::Relaxed);
        let wait =
            missing.map_or(RECHECK_AFTER_FIRST_LOOK, |ns| Duration::from_nanos(ns).max(RECHECK_AFTER_FIRST_LOOK));
        shared.timers.recheck_at(std::time::Instant::now() + wait);
    }
    let request = if missing == Some(0) { PREEMPT_HOG } else { PREEMPT_BLOCKED };
    if missing.is_none_or(|ns| ns == 0) {
        // A freeze (now, or likely at the next look) hands the role to a
        // spare thread: have one started now if none waits (the monitor
        // asks ahead only for whole time slices).
        spares::request_spare(shared, w, false);
    }
    // A request still on its way is not repeated, unless this one goes
    // further (a freeze where the first only asked to free the role from a
    // system call).
    if pending != request {
        holder.request_preemption(request, activity);
        shared.metrics.signals_sent.fetch_add(1, Ordering::Relaxed);
    } else if holder.resend_if_stale(RESEND_AFTER_NS) {
        shared.metrics.signals_sent.fetch_add(1, Ordering::Relaxed);
    }
}

/// Body of [`safepoint!`](crate::safepoint): yields when a preemption was
/// requested. Opaque to the optimizer so that the thread-local it reads is
/// re-read after a yield.
///
/// A safepoint deliberately does not count as progress for the monitor: the
/// monitor measures how long the current GVThread has run since the last
/// switch, so a loop full of safepoints is asked to yield after its time
/// slice like any other (counting safepoints as activity, as the original
/// design did, meant such loops were never preempted at all).
#[doc(hidden)]
#[inline(never)]
pub fn safepoint_check() {
    // Inlined thread-local read: this function is never inlined itself and
    // does not use `m` after the yield, which may resume on another thread.
    // SAFETY: a non-null machine pointer of this thread is valid (see
    // `machine::current`).
    let Some(m) = (unsafe { machine::current_ptr_inlined().as_ref() }) else { return };
    let w = m.worker_ptr();
    if w.is_null() {
        return;
    }
    // SAFETY: a non-null role pointer targets an element of the runtime's
    // worker array, which the machine's `shared` keeps alive.
    if !unsafe { &*w }.preempt.load(Ordering::Relaxed) {
        return;
    }
    let slot = m.current_slot();
    if slot != machine::NO_GVTHREAD && m.in_runtime() == 0 {
        m.shared.metrics.cooperative_preemptions.fetch_add(1, Ordering::Relaxed);
        machine::yield_preempted(m, slot);
    }
}

/// Runs `f` with forced preemption disabled for the calling GVThread: the
/// SIGURG handler will not hand it off while `f` runs (cooperative
/// preemption through [`safepoint!`](crate::safepoint) still works, and
/// blocking calls still switch). Use it around code that must not be frozen
/// mid-way, such as FFI that holds a lock other threads spin on, or a
/// latency-critical section. Keep it short: a GVThread that never leaves it
/// starves its worker. Outside a GVThread it just runs `f`.
///
/// If a preemption was requested meanwhile, the GVThread yields when `f`
/// returns.
///
/// ```
/// let mut rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(1));
/// let sum = rt.block_on(|| gvthread::no_preempt(|| (0..1000u64).sum::<u64>()));
/// assert_eq!(sum, 499_500);
/// ```
pub fn no_preempt<R>(f: impl FnOnce() -> R) -> R {
    struct Exit {
        shared: std::sync::Arc<crate::runtime::shared::Shared>,
        slot: u32,
    }
    impl Drop for Exit {
        fn drop(&mut self) {
            let depth = self.shared.leave_no_preempt(self.slot);
            if depth == 0 && !std::thread::panicking() {
                safepoint_check();
            }
        }
    }
    let Some((m, slot)) = machine::current_gvthread() else { return f() };
    m.shared.enter_no_preempt(slot);
    let _exit = Exit { shared: m.shared.clone(), slot };
    f()
}
