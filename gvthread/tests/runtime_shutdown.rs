//! Dropping a runtime never hangs, whatever its GVThreads are doing.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gvthread::{Runtime, SchedulerConfig};

#[test]
fn shutdown_unwinds_gvthreads_blocked_forever() {
    let _w = common::watchdog("shutdown_unwinds_gvthreads_blocked_forever", Duration::from_secs(60));
    struct Flag(Arc<AtomicUsize>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    // A timeout far beyond the watchdog: only the unwinding lets this finish.
    let rt = Runtime::new(SchedulerConfig::default().num_workers(2).shutdown_timeout(Duration::from_secs(3600)));
    let mut joins = Vec::new();
    for _ in 0..50 {
        let flag = Flag(dropped.clone());
        joins.push(rt.handle().spawn(move |_| {
            let _keep = flag;
            gvthread::sleep(Duration::from_secs(3600));
        }));
    }
    // Let them reach their sleep (either way they must unwind).
    std::thread::sleep(Duration::from_millis(50));
    drop(rt);
    for j in joins {
        assert!(j.join().unwrap_err().is_cancelled());
    }
    assert_eq!(dropped.load(Ordering::SeqCst), 50, "unwinding ran the destructors");
}

#[test]
fn shutdown_abandons_a_spinning_gvthread_at_the_deadline() {
    let _w = common::watchdog("shutdown_abandons_a_spinning_gvthread", Duration::from_secs(60));
    static STOP: AtomicBool = AtomicBool::new(false);
    let rt = Runtime::new(SchedulerConfig::default().num_workers(1).enable_forced_preempt(false));
    let started = Arc::new(AtomicBool::new(false));
    let s = started.clone();
    let spinner = rt.handle().spawn(move |_| {
        s.store(true, Ordering::SeqCst);
        // No yield points at all.
        while !STOP.load(Ordering::Relaxed) {
            std::hint::spin_loop();
        }
    });
    while !started.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    let t = Instant::now();
    rt.shutdown_timeout(Duration::from_millis(300));
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(300), "shutdown gave up before its timeout: {took:?}");
    assert!(spinner.join().unwrap_err().is_cancelled());
    // Let the detached worker finish so it does not burn CPU for later tests.
    STOP.store(true, Ordering::Relaxed);
}

#[test]
fn cancellation_lets_gvthreads_finish_gracefully() {
    let _w = common::watchdog("cancellation_lets_gvthreads_finish_gracefully", Duration::from_secs(60));
    let rt = Runtime::new(SchedulerConfig::default().num_workers(2));
    let finished = Arc::new(AtomicUsize::new(0));
    let mut joins = Vec::new();
    for _ in 0..20 {
        let finished = finished.clone();
        joins.push(rt.handle().spawn(move |token| {
            while !token.is_cancelled() {
                gvthread::yield_now();
            }
            finished.fetch_add(1, Ordering::SeqCst);
            7
        }));
    }
    std::thread::sleep(Duration::from_millis(20));
    rt.shutdown_timeout(Duration::from_secs(20));
    assert_eq!(finished.load(Ordering::SeqCst), 20);
    for j in joins {
        assert_eq!(j.join().unwrap(), 7);
    }
}

#[test]
fn spawn_after_shutdown_is_refused() {
    let rt = common::rt(1);
    let h = rt.handle();
    drop(rt);
    assert!(matches!(h.try_spawn(|_| ()), Err(gvthread::SpawnError::ShutDown)));
    assert!(h.is_shutting_down());
}

#[test]
fn idle_runtime_drops_without_waiting_for_the_timeout() {
    let _w = common::watchdog("idle_runtime_drops_without_waiting", Duration::from_secs(60));
    for _ in 0..20 {
        let rt = Runtime::new(SchedulerConfig::default().num_workers(2).shutdown_timeout(Duration::from_secs(3600)));
        rt.handle().spawn(|_| ()).join().unwrap();
    }
}

/// Shutdown while every worker spawns and joins: each spawn and exit moves
/// spawn credits between the roles and the live count (`runtime::live`);
/// none may stay behind, or shutdown would wait out its (here: hour-long)
/// timeout for GVThreads that are gone.
#[test]
fn shutdown_amid_spawns_on_every_worker_waits_only_for_live_gvthreads() {
    let _w = common::watchdog("shutdown_amid_spawns_on_every_worker", Duration::from_secs(300));
    for _ in 0..20 {
        let rt = Runtime::new(SchedulerConfig::default().num_workers(2).shutdown_timeout(Duration::from_secs(3600)));
        let handle = rt.handle();
        let spawned = Arc::new(AtomicUsize::new(0));
        for _ in 0..4 {
            let spawned = spawned.clone();
            handle.spawn(move |token| {
                while !token.is_cancelled() {
                    match gvthread::try_spawn(|_| ()) {
                        Ok(h) => {
                            let _ = h.join();
                            spawned.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => break,
                    }
                }
            });
        }
        while spawned.load(Ordering::Relaxed) < 1000 {
            std::thread::yield_now();
        }
        drop(rt);
        assert_eq!(handle.live_gvthreads(), 0, "every GVThread counted out");
    }
}
