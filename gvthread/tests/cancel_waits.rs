//! Cancellation-aware waits: a GVThread (or OS thread) blocked in
//! `recv_or_cancelled`, `send_or_cancelled`, `sleep_or_cancelled` or a
//! `cancelled` select arm returns as soon as its token (or an ancestor) is
//! cancelled, and no message is lost in the race. Each test is guarded by a
//! watchdog far shorter than the waits it interrupts.

mod common;

use std::time::Duration;

use gvthread::{CancellationToken, Cancelled, RecvCancelError, SendCancelError, channel, sleep_or_cancelled};

fn watchdog(name: &'static str) -> common::Watchdog {
    common::watchdog(name, Duration::from_secs(60))
}

#[test]
fn cancel_wakes_a_long_sleep() {
    let _w = watchdog("cancel_wakes_a_long_sleep");
    let mut rt = common::rt(2);
    rt.block_on(|| {
        // Far longer than the watchdog: only the cancellation can end it.
        let h = gvthread::spawn(|token| sleep_or_cancelled(Duration::from_secs(3_600), &token));
        gvthread::sleep(Duration::from_millis(2));
        h.cancel();
        assert_eq!(h.join().unwrap(), Err(Cancelled));
        // Not cancelled: it sleeps the whole time and says so.
        let token = CancellationToken::new();
        assert_eq!(sleep_or_cancelled(Duration::from_millis(3), &token), Ok(()));
    });
}

#[test]
fn cancel_wakes_a_blocked_recv_and_send() {
    let _w = watchdog("cancel_wakes_a_blocked_recv_and_send");
    let mut rt = common::rt(2);
    rt.block_on(|| {
        let (tx, rx) = channel::<u32>(0);
        let r = gvthread::spawn(move |token| rx.recv_or_cancelled(&token));
        let s = gvthread::spawn(move |token| {
            let (tx2, _rx2) = channel::<u32>(0);
            tx2.send_or_cancelled(5, &token)
        });
        gvthread::sleep(Duration::from_millis(2));
        r.cancel();
        s.cancel();
        assert_eq!(r.join().unwrap(), Err(RecvCancelError::Cancelled));
        assert_eq!(s.join().unwrap(), Err(SendCancelError::Cancelled(5)));
        drop(tx);
    });
}

#[test]
fn ancestor_cancellation_reaches_a_waiting_descendant() {
    let _w = watchdog("ancestor_cancellation_reaches_a_waiting_descendant");
    let root = CancellationToken::new();
    let grandchild = root.child().child();
    let (_tx, rx) = channel::<u8>(1);
    let h = std::thread::spawn(move || rx.recv_or_cancelled(&grandchild));
    std::thread::sleep(Duration::from_millis(2));
    root.cancel();
    assert_eq!(h.join().unwrap(), Err(RecvCancelError::Cancelled));
}

#[test]
fn already_cancelled_token_fails_at_once_without_taking_a_value() {
    let (tx, rx) = channel::<u8>(1);
    tx.send(1).unwrap();
    let token = CancellationToken::new();
    token.cancel();
    assert_eq!(rx.recv_or_cancelled(&token), Err(RecvCancelError::Cancelled));
    assert_eq!(rx.try_recv(), Ok(1), "the value stayed in the channel");
    assert_eq!(sleep_or_cancelled(Duration::from_secs(3_600), &token), Err(Cancelled));
}

#[test]
fn no_message_lost_when_cancel_races_a_send() {
    let _w = watchdog("no_message_lost_when_cancel_races_a_send");
    let mut rt = common::rt(2);
    rt.block_on(|| {
        for i in 0..300u32 {
            let (tx, rx) = channel::<u32>(if i % 2 == 0 { 0 } else { 1 });
            let rx2 = rx.clone();
            let h = gvthread::spawn(move |token| rx2.recv_or_cancelled(&token));
            if i % 3 == 0 {
                gvthread::yield_now();
            }
            let sender = gvthread::spawn(move |_| tx.send_timeout(i, Duration::from_millis(5)).is_ok());
            h.cancel();
            let got = h.join().unwrap();
            let sent = sender.join().unwrap();
            let left = rx.try_recv().ok();
            match got {
                Ok(v) => assert!(v == i && sent && left.is_none()),
                Err(RecvCancelError::Cancelled) => {
                    // Either the send timed out (rendezvous, nobody took it)
                    // or the value is still in the channel.
                    assert_eq!(sent, left == Some(i), "round {i}: sent {sent}, left {left:?}");
                }
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
    });
}
