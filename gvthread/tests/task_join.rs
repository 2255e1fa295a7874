//! Join results, panics, cancellation tokens.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A result that counts its drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn panic_comes_back_as_join_error() {
    let mut rt = common::rt(2);
    rt.block_on(|| {
        let n = std::hint::black_box(7);
        let h = gvthread::spawn(move |_| -> u32 { panic!("kaboom {n}") });
        let e = h.join().unwrap_err();
        assert!(e.is_panic() && !e.is_cancelled());
        assert_eq!(e.to_string(), "GVThread panicked: kaboom 7");
        let payload = e.into_panic();
        assert_eq!(payload.downcast_ref::<String>().map(String::as_str), Some("kaboom 7"));
    });
}

#[test]
fn panics_do_not_disturb_other_gvthreads() {
    let mut rt = common::rt(2);
    let (ok, bad) = rt.block_on(|| {
        let hs: Vec<_> = (0..200u32)
            .map(|i| {
                gvthread::spawn(move |_| {
                    gvthread::yield_now();
                    if i % 3 == 0 {
                        panic!("planned");
                    }
                    i
                })
            })
            .collect();
        let rs: Vec<_> = hs.into_iter().map(|h| h.join()).collect();
        (rs.iter().filter(|r| r.is_ok()).count(), rs.iter().filter(|r| r.is_err()).count())
    });
    assert_eq!((ok, bad), (133, 67));
}

#[test]
fn is_finished_and_id() {
    let mut rt = common::rt(1);
    rt.block_on(|| {
        let h = gvthread::spawn(|_| gvthread::current_id().unwrap());
        let id = h.id();
        while !h.is_finished() {
            gvthread::yield_now();
        }
        assert_eq!(h.join().unwrap(), id);
    });
}

#[test]
fn cancel_through_the_join_handle() {
    let _w = common::watchdog("cancel_through_the_join_handle", Duration::from_secs(60));
    let mut rt = common::rt(2);
    rt.block_on(|| {
        let h = gvthread::spawn(|token| {
            let mut spins = 0u64;
            while !token.is_cancelled() {
                spins += 1;
                gvthread::sleep(Duration::from_millis(1));
            }
            spins
        });
        gvthread::sleep(Duration::from_millis(10));
        h.cancel();
        h.join().unwrap();
    });
}

#[test]
fn tokens_form_a_tree_along_spawns() {
    let _w = common::watchdog("tokens_form_a_tree_along_spawns", Duration::from_secs(60));
    let mut rt = common::rt(2);
    rt.block_on(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        let parent = gvthread::spawn(move |token| {
            let child = gvthread::spawn(|child_token| {
                let grandchild = gvthread::spawn(|t| {
                    while !t.is_cancelled() {
                        gvthread::sleep(Duration::from_millis(1));
                    }
                    "grandchild saw it"
                });
                while !child_token.is_cancelled() {
                    gvthread::sleep(Duration::from_millis(1));
                }
                grandchild.join().unwrap()
            });
            tx.send(()).unwrap();
            while !token.is_cancelled() {
                gvthread::sleep(Duration::from_millis(1));
            }
            child.join().unwrap()
        });
        rx.recv().unwrap();
        let sibling = gvthread::spawn(|t| {
            gvthread::sleep(Duration::from_millis(20));
            t.is_cancelled()
        });
        parent.cancel();
        assert_eq!(parent.join().unwrap(), "grandchild saw it");
        assert!(!sibling.join().unwrap(), "cancelling one subtree leaves siblings alone");
    });
}

#[test]
fn current_token_is_the_gvthreads() {
    let mut rt = common::rt(1);
    rt.block_on(|| {
        let h = gvthread::spawn(|t| {
            let mine = gvthread::current_token().unwrap();
            t.cancel();
            mine.is_cancelled()
        });
        assert!(h.join().unwrap());
    });
    assert!(gvthread::current_token().is_none());
}

#[test]
fn result_dropped_when_handle_dropped() {
    let drops = Arc::new(AtomicUsize::new(0));
    let mut rt = common::rt(2);
    let d = drops.clone();
    rt.block_on(move || {
        for _ in 0..100 {
            let d = d.clone();
            drop(gvthread::spawn(move |_| Counted(d)));
        }
        while d.load(Ordering::SeqCst) < 100 {
            gvthread::sleep(Duration::from_millis(1));
        }
    });
    assert_eq!(drops.load(Ordering::SeqCst), 100, "detached results are dropped, not leaked");
}

#[test]
fn a_gvthreads_token_outlives_it_and_still_follows_its_ancestors() {
    let _w = common::watchdog("a_gvthreads_token_outlives_it", Duration::from_secs(60));
    let mut rt = common::rt(2);
    rt.block_on(|| {
        // Cancelled through the handle before the GVThread ever looked at it.
        let h = gvthread::spawn(|t| {
            gvthread::sleep(Duration::from_millis(5));
            t
        });
        h.cancel();
        assert!(h.join().unwrap().is_cancelled(), "a cancel before the first look is seen");

        // Returned (so kept past the GVThread's end), untouched until then.
        let (ready_tx, ready_rx) = gvthread::channel::<()>(1);
        let outer = gvthread::spawn(move |_| {
            let inner = gvthread::spawn(|t| t).join().unwrap();
            assert!(!inner.is_cancelled());
            let (tx, rx) = gvthread::channel::<()>(1);
            let waiter = gvthread::spawn(move |_| {
                // Its parent's token, cancelled from outside while it waits.
                gvthread::select! {
                    cancelled(inner) => {
                        drop(tx);
                        "saw it"
                    }
                }
            });
            // Only now may the outside cancel (no race with the check above).
            ready_tx.send(()).unwrap();
            rx.recv().unwrap_err();
            waiter.join().unwrap()
        });
        ready_rx.recv().unwrap();
        outer.cancel();
        assert_eq!(outer.join().unwrap(), "saw it");
    });
}

#[test]
fn a_detached_result_is_dropped_though_its_token_lives_on() {
    let _w = common::watchdog("a_detached_result_is_dropped_though_its_token_lives_on", Duration::from_secs(60));
    let drops = Arc::new(AtomicUsize::new(0));
    let kept = Arc::new(Mutex::new(Vec::new()));
    let mut rt = common::rt(2);
    let (d, k) = (drops.clone(), kept.clone());
    rt.block_on(move || {
        for i in 0..200 {
            let (d, k) = (d.clone(), k.clone());
            let h = gvthread::spawn(move |t| {
                if i % 2 == 0 {
                    // The result holds the GVThread's own token: no cycle.
                    return (Some(t), Counted(d));
                }
                k.lock().unwrap().push(t);
                (None, Counted(d))
            });
            // Dropped before or after the GVThread ends, by turns.
            if i % 4 < 2 {
                gvthread::yield_now();
            }
            drop(h);
        }
        while d.load(Ordering::SeqCst) < 200 {
            gvthread::sleep(Duration::from_millis(1));
        }
    });
    assert_eq!(drops.load(Ordering::SeqCst), 200, "every detached result dropped");
    assert_eq!(kept.lock().unwrap().len(), 100);
    assert!(kept.lock().unwrap().iter().all(|t| !t.is_cancelled()));
}

#[test]
fn joiners_of_every_kind_wake_while_the_gvthread_still_runs() {
    // The join state keeps only a GVThread joiner of its own runtime in
    // place; the others (an OS thread, a GVThread of another runtime) get
    // a waiter slot boxed by the first of them. Each joins a GVThread that
    // is still blocked, so it must register and be woken.
    let _w = common::watchdog("joiners_of_every_kind_wake_while_the_gvthread_still_runs", Duration::from_secs(60));
    let rt = common::rt(2);
    let other = common::rt(1);
    for round in 0..20u64 {
        let (go_tx, go_rx) = gvthread::channel::<u64>(1);
        let h = rt.handle().spawn(move |_| go_rx.recv().unwrap() * 2);
        // An OS thread joins (the boxed slot).
        let (go2_tx, go2_rx) = gvthread::channel::<u64>(1);
        let h2 = rt.handle().spawn(move |_| go2_rx.recv().unwrap() + 1);
        let os = std::thread::spawn(move || h2.join().unwrap());
        // A GVThread of another runtime joins (the boxed slot too: its
        // (slot, generation) means nothing to the joinee's runtime).
        let foreign = other.handle().spawn(move |_| h.join().unwrap());
        std::thread::sleep(Duration::from_millis(2));
        go_tx.send(round).unwrap();
        go2_tx.send(round).unwrap();
        assert_eq!(foreign.join().unwrap(), round * 2);
        assert_eq!(os.join().unwrap(), round + 1);
    }
}

#[test]
fn racing_cancels_make_one_token_node() {
    // Four OS threads cancel one GVThread's token at once: each needs the
    // token's node, made on first need, so they race to publish it. The
    // GVThread waits on its token and must see the cancellation.
    let _w = common::watchdog("racing_cancels_make_one_token_node", Duration::from_secs(60));
    let rt = common::rt(2);
    for _ in 0..50 {
        let h = Arc::new(rt.handle().spawn(|t| gvthread::sleep_or_cancelled(Duration::from_secs(30), &t).is_err()));
        let barrier = Arc::new(std::sync::Barrier::new(4));
        let cancellers: Vec<_> = (0..4)
            .map(|_| {
                let (h, b) = (h.clone(), barrier.clone());
                std::thread::spawn(move || {
                    b.wait();
                    h.cancel();
                })
            })
            .collect();
        for c in cancellers {
            c.join().unwrap();
        }
        let h = Arc::into_inner(h).expect("every canceller is done with the handle");
        assert!(h.join().unwrap(), "the sleep returned early, cancelled");
    }
}

#[test]
fn foreign_joins_race_the_completion() {
    // No pause this time: the joiner boxes its waiter slot and raises the
    // flag while the GVThread may be completing on another core, so every
    // interleaving of registration and completion gets its turns.
    let _w = common::watchdog("foreign_joins_race_the_completion", Duration::from_secs(120));
    let rt = common::rt(2);
    let other = common::rt(1);
    for i in 0..3_000u64 {
        let h = rt.handle().spawn(move |_| i);
        assert_eq!(h.join().unwrap(), i, "joined from an OS thread");
    }
    let h = rt.handle();
    let sum = other
        .handle()
        .spawn(move |_| (0..3_000u64).map(|i| h.spawn(move |_| i).join().unwrap()).sum::<u64>())
        .join()
        .unwrap();
    assert_eq!(sum, (0..3_000u64).sum::<u64>(), "joined from a GVThread of another runtime");
}
