//! Run time on the CPU: whether the running GVThread really is a hog.
//!
//! The monitor's clocks (`Instant`, the coarse clock) measure wall-clock
//! time. On a loaded machine Linux may keep a role's OS thread off the CPU
//! for milliseconds while its GVThread is in the middle of a short turn; by
//! wall-clock time that GVThread "has run" its wake-up granularity or even
//! its time slice (the coarse clock that dated its switch may also have been
//! a tick old). Freezing it would hand its role to another OS thread for
//! nothing: no CPU is won (the thread was not using one), a spare is woken,
//! and every hand-off lets the role's GVThreads resume on another thread of
//! the role, which is where thread-bound state is at risk
//! (`docs/safety.md`). So before asking for a freeze the monitor and the
//! wakers check the role's thread's CPU clock:
//!
//! * A [`CpuWatch`] records, for the role's current GVThread (a value of its
//!   activity counter), the holder thread's CPU time at the first look: the
//!   monitor looks at every tick in which the role switched, a waker that
//!   finds no look for the current GVThread makes one, and a frozen
//!   GVThread looks at itself when it resumes (a known hog: its evidence
//!   then counts from its first instruction).
//! * A freeze needs, besides the wall-clock threshold (the time slice, or
//!   the wake-up granularity when woken work waits), evidence that the
//!   GVThread runs: CPU time since the first look of at least an eighth of
//!   that threshold, and never less than [`MIN_EVIDENCE`] ([`running`]). A
//!   GVThread that runs short turns (a message-passing one, say) never
//!   gathers it; a hog gathers it that soon after getting its CPU back
//!   (when Linux kept it waiting too, the woken work waits that much
//!   longer, no more). Without an earlier look there is no evidence yet: no
//!   freeze now, and the timer thread looks again shortly
//!   (`Timers::recheck_at`).
//! * Short of the threshold, the request is `PREEMPT_BLOCKED`: the handler
//!   freezes the GVThread only if it is blocked in a system call (the rescue
//!   of roles stuck in the kernel keeps working) and otherwise declines.
//!
//! The check costs one system call (`clock_gettime` on another thread's CPU
//! clock) when a freeze is about to be requested, plus one per busy role and
//! monitor tick in which that role switched.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::sched::machine::Machine;
use crate::sched::worker::Worker;
use crate::util::clock::thread_cpu_nanos;

/// The first look at a role's current GVThread: the role's activity counter
/// then (low 32 bits) and its thread's CPU time then, in microseconds
/// (high 32 bits, wrapping: only differences over short spans are used),
/// in one word, so that any thread may record one with a compare-and-swap
/// and no reader or writer ever waits for another (a writer frozen half-way
/// would otherwise leave the role without evidence). The same activity
/// value means the same GVThread on the same thread: a role changes threads
/// only through a switch, which bumps the counter.
pub(crate) struct CpuWatch(AtomicU64);

/// The activity part of a look.
fn activity_bits(activity: u64) -> u64 {
    activity & u64::from(u32::MAX)
}

impl CpuWatch {
    pub(crate) const fn new() -> CpuWatch {
        // Activity u32::MAX: counters start at 0, so no role matches it soon.
        CpuWatch(AtomicU64::new(u32::MAX as u64))
    }

    /// Records a look at the GVThread that `holder` runs while the role's
    /// activity counter reads `activity`, unless one was recorded already.
    /// Returns false only if `holder`'s CPU clock cannot be read.
    /// Async-signal-safe, lock-free.
    pub(crate) fn look(&self, holder: &Machine, activity: u64) -> bool {
        let Some(cpu) = thread_cpu_nanos(holder.tid) else { return false };
        let new = ((cpu / 1_000) << 32) | activity_bits(activity);
        let mut current = self.0.load(Ordering::Relaxed);
        // Keep an earlier look at the same GVThread.
        while current & u64::from(u32::MAX) != activity_bits(activity) {
            match self.0.compare_exchange_weak(current, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break,
                Err(c) => current = c,
            }
        }
        true
    }

    /// The CPU time (µs, low 32 bits) of the look if it is about `activity`.
    fn read(&self, activity: u64) -> Option<u32> {
        let word = self.0.load(Ordering::Relaxed);
        (word & u64::from(u32::MAX) == activity_bits(activity)).then_some((word >> 32) as u32)
    }
}

/// CPU time (ns) the thread holding role `w` (`holder`) used since the
/// first look at its current GVThread (activity counter `activity`), or
/// `None` if there was no earlier look (this call made the first one).
/// `u64::MAX` when the CPU clock cannot be read (wall-clock time alone
/// decides then). Async-signal-safe.
pub(crate) fn used_since_look(w: &Worker, holder: &Machine, activity: u64) -> Option<u64> {
    let Some(then_us) = w.cpu_watch.read(activity) else {
        return if w.cpu_watch.look(holder, activity) { None } else { Some(u64::MAX) };
    };
    let Some(now) = thread_cpu_nanos(holder.tid) else { return Some(u64::MAX) };
    let used_us = ((now / 1_000) as u32).wrapping_sub(then_us);
    Some(u64::from(used_us) * 1_000)
}

/// The least CPU time (ns) that counts as evidence of running, whatever the
/// threshold. A thread's CPU clock is not exact over short spans on a
/// loaded machine: it also charges the thread for work done while it is
/// the current one (interrupts, the switch to it, time the hypervisor took
/// from the virtual CPU). Measured on the 2-core VM: a plain OS thread at
/// nice 19 pinned beside two busy threads, timing a loop of well under a
/// microsecond, was charged up to 105 us; a debug build's GVThread doing
/// microsecond turns there showed up to 150 us between two looks at it.
pub(crate) const MIN_EVIDENCE: u64 = 250_000;

/// How much more CPU time (ns) a GVThread that `used` this much since the
/// first look needs before it counts as running for a wall-clock threshold
/// of `needed` ns: 0 once it does (see the module docs).
pub(crate) fn running(used: u64, needed: u64) -> u64 {
    (needed / 8).max(MIN_EVIDENCE).saturating_sub(used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_is_an_eighth_of_the_threshold_but_never_below_the_floor() {
        // The 10 ms slice: an eighth of it.
        assert_eq!(running(0, 10_000_000), 1_250_000);
        assert_eq!(running(1_000_000, 10_000_000), 250_000);
        assert_eq!(running(1_250_000, 10_000_000), 0);
        // The 1 ms granularity: the floor, not 125 us.
        assert_eq!(running(125_000, 1_000_000), MIN_EVIDENCE - 125_000);
        assert_eq!(running(MIN_EVIDENCE, 1_000_000), 0);
        assert_eq!(running(u64::MAX, 1_000_000), 0);
    }
}
