//! Where GVThreads resume: by default only on the OS threads of the worker
//! role where they started; under the `free_migration` opt-in anywhere, and
//! runtime TLS reads must follow them. Run in release too (`cargo test
//! --release`): that is where LLVM would cache a thread-local address across
//! the switch.

mod common;

use std::collections::HashSet;
use std::time::Duration;

#[test]
fn current_id_survives_migration() {
    let _w = common::watchdog("current_id_survives_migration", Duration::from_secs(120));
    // SAFETY: these GVThreads keep no thread-bound state across yields.
    let config = unsafe { gvthread::SchedulerConfig::default().free_migration(true) };
    let mut rt = gvthread::Runtime::new(config.num_workers(2));
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

/// The worker role an OS thread serves, from its name
/// (`gvthread-worker-N`, `gvthread-spare-N`).
fn role_of_current_thread() -> String {
    let t = std::thread::current();
    let name = t.name().expect("machine threads are named");
    name.rsplit('-').next().unwrap().to_string()
}

#[test]
fn started_gvthreads_stay_on_their_role() {
    let _w = common::watchdog("started_gvthreads_stay_on_their_role", Duration::from_secs(120));
    let mut rt = common::rt(2);
    let (roles_used, moved) = rt.block_on(|| {
        let hs: Vec<_> = (0..64)
            .map(|_| {
                gvthread::spawn(|_| {
                    let me = gvthread::current_id().unwrap();
                    let mut roles = HashSet::new();
                    for i in 0..2_000 {
                        roles.insert(role_of_current_thread());
                        if i % 2 == 0 {
                            gvthread::yield_now();
                        } else {
                            gvthread::sleep(Duration::from_micros(1));
                        }
                        assert_eq!(gvthread::current_id(), Some(me));
                    }
                    roles
                })
            })
            .collect();
        let sets: Vec<HashSet<String>> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        let all: HashSet<String> = sets.iter().flatten().cloned().collect();
        (all.len(), sets.iter().filter(|s| s.len() != 1).count())
    });
    assert_eq!(moved, 0, "a started GVThread ran on the threads of two worker roles");
    // Unstarted GVThreads are balanced: both roles got some (stealing).
    assert_eq!(roles_used, 2, "all 64 GVThreads started on one role: no load balancing");
}
