//! The documented tokio recipe under load: 10,000 GVThreads napping on tokio
//! timers until all are napping, with two busy loops beside the process and
//! CPU hogs inside it. Forced preemption freezes GVThreads that may hold
//! tokio's timer-driver lock; the runtime must keep going (the frozen lock
//! holders are resumed first) with its OS threads bounded, run after run.
//! `GVTHREAD_TOKIO_RUNS` sets the number of runs (default 20 in release
//! builds; 5 in debug builds, where a run takes about ten times longer: CI
//! runs both).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use gvthread_futures::block_on;

const GVTHREADS: usize = 10_000;

/// Thread places a role has beyond its share of `max_os_threads`.
const EXTRA_THREADS_PER_ROLE: usize = 64;

/// Two OS threads spinning until dropped: a busy machine.
struct BusyLoops(Arc<AtomicBool>, Vec<std::thread::JoinHandle<()>>);

impl BusyLoops {
    fn start() -> BusyLoops {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..2)
            .map(|_| {
                let s = stop.clone();
                std::thread::spawn(move || {
                    while !s.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        BusyLoops(stop, threads)
    }
}

impl Drop for BusyLoops {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        for t in self.1.drain(..) {
            let _ = t.join();
        }
    }
}

fn one_run(tokio: &tokio::runtime::Runtime) -> usize {
    let mut rt = common::gv_rt_in(tokio, 2);
    let handle = rt.handle();
    let most = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let (m, d) = (most.clone(), done.clone());
    let watcher = std::thread::spawn(move || {
        while !d.load(Ordering::SeqCst) {
            m.fetch_max(handle.metrics().os_threads, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let sum = rt.block_on(|| {
        let sleeping = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(AtomicBool::new(false));
        // Hogs beside the nappers: their forced preemptions happen while
        // tokio's timer driver is in use.
        let hogs: Vec<_> = (0..2)
            .map(|_| {
                let r = release.clone();
                gvthread::spawn(move |_| {
                    while !r.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        let handles: Vec<_> = (0..GVTHREADS)
            .map(|i| {
                let (sleeping, release) = (sleeping.clone(), release.clone());
                gvthread::spawn(move |_| {
                    sleeping.fetch_add(1, Ordering::SeqCst);
                    let mut naps = 0;
                    while !release.load(Ordering::SeqCst) || naps == 0 {
                        block_on(tokio::time::sleep(Duration::from_millis(3)));
                        naps += 1;
                    }
                    i
                })
            })
            .collect();
        while sleeping.load(Ordering::SeqCst) < GVTHREADS {
            gvthread::sleep(Duration::from_millis(1));
        }
        release.store(true, Ordering::SeqCst);
        for h in hogs {
            h.join().unwrap();
        }
        handles.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
    });
    assert_eq!(sum, GVTHREADS * (GVTHREADS - 1) / 2);
    done.store(true, Ordering::SeqCst);
    watcher.join().unwrap();
    most.load(Ordering::SeqCst).max(rt.metrics().os_threads)
}

#[test]
fn tokio_timer_nappers_beside_busy_loops_and_hogs_finish_run_after_run() {
    let default_runs = if cfg!(debug_assertions) { 5 } else { 20 };
    let runs: usize = std::env::var("GVTHREAD_TOKIO_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(default_runs);
    // Generous: a run takes seconds even in a debug build on a loaded machine.
    let _dog = common::Watchdog::new("tokio_timer_nappers_beside_busy_loops_and_hogs", 60 * runs as u64 + 60);
    let _busy = BusyLoops::start();
    let tokio = common::tokio_rt(1);
    // The cap, plus the places a role may add while all its threads hold
    // frozen GVThreads and others of the role wait (docs/preemption.md,
    // "The thread cap"): GVThreads frozen mid-nap take threads too. What
    // this guards against is a runaway (once: 1,400 threads and a stall).
    let places = 2 * (gvthread::DEFAULT_THREADS_PER_WORKER + EXTRA_THREADS_PER_ROLE);
    for run in 0..runs {
        let most = one_run(&tokio);
        eprintln!("run {run}: at most {most} OS threads");
        assert!(most <= places, "run {run}: {most} OS threads, above the roles' {places} places");
    }
}
