//! Handles and the free spawn functions.

use std::fmt;
use std::panic::resume_unwind;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::block_on::BlockOn;
use super::error::SpawnError;
use super::shared::Shared;
use crate::sched::machine;
use crate::sync::cancel::CancellationToken;
use crate::task::id::GVThreadId;
use crate::task::join::JoinHandle;
use crate::task::priority::Priority;
use crate::task::spawn::{SpawnOptions, spawn_from_gvthread, spawn_on};

/// A cheap, cloneable reference to a runtime, usable from any thread (async
/// tasks included) to spawn GVThreads.
///
/// ```
/// let rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(1));
/// let handle = rt.handle();
/// let h = std::thread::spawn(move || handle.spawn(|_| 40 + 2).join().unwrap());
/// assert_eq!(h.join().unwrap(), 42);
/// ```
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

impl Handle {
    /// Spawns a GVThread.
    ///
    /// # Panics
    /// If the runtime is at `max_gvthreads`, shutting down, or out of memory;
    /// use [`try_spawn`](Self::try_spawn) to handle those.
    #[track_caller]
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce(CancellationToken) -> T + Send + 'static,
        T: Send + 'static,
    {
        match self.try_spawn(f) {
            Ok(h) => h,
            Err(e) => panic!("{e}"),
        }
    }

    /// Spawns a GVThread with the given priority.
    ///
    /// ```
    /// use gvthread::{Priority, Runtime, SchedulerConfig};
    /// let rt = Runtime::new(SchedulerConfig::default().num_workers(1));
    /// let h = rt.handle().spawn_with_priority(Priority::High, |_| "urgent");
    /// assert_eq!(h.join().unwrap(), "urgent");
    /// ```
    ///
    /// # Panics
    /// As [`spawn`](Self::spawn).
    #[track_caller]
    pub fn spawn_with_priority<F, T>(&self, priority: Priority, f: F) -> JoinHandle<T>
    where
        F: FnOnce(CancellationToken) -> T + Send + 'static,
        T: Send + 'static,
    {
        match spawn_on(&self.shared, priority, f) {
            Ok(h) => h,
            Err(e) => panic!("{e}"),
        }
    }

    /// Runs `f` (a closure or a future, see [`BlockOn`]) as a GVThread and
    /// waits for its result, like [`Runtime::block_on`](crate::Runtime::block_on):
    /// on a plain thread the OS thread parks; inside a GVThread only that
    /// GVThread does. A panic in `f` resumes on the caller.
    ///
    /// ```
    /// let rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(1));
    /// let handle = rt.handle();
    /// let v = std::thread::spawn(move || handle.block_on(async { 40 + 2 })).join().unwrap();
    /// assert_eq!(v, 42);
    /// ```
    ///
    /// # Panics
    /// If `f` panics, or if it cannot be spawned (runtime at capacity or shut
    /// down).
    #[track_caller]
    pub fn block_on<F, M>(&self, f: F) -> F::Output
    where
        F: BlockOn<M>,
    {
        let handle = match spawn_on(&self.shared, Priority::Normal, move |token| f.run(token)) {
            Ok(h) => h,
            Err(e) => panic!("block_on: {e}"),
        };
        let id = handle.id();
        let result = handle.join();
        // The join completes just before the GVThread exits: wait for the
        // exit so that metrics and `live_gvthreads` no longer count it.
        self.wait_exited(id);
        match result {
            Ok(v) => v,
            Err(e) => match e.try_into_panic() {
                Ok(payload) => resume_unwind(payload),
                Err(e) => panic!("block_on: {e}"),
            },
        }
    }

    /// Waits (bounded) until the GVThread `id`, whose join has completed,
    /// has left its slot. It is past its last user code, so this takes a few
    /// microseconds unless Linux keeps its worker thread off the CPU (beside
    /// CPU hogs on a loaded machine: milliseconds); past the bound, a second,
    /// it gives up (the count then catches up a moment later).
    fn wait_exited(&self, id: GVThreadId) {
        const SPINS: u32 = 200;
        const SLEEPS: u32 = 10_000;
        let st = self.shared.slots.state(id.slot());
        let gone = || {
            let w = st.load(Ordering::Acquire);
            crate::task::state::generation(w) != id.generation()
                || crate::task::state::kind(w) == crate::task::state::FREE
        };
        for i in 0..SPINS + SLEEPS {
            if gone() || self.shared.is_stopped() {
                return;
            }
            if i < SPINS {
                crate::yield_now();
            } else {
                crate::sleep(Duration::from_micros(100));
            }
        }
    }

    /// Spawns a GVThread, or says why not.
    pub fn try_spawn<F, T>(&self, f: F) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce(CancellationToken) -> T + Send + 'static,
        T: Send + 'static,
    {
        spawn_on(&self.shared, Priority::Normal, f)
    }

    /// Spawns a GVThread with the given priority, or says why not.
    pub fn try_spawn_with_priority<F, T>(&self, priority: Priority, f: F) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce(CancellationToken) -> T + Send + 'static,
        T: Send + 'static,
    {
        spawn_on(&self.shared, priority, f)
    }

    /// The handle of the runtime running the calling GVThread.
    ///
    /// ```
    /// let mut rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(1));
    /// let v = rt.block_on(|| {
    ///     let handle = gvthread::Handle::current();
    ///     // Hand it to a plain thread, which spawns onto this runtime.
    ///     std::thread::spawn(move || handle.spawn(|_| 7).join().unwrap()).join().unwrap()
    /// });
    /// assert_eq!(v, 7);
    /// ```
    ///
    /// # Panics
    /// Outside a GVThread (like tokio's `Handle::current` outside a runtime);
    /// [`try_current`](Self::try_current) returns `None` there instead.
    #[track_caller]
    pub fn current() -> Handle {
        match Handle::try_current() {
            Some(h) => h,
            None => panic!("gvthread::Handle::current() called outside a GVThread: use Runtime::handle() there"),
        }
    }

    /// The handle of the runtime running the calling GVThread, if any.
    pub fn try_current() -> Option<Handle> {
        machine::current_gvthread().map(|(m, _)| Handle { shared: m.shared.clone() })
    }

    /// Number of GVThreads alive in this runtime.
    pub fn live_gvthreads(&self) -> usize {
        self.shared.live_count()
    }

    /// A text dump of every live GVThread: its id (and name, when it has
    /// one), priority, state (running, runnable, or parked and on what:
    /// channel, mutex, join, sleep, future, unblock, with the call site and
    /// any deadline), how long it has been parked (to the kernel's
    /// coarse clock tick, 1 to 4 ms), and, for parked GVThreads, a
    /// symbolized backtrace of its stack. Meant for people (the format may
    /// change), like Go's goroutine dump.
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(1));
    /// let (tx, rx) = gvthread::channel::<u32>(0);
    /// let waiter = rt.handle().spawn(move |_| rx.recv().unwrap());
    /// while !rt.handle().dump().contains("parked on channel") {
    ///     std::thread::sleep(Duration::from_millis(1));
    /// }
    /// println!("{}", rt.handle().dump());
    /// tx.send(1).unwrap();
    /// assert_eq!(waiter.join().unwrap(), 1);
    /// ```
    ///
    /// Callable from any thread. Inside a GVThread it parks that GVThread
    /// while a helper thread (the [`unblock`](fn@crate::unblock) pool) builds
    /// the dump, so its own backtrace is included.
    ///
    /// Parked GVThreads are briefly held out of reach of their wakers while
    /// their stacks are read (a wake meanwhile is delivered right after), so
    /// a dump never reads a stack that is running. Running and runnable
    /// GVThreads are listed without a backtrace. Backtraces use the DWARF
    /// unwind tables (`.eh_frame`, always present) and need no frame
    /// pointers; names and lines need the symbol table and line tables
    /// (`debug = 1` or more; a stripped binary shows addresses). Costly (it
    /// reads the binary's debug information on first use): for debugging,
    /// not for hot paths.
    pub fn dump(&self) -> String {
        super::dump::dump(&self.shared)
    }

    /// A snapshot of the runtime's counters.
    pub fn metrics(&self) -> crate::RuntimeMetrics {
        self.shared.metrics_snapshot()
    }

    /// Whether the runtime is shutting down (spawns are refused).
    pub fn is_shutting_down(&self) -> bool {
        self.shared.is_shutting_down()
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").field("live_gvthreads", &self.live_gvthreads()).finish()
    }
}

/// Spawns a GVThread on the runtime of the calling GVThread.
///
/// The closure receives the new GVThread's [`CancellationToken`], a child of
/// the caller's.
///
/// The new GVThread waits for a free worker, or for the caller to give its
/// worker away: a spawn does not preempt the caller, but it is a safepoint
/// (like [`safepoint!`](crate::safepoint)), where a caller that has used up
/// its time slice yields. A caller that spawns faster than its GVThreads
/// run may also yield when its worker's local run queue (1,024 entries)
/// fills up: it resumes once the GVThreads queued before it had their turn
/// (or one of them used up a time slice), so a spawn loop keeps about two
/// queues' worth of GVThreads waiting rather than piling up all it spawns.
///
/// # Panics
/// Outside a GVThread (use [`Runtime::block_on`](crate::Runtime::block_on) or
/// [`Handle::spawn`]), and in the cases where [`try_spawn`] returns an error.
///
/// ```
/// let mut rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(2));
/// let total: u64 = rt.block_on(|| {
///     let handles: Vec<_> = (0..10u64).map(|i| gvthread::spawn(move |_| i * i)).collect();
///     handles.into_iter().map(|h| h.join().unwrap()).sum()
/// });
/// assert_eq!(total, 285);
/// ```
#[track_caller]
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce(CancellationToken) -> T + Send + 'static,
    T: Send + 'static,
{
    match try_spawn(f) {
        Ok(h) => h,
        Err(e) => panic!("gvthread::spawn: {e}"),
    }
}

/// Spawns a GVThread on the caller's runtime, or says why not: not inside a
/// GVThread, `max_gvthreads` reached, shutting down, or no memory.
pub fn try_spawn<F, T>(f: F) -> Result<JoinHandle<T>, SpawnError>
where
    F: FnOnce(CancellationToken) -> T + Send + 'static,
    T: Send + 'static,
{
    spawn_from_gvthread(SpawnOptions { prio: Priority::Normal, class: None, name: None }, f)
}

/// Like [`spawn`], with a scheduling priority.
///
/// # Panics
/// As [`spawn`].
#[track_caller]
pub fn spawn_with_priority<F, T>(priority: Priority, f: F) -> JoinHandle<T>
where
    F: FnOnce(CancellationToken) -> T + Send + 'static,
    T: Send + 'static,
{
    match spawn_from_gvthread(SpawnOptions { prio: priority, class: None, name: None }, f) {
        Ok(h) => h,
        Err(e) => panic!("gvthread::spawn_with_priority: {e}"),
    }
}

/// The id of the calling GVThread; `None` outside GVThreads.
pub fn current_id() -> Option<GVThreadId> {
    let (m, slot) = machine::current_gvthread()?;
    let generation =
        crate::task::state::generation(m.shared.slots.state(slot).load(std::sync::atomic::Ordering::Relaxed));
    Some(GVThreadId::new(slot, generation))
}

/// The cancellation token of the calling GVThread; `None` outside GVThreads.
pub fn current_token() -> Option<CancellationToken> {
    let (m, slot) = machine::current_gvthread()?;
    // SAFETY: the running GVThread's own header; only it touches its token.
    unsafe { (*(*m.shared.header(slot)).token.get()).clone() }
}
