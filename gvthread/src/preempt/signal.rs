//! The SIGURG handler: forced preemption by hand-off.
//!
//! Everything here runs inside a signal handler: only atomics, futexes and
//! plain memory reads and writes; no allocation, no locks, no formatting.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::Once;
use std::sync::atomic::Ordering;

use crate::sched::machine::{self, Machine, NO_GVTHREAD};

/// The signal used for forced preemption (as Go does: rarely used by
/// programs, and not reserved by libc).
pub(crate) const PREEMPT_SIGNAL: libc::c_int = libc::SIGURG;

struct PrevAction(UnsafeCell<MaybeUninit<libc::sigaction>>);
// SAFETY: written once inside `Once::call_once` before the handler that reads
// it is installed; read-only afterwards.
unsafe impl Sync for PrevAction {}

static PREV: PrevAction = PrevAction(UnsafeCell::new(MaybeUninit::uninit()));
static INSTALL: Once = Once::new();

/// Installs the handler once per process, remembering the previous one so
/// that signals that are not ours are passed on.
pub(crate) fn install() {
    INSTALL.call_once(|| {
        // SAFETY: plain sigaction calls with valid, initialised structures;
        // PREV is written before our handler (its only reader) is installed.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler as *const () as usize;
            sa.sa_flags = libc::SA_ONSTACK | libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            let prev = (*PREV.0.get()).as_mut_ptr();
            libc::sigaction(PREEMPT_SIGNAL, std::ptr::null(), prev);
            libc::sigaction(PREEMPT_SIGNAL, &sa, std::ptr::null_mut());
        }
    });
}

/// Passes a signal that is not ours to the previously installed handler.
unsafe fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: PREV was initialised before this handler was installed.
    let prev = unsafe { (*PREV.0.get()).assume_init_ref() };
    let h = prev.sa_sigaction;
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        // SIGURG's default action is to ignore it.
        return;
    }
    if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed for this signal with
        // SA_SIGINFO, so it has this signature and accepts these arguments.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = unsafe { std::mem::transmute(h) };
        f(sig, info, ctx);
    } else {
        // SAFETY: installed without SA_SIGINFO: a plain handler.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(h) };
        f(sig);
    }
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: reading errno of this thread.
    let saved_errno = unsafe { *libc::__errno_location() };
    let m = machine::current_ptr();
    // SAFETY: a non-null machine pointer of this thread is valid (see
    // `machine::current`); the request flag tells our signals from others.
    let ours = !m.is_null() && unsafe { (*m).preempt_request.swap(false, Ordering::AcqRel) };
    if ours {
        // SAFETY: as above.
        unsafe { preempt_here(&*m) };
    } else {
        // SAFETY: forwarding the handler's own arguments.
        unsafe { chain(sig, info, ctx) };
    }
    // SAFETY: restoring errno of this thread.
    unsafe { *libc::__errno_location() = saved_errno };
}

/// Freezes the GVThread running on `m` right where it was interrupted (the
/// kernel saved every register, FPU and SIMD state included, in the signal
/// frame), queues it as runnable-but-bound-to-`m`, hands `m`'s role to a spare
/// machine, and waits until a scheduler picks the GVThread and hands a role
/// back; then returns, resuming the GVThread on its own OS thread.
///
/// # Safety
/// Called only from the signal handler on `m`'s own thread.
unsafe fn preempt_here(m: &Machine) {
    if m.in_handler.get() || m.in_runtime() > 0 {
        return; // inside the runtime: the monitor retries at its next tick
    }
    let slot = m.current_slot();
    if slot == NO_GVTHREAD || m.worker_ptr().is_null() {
        return;
    }
    let sh = &*m.shared;
    if sh.no_preempt_depth(slot) > 0 {
        return;
    }
    let Some(spare) = sh.spares.pop() else {
        sh.metrics.no_spare.fetch_add(1, Ordering::Relaxed);
        return;
    };
    m.in_handler.set(true);
    let role = m.worker();
    // The state word stays ACTIVE: queued-but-bound is still "not parked".
    // The spare queues it (globally, behind everything runnable) first thing.
    sh.bind(slot, m);
    role.preempted.store(slot, Ordering::Release);
    sh.metrics.forced_preemptions.fetch_add(1, Ordering::Relaxed);
    let role = m.drop_role();
    // SAFETY: spares stay alive (registry) while they wait.
    unsafe { (*spare).give_role(role) };
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
    w.note_switch();
    w.busy.store(true, Ordering::SeqCst);
    // The monitor may have gone idle while the role sat on a spare's
    // scheduler stack; it must watch this GVThread again.
    sh.wake_monitor();
    m.in_handler.set(false);
}
