//! Scheduling settings for the runtime's latency-critical threads: a short
//! scheduler slice, and timed sleeps without slack ([`exact_timers`]).
//!
//! The timer thread sleeps most of the time and must run the moment its
//! sleep ends: it fires timers and sends preemption signals. On a machine
//! whose CPUs are all taken by CPU-bound threads (GVThreads spinning on
//! every worker) Linux's fair scheduler lets such a woken thread wait for
//! the running thread's slice to end: 1-5 ms measured on the 2-core VM
//! (`perf sched timehist`), which became the tail of every wake-up behind a
//! hog. Since Linux 6.12 a fair-class thread may ask for a shorter slice
//! (`sched_setattr` with `sched_runtime`, no privilege needed); EEVDF then
//! gives it an earlier deadline, so it preempts the running thread when it
//! wakes. Its share of the CPU does not change (nice level and policy are
//! kept). Older kernels ignore the field; other policies are left alone.

/// `struct sched_attr` (`SCHED_ATTR_SIZE_VER0`, 48 bytes), from
/// `include/uapi/linux/sched/types.h`.
#[repr(C)]
struct SchedAttr {
    size: u32,
    sched_policy: u32,
    sched_flags: u64,
    sched_nice: i32,
    sched_priority: u32,
    sched_runtime: u64,
    sched_deadline: u64,
    sched_period: u64,
}

const _: () = assert!(std::mem::size_of::<SchedAttr>() == 48);

/// Asks the kernel for a scheduler slice of `slice` for the calling thread,
/// keeping its policy (only `SCHED_OTHER` is touched) and nice level.
/// Returns whether the kernel accepted the request (a kernel before 6.12
/// accepts it and ignores the slice).
pub(crate) fn request_short_slice(slice: std::time::Duration) -> bool {
    // SAFETY: plain system calls on the calling thread (tid 0 / 0 = self).
    let policy = unsafe { libc::sched_getscheduler(0) };
    if policy != libc::SCHED_OTHER {
        return false;
    }
    // getpriority returns the nice level; -1 is also an error value, told
    // apart by errno.
    // SAFETY: errno is thread-local; resetting it before the call is how
    // getpriority's errors are detected.
    unsafe { *libc::__errno_location() = 0 };
    // SAFETY: PRIO_PROCESS with who = 0 reads the calling thread's nice level.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    // SAFETY: reading errno right after the call.
    if nice == -1 && unsafe { *libc::__errno_location() } != 0 {
        return false;
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        sched_policy: libc::SCHED_OTHER as u32,
        sched_flags: 0,
        sched_nice: nice,
        sched_priority: 0,
        sched_runtime: slice.as_nanos().min(u64::MAX as u128) as u64,
        sched_deadline: 0,
        sched_period: 0,
    };
    // SAFETY: `attr` is a valid, initialised `sched_attr` of the size it
    // declares; pid 0 is the calling thread; flags must be 0.
    unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) == 0 }
}

/// Asks the kernel to run the calling thread with the real-time policy
/// `SCHED_FIFO` at the lowest priority (1): it then runs as soon as it wakes,
/// ahead of every normal thread. Returns whether the kernel granted it
/// (only to a process with `CAP_SYS_NICE` or a non-zero `RLIMIT_RTPRIO`);
/// otherwise nothing changed.
pub(crate) fn request_realtime() -> bool {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: `param` is a valid sched_param; pthread_self names the calling
    // thread; the call only changes that thread's policy.
    unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) == 0 }
}

/// Puts the calling thread back in the normal policy (`SCHED_OTHER`, nice
/// unchanged) with a scheduler slice of `slice`. Returns whether the kernel
/// accepted the policy change.
pub(crate) fn request_normal(slice: std::time::Duration) -> bool {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: as in `request_realtime`.
    let ok = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_OTHER, &param) == 0 };
    if ok {
        request_short_slice(slice);
    }
    ok
}

/// Timer slack of the calling thread's sleeps, in nanoseconds (the kernel's
/// default is 50 µs). See [`exact_timers`].
const EXACT_TIMER_SLACK_NS: libc::c_ulong = 1;

/// Makes the calling thread's timed sleeps end on time: Linux lets a normal
/// thread's timeouts run up to 50 µs late (timer slack) to batch wake-ups,
/// which the timer thread would add to every timer it fires and every
/// look-again it schedules. Returns whether the kernel accepted it.
pub(crate) fn exact_timers() -> bool {
    // SAFETY: PR_SET_TIMERSLACK only changes the calling thread's slack.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, EXACT_TIMER_SLACK_NS, 0, 0, 0) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The slice the kernel reports for the calling thread, where it reports
    /// one (`/proc/thread-self/sched` exists with scheduler debugging).
    fn reported_slice() -> Option<u64> {
        let s = std::fs::read_to_string("/proc/thread-self/sched").ok()?;
        let line = s.lines().find(|l| l.trim_start().starts_with("se.slice"))?;
        line.split(':').nth(1)?.trim().parse().ok()
    }

    /// Whether the running kernel honours slice requests (Linux 6.12+).
    fn kernel_honours_slices() -> bool {
        let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else { return false };
        let mut parts = release.trim().split(|c: char| !c.is_ascii_digit()).map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        (major, minor) >= (6, 12)
    }

    #[test]
    fn exact_timers_set_the_threads_timer_slack() {
        std::thread::spawn(|| {
            assert!(exact_timers(), "PR_SET_TIMERSLACK refused");
            // SAFETY: PR_GET_TIMERSLACK reads the calling thread's slack.
            let slack = unsafe { libc::prctl(libc::PR_GET_TIMERSLACK, 0, 0, 0, 0) };
            assert_eq!(slack as libc::c_ulong, EXACT_TIMER_SLACK_NS);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_short_slice_keeps_the_threads_nice_level_and_policy() {
        std::thread::spawn(|| {
            // SAFETY: raising the calling thread's own nice level needs no
            // privilege and affects only this test thread.
            assert_eq!(unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 5) }, 0);
            let accepted = request_short_slice(Duration::from_micros(100));
            // SAFETY: reads of the calling thread's scheduling parameters.
            assert_eq!(unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }, 5, "nice level changed");
            // SAFETY: as above.
            assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_OTHER, "policy changed");
            if accepted
                && kernel_honours_slices()
                && let Some(slice) = reported_slice()
            {
                assert_eq!(slice, 100_000, "the kernel reports another slice");
            }
        })
        .join()
        .unwrap();
    }
}
