//! What home roles cost: the default (a started GVThread runs only on its
//! role's threads) against the `unsafe` free-migration opt-in, side by side
//! in one run.
//!
//! * `yield_round_trip`: two GVThreads alternating `yield_now()`, 1 worker.
//! * `spawn_join`: spawn a trivial GVThread and join it, 1 worker.
//! * `ping_pong_2w`: a channel round trip between two GVThreads, 2 workers.
//! * `load_balance_2w`: 1,000 CPU-bound GVThreads that yield every 20 µs of
//!   work, all spawned from one GVThread, on 2 workers; one iteration is the
//!   whole batch (time until all are joined). Under home roles the balance is
//!   decided when each starts (idle workers steal unstarted ones); under free
//!   migration started ones are stolen too.
//!
//! Run with `cargo bench -p benches --bench migration`; results are recorded
//! in `docs/benchmarks.md`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use gvthread::{Runtime, SchedulerConfig};

fn runtime(workers: usize, free: bool) -> Runtime {
    let config = SchedulerConfig::default().num_workers(workers);
    // SAFETY: the benchmark bodies keep no thread-bound state across
    // blocking calls.
    let config = if free { unsafe { config.free_migration(true) } } else { config };
    Runtime::new(config)
}

const MODES: [(&str, bool); 2] = [("home", false), ("free_migration", true)];

fn yield_round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("migration/yield_round_trip");
    for (name, free) in MODES {
        let mut rt = runtime(1, free);
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(move || {
                    let start = Instant::now();
                    let a = gvthread::spawn(move |_| (0..iters).for_each(|_| gvthread::yield_now()));
                    let b = gvthread::spawn(move |_| (0..iters).for_each(|_| gvthread::yield_now()));
                    a.join().unwrap();
                    b.join().unwrap();
                    start.elapsed()
                })
            })
        });
    }
    g.finish();
}

fn spawn_join(c: &mut Criterion) {
    let mut g = c.benchmark_group("migration/spawn_join");
    for (name, free) in MODES {
        let mut rt = runtime(1, free);
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(move || {
                    let start = Instant::now();
                    for i in 0..iters {
                        black_box(gvthread::spawn(move |_| black_box(i)).join().unwrap());
                    }
                    start.elapsed()
                })
            })
        });
    }
    g.finish();
}

fn ping_pong_2w(c: &mut Criterion) {
    let mut g = c.benchmark_group("migration/ping_pong_2w");
    for (name, free) in MODES {
        let mut rt = runtime(2, free);
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(move || {
                    let (tx1, rx1) = gvthread::channel::<u64>(0);
                    let (tx2, rx2) = gvthread::channel::<u64>(0);
                    let echo = gvthread::spawn(move |_| {
                        for v in rx1.iter() {
                            if tx2.send(v).is_err() {
                                break;
                            }
                        }
                    });
                    let start = Instant::now();
                    for i in 0..iters {
                        tx1.send(i).unwrap();
                        black_box(rx2.recv().unwrap());
                    }
                    let elapsed = start.elapsed();
                    drop(tx1);
                    echo.join().unwrap();
                    elapsed
                })
            })
        });
    }
    g.finish();
}

/// Spins for about `d` of CPU time.
fn work(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

fn load_balance_2w(c: &mut Criterion) {
    let mut g = c.benchmark_group("migration/load_balance_2w");
    g.sampling_mode(SamplingMode::Flat).sample_size(10).measurement_time(Duration::from_secs(20));
    for (name, free) in MODES {
        let mut rt = runtime(2, free);
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += rt.block_on(|| {
                        let start = Instant::now();
                        let hs: Vec<_> = (0..1_000)
                            .map(|_| {
                                gvthread::spawn(|_| {
                                    for _ in 0..50 {
                                        work(Duration::from_micros(20));
                                        gvthread::yield_now();
                                    }
                                })
                            })
                            .collect();
                        for h in hs {
                            h.join().unwrap();
                        }
                        start.elapsed()
                    });
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, yield_round_trip, spawn_join, ping_pong_2w, load_balance_2w);
criterion_main!(benches);
