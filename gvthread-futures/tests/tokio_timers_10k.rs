//! 10,000 GVThreads each waiting on tokio timers, all parked at once.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use gvthread_futures::block_on;

const GVTHREADS: usize = 10_000;

#[test]
fn ten_thousand_gvthreads_await_tokio_timers_at_once() {
    let _dog = common::Watchdog::new("ten_thousand_gvthreads_await_tokio_timers_at_once", 60);
    let tokio = common::tokio_rt(1);
    let mut rt = common::gv_rt_in(&tokio, 2);

    let (sleeping, sum) = rt.block_on(|| {
        // Each GVThread counts itself as sleeping, then sleeps on tokio timers
        // until released. The main GVThread releases them only once all
        // 10,000 are counted: every one of them was parked in a tokio timer
        // at the same time, with no timing assumption.
        let sleeping = Arc::new(AtomicUsize::new(0));
        let max_seen = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = (0..GVTHREADS)
            .map(|i| {
                let (sleeping, max_seen, release) = (sleeping.clone(), max_seen.clone(), release.clone());
                gvthread::spawn(move |_| {
                    let now = sleeping.fetch_add(1, Ordering::SeqCst) + 1;
                    max_seen.fetch_max(now, Ordering::SeqCst);
                    let mut naps = 0;
                    while !release.load(Ordering::SeqCst) || naps == 0 {
                        block_on(tokio::time::sleep(Duration::from_millis(3)));
                        naps += 1;
                    }
                    sleeping.fetch_sub(1, Ordering::SeqCst);
                    i
                })
            })
            .collect();
        while sleeping.load(Ordering::SeqCst) < GVTHREADS {
            gvthread::sleep(Duration::from_millis(1));
        }
        release.store(true, Ordering::SeqCst);
        let sum: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        (max_seen.load(Ordering::SeqCst), sum)
    });
    assert_eq!(sleeping, GVTHREADS, "all GVThreads were sleeping at once");
    assert_eq!(sum, GVTHREADS * (GVTHREADS - 1) / 2);
}
