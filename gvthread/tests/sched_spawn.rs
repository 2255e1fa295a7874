//! Spawning and joining at volume, yielding, stealing.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn hundred_thousand_spawns_joined() {
    let _w = common::watchdog("hundred_thousand_spawns_joined", Duration::from_secs(120));
    let mut rt = common::rt(2);
    let sum = rt.block_on(|| {
        let hs: Vec<_> = (0..100_000u64).map(|i| gvthread::spawn(move |_| i * 2)).collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    assert_eq!(sum, 100_000 * 99_999);
}

#[test]
fn yielding_gvthreads_all_finish() {
    let _w = common::watchdog("yielding_gvthreads_all_finish", Duration::from_secs(120));
    let mut rt = common::rt(2);
    let sum = rt.block_on(|| {
        let hs: Vec<_> = (0..1_000u64)
            .map(|i| {
                gvthread::spawn(move |_| {
                    let mut acc = 0;
                    for k in 0..200 {
                        acc += k;
                        gvthread::yield_now();
                    }
                    acc + i
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    assert_eq!(sum, 1_000 * 19_900 + 499_500);
}

#[test]
fn work_spreads_to_both_workers() {
    let _w = common::watchdog("work_spreads_to_both_workers", Duration::from_secs(60));
    let mut rt = common::rt(2);
    let threads = rt.block_on(|| {
        let seen = Arc::new(Mutex::new(HashSet::new()));
        // Spawned from one worker, so they start in its local queue: the other
        // worker only gets some by stealing or via the global queue.
        let hs: Vec<_> = (0..200)
            .map(|_| {
                let seen = seen.clone();
                gvthread::spawn(move |_| {
                    for _ in 0..50 {
                        seen.lock().unwrap().insert(std::thread::current().id());
                        // Keep the worker busy a little so the other one steals.
                        let t = std::time::Instant::now();
                        while t.elapsed() < Duration::from_micros(20) {}
                        gvthread::yield_now();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        seen.lock().unwrap().len()
    });
    // At least both workers; a spare thread may also appear if the OS
    // descheduled a worker long enough for the preemption monitor to hand
    // its role over.
    assert!(threads >= 2, "both workers should have run GVThreads, saw {threads} thread(s)");
}

#[test]
fn nested_spawns_form_a_tree() {
    let _w = common::watchdog("nested_spawns_form_a_tree", Duration::from_secs(60));
    fn fib(n: u64) -> u64 {
        if n < 2 {
            return n;
        }
        let a = gvthread::spawn(move |_| fib(n - 1));
        let b = fib(n - 2);
        a.join().unwrap() + b
    }
    let mut rt = common::rt(2);
    assert_eq!(rt.block_on(|| fib(20)), 6765);
}

#[test]
fn yield_outside_a_gvthread_is_harmless() {
    gvthread::yield_now();
    gvthread::sleep(Duration::from_millis(1));
}
