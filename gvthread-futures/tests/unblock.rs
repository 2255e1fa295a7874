//! `gvthread::unblock`: blocking calls on the pool, the worker keeps going.

mod common;

use std::sync::mpsc;
use std::time::Duration;

#[test]
fn unblock_parks_only_the_gvthread() {
    let _dog = common::Watchdog::new("unblock_parks_only_the_gvthread", 60);
    // One worker. The closure blocks its OS thread until a GVThread on that
    // same worker sends: it can only finish if the worker is not blocked.
    let mut rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(1));
    let got = rt.block_on(|| {
        let (tx, rx) = mpsc::channel::<u32>();
        let sender = gvthread::spawn(move |_| {
            gvthread::yield_now();
            tx.send(7).unwrap();
        });
        let got = gvthread::unblock(move || rx.recv().unwrap());
        sender.join().unwrap();
        got
    });
    assert_eq!(got, 7);
}

#[test]
fn unblock_resumes_panics_in_the_caller() {
    let _dog = common::Watchdog::new("unblock_resumes_panics_in_the_caller", 60);
    let mut rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(1));
    rt.block_on(|| {
        let caught = std::panic::catch_unwind(|| gvthread::unblock(|| -> u32 { panic!("pool boom") })).unwrap_err();
        assert_eq!(caught.downcast_ref::<&str>(), Some(&"pool boom"));
        // The pool survives.
        assert_eq!(gvthread::unblock(|| 3), 3);
    });
    let err = rt.block_on(|| gvthread::spawn(|_| gvthread::unblock(|| -> u32 { panic!("in a child") })).join());
    assert!(err.unwrap_err().is_panic());
}

#[test]
fn many_unblocks_beyond_the_pool_size() {
    let _dog = common::Watchdog::new("many_unblocks_beyond_the_pool_size", 60);
    let mut rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(2));
    let total = rt.block_on(|| {
        let handles: Vec<_> = (0..300u64)
            .map(|i| {
                gvthread::spawn(move |_| {
                    gvthread::unblock(move || {
                        std::thread::sleep(Duration::from_millis(1));
                        i
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    assert_eq!(total, 300 * 299 / 2);
}

#[test]
fn unblock_on_a_plain_thread_runs_inline() {
    let me = std::thread::current().id();
    assert!(gvthread::unblock(move || std::thread::current().id() == me));
}
