//! `unblock`: running blocking calls on a bounded pool of OS threads.
//!
//! The pool is global (shared by every runtime), started lazily, and holds at
//! most [`MAX_THREADS`] threads; a thread that finds no work for
//! [`KEEP_ALIVE`] exits. Jobs wait in one FIFO queue.
//!
//! Bookkeeping, all under one mutex: `threads` counts live pool threads,
//! `idle` those waiting on the condition variable, `notified` the wake-ups
//! sent to idle threads and not yet taken. A submitter wakes an idle thread
//! if one is not already spoken for (`idle > notified`), else starts a thread
//! if below the cap, else leaves the job queued for the next thread that
//! finishes. A thread exits only when its wait timed out and the queue is
//! empty, both checked under the mutex, so a queued job always has a thread
//! that will see it.

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::sched::machine;
use crate::sched::park::{self, Waiter};

/// Most OS threads the pool runs at once.
const MAX_THREADS: usize = 64;
/// How long a pool thread waits for work before it exits.
const KEEP_ALIVE: Duration = Duration::from_secs(5);

type Job = Box<dyn FnOnce() + Send + 'static>;

struct Pool {
    state: Mutex<PoolState>,
    cv: Condvar,
}

struct PoolState {
    queue: VecDeque<Job>,
    threads: usize,
    idle: usize,
    notified: usize,
}

static POOL: Pool = Pool {
    state: Mutex::new(PoolState { queue: VecDeque::new(), threads: 0, idle: 0, notified: 0 }),
    cv: Condvar::new(),
};

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // Jobs run outside the lock and catch their own panics, so a poisoned
        // lock can only come from a bug here; the state is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `job`; hands it back if no pool thread exists or can be
    /// started, so the caller runs it itself.
    fn submit(&'static self, job: Job) -> Result<(), Job> {
        let mut st = self.lock();
        st.queue.push_back(job);
        if st.idle > st.notified {
            st.notified += 1;
            self.cv.notify_one();
            return Ok(());
        }
        if st.threads >= MAX_THREADS {
            return Ok(());
        }
        st.threads += 1;
        let spawned = std::thread::Builder::new().name("gvthread-unblock".into()).spawn(move || self.run());
        if spawned.is_err() {
            st.threads -= 1;
            if st.threads == 0 {
                // Nobody would ever run it; ours is the job pushed last.
                return Err(st.queue.pop_back().expect("job just queued"));
            }
        }
        Ok(())
    }

    /// Body of a pool thread.
    fn run(&self) {
        let mut st = self.lock();
        loop {
            if let Some(job) = st.queue.pop_front() {
                drop(st);
                job();
                st = self.lock();
                continue;
            }
            st.idle += 1;
            let (guard, timeout) = self.cv.wait_timeout(st, KEEP_ALIVE).unwrap_or_else(|e| e.into_inner());
            st = guard;
            st.idle -= 1;
            st.notified = st.notified.saturating_sub(1).min(st.idle);
            if timeout.timed_out() && st.queue.is_empty() {
                st.threads -= 1;
                return;
            }
        }
    }
}

/// Where a pool thread leaves the result for the caller.
struct Completion<R> {
    result: Mutex<Option<std::thread::Result<R>>>,
    waiter: Waiter,
}

/// Runs the blocking function `f` on a pool of OS threads and returns its
/// result; meanwhile only the calling GVThread waits, and its worker keeps
/// running other GVThreads.
///
/// Use it for calls that block the OS thread and have no gvthread or async
/// equivalent: `std::fs`, DNS lookups through `std::net::ToSocketAddrs`,
/// blocking FFI, long CPU-bound work that should not occupy a worker. Outside
/// a GVThread, `f` simply runs on the calling thread.
///
/// The pool is shared by the whole process, starts lazily, runs at most 64
/// threads (further calls queue until one is free), and threads idle for 5 s
/// exit. Because `f` runs on another OS thread, it must be `Send + 'static`,
/// and it sees that thread's thread-locals, not the caller's.
///
/// # Panics
/// A panic in `f` is caught on the pool thread and resumed in the caller.
///
/// ```
/// let mut rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(1));
/// let len = rt.block_on(|| {
///     // The worker keeps running other GVThreads while this one waits.
///     let ticker = gvthread::spawn(|_| (0..3).map(|_| gvthread::yield_now()).count());
///     let len = gvthread::unblock(|| {
///         std::thread::sleep(std::time::Duration::from_millis(5)); // stands in for blocking I/O
///         "read from disk".len()
///     });
///     assert_eq!(ticker.join().unwrap(), 3);
///
///     let caught = std::panic::catch_unwind(|| gvthread::unblock(|| -> u8 { panic!("boom") }));
///     assert!(caught.is_err()); // the pool thread's panic, resumed here
///     len
/// });
/// assert_eq!(len, 14);
/// ```
pub fn unblock<F, R>(f: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    if machine::current_gvthread().is_none() {
        return f();
    }
    let done = Arc::new(Completion { result: Mutex::new(None), waiter: Waiter::current() });
    let theirs = done.clone();
    let job: Job = Box::new(move || {
        let result = panic::catch_unwind(AssertUnwindSafe(f));
        *theirs.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
        // After the result is stored: the caller may now return and even end;
        // a wake for an ended GVThread is ignored.
        theirs.waiter.wake();
    });
    if let Err(job) = POOL.submit(job) {
        job();
    }
    let result = loop {
        if let Some(r) = done.result.lock().unwrap_or_else(|e| e.into_inner()).take() {
            break r;
        }
        park::park();
    };
    result.unwrap_or_else(|payload| panic::resume_unwind(payload))
}
