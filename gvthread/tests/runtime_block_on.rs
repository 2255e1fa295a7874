//! The "first hour" API: `block_on` with closures and futures, `Handle::current`,
//! `Handle::spawn_with_priority`, panics located at the caller, metrics right after `block_on`.

mod common;

use std::time::Duration;

use gvthread::{Handle, Priority, Runtime, SchedulerConfig};

#[test]
fn block_on_runs_closures_and_futures() {
    let _w = common::watchdog("block_on_runs_closures_and_futures", Duration::from_secs(60));
    let mut rt = common::rt(2);
    assert_eq!(rt.block_on(|| 1 + 1), 2);
    assert_eq!(rt.block_on(async { 3 }), 3);
    // The future runs inside a GVThread: it can use gvthread calls and await GVThreads.
    let inside = rt.block_on(async {
        let id = gvthread::current_id();
        let joined = gvthread::spawn(|_| 5).await.unwrap();
        (id.is_some(), joined)
    });
    assert_eq!(inside, (true, 5));
    // A panic in the future resumes on the caller.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(async { panic!("boom") })));
    assert!(r.is_err());
}

#[test]
fn no_gvthread_is_live_once_block_on_returns() {
    let _w = common::watchdog("no_gvthread_is_live_once_block_on_returns", Duration::from_secs(60));
    let mut rt = common::rt(2);
    for i in 0..200u32 {
        assert_eq!(rt.block_on(move || i), i);
        assert_eq!(rt.metrics().live_gvthreads, 0, "after block_on #{i}");
        rt.block_on(async {});
        assert_eq!(rt.handle().live_gvthreads(), 0, "after async block_on #{i}");
    }
}

#[test]
fn handle_current_and_spawn_with_priority() {
    let _w = common::watchdog("handle_current_and_spawn_with_priority", Duration::from_secs(60));
    let mut rt = common::rt(1);
    let v = rt.block_on(|| {
        let h = Handle::current();
        h.spawn_with_priority(Priority::High, |_| 7).join().unwrap()
    });
    assert_eq!(v, 7);
    let h = rt.handle().spawn_with_priority(Priority::Low, |_| 8);
    assert_eq!(h.join().unwrap(), 8);
    // Handle::block_on from a plain thread and from a GVThread.
    let handle = rt.handle();
    assert_eq!(std::thread::spawn(move || handle.block_on(async { 9 })).join().unwrap(), 9);
    assert_eq!(rt.block_on(|| Handle::current().block_on(|| 10)), 10);
}

#[test]
#[allow(clippy::redundant_closure)] // closures, so that the callers are the lines below
fn panics_outside_a_runtime_point_at_the_caller() {
    let location = std::sync::Arc::new(std::sync::Mutex::new(None));
    let l = location.clone();
    let previous = std::panic::take_hook();
    let me = std::thread::current().id();
    // Other tests of this binary panic on their own threads: record only ours.
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() == me {
            *l.lock().unwrap() = info.location().map(|l| (l.file().to_string(), l.line()));
        }
    }));
    let r = std::panic::catch_unwind(|| gvthread::spawn(|_| ()));
    let current_line = line!() + 1;
    let r2 = std::panic::catch_unwind(|| Handle::current());
    std::panic::set_hook(previous);
    assert!(r.is_err() && r2.is_err());
    // The last panic recorded is Handle::current's.
    let (file, at) = location.lock().unwrap().clone().expect("a location");
    assert!(file.ends_with("runtime_block_on.rs"), "{file}");
    assert_eq!(at, current_line);
}

#[test]
fn block_on_of_a_shut_down_runtime_panics_clearly() {
    let rt = Runtime::new(SchedulerConfig::default().num_workers(1));
    let handle = rt.handle();
    rt.shutdown_timeout(Duration::from_secs(1));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || handle.block_on(|| 1)));
    let msg = r.unwrap_err().downcast::<String>().map(|s| *s).unwrap_or_default();
    assert!(msg.contains("shutting down"), "{msg}");
}
