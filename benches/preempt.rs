//! Preemption benchmarks.
//!
//! * **(a) `safepoint!()` when idle** (criterion): one GVThread runs N
//!   safepoints in a loop; `iter_custom` times the loop inside the GVThread,
//!   so one iteration is one `safepoint!()` with no preemption pending (the
//!   loop body has nothing else in it). Target: ≤ 2 ns.
//! * **(b) one forced preemption** (timed section, printed): see
//!   [`forced_preemption`] for the method. On a one-worker runtime with a 1 ms
//!   time slice and no grace period, a hog with no yield points spins
//!   writing "I ran at t" into a shared word; a prober GVThread waits in the
//!   run queue. When the monitor's SIGURG freezes the hog, the spare OS thread
//!   that takes the worker role runs the prober, which reads the clock: the
//!   gap between the hog's last write and the prober's first read is the
//!   latency from the signal to the next GVThread running. Target: ≤ 20 µs.
//!   The hog also measures how long it stayed frozen (the same plus the
//!   prober's run and the hand-back of the role).
//! * **(c) fairness on 2 workers** (timed section, printed): 4 GVThreads that
//!   spin with no yield points beside one GVThread that sleeps 1 ms in a loop
//!   (500 times); the table shows p50/p99/max of how late its wake-ups ran,
//!   with the defaults and with variants (free migration, no wake-up
//!   preemption, the timer thread in the real-time policy when Linux grants
//!   it).
//!   Same scenario on tokio (2-worker multi-thread runtime, 4 spinning tasks,
//!   one `tokio::time::sleep(1ms)` loop): tokio has no preemption, so the
//!   spinners starve the sleeper; they are bounded to [`SPIN_LIMIT`] so the
//!   bench ends. If `go` is on `PATH`, `benches/go/fairness.go` runs the same
//!   scenario on Go (GOMAXPROCS=2; Go preempts goroutines after 10 ms).
//!   Also: the same with free migration and with wake-up preemption off,
//!   on OS threads, and the spinners' throughput beside the sleeper against
//!   alone. Target (not asserted): gvthread p99 ≤ 2 ms, spinners ≥ 90%.
//! * **(d)** 1 worker, 1 hog, a 1 ms sleeper: target p50 lateness ≤ 1.5 ms.
//! * **(e)** channel ping-pong pairs beside hogs (1 worker / 1 hog, 2 workers
//!   / 2 hogs): round trips beside the hogs as a share of alone; targets
//!   ≥ 50% and ≥ 75%. Started GVThreads stay on their role, so with 2
//!   workers the figure depends on where each pair and hog started: the
//!   roles the pairs ran on are printed with it, and the 2-worker figure is
//!   also given against twice the 1-worker pair alone (each pair with a
//!   worker to itself; the run alone may have started both pairs on one
//!   role, which halves its figure). The host's cross-core round trip
//!   (`benches::host`) is printed before (c) and (e).
//!
//! Criterion cannot report percentiles, so (b) and (c) are plain timed
//! sections printed after criterion's output. Run with
//! `cargo bench -p benches --bench preempt` (about 30 s); results are recorded
//! in `docs/benchmarks.md`.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode};
use gvthread::{Runtime, RuntimeMetrics, SchedulerConfig};

/// Spinners of scenario (c) stop after this long even if the sleeper is not
/// done (they never would on tokio otherwise).
const SPIN_LIMIT: Duration = Duration::from_secs(3);
/// Sleeps of scenario (c).
const SLEEPS: usize = 500;
const SPINNERS: usize = 4;
/// The hog of scenario (b) stops after this long whatever happens.
const HOG_LIMIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- (a)

fn safepoint_idle(c: &mut Criterion) {
    let mut group = c.benchmark_group("safepoint");
    group.sampling_mode(SamplingMode::Linear);
    let mut rt = Runtime::new(SchedulerConfig::default().num_workers(1));
    group.bench_function("idle", |b| {
        b.iter_custom(|iters| {
            rt.block_on(move || {
                let start = Instant::now();
                for _ in 0..iters {
                    gvthread::safepoint!();
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    let m = rt.metrics();
    println!(
        "safepoint bench metrics: cooperative preemptions {} (a batch longer than the 10 ms time slice \
         is asked to yield; with nothing else runnable the yield returns at once)",
        m.cooperative_preemptions
    );
}

// ---------------------------------------------------------------- (b)

/// Nanoseconds since `base`.
#[inline(always)]
fn ns_since(base: Instant) -> u64 {
    base.elapsed().as_nanos() as u64
}

/// Forced preemption latency.
///
/// Method: one worker, `time_slice` 1 ms, `grace_period` 0, monitor period
/// 250 µs. The hog loops with no yield point: each iteration reads the clock
/// (`clock_gettime` through the vDSO: a call, but not a gvthread yield point,
/// so only a signal can take the worker from it) and stores it in `last`; a
/// gap larger than 20 µs between two iterations means it was frozen, and its
/// length is recorded (`frozen`). The prober GVThread is runnable in the run
/// queue the whole time the hog runs: it loops `yield_now()`, and each yield
/// lets the frozen hog be handed its role back while the prober goes back to
/// the queue, ahead of the hog's next preemption.
///
/// So at each forced preemption: the SIGURG handler freezes the hog, queues
/// it behind the prober and hands the role to a spare OS thread, which wakes
/// from its futex and switches to the prober. The prober's first clock read
/// minus the hog's last store is the *preemption latency*: signal delivery,
/// the handler, the spare's wake-up and the switch (plus at most one hog
/// iteration, ~25 ns, before the signal). It does not include the monitor's
/// detection delay (up to one monitor period), which is policy, not cost.
///
/// The hog also gives up after [`HOG_LIMIT`], so the bench ends even if the
/// monitor stops signalling; the row then has fewer samples than asked for.
fn forced_preemption(quick: bool) {
    let samples_wanted = if quick { 20 } else { 1000 };
    let mut rt = Runtime::new(
        SchedulerConfig::default()
            .num_workers(1)
            .time_slice(Duration::from_millis(1))
            .grace_period(Duration::ZERO)
            .timer_interval(Duration::from_micros(250)),
    );
    let (latency, frozen) = rt.block_on(move || {
        let base = Instant::now();
        let last = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (last.clone(), stop.clone());
        let hog = gvthread::spawn(move |_| {
            let mut frozen = Vec::with_capacity(4 * samples_wanted + 16);
            let mut prev = ns_since(base);
            let limit = HOG_LIMIT.as_nanos() as u64;
            while !s.load(Ordering::Relaxed) {
                let now = ns_since(base);
                if now > limit {
                    s.store(true, Ordering::Relaxed);
                    break;
                }
                if now - prev > 20_000 && frozen.len() < frozen.capacity() {
                    frozen.push(now - prev);
                }
                l.store(now, Ordering::Relaxed);
                prev = now;
            }
            frozen
        });
        let (l, s) = (last.clone(), stop.clone());
        let prober = gvthread::spawn(move |_| {
            let mut latency = Vec::with_capacity(samples_wanted);
            while latency.len() < samples_wanted && !s.load(Ordering::Relaxed) {
                // Runs right after a forced preemption of the hog.
                let now = ns_since(base);
                let hog_last = l.load(Ordering::Relaxed);
                if hog_last != 0 {
                    latency.push(now.saturating_sub(hog_last));
                }
                gvthread::yield_now();
            }
            s.store(true, Ordering::Relaxed);
            latency
        });
        let latency = prober.join().unwrap();
        (latency, hog.join().unwrap())
    });
    let m = rt.metrics();
    if latency.len() < samples_wanted {
        println!(
            "\n(b) WARNING: only {} of {samples_wanted} samples: the hog was not preempted again before {HOG_LIMIT:?}",
            latency.len()
        );
    }
    println!("\n(b) one forced preemption: 1 worker, time_slice 1 ms, grace_period 0, timer_interval 250 µs");
    print_header("measure");
    print_row("signal -> next GVThread runs", &to_durations(latency));
    print_row("hog frozen (incl. hand-back)", &to_durations(frozen));
    print_metrics(&m);
}

fn to_durations(ns: Vec<u64>) -> Vec<Duration> {
    ns.into_iter().map(Duration::from_nanos).collect()
}

// ---------------------------------------------------------------- (c)

/// Lateness of each 1 ms sleep while the spinners run (at most `sleeps`;
/// none with `sleeps == 0`: the spinners alone, for 2 s), and the spinners'
/// total loop iterations per second.
fn gvthread_fairness(
    config: SchedulerConfig,
    sleeps: usize,
    spin_limit: Duration,
) -> (Vec<Duration>, f64, RuntimeMetrics) {
    let mut rt = Runtime::new(config.num_workers(2));
    let (lateness, rate) = rt.block_on(move || {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let spinners: Vec<_> = (0..SPINNERS)
            .map(|_| {
                let stop = stop.clone();
                gvthread::spawn(move |_| {
                    let start = Instant::now();
                    let mut n = 0u64;
                    // No yield points: only a signal takes the worker away.
                    while !stop.load(Ordering::Relaxed) && start.elapsed() < spin_limit {
                        n = n.wrapping_add(1);
                    }
                    n
                })
            })
            .collect();
        let late = if sleeps == 0 {
            gvthread::sleep(Duration::from_secs(2));
            Vec::new()
        } else {
            let sleeper = gvthread::spawn(move |_| {
                let mut late = Vec::with_capacity(sleeps);
                let started = Instant::now();
                while late.len() < sleeps && started.elapsed() < spin_limit {
                    let due = Instant::now() + Duration::from_millis(1);
                    gvthread::sleep(Duration::from_millis(1));
                    late.push(Instant::now().saturating_duration_since(due));
                }
                late
            });
            sleeper.join().unwrap()
        };
        stop.store(true, Ordering::Relaxed);
        let total: u64 = spinners.into_iter().map(|s| black_box(s.join().unwrap())).sum();
        (late, total as f64 / started.elapsed().as_secs_f64())
    });
    (lateness, rate, rt.metrics())
}

/// The same scenario on OS threads: 4 spinning threads and one sleeping
/// thread, scheduled by Linux.
fn os_thread_fairness(sleeps: usize, spin_limit: Duration) -> Vec<Duration> {
    let stop = Arc::new(AtomicBool::new(false));
    let spinners: Vec<_> = (0..SPINNERS)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) && start.elapsed() < spin_limit {
                    n = n.wrapping_add(1);
                }
                n
            })
        })
        .collect();
    let mut late = Vec::with_capacity(sleeps);
    let started = Instant::now();
    while late.len() < sleeps && started.elapsed() < spin_limit {
        let due = Instant::now() + Duration::from_millis(1);
        std::thread::sleep(Duration::from_millis(1));
        late.push(Instant::now().saturating_duration_since(due));
    }
    stop.store(true, Ordering::Relaxed);
    for s in spinners {
        black_box(s.join().unwrap());
    }
    late
}

/// One worker, one hog: lateness of a 1 ms sleeper beside it.
fn one_worker_sleeper(sleeps: usize) -> Vec<Duration> {
    let mut rt = Runtime::new(SchedulerConfig::default().num_workers(1));
    rt.block_on(move || {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let hog = gvthread::spawn(move |_| {
            let mut n = 0u64;
            while !s.load(Ordering::Relaxed) {
                n = n.wrapping_add(1);
            }
            n
        });
        let sleeper = gvthread::spawn(move |_| {
            (0..sleeps)
                .map(|_| {
                    let due = Instant::now() + Duration::from_millis(1);
                    gvthread::sleep(Duration::from_millis(1));
                    Instant::now().saturating_duration_since(due)
                })
                .collect::<Vec<_>>()
        });
        let late = sleeper.join().unwrap();
        stop.store(true, Ordering::Relaxed);
        black_box(hog.join().unwrap());
        late
    })
}

/// The role an OS thread of the runtime serves, from its name
/// (`gvthread-worker-N`, `gvthread-spare-N`).
fn role_of_this_thread() -> String {
    std::thread::current().name().and_then(|n| n.rsplit('-').next()).unwrap_or("?").to_string()
}

/// Round trips of channel ping-pong pairs (one per worker) in `for_`, beside
/// one CPU hog per worker or not, and the role each pair ran on last.
fn pairs_beside_hogs(workers: usize, hogs: bool, for_: Duration) -> (u64, Vec<String>) {
    let mut rt = Runtime::new(SchedulerConfig::default().num_workers(workers));
    rt.block_on(move || {
        let stop = Arc::new(AtomicBool::new(false));
        let hog_handles: Vec<_> = (0..if hogs { workers } else { 0 })
            .map(|_| {
                let s = stop.clone();
                gvthread::spawn(move |_| {
                    while !s.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        let pairs: Vec<_> = (0..workers)
            .map(|_| {
                let s = stop.clone();
                gvthread::spawn(move |_| {
                    let (tx1, rx1) = gvthread::channel::<u64>(0);
                    let (tx2, rx2) = gvthread::channel::<u64>(0);
                    let echo = gvthread::spawn(move |_| {
                        for v in rx1.iter() {
                            if tx2.send(v).is_err() {
                                break;
                            }
                        }
                    });
                    let mut n = 0u64;
                    while !s.load(Ordering::Relaxed) {
                        tx1.send(n).unwrap();
                        rx2.recv().unwrap();
                        n += 1;
                    }
                    drop(tx1);
                    echo.join().unwrap();
                    (n, role_of_this_thread())
                })
            })
            .collect();
        gvthread::sleep(for_);
        stop.store(true, Ordering::Relaxed);
        let (counts, roles): (Vec<u64>, Vec<String>) = pairs.into_iter().map(|p| p.join().unwrap()).unzip();
        for h in hog_handles {
            h.join().unwrap();
        }
        (counts.iter().sum(), roles)
    })
}

fn tokio_fairness(sleeps: usize, spin_limit: Duration) -> Vec<Duration> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    rt.block_on(async move {
        let stop = Arc::new(AtomicBool::new(false));
        // The sleeper first, so it has registered its first timer before the
        // spinners take both workers.
        let sleeper = tokio::spawn(async move {
            let mut late = Vec::with_capacity(sleeps);
            let started = Instant::now();
            while late.len() < sleeps && started.elapsed() < spin_limit {
                let due = Instant::now() + Duration::from_millis(1);
                tokio::time::sleep(Duration::from_millis(1)).await;
                late.push(Instant::now().saturating_duration_since(due));
            }
            late
        });
        tokio::task::yield_now().await;
        let spinners: Vec<_> = (0..SPINNERS)
            .map(|_| {
                let stop = stop.clone();
                tokio::spawn(async move {
                    let start = Instant::now();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) && start.elapsed() < spin_limit {
                        n = n.wrapping_add(1);
                    }
                    n
                })
            })
            .collect();
        let late = sleeper.await.unwrap();
        stop.store(true, Ordering::Relaxed);
        for s in spinners {
            black_box(s.await.unwrap());
        }
        late
    })
}

/// Runs `benches/go/fairness.go` if `go` is installed; it prints its own row.
fn go_fairness() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/go/fairness.go");
    match std::process::Command::new("go").args(["run", path]).output() {
        Ok(out) if out.status.success() => print!("{}", String::from_utf8_lossy(&out.stdout)),
        Ok(out) => println!("go (failed: {})", String::from_utf8_lossy(&out.stderr).trim()),
        Err(_) => println!("go (not installed: skipped)"),
    }
}

/// The host's cross-core round trip now (`benches::host`): the 2-worker
/// rows move with it.
fn host_line() -> String {
    format!("host: cross-core round trip {:.0} ns", benches::host::cross_core_round_trip_ns())
}

fn fairness(quick: bool) {
    let (sleeps, limit) = if quick { (20, Duration::from_millis(200)) } else { (SLEEPS, SPIN_LIMIT) };
    println!(
        "\n(c) fairness, 2 workers: {SPINNERS} spinners without yield points + 1 sleeper doing {sleeps} x 1 ms \
         (spinners and sleeper give up after {limit:?})"
    );
    println!("{}", host_line());
    print_header("runtime");
    let (late, with_ticker, m) = gvthread_fairness(SchedulerConfig::default(), sleeps, limit);
    print_row("gvthread (defaults)", &late);
    // SAFETY: these GVThreads keep no thread-bound state across blocking calls.
    let free = unsafe { SchedulerConfig::default().free_migration(true) };
    let (late_free, _, _) = gvthread_fairness(free, sleeps, limit);
    print_row("gvthread (free migration)", &late_free);
    let late_off = gvthread_fairness(SchedulerConfig::default().wakeup_granularity(Duration::MAX), sleeps, limit).0;
    print_row("gvthread (no wake-up preemption)", &late_off);
    let (late_rt, _, m_rt) = gvthread_fairness(SchedulerConfig::default().realtime_timer_thread(true), sleeps, limit);
    let rt_name = if m_rt.realtime_timer_thread {
        "gvthread (real-time timer thread)"
    } else {
        "gvthread (real-time timer thread asked for, not granted)"
    };
    print_row(rt_name, &late_rt);
    print_row("OS threads", &os_thread_fairness(sleeps, limit));
    let late = tokio_fairness(sleeps, limit);
    print_row("tokio multi-thread", &late);
    if !quick {
        go_fairness();
    }
    println!("gvthread metrics:");
    print_metrics(&m);
    if quick {
        return;
    }
    let (_, alone, _) = gvthread_fairness(SchedulerConfig::default(), 0, Duration::from_secs(2));
    println!(
        "spinners' throughput beside the sleeper: {:.1}% of alone ({:.3e} vs {:.3e} iterations/s)",
        100.0 * with_ticker / alone,
        with_ticker,
        alone
    );
    println!("\n(d) 1 worker, 1 hog, a 1 ms sleeper ({sleeps} sleeps)");
    print_header("runtime");
    print_row("gvthread (defaults)", &one_worker_sleeper(sleeps));
    println!("\n(e) channel ping-pong pairs beside CPU hogs (2 s each)");
    println!("{}", host_line());
    // The 1-worker pair alone: the reference for "each pair with a worker
    // to itself" (a 2-worker run alone may start both pairs on one role).
    let mut one_pair_alone = 0;
    for workers in [1, 2] {
        let (alone, roles_alone) = pairs_beside_hogs(workers, false, Duration::from_secs(2));
        let (beside, roles_beside) = pairs_beside_hogs(workers, true, Duration::from_secs(2));
        if workers == 1 {
            one_pair_alone = alone;
        }
        println!(
            "{workers} worker(s), {workers} pair(s), {workers} hog(s): {beside} round trips beside the hogs, {alone} alone ({:.1}%); pairs' roles: {roles_beside:?} beside, {roles_alone:?} alone",
            100.0 * beside as f64 / alone as f64
        );
        if workers > 1 && one_pair_alone > 0 {
            let own = workers as u64 * one_pair_alone;
            println!(
                "  against {workers} x the 1-worker pair alone (each pair with a worker to itself, {own}): {:.1}%",
                100.0 * beside as f64 / own as f64
            );
        }
    }
}

// ---------------------------------------------------------------- output

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn fmt(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}

fn print_header(what: &str) {
    println!("{what:<36} {:>7} {:>11} {:>11} {:>11}", "samples", "p50", "p99", "max");
}

fn print_row(name: &str, samples: &[Duration]) {
    let mut s = samples.to_vec();
    s.sort();
    println!(
        "{name:<36} {:>7} {:>11} {:>11} {:>11}",
        s.len(),
        fmt(percentile(&s, 0.5)),
        fmt(percentile(&s, 0.99)),
        fmt(s.last().copied().unwrap_or_default())
    );
}

fn print_metrics(m: &RuntimeMetrics) {
    println!(
        "  forced preemptions {} (at a deadline {}), signals sent {}, hand-offs {}, preempt requests {}, \
         wake-up preemptions {}, cooperative {}, no spare {}, not running {}, thread cap reached {}, OS threads {} \
         (spare {})",
        m.forced_preemptions,
        m.deadline_preemptions,
        m.signals_sent,
        m.handoffs,
        m.preempt_requests,
        m.wakeup_preemptions,
        m.cooperative_preemptions,
        m.no_spare,
        m.not_running,
        m.thread_cap_reached,
        m.os_threads,
        m.spare_threads
    );
}

fn main() {
    // `cargo test --benches` runs this with `--test`: run everything once,
    // briefly.
    let quick = std::env::args().any(|a| a == "--test");
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    safepoint_idle(&mut c);
    c.final_summary();
    forced_preemption(quick);
    fairness(quick);
}
