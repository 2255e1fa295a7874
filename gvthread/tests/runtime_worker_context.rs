//! `SchedulerConfig::worker_context`: one guard per worker and spare OS thread, made before it
//! runs GVThreads, dropped on that same thread when it stops (one worker; a GVThread blocked
//! in a system call makes the runtime start a spare for its queue).

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
fn a_guard_per_machine_thread_dropped_on_that_thread() {
    let _w = common::watchdog("a_guard_per_machine_thread_dropped_on_that_thread", Duration::from_secs(60));
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
    drop(rt);

    let made = made.lock().unwrap().clone();
    let dropped = dropped.lock().unwrap().clone();
    assert_eq!(made.iter().filter(|n| n.starts_with("gvthread-worker-")).count(), 1, "{made:?}");
    assert!(made.iter().any(|n| n.starts_with("gvthread-spare")), "the spare made a guard too: {made:?}");
    assert_eq!(dropped.len(), made.len(), "every guard was dropped at shutdown");
    for (made_on, dropped_on) in dropped {
        assert_eq!(made_on, dropped_on, "a guard is dropped on the thread that made it");
    }
}
