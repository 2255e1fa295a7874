//! Runtime construction, configuration errors, spawning from everywhere.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gvthread::{Runtime, RuntimeError, SchedulerConfig, SpawnError};

#[test]
fn block_on_returns_the_value() {
    let mut rt = common::rt(2);
    assert_eq!(rt.block_on(|| 6 * 7), 42);
    assert_eq!(rt.block_on(|| String::from("twice")), "twice");
}

#[test]
fn block_on_resumes_a_panic_on_the_caller() {
    let mut rt = common::rt(1);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(|| panic!("inner boom"))));
    let payload = r.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"inner boom"));
    // The runtime is still usable afterwards.
    assert_eq!(rt.block_on(|| 1), 1);
}

#[test]
fn zero_workers_is_a_config_error() {
    let err = Runtime::try_new(SchedulerConfig::default().num_workers(0)).unwrap_err();
    assert!(matches!(err, RuntimeError::InvalidConfig { field: "num_workers", .. }), "{err:?}");
    assert!(err.to_string().contains("num_workers"), "{err}");
}

#[test]
fn other_config_errors_name_the_knob() {
    for (cfg, field) in [
        (SchedulerConfig::default().max_gvthreads(0), "max_gvthreads"),
        (SchedulerConfig::default().time_slice(Duration::ZERO), "time_slice"),
        (SchedulerConfig::default().timer_interval(Duration::ZERO), "timer_interval"),
        (SchedulerConfig::default().num_workers(200).num_low_priority_workers(100), "num_workers"),
        // Sums that overflow are refused, not a panic inside `try_new`.
        (SchedulerConfig::default().num_workers(usize::MAX).num_low_priority_workers(1), "num_workers"),
        (SchedulerConfig::default().num_workers(1).num_low_priority_workers(usize::MAX), "num_workers"),
        (SchedulerConfig::default().num_workers(2).max_os_threads(1), "max_os_threads"),
    ] {
        match Runtime::try_new(cfg) {
            Err(RuntimeError::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected InvalidConfig for {field}, got {other:?}"),
        }
    }
}

#[test]
fn huge_time_slices_are_accepted_and_run() {
    let _w = common::watchdog("huge_time_slices_are_accepted_and_run", Duration::from_secs(60));
    // `time_slice + grace_period` must not overflow in the monitor.
    for cfg in [
        SchedulerConfig::default().time_slice(Duration::MAX),
        SchedulerConfig::default().grace_period(Duration::MAX),
        SchedulerConfig::default().time_slice(Duration::MAX).grace_period(Duration::MAX),
        SchedulerConfig::default().timer_interval(Duration::MAX),
    ] {
        let mut rt = Runtime::try_new(cfg.num_workers(1)).expect("a huge duration is a valid setting");
        let v = rt.block_on(|| {
            // A GVThread that keeps the worker for a few monitor ticks.
            let t = std::time::Instant::now();
            while t.elapsed() < Duration::from_millis(30) {
                std::hint::spin_loop();
            }
            // Needs a live timer thread (which ran the monitor meanwhile).
            gvthread::sleep(Duration::from_millis(1));
            gvthread::spawn(|_| 5).join().unwrap()
        });
        assert_eq!(v, 5);
    }
}

#[test]
#[should_panic(expected = "num_workers must be at least 1")]
fn new_panics_with_the_reason() {
    let _ = Runtime::new(SchedulerConfig::default().num_workers(0));
}

#[test]
fn spawn_outside_a_gvthread_panics_clearly() {
    let r = std::panic::catch_unwind(|| gvthread::spawn(|_| ()));
    let payload = r.unwrap_err();
    let msg = payload.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("not inside a GVThread"), "unclear message: {msg}");
    assert!(msg.contains("Runtime::block_on") && msg.contains("Handle::spawn"), "message should say what to do: {msg}");
}

#[test]
fn try_spawn_outside_a_gvthread_is_no_runtime() {
    assert!(matches!(gvthread::try_spawn(|_| ()), Err(SpawnError::NoRuntime)));
    assert!(gvthread::current_id().is_none());
}

#[test]
fn try_spawn_at_capacity_fails_then_recovers() {
    let _w = common::watchdog("try_spawn_at_capacity", Duration::from_secs(60));
    let mut rt = Runtime::new(SchedulerConfig::default().num_workers(2).max_gvthreads(10));
    rt.block_on(|| {
        // The block_on GVThread itself is live: 9 more fit.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let release = Arc::new(AtomicUsize::new(0));
        let mut held = Vec::new();
        for _ in 0..9 {
            let release = release.clone();
            held.push(gvthread::spawn(move |_| {
                while release.load(Ordering::Acquire) == 0 {
                    gvthread::sleep(Duration::from_millis(1));
                }
            }));
        }
        match gvthread::try_spawn(|_| ()) {
            Err(SpawnError::AtCapacity { max: 10 }) => {}
            other => panic!("expected AtCapacity, got {other:?}"),
        }
        let e = gvthread::try_spawn(|_| ()).unwrap_err();
        assert!(e.to_string().contains("max_gvthreads"), "{e}");
        release.store(1, Ordering::Release);
        for h in held {
            h.join().unwrap();
        }
        drop((tx, rx));
        // Slots were freed: spawning works again.
        assert_eq!(gvthread::try_spawn(|_| 5).unwrap().join().unwrap(), 5);
    });
}

#[test]
fn handle_spawns_from_plain_threads() {
    let _w = common::watchdog("handle_spawns_from_plain_threads", Duration::from_secs(60));
    let rt = common::rt(2);
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let h = rt.handle();
            std::thread::spawn(move || {
                (0..500u64).map(|i| h.spawn(move |_| t * 1000 + i)).map(|j| j.join().unwrap()).sum::<u64>()
            })
        })
        .collect();
    let total: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let expected: u64 = (0..4u64).map(|t| (0..500u64).map(|i| t * 1000 + i).sum::<u64>()).sum();
    assert_eq!(total, expected);
}

#[test]
fn handle_try_current_inside_and_outside() {
    let mut rt = common::rt(1);
    assert!(gvthread::Handle::try_current().is_none());
    let inside = rt.block_on(|| gvthread::Handle::try_current().map(|h| h.spawn(|_| 3).join().unwrap()));
    assert_eq!(inside, Some(3));
}

#[test]
fn worker_hooks_run_on_every_worker() {
    let _w = common::watchdog("worker_hooks_run_on_every_worker", Duration::from_secs(60));
    let started = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicUsize::new(0));
    let (s, t) = (started.clone(), stopped.clone());
    let rt = Runtime::new(
        SchedulerConfig::default()
            .num_workers(3)
            .num_low_priority_workers(1)
            .on_worker_start(move || {
                s.fetch_add(1, Ordering::SeqCst);
            })
            .on_worker_stop(move || {
                t.fetch_add(1, Ordering::SeqCst);
            }),
    );
    // Starting is asynchronous; spawn something to make sure workers are up.
    rt.handle().spawn(|_| ()).join().unwrap();
    // Threads start asynchronously: wait until the 4 workers ran the hook.
    while started.load(Ordering::SeqCst) < 4 {
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(rt);
    // Every OS thread that may run GVThreads (the workers, plus spare threads
    // kept for forced preemption) ran both hooks.
    let n = started.load(Ordering::SeqCst);
    assert!(n >= 4, "{n}");
    assert_eq!(stopped.load(Ordering::SeqCst), n);
}

#[test]
fn several_runtimes_coexist() {
    let rts: Vec<_> = (0..8).map(|_| common::rt(1)).collect();
    let sums: Vec<u64> = rts.iter().map(|rt| rt.handle().spawn(|_| 1u64).join().unwrap()).collect();
    assert_eq!(sums, vec![1; 8]);
}

#[test]
fn current_id_is_unique_per_gvthread() {
    let mut rt = common::rt(2);
    let ids = rt.block_on(|| {
        let hs: Vec<_> = (0..100).map(|_| gvthread::spawn(|_| gvthread::current_id().unwrap())).collect();
        hs.into_iter().map(|h| (h.id(), h.join().unwrap())).collect::<Vec<_>>()
    });
    let set: std::collections::HashSet<_> = ids.iter().map(|(a, _)| *a).collect();
    assert_eq!(set.len(), 100, "ids are unique even when slots are reused");
    for (from_handle, from_inside) in ids {
        assert_eq!(from_handle, from_inside);
    }
}
