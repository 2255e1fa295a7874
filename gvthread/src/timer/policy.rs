//! The timer thread's scheduling policy under
//! `SchedulerConfig::realtime_timer_thread`: real-time while it uses little
//! CPU, normal while it is busy.
//!
//! A real-time thread runs the moment it wakes, which is the point (see
//! docs/preemption.md); but while it runs, no normal thread on its CPU does.
//! The timer thread runs microseconds at a time, except in a timer storm:
//! 100,000 GVThreads sleeping 1 ms in a loop keep it busy, in many short
//! stretches. Real-time there, it kept most of a CPU from the workers, and
//! a spawner beside the sleepers took 2.3-4.0 s instead of 0.8 s to start
//! them. So it measures its own CPU time over windows of [`WINDOW`] of
//! wall-clock time, and runs the next window in the normal policy (with the
//! short slice) when it used more than [`BUSY_SHARE`] of the last one.

use std::time::{Duration, Instant};

use crate::util::{clock, slice};

/// How often the timer thread weighs its own CPU use.
const WINDOW: Duration = Duration::from_millis(10);

/// Share of a window (per mille) above which the next window runs normal.
const BUSY_SHARE: u64 = 250;

/// Scheduler slice asked for in the normal policy (the kernel's minimum):
/// the thread runs for microseconds at a time and must run the moment it
/// wakes (`util::slice`).
const TIMER_THREAD_SLICE: Duration = Duration::from_micros(100);

/// Where the timer thread stands.
pub(crate) struct TimerPolicy {
    /// The real-time policy was asked for and granted.
    realtime: bool,
    /// Dropped to the normal policy for this window.
    demoted: bool,
    /// The current window: its start, and the thread's CPU time (ns) then.
    window: (Instant, u64),
}

impl TimerPolicy {
    /// Sets the calling thread's policy at start: real-time if `wanted` and
    /// granted, else normal with the short slice.
    pub(crate) fn start(wanted: bool) -> TimerPolicy {
        let realtime = wanted && slice::request_realtime();
        if !realtime {
            slice::request_short_slice(TIMER_THREAD_SLICE);
        }
        TimerPolicy { realtime, demoted: false, window: (Instant::now(), clock::own_cpu_nanos()) }
    }

    /// Whether the real-time policy was granted.
    pub(crate) fn realtime(&self) -> bool {
        self.realtime
    }

    /// Called at each turn of the timer thread's loop: at the end of a
    /// window, picks the policy for the next one.
    pub(crate) fn check(&mut self, now: Instant) {
        if !self.realtime {
            return;
        }
        let (start, cpu_then) = self.window;
        let wall = now.duration_since(start);
        if wall < WINDOW {
            return;
        }
        let cpu = clock::own_cpu_nanos();
        let busy = cpu.saturating_sub(cpu_then).saturating_mul(1000) > BUSY_SHARE * wall.as_nanos() as u64;
        if busy != self.demoted {
            // A refused change leaves the policy as it was.
            let changed = if busy { slice::request_normal(TIMER_THREAD_SLICE) } else { slice::request_realtime() };
            if changed {
                self.demoted = busy;
            }
        }
        self.window = (now, cpu);
    }

    /// Called before each sleep of `wait` (`None`: until woken): a sleep
    /// of a whole window or more ends a storm, so the real-time policy
    /// comes back now, for the wake-up that ends the sleep.
    pub(crate) fn before_sleep(&mut self, wait: Option<Duration>) {
        if self.demoted && wait.is_none_or(|w| w >= WINDOW) && slice::request_realtime() {
            self.demoted = false;
            self.window = (Instant::now(), clock::own_cpu_nanos());
        }
    }
}
