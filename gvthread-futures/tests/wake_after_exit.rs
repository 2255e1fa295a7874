//! Wakes from foreign threads racing GVThread exit and slot reuse.
//!
//! GVThreads stash clones of their `block_on` wakers in a shared pool; three
//! plain threads keep waking every stashed waker (by value and by reference)
//! while the GVThreads exit and new ones reuse their slots (`max_gvthreads`
//! is small, so slots are reused thousands of times). The new GVThreads park
//! in every way there is (a future, a sleep, a join), so a stale wake that was
//! not ignored would resume a GVThread in the wrong place or twice. Every join
//! must complete, with the right value.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use gvthread_futures::block_on;

const ROUNDS: u64 = 100;
const PER_ROUND: u64 = 40;
const STASH: usize = 256;

/// Wakers of GVThreads that may have ended.
struct Stash {
    wakers: Mutex<Vec<Waker>>,
    next: AtomicUsize,
}

impl Stash {
    fn put(&self, w: &Waker) {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let mut v = self.wakers.lock().unwrap();
        if v.len() < STASH {
            v.push(w.clone());
        } else {
            v[i % STASH] = w.clone();
        }
    }
}

/// Pending `polls` times; stashes its waker each time, and wakes itself
/// through a foreign thread every other time.
struct Stashing {
    stash: Arc<Stash>,
    polls: u32,
}

impl Future for Stashing {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.polls == 0 {
            return Poll::Ready(());
        }
        self.polls -= 1;
        self.stash.put(cx.waker());
        if self.polls.is_multiple_of(2) {
            cx.waker().wake_by_ref();
        } else {
            let w = cx.waker().clone();
            std::thread::spawn(move || w.wake());
        }
        Poll::Pending
    }
}

#[test]
fn stale_wakes_from_foreign_threads_race_exit_and_slot_reuse() {
    let _dog = common::Watchdog::new("stale_wakes_from_foreign_threads_race_exit_and_slot_reuse", 60);
    let stash = Arc::new(Stash { wakers: Mutex::new(Vec::new()), next: AtomicUsize::new(0) });
    let stop = Arc::new(AtomicBool::new(false));
    let wakes = Arc::new(AtomicUsize::new(0));

    let wakers: Vec<_> = (0..3)
        .map(|t| {
            let (stash, stop, wakes) = (stash.clone(), stop.clone(), wakes.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let snapshot: Vec<Waker> = stash.wakers.lock().unwrap().clone();
                    for (i, w) in snapshot.into_iter().enumerate() {
                        if (i + t) % 2 == 0 {
                            w.wake_by_ref();
                        } else {
                            w.wake();
                        }
                        wakes.fetch_add(1, Ordering::Relaxed);
                    }
                    std::thread::yield_now();
                }
            })
        })
        .collect();

    let config = gvthread::SchedulerConfig::default().num_workers(2).max_gvthreads(PER_ROUND as usize * 2 + 8);
    let mut rt = gvthread::Runtime::new(config);
    let stash2 = stash.clone();
    let total = rt.block_on(move || {
        let mut total = 0;
        for round in 0..ROUNDS {
            let handles: Vec<_> = (0..PER_ROUND)
                .map(|i| {
                    let stash = stash2.clone();
                    gvthread::spawn(move |_| {
                        let v = round * PER_ROUND + i;
                        block_on(Stashing { stash: stash.clone(), polls: 3 });
                        match v % 3 {
                            0 => gvthread::sleep(Duration::from_micros(200)),
                            1 => assert_eq!(gvthread::spawn(move |_| v + 1).join().unwrap(), v + 1),
                            _ => {
                                let (tx, rx) = futures::channel::oneshot::channel();
                                gvthread::spawn(move |_| tx.send(v).unwrap());
                                assert_eq!(block_on(rx).unwrap(), v);
                            }
                        }
                        block_on(Stashing { stash, polls: 2 });
                        v
                    })
                })
                .collect();
            for (i, h) in handles.into_iter().enumerate() {
                let v = h.join().expect("GVThread finished normally");
                assert_eq!(v, round * PER_ROUND + i as u64);
                total += v;
            }
        }
        total
    });
    stop.store(true, Ordering::Relaxed);
    for w in wakers {
        w.join().unwrap();
    }
    let n = ROUNDS * PER_ROUND;
    assert_eq!(total, n * (n - 1) / 2);
    assert!(wakes.load(Ordering::Relaxed) > 0);
    drop(rt);
    // The stash still holds wakers of a runtime that is gone: waking and
    // dropping them must be harmless too.
    for w in stash.wakers.lock().unwrap().drain(..) {
        w.wake();
    }
}
