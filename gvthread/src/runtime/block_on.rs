//! What [`Runtime::block_on`](crate::Runtime::block_on) accepts: a closure or
//! a future.
//!
//! One trait, [`BlockOn`], with two implementations: one for closures
//! (`FnOnce() -> R`) and one for futures. A type could in principle be both,
//! so the two implementations are told apart by a marker type parameter
//! ([`Closure`] or [`Async`]) that the compiler infers: a closure is never a
//! future and an `async` block is never a closure, so exactly one
//! implementation applies to every argument users write, and no call needs
//! to name the marker.
//!
//! `rt.block_on(|| async { .. })` (what rustc suggests when an `async` block
//! is passed where a closure is expected) is a closure returning a future:
//! it runs the closure and hands back the *unpolled* future. The compiler
//! flags that value ("futures do nothing unless you `.await` or poll them",
//! the `unused_must_use` lint); pass the `async` block itself instead.

use std::future::Future;

use crate::sync::cancel::CancellationToken;

/// Marker for [`BlockOn`] implemented by closures.
#[derive(Debug)]
pub enum Closure {}

/// Marker for [`BlockOn`] implemented by futures.
#[derive(Debug)]
pub enum Async {}

mod sealed {
    pub trait Sealed<M> {}
}

/// Something [`Runtime::block_on`](crate::Runtime::block_on) can run as a
/// GVThread: a closure `FnOnce() -> R` (marker [`Closure`]) or a future
/// (marker [`Async`], driven by `block_on` inside the GVThread, so it may
/// await GVThread joins, channels and tokio-based futures alike).
///
/// Sealed: implemented for every closure and every future, nothing else.
///
/// ```
/// let mut rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(1));
/// assert_eq!(rt.block_on(|| 6 * 7), 42);
/// assert_eq!(rt.block_on(async { 6 * 7 }), 42);
/// ```
pub trait BlockOn<M>: sealed::Sealed<M> + Send + 'static {
    /// What the GVThread returns.
    type Output: Send + 'static;

    /// Runs `self` on the calling GVThread.
    #[doc(hidden)]
    fn run(self, token: CancellationToken) -> Self::Output;
}

impl<F, R> sealed::Sealed<Closure> for F
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
}

impl<F, R> BlockOn<Closure> for F
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    type Output = R;

    fn run(self, _token: CancellationToken) -> R {
        self()
    }
}

impl<F> sealed::Sealed<Async> for F
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
}

impl<F> BlockOn<Async> for F
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    type Output = F::Output;

    fn run(self, _token: CancellationToken) -> F::Output {
        crate::future::block_on(self)
    }
}
