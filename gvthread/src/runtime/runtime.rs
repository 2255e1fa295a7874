//! The runtime: construction, `block_on`, shutdown.
//!
//! # Shutdown protocol
//!
//! 1. Refuse new spawns and cancel the root token (so every GVThread's token).
//! 2. Wait until no GVThread is alive, or the timeout.
//! 3. Stop: workers leave their loops once the GVThread they run (if any)
//!    switches away; the timer thread exits.
//! 4. GVThreads still alive are *abandoned*: their joins complete with
//!    [`JoinError::is_cancelled`](crate::JoinError::is_cancelled), their
//!    stacks and the values on them are leaked (never dropped, never
//!    unmapped, since other threads may still reference them), and a worker
//!    stuck running one is detached rather than joined.

use std::fmt;
use std::panic::resume_unwind;
use std::sync::Arc;
use std::thread::JoinHandle as ThreadHandle;
use std::time::{Duration, Instant};

use super::config::SchedulerConfig;
use super::error::RuntimeError;
use super::handle::Handle;
use super::shared::Shared;
use crate::memory::{GuardScheme, SlotPool};
use crate::sched::machine;
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
pub struct Runtime {
    shared: Arc<Shared>,
    threads: Vec<ThreadHandle<()>>,
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
    pub fn try_new(config: SchedulerConfig) -> Result<Runtime, RuntimeError> {
        config.validate()?;
        let guard = crate::memory::probe_guard_scheme();
        if guard == GuardScheme::Mprotect {
            check_map_budget(config.max_gvthreads)?;
        }
        let slots = SlotPool::new(config.max_gvthreads, guard).map_err(RuntimeError::AddressSpace)?;
        let shared = Arc::new(Shared::new(config, slots));
        let mut rt = Runtime { shared, threads: Vec::new() };

        let sh = rt.shared.clone();
        let timer = std::thread::Builder::new()
            .name("gvthread-timer".into())
            .spawn(move || timer::thread::run(sh))
            .map_err(RuntimeError::ThreadSpawn)?;
        rt.threads.push(timer);

        for index in 0..rt.shared.workers.len() {
            let sh = rt.shared.clone();
            let name = if sh.workers[index].low_priority {
                format!("gvthread-low-{index}")
            } else {
                format!("gvthread-worker-{index}")
            };
            let t = std::thread::Builder::new()
                .name(name)
                .spawn(move || worker_thread(sh, index))
                .map_err(RuntimeError::ThreadSpawn)?;
            rt.threads.push(t);
        }
        Ok(rt)
    }

    /// Runs `f` as a GVThread and waits (parking the calling OS thread) for its
    /// result. A panic in `f` resumes on the caller.
    ///
    /// # Panics
    /// If `f` panics, or if it cannot be spawned (runtime at capacity or shut
    /// down).
    pub fn block_on<F, R>(&mut self, f: F) -> R
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let handle = self.handle().spawn(move |_| f());
        match handle.join() {
            Ok(v) => v,
            Err(e) => match e.try_into_panic() {
                Ok(payload) => resume_unwind(payload),
                Err(e) => panic!("Runtime::block_on: {e}"),
            },
        }
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
        if self.threads.is_empty() {
            return;
        }
        let sh = &self.shared;
        sh.begin_shutdown();
        let deadline =
            Instant::now().checked_add(timeout).unwrap_or_else(|| Instant::now() + Duration::from_secs(86400 * 365));
        let live = sh.wait_idle(deadline);
        sh.stop();
        if live > 0 {
            sh.abandon_all();
            if sh.config.debug_logging {
                eprintln!("gvthread: shutdown abandoned {live} GVThread(s) still alive after {timeout:?}");
            }
        }
        let grace = Instant::now() + THREAD_EXIT_GRACE;
        for t in self.threads.drain(..) {
            while !t.is_finished() && Instant::now() < grace {
                std::thread::sleep(Duration::from_millis(1));
            }
            if t.is_finished() {
                let _ = t.join();
            }
            // Otherwise the thread is stuck running an abandoned GVThread: detach it.
        }
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

/// Body of a worker OS thread.
fn worker_thread(shared: Arc<Shared>, index: usize) {
    if let Some(hook) = &shared.config.on_worker_start {
        hook();
    }
    if shared.config.debug_logging {
        eprintln!("gvthread: worker {index} started");
    }
    let stop_hook = shared.config.on_worker_stop.clone();
    let debug = shared.config.debug_logging;
    machine::run(shared, index);
    if debug {
        eprintln!("gvthread: worker {index} stopped");
    }
    if let Some(hook) = stop_hook {
        hook();
    }
}

/// Without guard markers each slot costs two kernel mappings: refuse a
/// configuration the current `vm.max_map_count` cannot honour.
fn check_map_budget(max_gvthreads: usize) -> Result<(), RuntimeError> {
    let (Some(limit), Some(current)) = (crate::memory::max_map_count(), crate::memory::current_map_count()) else {
        return Ok(());
    };
    let needed = current + 2 * max_gvthreads + 1024;
    if needed > limit { Err(RuntimeError::MapCountTooLow { needed, limit }) } else { Ok(()) }
}
