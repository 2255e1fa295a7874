//! `SchedulerConfig::worker_context`: one guard per worker role, made on the role's identity
//! thread (whose thread-locals every GVThread of the role uses) before any GVThread runs, and
//! dropped on that same thread at shutdown. GVThreads run inside the context whichever OS
//! thread runs them: one worker, and a GVThread blocked in a system call makes the runtime
//! hand the worker's queue to a spare thread.

mod common;

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use gvthread::{Runtime, SchedulerConfig};

/// A guard that is not `Send` (like tokio's `EnterGuard`) and records where it lives and dies.
struct Guard {
    made_on: ThreadId,
    log: Arc<Mutex<Vec<(ThreadId, ThreadId)>>>,
    _not_send: Rc<()>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.log.lock().unwrap().push((self.made_on, std::thread::current().id()));
    }
}

thread_local! {
    static IN_CONTEXT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[test]
fn one_guard_per_worker_seen_from_spares_too() {
    let _w = common::watchdog("one_guard_per_worker_seen_from_spares_too", Duration::from_secs(60));
    let made = Arc::new(Mutex::new(Vec::new()));
    let dropped = Arc::new(Mutex::new(Vec::new()));
    let (m, d) = (made.clone(), dropped.clone());
    let config = SchedulerConfig::default().num_workers(1).worker_context(move || {
        m.lock().unwrap().push(std::thread::current().name().unwrap_or("").to_string());
        IN_CONTEXT.with(|c| c.set(true));
        Guard { made_on: std::thread::current().id(), log: d.clone(), _not_send: Rc::new(()) }
    });
    let mut rt = Runtime::new(config);
    // Every GVThread runs inside the context, whichever thread runs it.
    let all_inside = rt.block_on(|| {
        let hs: Vec<_> = (0..50).map(|_| gvthread::spawn(|_| IN_CONTEXT.with(|c| c.get()))).collect();
        hs.into_iter().all(|h| h.join().unwrap())
    });
    assert!(all_inside);

    // A spare thread: a GVThread blocks its worker in a system call, the monitor hands the
    // worker's queue to a spare, and the GVThread queued behind it runs there, in context.
    let released = Arc::new(AtomicBool::new(false));
    let r = released.clone();
    let h = rt.handle();
    let blocker = h.spawn(move |_| {
        // Bounded: at most 10 s, normally a few time slices.
        for _ in 0..1000 {
            if r.load(Ordering::Acquire) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let behind = h.spawn(|_| (std::thread::current().name().unwrap_or("").to_string(), IN_CONTEXT.with(|c| c.get())));
    let (ran_on, inside) = behind.join().unwrap();
    released.store(true, Ordering::Release);
    blocker.join().unwrap();
    assert!(inside, "ran on {ran_on} outside the context");
    let spares = rt.metrics().os_threads;
    drop(rt);

    let made = made.lock().unwrap().clone();
    let dropped = dropped.lock().unwrap().clone();
    assert_eq!(made, vec!["gvthread-worker-0".to_string()], "one guard, on the role's thread");
    assert!(spares >= 2, "no spare thread was started for the blocked worker ({spares} threads)");
    assert_eq!(dropped.len(), made.len(), "every guard was dropped at shutdown");
    for (made_on, dropped_on) in dropped {
        assert_eq!(made_on, dropped_on, "a guard is dropped on the thread that made it");
    }
}
