//! A GVThread that blocks while unwinding stays on its OS thread: std counts
//! panics per OS thread, and finishing an unwind on another thread skews both
//! counts (later panics then abort the process). Each scenario runs in its own
//! process: the failure is an abort.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gvthread::{Runtime, SchedulerConfig};

const LIMIT: Duration = Duration::from_secs(120);

/// Blocks in every way a GVThread can while it is dropped.
struct BlocksOnDrop {
    dropped: Arc<AtomicUsize>,
    /// Also spawn and talk to a GVThread (not at shutdown: spawns are refused).
    spawns: bool,
}

impl Drop for BlocksOnDrop {
    fn drop(&mut self) {
        assert!(std::thread::panicking(), "dropped while unwinding, on the thread that panicked");
        gvthread::sleep(Duration::from_millis(1));
        gvthread::yield_now();
        if self.spawns {
            let (tx, rx) = gvthread::channel::<u8>(0);
            let h = gvthread::spawn(move |_| tx.send(1).unwrap());
            assert_eq!(rx.recv().unwrap(), 1);
            h.join().unwrap();
        }
        gvthread_futures::block_on(async { 7 });
        // Still the thread that panicked: its count says so.
        assert!(std::thread::panicking());
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn blocking_in_drop_while_unwinding_keeps_panic_counts_right() {
    if !common::isolated("blocking_in_drop_while_unwinding_keeps_panic_counts_right", LIMIT) {
        return;
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let rt = Runtime::new(SchedulerConfig::default().num_workers(2));
    // A CPU hog beside them makes roles change threads (forced preemption).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    let hog = rt.handle().spawn(move |_| {
        while !s.load(Ordering::Relaxed) {
            std::hint::spin_loop();
        }
    });
    let hs: Vec<_> = (0..40)
        .map(|i| {
            let d = dropped.clone();
            rt.handle().spawn(move |_| {
                let _guard = BlocksOnDrop { dropped: d, spawns: true };
                gvthread::sleep(Duration::from_micros(100 * (i % 5)));
                panic!("boom {i}");
            })
        })
        .collect();
    for h in hs {
        assert!(h.join().unwrap_err().is_panic());
    }
    stop.store(true, Ordering::Relaxed);
    hog.join().unwrap();
    assert_eq!(dropped.load(Ordering::SeqCst), 40);
    // Later panics on the same workers are ordinary panics, not aborts.
    let again = rt.handle().spawn(|_| panic!("later"));
    assert!(again.join().unwrap_err().is_panic());
    drop(rt);
}

#[test]
fn shutdown_unwinding_through_blocking_drops_does_not_abort() {
    if !common::isolated("shutdown_unwinding_through_blocking_drops_does_not_abort", LIMIT) {
        return;
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let rt = Runtime::new(SchedulerConfig::default().num_workers(2).shutdown_timeout(Duration::from_secs(30)));
    let (_keep_tx, rx) = gvthread::channel::<()>(0);
    for _ in 0..20 {
        let (d, rx) = (dropped.clone(), rx.clone());
        // Parked until shutdown unwinds them out of `recv`; their guard
        // blocks while they unwind.
        drop(rt.handle().spawn(move |_| {
            let _guard = BlocksOnDrop { dropped: d, spawns: false };
            let _ = rx.recv();
        }));
    }
    std::thread::sleep(Duration::from_millis(50));
    drop(rt);
    assert_eq!(dropped.load(Ordering::SeqCst), 20);
}
