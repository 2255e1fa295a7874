//! GVThread-local storage.

mod common;

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

static DROPS: AtomicUsize = AtomicUsize::new(0);

struct CountDrop;
impl Drop for CountDrop {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

gvthread::gvthread_local! {
    static COUNTER: Cell<u32> = Cell::new(0);
    static LOG: RefCell<Vec<u32>> = RefCell::new(Vec::new());
    static DROPPER: CountDrop = CountDrop;
}

#[test]
fn each_gvthread_has_its_own_value() {
    let mut rt = common::rt(2);
    let r = rt.block_on(|| {
        let hs: Vec<_> = (0..50u32)
            .map(|i| {
                gvthread::spawn(move |_| {
                    for _ in 0..i {
                        COUNTER.with(|c| c.set(c.get() + 1));
                        gvthread::yield_now();
                    }
                    LOG.with(|l| l.borrow_mut().push(i));
                    (COUNTER.with(|c| c.get()), LOG.with(|l| l.borrow().clone()))
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    });
    for (i, (count, log)) in r.into_iter().enumerate() {
        assert_eq!(count, i as u32);
        assert_eq!(log, vec![i as u32]);
    }
}

#[test]
fn values_are_dropped_when_the_gvthread_ends() {
    let mut rt = common::rt(2);
    let before = DROPS.load(Ordering::SeqCst);
    rt.block_on(|| {
        let hs: Vec<_> = (0..30).map(|_| gvthread::spawn(|_| DROPPER.with(|_| ()))).collect();
        for h in hs {
            h.join().unwrap();
        }
        // Untouched keys are never created, so never dropped.
        let hs: Vec<_> = (0..30).map(|_| gvthread::spawn(|_| COUNTER.with(|c| c.get()))).collect();
        for h in hs {
            h.join().unwrap();
        }
    });
    // Other tests in this binary may drop DROPPERs concurrently: at least ours.
    assert!(DROPS.load(Ordering::SeqCst) - before >= 30);
}

#[test]
fn outside_gvthreads_each_os_thread_has_a_value() {
    COUNTER.with(|c| c.set(41));
    let other = std::thread::spawn(|| COUNTER.with(|c| c.get())).join().unwrap();
    assert_eq!(other, 0);
    assert_eq!(COUNTER.with(|c| c.get()), 41);
}

#[test]
fn reference_stays_valid_across_blocking_calls() {
    let mut rt = common::rt(2);
    let total = rt.block_on(|| {
        let sum = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..20)
            .map(|_| {
                let sum = sum.clone();
                gvthread::spawn(move |_| {
                    LOG.with(|l| {
                        for k in 0..100 {
                            l.borrow_mut().push(k);
                            gvthread::yield_now();
                            gvthread::sleep(std::time::Duration::from_micros(10));
                        }
                        sum.fetch_add(l.borrow().iter().map(|&x| x as usize).sum::<usize>(), Ordering::SeqCst);
                    })
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        sum.load(Ordering::SeqCst)
    });
    assert_eq!(total, 20 * 4950);
}

static TEARDOWN_DROPS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

struct CreatedDuringTeardown;
impl Drop for CreatedDuringTeardown {
    fn drop(&mut self) {
        TEARDOWN_DROPS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

struct CreatesAnotherOnDrop;
impl Drop for CreatesAnotherOnDrop {
    fn drop(&mut self) {
        // A destructor that touches another GVThread-local: the value is
        // created during teardown and must be dropped too.
        LATE.with(|_| ());
    }
}

gvthread::gvthread_local! {
    static EARLY: CreatesAnotherOnDrop = CreatesAnotherOnDrop;
    static LATE: CreatedDuringTeardown = CreatedDuringTeardown;
}

#[test]
fn values_created_during_teardown_are_dropped() {
    let _w = common::watchdog("values_created_during_teardown_are_dropped", std::time::Duration::from_secs(60));
    let mut rt = common::rt(2);
    rt.block_on(|| {
        let hs: Vec<_> = (0..100).map(|_| gvthread::spawn(|_| EARLY.with(|_| ()))).collect();
        for h in hs {
            h.join().unwrap();
        }
    });
    assert_eq!(TEARDOWN_DROPS.load(std::sync::atomic::Ordering::SeqCst), 100);
}
