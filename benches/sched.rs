//! Scheduler benchmarks: gvthread against the runtimes users would pick instead.
//!
//! * `yield_round_trip`: two GVThreads alternating `yield_now()` on a
//!   one-worker runtime, against two tokio tasks alternating
//!   `tokio::task::yield_now()` on a current-thread runtime. One iteration is
//!   one round trip (each side yields once, so two switches).
//! * `spawn_join`: spawn a trivial GVThread and join it (its slot is reused
//!   every time), against tokio `spawn` + `.await` on a current-thread runtime
//!   and `std::thread::spawn` + `join`.
//!
//! The batched benchmarks use `iter_custom`: a batch of N iterations runs
//! inside one `block_on` and is timed there, so the cost of entering the
//! runtime from the bench thread is not counted, and linear sampling turns the
//! fixed per-batch cost (two spawns and joins) into the intercept, not the
//! slope criterion reports.
//!
//! Run with `cargo bench -p benches --bench sched`; results are recorded in
//! `docs/benchmarks.md`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use gvthread::{Runtime, SchedulerConfig};

fn gvthread_runtime() -> Runtime {
    Runtime::new(SchedulerConfig::default().num_workers(1))
}

/// tokio's current-thread runtime without I/O or time drivers: its cheapest
/// configuration.
fn tokio_bare() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().expect("tokio runtime")
}

/// tokio's current-thread runtime as `#[tokio::main(flavor = "current_thread")]`
/// builds it (I/O and time drivers enabled).
fn tokio_enable_all() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

fn gvthread_yield_batch(rt: &mut Runtime, iters: u64) -> Duration {
    rt.block_on(move || {
        let start = Instant::now();
        let a = gvthread::spawn(move |_| {
            for _ in 0..iters {
                gvthread::yield_now();
            }
        });
        let b = gvthread::spawn(move |_| {
            for _ in 0..iters {
                gvthread::yield_now();
            }
        });
        a.join().unwrap();
        b.join().unwrap();
        start.elapsed()
    })
}

fn tokio_yield_batch(rt: &tokio::runtime::Runtime, iters: u64) -> Duration {
    rt.block_on(async move {
        let start = Instant::now();
        let a = tokio::spawn(async move {
            for _ in 0..iters {
                tokio::task::yield_now().await;
            }
        });
        let b = tokio::spawn(async move {
            for _ in 0..iters {
                tokio::task::yield_now().await;
            }
        });
        a.await.unwrap();
        b.await.unwrap();
        start.elapsed()
    })
}

fn yield_round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("yield_round_trip");
    group.sampling_mode(SamplingMode::Linear);

    let mut gv = gvthread_runtime();
    group.bench_function("gvthread", |b| b.iter_custom(|iters| gvthread_yield_batch(&mut gv, iters)));
    drop(gv);

    let tk = tokio_bare();
    group.bench_function("tokio", |b| b.iter_custom(|iters| tokio_yield_batch(&tk, iters)));
    drop(tk);

    let tk = tokio_enable_all();
    group.bench_function("tokio_enable_all", |b| b.iter_custom(|iters| tokio_yield_batch(&tk, iters)));
    drop(tk);

    group.finish();
}

fn spawn_join(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn_join");
    group.sampling_mode(SamplingMode::Linear);

    let mut gv = gvthread_runtime();
    group.bench_function("gvthread", |b| {
        b.iter_custom(|iters| {
            gv.block_on(move || {
                let start = Instant::now();
                for i in 0..iters {
                    let h = gvthread::spawn(move |_| black_box(i));
                    black_box(h.join().unwrap());
                }
                start.elapsed()
            })
        })
    });
    drop(gv);

    let tk = tokio_bare();
    group.bench_function("tokio", |b| {
        b.iter_custom(|iters| {
            tk.block_on(async move {
                let start = Instant::now();
                for i in 0..iters {
                    let h = tokio::spawn(async move { black_box(i) });
                    black_box(h.await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    drop(tk);

    group.bench_function("std_thread", |b| {
        b.iter(|| {
            let h = std::thread::spawn(|| black_box(1u64));
            black_box(h.join().unwrap())
        })
    });

    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_millis(2500))
}

criterion_group! {
    name = benches;
    config = config();
    targets = yield_round_trip, spawn_join
}
criterion_main!(benches);
