//! `select!` and `Select` scenarios, after crossbeam-channel's select tests:
//! one arm fires, ready arms, disconnection, `default`, timeouts, send arms,
//! cancellation arms, OS threads and GVThreads mixed, and the dynamic
//! builder. Each test is guarded by a watchdog.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gvthread::{CancellationToken, RecvError, Select, SendError, channel, select, unbounded};

fn watchdog(name: &'static str) -> common::Watchdog {
    common::watchdog(name, Duration::from_secs(60))
}

#[test]
fn receives_from_whichever_channel_gets_a_value() {
    let _w = watchdog("receives_from_whichever_channel_gets_a_value");
    let mut rt = common::rt(2);
    rt.block_on(|| {
        let (tx1, rx1) = channel::<u32>(1);
        let (tx2, rx2) = channel::<u32>(1);
        for round in 0..200u32 {
            let (tx1, tx2) = (tx1.clone(), tx2.clone());
            let h = gvthread::spawn(move |_| if round % 2 == 0 { tx1.send(round) } else { tx2.send(round) });
            let got = select! {
                recv(rx1) -> v => (1, v.unwrap()),
                recv(rx2) -> v => (2, v.unwrap()),
            };
            assert_eq!(got, (if round % 2 == 0 { 1 } else { 2 }, round));
            h.join().unwrap().unwrap();
        }
    });
}

#[test]
fn disconnected_channel_is_a_ready_arm() {
    let _w = watchdog("disconnected_channel_is_a_ready_arm");
    let (tx1, rx1) = channel::<u8>(1);
    let (_tx2, rx2) = channel::<u8>(1);
    drop(tx1);
    let r = select! {
        recv(rx1) -> v => v,
        recv(rx2) -> _ => panic!("rx2 has nothing"),
    };
    assert_eq!(r, Err(RecvError));

    let (tx, rx) = channel::<u8>(0);
    drop(rx);
    let r = select! { send(tx, 9) -> res => res };
    assert_eq!(r, Err(SendError(9)));
}

#[test]
fn disconnection_wakes_a_blocked_select() {
    let _w = watchdog("disconnection_wakes_a_blocked_select");
    let mut rt = common::rt(2);
    rt.block_on(|| {
        let (tx1, rx1) = channel::<u8>(0);
        let (_tx2, rx2) = channel::<u8>(0);
        let h = gvthread::spawn(move |_| {
            select! {
                recv(rx1) -> v => v.is_err(),
                recv(rx2) -> _ => false,
            }
        });
        gvthread::sleep(Duration::from_millis(5));
        drop(tx1);
        assert!(h.join().unwrap(), "the disconnected arm fired");
    });
}

#[test]
fn default_runs_only_when_nothing_is_ready() {
    let _w = watchdog("default_runs_only_when_nothing_is_ready");
    let (tx, rx) = channel::<u8>(1);
    let r = select! { recv(rx) -> _ => "recv", default => "default" };
    assert_eq!(r, "default");
    tx.send(1).unwrap();
    let r = select! { recv(rx) -> v => { assert_eq!(v, Ok(1)); "recv" } default => "default" };
    assert_eq!(r, "recv");
    // A full bounded channel: the send arm is not ready.
    tx.send(2).unwrap();
    let r = select! { send(tx, 3) -> _ => "sent", default => "default" };
    assert_eq!(r, "default");
    // No arm at all.
    assert_eq!(select! { default => 5 }, 5);
}

#[test]
fn default_with_timeout_waits_then_gives_up() {
    let _w = watchdog("default_with_timeout_waits_then_gives_up");
    let mut rt = common::rt(2);
    rt.block_on(|| {
        let (tx, rx) = channel::<u8>(1);
        let t = Instant::now();
        let r = select! { recv(rx) -> _ => false, default(Duration::from_millis(20)) => true };
        assert!(r && t.elapsed() >= Duration::from_millis(20));
        gvthread::spawn(move |_| {
            gvthread::sleep(Duration::from_millis(5));
            tx.send(4).unwrap();
        });
        let r = select! { recv(rx) -> v => v.ok(), default(Duration::from_secs(20)) => None };
        assert_eq!(r, Some(4));
    });
}

#[test]
fn send_arm_parks_until_room() {
    let _w = watchdog("send_arm_parks_until_room");
    let mut rt = common::rt(2);
    rt.block_on(|| {
        let (tx_a, rx_a) = channel::<u32>(1);
        let (tx_b, rx_b) = channel::<u32>(1);
        tx_a.send(0).unwrap();
        tx_b.send(0).unwrap();
        let consumer = gvthread::spawn(move |_| {
            gvthread::sleep(Duration::from_millis(5));
            (rx_b.recv().unwrap(), rx_b.recv().unwrap(), rx_a.try_recv().unwrap(), rx_a.try_recv().is_err())
        });
        // Both full: parks on both; the consumer frees room in `b` only.
        let which = select! {
            send(tx_a, 1) -> r => { r.unwrap(); 'a' }
            send(tx_b, 2) -> r => { r.unwrap(); 'b' }
        };
        assert_eq!(which, 'b');
        assert_eq!(consumer.join().unwrap(), (0, 2, 0, true), "the losing send sent nothing");
    });
}

#[test]
fn rendezvous_send_and_recv_arms_pair_between_selects() {
    let _w = watchdog("rendezvous_send_and_recv_arms_pair_between_selects");
    let mut rt = common::rt(2);
    rt.block_on(|| {
        const N: u32 = 500;
        let (tx, rx) = channel::<u32>(0);
        let (_dead_tx, dead_rx) = channel::<u32>(0);
        let (dead2_tx, _dead2_rx) = channel::<u32>(0);
        let sender = gvthread::spawn(move |_| {
            for i in 0..N {
                select! {
                    send(tx, i) -> r => r.unwrap(),
                    recv(dead_rx) -> _ => unreachable!(),
                }
            }
        });
        let mut got = Vec::new();
        for _ in 0..N {
            select! {
                recv(rx) -> v => got.push(v.unwrap()),
                send(dead2_tx, 0) -> _ => unreachable!("nobody receives on dead2"),
            }
        }
        sender.join().unwrap();
        assert_eq!(got, (0..N).collect::<Vec<_>>());
    });
}

#[test]
fn a_select_never_pairs_with_itself() {
    let _w = watchdog("a_select_never_pairs_with_itself");
    let (tx, rx) = channel::<u8>(0);
    let r = select! {
        send(tx, 1) -> _ => "sent",
        recv(rx) -> _ => "received",
        default(Duration::from_millis(10)) => "timeout",
    };
    assert_eq!(r, "timeout");
}

#[test]
fn cancelled_arm_fires_on_cancel() {
    let _w = watchdog("cancelled_arm_fires_on_cancel");
    let mut rt = common::rt(2);
    rt.block_on(|| {
        let (_tx, rx) = channel::<u8>(1);
        let parent = CancellationToken::new();
        let child = parent.child();
        let h = gvthread::spawn(move |_| {
            select! {
                recv(rx) -> _ => false,
                cancelled(child) => true,
            }
        });
        gvthread::sleep(Duration::from_millis(5));
        parent.cancel();
        assert!(h.join().unwrap());
    });
}

#[test]
fn cancelled_arm_on_an_os_thread() {
    let _w = watchdog("cancelled_arm_on_an_os_thread");
    let token = CancellationToken::new();
    let t = token.clone();
    let h = std::thread::spawn(move || select! { cancelled(t) => 1 });
    std::thread::sleep(Duration::from_millis(5));
    token.cancel();
    assert_eq!(h.join().unwrap(), 1);
}

#[test]
fn both_ready_arms_are_chosen() {
    let _w = watchdog("both_ready_arms_are_chosen");
    let (tx1, rx1) = unbounded::<u8>();
    let (tx2, rx2) = unbounded::<u8>();
    let mut hits = [0u32; 2];
    for _ in 0..1_000 {
        tx1.send(0).unwrap();
        tx2.send(1).unwrap();
        let i = select! { recv(rx1) -> v => v.unwrap(), recv(rx2) -> v => v.unwrap() };
        hits[i as usize] += 1;
        // Drain the other so both are ready again next time.
        let _ = rx1.try_recv();
        let _ = rx2.try_recv();
    }
    // Random choice: each arm wins about half the time; 1,000 trials put a
    // count below 300 at more than 12 standard deviations.
    assert!(hits[0] > 300 && hits[1] > 300, "unfair: {hits:?}");
}

#[test]
fn operands_are_evaluated_once_in_order() {
    let _w = watchdog("operands_are_evaluated_once_in_order");
    let order = std::cell::RefCell::new(Vec::new());
    let (tx, rx) = channel::<u8>(1);
    let r = select! {
        recv({ order.borrow_mut().push(1); &rx }) -> _ => 0,
        send({ order.borrow_mut().push(2); &tx }, { order.borrow_mut().push(3); 7 }) -> r => { r.unwrap(); 1 }
    };
    assert_eq!(r, 1);
    assert_eq!(*order.borrow(), [1, 2, 3]);
    assert_eq!(rx.try_recv(), Ok(7));
}

#[test]
fn stress_many_selects_lose_and_duplicate_nothing() {
    let _w = watchdog("stress_many_selects_lose_and_duplicate_nothing");
    let mut rt = common::rt(2);
    let (sum, count) = rt.block_on(|| {
        const PER: u64 = 2_000;
        let chans: Vec<_> = [0usize, 1, 0, 4].iter().map(|&c| channel::<u64>(c)).collect();
        let sum = Arc::new(AtomicUsize::new(0));
        let count = Arc::new(AtomicUsize::new(0));
        // Two senders each select-send to any of the 4 channels.
        let senders: Vec<_> = (0..2u64)
            .map(|s| {
                let txs: Vec<_> = chans.iter().map(|(t, _)| t.clone()).collect();
                gvthread::spawn(move |_| {
                    for i in 0..PER {
                        let v = s * PER + i + 1;
                        select! {
                            send(txs[0], v) -> r => r.unwrap(),
                            send(txs[1], v) -> r => r.unwrap(),
                            send(txs[2], v) -> r => r.unwrap(),
                            send(txs[3], v) -> r => r.unwrap(),
                        }
                    }
                })
            })
            .collect();
        // Three receivers: two select over all, one uses plain recv on one.
        let mut receivers = Vec::new();
        for _ in 0..2 {
            let rxs: Vec<_> = chans.iter().map(|(_, r)| r.clone()).collect();
            let (sum, count) = (sum.clone(), count.clone());
            receivers.push(gvthread::spawn(move |_| {
                // Until every channel has reported "empty and disconnected"
                // (such an arm stays ready, so it may report several times).
                let mut done = [false; 4];
                while done.contains(&false) {
                    let (k, v) = select! {
                        recv(rxs[0]) -> v => (0, v),
                        recv(rxs[1]) -> v => (1, v),
                        recv(rxs[2]) -> v => (2, v),
                        recv(rxs[3]) -> v => (3, v),
                    };
                    match v {
                        Ok(v) => {
                            sum.fetch_add(v as usize, Ordering::Relaxed);
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => done[k] = true,
                    }
                }
            }));
        }
        let rx1 = chans[1].1.clone();
        let (s2, c2) = (sum.clone(), count.clone());
        receivers.push(gvthread::spawn(move |_| {
            for v in rx1.iter() {
                s2.fetch_add(v as usize, Ordering::Relaxed);
                c2.fetch_add(1, Ordering::Relaxed);
            }
        }));
        drop(chans);
        for s in senders {
            s.join().unwrap();
        }
        for r in receivers {
            r.join().unwrap();
        }
        (sum.load(Ordering::Relaxed), count.load(Ordering::Relaxed))
    });
    let n = 2 * 2_000usize;
    assert_eq!(count, n, "every message received exactly once");
    assert_eq!(sum, n * (n + 1) / 2);
}

#[test]
fn dynamic_select_over_a_runtime_sized_set() {
    let _w = watchdog("dynamic_select_over_a_runtime_sized_set");
    let mut rt = common::rt(2);
    rt.block_on(|| {
        let chans: Vec<_> = (0..10).map(|_| channel::<usize>(0)).collect();
        for (i, (tx, _)) in chans.iter().enumerate() {
            let tx = tx.clone();
            gvthread::spawn(move |_| tx.send(i * 10).unwrap());
        }
        let mut seen = Vec::new();
        for _ in 0..10 {
            let mut sel = Select::new();
            for (_, rx) in &chans {
                sel.recv(rx);
            }
            let op = sel.select();
            let i = op.index();
            assert_eq!(op.recv(&chans[i].1), Ok(i * 10));
            seen.push(i);
        }
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());

        let (tx, rx) = channel::<String>(1);
        let token = CancellationToken::new();
        let mut sel = Select::new();
        let s = sel.send(&tx, "x".to_string());
        let c = sel.cancelled(&token);
        let op = sel.select_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(op.index(), s);
        assert_ne!(s, c);
        op.send(&tx).unwrap();
        assert_eq!(rx.recv().unwrap(), "x");

        let mut sel = Select::new();
        sel.recv(&rx);
        assert!(sel.select_timeout(Duration::from_millis(5)).is_err());
        assert!(sel.try_select().is_err());
    });
}

#[test]
#[should_panic(expected = "not a receive on this channel")]
fn selected_operation_checks_the_channel() {
    let (tx, rx) = channel::<u8>(1);
    let (_tx2, rx2) = channel::<u8>(1);
    tx.send(1).unwrap();
    let mut sel = Select::new();
    sel.recv(&rx);
    let op = sel.select();
    let _ = op.recv(&rx2);
}

/// Select-senders and plain senders share a capacity-1 channel with many
/// blocked receivers (values are handed over directly to them): a select
/// woken for room that hands its value over must pass the room on, or a
/// plain sender would wait forever.
#[test]
fn select_and_plain_senders_share_room_with_handoffs() {
    let _w = watchdog("select_and_plain_senders_share_room_with_handoffs");
    let mut rt = common::rt(2);
    let n = rt.block_on(|| {
        const PER: usize = 1_000;
        let (tx, rx) = channel::<usize>(1);
        let (_never_tx, never_rx) = channel::<usize>(0);
        let mut hs = Vec::new();
        for s in 0..4 {
            let (tx, never_rx) = (tx.clone(), never_rx.clone());
            hs.push(gvthread::spawn(move |_| {
                for i in 0..PER {
                    if s % 2 == 0 {
                        select! {
                            send(tx, i) -> r => r.unwrap(),
                            recv(never_rx) -> _ => unreachable!(),
                        }
                    } else {
                        tx.send(i).unwrap();
                    }
                }
            }));
        }
        drop(tx);
        let receivers: Vec<_> = (0..6)
            .map(|_| {
                let rx = rx.clone();
                gvthread::spawn(move |_| rx.iter().count())
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        receivers.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
    });
    assert_eq!(n, 4_000);
}
