//! Everything at once on two workers: spawns, joins, channels, SchedMutex,
//! sleeps, yields, panics, and CPU hogs under forced preemption. Bounded work
//! with exact expected results, guarded by a watchdog.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gvthread::{Runtime, SchedMutex, SchedulerConfig};

/// About 0.2 s of hog work per round in either build profile.
const HOG_ITERS: u64 = if cfg!(debug_assertions) { 20_000_000 } else { 300_000_000 };

#[test]
fn everything_at_once_keeps_exact_results() {
    let _w = common::watchdog("everything_at_once_keeps_exact_results", Duration::from_secs(120));
    // Keep the log readable: the planned panics are expected, others are not.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"planned") {
            default_hook(info);
        }
    }));
    let mut rt = Runtime::new(
        SchedulerConfig::default().num_workers(2).time_slice(Duration::from_millis(2)).grace_period(Duration::ZERO),
    );
    for round in 0..3u64 {
        let (sum, counter, panics) = rt.block_on(move || {
            let counter = Arc::new(SchedMutex::new(0u64));
            let (tx, rx) = gvthread::channel::<u64>(8);
            let hog_work = Arc::new(AtomicU64::new(0));
            let mut handles = Vec::new();
            // Hogs: no yield points at all, only forced preemption moves them.
            for h in 0..2u64 {
                let w = hog_work.clone();
                handles.push(gvthread::spawn(move |_| {
                    let mut x = h;
                    for i in 0..HOG_ITERS {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
                    }
                    w.fetch_add(1, Ordering::SeqCst);
                    x & 1
                }));
            }
            // Producers: send, sometimes sleep or yield, bump the mutex counter.
            for p in 0..8u64 {
                let (tx, counter) = (tx.clone(), counter.clone());
                handles.push(gvthread::spawn(move |_| {
                    for i in 0..200u64 {
                        tx.send(p * 1_000 + i).unwrap();
                        if i % 50 == 0 {
                            gvthread::sleep(Duration::from_micros(200));
                        } else if i % 7 == 0 {
                            gvthread::yield_now();
                        }
                        let mut g = counter.lock();
                        let v = *g;
                        if i % 13 == 0 {
                            gvthread::yield_now(); // held across a switch
                        }
                        *g = v + 1;
                    }
                    0
                }));
            }
            drop(tx);
            // Consumers, each spawning short-lived helpers that sometimes panic.
            let consumers: Vec<_> = (0..4)
                .map(|_| {
                    let rx = rx.clone();
                    gvthread::spawn(move |_| {
                        let mut sum = 0u64;
                        let mut panics = 0u64;
                        for v in rx.iter() {
                            let h = gvthread::spawn(move |_| {
                                if v % 97 == 0 {
                                    panic!("planned");
                                }
                                v
                            });
                            match h.join() {
                                Ok(v) => sum += v,
                                Err(e) => {
                                    assert!(e.is_panic());
                                    panics += 1;
                                    sum += v;
                                }
                            }
                        }
                        (sum, panics)
                    })
                })
                .collect();
            drop(rx);
            for h in handles {
                h.join().unwrap();
            }
            let (mut sum, mut panics) = (0, 0);
            for c in consumers {
                let (s, p) = c.join().unwrap();
                sum += s;
                panics += p;
            }
            assert_eq!(hog_work.load(Ordering::SeqCst), 2);
            let n = *counter.lock();
            (sum, n, panics)
        });
        let expected_sum: u64 = (0..8u64).flat_map(|p| (0..200u64).map(move |i| p * 1_000 + i)).sum();
        let expected_panics =
            (0..8u64).flat_map(|p| (0..200u64).map(move |i| p * 1_000 + i)).filter(|v| v % 97 == 0).count() as u64;
        assert_eq!(sum, expected_sum, "round {round}");
        assert_eq!(counter, 1_600, "round {round}");
        assert_eq!(panics, expected_panics, "round {round}");
    }
    let m = rt.metrics();
    eprintln!("metrics: {m:?}");
    assert!(m.forced_preemptions > 0, "the hogs were never preempted: the test exercised nothing: {m:?}");
}
