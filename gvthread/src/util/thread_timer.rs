//! A kernel timer that signals one thread of this process: `timer_create`
//! with `SIGEV_THREAD_ID`, its signal carrying a tag (see
//! [`signal::tag_of`](super::signal::tag_of)).
//!
//! Unlike a thread that sleeps until a deadline and then sends a signal, the
//! kernel fires the timer from its timer interrupt and interrupts the target
//! thread on its CPU at once, whatever else wants that CPU.

use std::ptr;
use std::time::Duration;

/// A POSIX timer whose expiry sends `sig` (with a tag) to one thread.
pub(crate) struct ThreadTimer {
    id: libc::timer_t,
}

// SAFETY: a timer id is a process-wide handle; `timer_settime` and
// `timer_delete` may be called from any thread.
unsafe impl Send for ThreadTimer {}
// SAFETY: as above; arming is one system call with no shared user state.
unsafe impl Sync for ThreadTimer {}

impl ThreadTimer {
    /// A disarmed timer that signals thread `tid` with `sig`, carrying `tag`
    /// as its value. `None` if the kernel refuses (then the caller goes
    /// without).
    pub(crate) fn new(tid: libc::pid_t, sig: libc::c_int, tag: usize) -> Option<ThreadTimer> {
        // SAFETY: an all-zero sigevent is a valid starting point; the fields
        // set below are the ones SIGEV_THREAD_ID reads.
        let mut ev: libc::sigevent = unsafe { std::mem::zeroed() };
        ev.sigev_notify = libc::SIGEV_THREAD_ID;
        ev.sigev_signo = sig;
        ev.sigev_value = libc::sigval { sival_ptr: tag as *mut libc::c_void };
        ev.sigev_notify_thread_id = tid;
        let mut id: libc::timer_t = ptr::null_mut();
        // SAFETY: valid pointers to a sigevent and to the id to fill in.
        let ok = unsafe { libc::timer_create(libc::CLOCK_MONOTONIC, &mut ev, &mut id) } == 0;
        ok.then_some(ThreadTimer { id })
    }

    /// Fires once, `after` from now (re-arming replaces an earlier setting).
    /// Returns whether the kernel took it.
    pub(crate) fn fire_after(&self, after: Duration) -> bool {
        // A zero value would disarm the timer.
        let after = after.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec {
                tv_sec: after.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: after.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: `id` is a live timer of this process (deleted only on drop);
        // `spec` is a valid itimerspec; the old value is not asked for.
        unsafe { libc::timer_settime(self.id, 0, &spec, ptr::null_mut()) == 0 }
    }
}

impl Drop for ThreadTimer {
    fn drop(&mut self) {
        // SAFETY: `id` was created by `timer_create` and is deleted once.
        unsafe { libc::timer_delete(self.id) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static SEEN: AtomicUsize = AtomicUsize::new(0);
    const TAG: usize = 0x7468_7265_6164_7469;

    extern "C" fn on_signal(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
        // SAFETY: the kernel's siginfo for this signal.
        if unsafe { crate::util::signal::tag_of(info) } == Some(TAG) {
            SEEN.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn the_timer_signals_the_thread_it_names_with_its_tag() {
        // SIGWINCH: unused by the test harness and by the runtime.
        // SAFETY: installs a handler that only does an atomic add.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigaction(libc::SIGWINCH, &sa, ptr::null_mut());
        }
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        let t = ThreadTimer::new(tid, libc::SIGWINCH, TAG).expect("timer_create");
        assert!(t.fire_after(Duration::from_millis(1)));
        for _ in 0..5_000 {
            if SEEN.load(Ordering::Relaxed) > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(SEEN.load(Ordering::Relaxed), 1);
    }
}
