//! The SIGURG handler: forced preemption by hand-off.
//!
//! Everything here runs inside a signal handler: only atomics, futexes and
//! plain memory reads and writes; no allocation, no locks, no formatting.

use std::sync::atomic::Ordering;

use crate::sched::machine::{self, Machine, NO_GVTHREAD};
use crate::util::signal::ChainedHandler;

/// The signal used for forced preemption (as Go does: rarely used by
/// programs, and not reserved by libc).
pub(crate) const PREEMPT_SIGNAL: libc::c_int = libc::SIGURG;

static HANDLER: ChainedHandler = ChainedHandler::new();

/// Installs the handler once per process, remembering the previous one so
/// that signals that are not ours are passed on.
pub(crate) fn install() {
    HANDLER.install(PREEMPT_SIGNAL, handler, libc::SA_ONSTACK | libc::SA_RESTART);
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: reading errno of this thread.
    let saved_errno = unsafe { *libc::__errno_location() };
    let m = machine::current_ptr();
    // SAFETY: a non-null machine pointer of this thread is valid (see
    // `machine::current`); the request flag tells our signals from others.
    let ours = !m.is_null() && unsafe { (*m).preempt_request.swap(false, Ordering::AcqRel) };
    if ours {
        // SAFETY: as above; `ctx` is the kernel's ucontext for this signal.
        unsafe { preempt_here(&*m, ctx) };
    } else {
        // SAFETY: forwarding the handler's own arguments. With no previous
        // handler there is nothing to do: SIGURG's default action is to
        // ignore it.
        unsafe { HANDLER.call_previous(sig, info, ctx) };
    }
    // SAFETY: restoring errno of this thread.
    unsafe { *libc::__errno_location() = saved_errno };
}

/// Whether the interrupted code was blocked in a system call: the kernel
/// either rewound the instruction pointer to the `syscall` instruction (a
/// restartable call, `SA_RESTART`) or left it just after one with `-EINTR`
/// in `rax` (a call that is not restarted, such as `nanosleep`).
///
/// # Safety
/// `ctx` must be the `ucontext_t` the kernel passed to the handler.
unsafe fn interrupted_in_syscall(ctx: *mut libc::c_void) -> bool {
    const SYSCALL: [u8; 2] = [0x0f, 0x05];
    // SAFETY: the kernel passes a valid ucontext_t to SA_SIGINFO handlers.
    let regs = unsafe { &(*ctx.cast::<libc::ucontext_t>()).uc_mcontext.gregs };
    let rip = regs[libc::REG_RIP as usize] as usize;
    let rax = regs[libc::REG_RAX as usize];
    // SAFETY: `rip` is the address of the next instruction to run: mapped,
    // readable code (x86_64 code pages are readable).
    if unsafe { (rip as *const [u8; 2]).read_unaligned() } == SYSCALL {
        return true;
    }
    // Only look behind `rip` within its page (the page before may be unmapped).
    // SAFETY: `rip - 2` is in the same page as `rip`, so it is mapped too.
    rax == -(libc::EINTR as i64)
        && rip & 0xfff >= 2
        && unsafe { ((rip - 2) as *const [u8; 2]).read_unaligned() } == SYSCALL
}

/// Freezes the GVThread running on `m` right where it was interrupted (the
/// kernel saved every register, FPU and SIMD state included, in the signal
/// frame), queues it as runnable-but-bound-to-`m`, hands `m`'s role to a spare
/// machine, and waits until a scheduler picks the GVThread and hands a role
/// back; then returns, resuming the GVThread on its own OS thread.
///
/// # Safety
/// Called only from the signal handler on `m`'s own thread.
unsafe fn preempt_here(m: &Machine, ctx: *mut libc::c_void) {
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
    // SAFETY: `ctx` is the ucontext the kernel passed to this handler.
    if unsafe { interrupted_in_syscall(ctx) } {
        // Blocked in the kernel: freezing it here would only make it retake
        // the role, and stall it again, each time it is scheduled. Instead
        // the role goes to the spare now and the call finishes on this
        // thread without one; the GVThread gets a role back at its next
        // runtime call (`machine::ensure_role`).
        let role = m.drop_role();
        sh.metrics.syscall_handoffs.fetch_add(1, Ordering::Relaxed);
        // SAFETY: spares stay alive (registry) while they wait.
        unsafe { (*spare).give_role(role) };
        return;
    }
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
