//! The channel semantics checked by Go's `runtime/chan_test.go`, restated for
//! gvthread (written from the behaviours Go tests, not from its code):
//! blocking and non-blocking operations at every capacity, FIFO order,
//! close (all senders dropped) semantics, `len`/`cap`, races between a
//! non-blocking receive and a send, a select that both sends and receives on
//! one channel, select fairness, select stress, and many producers and
//! consumers. Each test is guarded by a watchdog.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gvthread::{RecvError, TryRecvError, TrySendError, channel, select, unbounded};

fn watchdog(name: &'static str) -> common::Watchdog {
    common::watchdog(name, Duration::from_secs(60))
}

const CAPS: [usize; 5] = [0, 1, 2, 4, 64];

/// Go's TestChan: per capacity, receives block on an empty channel, sends
/// block on a full one, non-blocking forms fail instead, values arrive in
/// order, and after "close" (every sender dropped) buffered values still
/// arrive, then receives fail at once.
#[test]
fn basic_semantics_at_every_capacity() {
    let _w = watchdog("basic_semantics_at_every_capacity");
    let mut rt = common::rt(2);
    rt.block_on(|| {
        for cap in CAPS {
            // A receive on an empty channel blocks until a send.
            let (tx, rx) = channel::<usize>(cap);
            let got = Arc::new(AtomicUsize::new(0));
            let g = got.clone();
            let rx2 = rx.clone();
            let h = gvthread::spawn(move |_| g.store(rx2.recv().unwrap() + 1, Ordering::SeqCst));
            gvthread::sleep(Duration::from_millis(2));
            assert_eq!(got.load(Ordering::SeqCst), 0, "cap {cap}: receive did not block");
            tx.send(41).unwrap();
            h.join().unwrap();
            assert_eq!(got.load(Ordering::SeqCst), 42);

            // Non-blocking receive on an empty channel; non-blocking send on a full one.
            assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
            for i in 0..cap {
                tx.try_send(i).unwrap();
            }
            assert_eq!(tx.try_send(99), Err(TrySendError::Full(99)), "cap {cap}");
            assert_eq!((tx.len(), tx.capacity(), tx.is_full()), (cap, Some(cap), true));

            // A send on a full channel blocks until a receive.
            let tx2 = tx.clone();
            let sent = gvthread::spawn(move |_| tx2.send(1000).unwrap());
            gvthread::sleep(Duration::from_millis(2));
            assert!(!sent.is_finished(), "cap {cap}: send did not block");
            // FIFO: the buffered values first, then the blocked sender's.
            for i in 0..cap {
                assert_eq!(rx.recv(), Ok(i));
            }
            assert_eq!(rx.recv(), Ok(1000));
            sent.join().unwrap();

            // Close with values buffered: they are still delivered, then Err at once.
            for i in 0..cap {
                tx.send(i).unwrap();
            }
            drop(tx);
            assert_eq!(rx.iter().collect::<Vec<_>>(), (0..cap).collect::<Vec<_>>());
            assert_eq!(rx.recv(), Err(RecvError));
            assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        }
    });
}

/// Go's TestNonblockRecvRace: a value sent before a non-blocking receive
/// (select with default) must be seen by it, whatever runs concurrently.
#[test]
fn nonblocking_receive_sees_a_completed_send() {
    let _w = watchdog("nonblocking_receive_sees_a_completed_send");
    let mut rt = common::rt(2);
    rt.block_on(|| {
        for _ in 0..500 {
            let (tx, rx) = channel::<u8>(1);
            tx.send(1).unwrap();
            let rx2 = rx.clone();
            let h = gvthread::spawn(move |_| select! { recv(rx2) -> _ => true, default => false });
            let mine = rx.try_recv().is_ok();
            let theirs = h.join().unwrap();
            assert!(mine ^ theirs, "exactly one of the two received the value");
        }
    });
}

/// Go's TestNonblockSelectRace: with one value in each of two channels, two
/// non-blocking selects racing must between them get both (neither sees
/// both empty).
#[test]
fn racing_nonblocking_selects_find_the_values() {
    let _w = watchdog("racing_nonblocking_selects_find_the_values");
    let mut rt = common::rt(2);
    rt.block_on(|| {
        for _ in 0..500 {
            let (tx1, rx1) = channel::<u8>(1);
            let (tx2, rx2) = channel::<u8>(1);
            tx1.send(1).unwrap();
            let (r1, r2) = (rx1.clone(), rx2.clone());
            let h = gvthread::spawn(move |_| {
                select! { recv(r1) -> _ => 1, recv(r2) -> _ => 2, default => 0 }
            });
            tx2.send(2).unwrap();
            let mine = select! { recv(rx1) -> _ => 1, recv(rx2) -> _ => 2, default => 0 };
            let theirs = h.join().unwrap();
            assert_ne!(theirs, 0, "channel 1 held a value the whole time");
            let left = rx1.len() + rx2.len();
            assert_eq!(left + (mine != 0) as usize + 1, 2, "each value taken once");
        }
    });
}

/// Go's TestSelfSelect: two parties each loop on a select that both sends
/// to and receives from the same channel; they must keep pairing with each
/// other (never with themselves) without deadlock.
#[test]
fn self_select_pairs_only_with_the_other_party() {
    let _w = watchdog("self_select_pairs_only_with_the_other_party");
    let mut rt = common::rt(2);
    rt.block_on(|| {
        for cap in [0usize, 1] {
            let (tx, rx) = channel::<u32>(cap);
            let parties: Vec<_> = (0..2u32)
                .map(|p| {
                    let (tx, rx) = (tx.clone(), rx.clone());
                    gvthread::spawn(move |_| {
                        for _ in 0..1_000 {
                            if p == 0 && cap == 1 {
                                // Buffered: one side also sends plainly so the
                                // buffer cannot stay full forever.
                                let _ = rx.try_recv();
                            }
                            select! {
                                send(tx, p) -> r => r.unwrap(),
                                recv(rx) -> v => {
                                    let v = v.unwrap();
                                    if cap == 0 {
                                        assert_ne!(v, p, "received its own send");
                                    }
                                }
                            }
                        }
                    })
                })
                .collect();
            for h in parties {
                h.join().unwrap();
            }
        }
    });
}

/// Go's TestSelectFairness (simplified): with two channels always ready, a
/// select picks each about half the time.
#[test]
fn select_fairness_between_two_ready_channels() {
    let _w = watchdog("select_fairness_between_two_ready_channels");
    let (tx1, rx1) = channel::<u8>(4);
    let (tx2, rx2) = channel::<u8>(4);
    let mut counts = [0u32; 2];
    for _ in 0..10_000 {
        while tx1.try_send(0).is_ok() {}
        while tx2.try_send(1).is_ok() {}
        let i = select! { recv(rx1) -> v => v.unwrap(), recv(rx2) -> v => v.unwrap() };
        counts[i as usize] += 1;
    }
    // 10,000 fair coin flips: a share outside 45%..55% is ~10 standard deviations out.
    let share = counts[0] as f64 / 10_000.0;
    assert!((0.45..0.55).contains(&share), "unfair: {counts:?}");
}

/// Go's TestSelectStress: four channels (two unbuffered, two buffered);
/// per channel one plain sender and one plain receiver, plus a select-based
/// sender and receiver that cover all four; every message arrives once.
#[test]
fn select_stress() {
    let _w = watchdog("select_stress");
    let mut rt = common::rt(2);
    let total = rt.block_on(|| {
        const N: u64 = 1_000;
        let chans: Vec<_> = [0usize, 0, 10, 10].iter().map(|&c| channel::<u64>(c)).collect();
        let received = Arc::new(AtomicUsize::new(0));
        let mut hs = Vec::new();
        for (k, (tx, rx)) in chans.iter().enumerate() {
            let tx = tx.clone();
            hs.push(gvthread::spawn(move |_| {
                for i in 0..N {
                    tx.send(k as u64 * N + i).unwrap();
                }
            }));
            let (rx, got) = (rx.clone(), received.clone());
            hs.push(gvthread::spawn(move |_| {
                for _ in 0..N {
                    rx.recv().unwrap();
                    got.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        let txs: Vec<_> = chans.iter().map(|c| c.0.clone()).collect();
        hs.push(gvthread::spawn(move |_| {
            // N sends to each channel, through one select over the channels not done yet.
            let mut left = [N; 4];
            while left.iter().any(|&n| n > 0) {
                let mut sel = gvthread::Select::new();
                let mut idx = Vec::new();
                for k in 0..4 {
                    if left[k] > 0 {
                        idx.push((sel.send(&txs[k], 0), k));
                    }
                }
                let op = sel.select();
                let k = idx.iter().find(|(i, _)| *i == op.index()).unwrap().1;
                op.send(&txs[k]).unwrap();
                left[k] -= 1;
            }
        }));
        let rxs: Vec<_> = chans.iter().map(|c| c.1.clone()).collect();
        let got = received.clone();
        hs.push(gvthread::spawn(move |_| {
            let mut left = [N; 4];
            while left.iter().any(|&n| n > 0) {
                let mut sel = gvthread::Select::new();
                let mut idx = Vec::new();
                for k in 0..4 {
                    if left[k] > 0 {
                        idx.push((sel.recv(&rxs[k]), k));
                    }
                }
                let op = sel.select();
                let k = idx.iter().find(|(i, _)| *i == op.index()).unwrap().1;
                op.recv(&rxs[k]).unwrap();
                got.fetch_add(1, Ordering::Relaxed);
                left[k] -= 1;
            }
        }));
        for h in hs {
            h.join().unwrap();
        }
        received.load(Ordering::Relaxed)
    });
    assert_eq!(total, 4 * 2 * 1_000);
}

/// Go's TestMultiConsumer: many producers, many consumers; each value
/// received exactly once, sums match.
#[test]
fn multi_consumer_every_value_once() {
    let _w = watchdog("multi_consumer_every_value_once");
    let mut rt = common::rt(2);
    for cap in [0usize, 1, 16] {
        let (count, sum) = rt.block_on(move || {
            let (tx, rx) = channel::<usize>(cap);
            let consumers: Vec<_> = (0..10)
                .map(|_| {
                    let rx = rx.clone();
                    gvthread::spawn(move |_| rx.iter().fold((0, 0), |(c, s), v| (c + 1, s + v)))
                })
                .collect();
            drop(rx);
            let producers: Vec<_> = (0..5)
                .map(|p| {
                    let tx = tx.clone();
                    gvthread::spawn(move |_| {
                        for i in 0..1_000 {
                            tx.send(p * 1_000 + i).unwrap();
                        }
                    })
                })
                .collect();
            drop(tx);
            for p in producers {
                p.join().unwrap();
            }
            consumers.into_iter().map(|h| h.join().unwrap()).fold((0, 0), |(c, s), (c2, s2)| (c + c2, s + s2))
        });
        assert_eq!(count, 5_000, "cap {cap}");
        assert_eq!(sum, (0..5_000).sum::<usize>(), "cap {cap}");
    }
}

/// Go's len/cap checks, plus unbounded channels.
#[test]
fn len_and_capacity() {
    let (tx, rx) = channel::<u8>(3);
    assert_eq!((tx.len(), rx.capacity()), (0, Some(3)));
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    assert_eq!((tx.len(), rx.len(), rx.is_empty(), rx.is_full()), (2, 2, false, false));
    let (tx0, rx0) = channel::<u8>(0);
    assert_eq!((tx0.len(), rx0.capacity(), rx0.is_full(), rx0.is_empty()), (0, Some(0), true, true));
    let (utx, urx) = unbounded::<u8>();
    for i in 0..200 {
        utx.try_send(i).unwrap();
    }
    assert_eq!((urx.len(), urx.capacity(), urx.is_full()), (200, None, false));
    assert!(utx.same_channel(&utx.clone()) && !rx.same_channel(&rx0) && urx.same_channel(&urx.clone()));
}

/// Go's TestSelectDuplicateChannel: the same channel in two arms.
#[test]
fn same_channel_in_two_arms() {
    let _w = watchdog("same_channel_in_two_arms");
    let mut rt = common::rt(2);
    rt.block_on(|| {
        let (tx, rx) = channel::<u32>(0);
        let (dtx, drx) = channel::<u32>(0);
        let h = gvthread::spawn(move |_| {
            let v = select! { recv(rx) -> v => v, recv(rx) -> v => v };
            dtx.send(v.unwrap()).unwrap();
        });
        gvthread::sleep(Duration::from_millis(2));
        tx.send(8).unwrap();
        assert_eq!(drx.recv(), Ok(8));
        h.join().unwrap();
    });
}
