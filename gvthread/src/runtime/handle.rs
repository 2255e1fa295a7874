//! Handles and the free spawn functions.

use std::fmt;
use std::sync::Arc;

use super::error::SpawnError;
use super::shared::Shared;
use crate::sched::machine;
use crate::sync::cancel::CancellationToken;
use crate::task::id::GVThreadId;
use crate::task::join::JoinHandle;
use crate::task::priority::Priority;
use crate::task::spawn::spawn_on;

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
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce(CancellationToken) -> T + Send + 'static,
        T: Send + 'static,
    {
        self.try_spawn(f).unwrap_or_else(|e| panic!("{e}"))
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

    /// The handle of the runtime running the calling GVThread, if any.
    pub fn try_current() -> Option<Handle> {
        machine::current_gvthread().map(|(m, _)| Handle { shared: m.shared.clone() })
    }

    /// Number of GVThreads alive in this runtime.
    pub fn live_gvthreads(&self) -> usize {
        self.shared.live.load(std::sync::atomic::Ordering::Relaxed)
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

fn current_shared() -> Result<Arc<Shared>, SpawnError> {
    machine::current_gvthread().map(|(m, _)| m.shared.clone()).ok_or(SpawnError::NoRuntime)
}

/// Spawns a GVThread on the runtime of the calling GVThread.
///
/// The closure receives the new GVThread's [`CancellationToken`], a child of
/// the caller's.
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
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce(CancellationToken) -> T + Send + 'static,
    T: Send + 'static,
{
    try_spawn(f).unwrap_or_else(|e| panic!("gvthread::spawn: {e}"))
}

/// Spawns a GVThread on the caller's runtime, or says why not: not inside a
/// GVThread, `max_gvthreads` reached, shutting down, or no memory.
pub fn try_spawn<F, T>(f: F) -> Result<JoinHandle<T>, SpawnError>
where
    F: FnOnce(CancellationToken) -> T + Send + 'static,
    T: Send + 'static,
{
    spawn_on(&current_shared()?, Priority::Normal, f)
}

/// Like [`spawn`], with a scheduling priority.
pub fn spawn_with_priority<F, T>(priority: Priority, f: F) -> JoinHandle<T>
where
    F: FnOnce(CancellationToken) -> T + Send + 'static,
    T: Send + 'static,
{
    current_shared()
        .and_then(|s| spawn_on(&s, priority, f))
        .unwrap_or_else(|e| panic!("gvthread::spawn_with_priority: {e}"))
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
