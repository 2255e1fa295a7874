//! Spare machines: the extra OS threads of a worker role.
//!
//! Each role has a fixed number of thread places (`Worker::machines`: its
//! first worker thread plus up to `threads_per_role - 1` spares, from
//! [`SchedulerConfig::max_os_threads`](crate::SchedulerConfig::max_os_threads)),
//! and a few places beyond them for roles that would otherwise stall (see
//! `Worker::thread_cap`).
//! A spare takes the role when the preemption handler freezes a GVThread on
//! the thread that held it. A spare serves its role only, for life: the
//! role's GVThreads may keep the addresses of thread-locals of every thread
//! the role ran on, so a thread must never run another role's GVThreads.
//!
//! * Taking a spare ([`take_spare`]) is a scan of the role's few places with
//!   a compare-and-swap: no lock, no allocation, callable from the handler.
//! * Starting one allocates and takes the allocator's and the loader's locks
//!   (`pthread_create`), which a frozen GVThread might hold; so neither the
//!   handler nor the timer thread does it. They raise the role's
//!   `want_spare` flag and unpark the *spare starter* thread, which is the
//!   only thread that ever blocks on such a lock for spares, harmlessly.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::runtime::shared::Shared;
use crate::sched::machine::Machine;
use crate::sched::worker::Worker;

/// Takes a spare machine of role `w`, if one waits. Async-signal-safe.
pub(crate) fn take_spare(w: &Worker) -> Option<*const Machine> {
    for p in w.machines.iter() {
        let m = p.load(Ordering::Acquire);
        if m.is_null() {
            continue;
        }
        // SAFETY: registered machines stay alive until the runtime has
        // stopped all its threads (see `Shared::clear_machines`).
        let machine = unsafe { &*m };
        if machine.spare.compare_exchange(true, false, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            return Some(m);
        }
    }
    None
}

/// Spare machines of role `w` waiting now.
pub(crate) fn spare_count(w: &Worker) -> usize {
    w.machines
        .iter()
        .filter(|p| {
            let m = p.load(Ordering::Acquire);
            // SAFETY: as in `take_spare`.
            !m.is_null() && unsafe { &*m }.spare.load(Ordering::Relaxed)
        })
        .count()
}

/// Asks the spare starter for one more spare of role `w`, if the role has
/// room for one and none waits (`beyond_cap`: room counting the places
/// beyond the role's cap, see `Worker::thread_cap`). Async-signal-safe
/// (atomics and a futex).
pub(crate) fn request_spare(shared: &Shared, w: &Worker, beyond_cap: bool) {
    if spare_count(w) > 0 {
        return;
    }
    if w.is_full(beyond_cap) {
        shared.metrics.thread_cap_reached.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if beyond_cap {
        w.want_spare_beyond_cap.store(true, Ordering::Release);
    }
    if !w.want_spare.swap(true, Ordering::AcqRel) {
        shared.spare_starter.unpark();
    }
}

/// Body of the spare starter thread: starts the spares roles asked for,
/// until the runtime stops.
pub(crate) fn starter_thread(shared: Arc<Shared>) {
    loop {
        if shared.is_stopped() {
            return;
        }
        for w in shared.workers.iter() {
            if !w.want_spare.swap(false, Ordering::AcqRel) {
                continue;
            }
            let beyond_cap = w.want_spare_beyond_cap.swap(false, Ordering::AcqRel);
            if spare_count(w) > 0 || w.is_full(beyond_cap) {
                continue;
            }
            // An error (the OS refused a thread) leaves the role without a
            // spare: forced preemption then resumes its frozen GVThreads in
            // turn, as at the thread cap.
            let _ = shared.start_machine(w.index, false, beyond_cap);
        }
        shared.spare_starter.park(None);
    }
}
