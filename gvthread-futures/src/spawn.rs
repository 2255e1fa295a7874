//! Spawning GVThreads that drive futures.

use std::future::Future;

use gvthread::{Handle, JoinHandle};

use crate::block_on;

/// Spawns a GVThread, on the caller's runtime, that drives `future` to
/// completion with [`block_on()`]; the handle joins it (`.join()` from blocking
/// code, `.await` from async code).
///
/// A panic in the future ends that GVThread only; it comes back through the
/// join as a [`JoinError`](gvthread::JoinError) whose `is_panic()` is true.
///
/// # Panics
/// Outside a GVThread (there is no runtime to spawn on: use
/// [`spawn_future_on`] with a [`Handle`]), and when the runtime refuses the
/// spawn, as [`gvthread::spawn`] does.
///
/// ```
/// let mut rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(2));
/// rt.block_on(|| {
///     let ok = gvthread_futures::spawn_future(async { "done" });
///     assert_eq!(ok.join().unwrap(), "done");
///
///     let bad = gvthread_futures::spawn_future(async { panic!("boom") });
///     assert!(bad.join().unwrap_err().is_panic());
/// });
/// ```
pub fn spawn_future<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let Some(handle) = Handle::try_current() else {
        panic!("gvthread_futures::spawn_future called outside a GVThread; use spawn_future_on(&handle, future)")
    };
    spawn_future_on(&handle, future)
}

/// Like [`spawn_future`], on the runtime of `handle`; callable from any
/// thread, async tasks on other executors included.
///
/// # Panics
/// When the runtime refuses the spawn (full, shutting down, out of memory),
/// as [`Handle::spawn`] does.
///
/// ```
/// let rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(1));
/// let handle = rt.handle();
/// let joined = futures::executor::block_on(async move {
///     gvthread_futures::spawn_future_on(&handle, async { 6 * 7 }).await
/// });
/// assert_eq!(joined.unwrap(), 42);
/// ```
pub fn spawn_future_on<F>(handle: &Handle, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    handle.spawn(move |_token| block_on(future))
}
