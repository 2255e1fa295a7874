//! Forced preemption beside locks that the frozen GVThread may hold: the C
//! library's allocator, std locks, other threads freeing its memory; and
//! many CPU hogs at once with the OS threads bounded. Each scenario repeats
//! in its own process (a failure is a hang or an abort); CI also runs this
//! file with busy loops beside it and in release.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gvthread::{Runtime, SchedulerConfig};

const LIMIT: Duration = Duration::from_secs(240);
const RUNS: usize = 20;

/// Allocates and frees without ever yielding, for `for_ms`: most of its time
/// is spent inside the allocator, where the handler must not freeze it.
fn allocating_hog(seed: u64, for_ms: u64, freed_elsewhere: Option<std::sync::mpsc::Sender<Vec<u64>>>) -> u64 {
    let t = Instant::now();
    let mut keep: Vec<Vec<u64>> = Vec::new();
    let mut i = 0u64;
    while t.elapsed() < Duration::from_millis(for_ms) {
        i += 1;
        keep.push(vec![seed ^ i; ((i * 7919) % 300 + 1) as usize]);
        if keep.len() > 500 {
            let old: Vec<Vec<u64>> = keep.drain(..250).collect();
            match &freed_elsewhere {
                // Another OS thread frees this thread's allocations (it
                // takes this thread's arena lock to do so).
                Some(tx) => old.into_iter().for_each(|v| drop(tx.send(v))),
                None => drop(old),
            }
        }
    }
    keep.iter().map(|v| v.len() as u64).sum::<u64>() + i
}

#[derive(Clone, Copy)]
enum Beside {
    Nothing,
    Sleepers,
    SpawnJoin,
    FreesOnOtherThreads,
}

/// Three allocating hogs on two workers for a few rounds, with `beside`.
fn allocation_round(beside: Beside) -> gvthread::RuntimeMetrics {
    let mut rt = Runtime::new(SchedulerConfig::default().num_workers(2));
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u64>>();
    let freer = std::thread::spawn(move || rx.into_iter().map(|v| v.len()).sum::<usize>());
    let s = stop.clone();
    let side = rt.handle().spawn(move |_| {
        let mut n = 0u64;
        while !s.load(Ordering::Relaxed) {
            match beside {
                Beside::Nothing | Beside::FreesOnOtherThreads => return n,
                Beside::Sleepers => gvthread::sleep(Duration::from_micros(200)),
                Beside::SpawnJoin => {
                    let hs: Vec<_> = (0..50u64).map(|k| gvthread::spawn(move |_| vec![k; 16])).collect();
                    for h in hs {
                        n += h.join().unwrap().len() as u64;
                    }
                }
            }
            n += 1;
        }
        n
    });
    rt.block_on(move || {
        for round in 0..3u64 {
            let hogs: Vec<_> = (0..3u64)
                .map(|h| {
                    let tx = matches!(beside, Beside::FreesOnOtherThreads).then(|| tx.clone());
                    gvthread::spawn(move |_| allocating_hog(h * 1000 + round, 150, tx))
                })
                .collect();
            for h in hogs {
                assert!(h.join().unwrap() > 0);
            }
        }
    });
    stop.store(true, Ordering::Relaxed);
    side.join().unwrap();
    freer.join().unwrap();
    rt.metrics()
}

fn allocation_scenario(beside: Beside) {
    let _w = common::watchdog("allocation scenario", LIMIT);
    let mut preempted = 0;
    for _ in 0..RUNS {
        let m = allocation_round(beside);
        preempted += m.forced_preemptions;
    }
    // Not a timing assertion: over 20 runs of 450 ms of hogs on 2 workers,
    // forced preemption must have happened, or the test proved nothing.
    assert!(preempted > 0, "no forced preemption in {RUNS} runs: the scenario did not exercise the hand-off");
}

#[test]
fn allocating_hogs_do_not_deadlock() {
    if common::isolated("allocating_hogs_do_not_deadlock", LIMIT) {
        allocation_scenario(Beside::Nothing);
    }
}

#[test]
fn allocating_hogs_beside_sleepers_do_not_deadlock() {
    if common::isolated("allocating_hogs_beside_sleepers_do_not_deadlock", LIMIT) {
        allocation_scenario(Beside::Sleepers);
    }
}

#[test]
fn allocating_hogs_beside_spawn_join_traffic_do_not_deadlock() {
    if common::isolated("allocating_hogs_beside_spawn_join_traffic_do_not_deadlock", LIMIT) {
        allocation_scenario(Beside::SpawnJoin);
    }
}

#[test]
fn allocating_hogs_freed_by_other_threads_do_not_deadlock() {
    if common::isolated("allocating_hogs_freed_by_other_threads_do_not_deadlock", LIMIT) {
        allocation_scenario(Beside::FreesOnOtherThreads);
    }
}

/// Thread places a role has beyond its share of `max_os_threads`, for when
/// all its threads hold frozen hogs while other GVThreads of the role wait
/// (docs/preemption.md, "The thread cap").
const EXTRA_THREADS_PER_ROLE: usize = 64;

/// `hogs` fresh GVThreads spinning `spin_ms` each on 2 workers, beside a
/// GVThread sleeping 1 ms in a loop. Returns the sleeper's turns while the
/// hogs ran and the most OS threads seen. The hogs that wait to start keep
/// asking for threads beyond the cap (they wait behind frozen hogs), so the
/// count grows, but never past the roles' places.
fn many_hogs(hogs: usize, spin_ms: u64) -> (u64, usize, gvthread::RuntimeMetrics) {
    let mut rt = Runtime::new(SchedulerConfig::default().num_workers(2));
    let cap = 2 * (gvthread::DEFAULT_THREADS_PER_WORKER + EXTRA_THREADS_PER_ROLE);
    let done = Arc::new(AtomicBool::new(false));
    let turns = Arc::new(AtomicU64::new(0));
    let (d, t) = (done.clone(), turns.clone());
    let sleeper = rt.handle().spawn(move |_| {
        while !d.load(Ordering::SeqCst) {
            gvthread::sleep(Duration::from_millis(1));
            t.fetch_add(1, Ordering::SeqCst);
        }
    });
    let max_threads = Arc::new(AtomicUsize::new(0));
    let handle = rt.handle();
    let (mt, d) = (max_threads.clone(), done.clone());
    let watcher = std::thread::spawn(move || {
        while !d.load(Ordering::SeqCst) {
            mt.fetch_max(handle.metrics().os_threads, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let during = rt.block_on(move || {
        let hs: Vec<_> = (0..hogs)
            .map(|_| {
                gvthread::spawn(move |_| {
                    let t = Instant::now();
                    while t.elapsed() < Duration::from_millis(spin_ms) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        turns.load(Ordering::SeqCst)
    });
    done.store(true, Ordering::SeqCst);
    sleeper.join().unwrap();
    watcher.join().unwrap();
    let m = rt.metrics();
    let most = max_threads.load(Ordering::SeqCst).max(m.os_threads);
    eprintln!("{hogs} hogs: sleeper turns {during}, most OS threads {most}, {m:?}");
    assert!(most <= cap, "{most} OS threads for the runtime's roles, above their {cap} places: {m:?}");
    (during, most, m)
}

#[test]
fn three_hundred_hogs_keep_threads_bounded_and_the_sleeper_served() {
    if !common::isolated("three_hundred_hogs_keep_threads_bounded_and_the_sleeper_served", LIMIT) {
        return;
    }
    let _w = common::watchdog("300 hogs", LIMIT);
    // 300 × 30 ms of CPU on 2 workers: at least 4.5 s.
    let (turns, _, m) = many_hogs(300, 30);
    // A starved sleeper gets a handful of turns at most; one that is served
    // gets a turn every time a thread of its role goes back to scheduling.
    assert!(turns >= 50, "the sleeper ran only {turns} times beside 300 hogs: {m:?}");
    assert!(m.forced_preemptions > 0, "{m:?}");
}

#[test]
fn two_thousand_hogs_keep_threads_bounded_and_the_sleeper_served() {
    if !common::isolated("two_thousand_hogs_keep_threads_bounded_and_the_sleeper_served", LIMIT) {
        return;
    }
    let _w = common::watchdog("2000 hogs", LIMIT);
    // 2,000 × 4 ms of CPU on 2 workers: at least 4 s.
    let (turns, _, m) = many_hogs(2000, 4);
    assert!(turns >= 50, "the sleeper ran only {turns} times beside 2,000 hogs: {m:?}");
}

#[test]
fn a_frozen_std_mutex_holder_is_resumed_for_its_waiters() {
    if !common::isolated("a_frozen_std_mutex_holder_is_resumed_for_its_waiters", LIMIT) {
        return;
    }
    let _w = common::watchdog("frozen mutex holder", LIMIT);
    // One worker: hogs take a std Mutex and spin holding it, so a forced
    // preemption freezes holders; other GVThreads block on the mutex in the
    // kernel, and only resuming the frozen holder lets them go on.
    let mut rt = Runtime::new(SchedulerConfig::default().num_workers(1).time_slice(Duration::from_millis(2)));
    let lock = Arc::new(std::sync::Mutex::new(0u64));
    let total = rt.block_on(move || {
        let hs: Vec<_> = (0..8u64)
            .map(|i| {
                let lock = lock.clone();
                gvthread::spawn(move |_| {
                    for _ in 0..5 {
                        let mut g = lock.lock().unwrap();
                        let t = Instant::now();
                        while t.elapsed() < Duration::from_millis(3) {
                            std::hint::spin_loop();
                        }
                        *g += i;
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        *lock.lock().unwrap()
    });
    assert_eq!(total, 5 * (0..8).sum::<u64>());
    let m = rt.metrics();
    assert!(m.os_threads <= gvthread::DEFAULT_THREADS_PER_WORKER, "{m:?}");
}

/// `SPINNERS` GVThreads on one worker spin until `flag` is set (giving up
/// after `SPIN_LIMIT`); `setter` is what sets it. More spinners than the
/// role's threads (4): without a thread beyond the cap, every thread holds
/// a frozen spinner, frozen spinners are resumed in turn, and nothing else
/// of the role runs until a spinner gives up. Returns how many gave up.
fn spinners_beside(spawn_setter_from_last_spinner: bool, setter: fn(Arc<AtomicBool>)) -> usize {
    const SPINNERS: usize = 8;
    const SPIN_LIMIT: Duration = Duration::from_secs(60);
    let mut rt = Runtime::new(SchedulerConfig::default().num_workers(1));
    let flag = Arc::new(AtomicBool::new(false));
    let gave_up = rt.block_on(move || {
        let early = (!spawn_setter_from_last_spinner).then(|| {
            let f = flag.clone();
            gvthread::spawn(move |_| setter(f))
        });
        let spinners: Vec<_> = (0..SPINNERS)
            .map(|i| {
                let f = flag.clone();
                gvthread::spawn(move |_| {
                    // The last spinner starts only once the others are
                    // frozen on every thread of the role; what it spawns
                    // then waits behind them too.
                    let late = (spawn_setter_from_last_spinner && i == SPINNERS - 1).then(|| {
                        let f = f.clone();
                        gvthread::spawn(move |_| setter(f))
                    });
                    let t = Instant::now();
                    while !f.load(Ordering::Acquire) {
                        if t.elapsed() > SPIN_LIMIT {
                            return (true, late);
                        }
                        std::hint::spin_loop();
                    }
                    (false, late)
                })
            })
            .collect();
        let mut gave_up = 0;
        for s in spinners {
            let (g, late) = s.join().unwrap();
            gave_up += usize::from(g);
            if let Some(l) = late {
                l.join().unwrap();
            }
        }
        if let Some(e) = early {
            e.join().unwrap();
        }
        gave_up
    });
    let m = rt.metrics();
    eprintln!("{m:?}");
    assert!(m.os_threads <= gvthread::DEFAULT_THREADS_PER_WORKER + EXTRA_THREADS_PER_ROLE, "{m:?}");
    gave_up
}

#[test]
fn spinners_waiting_for_a_sleeping_gvthread_of_their_role_are_not_left_spinning() {
    if !common::isolated("spinners_waiting_for_a_sleeping_gvthread_of_their_role_are_not_left_spinning", LIMIT) {
        return;
    }
    let _w = common::watchdog("spinners beside a sleeper", LIMIT);
    // The setter sleeps in steps while the spinners take every thread of
    // the role, then has to run again to set the flag.
    let gave_up = spinners_beside(false, |f| {
        for _ in 0..20 {
            gvthread::sleep(Duration::from_millis(5));
        }
        f.store(true, Ordering::Release);
    });
    assert_eq!(gave_up, 0, "spinners gave up waiting for a GVThread of their role");
}

#[test]
fn spinners_waiting_for_a_gvthread_not_yet_started_are_not_left_spinning() {
    if !common::isolated("spinners_waiting_for_a_gvthread_not_yet_started_are_not_left_spinning", LIMIT) {
        return;
    }
    let _w = common::watchdog("spinners beside a fresh GVThread", LIMIT);
    let gave_up = spinners_beside(true, |f| f.store(true, Ordering::Release));
    assert_eq!(gave_up, 0, "spinners gave up waiting for a GVThread spawned behind them");
}
