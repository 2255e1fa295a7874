//! # gvthread-futures: GVThreads and futures, both ways
//!
//! gvthread's GVThreads are written as plain blocking code; this crate lets
//! them meet `async` code in both directions:
//!
//! | you have | you want | use |
//! |---|---|---|
//! | a future, in a GVThread | its output, blocking only this GVThread | [`block_on()`] |
//! | a future | a GVThread driving it, joinable | [`spawn_future`], [`spawn_future_on`] |
//! | async code | a GVThread's result | `.await` the [`gvthread::JoinHandle`] (it is a `Future`) |
//! | a blocking call, in a GVThread | not to stall the worker | [`gvthread::unblock`] |
//! | a channel, in async code | one value | `rx.recv_async().await`, `tx.send_async(v).await` |
//! | a channel, in async code | a `Stream` / a `Sink` | [`RecvStream`], [`SendSink`] ([`ReceiverExt`], [`SenderExt`]) |
//!
//! ```
//! use gvthread::{Runtime, SchedulerConfig};
//!
//! let mut rt = Runtime::new(SchedulerConfig::default().num_workers(2));
//! let total = rt.block_on(|| {
//!     // Futures inside GVThreads: only the GVThread waits between polls.
//!     let h = gvthread_futures::spawn_future(async { 20 + 1 });
//!     let twice = gvthread_futures::block_on(async move { h.await.unwrap() * 2 });
//!     twice
//! });
//! assert_eq!(total, 42);
//! ```
//!
//! ## With tokio
//!
//! Futures that need tokio's context (tokio timers, `tokio::net`, and the
//! libraries built on them) work inside GVThreads once every gvthread worker
//! has entered a multi-thread tokio runtime; see `docs/tokio.md` for the
//! recipe and its caveats. In short:
//!
//! ```
//! let tokio_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
//! let handle: &'static tokio::runtime::Handle = Box::leak(Box::new(tokio_rt.handle().clone()));
//! let config = gvthread::SchedulerConfig::default()
//!     .num_workers(2)
//!     .worker_context(move || handle.enter()); // tokio's context on every worker and spare thread
//! let mut rt = gvthread::Runtime::new(config);
//! rt.block_on(|| {
//!     gvthread_futures::block_on(tokio::time::sleep(std::time::Duration::from_millis(1)));
//! });
//! // Runtime::block_on also takes the async body itself.
//! rt.block_on(async { tokio::time::sleep(std::time::Duration::from_millis(1)).await });
//! ```
//!
//! Without that context, tokio resources panic with "there is no reactor running, must be called
//! from the context of a Tokio 1.x runtime"; the fix is the `worker_context` line above.
//!
//! ## How `block_on` waits
//!
//! The future is pinned and polled on the GVThread's own stack. Its `Waker`
//! refers to one incarnation of the GVThread (runtime, slot, generation):
//! waking it from any thread makes the GVThread runnable again, and a wake
//! that arrives after the GVThread ended, or after its slot was reused by a
//! new GVThread, is ignored. Outside GVThreads `block_on` parks the OS thread
//! like `futures::executor::block_on`.
#![warn(missing_docs)]

mod block_on;
mod chan;
mod spawn;

pub use block_on::block_on;
pub use chan::{ReceiverExt, RecvStream, SendSink, SenderExt};
pub use spawn::{spawn_future, spawn_future_on};
