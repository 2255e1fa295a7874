//! `block_on`: a future's output from blocking code.

use std::future::Future;

/// Runs `future` to completion and returns its output.
///
/// Inside a GVThread, only that GVThread waits between polls: its worker OS
/// thread runs other GVThreads, and the future's `Waker` (which any thread may
/// wake, any number of times, even after the GVThread ended) makes it runnable
/// again. Elsewhere (`main`, a `std::thread`) the OS thread parks.
///
/// The future is polled on the caller's stack, so it need not be `Send`, and
/// `block_on` may be nested. A future that is ready on its first poll costs a
/// few nanoseconds and no allocation.
///
/// Futures of tokio-based libraries need tokio's context on the thread that
/// polls them. Without it they panic with "there is no reactor running, must
/// be called from the context of a Tokio 1.x runtime". Fix: build the
/// gvthread runtime with
/// `SchedulerConfig::default().worker_context(move || handle.enter())` (with
/// `handle` a `&'static tokio::runtime::Handle` of a multi-thread tokio
/// runtime), so that every worker and spare thread is inside it; see
/// `docs/tokio.md`.
///
/// Do not call it on a thread that drives the future's own executor (for
/// example, a tokio worker thread outside any GVThread, where `block_on`
/// would park that worker); inside GVThreads it is always fine.
///
/// ```
/// use std::rc::Rc;
///
/// let mut rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(1));
/// let n = rt.block_on(|| {
///     let (tx, rx) = futures::channel::oneshot::channel();
///     // Another GVThread completes the future while this one is parked.
///     gvthread::spawn(move |_| tx.send(20).unwrap());
///     let local = Rc::new(1); // !Send state is fine: the future stays here
///     gvthread_futures::block_on(async move { rx.await.unwrap() + *local * 2 })
/// });
/// assert_eq!(n, 22);
///
/// // Outside GVThreads it blocks the OS thread.
/// assert_eq!(gvthread_futures::block_on(async { 5 }), 5);
/// ```
#[inline]
pub fn block_on<F: Future>(future: F) -> F::Output {
    gvthread::__private::block_on_future(future)
}
