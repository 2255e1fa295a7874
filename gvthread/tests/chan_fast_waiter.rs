//! The lock-free registration of a blocked receiver (`sync/chan/fast.rs`):
//! a GVThread blocked in `recv` on a bounded or unbounded channel, with no
//! other receiver queued, waits there instead of in the channel's locked
//! queue. These tests drive every way out of that wait: a value handed
//! over, a value pushed into the ring (a poke), a timeout racing a send, the
//! last sender's drop, a second receiver queued behind it, a sender on an OS
//! thread, runtime shutdown, and a value handed over to a receiver that
//! unwinds before taking it. Counts and orders only, no timing.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gvthread::{RecvError, RecvTimeoutError, Runtime, SchedulerConfig, channel, unbounded};

fn watchdog(name: &'static str) -> common::Watchdog {
    common::watchdog(name, Duration::from_secs(120))
}

fn rt(workers: usize) -> Runtime {
    Runtime::new(SchedulerConfig::default().num_workers(workers))
}

#[test]
fn timeouts_racing_sends_lose_and_duplicate_nothing() {
    let _w = watchdog("timeouts_racing_sends_lose_and_duplicate_nothing");
    const N: u64 = 3_000;
    for workers in [1, 2] {
        let mut rt = rt(workers);
        let (got, timeouts) = rt.block_on(move || {
            let (tx, rx) = channel::<u64>(4);
            // The sender pauses now and then, so the receiver's short
            // timeouts keep expiring around the sends.
            let sender = gvthread::spawn(move |_| {
                for i in 0..N {
                    tx.send(i).unwrap();
                    if i % 7 == 0 {
                        gvthread::sleep(Duration::from_micros(50 + (i % 5) * 40));
                    }
                }
            });
            let mut got = Vec::with_capacity(N as usize);
            let mut timeouts = 0u64;
            loop {
                match rx.recv_timeout(Duration::from_micros(100)) {
                    Ok(v) => got.push(v),
                    Err(RecvTimeoutError::Timeout) => timeouts += 1,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            sender.join().unwrap();
            (got, timeouts)
        });
        // One sender: every value once, in order.
        assert_eq!(got, (0..N).collect::<Vec<_>>(), "{workers} workers ({timeouts} timeouts)");
    }
}

#[test]
fn the_last_senders_drop_wakes_a_blocked_receiver() {
    let _w = watchdog("the_last_senders_drop_wakes_a_blocked_receiver");
    let mut rt = rt(1);
    rt.block_on(|| {
        for round in 0..200u32 {
            let (tx, rx) = channel::<u32>(1);
            let r = gvthread::spawn(move |_| rx.recv());
            // Sometimes the receiver registers first, sometimes the drop
            // comes first: both end in a disconnection.
            for _ in 0..round % 3 {
                gvthread::yield_now();
            }
            drop(tx);
            assert_eq!(r.join().unwrap(), Err(RecvError), "round {round}");
        }
    });
}

#[test]
fn a_fast_waiter_and_queued_receivers_share_every_value() {
    let _w = watchdog("a_fast_waiter_and_queued_receivers_share_every_value");
    const N: usize = 20_000;
    for (workers, cap) in [(1, 1), (2, 1), (2, 16), (2, usize::MAX)] {
        let mut rt = rt(workers);
        let seen = rt.block_on(move || {
            let (tx, rx) = if cap == usize::MAX { unbounded::<usize>() } else { channel::<usize>(cap) };
            // Three receivers: at most one is the fast waiter, the others
            // queue on the locked path and hand notifications on.
            let receivers: Vec<_> = (0..3)
                .map(|_| {
                    let rx = rx.clone();
                    gvthread::spawn(move |_| rx.iter().collect::<Vec<_>>())
                })
                .collect();
            drop(rx);
            for i in 0..N {
                tx.send(i).unwrap();
                if i % 64 == 0 {
                    gvthread::yield_now();
                }
            }
            drop(tx);
            receivers.into_iter().flat_map(|r| r.join().unwrap()).collect::<Vec<_>>()
        });
        assert_eq!(seen.len(), N, "{workers} workers, capacity {cap}: a value lost or duplicated");
        assert_eq!(seen.into_iter().collect::<HashSet<_>>().len(), N, "{workers} workers, capacity {cap}");
    }
}

#[test]
fn a_sender_on_an_os_thread_completes_the_fast_waiter() {
    let _w = watchdog("a_sender_on_an_os_thread_completes_the_fast_waiter");
    const N: u64 = 5_000;
    let mut rt = rt(2);
    let (tx, rx) = channel::<u64>(1);
    let os = std::thread::spawn(move || {
        for i in 0..N {
            tx.send(i).unwrap();
            if i % 100 == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    });
    let got = rt.block_on(move || rx.iter().collect::<Vec<_>>());
    os.join().unwrap();
    assert_eq!(got, (0..N).collect::<Vec<_>>());
}

#[test]
fn ping_pong_across_runtimes_keeps_order() {
    let _w = watchdog("ping_pong_across_runtimes_keeps_order");
    // A sender of another runtime claims the receiver: it must take a
    // counted reference to the receiver's runtime before completing it.
    const N: u64 = 5_000;
    let mut a = rt(1);
    let b = rt(1);
    let (tx1, rx1) = channel::<u64>(1);
    let (tx2, rx2) = channel::<u64>(1);
    let echo = b.handle().spawn(move |_| {
        while let Ok(v) = rx1.recv() {
            tx2.send(v + 1).unwrap();
        }
    });
    a.block_on(move || {
        for i in 0..N {
            tx1.send(i * 2).unwrap();
            assert_eq!(rx2.recv().unwrap(), i * 2 + 1);
        }
    });
    echo.join().unwrap();
}

#[test]
fn shutdown_unwinds_blocked_receivers() {
    let _w = watchdog("shutdown_unwinds_blocked_receivers");
    let ended = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = channel::<u32>(1);
    {
        let rt = rt(2);
        for _ in 0..50 {
            let (rx, ended) = (rx.clone(), ended.clone());
            rt.handle().spawn(move |_| {
                struct Count(Arc<AtomicUsize>);
                impl Drop for Count {
                    fn drop(&mut self) {
                        self.0.fetch_add(1, Ordering::SeqCst);
                    }
                }
                let _c = Count(ended);
                let _ = rx.recv(); // blocks until shutdown unwinds it
            });
        }
        // Let them block (one as the fast waiter, the rest queued).
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ended.load(Ordering::SeqCst), 50, "every blocked receiver unwound");
    // The channel still works afterwards.
    tx.send(9).unwrap();
    assert_eq!(rx.recv(), Ok(9));
}

/// A value handed to the fast waiter while it waits to run, which then
/// unwinds (runtime shutdown) instead of taking it, goes back to the channel
/// for the next receiver: `leave_fast`'s put-back path.
#[test]
fn a_value_handed_to_a_receiver_that_unwinds_stays_in_the_channel() {
    let _w = watchdog("a_value_handed_to_a_receiver_that_unwinds_stays_in_the_channel");
    use std::sync::atomic::AtomicBool;
    for round in 0..5 {
        let (tx, rx) = channel::<String>(1);
        let keep = rx.clone();
        let hog_runs = Arc::new(AtomicBool::new(false));
        let unwound = Arc::new(AtomicBool::new(false));
        {
            // One worker that nothing preempts: the receiver, once woken,
            // waits for the hog, which runs until shutdown cancels it.
            let rt = Runtime::new(
                SchedulerConfig::default()
                    .num_workers(1)
                    .enable_forced_preempt(false)
                    .time_slice(Duration::from_secs(60))
                    .wakeup_granularity(Duration::from_secs(60)),
            );
            let h = rt.handle();
            let unwound2 = unwound.clone();
            // Spawned first, so it runs first and blocks as the fast waiter.
            h.spawn(move |_| {
                struct Mark(Arc<AtomicBool>);
                impl Drop for Mark {
                    fn drop(&mut self) {
                        self.0.store(std::thread::panicking(), Ordering::SeqCst);
                    }
                }
                let _m = Mark(unwound2);
                rx.recv()
            });
            let runs = hog_runs.clone();
            h.spawn(move |token| {
                runs.store(true, Ordering::SeqCst);
                while !token.is_cancelled() {
                    std::hint::spin_loop();
                }
            });
            // The hog runs, so the receiver is blocked (one worker).
            while !hog_runs.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            // Completes the fast waiter: its value is in its slot, and it
            // is runnable behind the hog.
            tx.send(format!("v{round}")).unwrap();
        } // shutdown: the hog ends, the receiver resumes and unwinds
        assert!(unwound.load(Ordering::SeqCst), "round {round}: the receiver unwound out of its park");
        assert_eq!(
            keep.try_recv().as_deref(),
            Ok(format!("v{round}").as_str()),
            "round {round}: the value was put back"
        );
        drop(tx);
        assert!(keep.try_recv().is_err(), "round {round}: exactly one value");
    }
}

#[test]
fn four_producers_four_consumers_round_after_round() {
    // The shape that found a lost wake-up: a poke whose wake found the
    // receiver already notified (by an earlier wake) published nothing, so
    // the receiver could miss the poke and park for good.
    let _w = watchdog("four_producers_four_consumers_round_after_round");
    const PER_PRODUCER: u64 = 4_000;
    let mut rt = rt(2);
    for round in 0..200 {
        let total = rt.block_on(|| {
            let (tx, rx) = channel::<u64>(64);
            let producers: Vec<_> = (0..4)
                .map(|_| {
                    let tx = tx.clone();
                    gvthread::spawn(move |_| {
                        for i in 0..PER_PRODUCER {
                            tx.send(i).unwrap();
                        }
                    })
                })
                .collect();
            drop(tx);
            let consumers: Vec<_> = (0..4)
                .map(|_| {
                    let rx = rx.clone();
                    gvthread::spawn(move |_| rx.iter().count() as u64)
                })
                .collect();
            drop(rx);
            producers.into_iter().for_each(|p| p.join().unwrap());
            consumers.into_iter().map(|c| c.join().unwrap()).sum::<u64>()
        });
        assert_eq!(total, 4 * PER_PRODUCER, "round {round}");
    }
}
