//! `SchedulerConfig::worker_context`: one guard per worker and spare OS thread, made before it
//! runs GVThreads, dropped on that same thread when it stops.

mod common;

use std::rc::Rc;
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
    let config = SchedulerConfig::default().num_workers(2).worker_context(move || {
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
    drop(rt);
    let made = made.lock().unwrap().clone();
    let dropped = dropped.lock().unwrap().clone();
    // Both workers and the spare (started with the runtime) made one guard each.
    assert_eq!(made.iter().filter(|n| n.starts_with("gvthread-worker-")).count(), 2, "{made:?}");
    assert!(made.iter().any(|n| n == "gvthread-spare"), "{made:?}");
    assert_eq!(dropped.len(), made.len(), "every guard was dropped at shutdown");
    for (made_on, dropped_on) in dropped {
        assert_eq!(made_on, dropped_on, "a guard is dropped on the thread that made it");
    }
}
