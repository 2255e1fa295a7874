//! Channel scenarios: MPMC delivery, rendezvous, timeouts, disconnection,
//! and GVThread <-> OS thread traffic. Each test runs its own 2-worker
//! runtime and is guarded by a watchdog that aborts if it hangs.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gvthread::{
    RecvError, RecvTimeoutError, Runtime, SchedulerConfig, SendError, SendTimeoutError, TryRecvError, TrySendError,
    channel,
};

fn watchdog(name: &'static str) -> common::Watchdog {
    common::watchdog(name, Duration::from_secs(60))
}

fn rt() -> Runtime {
    Runtime::new(SchedulerConfig::default().num_workers(2))
}

fn mpmc(capacity: usize) {
    const PRODUCERS: u64 = 4;
    const CONSUMERS: usize = 3;
    const PER_PRODUCER: u64 = 2_000;
    let mut rt = rt();
    let got = rt.block_on(move || {
        let (tx, rx) = channel::<u64>(capacity);
        for p in 0..PRODUCERS {
            let tx = tx.clone();
            gvthread::spawn(move |_| {
                for i in 0..PER_PRODUCER {
                    tx.send(p * PER_PRODUCER + i).unwrap();
                }
            });
        }
        drop(tx);
        let consumers: Vec<_> = (0..CONSUMERS)
            .map(|_| {
                let rx = rx.clone();
                gvthread::spawn(move |_| rx.iter().collect::<Vec<_>>())
            })
            .collect();
        drop(rx);
        consumers.into_iter().flat_map(|h| h.join().unwrap()).collect::<Vec<_>>()
    });
    assert_eq!(got.len() as u64, PRODUCERS * PER_PRODUCER, "no message lost or duplicated");
    let set: HashSet<u64> = got.into_iter().collect();
    assert_eq!(set, (0..PRODUCERS * PER_PRODUCER).collect::<HashSet<_>>());
}

#[test]
fn mpmc_4_producers_3_consumers_every_message_exactly_once() {
    let _w = watchdog("mpmc_4_producers_3_consumers_every_message_exactly_once");
    mpmc(8);
}

#[test]
fn mpmc_capacity_1_every_message_exactly_once() {
    let _w = watchdog("mpmc_capacity_1_every_message_exactly_once");
    mpmc(1);
}

#[test]
fn mpmc_rendezvous_every_message_exactly_once() {
    let _w = watchdog("mpmc_rendezvous_every_message_exactly_once");
    mpmc(0);
}

#[test]
fn per_producer_order_is_preserved() {
    let _w = watchdog("per_producer_order_is_preserved");
    let mut rt = rt();
    rt.block_on(|| {
        let (tx, rx) = channel::<(u32, u32)>(3);
        for p in 0..3 {
            let tx = tx.clone();
            gvthread::spawn(move |_| {
                for i in 0..1000 {
                    tx.send((p, i)).unwrap();
                }
            });
        }
        drop(tx);
        let mut next = [0u32; 3];
        for (p, i) in rx {
            assert_eq!(next[p as usize], i);
            next[p as usize] += 1;
        }
        assert_eq!(next, [1000; 3]);
    });
}

#[test]
fn rendezvous_send_completes_only_when_a_receiver_takes_the_value() {
    let _w = watchdog("rendezvous_send_completes_only_when_a_receiver_takes_the_value");
    let mut rt = rt();
    rt.block_on(|| {
        let (tx, rx) = channel::<u32>(0);
        let sent = Arc::new(AtomicBool::new(false));
        let s = sent.clone();
        let h = gvthread::spawn(move |_| {
            tx.send(1).unwrap();
            s.store(true, Ordering::SeqCst);
            tx.send(2).unwrap();
        });
        for _ in 0..20 {
            gvthread::sleep(Duration::from_millis(1));
            assert!(!sent.load(Ordering::SeqCst), "send returned with no receiver");
        }
        assert_eq!(rx.try_recv(), Ok(1), "the blocked sender's offer is visible to try_recv");
        assert_eq!(rx.recv(), Ok(2));
        h.join().unwrap();
        assert!(sent.load(Ordering::SeqCst));
        assert_eq!(rx.recv(), Err(RecvError));
    });
}

#[test]
fn rendezvous_try_send_succeeds_only_with_a_blocked_receiver() {
    let _w = watchdog("rendezvous_try_send_succeeds_only_with_a_blocked_receiver");
    let mut rt = rt();
    rt.block_on(|| {
        let (tx, rx) = channel::<u32>(0);
        assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)));
        let h = gvthread::spawn(move |_| rx.recv());
        let mut v = 2;
        // Bounded: the receiver blocks within a few scheduling rounds.
        for _ in 0..100_000 {
            match tx.try_send(v) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) => v = back,
                Err(e) => panic!("{e}"),
            }
            gvthread::yield_now();
        }
        assert_eq!(h.join().unwrap(), Ok(2));
    });
}

#[test]
fn send_timeout_on_full_channel() {
    let _w = watchdog("send_timeout_on_full_channel");
    let d = Duration::from_millis(20);
    let mut rt = rt();
    rt.block_on(move || {
        let (tx, rx) = channel::<u32>(1);
        tx.send(1).unwrap();
        let t = Instant::now();
        assert_eq!(tx.send_timeout(2, d), Err(SendTimeoutError::Timeout(2)));
        assert!(t.elapsed() >= d);
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(tx.send_timeout(3, d), Ok(()));
    });
    // And on a plain OS thread.
    let (tx, _rx) = channel::<u32>(1);
    tx.send(1).unwrap();
    let t = Instant::now();
    assert!(tx.send_timeout(2, d).unwrap_err().is_timeout());
    assert!(t.elapsed() >= d);
}

#[test]
fn recv_timeout_on_empty_channel() {
    let _w = watchdog("recv_timeout_on_empty_channel");
    let d = Duration::from_millis(20);
    let mut rt = rt();
    rt.block_on(move || {
        let (tx, rx) = channel::<u32>(4);
        let t = Instant::now();
        assert_eq!(rx.recv_timeout(d), Err(RecvTimeoutError::Timeout));
        assert!(t.elapsed() >= d);
        tx.send(5).unwrap();
        assert_eq!(rx.recv_timeout(d), Ok(5));
        drop(tx);
        assert_eq!(rx.recv_timeout(d), Err(RecvTimeoutError::Disconnected));
    });
    let (_tx, rx) = channel::<u32>(1);
    let t = Instant::now();
    assert_eq!(rx.recv_timeout(d), Err(RecvTimeoutError::Timeout));
    assert!(t.elapsed() >= d);
}

#[test]
fn rendezvous_send_timeout_without_receiver_returns_the_value() {
    let _w = watchdog("rendezvous_send_timeout_without_receiver_returns_the_value");
    let d = Duration::from_millis(10);
    let mut rt = rt();
    rt.block_on(move || {
        let (tx, rx) = channel::<String>(0);
        let t = Instant::now();
        let e = tx.send_timeout("v".to_string(), d).unwrap_err();
        assert!(t.elapsed() >= d);
        assert_eq!(e.into_inner(), "v");
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "a timed-out offer is withdrawn");
    });
}

#[test]
fn timeouts_under_contention_lose_no_message() {
    // Receivers with short timeouts race with plain receivers; every message
    // is still delivered exactly once (a timed-out, notified receiver passes
    // its wake on).
    let _w = watchdog("timeouts_under_contention_lose_no_message");
    let mut rt = rt();
    let total = rt.block_on(|| {
        let (tx, rx) = channel::<u32>(2);
        let received = Arc::new(AtomicUsize::new(0));
        let mut hs = Vec::new();
        for k in 0..4 {
            let rx = rx.clone();
            let received = received.clone();
            hs.push(gvthread::spawn(move |_| {
                loop {
                    let r = if k % 2 == 0 {
                        rx.recv_timeout(Duration::from_micros(50))
                    } else {
                        rx.recv().map_err(RecvTimeoutError::from)
                    };
                    match r {
                        Ok(_) => {
                            received.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            }));
        }
        drop(rx);
        for i in 0..3000 {
            if i % 100 == 0 {
                gvthread::sleep(Duration::from_micros(200));
            }
            tx.send(i).unwrap();
        }
        drop(tx);
        for h in hs {
            h.join().unwrap();
        }
        received.load(Ordering::SeqCst)
    });
    assert_eq!(total, 3000);
}

#[test]
fn senders_dropped_while_receivers_blocked() {
    let _w = watchdog("senders_dropped_while_receivers_blocked");
    let mut rt = rt();
    rt.block_on(|| {
        let (tx, rx) = channel::<u32>(4);
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let rx = rx.clone();
                gvthread::spawn(move |_| {
                    let mut got = Vec::new();
                    loop {
                        match rx.recv() {
                            Ok(v) => got.push(v),
                            Err(RecvError) => return got,
                        }
                    }
                })
            })
            .collect();
        gvthread::sleep(Duration::from_millis(5)); // let them block
        let tx2 = tx.clone();
        drop(tx);
        drop(tx2); // the last sender wakes every blocked receiver
        let mut all: Vec<u32> = hs.into_iter().flat_map(|h| h.join().unwrap()).collect();
        all.sort();
        assert_eq!(all, [1, 2], "values sent before disconnection are drained");
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    });
}

#[test]
fn receivers_dropped_while_senders_blocked() {
    let _w = watchdog("receivers_dropped_while_senders_blocked");
    for capacity in [0, 1] {
        let mut rt = rt();
        rt.block_on(move || {
            let (tx, rx) = channel::<u32>(capacity);
            if capacity > 0 {
                tx.send(0).unwrap();
            }
            let hs: Vec<_> = (1..=3)
                .map(|v| {
                    let tx = tx.clone();
                    gvthread::spawn(move |_| tx.send(v))
                })
                .collect();
            gvthread::sleep(Duration::from_millis(5));
            let rx2 = rx.clone();
            drop(rx);
            drop(rx2);
            for (h, v) in hs.into_iter().zip(1..=3) {
                assert_eq!(h.join().unwrap(), Err(SendError(v)), "capacity {capacity}: value comes back");
            }
            assert_eq!(tx.try_send(9), Err(TrySendError::Disconnected(9)));
        });
    }
}

#[test]
fn drop_of_sender_wakes_receiver_blocked_on_os_thread() {
    let _w = watchdog("drop_of_sender_wakes_receiver_blocked_on_os_thread");
    let rt = rt();
    let (tx, rx) = channel::<u32>(0);
    let h = rt.handle().spawn(move |_| {
        gvthread::sleep(Duration::from_millis(5));
        drop(tx);
    });
    assert_eq!(rx.recv(), Err(RecvError)); // parks the OS thread
    h.join().unwrap();
}

#[test]
fn drop_of_receiver_wakes_sender_blocked_on_os_thread() {
    let _w = watchdog("drop_of_receiver_wakes_sender_blocked_on_os_thread");
    let rt = rt();
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = channel::<Counted>(1);
    tx.send(Counted(1, drops.clone())).unwrap();
    let h = rt.handle().spawn(move |_| {
        gvthread::sleep(Duration::from_millis(5));
        drop(rx);
    });
    // Blocks (the channel is full) until the receiver is dropped. On a
    // loaded machine the drop may come first, or between the sender's check
    // and its push: then the send counts as done before the disconnection
    // and its value is discarded with the queued one.
    if let Err(SendError(v)) = tx.send(Counted(2, drops.clone())) {
        assert_eq!(v.0, 2, "the value comes back");
    }
    h.join().unwrap();
    assert_eq!(drops.load(Ordering::SeqCst), 2, "no value stays behind in a channel without receivers");
    drop(tx);
}

/// A value that counts its drops.
#[derive(Debug)]
struct Counted(u32, Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.1.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn gvthreads_to_os_thread() {
    let _w = watchdog("gvthreads_to_os_thread");
    for capacity in [0, 1, 16] {
        let rt = rt();
        let (tx, rx) = channel::<u32>(capacity);
        for p in 0..4 {
            let tx = tx.clone();
            rt.handle().spawn(move |_| {
                for i in 0..500 {
                    tx.send(p * 500 + i).unwrap();
                }
            });
        }
        drop(tx);
        let mut got: Vec<u32> = rx.iter().collect(); // this OS thread parks
        got.sort();
        assert_eq!(got, (0..2000).collect::<Vec<_>>(), "capacity {capacity}");
    }
}

#[test]
fn os_threads_to_gvthreads() {
    let _w = watchdog("os_threads_to_gvthreads");
    for capacity in [0, 1, 16] {
        let rt = rt();
        let (tx, rx) = channel::<u32>(capacity);
        let consumers: Vec<_> = (0..3)
            .map(|_| {
                let rx = rx.clone();
                rt.handle().spawn(move |_| rx.into_iter().collect::<Vec<_>>())
            })
            .collect();
        drop(rx);
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        tx.send(p * 1000 + i).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        for p in producers {
            p.join().unwrap();
        }
        let mut got: Vec<u32> = consumers.into_iter().flat_map(|h| h.join().unwrap()).collect();
        got.sort();
        assert_eq!(got, (0..2000).collect::<Vec<_>>(), "capacity {capacity}");
    }
}

#[test]
fn ping_pong_between_gvthread_and_os_thread() {
    let _w = watchdog("ping_pong_between_gvthread_and_os_thread");
    let rt = rt();
    let (ping_tx, ping_rx) = channel::<u32>(0);
    let (pong_tx, pong_rx) = channel::<u32>(0);
    let h = rt.handle().spawn(move |_| {
        for v in &ping_rx {
            pong_tx.send(v + 1).unwrap();
        }
    });
    for i in 0..1000 {
        ping_tx.send(i).unwrap();
        assert_eq!(pong_rx.recv(), Ok(i + 1));
    }
    drop(ping_tx);
    h.join().unwrap();
}

#[test]
fn iterators() {
    let _w = watchdog("iterators");
    let (tx, rx) = channel::<u32>(8);
    for i in 0..3 {
        tx.send(i).unwrap();
    }
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), [0, 1, 2]);
    for i in 3..6 {
        tx.send(i).unwrap();
    }
    drop(tx);
    let mut seen = Vec::new();
    for v in &rx {
        seen.push(v);
    }
    assert_eq!(seen, [3, 4, 5]);
    assert_eq!(rx.into_iter().count(), 0);
}

#[test]
fn seed_typical_usage_try_send_try_recv() {
    let _w = watchdog("seed_typical_usage_try_send_try_recv");
    let config = SchedulerConfig::default().num_workers(2);
    let mut runtime = Runtime::new(config);
    runtime.block_on(|| {
        let (tx, rx) = channel(100);
        let p = gvthread::spawn(move |token| {
            for i in 0..1000 {
                if token.is_cancelled() {
                    break;
                }
                tx.try_send(i).ok();
                gvthread::yield_now();
            }
        });
        let c = gvthread::spawn(move |_| {
            let mut n = 0;
            while let Ok(_val) = rx.try_recv() {
                n += 1;
            }
            n
        });
        p.join().unwrap();
        assert!(c.join().unwrap() <= 1000);
    });
}

#[test]
fn errors_are_displayable_std_errors() {
    fn is_error<E: std::error::Error + Send + Sync + 'static>(_: &E) {}
    struct NotDebug;
    let e = SendError(NotDebug);
    is_error(&e);
    assert_eq!(format!("{e:?}"), "SendError { .. }");
    assert_eq!(e.to_string(), "sending on a disconnected channel");
    let e = TrySendError::Full(NotDebug);
    is_error(&e);
    assert_eq!(format!("{e:?}"), "Full(..)");
    let e = SendTimeoutError::Timeout(NotDebug);
    is_error(&e);
    assert!(!e.to_string().is_empty());
    is_error(&RecvError);
    is_error(&TryRecvError::Empty);
    is_error(&RecvTimeoutError::Timeout);
    let boxed: Box<dyn std::error::Error> = Box::new(TryRecvError::Disconnected);
    assert_eq!(boxed.to_string(), "receiving on an empty and disconnected channel");
}

#[test]
fn shutdown_unwinds_gvthreads_blocked_in_send_and_recv() {
    let _w = watchdog("shutdown_unwinds_gvthreads_blocked_in_send_and_recv");
    let rt = Runtime::new(SchedulerConfig::default().num_workers(2).shutdown_timeout(Duration::from_secs(3600)));
    let (full_tx, full_rx) = channel::<u32>(1);
    full_tx.send(0).unwrap();
    let (rdv_tx, rdv_rx) = channel::<u32>(0);
    let (empty_tx, empty_rx) = channel::<u32>(1);
    let mut joins = Vec::new();
    for i in 0..3 {
        let (f, r, e) = (full_tx.clone(), rdv_tx.clone(), empty_rx.clone());
        joins.push(rt.handle().spawn(move |_| f.send(i).map_err(|_| ())));
        joins.push(rt.handle().spawn(move |_| r.send(i).map_err(|_| ())));
        joins.push(rt.handle().spawn(move |_| e.recv().map(|_| ()).map_err(|_| ())));
    }
    std::thread::sleep(Duration::from_millis(50)); // let them block
    drop(rt);
    for j in joins {
        assert!(j.join().unwrap_err().is_cancelled());
    }
    // Every registration was removed on the way out; offers were withdrawn.
    assert_eq!(full_rx.try_recv(), Ok(0));
    assert_eq!(full_rx.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(rdv_rx.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(rdv_tx.try_send(1), Err(TrySendError::Full(1)), "no receiver left waiting");
    empty_tx.send(7).unwrap();
    assert_eq!(empty_rx.recv(), Ok(7));
    full_tx.send(1).unwrap();
    assert_eq!(full_rx.recv(), Ok(1));
}
