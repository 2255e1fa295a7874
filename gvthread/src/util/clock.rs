//! A cheap coarse clock for bookkeeping that needs milliseconds, not
//! nanoseconds (how long a GVThread has waited, for `Handle::dump`).
//!
//! Scheduling decisions use `Shared::coarse_now` instead: one atomic load of
//! a value the timer thread advances at every 1 ms tick, cheaper on the hot
//! path and finer than this clock's kernel tick (up to 4 ms), which is too
//! coarse for the 1 ms wake-up granularity.

/// Clock `id` in nanoseconds, or `None` if the kernel refuses it (an
/// invalid clock id, such as the CPU clock of a thread that has exited).
/// Async-signal-safe.
#[inline]
fn read_nanos(id: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; an invalid clock id is
    // reported as an error, not undefined behaviour.
    let r = unsafe { libc::clock_gettime(id, &mut ts) };
    (r == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// `CLOCK_MONOTONIC_COARSE` in nanoseconds: the same clock as `Instant`
/// (`CLOCK_MONOTONIC`) at the resolution of the kernel tick (1 to 4 ms), read
/// from the vDSO in a few nanoseconds without a system call.
#[inline]
pub(crate) fn coarse_nanos() -> u64 {
    read_nanos(libc::CLOCK_MONOTONIC_COARSE).unwrap_or(0)
}

/// `CLOCK_MONOTONIC` in nanoseconds (the clock of `Instant`).
pub(crate) fn mono_nanos() -> u64 {
    read_nanos(libc::CLOCK_MONOTONIC).unwrap_or(0)
}

/// CPU time used so far by the thread `tid` of this process, in
/// nanoseconds: its `CLOCK_THREAD_CPUTIME_ID`, read from another thread
/// through the clock id that `pthread_getcpuclockid` would give (the
/// kernel's `MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)`). One system call
/// (the vDSO does not serve CPU clocks). `None` if the kernel refuses it
/// (the thread has exited). Async-signal-safe.
pub(crate) fn thread_cpu_nanos(tid: libc::pid_t) -> Option<u64> {
    /// `CPUCLOCK_SCHED` (2) with `CPUCLOCK_PERTHREAD_MASK` (4).
    const PER_THREAD_SCHED: libc::clockid_t = 6;
    read_nanos((!tid).wrapping_shl(3) | PER_THREAD_SCHED)
}

/// CPU time (ns) the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`;
/// 0 if the kernel refuses, which it does not for the calling thread).
pub(crate) fn own_cpu_nanos() -> u64 {
    read_nanos(libc::CLOCK_THREAD_CPUTIME_ID).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
    use std::time::{Duration, Instant};

    use super::thread_cpu_nanos;

    #[test]
    fn a_spinning_thread_gains_cpu_time_and_a_sleeping_one_does_not() {
        // SAFETY: gettid has no preconditions.
        let own = unsafe { libc::gettid() };
        let before = thread_cpu_nanos(own).expect("own CPU clock");
        // Spin until the clock shows 5 ms of CPU (on a loaded machine that
        // takes longer than 5 ms of wall time; a clock that does not count
        // CPU time never gets there).
        let t = Instant::now();
        let mut spun = 0;
        while spun < 5_000_000 && t.elapsed() < Duration::from_secs(60) {
            for _ in 0..10_000 {
                std::hint::spin_loop();
            }
            spun = thread_cpu_nanos(own).unwrap() - before;
        }
        assert!(spun >= 5_000_000, "60 s of spinning counted {spun} ns of CPU");

        let tid = Arc::new(AtomicI32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let sleeper = {
            let (tid, stop) = (tid.clone(), stop.clone());
            std::thread::spawn(move || {
                // SAFETY: gettid has no preconditions.
                tid.store(unsafe { libc::gettid() }, Ordering::SeqCst);
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        while tid.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        let other = tid.load(Ordering::SeqCst);
        let first = thread_cpu_nanos(other).expect("another thread's CPU clock");
        std::thread::sleep(Duration::from_millis(100));
        let slept = thread_cpu_nanos(other).unwrap() - first;
        stop.store(true, Ordering::SeqCst);
        sleeper.join().unwrap();
        // Twenty wake-ups of a few microseconds each; far below 100 ms.
        assert!(slept < 50_000_000, "a thread sleeping 100 ms used {slept} ns of CPU");
        // `join` returns once the kernel has cleared the thread's tid word,
        // which it does on the way out, a moment before the task is released
        // and its clock goes away: wait for that, with a generous bound.
        let deadline = Instant::now() + Duration::from_secs(10);
        while thread_cpu_nanos(other).is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(thread_cpu_nanos(other), None, "the clock of a thread that exited");
    }
}
