//! The runtime: construction, `block_on`, shutdown.
//!
//! # Shutdown protocol
//!
//! 1. Refuse new spawns and cancel the root token (so every GVThread's token).
//! 2. Wait until no GVThread is alive, or the timeout.
//! 3. Stop: workers leave their loops once the GVThread they run (if any)
//!    switches away and their OS threads go back to the process's pool of
//!    role threads (`runtime::role_threads`: they never exit, so that no
//!    thread-local destructor runs on them); the timer thread exits.
//! 4. GVThreads still alive are *abandoned*: their joins complete with
//!    [`JoinError::is_cancelled`](crate::JoinError::is_cancelled), their
//!    stacks and the values on them are leaked (never dropped, never
//!    unmapped, since other threads may still reference them), and a worker
//!    stuck running one is left running it rather than waited for.

use std::fmt;
use std::sync::Arc;
use std::thread::JoinHandle as ThreadHandle;
use std::time::{Duration, Instant};

use super::block_on::BlockOn;
use super::config::SchedulerConfig;
use super::dump::SignalDumper;
use super::error::RuntimeError;
use super::handle::Handle;
use super::shared::Shared;
use crate::memory::{GuardScheme, SlotPool};
use crate::timer;

/// How long shutdown waits for worker threads to leave after stopping them.
const THREAD_EXIT_GRACE: Duration = Duration::from_millis(200);

/// A gvthread runtime: worker OS threads, a timer thread, and the memory for
/// up to `max_gvthreads` GVThreads.
///
/// ```
/// use gvthread::{Runtime, SchedulerConfig};
///
/// let mut rt = Runtime::new(SchedulerConfig::default().num_workers(2));
/// let sum = rt.block_on(|| {
///     let (a, b) = (gvthread::spawn(|_| 20), gvthread::spawn(|_| 22));
///     a.join().unwrap() + b.join().unwrap()
/// });
/// assert_eq!(sum, 42);
/// ```
///
/// Dropping a runtime shuts it down with the configured
/// [`shutdown_timeout`](SchedulerConfig::shutdown_timeout) (1 s by default):
/// it never hangs on a GVThread that is blocked or spinning. GVThreads still
/// alive at the deadline are abandoned: their joins report
/// [`JoinError::is_cancelled`](crate::JoinError::is_cancelled) and whatever
/// they own is leaked rather than dropped. Do not drop a runtime from one of
/// its own GVThreads.
///
/// Its worker (and spare) OS threads do not exit: they go back to a
/// process-wide pool that later runtimes take threads from, so thread-local
/// destructors never run on them (`docs/safety.md` says why: it keeps
/// thread-locals sound when a GVThread moves between its role's threads).
pub struct Runtime {
    shared: Arc<Shared>,
    /// The timer thread and the spare starter (plain OS threads: they run
    /// no GVThread, so they may exit).
    helpers: Vec<ThreadHandle<()>>,
    dumper: Option<SignalDumper>,
    stopped: bool,
}

impl Runtime {
    /// Builds a runtime.
    ///
    /// # Panics
    /// With the reason of [`try_new`](Self::try_new)'s error.
    pub fn new(config: SchedulerConfig) -> Runtime {
        Runtime::try_new(config).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Builds a runtime, or says why it cannot: a configuration value out of
    /// range, or the OS refusing memory or threads.
    pub fn try_new(mut config: SchedulerConfig) -> Result<Runtime, RuntimeError> {
        config.validate()?;
        crate::util::fork::watch();
        config.fork_generation = crate::util::fork::generation();
        let guard = crate::memory::probe_guard_scheme();
        if guard == GuardScheme::Mprotect {
            check_map_budget()?;
        }
        // Room for the slots the worker roles may hold in their private caches
        // and pass between them (the depot).
        let roles = config.resolved_workers() + config.num_low_priority_workers;
        let capacity =
            config.max_gvthreads + roles * crate::memory::SlotCache::CAPACITY + crate::memory::SlotDepot::CAPACITY;
        let slots = SlotPool::new(capacity, guard, config.stack_class()).map_err(RuntimeError::AddressSpace)?;
        slots.set_compact_after(config.compact_idle_after);
        let shared = Arc::new(Shared::new(config, slots));
        let mut rt = Runtime { shared, helpers: Vec::new(), dumper: None, stopped: false };

        let sh = rt.shared.clone();
        let (started, timer_started) = std::sync::mpsc::channel();
        let timer = std::thread::Builder::new()
            .name("gvthread-timer".into())
            .spawn(move || timer::thread::run(sh, started))
            .map_err(RuntimeError::ThreadSpawn)?;
        rt.helpers.push(timer);
        // Its scheduling settings are made first thing (microseconds); an
        // error only means the thread is gone, which shutdown handles.
        let _ = timer_started.recv();

        if rt.shared.config.dump_on_sigquit {
            rt.dumper = Some(SignalDumper::start(&rt.shared).map_err(RuntimeError::ThreadSpawn)?);
        }
        for index in 0..rt.shared.workers.len() {
            rt.shared.start_machine(index, true, false).map_err(RuntimeError::ThreadSpawn)?;
        }
        if rt.shared.config.enable_forced_preempt {
            crate::preempt::signal::install();
            // Spares are started on demand (the monitor asks ahead of need)
            // by a thread of their own: starting a thread may block on locks
            // a frozen GVThread holds (see `preempt::spares`).
            let sh = rt.shared.clone();
            let starter = std::thread::Builder::new()
                .name("gvthread-spares".into())
                .spawn(move || crate::preempt::starter_thread(sh))
                .map_err(RuntimeError::ThreadSpawn)?;
            rt.helpers.push(starter);
        }
        Ok(rt)
    }

    /// Runs `f` as a GVThread and waits (parking the calling OS thread) for its
    /// result. `f` is a closure, or a future (driven inside the GVThread, so it
    /// can await GVThreads, channels and, with a tokio context on the workers,
    /// tokio-based futures); see [`BlockOn`]. A panic in `f`
    /// resumes on the caller.
    ///
    /// ```
    /// let mut rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(2));
    /// // A closure: plain blocking code.
    /// let a = rt.block_on(|| gvthread::spawn(|_| 20).join().unwrap());
    /// // A future, as with tokio's `Runtime::block_on`.
    /// let b = rt.block_on(async { gvthread::spawn(|_| 22).await.unwrap() });
    /// assert_eq!(a + b, 42);
    /// // The GVThread has fully ended when block_on returns.
    /// assert_eq!(rt.metrics().live_gvthreads, 0);
    /// ```
    ///
    /// Pass an `async` block itself, not a closure returning one:
    /// `rt.block_on(|| async { .. })` returns the future unpolled (the
    /// compiler warns that it is unused).
    ///
    /// The future moves to a worker thread, so it must be `Send` (unlike
    /// with tokio's `block_on`, which polls on the calling thread). A future
    /// that holds `!Send` values (an `Rc`) across `.await` can be built inside
    /// the GVThread instead, where it never moves:
    /// `rt.block_on(|| gvthread_futures::block_on(async { .. }))`.
    ///
    /// # Panics
    /// If `f` panics, or if it cannot be spawned (runtime at capacity or shut
    /// down).
    #[track_caller]
    pub fn block_on<F, M>(&mut self, f: F) -> F::Output
    where
        F: BlockOn<M>,
    {
        self.handle().block_on(f)
    }

    /// The runtime's shared state (unit tests of other modules).
    #[cfg(test)]
    pub(crate) fn shared_for_tests(&self) -> &Shared {
        &self.shared
    }

    /// A handle for spawning from other threads.
    pub fn handle(&self) -> Handle {
        Handle { shared: self.shared.clone() }
    }

    /// Shuts down: cancels every GVThread's token, waits up to `timeout` for
    /// them to end, then stops the workers (see the type docs for what
    /// happens to GVThreads still alive).
    pub fn shutdown_timeout(mut self, timeout: Duration) {
        self.shutdown(timeout);
    }

    fn shutdown(&mut self, timeout: Duration) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if let Some(mut d) = self.dumper.take() {
            d.stop();
        }
        let sh = &self.shared;
        sh.begin_shutdown();
        let deadline =
            Instant::now().checked_add(timeout).unwrap_or_else(|| Instant::now() + Duration::from_secs(86400 * 365));
        let live = sh.wait_idle(deadline);
        sh.stop();
        if live > 0 {
            sh.abandon_all();
            // Abandoned GVThreads never end, and wait queues name waiting
            // GVThreads without counting a reference on the runtime
            // (`sched::park::GvPtr`), relying on the runtime outliving every
            // GVThread: keep `Shared` allocated for good, like their stacks.
            std::mem::forget(Arc::clone(sh));
            if sh.config.debug_logging {
                eprintln!("gvthread: shutdown abandoned {live} GVThread(s) still alive after {timeout:?}");
            }
        }
        let grace = Instant::now() + THREAD_EXIT_GRACE;
        let wait = |finished: &dyn Fn() -> bool| {
            while !finished() && Instant::now() < grace {
                std::thread::sleep(Duration::from_millis(1));
            }
            finished()
        };
        let mut all_joined = true;
        for t in std::mem::take(&mut self.helpers) {
            if wait(&|| t.is_finished()) {
                let _ = t.join();
            } else {
                all_joined = false;
            }
        }
        let machines = std::mem::take(&mut *sh.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in machines {
            // A machine's thread goes back to the process's pool
            // (`role_threads`) rather than exiting. One still running after
            // the grace is stuck in an abandoned GVThread, or was kept off
            // the CPU throughout: leave it.
            if wait(&|| t.is_finished()) {
                t.join();
            } else {
                all_joined = false;
            }
        }
        // Threads are gone (or detached with their own references): drop the
        // machine registry so that `Shared` can be freed.
        sh.clear_machines();
        if live == 0 && all_joined && sh.live_count() == 0 {
            // Nothing runs on, or refers to, any stack (a worker's last exit
            // counts itself out before it frees its slot: every worker has
            // ended): give the address space back now rather than when the
            // last waker goes.
            sh.slots.release_stacks();
        }
    }

    /// A snapshot of the runtime's counters (preemptions, hand-offs, threads).
    pub fn metrics(&self) -> crate::RuntimeMetrics {
        self.shared.metrics_snapshot()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let timeout = self.shared.config.shutdown_timeout;
        self.shutdown(timeout);
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("workers", &self.shared.workers.len())
            .field("live_gvthreads", &self.handle().live_gvthreads())
            .finish()
    }
}

/// Without guard markers each slot costs two kernel mappings. The budget is
/// checked where it is spent: each time the slot pool prepares more slots it
/// compares the process's *current* mapping count (cached and free slots,
/// other runtimes, everything else mapped) with `vm.max_map_count`, and a
/// spawn beyond it fails with a clear `SpawnError::Memory`. Here only the
/// room for a first batch of slots is required, so that a process already
/// at the limit gets the error when the runtime is built.
fn check_map_budget() -> Result<(), RuntimeError> {
    let (Some(limit), Some(current)) = (crate::memory::max_map_count(), crate::memory::current_map_count()) else {
        return Ok(());
    };
    let needed = current + 2 * 64 + 1024;
    if needed > limit { Err(RuntimeError::MapCountTooLow { needed, limit }) } else { Ok(()) }
}
