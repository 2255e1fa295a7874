//! A role's identity thread: the OS thread whose thread-local storage, thread
//! handle and thread id every GVThread of the role uses, whichever machine runs
//! it.
//!
//! # Why
//!
//! A role's GVThreads run on several OS threads over time (a spare takes the
//! role while the preemption handler keeps a CPU hog frozen on its thread).
//! Their code cannot tell: LLVM keeps a thread-local's address across calls,
//! so one access may resolve against the thread where a function started and
//! the next against the thread it runs on now, and std registers a
//! thread-local's destructor with whichever thread first initialises it.
//! Mixed, that registered one `RefCell<Vec<_>>` with two threads and freed it
//! twice (seen in `tests/sound_thread_locals.rs`, release builds).
//!
//! # How
//!
//! Each role has an identity thread that runs nothing: it runs the
//! `on_worker_start` hook and makes the `worker_context` guard (so what they
//! put in thread-locals is what the role's GVThreads see), publishes its
//! thread pointer in `Worker::tls_base`, and sleeps until the runtime stops
//! and every machine of the role has left. A machine that takes the role
//! switches its own thread pointer to the role's (`Machine::take_role`) and
//! back before it gives the role up, so exactly one OS thread at a time uses
//! the block, and to user code the role *is* one OS thread: every
//! thread-local, `std::thread::current()`, the allocator's per-thread cache,
//! `errno`.
//!
//! The identity thread must never touch its own thread-local storage while
//! it sleeps (a machine is using it): it blocks every signal (a handler would
//! run on the shared block) and waits with a raw futex call that leaves
//! `errno` alone.
//!
//! What stays per OS thread is the kernel's view: `gettid`, signal masks, CPU
//! affinity, and restartable sequences (`rseq`). See `docs/safety.md`.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use super::worker::Worker;
use crate::arch::thread_pointer;
use crate::runtime::shared::Shared;

thread_local! {
    /// On a role's identity block: the role. Null elsewhere (machines' own
    /// blocks, threads outside the runtime).
    static ROLE: Cell<*const Worker> = const { Cell::new(std::ptr::null()) };
}

/// The role whose identity block the calling thread uses, or null. Opaque to
/// the optimizer, like `machine::current_ptr`.
#[inline(never)]
pub(crate) fn current_role() -> *const Worker {
    ROLE.with(Cell::get)
}

/// Starts role `role`'s identity thread and waits until it published its
/// thread pointer. Fails if the OS refuses the thread or the role's
/// `on_worker_start` hook / `worker_context` panicked.
pub(crate) fn start(shared: &Arc<Shared>, role: usize) -> std::io::Result<JoinHandle<()>> {
    thread_pointer::init();
    let w = &shared.workers[role];
    let name = if w.low_priority { format!("gvthread-low-{role}") } else { format!("gvthread-worker-{role}") };
    let sh = shared.clone();
    let t = std::thread::Builder::new().name(name).stack_size(256 * 1024).spawn(move || identity_thread(sh, role))?;
    while w.tls_base.load(Ordering::Acquire) == 0 {
        if t.is_finished() {
            let msg = match t.join() {
                Err(p) => p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| String::from("a start hook panicked")),
                Ok(()) => String::from("it ended early"),
            };
            return Err(std::io::Error::other(format!("worker {role} failed to start: {msg}")));
        }
        crate::util::futex::wait(&w.tls_wake, 0, Some(std::time::Duration::from_millis(10)));
    }
    Ok(t)
}

/// Wakes role `w`'s identity thread to look at the runtime's state again
/// (shutdown, a machine left).
pub(crate) fn notify(w: &Worker) {
    w.tls_wake.fetch_add(1, Ordering::Release);
    crate::util::futex::wake(&w.tls_wake, 1);
}

fn identity_thread(shared: Arc<Shared>, role: usize) {
    let w = &shared.workers[role];
    if let Some(hook) = &shared.config.on_worker_start {
        hook();
    }
    let stop_hook = shared.config.on_worker_stop.clone();
    // `worker_context`: its guard lives as long as the role.
    let context_guard = shared.config.worker_context.as_ref().map(|f| f());
    block_all_signals();
    ROLE.with(|r| r.set(w as *const Worker));
    w.tls_base.store(thread_pointer::get(), Ordering::Release);
    thread_pointer::futex_wake(&w.tls_wake);
    // From here until every machine left, this thread must not touch its
    // thread-local storage (see the module docs).
    loop {
        let seen = w.tls_wake.load(Ordering::Acquire);
        if shared.is_stopped() && w.machines_alive.load(Ordering::Acquire) == 0 {
            break;
        }
        thread_pointer::futex_wait(&w.tls_wake, seen);
    }
    ROLE.with(|r| r.set(std::ptr::null()));
    drop(context_guard);
    if let Some(hook) = stop_hook {
        hook();
    }
}

/// Blocks every signal on the calling thread, so that no handler runs on it
/// (and on the thread-local block the role's machines use).
fn block_all_signals() {
    // SAFETY: sigfillset initialises the set; pthread_sigmask only changes
    // this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}
