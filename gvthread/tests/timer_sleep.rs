//! Sleeping parks only the GVThread; wake order follows deadlines.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn sleep_lasts_at_least_the_duration() {
    let mut rt = common::rt(1);
    let elapsed = rt.block_on(|| {
        let t = Instant::now();
        gvthread::sleep(Duration::from_millis(30));
        t.elapsed()
    });
    assert!(elapsed >= Duration::from_millis(30), "{elapsed:?}");
}

#[test]
fn sleepers_wake_in_deadline_order() {
    let _w = common::watchdog("sleepers_wake_in_deadline_order", Duration::from_secs(60));
    // One worker: wake order is exactly the order the timer makes them runnable.
    let mut rt = common::rt(1);
    let order = rt.block_on(|| {
        let order = Arc::new(Mutex::new(Vec::new()));
        // Deadlines 20 ms apart: far more than timer jitter.
        let hs: Vec<_> = [5u64, 1, 4, 2, 3]
            .into_iter()
            .map(|k| {
                let order = order.clone();
                gvthread::spawn(move |_| {
                    gvthread::sleep(Duration::from_millis(20 * k));
                    order.lock().unwrap().push(k);
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        order.lock().unwrap().clone()
    });
    assert_eq!(order, vec![1, 2, 3, 4, 5]);
}

#[test]
fn sleeping_gvthread_does_not_block_its_worker() {
    let _w = common::watchdog("sleeping_gvthread_does_not_block_its_worker", Duration::from_secs(60));
    let mut rt = common::rt(1);
    rt.block_on(|| {
        let sleeper = gvthread::spawn(|_| gvthread::sleep(Duration::from_millis(200)));
        // On the single worker, this runs while the sleeper sleeps.
        let worker = gvthread::spawn(|_| (0..1000u64).sum::<u64>());
        assert_eq!(worker.join().unwrap(), 499_500);
        assert!(!sleeper.is_finished(), "the sleeper should still be asleep");
        sleeper.join().unwrap();
    });
}

#[test]
fn ten_thousand_overlapping_sleeps() {
    let _w = common::watchdog("ten_thousand_overlapping_sleeps", Duration::from_secs(120));
    let mut rt = common::rt(2);
    let n = rt.block_on(|| {
        let hs: Vec<_> = (0..10_000u64)
            .map(|i| gvthread::spawn(move |_| gvthread::sleep(Duration::from_millis(1 + i % 20))))
            .collect();
        hs.into_iter().map(|h| h.join().is_ok() as u32).sum::<u32>()
    });
    assert_eq!(n, 10_000);
}

#[test]
fn zero_sleep_is_a_yield() {
    let mut rt = common::rt(1);
    rt.block_on(|| gvthread::sleep(Duration::ZERO));
}

#[test]
fn sleeping_forever_is_ended_by_shutdown() {
    let _w = common::watchdog("sleeping_forever_is_ended_by_shutdown", Duration::from_secs(60));
    let rt = common::rt(1);
    let h = rt.handle().spawn(|_| gvthread::sleep(Duration::MAX));
    std::thread::sleep(Duration::from_millis(20));
    drop(rt);
    assert!(h.join().unwrap_err().is_cancelled());
}
