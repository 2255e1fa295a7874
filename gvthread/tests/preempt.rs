//! Forced and cooperative preemption on one worker. Each scenario runs in its
//! own process (`common::isolated`): a failure here may be a deadlock or a
//! crash, and must not take the other tests down.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gvthread::{Runtime, SchedulerConfig};

const LIMIT: Duration = Duration::from_secs(120);

fn one_worker(slice_ms: u64) -> Runtime {
    Runtime::new(
        SchedulerConfig::default()
            .num_workers(1)
            .time_slice(Duration::from_millis(slice_ms))
            .grace_period(Duration::from_millis(1)),
    )
}

#[test]
fn tight_loop_without_calls_does_not_starve_others() {
    if !common::isolated("tight_loop_without_calls_does_not_starve_others", LIMIT) {
        return;
    }
    let rt = one_worker(2);
    let stop = Arc::new(AtomicBool::new(false));
    let looping = Arc::new(AtomicBool::new(false));
    let (s, l) = (stop.clone(), looping.clone());
    // No calls, no safepoints: only a signal can take the worker from it.
    let hog = rt.handle().spawn(move |_| {
        let mut n = 0u64;
        while !s.load(Ordering::Relaxed) {
            n = n.wrapping_add(1);
            if n == 1 {
                l.store(true, Ordering::Relaxed);
            }
        }
        n
    });
    // The other starts once the hog is in its loop (under an emulator the
    // hog's first instructions can take longer than a time slice).
    while !looping.load(Ordering::Relaxed) {
        std::thread::yield_now();
    }
    let s = stop.clone();
    let other = rt.handle().spawn(move |_| s.store(true, Ordering::Relaxed));
    other.join().unwrap();
    assert!(hog.join().unwrap() > 0);
    assert!(rt.metrics().forced_preemptions >= 1, "{:?}", rt.metrics());
}

#[inline(never)]
fn simd_work(seed: u64, rounds: usize) -> (f64, [f32; 8]) {
    let mut acc = 0.0f64;
    let mut lanes = [0.0f32; 8];
    let mut x = seed as f64 * 0.001 + 1.0;
    for r in 0..rounds {
        x = (x * 1.000_001 + 0.5).sqrt() + 1.0;
        acc += x.ln();
        for (i, l) in lanes.iter_mut().enumerate() {
            *l = (*l + (x as f32) * (i as f32 + 0.5)) * 0.999;
        }
        if r % 4096 == 0 {
            std::hint::black_box(&lanes);
        }
    }
    (acc, lanes)
}

#[test]
fn fpu_and_simd_state_survive_forced_preemption() {
    if !common::isolated("fpu_and_simd_state_survive_forced_preemption", LIMIT) {
        return;
    }
    const ROUNDS: usize = 30_000_000;
    let reference: Vec<_> = (0..3).map(|i| simd_work(i, ROUNDS)).collect();
    let rt = Runtime::new(
        SchedulerConfig::default()
            .num_workers(1)
            .time_slice(Duration::from_micros(500))
            .grace_period(Duration::ZERO)
            .timer_interval(Duration::from_micros(250)),
    );
    let hs: Vec<_> = (0..3).map(|i| rt.handle().spawn(move |_| simd_work(i, ROUNDS))).collect();
    for (h, want) in hs.into_iter().zip(reference) {
        let got = h.join().unwrap();
        assert_eq!(got.0.to_bits(), want.0.to_bits());
        assert_eq!(got.1.map(f32::to_bits), want.1.map(f32::to_bits));
    }
    let m = rt.metrics();
    assert!(m.forced_preemptions >= 20, "too few forced preemptions to prove anything: {m:?}");
    eprintln!("forced preemptions: {}", m.forced_preemptions);
}

#[test]
fn allocation_under_forced_preemption() {
    if !common::isolated("allocation_under_forced_preemption", LIMIT) {
        return;
    }
    let rt = one_worker(1);
    let hs: Vec<_> = (0..8u64)
        .map(|i| {
            rt.handle().spawn(move |_| {
                let mut total = 0u64;
                for round in 0..300_000u64 {
                    let v: Vec<u64> = (0..(round % 64) + 1).map(|k| k ^ i).collect();
                    let b = Box::new(v.len() as u64);
                    let s = format!("{}", *b);
                    total = total.wrapping_add(v.iter().sum::<u64>() + s.len() as u64);
                }
                total
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    eprintln!("metrics: {:?}", rt.metrics());
}

#[test]
fn printing_under_forced_preemption() {
    if !common::isolated("printing_under_forced_preemption", LIMIT) {
        return;
    }
    use std::io::Write;
    let rt = one_worker(1);
    let hs: Vec<_> = (0..8)
        .map(|i| {
            rt.handle().spawn(move |_| {
                for k in 0..20_000 {
                    println!("gvthread {i} line {k}");
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "locked {i} {k} a").unwrap();
                    writeln!(out, "locked {i} {k} b").unwrap();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    eprintln!("metrics: {:?}", rt.metrics());
}

#[test]
fn std_mutex_held_while_spinning() {
    if !common::isolated("std_mutex_held_while_spinning", LIMIT) {
        return;
    }
    let rt = one_worker(1);
    let m = Arc::new(Mutex::new(0u64));
    let hs: Vec<_> = (0..4)
        .map(|_| {
            let m = m.clone();
            rt.handle().spawn(move |_| {
                for _ in 0..50 {
                    let mut g = m.lock().unwrap();
                    let t = std::time::Instant::now();
                    while t.elapsed() < Duration::from_millis(2) {
                        std::hint::spin_loop();
                    }
                    *g += 1;
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(*m.lock().unwrap(), 200);
    eprintln!("metrics: {:?}", rt.metrics());
}

/// One worker: a GVThread blocks it in `std::thread::sleep(1 s)` (it runs
/// first) while another yields in a loop. Returns how many turns the ticker
/// had when the sleeper woke, and the runtime's metrics.
fn ticker_beside_a_blocking_sleep() -> (u64, gvthread::RuntimeMetrics) {
    let rt = one_worker(5);
    let progress = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let (p, d) = (progress.clone(), done.clone());
    let sleeper = rt.handle().spawn(move |_| {
        std::thread::sleep(Duration::from_secs(1));
        d.store(true, Ordering::SeqCst);
        p.load(Ordering::SeqCst)
    });
    let (p, d) = (progress.clone(), done.clone());
    let ticker = rt.handle().spawn(move |_| {
        while !d.load(Ordering::SeqCst) {
            p.fetch_add(1, Ordering::SeqCst);
            gvthread::yield_now();
        }
    });
    let seen = sleeper.join().unwrap();
    ticker.join().unwrap();
    (seen, rt.metrics())
}

#[test]
fn blocking_sleep_does_not_hold_up_other_gvthreads() {
    if !common::isolated("blocking_sleep_does_not_hold_up_other_gvthreads", LIMIT) {
        return;
    }
    let (seen_by_sleeper, _) = ticker_beside_a_blocking_sleep();
    assert!(seen_by_sleeper > 0, "nothing ran while the worker was blocked in a system call");
}

#[test]
fn without_forced_preemption_only_safepoints_preempt() {
    if !common::isolated("without_forced_preemption_only_safepoints_preempt", LIMIT) {
        return;
    }
    let rt = Runtime::new(
        SchedulerConfig::default().num_workers(1).time_slice(Duration::from_millis(2)).enable_forced_preempt(false),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let hog = rt.handle().spawn(move |_| {
        let mut n = 0u64;
        while !s.load(Ordering::Relaxed) {
            gvthread::safepoint!();
            n += 1;
        }
        n
    });
    let s = stop.clone();
    rt.handle().spawn(move |_| s.store(true, Ordering::Relaxed)).join().unwrap();
    hog.join().unwrap();
    let m = rt.metrics();
    assert_eq!(m.forced_preemptions, 0, "{m:?}");
    assert_eq!(m.signals_sent, 0, "{m:?}");
    assert!(m.cooperative_preemptions >= 1, "{m:?}");
}

static FOREIGN: AtomicUsize = AtomicUsize::new(0);

extern "C" fn foreign_handler(_sig: libc::c_int) {
    FOREIGN.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn foreign_sigurg_is_forwarded() {
    if !common::isolated("foreign_sigurg_is_forwarded", LIMIT) {
        return;
    }
    // SAFETY: installing a plain async-signal-safe handler in this process.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = foreign_handler as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGURG, &sa, std::ptr::null_mut()), 0);
    }
    let mut rt = one_worker(1);
    // While a hog forces the runtime to preempt with its own SIGURGs...
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let hog = rt.handle().spawn(move |_| while !s.load(Ordering::Relaxed) {});
    // ...foreign SIGURGs to this (non-worker) thread and to a worker reach
    // the previous handler.
    for _ in 0..5 {
        // SAFETY: sending a signal to the calling thread.
        unsafe { libc::raise(libc::SIGURG) };
    }
    rt.block_on(|| {
        // SAFETY: sending a signal to the calling (worker) thread.
        unsafe { libc::raise(libc::SIGURG) };
    });
    stop.store(true, Ordering::Relaxed);
    hog.join().unwrap();
    assert_eq!(FOREIGN.load(Ordering::SeqCst), 6);
}

#[test]
fn no_preempt_sections_are_not_interrupted() {
    if !common::isolated("no_preempt_sections_are_not_interrupted", LIMIT) {
        return;
    }
    let rt = one_worker(2);
    let other_ran = Arc::new(AtomicBool::new(false));
    let o = other_ran.clone();
    let h = rt.handle().spawn(move |_| {
        let ran_during = gvthread::no_preempt(|| {
            let t = std::time::Instant::now();
            // Far past time slice + grace: a forced preemption would let
            // the other GVThread run on the (single) worker role meanwhile.
            while t.elapsed() < Duration::from_millis(100) {
                std::hint::spin_loop();
            }
            o.load(Ordering::SeqCst)
        });
        // Leaving the section honours the pending request.
        ran_during
    });
    let o = other_ran.clone();
    let other = rt.handle().spawn(move |_| o.store(true, Ordering::SeqCst));
    assert!(!h.join().unwrap(), "the other GVThread ran inside the no_preempt section");
    other.join().unwrap();
    assert!(other_ran.load(Ordering::SeqCst));
}

#[test]
fn preemption_across_two_workers_keeps_results_exact() {
    if !common::isolated("preemption_across_two_workers_keeps_results_exact", LIMIT) {
        return;
    }
    let rt = Runtime::new(
        SchedulerConfig::default().num_workers(2).time_slice(Duration::from_millis(1)).grace_period(Duration::ZERO),
    );
    let hs: Vec<_> = (0..6u64)
        .map(|i| {
            rt.handle().spawn(move |_| {
                let mut x = i;
                for k in 0..40_000_000u64 {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(k);
                }
                x
            })
        })
        .collect();
    for (i, h) in hs.into_iter().enumerate() {
        let mut x = i as u64;
        for k in 0..40_000_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(k);
        }
        assert_eq!(h.join().unwrap(), x);
    }
    eprintln!("metrics: {:?}", rt.metrics());
}

#[test]
fn thread_cap_reached_is_counted_not_hung() {
    if !common::isolated("thread_cap_reached_is_counted_not_hung", LIMIT) {
        return;
    }
    // One worker and no room for a spare thread: forced preemption cannot
    // hand the role off, so it is skipped and counted instead.
    let rt = Runtime::new(
        SchedulerConfig::default()
            .num_workers(1)
            .max_os_threads(1)
            .time_slice(Duration::from_millis(1))
            .grace_period(Duration::ZERO),
    );
    let hog = rt.handle().spawn(|_| {
        let t = std::time::Instant::now();
        while t.elapsed() < Duration::from_millis(200) {
            std::hint::spin_loop();
        }
    });
    let other = rt.handle().spawn(|_| 5);
    hog.join().unwrap();
    assert_eq!(other.join().unwrap(), 5);
    let m = rt.metrics();
    assert_eq!(m.forced_preemptions, 0, "{m:?}");
    assert!(m.thread_cap_reached > 0, "{m:?}");
    assert_eq!(m.os_threads, 1, "{m:?}");
}

#[test]
fn loops_with_safepoints_yield_every_time_slice() {
    if !common::isolated("loops_with_safepoints_yield_every_time_slice", LIMIT) {
        return;
    }
    // Forced preemption off: only the safepoints can give the worker away.
    let rt = Runtime::new(
        SchedulerConfig::default().num_workers(1).time_slice(Duration::from_millis(2)).enable_forced_preempt(false),
    );
    let done = Arc::new(AtomicBool::new(false));
    let turns = Arc::new(AtomicU64::new(0));
    let d = done.clone();
    // Several hundred milliseconds of work, with a safepoint every iteration.
    let hog = rt.handle().spawn(move |_| {
        let mut x = 0u64;
        for i in 0..60_000_000u64 {
            gvthread::safepoint!();
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        d.store(true, Ordering::SeqCst);
        x
    });
    let (d, t) = (done.clone(), turns.clone());
    let ticker = rt.handle().spawn(move |_| {
        while !d.load(Ordering::SeqCst) {
            t.fetch_add(1, Ordering::SeqCst);
            gvthread::sleep(Duration::from_micros(100));
        }
    });
    hog.join().unwrap();
    let during = turns.load(Ordering::SeqCst);
    ticker.join().unwrap();
    let m = rt.metrics();
    // At one turn per 2 ms slice the ticker runs dozens of times; a
    // safepointed loop that is never asked to yield gives it ~none.
    assert!(during >= 10, "the ticker ran only {during} times beside a safepointed loop: {m:?}");
    assert!(m.cooperative_preemptions >= 10, "{m:?}");
    assert_eq!(m.forced_preemptions, 0, "{m:?}");
}

#[test]
fn a_loop_that_only_spawns_lets_its_gvthreads_run() {
    if !common::isolated("a_loop_that_only_spawns_lets_its_gvthreads_run", LIMIT) {
        return;
    }
    // Forced preemption off: a spawn runs as one runtime section, where the
    // preemption signal would decline anyway, so the loop below calls
    // nothing that could give the worker away but `spawn` itself. It does,
    // at the latest when its worker's local queue (1,024 entries) spills,
    // or when its time slice ends.
    let rt = Runtime::new(
        SchedulerConfig::default().num_workers(1).time_slice(Duration::from_millis(2)).enable_forced_preempt(false),
    );
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let spawner = rt.handle().spawn(move |_| {
        // Bounded: a spawner that never yields stops here instead of
        // filling the memory.
        let mut spawned = 0u32;
        while !r.load(Ordering::SeqCst) && spawned < 300_000 {
            let r = r.clone();
            drop(gvthread::spawn(move |_| r.store(true, Ordering::SeqCst)));
            spawned += 1;
        }
        spawned
    });
    let spawned = spawner.join().unwrap();
    let m = rt.metrics();
    assert!(ran.load(Ordering::SeqCst), "no child ran while its spawner spawned {spawned} of them: {m:?}");
    assert!(spawned <= 2_048, "the spawner went on past its spilled queue: {spawned} spawned, {m:?}");
}

/// A waker that keeps computing after waking a GVThread: does the wakee run
/// before the waker stops? `config` decides how it can.
fn wakee_runs_beside_a_computing_waker(config: SchedulerConfig) -> bool {
    let mut rt = Runtime::new(config.num_workers(2));
    rt.block_on(|| {
        let (tx, rx) = gvthread::channel::<()>(1);
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        let wakee = gvthread::spawn(move |_| {
            rx.recv().unwrap();
            f.store(true, Ordering::SeqCst);
        });
        // Let the wakee park first.
        gvthread::sleep(Duration::from_millis(20));
        let waker = gvthread::spawn(move |_| {
            tx.send(()).unwrap(); // wakes the wakee into this worker's runnext
            let t = std::time::Instant::now();
            // Compute, no yield points, until the wakee ran (or 5 s).
            while !flag.load(Ordering::SeqCst) && t.elapsed() < Duration::from_secs(5) {
                std::hint::spin_loop();
            }
            flag.load(Ordering::SeqCst)
        });
        let r = waker.join().unwrap();
        wakee.join().unwrap();
        r
    })
}

#[test]
fn a_wakee_bound_to_a_computing_waker_runs_after_a_forced_preemption() {
    if !common::isolated("a_wakee_bound_to_a_computing_waker_runs_after_a_forced_preemption", LIMIT) {
        return;
    }
    // The wakee may be bound to the waker's role (it started there): only
    // that role's threads may run it. Forced preemption freezes the waker
    // and a spare thread of the role runs the wakee.
    assert!(
        wakee_runs_beside_a_computing_waker(SchedulerConfig::default()),
        "the wakee only ran after its waker stopped computing"
    );
}

#[test]
fn under_free_migration_a_wakee_moves_to_the_idle_worker() {
    if !common::isolated("under_free_migration_a_wakee_moves_to_the_idle_worker", LIMIT) {
        return;
    }
    // No forced preemption: the monitor moves the wakee out of the busy
    // worker's `runnext`, and the idle worker takes it.
    // SAFETY: the GVThreads of this test keep no thread-bound state.
    let config = unsafe { SchedulerConfig::default().free_migration(true) }.enable_forced_preempt(false);
    assert!(wakee_runs_beside_a_computing_waker(config), "the wakee only ran after its waker stopped computing");
}

#[test]
fn a_long_blocking_call_does_not_keep_stalling_its_worker() {
    if !common::isolated("a_long_blocking_call_does_not_keep_stalling_its_worker", LIMIT) {
        return;
    }
    let (seen, m) = ticker_beside_a_blocking_sleep();
    // Rescued once and left alone, the ticker has the worker for ~1 s: far
    // more than the ~100 turns it gets if the sleeper retakes the worker and
    // stalls it again every time slice.
    assert!(seen >= 10_000, "the ticker got only {seen} turns beside a 1 s blocking call: {m:?}");
}
