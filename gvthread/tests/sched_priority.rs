//! Priorities and low-priority workers.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gvthread::{Priority, Runtime, SchedulerConfig};

/// One worker that neither time slices nor wake-ups take from the
/// GVThread running on it.
fn one_worker_unpreempted() -> Runtime {
    Runtime::new(
        SchedulerConfig::default()
            .num_workers(1)
            .time_slice(Duration::from_secs(60))
            .wakeup_granularity(Duration::from_secs(60)),
    )
}

#[test]
fn higher_priorities_run_first_on_one_worker() {
    let _w = common::watchdog("higher_priorities_run_first", Duration::from_secs(60));
    // The spawner must keep the worker until all six are queued: no time
    // slice or wake-up preemption may take it away mid-loop (spawning takes
    // over a millisecond under qemu-aarch64, and the spawned GVThreads count
    // as woken work for the role).
    let mut rt = one_worker_unpreempted();
    let order = rt.block_on(|| {
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut hs = Vec::new();
        // All queued while the spawner holds the only worker.
        for p in
            [Priority::Low, Priority::Normal, Priority::High, Priority::Critical, Priority::Low, Priority::Critical]
        {
            let order = order.clone();
            hs.push(gvthread::spawn_with_priority(p, move |_| order.lock().unwrap().push(p)));
        }
        for h in hs {
            h.join().unwrap();
        }
        order.lock().unwrap().clone()
    });
    assert_eq!(
        order,
        vec![Priority::Critical, Priority::Critical, Priority::High, Priority::Normal, Priority::Low, Priority::Low]
    );
}

/// A started High GVThread woken into its home queue runs before the Normal
/// one its waker put in `runnext` (the quick decision must see the urgent
/// work: `sched::attention`).
#[test]
fn a_woken_high_gvthread_goes_before_the_runnext_of_its_waker() {
    let _w = common::watchdog("a_woken_high_gvthread_goes_before_runnext", Duration::from_secs(60));
    let mut rt = one_worker_unpreempted();
    for round in 0..20 {
        let order = rt.block_on(|| {
            let order = Arc::new(Mutex::new(Vec::new()));
            let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let (high_tx, high_rx) = gvthread::channel::<()>(1);
            let (normal_tx, normal_rx) = gvthread::channel::<()>(1);
            let waiter = |p: Priority, rx: gvthread::Receiver<()>| {
                let (order, started) = (order.clone(), started.clone());
                gvthread::spawn_with_priority(p, move |_| {
                    started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    rx.recv().unwrap();
                    order.lock().unwrap().push(p);
                })
            };
            let high = waiter(Priority::High, high_rx);
            let normal = waiter(Priority::Normal, normal_rx);
            // One worker: each blocks in `recv` right after counting itself.
            while started.load(std::sync::atomic::Ordering::SeqCst) < 2 {
                gvthread::yield_now();
            }
            // The Normal one goes to our role's `runnext`, the High one to
            // its home queue; then we block, and the worker decides.
            normal_tx.send(()).unwrap();
            high_tx.send(()).unwrap();
            high.join().unwrap();
            normal.join().unwrap();
            order.lock().unwrap().clone()
        });
        assert_eq!(order, vec![Priority::High, Priority::Normal], "round {round}");
    }
}

#[test]
fn low_priority_workers_run_only_low() {
    let _w = common::watchdog("low_priority_workers_run_only_low", Duration::from_secs(60));
    let mut rt = Runtime::new(SchedulerConfig::default().num_workers(1).num_low_priority_workers(1));
    rt.block_on(|| {
        let name = || std::thread::current().name().unwrap_or("").to_string();
        let lows: Vec<_> = (0..20).map(|_| gvthread::spawn_with_priority(Priority::Low, move |_| name())).collect();
        let normals: Vec<_> = (0..20).map(|_| gvthread::spawn(move |_| name())).collect();
        for h in lows {
            assert!(h.join().unwrap().starts_with("gvthread-low"), "Low ran on an ordinary worker");
        }
        for h in normals {
            assert!(h.join().unwrap().starts_with("gvthread-worker"), "Normal ran on a low-priority worker");
        }
    });
}

#[test]
fn low_runs_on_ordinary_workers_without_dedicated_ones() {
    let mut rt = common::rt(1);
    let r = rt.block_on(|| gvthread::spawn_with_priority(Priority::Low, |_| 9).join().unwrap());
    assert_eq!(r, 9);
}

#[test]
fn priority_default_is_normal() {
    assert_eq!(Priority::default(), Priority::Normal);
    assert!(Priority::Critical < Priority::Low);
}
