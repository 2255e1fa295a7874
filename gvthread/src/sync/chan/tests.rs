//! Unit tests of the channel protocol that need private access (wake
//! counting, pass-on of notifications, offer withdrawal).

use super::*;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake};

struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counter() -> (Arc<Count>, Waker) {
    let c = Arc::new(Count(AtomicUsize::new(0)));
    (c.clone(), Waker::from(c))
}

fn poll<F: Future + Unpin>(f: &mut F, w: &Waker) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(w))
}

struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn one_wake_per_item_and_cancelled_recv_passes_it_on() {
    let (tx, rx) = channel::<u32>(4);
    let (ca, wa) = counter();
    let (cb, wb) = counter();
    let mut a = rx.recv_async();
    let mut b = rx.recv_async();
    assert!(poll(&mut a, &wa).is_pending());
    assert!(poll(&mut b, &wb).is_pending());
    tx.send(7).unwrap();
    assert_eq!((ca.0.load(Ordering::SeqCst), cb.0.load(Ordering::SeqCst)), (1, 0), "only the first waiter is woken");
    drop(a); // cancelled after being told an item is available
    assert_eq!(cb.0.load(Ordering::SeqCst), 1, "the wake is passed on");
    assert_eq!(poll(&mut b, &wb), Poll::Ready(Ok(7)));
    assert!(rx.chan.lock().recv_q.is_empty());
}

#[test]
fn cancelled_send_future_passes_room_on() {
    let (tx, rx) = channel::<u32>(1);
    tx.send(0).unwrap();
    let (ca, wa) = counter();
    let (cb, wb) = counter();
    let mut a = tx.send_async(1);
    let mut b = tx.send_async(2);
    assert!(poll(&mut a, &wa).is_pending());
    assert!(poll(&mut b, &wb).is_pending());
    assert_eq!(rx.recv(), Ok(0));
    assert_eq!((ca.0.load(Ordering::SeqCst), cb.0.load(Ordering::SeqCst)), (1, 0));
    drop(a);
    assert_eq!(cb.0.load(Ordering::SeqCst), 1);
    assert_eq!(poll(&mut b, &wb), Poll::Ready(Ok(())));
    assert_eq!(rx.try_recv(), Ok(2));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn repoll_with_new_waker_replaces_registration() {
    let (tx, rx) = channel::<u32>(1);
    let (ca, wa) = counter();
    let (cb, wb) = counter();
    let mut f = rx.recv_async();
    assert!(poll(&mut f, &wa).is_pending());
    assert!(poll(&mut f, &wb).is_pending());
    assert_eq!(rx.chan.lock().recv_q.len(), 1);
    tx.send(1).unwrap();
    assert_eq!((ca.0.load(Ordering::SeqCst), cb.0.load(Ordering::SeqCst)), (0, 1));
    assert_eq!(poll(&mut f, &wb), Poll::Ready(Ok(1)));
}

#[test]
fn rendezvous_send_future_dropped_withdraws_its_offer() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = channel::<DropCount>(0);
    let (_c, w) = counter();
    let mut f = tx.send_async(DropCount(drops.clone()));
    assert!(poll(&mut f, &w).is_pending());
    assert_eq!(rx.chan.lock().buf.len(), 1, "offered");
    drop(f);
    assert_eq!(drops.load(Ordering::SeqCst), 1, "withdrawn value dropped with the future");
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
}

#[test]
fn rendezvous_send_future_completes_when_taken() {
    let (tx, rx) = channel::<u32>(0);
    let (c, w) = counter();
    let mut f = tx.send_async(5);
    assert!(poll(&mut f, &w).is_pending());
    assert_eq!(rx.try_recv(), Ok(5));
    assert_eq!(c.0.load(Ordering::SeqCst), 1, "the offering task is woken");
    assert_eq!(poll(&mut f, &w), Poll::Ready(Ok(())));
}

#[test]
fn rendezvous_try_send_needs_a_waiting_receiver() {
    let (tx, rx) = channel::<u32>(0);
    assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)));
    let (_c, w) = counter();
    let mut f = rx.recv_async();
    assert!(poll(&mut f, &w).is_pending());
    assert_eq!(tx.try_send(2), Ok(()));
    assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)), "the one waiting receiver is spoken for");
    assert_eq!(poll(&mut f, &w), Poll::Ready(Ok(2)));
}

#[test]
fn last_receiver_drop_discards_buffered_values_and_wakes_senders() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = channel::<DropCount>(2);
    tx.send(DropCount(drops.clone())).unwrap();
    tx.send(DropCount(drops.clone())).unwrap();
    let (c, w) = counter();
    let mut f = tx.send_async(DropCount(drops.clone()));
    assert!(poll(&mut f, &w).is_pending());
    drop(rx);
    assert_eq!(drops.load(Ordering::SeqCst), 2);
    assert_eq!(c.0.load(Ordering::SeqCst), 1);
    match poll(&mut f, &w) {
        Poll::Ready(Err(SendError(v))) => drop(v),
        _ => panic!("expected a disconnected send"),
    }
    assert_eq!(drops.load(Ordering::SeqCst), 3);
}

#[test]
fn poll_recv_registration_is_removed_when_the_handle_drops() {
    let (tx, rx) = channel::<u32>(1);
    let mut rx2 = rx.clone();
    let (c2, w2) = counter();
    let (c1, w1) = counter();
    assert!(rx2.poll_recv(&mut Context::from_waker(&w2)).is_pending());
    let mut f = rx.recv_async();
    assert!(poll(&mut f, &w1).is_pending());
    tx.send(1).unwrap(); // notifies rx2 (first in line)
    assert_eq!(c2.0.load(Ordering::SeqCst), 1);
    drop(rx2); // never used it: passes the wake on
    assert_eq!(c1.0.load(Ordering::SeqCst), 1);
    assert_eq!(poll(&mut f, &w1), Poll::Ready(Ok(1)));
}

#[test]
fn timed_out_notified_receiver_passes_the_wake_on() {
    // A blocking receiver's registration (as `recv_timeout` makes it) is
    // notified, then it times out without taking the value.
    let (tx, rx) = channel::<u32>(1);
    let mut reg = None;
    assert!(matches!(rx.chan.recv_step(&mut reg, Wait::Current), RecvStep::Empty));
    let (c, w) = counter();
    let mut f = rx.recv_async();
    assert!(poll(&mut f, &w).is_pending());
    tx.send(9).unwrap(); // notifies `reg`
    assert_eq!(c.0.load(Ordering::SeqCst), 0);
    rx.chan.leave(Side::Recv, reg.take().unwrap());
    assert_eq!(c.0.load(Ordering::SeqCst), 1);
    assert_eq!(poll(&mut f, &w), Poll::Ready(Ok(9)));
}

#[test]
fn send_and_sync_bounds() {
    fn check<X: Send + Sync + Clone>() {}
    check::<Sender<u8>>();
    check::<Receiver<u8>>();
    check::<Sender<std::cell::Cell<u8>>>(); // T: Send is enough, like crossbeam
    fn check_send<X: Send>() {}
    check_send::<RecvFut<'static, u8>>();
    check_send::<SendFut<'static, u8>>();
}

/// The runtime's reference count, read from inside one of its GVThreads.
fn runtime_refs() -> usize {
    let m = crate::sched::machine::current().expect("inside a GVThread");
    Arc::strong_count(&m.shared)
}

#[test]
fn parked_waiters_hold_no_reference_on_the_runtime_and_any_party_wakes_them() {
    // No forced preemption: a spare thread started meanwhile (a slow or
    // emulated machine) would hold a reference of its own.
    let config = || crate::SchedulerConfig::default().num_workers(1).enable_forced_preempt(false);
    let mut rt = crate::Runtime::new(config());
    let mut other = crate::Runtime::new(config());
    let (tx, rx) = channel::<u32>(1);
    let (sel_tx, sel_rx) = channel::<u32>(1);
    let (tx2, rx2) = (tx.clone(), sel_tx.clone());
    let got = rt.block_on(move || {
        let receiver = crate::spawn(move |_| rx.recv().unwrap());
        let selector = crate::spawn(move |_| {
            crate::select! {
                recv(sel_rx) -> v => v.unwrap(),
            }
        });
        let before = runtime_refs();
        crate::yield_now(); // both run and park: one in `recv`, one in a select
        assert!(!receiver.is_finished() && !selector.is_finished());
        assert_eq!(runtime_refs(), before, "waiting took no reference on the runtime");
        // Woken from a plain OS thread (a counted reference, taken under the
        // channel's lock) and from a GVThread of another runtime.
        std::thread::spawn(move || tx2.send(5).unwrap()).join().unwrap();
        other.block_on(move || rx2.send(6).unwrap());
        drop(other);
        (receiver.join().unwrap(), selector.join().unwrap())
    });
    assert_eq!(got, (5, 6));
    drop((tx, sel_tx));
}

/// A GVThread frozen by forced preemption in the middle of a ring operation
/// must not leave other GVThreads spinning on its slot (see `ring`, "Forced
/// preemption"): before ring operations ran in runtime sections, the 4×4
/// MPMC bench (and this loop, run standalone in release builds) hung within
/// a few rounds. Short slices make preemptions frequent and a full ring
/// makes wrap-arounds onto a half-popped slot likely; the hang is a race, so
/// a pass here is evidence, not proof. Bounded (a fixed message count); a
/// watchdog reports a hang instead of blocking CI.
#[test]
fn mpmc_beside_forced_preemption_does_not_hang() {
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d = done.clone();
    std::thread::spawn(move || {
        let t = std::time::Instant::now();
        while !d.load(Ordering::SeqCst) {
            if t.elapsed() > Duration::from_secs(240) {
                eprintln!("mpmc_beside_forced_preemption_does_not_hang: hung");
                std::process::abort();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let per: u64 = if cfg!(debug_assertions) { 20_000 } else { 500_000 };
    let mut rt =
        crate::Runtime::new(crate::SchedulerConfig::default().num_workers(2).time_slice(Duration::from_millis(1)));
    for _round in 0..3 {
        let sum = rt.block_on(move || {
            let (tx, rx) = channel::<u64>(64);
            let producers: Vec<_> = (0..4)
                .map(|_| {
                    let tx = tx.clone();
                    crate::spawn(move |_| (0..per).for_each(|i| tx.send(i).unwrap()))
                })
                .collect();
            drop(tx);
            let consumers: Vec<_> = (0..4)
                .map(|_| {
                    let rx = rx.clone();
                    crate::spawn(move |_| rx.iter().sum::<u64>())
                })
                .collect();
            drop(rx);
            producers.into_iter().for_each(|p| p.join().unwrap());
            consumers.into_iter().map(|c| c.join().unwrap()).sum::<u64>()
        });
        assert_eq!(sum, 4 * (per * (per - 1) / 2));
    }
    done.store(true, Ordering::SeqCst);
}
