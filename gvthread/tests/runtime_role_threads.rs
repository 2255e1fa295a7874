//! A runtime's worker threads never exit: when it stops they go back to a
//! process-wide pool, and a later runtime takes them (`docs/safety.md`,
//! "Thread-locals and thread-bound values across blocking calls"). So
//! thread-local destructors never run on them.
//!
//! One test in this binary: the pool is process-wide, and another test's
//! runtime could take the thread this one looks for.

mod common;

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gvthread::{Runtime, SchedulerConfig};

static DROPPED: AtomicU64 = AtomicU64::new(0);

struct Counted(Cell<u64>);
impl Drop for Counted {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

thread_local! {
    static TOUCHED: Counted = const { Counted(Cell::new(0)) };
}

fn comm(tid: i64) -> Option<String> {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).ok().map(|s| s.trim_end().to_string())
}

/// The OS thread of the only worker, after touching `TOUCHED` there.
fn worker_thread_of(rt: &mut Runtime) -> (i64, Option<String>) {
    rt.block_on(|| {
        TOUCHED.with(|t| t.0.set(t.0.get() + 1));
        (common::os_thread_id(), std::thread::current().name().map(String::from))
    })
}

#[test]
fn worker_threads_outlive_their_runtime_and_serve_the_next_one() {
    let _w = common::watchdog("worker_threads_outlive_their_runtime", Duration::from_secs(60));
    let config = || SchedulerConfig::default().num_workers(1);
    let mut rt = Runtime::new(config());
    let (first, name) = worker_thread_of(&mut rt);
    assert_eq!(name.as_deref(), Some("gvthread-worker-0"));
    drop(rt);

    // Still there, asleep in the pool under its pool name; its thread-local
    // was not dropped (the thread did not exit).
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(comm(first).as_deref(), Some("gvthread-pooled"), "the worker thread exited or kept its name");
    assert_eq!(DROPPED.load(Ordering::Relaxed), 0, "a thread-local destructor ran on a worker thread");

    // The next runtime's worker of the same name is that thread, with its
    // name back and its thread-local value as the first runtime left it.
    let mut rt = Runtime::new(config());
    let (second, name) = worker_thread_of(&mut rt);
    assert_eq!(second, first, "the second runtime started a new thread");
    assert_eq!(name.as_deref(), Some("gvthread-worker-0"));
    assert_eq!(comm(first).as_deref(), Some("gvthread-worker"), "the kernel name (15 bytes) was not restored");
    let touched = rt.block_on(|| TOUCHED.with(|t| t.0.get()));
    assert_eq!(touched, 2, "the thread-local was reset between runtimes");
    drop(rt);
    assert_eq!(DROPPED.load(Ordering::Relaxed), 0);
}
