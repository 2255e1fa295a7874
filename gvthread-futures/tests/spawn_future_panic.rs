//! A panicking future in `spawn_future` comes back through the join.

mod common;

use gvthread_futures::{block_on, spawn_future, spawn_future_on};

#[test]
fn panicking_future_comes_back_as_join_error_is_panic() {
    let _dog = common::Watchdog::new("panicking_future_comes_back_as_join_error_is_panic", 60);
    let mut rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(2));
    rt.block_on(|| {
        let bad = spawn_future(async {
            let (tx, rx) = futures::channel::oneshot::channel::<u32>();
            gvthread::spawn(move |_| tx.send(1).unwrap());
            let v = rx.await.unwrap(); // panics after a real park, not on the first poll
            if v == 1 {
                panic!("future failed with {v}");
            }
            v
        });
        let err = bad.join().unwrap_err();
        assert!(err.is_panic());
        assert!(!err.is_cancelled());
        let payload = err.into_panic();
        assert_eq!(payload.downcast_ref::<String>().map(String::as_str), Some("future failed with 1"));

        // The runtime is unaffected: later futures run normally.
        assert_eq!(spawn_future(async { 9 }).join().unwrap(), 9);
    });
}

#[test]
fn panicking_future_awaited_from_async_code() {
    let _dog = common::Watchdog::new("panicking_future_awaited_from_async_code", 60);
    let rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(1));
    let handle = rt.handle();
    let err = block_on(async move { spawn_future_on(&handle, async { panic!("async boom") }).await }).unwrap_err();
    assert!(err.is_panic());
}

#[test]
fn spawn_future_outside_a_gvthread_panics_with_a_clear_message() {
    let caught = std::panic::catch_unwind(|| spawn_future(async { 1 })).unwrap_err();
    let msg = caught.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(msg.contains("outside a GVThread"), "{msg}");
}
