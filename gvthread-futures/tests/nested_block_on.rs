//! `block_on` inside a future driven by `block_on`.
//!
//! The outer future is woken while the inner call has the GVThread parked:
//! the inner call consumes the GVThread-level wake, and the outer call must
//! still notice it (each call has its own flag) instead of parking forever.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::channel::oneshot;
use gvthread_futures::block_on;

/// Outer future: waits on `rx_outer` and, concurrently, runs a nested
/// `block_on` on `rx_inner`. The helper completes `rx_outer` while the nested
/// call is running, then `rx_inner`.
fn scenario(spawn_helper: impl FnOnce(Box<dyn FnOnce() + Send>)) -> (u32, u32) {
    let (tx_outer, rx_outer) = oneshot::channel::<u32>();
    let (tx_inner, rx_inner) = oneshot::channel::<u32>();
    let inner_started = Arc::new(AtomicBool::new(false));
    let started = inner_started.clone();
    spawn_helper(Box::new(move || {
        while !started.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        tx_outer.send(1).unwrap();
        gvthread::yield_now();
        tx_inner.send(2).unwrap();
    }));
    block_on(async move {
        futures::join!(async { rx_outer.await.unwrap() }, async {
            block_on(async {
                inner_started.store(true, Ordering::SeqCst);
                rx_inner.await.unwrap()
            })
        })
    })
}

#[test]
fn nested_block_on_inside_a_gvthread() {
    let _dog = common::Watchdog::new("nested_block_on_inside_a_gvthread", 60);
    let mut rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(2));
    for _ in 0..200 {
        let out = rt.block_on(|| {
            scenario(|helper| {
                gvthread::spawn(move |_| helper());
            })
        });
        assert_eq!(out, (1, 2));
    }
}

#[test]
fn nested_block_on_on_a_plain_thread() {
    let _dog = common::Watchdog::new("nested_block_on_on_a_plain_thread", 60);
    for _ in 0..200 {
        let out = scenario(|helper| {
            std::thread::spawn(helper);
        });
        assert_eq!(out, (1, 2));
    }
}

#[test]
fn deeply_nested_block_on() {
    fn depth(n: u32) -> u32 {
        if n == 0 { 0 } else { block_on(async move { depth(n - 1) + 1 }) }
    }
    let mut rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(1));
    assert_eq!(rt.block_on(|| depth(50)), 50);
}
