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
//!   activity counter), the holder thread's CPU time and the time of the
//!   first look: the monitor looks at every tick in which the role switched,
//!   and a waker that finds no look for the current GVThread makes one.
//! * A freeze needs, besides the wall-clock threshold (the time slice, or
//!   the wake-up granularity when woken work waits), evidence that the
//!   GVThread runs: CPU time since the first look of at least an eighth of
//!   that threshold ([`running`]). A GVThread that runs short turns (a
//!   message-passing one, say) never gathers it; a hog gathers it within an
//!   eighth of the threshold of getting its CPU back (when Linux kept it
//!   waiting too, the woken work waits that much longer, no more). Without an
//!   earlier look there is no evidence yet: no freeze now, and the timer
//!   thread looks again shortly (`Timers::recheck_at`).
//! * Short of the threshold, the request is `PREEMPT_BLOCKED`: the handler
//!   freezes the GVThread only if it is blocked in a system call (the rescue
//!   of roles stuck in the kernel keeps working) and otherwise declines.
//!
//! The check costs one system call (`clock_gettime` on another thread's CPU
//! clock) when a freeze is about to be requested, plus one per busy role and
//! monitor tick in which that role switched.

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering, fence};

use crate::sched::machine::Machine;
use crate::sched::worker::Worker;
use crate::util::clock::thread_cpu_nanos;

/// No look recorded (an activity value the counter never reaches first).
const NO_ACTIVITY: u64 = u64::MAX;

/// A look being recorded.
const WRITING: u64 = u64::MAX - 1;

/// The first look at a role's current GVThread: its thread's CPU time then. Any thread may record one
/// (one at a time: a compare-and-swap on `activity` elects the writer);
/// readers use it like a sequence lock, and a torn read counts as no look.
pub(crate) struct CpuWatch {
    /// The role's activity counter at that look ([`NO_ACTIVITY`], or
    /// [`WRITING`] while being recorded).
    activity: AtomicU64,
    /// The holder's kernel thread id.
    tid: AtomicI32,
    /// That thread's CPU time then (ns).
    cpu_ns: AtomicU64,
}

impl CpuWatch {
    pub(crate) const fn new() -> CpuWatch {
        CpuWatch { activity: AtomicU64::new(NO_ACTIVITY), tid: AtomicI32::new(0), cpu_ns: AtomicU64::new(0) }
    }

    /// Records a look at the GVThread that `holder` runs while the role's
    /// activity counter reads `activity`, unless another thread is recording
    /// one right now. Returns false only if `holder`'s CPU clock cannot be
    /// read. Async-signal-safe.
    pub(crate) fn look(&self, holder: &Machine, activity: u64) -> bool {
        let Some(cpu) = thread_cpu_nanos(holder.tid) else { return false };
        let current = self.activity.load(Ordering::Relaxed);
        if current == activity {
            return true; // looked at already: keep the earlier look
        }
        if current == WRITING
            || self.activity.compare_exchange(current, WRITING, Ordering::Acquire, Ordering::Relaxed).is_err()
        {
            return true;
        }
        self.tid.store(holder.tid, Ordering::Relaxed);
        self.cpu_ns.store(cpu, Ordering::Relaxed);
        self.activity.store(activity, Ordering::Release);
        true
    }

    /// `cpu_ns` of the look if it is about `activity` on thread `tid`.
    fn read(&self, activity: u64, tid: libc::pid_t) -> Option<u64> {
        if self.activity.load(Ordering::Acquire) != activity {
            return None;
        }
        let (t, cpu) = (self.tid.load(Ordering::Relaxed), self.cpu_ns.load(Ordering::Relaxed));
        fence(Ordering::Acquire);
        (self.activity.load(Ordering::Relaxed) == activity && t == tid).then_some(cpu)
    }
}

/// CPU time the thread holding role `w` (`holder`) used since the first
/// look at its current GVThread (activity counter `activity`), or `None`
/// if there was no earlier look (this call made the first one). `u64::MAX`
/// when the CPU clock cannot be read (wall-clock time alone decides then).
/// Async-signal-safe.
pub(crate) fn used_since_look(w: &Worker, holder: &Machine, activity: u64) -> Option<u64> {
    let Some(cpu) = w.cpu_watch.read(activity, holder.tid) else {
        return if w.cpu_watch.look(holder, activity) { None } else { Some(u64::MAX) };
    };
    Some(thread_cpu_nanos(holder.tid).map_or(u64::MAX, |now| now.saturating_sub(cpu)))
}

/// How much more CPU time (ns) a GVThread that `used` this much since the
/// first look needs before it counts as running for a wall-clock threshold
/// of `needed` ns: 0 once it does (see the module docs).
pub(crate) fn running(used: u64, needed: u64) -> u64 {
    (needed / 8).saturating_sub(used)
}
