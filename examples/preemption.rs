//! Forced preemption: a CPU hog with no yield points beside latency-sensitive
//! GVThreads, all on ONE worker, run twice: with forced preemption (the
//! default) and without it.
//!
//! * The hog is a tight arithmetic loop: no calls, no `safepoint!()`, no
//!   blocking. Only a signal can take the worker from it. It stops after a
//!   fixed number of iterations, calibrated at start-up to about one second of
//!   CPU, so the example also ends when nothing preempts it.
//! * Three tickers each sleep 1 ms in a loop until the hog is done and record
//!   how late every wake-up ran (time since the requested deadline).
//!
//! With forced preemption the monitor signals the hog once it has run for
//! `time_slice + grace_period` (10 ms + 1 ms by default); its OS thread keeps
//! it frozen in the signal handler while a spare OS thread takes the worker
//! role and runs the tickers. Without it, the tickers wait for the whole hog.
//!
//! ```text
//! cargo run --release --example preemption
//! ```

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gvthread::{Runtime, RuntimeMetrics, SchedulerConfig};

const TICKERS: usize = 3;
const TICK: Duration = Duration::from_millis(1);
const HOG_CPU: Duration = Duration::from_secs(1);

/// The hog's loop body: a linear congruential step. The dependency chain
/// keeps LLVM from vectorising or folding it; there is no call in the loop.
#[inline(always)]
fn hog_loop(iterations: u64) -> u64 {
    let mut x = 1u64;
    for k in 0..iterations {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(k);
    }
    x
}

/// Iterations of `hog_loop` that take about `HOG_CPU` on this machine.
fn calibrate() -> u64 {
    let probe = 20_000_000u64;
    let t = Instant::now();
    black_box(hog_loop(black_box(probe)));
    let per_iter = t.elapsed().as_secs_f64() / probe as f64;
    (HOG_CPU.as_secs_f64() / per_iter.max(1e-12)) as u64
}

struct Run {
    lateness: Vec<Duration>,
    hog_wall: Duration,
    metrics: RuntimeMetrics,
}

fn run(forced: bool, hog_iterations: u64) -> Run {
    let mut rt = Runtime::new(SchedulerConfig::default().num_workers(1).enable_forced_preempt(forced));
    let (lateness, hog_wall) = rt.block_on(move || {
        let done = Arc::new(AtomicBool::new(false));
        let tickers: Vec<_> = (0..TICKERS)
            .map(|_| {
                let done = done.clone();
                gvthread::spawn(move |_| {
                    let mut late = Vec::new();
                    while !done.load(Ordering::Acquire) {
                        let due = Instant::now() + TICK;
                        gvthread::sleep(TICK);
                        late.push(Instant::now().saturating_duration_since(due));
                    }
                    late
                })
            })
            .collect();
        // Let every ticker start its first sleep before the hog takes the
        // (single) worker.
        gvthread::yield_now();
        let d = done.clone();
        let hog = gvthread::spawn(move |_| {
            let t = Instant::now();
            black_box(hog_loop(black_box(hog_iterations)));
            let wall = t.elapsed();
            d.store(true, Ordering::Release);
            wall
        });
        let hog_wall = hog.join().unwrap();
        let mut all = Vec::new();
        for t in tickers {
            all.extend(t.join().unwrap());
        }
        (all, hog_wall)
    });
    Run { lateness, hog_wall, metrics: rt.metrics() }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn report(name: &str, mut r: Run) {
    r.lateness.sort();
    let l = &r.lateness;
    let m = &r.metrics;
    println!("\n-- {name}");
    println!(
        "ticker wake-ups: {:>5}   lateness p50 {:>10}   p99 {:>10}   max {:>10}",
        l.len(),
        ms(percentile(l, 0.50)),
        ms(percentile(l, 0.99)),
        ms(l.last().copied().unwrap_or_default())
    );
    println!("hog wall time: {}", ms(r.hog_wall));
    println!(
        "metrics: forced preemptions {}, signals sent {}, hand-offs {}, preempt requests {}, \
         cooperative preemptions {}, no spare {}, OS threads {} (spare {})",
        m.forced_preemptions,
        m.signals_sent,
        m.handoffs,
        m.preempt_requests,
        m.cooperative_preemptions,
        m.no_spare,
        m.os_threads,
        m.spare_threads
    );
}

fn main() {
    let iterations = calibrate();
    println!(
        "one worker; a hog of {iterations} loop iterations (~{} of CPU, no calls, no safepoints) \
         beside {TICKERS} tickers sleeping {} in a loop",
        ms(HOG_CPU),
        ms(TICK)
    );
    println!("time_slice 10 ms, grace_period 1 ms (the defaults)");
    report("forced preemption on", run(true, iterations));
    report("forced preemption off", run(false, iterations));
}
