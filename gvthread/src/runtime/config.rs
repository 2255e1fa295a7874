//! Runtime configuration.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::error::RuntimeError;

/// A hook run on worker OS threads.
pub(crate) type Hook = Arc<dyn Fn() + Send + Sync + 'static>;

/// A [`SchedulerConfig::worker_context`] factory: its guard, type-erased.
pub(crate) type ContextHook = Arc<dyn Fn() -> Box<dyn std::any::Any> + Send + Sync + 'static>;

/// Largest number of worker roles (ordinary plus low-priority).
pub const MAX_WORKERS: usize = 256;

/// Default OS threads per worker role: [`SchedulerConfig::max_os_threads`]
/// defaults to this many times `num_workers + num_low_priority_workers` (each
/// role's own worker thread plus three spares for forced preemption).
pub const DEFAULT_THREADS_PER_WORKER: usize = 4;

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
    pub(crate) wakeup_granularity: Duration,
    pub(crate) enable_forced_preempt: bool,
    pub(crate) debug_logging: bool,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) max_os_threads: Option<usize>,
    pub(crate) free_migration: bool,
    pub(crate) stack_size: usize,
    pub(crate) on_worker_start: Option<Hook>,
    pub(crate) on_worker_stop: Option<Hook>,
    pub(crate) worker_context: Option<ContextHook>,
    pub(crate) dump_on_sigquit: bool,
    pub(crate) realtime_timer_thread: bool,
    pub(crate) compact_idle_after: Option<Duration>,
    /// Set by `Runtime::try_new`: the fork generation the runtime was built
    /// in (see `util::fork`); not a knob.
    pub(crate) fork_generation: u32,
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
            wakeup_granularity: Duration::from_millis(1),
            enable_forced_preempt: true,
            debug_logging: false,
            shutdown_timeout: Duration::from_secs(1),
            max_os_threads: None,
            free_migration: false,
            stack_size: crate::memory::DEFAULT_STACK,
            on_worker_start: None,
            on_worker_stop: None,
            worker_context: None,
            dump_on_sigquit: false,
            realtime_timer_thread: false,
            compact_idle_after: None,
            fork_generation: 0,
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
            .field("wakeup_granularity", &self.wakeup_granularity)
            .field("enable_forced_preempt", &self.enable_forced_preempt)
            .field("debug_logging", &self.debug_logging)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("max_os_threads", &self.max_os_threads)
            .field("free_migration", &self.free_migration)
            .field("stack_size", &self.stack_size)
            .field("on_worker_start", &self.on_worker_start.is_some())
            .field("on_worker_stop", &self.on_worker_stop.is_some())
            .field("worker_context", &self.worker_context.is_some())
            .field("dump_on_sigquit", &self.dump_on_sigquit)
            .field("realtime_timer_thread", &self.realtime_timer_thread)
            .field("compact_idle_after", &self.compact_idle_after)
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

    /// How long a GVThread runs at least before a GVThread woken for its
    /// worker (by a timer, a message, a join, a future) preempts it (default
    /// 1 ms; `Duration::MAX` turns wake-up preemption off). A woken GVThread
    /// then waits about this long (plus up to one `timer_interval`) beside a
    /// CPU hog, instead of the hog's whole time slice; a woken GVThread that
    /// keeps running is preempted at the end of its own slice, like any hog.
    /// Critical and High GVThreads preempt Normal and Low ones at once, and
    /// any wake preempts a Low one at once.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = gvthread::SchedulerConfig::default().wakeup_granularity(Duration::from_micros(500));
    /// let mut rt = gvthread::Runtime::new(config.num_workers(1));
    /// assert_eq!(rt.block_on(|| 2 + 2), 4);
    /// ```
    pub fn wakeup_granularity(mut self, d: Duration) -> Self {
        self.wakeup_granularity = d;
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

    /// OS threads the runtime runs GVThreads on in the ordinary course
    /// (default [`DEFAULT_THREADS_PER_WORKER`] × the number of worker
    /// roles). Each role gets an equal share (at least one): its worker
    /// thread plus spare threads that take the role over while its previous
    /// thread holds a GVThread frozen by forced preemption. A role whose
    /// threads all hold frozen GVThreads resumes them in turn.
    ///
    /// Beyond its share, a role with at least two threads starts up to 64
    /// more only where it would otherwise stall: while all its threads hold
    /// frozen CPU hogs and other GVThreads of the role wait to run (a hog
    /// spinning until another GVThread of its role acts would otherwise
    /// spin for ever), or while they all hold GVThreads blocked during
    /// unwinding. Such threads stay as spares until the runtime is dropped.
    /// See `docs/preemption.md`, "The thread cap". With a share of one
    /// thread per role, forced preemption has nowhere to hand the role and
    /// does not freeze. The runtime also runs a timer thread and, with
    /// forced preemption on, a thread that starts spares; those two are not
    /// counted here.
    pub fn max_os_threads(mut self, n: usize) -> Self {
        self.max_os_threads = Some(n);
        self
    }

    /// Lets a started GVThread resume on any worker thread (free migration),
    /// instead of only on the threads of the worker role where it first ran.
    ///
    /// Off by default. Free migration balances load after the start too
    /// (work stealing of running GVThreads), at the price of soundness for
    /// thread-bound state: LLVM may keep a `thread_local!`'s address across
    /// a call, so code that touches a thread-local, blocks (any gvthread
    /// call that parks or yields) and touches it again can use the previous
    /// OS thread's value while that thread uses it too; the same holds for
    /// any `!Send` handle to thread-owned data kept across a blocking call
    /// (an `Rc` out of a thread-local, `rand::thread_rng()`, a `tracing`
    /// span guard).
    ///
    /// # Safety
    /// The program, including every library it calls inside GVThreads, must
    /// keep no thread-bound state (thread-locals, `!Send` values tied to an
    /// OS thread) across a blocking gvthread call. See `docs/safety.md`.
    ///
    /// ```
    /// // SAFETY: these GVThreads keep no thread-bound state across blocking calls.
    /// let config = unsafe { gvthread::SchedulerConfig::default().free_migration(true) };
    /// let mut rt = gvthread::Runtime::new(config.num_workers(2));
    /// assert_eq!(rt.block_on(|| 1 + 1), 2);
    /// ```
    pub unsafe fn free_migration(mut self, on: bool) -> Self {
        self.free_migration = on;
        self
    }

    /// Default stack size of the runtime's GVThreads, in bytes (default
    /// 16 MiB; [`Builder::stack_size`](crate::Builder::stack_size) sets it
    /// per spawn). Rounded up to a size class: a power of two from 16 KiB to
    /// 512 MiB, whose slot includes one 4 KiB guard page (and, from 512 KiB
    /// up, up to 1/64 of the slot above the stack's start: stack tops are
    /// staggered over the caches). Physical memory is
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

    /// Compacts the stacks of GVThreads parked for longer than this
    /// (default `None`: never). The runtime's timer thread copies the used
    /// part of such a GVThread's stack (typically one to three KiB) to a
    /// small heap buffer and gives its pages back to the OS, page tables
    /// included where the neighbouring stacks are compacted too; the bytes go
    /// back to the same addresses before the GVThread runs again, so pointers
    /// into its stack stay valid. Measured: a million idle GVThreads cost
    /// about 1.6 KB each instead of 8.6 KB, and waking a compacted one costs
    /// about 5 µs more at the median (docs/benchmarks.md). Stacks of 256 KiB
    /// or less ([`stack_size`](Self::stack_size)) keep their guard page and
    /// their share of a page-table page when compacted (at most 512 B): about
    /// 2 KB per idle GVThread, and a compacted wake about 2 µs slower at the
    /// median, with a shorter tail. `Some(Duration::from_secs(1))`
    /// is the recommended setting where it applies.
    ///
    /// GVThreads parked in `sleep`, `SchedMutex::lock`, a join, a
    /// cancellation wait, a channel `send` or a blocking channel `recv` are
    /// compacted (a sender that hands a value over to a compacted receiver
    /// writes it into the saved bytes). Those parked in a `select!` or in
    /// `block_on` are not (their stack holds state other threads reach: the
    /// select's context, the pinned future), nor are those using more than
    /// 64 KiB of stack.
    ///
    /// # Safety
    ///
    /// While a GVThread is compacted, its stack's pages are gone: a read by
    /// another thread sees zeros, and a write is lost when the bytes are
    /// copied back. With `Some(_)`, the caller promises that **no thread other
    /// than a GVThread itself reads or writes that GVThread's stack while it
    /// is parked in a gvthread blocking call** (the runtime's own primitives
    /// excepted, as described above). Safe Rust can break this promise:
    ///
    /// ```no_run
    /// # let mut rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default());
    /// # rt.block_on(|| {
    /// let mut hits = Vec::new(); // on the GVThread's stack
    /// std::thread::scope(|s| {
    ///     s.spawn(|| hits.push(1)); // another thread writes into it...
    ///     gvthread::sleep(std::time::Duration::from_secs(2)); // ...while it is parked
    /// });
    /// # });
    /// ```
    ///
    /// With compaction on, `hits` could come back empty, its allocation
    /// leaked, or worse (measured: a scoped thread's writes are lost). Scoped
    /// threads of `std`, crossbeam or rayon that borrow a GVThread's locals
    /// while the scope's body parks, and raw pointers handed to other threads,
    /// are what to rule out. `None` is always safe.
    ///
    /// ```
    /// use std::time::Duration;
    /// use gvthread::{Runtime, SchedulerConfig};
    ///
    /// // SAFETY: no thread other than a GVThread itself touches its stack
    /// // while it is parked (no scoped threads borrow GVThreads' locals).
    /// let config = unsafe { SchedulerConfig::default().num_workers(1).compact_idle_after(Some(Duration::from_millis(10))) };
    /// let mut rt = Runtime::new(config);
    /// let n = rt.block_on(|| {
    ///     let local = [7u8; 100]; // lives on the stack across the compaction
    ///     gvthread::sleep(Duration::from_millis(50));
    ///     local.iter().map(|&b| b as u32).sum::<u32>()
    /// });
    /// assert_eq!(n, 700);
    /// ```
    ///
    /// Calling it without `unsafe` does not compile:
    ///
    /// ```compile_fail,E0133
    /// let config = gvthread::SchedulerConfig::default().compact_idle_after(Some(std::time::Duration::from_secs(1)));
    /// ```
    pub unsafe fn compact_idle_after(mut self, after: Option<Duration>) -> Self {
        self.compact_idle_after = after;
        self
    }

    /// The size class of the default stack size (validated).
    pub(crate) fn stack_class(&self) -> crate::memory::StackClass {
        crate::memory::StackClass::for_size(self.stack_size).unwrap_or(crate::memory::StackClass::DEFAULT)
    }

    /// Runs `f` on each OS thread that runs GVThreads (workers and spare
    /// threads) before it runs any (for example, to enter a tokio runtime's
    /// context there).
    ///
    /// The threads outlive the runtime: a later runtime may take them
    /// (`docs/safety.md`), with whatever per-thread settings `f` made.
    pub fn on_worker_start(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_worker_start = Some(Arc::new(f));
        self
    }

    /// Runs `f` on each OS thread that ran GVThreads when it stops serving
    /// this runtime (the thread itself goes on, parked for a later runtime).
    pub fn on_worker_stop(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_worker_stop = Some(Arc::new(f));
        self
    }

    /// Runs `f` on each OS thread that runs GVThreads (workers and spare
    /// threads) before it runs any, and keeps the value it returns (a guard)
    /// for as long as that thread runs GVThreads; the guard is dropped on
    /// that same thread when it stops. The guard need not be `Send`.
    ///
    /// Made for context guards such as tokio's `Handle::enter()`: with it,
    /// every GVThread sees the tokio runtime as its context, whichever worker
    /// or spare thread it runs on (see `docs/tokio.md`).
    ///
    /// ```
    /// let tokio_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    /// // tokio's `EnterGuard` borrows the handle, and the guard must be
    /// // `'static`: leak one clone of the handle (a pointer) for the program.
    /// let handle: &'static tokio::runtime::Handle = Box::leak(Box::new(tokio_rt.handle().clone()));
    /// let config = gvthread::SchedulerConfig::default().num_workers(2).worker_context(move || handle.enter());
    /// let mut rt = gvthread::Runtime::new(config);
    /// rt.block_on(async {
    ///     tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    /// });
    /// ```
    ///
    /// Order on each thread: `on_worker_start`, then `f`; at the end, the
    /// guard is dropped, then `on_worker_stop` runs. Setting it again
    /// replaces the previous factory.
    pub fn worker_context<G: 'static>(mut self, f: impl Fn() -> G + Send + Sync + 'static) -> Self {
        self.worker_context = Some(Arc::new(move || Box::new(f()) as Box<dyn std::any::Any>));
        self
    }

    /// Whether `SIGQUIT` (Ctrl-\\ in a terminal) prints
    /// [`Handle::dump`](crate::Handle::dump) to standard error, as Go does
    /// with goroutine stacks (default false). Unlike Go, the process keeps
    /// running. The signal handler only wakes a `gvthread-dump` thread,
    /// which builds and prints the dump. It replaces SIGQUIT's default
    /// action (core dump) for the whole process, for good: the handler is
    /// process-wide and stays installed after the runtime is gone.
    pub fn dump_on_sigquit(mut self, on: bool) -> Self {
        self.dump_on_sigquit = on;
        self
    }

    /// Whether the runtime's timer thread asks Linux for the real-time
    /// policy `SCHED_FIFO` at the lowest priority (default false). It fires
    /// timers and sends the preemption signals, so wake-ups beside CPU hogs
    /// are as late as it is. In the normal policy, on a machine whose CPUs
    /// are all busy, Linux sometimes lets it wait up to a scheduler tick
    /// (4 ms on a 250 Hz kernel) after its sleep ends, even with the short
    /// slice it asks for; a real-time thread runs as soon as it wakes. On the
    /// 2-core test VM, a 1 ms sleeper beside four spinning GVThreads on two
    /// workers was late by 2.5 ms at the 99th percentile on average over ten
    /// runs, and by 0.7 ms with this on (docs/benchmarks.md).
    ///
    /// The thread only sleeps, fires timers, signals and gives memory back
    /// in paced batches, so it takes little CPU time; but while it runs, no
    /// normal thread on its CPU does. So in a timer storm (a use of more
    /// than a quarter of a CPU over 10 ms) it runs in the normal policy
    /// until the storm passes. Linux grants the policy only to a
    /// process that may use it (`CAP_SYS_NICE`, or a non-zero
    /// `RLIMIT_RTPRIO`, as for root); otherwise the thread keeps the normal
    /// policy and [`RuntimeMetrics::realtime_timer_thread`](crate::RuntimeMetrics::realtime_timer_thread)
    /// says so.
    ///
    /// ```
    /// let config = gvthread::SchedulerConfig::default().realtime_timer_thread(true);
    /// let rt = gvthread::Runtime::new(config.num_workers(1));
    /// // Granted or not, the runtime works; the metric tells which.
    /// let granted = rt.metrics().realtime_timer_thread;
    /// # let _ = granted;
    /// ```
    pub fn realtime_timer_thread(mut self, on: bool) -> Self {
        self.realtime_timer_thread = on;
        self
    }

    /// Worker roles (ordinary plus low-priority); valid after `validate`.
    pub(crate) fn roles(&self) -> usize {
        self.resolved_workers().saturating_add(self.num_low_priority_workers)
    }

    /// OS threads each role may have (its worker plus spares), at least one.
    pub(crate) fn threads_per_role(&self) -> usize {
        let roles = self.roles().max(1);
        let cap = self.max_os_threads.unwrap_or(roles.saturating_mul(DEFAULT_THREADS_PER_WORKER));
        (cap / roles).max(1)
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
        if workers > MAX_WORKERS || self.num_low_priority_workers > MAX_WORKERS || self.roles() > MAX_WORKERS {
            return bad(
                "num_workers",
                format!(
                    "num_workers ({workers}) + num_low_priority_workers ({}) exceeds the maximum of {MAX_WORKERS}",
                    self.num_low_priority_workers
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
        if let Some(n) = self.max_os_threads
            && n < self.roles()
        {
            return bad(
                "max_os_threads",
                format!("must be at least num_workers + num_low_priority_workers ({})", self.roles()),
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
