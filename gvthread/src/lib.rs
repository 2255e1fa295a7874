//! # gvthread: Go-style green threads for Rust, inside the async ecosystem
//!
//! gvthread runs millions of stackful GVThreads on a handful of OS threads.
//! GVThreads are written as plain blocking code (no `async`, no function
//! colouring); when one blocks on a channel, a mutex, a join, a sleep or a
//! future, only that GVThread waits and its worker thread runs others.
//!
//! ```
//! use gvthread::{Runtime, SchedulerConfig};
//! use std::time::Duration;
//!
//! let mut rt = Runtime::new(SchedulerConfig::default().num_workers(2));
//! let answer = rt.block_on(|| {
//!     let workers: Vec<_> = (0..1000u64)
//!         .map(|i| {
//!             gvthread::spawn(move |_token| {
//!                 gvthread::sleep(Duration::from_millis(1)); // parks only this GVThread
//!                 i
//!             })
//!         })
//!         .collect();
//!     workers.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
//! });
//! assert_eq!(answer, 499_500);
//! ```
//!
//! ## What is where
//!
//! | you want | use |
//! |---|---|
//! | a runtime | [`Runtime`], [`SchedulerConfig`], [`Runtime::block_on`] (a closure or a future), [`#[gvthread::main]`](macro@main), [`#[gvthread::test]`](macro@test) |
//! | to spawn | [`spawn`], [`try_spawn`], [`spawn_with_priority`], [`Handle`] (from any thread, async tasks included), [`Handle::current`] |
//! | to wait for a GVThread | [`JoinHandle::join`], or `.await` it from async code |
//! | to communicate | [`channel`] ([`Sender`], [`Receiver`], also as futures), [`SchedMutex`] |
//! | to stop work | [`CancellationToken`] (each GVThread gets a child of its spawner's), [`JoinHandle::cancel`] |
//! | to share the CPU | [`yield_now`], [`sleep`], [`safepoint!`]; forced preemption does the rest |
//! | futures inside GVThreads | `gvthread_futures::block_on`, and [`SchedulerConfig::worker_context`] for tokio |
//! | blocking calls | [`unblock`](fn@crate::unblock) |
//! | to see what GVThreads do | [`Handle::dump`] (and [`SchedulerConfig::dump_on_sigquit`]), [`Runtime::metrics`] |
//!
//! The internals (context switch, memory slots, scheduler, preemption,
//! timers) are private modules; `docs/architecture.md` describes them and
//! the designs that were rejected.
//!
//! ## Debugging: a dump of every GVThread
//!
//! [`Handle::dump`] lists every live GVThread: id, priority, state (running,
//! runnable, or parked and on what: channel, mutex, join, sleep, future,
//! unblock), how long parked ones have waited, and for those a symbolized
//! backtrace unwound from the saved context (`docs/debugging.md`). With
//! [`dump_on_sigquit(true)`](SchedulerConfig::dump_on_sigquit), `kill -QUIT
//! <pid>` (or Ctrl-\\) prints it on standard error, like Go's goroutine dump.
//!
//! ```text
//! gvthread-0.1 [Normal, worker 0] parked on channel [gvthread/src/sync/chan/mod.rs:471], for 2.113 s
//!    0: gvthread::sched::machine::switch_to
//!   ...
//!    3: myapp::wait_for_orders
//!         at src/orders.rs:42
//! ```
//!
//! ## Blocking: what waits
//!
//! | call | inside a GVThread | on any other thread |
//! |---|---|---|
//! | `JoinHandle::join`, `sleep`, channel `send`/`recv`, `SchedMutex::lock`, `block_on` | only the GVThread parks | the OS thread parks |
//! | `yield_now` | other GVThreads run | `std::thread::yield_now` |
//! | `unblock(f)` | `f` runs on a helper OS thread; the GVThread parks | `f` runs inline |
//! | std blocking calls (`std::fs`, `std::thread::sleep`, `std::sync::Mutex`) | the worker OS thread blocks; after a time slice its role moves to a spare thread | the OS thread blocks |
//!
//! See `docs/architecture.md` for the life of a GVThread and the designs that
//! were rejected, and `docs/safety.md` for what stays the user's
//! responsibility (thread-locals and std locks held across blocking calls,
//! FFI, `fork()`).
//!
//! ## Platform
//!
//! Linux on x86_64 and on aarch64 (with the kernel's usual 4 KiB pages); any
//! other target fails to compile with an error naming these. Guard pages use
//! guard markers on Linux 6.13+ and fall back to `mprotect` (bounded by
//! `vm.max_map_count`) on older kernels, and wherever a probe cannot prove
//! that a marker faults (under qemu-user, for one).
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod arch;
mod debug;
mod future;
mod loom;
mod memory;
mod preempt;
mod runtime;
mod sched;
mod sync;
mod task;
mod timer;
mod util;

pub use preempt::alloc::NonPreemptibleAlloc;
pub use preempt::no_preempt;
pub use runtime::block_on::{Async, BlockOn, Closure};
pub use runtime::config::{DEFAULT_MAX_GVTHREADS, DEFAULT_THREADS_PER_WORKER, MAX_WORKERS, SchedulerConfig};
pub use runtime::error::{RuntimeError, SpawnError};
pub use runtime::handle::{Handle, current_id, current_token, spawn, spawn_with_priority, try_spawn};
pub use runtime::metrics::{RESTORE_LATENCY_BUCKETS, RuntimeMetrics};
pub use runtime::runtime::Runtime;
pub use sched::park::{sleep, yield_now};
pub use sync::cancel::CancellationToken;
pub use sync::cancel::{Cancelled, sleep_or_cancelled};
pub use sync::chan::{
    IntoIter, Iter, Receiver, RecvError, RecvFut, RecvTimeoutError, SendError, SendFut, SendTimeoutError, Sender,
    TryIter, TryRecvError, TrySendError, channel,
};
pub use sync::chan::{RecvCancelError, SendCancelError, unbounded};
pub use sync::mutex::{SchedMutex, SchedMutexGuard};
pub use sync::select::{Select, SelectTimeoutError, SelectedOperation, TrySelectError};
pub use task::builder::Builder;
pub use task::id::GVThreadId;
pub use task::join::{JoinError, JoinHandle};
pub use task::local::LocalKey;
pub use task::priority::Priority;

pub use future::unblock;
/// Runs `main` (sync or `async`) as a GVThread on a fresh runtime. A `main`
/// returning `Result<(), E>` reports errors like std's. The options are
/// listed below.
///
/// ```
/// #[gvthread::main(workers = 2)]
/// fn main() {
///     let h = gvthread::spawn(|_| 21 * 2);
///     assert_eq!(h.join().unwrap(), 42);
/// }
/// ```
///
/// ```
/// #[gvthread::main]
/// async fn main() {
///     // An async body is driven by block_on inside a GVThread.
///     let v = gvthread::spawn(|_| 7).await.unwrap();
///     assert_eq!(v, 7);
/// }
/// ```
pub use gvthread_macros::main;
/// Like `#[test]`, but the test body runs as a GVThread on its own runtime
/// (sync or `async`; same options as [`main`](macro@main)).
///
/// ```
/// #[gvthread::test(workers = 2)]
/// fn spawns_and_joins() {
///     assert_eq!(gvthread::spawn(|_| 1).join().unwrap(), 1);
/// }
/// ```
pub use gvthread_macros::test;

/// Items used by macro expansions and sibling crates; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::future::block_on as block_on_future;
    pub use crate::preempt::safepoint_check;
    pub use crate::sync::cancel::CancelArm;
    pub use crate::sync::chan::{RecvArm, SendArm};
    pub use crate::sync::select::{Mode as SelectMode, SelectArm, run as select_run};
}

/// A cooperative preemption point: yields if the preemption monitor has asked
/// this GVThread to (it has used up its time slice). It only polls that
/// request: it does not count as progress, so a loop full of safepoints is
/// still asked to yield after a time slice. Costs a couple of nanoseconds
/// when no preemption is pending. Put it in long loops
/// that make no blocking gvthread calls; forced preemption (on by default)
/// covers code without safepoints, at a higher price.
///
/// ```
/// let mut rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(1));
/// let n = rt.block_on(|| {
///     let mut acc = 0u64;
///     for i in 0..100_000u64 {
///         gvthread::safepoint!();
///         acc = acc.wrapping_add(i * i);
///     }
///     acc
/// });
/// assert_eq!(n, 333_328_333_350_000);
/// ```
#[macro_export]
macro_rules! safepoint {
    () => {
        $crate::__private::safepoint_check()
    };
}

/// The README's example, compiled and run as a doctest so it stays true.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
