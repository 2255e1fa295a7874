//! GVThreads resume on other workers; runtime TLS reads must follow them.
//! Run in release too (`cargo test --release`): that is where LLVM would
//! cache a thread-local address across the switch.

mod common;

use std::collections::HashSet;
use std::time::Duration;

#[test]
fn current_id_survives_migration() {
    let _w = common::watchdog("current_id_survives_migration", Duration::from_secs(120));
    let mut rt = common::rt(2);
    let migrated = rt.block_on(|| {
        let hs: Vec<_> = (0..64)
            .map(|_| {
                gvthread::spawn(|_| {
                    let me = gvthread::current_id().unwrap();
                    let mut threads = HashSet::new();
                    for _ in 0..2_000 {
                        threads.insert(std::thread::current().id());
                        gvthread::yield_now();
                        // If a stale TLS address were used, we would read the
                        // other worker's current GVThread here.
                        assert_eq!(gvthread::current_id(), Some(me));
                        if threads.len() > 1 {
                            // Keep going a bit after migrating.
                        }
                    }
                    threads.len() > 1
                })
            })
            .collect();
        hs.into_iter().filter(|_| true).map(|h| h.join().unwrap()).filter(|m| *m).count()
    });
    assert!(migrated > 0, "no GVThread ever migrated; the test proves nothing");
}

gvthread::gvthread_local! {
    static MINE: std::cell::Cell<u64> = std::cell::Cell::new(0);
}

#[test]
fn gvthread_locals_follow_their_gvthread() {
    let _w = common::watchdog("gvthread_locals_follow_their_gvthread", Duration::from_secs(120));
    let mut rt = common::rt(2);
    rt.block_on(|| {
        let hs: Vec<_> = (1..=64u64)
            .map(|i| {
                gvthread::spawn(move |_| {
                    MINE.with(|c| c.set(i));
                    for _ in 0..1_000 {
                        gvthread::yield_now();
                        assert_eq!(MINE.with(|c| c.get()), i);
                    }
                    MINE.with(|c| c.get())
                })
            })
            .collect();
        for (i, h) in (1..=64u64).zip(hs) {
            assert_eq!(h.join().unwrap(), i);
        }
    });
}
