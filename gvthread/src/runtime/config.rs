//! Runtime configuration.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::error::RuntimeError;

/// A hook run on worker OS threads.
pub(crate) type Hook = Arc<dyn Fn() + Send + Sync + 'static>;

/// Largest number of worker roles (ordinary plus low-priority).
pub const MAX_WORKERS: usize = 256;

/// Default for [`SchedulerConfig::max_os_threads`] (Go's limit is 10,000 too).
pub const DEFAULT_MAX_OS_THREADS: usize = 10_000;

/// Default for [`SchedulerConfig::max_gvthreads`]: 2 Mi GVThreads. Address
/// space is reserved in 4 GiB chunks as the live count grows, so a large
/// limit costs nothing until it is used.
pub const DEFAULT_MAX_GVTHREADS: usize = 2 * 1024 * 1024;

/// Configuration of a [`Runtime`](crate::Runtime): `Default` plus chainable
/// by-value setters.
///
/// ```
/// use std::time::Duration;
/// use gvthread::{Runtime, SchedulerConfig};
///
/// let config = SchedulerConfig::default()
///     .num_workers(2)
///     .max_gvthreads(10_000)
///     .time_slice(Duration::from_millis(5));
/// let mut rt = Runtime::try_new(config).expect("runtime");
/// assert_eq!(rt.block_on(|| 6 * 7), 42);
/// ```
#[derive(Clone)]
pub struct SchedulerConfig {
    pub(crate) num_workers: Option<usize>,
    pub(crate) num_low_priority_workers: usize,
    pub(crate) max_gvthreads: usize,
    pub(crate) time_slice: Duration,
    pub(crate) grace_period: Duration,
    pub(crate) timer_interval: Duration,
    pub(crate) enable_forced_preempt: bool,
    pub(crate) debug_logging: bool,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) max_os_threads: usize,
    pub(crate) stack_size: usize,
    pub(crate) on_worker_start: Option<Hook>,
    pub(crate) on_worker_stop: Option<Hook>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            num_workers: None,
            num_low_priority_workers: 0,
            max_gvthreads: DEFAULT_MAX_GVTHREADS,
            time_slice: Duration::from_millis(10),
            grace_period: Duration::from_millis(1),
            timer_interval: Duration::from_millis(1),
            enable_forced_preempt: true,
            debug_logging: false,
            shutdown_timeout: Duration::from_secs(1),
            max_os_threads: DEFAULT_MAX_OS_THREADS,
            stack_size: crate::memory::DEFAULT_STACK,
            on_worker_start: None,
            on_worker_stop: None,
        }
    }
}

impl fmt::Debug for SchedulerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchedulerConfig")
            .field("num_workers", &self.num_workers)
            .field("num_low_priority_workers", &self.num_low_priority_workers)
            .field("max_gvthreads", &self.max_gvthreads)
            .field("time_slice", &self.time_slice)
            .field("grace_period", &self.grace_period)
            .field("timer_interval", &self.timer_interval)
            .field("enable_forced_preempt", &self.enable_forced_preempt)
            .field("debug_logging", &self.debug_logging)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("max_os_threads", &self.max_os_threads)
            .field("stack_size", &self.stack_size)
            .field("on_worker_start", &self.on_worker_start.is_some())
            .field("on_worker_stop", &self.on_worker_stop.is_some())
            .finish()
    }
}

impl SchedulerConfig {
    /// Ordinary worker OS threads (default: available parallelism).
    pub fn num_workers(mut self, n: usize) -> Self {
        self.num_workers = Some(n);
        self
    }

    /// Extra workers that run only `Priority::Low` GVThreads (default 0, in
    /// which case Low GVThreads run on ordinary workers when nothing else is
    /// runnable).
    pub fn num_low_priority_workers(mut self, n: usize) -> Self {
        self.num_low_priority_workers = n;
        self
    }

    /// Most GVThreads alive at once (default [`DEFAULT_MAX_GVTHREADS`]).
    /// `try_spawn` fails with [`SpawnError::AtCapacity`](crate::SpawnError)
    /// beyond it.
    pub fn max_gvthreads(mut self, n: usize) -> Self {
        self.max_gvthreads = n;
        self
    }

    /// How long a GVThread may run without yielding before it is asked to
    /// (default 10 ms).
    pub fn time_slice(mut self, d: Duration) -> Self {
        self.time_slice = d;
        self
    }

    /// Extra time after the time slice before a forced preemption (default 1 ms).
    pub fn grace_period(mut self, d: Duration) -> Self {
        self.grace_period = d;
        self
    }

    /// Period of the preemption monitor while GVThreads run (default 1 ms).
    pub fn timer_interval(mut self, d: Duration) -> Self {
        self.timer_interval = d;
        self
    }

    /// Whether GVThreads that ignore the cooperative request are preempted by
    /// a signal (default true).
    pub fn enable_forced_preempt(mut self, on: bool) -> Self {
        self.enable_forced_preempt = on;
        self
    }

    /// Whether the runtime reports notable events (worker start/stop, limits
    /// reached) on standard error (default false).
    pub fn debug_logging(mut self, on: bool) -> Self {
        self.debug_logging = on;
        self
    }

    /// How long dropping the [`Runtime`](crate::Runtime) waits for live
    /// GVThreads before abandoning them (default 1 s).
    pub fn shutdown_timeout(mut self, d: Duration) -> Self {
        self.shutdown_timeout = d;
        self
    }

    /// Most OS threads the runtime runs GVThreads on (default
    /// [`DEFAULT_MAX_OS_THREADS`]). Workers come first; the rest are spare
    /// threads that take over a worker role while its previous thread holds a
    /// preempted GVThread or is stuck in a blocking call. At the cap, forced
    /// preemption pauses (counted in `RuntimeMetrics::thread_cap_reached`).
    pub fn max_os_threads(mut self, n: usize) -> Self {
        self.max_os_threads = n;
        self
    }

    /// Default stack size of the runtime's GVThreads, in bytes (default
    /// 16 MiB; [`Builder::stack_size`](crate::Builder::stack_size) sets it
    /// per spawn). Rounded up to a size class: a power of two from 16 KiB to
    /// 512 MiB, whose slot includes one 4 KiB guard page. Physical memory is
    /// used only as deep as a stack grows; smaller classes save address space
    /// and page tables (below 2 MiB several idle stacks share a page-table
    /// page).
    ///
    /// ```
    /// use gvthread::{Runtime, SchedulerConfig};
    ///
    /// let mut rt = Runtime::new(SchedulerConfig::default().num_workers(1).stack_size(256 * 1024));
    /// assert_eq!(rt.block_on(|| gvthread::spawn(|_| 1).join().unwrap()), 1);
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = bytes;
        self
    }

    /// The size class of the default stack size (validated).
    pub(crate) fn stack_class(&self) -> crate::memory::StackClass {
        crate::memory::StackClass::for_size(self.stack_size).unwrap_or(crate::memory::StackClass::DEFAULT)
    }

    /// Runs `f` on each OS thread that runs GVThreads (workers and spare
    /// threads) before it runs any (for example, to enter a tokio runtime's
    /// context there).
    pub fn on_worker_start(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_worker_start = Some(Arc::new(f));
        self
    }

    /// Runs `f` on each OS thread that ran GVThreads when it stops.
    pub fn on_worker_stop(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_worker_stop = Some(Arc::new(f));
        self
    }

    /// Number of ordinary workers this configuration resolves to.
    pub(crate) fn resolved_workers(&self) -> usize {
        self.num_workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// Checks every knob; the error names the knob and the accepted range.
    pub(crate) fn validate(&self) -> Result<(), RuntimeError> {
        let bad = |field: &'static str, reason: String| Err(RuntimeError::InvalidConfig { field, reason });
        let workers = self.resolved_workers();
        if workers == 0 {
            return bad("num_workers", "must be at least 1".into());
        }
        if workers + self.num_low_priority_workers > MAX_WORKERS {
            return bad(
                "num_workers",
                format!(
                    "num_workers + num_low_priority_workers = {} exceeds the maximum of {MAX_WORKERS}",
                    workers + self.num_low_priority_workers
                ),
            );
        }
        if self.max_gvthreads == 0 {
            return bad("max_gvthreads", "must be at least 1".into());
        }
        if self.max_gvthreads > u32::MAX as usize / 2 {
            return bad("max_gvthreads", format!("must be at most {}", u32::MAX / 2));
        }
        if self.stack_size > crate::memory::MAX_SLOT {
            return bad("stack_size", format!("must be at most {} bytes (512 MiB)", crate::memory::MAX_SLOT));
        }
        if self.max_os_threads < workers + self.num_low_priority_workers {
            return bad(
                "max_os_threads",
                format!(
                    "must be at least num_workers + num_low_priority_workers ({})",
                    workers + self.num_low_priority_workers
                ),
            );
        }
        if self.time_slice.is_zero() {
            return bad("time_slice", "must be greater than zero".into());
        }
        if self.timer_interval.is_zero() {
            return bad("timer_interval", "must be greater than zero".into());
        }
        Ok(())
    }
}
