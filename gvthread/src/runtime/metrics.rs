//! Counters users can read.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters, updated with relaxed atomics.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) forced_preemptions: AtomicU64,
    pub(crate) cooperative_preemptions: AtomicU64,
    pub(crate) preempt_requests: AtomicU64,
    pub(crate) wakeup_preemptions: AtomicU64,
    pub(crate) deadline_preemptions: AtomicU64,
    pub(crate) signals_sent: AtomicU64,
    pub(crate) handoffs: AtomicU64,
    pub(crate) syscall_handoffs: AtomicU64,
    pub(crate) no_spare: AtomicU64,
    pub(crate) unsafe_point_retries: AtomicU64,
    pub(crate) not_running: AtomicU64,
    pub(crate) thread_cap_reached: AtomicU64,
    pub(crate) os_threads_started: AtomicU64,
}

/// A snapshot of a runtime's counters, from [`Runtime::metrics`](crate::Runtime::metrics)
/// or [`Handle::metrics`](crate::Handle::metrics).
///
/// ```
/// let mut rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(1));
/// rt.block_on(|| gvthread::yield_now());
/// let m = rt.metrics();
/// assert!(m.os_threads >= 1); // at least the worker that ran the GVThread
/// assert_eq!(m.forced_preemptions, 0); // it never ran long enough
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuntimeMetrics {
    /// GVThreads alive now.
    pub live_gvthreads: usize,
    /// GVThreads frozen by a signal and handed off (forced preemptions).
    pub forced_preemptions: u64,
    /// Yields at a `safepoint!()` because a preemption was requested.
    pub cooperative_preemptions: u64,
    /// Times the monitor asked a GVThread to yield (time slice exceeded).
    pub preempt_requests: u64,
    /// Times the monitor asked a GVThread to yield early because another one
    /// was woken for its worker (wake-up preemption).
    pub wakeup_preemptions: u64,
    /// Forced preemptions by the thread's own kernel timer when a timer of
    /// its worker role fell due while a hog ran: the role's next thread
    /// fired the timer itself, without waiting for the timer thread to get
    /// a CPU (see docs/preemption.md, "Deadlines interrupt hogs directly").
    /// Also counted in `forced_preemptions`.
    pub deadline_preemptions: u64,
    /// SIGURG signals sent by the monitor.
    pub signals_sent: u64,
    /// Worker roles handed back to a machine holding a preempted GVThread.
    pub handoffs: u64,
    /// Forced preemptions of GVThreads blocked in a system call (their role
    /// went first to the thread of a frozen GVThread that may hold the lock
    /// they wait for; the call resumes with them).
    pub syscall_handoffs: u64,
    /// Forced preemptions skipped because the role had neither a spare
    /// thread nor a frozen GVThread to resume (retried at the next tick).
    pub no_spare: u64,
    /// Forced preemptions declined because the GVThread was running inside
    /// the C library, the dynamic loader, the unwinder or a
    /// [`NonPreemptibleAlloc`](crate::NonPreemptibleAlloc) call, whose locks
    /// other threads need, or inside gvthread's own runtime code (retried
    /// shortly).
    pub unsafe_point_retries: u64,
    /// Freezes not asked for although the running GVThread had run its
    /// wake-up granularity or time slice by wall-clock time, because its OS
    /// thread had not used enough CPU time since the monitor first saw it:
    /// Linux kept the thread waiting (a loaded machine), or the first look
    /// was too recent to tell (looked at again shortly). See
    /// docs/preemption.md, "Wall-clock time decides when to look, CPU time
    /// whether to freeze".
    pub not_running: u64,
    /// Times a spare OS thread was wanted but its role had all the threads
    /// `max_os_threads` allows it.
    pub thread_cap_reached: u64,
    /// OS threads running or waiting as machines now (workers and spares).
    pub os_threads: usize,
    /// Spare OS threads waiting for a worker role now.
    pub spare_threads: usize,
    /// GVThreads whose stacks are compacted now (see
    /// [`SchedulerConfig::compact_idle_after`](crate::SchedulerConfig::compact_idle_after)).
    pub compacted_gvthreads: usize,
    /// Bytes held by the buffers of compacted stacks now.
    pub compacted_bytes: u64,
    /// Stack compactions done since the runtime started.
    pub compactions: u64,
    /// Compacted stacks restored (by a wake) since the runtime started.
    pub restores: u64,
    /// How long restores took: element `i` counts the restores that took
    /// less than `2^i` µs (and at least `2^(i-1)` µs); the last element
    /// also counts all slower ones. See [`restore_latency_quantile`](Self::restore_latency_quantile).
    pub restore_latency_us: [u64; RESTORE_LATENCY_BUCKETS],
    /// Whether the timer thread runs with the real-time policy (asked for
    /// with [`SchedulerConfig::realtime_timer_thread`](crate::SchedulerConfig::realtime_timer_thread)
    /// and granted by Linux).
    pub realtime_timer_thread: bool,
}

/// Number of buckets of [`RuntimeMetrics::restore_latency_us`].
pub const RESTORE_LATENCY_BUCKETS: usize = crate::memory::LATENCY_BUCKETS;

impl RuntimeMetrics {
    /// An upper bound of the `q` quantile (`0.0..=1.0`) of restore latency,
    /// from the histogram's bucket bounds (`None` before any restore).
    ///
    /// ```
    /// let rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(1));
    /// // Nothing was compacted yet, so nothing was restored.
    /// assert_eq!(rt.metrics().restore_latency_quantile(0.99), None);
    /// ```
    pub fn restore_latency_quantile(&self, q: f64) -> Option<std::time::Duration> {
        let total: u64 = self.restore_latency_us.iter().sum();
        if total == 0 {
            return None;
        }
        let want = ((total as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &n) in self.restore_latency_us.iter().enumerate() {
            seen += n;
            if seen >= want {
                return Some(std::time::Duration::from_micros(1u64 << i));
            }
        }
        Some(std::time::Duration::from_micros(1u64 << (RESTORE_LATENCY_BUCKETS - 1)))
    }
}

impl Counters {
    pub(crate) fn load(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}
