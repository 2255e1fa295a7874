//! A cheap coarse clock for bookkeeping that needs milliseconds, not
//! nanoseconds (how long a GVThread has waited, for `Handle::dump`).
//!
//! Scheduling decisions use `Shared::coarse_now` instead: one atomic load of
//! a value the timer thread advances at every 1 ms tick, cheaper on the hot
//! path and finer than this clock's kernel tick (up to 4 ms), which is too
//! coarse for the 1 ms wake-up granularity.

/// `CLOCK_MONOTONIC_COARSE` in nanoseconds: the same clock as `Instant`
/// (`CLOCK_MONOTONIC`) at the resolution of the kernel tick (1 to 4 ms), read
/// from the vDSO in a few nanoseconds without a system call.
#[inline]
pub(crate) fn coarse_nanos() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
