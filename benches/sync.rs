//! Synchronisation benchmarks: gvthread channels and `SchedMutex` against the
//! primitives users would pick instead.
//!
//! * `ping_pong`: one round trip (send a value, get it back) between two
//!   parties over two capacity-1 channels: two GVThreads on a 1-worker and on
//!   a 2-worker runtime, two tokio tasks with `tokio::sync::mpsc` on a
//!   current-thread runtime, and two OS threads with crossbeam-channel.
//! * `mpmc_4x4`: 4 producers and 4 consumers sharing one capacity-64
//!   channel; one iteration is one message. GVThreads on 2 workers against
//!   crossbeam-channel on 8 OS threads.
//! * `select`: one message through a channel, received with a plain
//!   `recv` against a `select!` over two channels that both hold a value
//!   (one GVThread; crossbeam-channel's `select!` on an OS thread beside).
//! * `mutex_uncontended`: lock + unlock on one thread, `SchedMutex` against
//!   `std::sync::Mutex`.
//! * `mutex_contended`: 4 parties each incrementing a shared counter under the
//!   lock; one iteration is one lock/unlock. 4 GVThreads on 2 workers with
//!   `SchedMutex` against 4 OS threads with `std::sync::Mutex` and 4 tokio
//!   tasks on 2 workers with `tokio::sync::Mutex`.
//!   `mutex_contended_with_work`: the same with a short stretch of work
//!   inside the critical section and again outside it.
//!
//! Batched benchmarks use `iter_custom`: a batch runs inside one `block_on`
//! (or one set of threads) and is timed there, so per-batch setup becomes
//! criterion's intercept, not the reported slope.
//!
//! Run with `cargo bench -p benches --bench sync` (about a minute). The
//! channel and mutex groups also run `benches/go/chan.go` when `go` is on
//! `PATH`; it prints Go's figures for the same scenarios.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gvthread::{Runtime, SchedMutex, SchedulerConfig};

fn runtime(workers: usize) -> Runtime {
    Runtime::new(SchedulerConfig::default().num_workers(workers))
}

fn gvthread_ping_pong(rt: &mut Runtime, iters: u64) -> Duration {
    rt.block_on(move || {
        let (ping_tx, ping_rx) = gvthread::channel::<u64>(1);
        let (pong_tx, pong_rx) = gvthread::channel::<u64>(1);
        let echo = gvthread::spawn(move |_| {
            for v in &ping_rx {
                pong_tx.send(v).unwrap();
            }
        });
        let start = Instant::now();
        for i in 0..iters {
            ping_tx.send(i).unwrap();
            black_box(pong_rx.recv().unwrap());
        }
        let t = start.elapsed();
        drop(ping_tx);
        echo.join().unwrap();
        t
    })
}

fn tokio_ping_pong(rt: &tokio::runtime::Runtime, iters: u64) -> Duration {
    rt.block_on(async move {
        let (ping_tx, mut ping_rx) = tokio::sync::mpsc::channel::<u64>(1);
        let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel::<u64>(1);
        let echo = tokio::spawn(async move {
            while let Some(v) = ping_rx.recv().await {
                pong_tx.send(v).await.unwrap();
            }
        });
        let start = Instant::now();
        for i in 0..iters {
            ping_tx.send(i).await.unwrap();
            black_box(pong_rx.recv().await.unwrap());
        }
        let t = start.elapsed();
        drop(ping_tx);
        echo.await.unwrap();
        t
    })
}

fn crossbeam_ping_pong(iters: u64) -> Duration {
    let (ping_tx, ping_rx) = crossbeam_channel::bounded::<u64>(1);
    let (pong_tx, pong_rx) = crossbeam_channel::bounded::<u64>(1);
    let echo = std::thread::spawn(move || {
        for v in ping_rx {
            pong_tx.send(v).unwrap();
        }
    });
    let start = Instant::now();
    for i in 0..iters {
        ping_tx.send(i).unwrap();
        black_box(pong_rx.recv().unwrap());
    }
    let t = start.elapsed();
    drop(ping_tx);
    echo.join().unwrap();
    t
}

fn ping_pong(c: &mut Criterion) {
    let mut g = c.benchmark_group("ping_pong");
    g.sample_size(20).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    let mut rt1 = runtime(1);
    g.bench_function("gvthread_1_worker", |b| b.iter_custom(|n| gvthread_ping_pong(&mut rt1, n)));
    let mut rt2 = runtime(2);
    g.bench_function("gvthread_2_workers", |b| b.iter_custom(|n| gvthread_ping_pong(&mut rt2, n)));
    let tokio_rt = tokio::runtime::Builder::new_current_thread().build().expect("tokio runtime");
    g.bench_function("tokio_mpsc_current_thread", |b| b.iter_custom(|n| tokio_ping_pong(&tokio_rt, n)));
    let tokio_mt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("tokio runtime");
    g.bench_function("tokio_mpsc_multi_thread_2_workers", |b| b.iter_custom(|n| tokio_ping_pong(&tokio_mt, n)));
    g.bench_function("crossbeam_os_threads", |b| b.iter_custom(crossbeam_ping_pong));
    g.finish();
}

const PARTIES: u64 = 4;
/// Steps of [`work`] in the `with_work` rows (the same count as Go's).
const WORK_STEPS: u64 = 20;

fn gvthread_mpmc(rt: &mut Runtime, iters: u64) -> Duration {
    let per = iters.div_ceil(PARTIES);
    rt.block_on(move || {
        let (tx, rx) = gvthread::channel::<u64>(64);
        let start = Instant::now();
        let producers: Vec<_> = (0..PARTIES)
            .map(|_| {
                let tx = tx.clone();
                gvthread::spawn(move |_| {
                    for i in 0..per {
                        tx.send(i).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        let consumers: Vec<_> = (0..PARTIES)
            .map(|_| {
                let rx = rx.clone();
                gvthread::spawn(move |_| rx.iter().fold(0u64, |a, v| a.wrapping_add(v)))
            })
            .collect();
        drop(rx);
        for p in producers {
            p.join().unwrap();
        }
        for c in consumers {
            black_box(c.join().unwrap());
        }
        start.elapsed()
    })
}

fn crossbeam_mpmc(iters: u64) -> Duration {
    let per = iters.div_ceil(PARTIES);
    let (tx, rx) = crossbeam_channel::bounded::<u64>(64);
    let start = Instant::now();
    let producers: Vec<_> = (0..PARTIES)
        .map(|_| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..per {
                    tx.send(i).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let consumers: Vec<_> = (0..PARTIES)
        .map(|_| {
            let rx = rx.clone();
            std::thread::spawn(move || rx.iter().fold(0u64, |a, v| a.wrapping_add(v)))
        })
        .collect();
    drop(rx);
    for p in producers {
        p.join().unwrap();
    }
    for c in consumers {
        black_box(c.join().unwrap());
    }
    start.elapsed()
}

fn mpmc(c: &mut Criterion) {
    let mut g = c.benchmark_group("mpmc_4x4");
    g.sample_size(20).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    g.throughput(Throughput::Elements(1));
    let mut rt = runtime(2);
    g.bench_function("gvthread_2_workers", |b| b.iter_custom(|n| gvthread_mpmc(&mut rt, n)));
    g.bench_function("crossbeam_os_threads", |b| b.iter_custom(crossbeam_mpmc));
    g.finish();
}

fn mutex_uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("mutex_uncontended");
    g.sample_size(20).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    let m = SchedMutex::new(0u64);
    g.bench_function("sched_mutex", |b| {
        b.iter(|| {
            *black_box(&m).lock() += 1;
        })
    });
    let m = std::sync::Mutex::new(0u64);
    g.bench_function("std_mutex", |b| {
        b.iter(|| {
            *black_box(&m).lock().unwrap() += 1;
        })
    });
    g.finish();
}

/// A short stretch of work (a chain of xorshift steps, which compiles to the
/// same dependent shifts and xors in Go's version), done inside the critical
/// section and again outside it in the `with_work` rows.
#[inline]
fn work(steps: u64) {
    let mut x = black_box(0x9E37_79B9_7F4A_7C15u64);
    for _ in 0..steps {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    black_box(x);
}

fn gvthread_contended(rt: &mut Runtime, iters: u64, steps: u64) -> Duration {
    let per = iters.div_ceil(PARTIES);
    rt.block_on(move || {
        let m = Arc::new(SchedMutex::new(0u64));
        let start = Instant::now();
        let hs: Vec<_> = (0..PARTIES)
            .map(|_| {
                let m = m.clone();
                gvthread::spawn(move |_| {
                    for _ in 0..per {
                        let mut g = m.lock();
                        *g += 1;
                        work(steps);
                        drop(g);
                        work(steps);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let t = start.elapsed();
        assert_eq!(*m.lock(), per * PARTIES);
        t
    })
}

fn std_contended(iters: u64, steps: u64) -> Duration {
    let per = iters.div_ceil(PARTIES);
    let m = Arc::new(std::sync::Mutex::new(0u64));
    let start = Instant::now();
    let hs: Vec<_> = (0..PARTIES)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || {
                for _ in 0..per {
                    let mut g = m.lock().unwrap();
                    *g += 1;
                    work(steps);
                    drop(g);
                    work(steps);
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let t = start.elapsed();
    assert_eq!(*m.lock().unwrap(), per * PARTIES);
    t
}

fn tokio_contended(rt: &tokio::runtime::Runtime, iters: u64, steps: u64) -> Duration {
    let per = iters.div_ceil(PARTIES);
    rt.block_on(async move {
        let m = Arc::new(tokio::sync::Mutex::new(0u64));
        let start = Instant::now();
        let hs: Vec<_> = (0..PARTIES)
            .map(|_| {
                let m = m.clone();
                tokio::spawn(async move {
                    for _ in 0..per {
                        let mut g = m.lock().await;
                        *g += 1;
                        work(steps);
                        drop(g);
                        work(steps);
                    }
                })
            })
            .collect();
        for h in hs {
            h.await.unwrap();
        }
        let t = start.elapsed();
        assert_eq!(*m.lock().await, per * PARTIES);
        t
    })
}

fn mutex_contended(c: &mut Criterion) {
    let mut rt = runtime(2);
    let tokio_mt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("tokio runtime");
    for (group, steps) in [("mutex_contended", 0), ("mutex_contended_with_work", WORK_STEPS)] {
        let mut g = c.benchmark_group(group);
        g.sample_size(20).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
        g.bench_function("sched_mutex_4_gvthreads_2_workers", |b| {
            b.iter_custom(|n| gvthread_contended(&mut rt, n, steps))
        });
        g.bench_function("std_mutex_4_os_threads", |b| b.iter_custom(|n| std_contended(n, steps)));
        g.bench_function("tokio_mutex_4_tasks_2_workers", |b| b.iter_custom(|n| tokio_contended(&tokio_mt, n, steps)));
        g.finish();
    }
}

fn gvthread_recv(rt: &mut Runtime, iters: u64) -> Duration {
    rt.block_on(move || {
        let (tx, rx) = gvthread::channel::<u64>(4);
        let start = Instant::now();
        for i in 0..iters {
            tx.send(i).unwrap();
            black_box(rx.recv().unwrap());
        }
        start.elapsed()
    })
}

fn gvthread_select(rt: &mut Runtime, iters: u64) -> Duration {
    rt.block_on(move || {
        let (tx1, rx1) = gvthread::channel::<u64>(4);
        let (tx2, rx2) = gvthread::channel::<u64>(4);
        tx1.send(0).unwrap();
        tx2.send(0).unwrap();
        let start = Instant::now();
        for i in 0..iters {
            // Both channels hold a value; refill the one the select drained.
            let (v, tx) = gvthread::select! {
                recv(rx1) -> v => (v, &tx1),
                recv(rx2) -> v => (v, &tx2),
            };
            black_box(v.unwrap());
            tx.send(i).unwrap();
        }
        start.elapsed()
    })
}

fn crossbeam_select(iters: u64) -> Duration {
    let (tx1, rx1) = crossbeam_channel::bounded::<u64>(4);
    let (tx2, rx2) = crossbeam_channel::bounded::<u64>(4);
    tx1.send(0).unwrap();
    tx2.send(0).unwrap();
    let start = Instant::now();
    for i in 0..iters {
        let (v, tx) = crossbeam_channel::select! {
            recv(rx1) -> v => (v, &tx1),
            recv(rx2) -> v => (v, &tx2),
        };
        black_box(v.unwrap());
        tx.send(i).unwrap();
    }
    start.elapsed()
}

fn crossbeam_recv(iters: u64) -> Duration {
    let (tx, rx) = crossbeam_channel::bounded::<u64>(4);
    let start = Instant::now();
    for i in 0..iters {
        tx.send(i).unwrap();
        black_box(rx.recv().unwrap());
    }
    start.elapsed()
}

fn select(c: &mut Criterion) {
    let mut g = c.benchmark_group("select");
    g.sample_size(20).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    let mut rt = runtime(1);
    g.bench_function("gvthread_send_recv", |b| b.iter_custom(|n| gvthread_recv(&mut rt, n)));
    g.bench_function("gvthread_send_select_2_ready", |b| b.iter_custom(|n| gvthread_select(&mut rt, n)));
    g.bench_function("crossbeam_send_recv", |b| b.iter_custom(crossbeam_recv));
    g.bench_function("crossbeam_send_select_2_ready", |b| b.iter_custom(crossbeam_select));
    g.finish();
}

/// Runs `benches/go/chan.go` if `go` is installed; it prints its own rows.
fn go_baseline(_c: &mut Criterion) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/go/chan.go");
    match std::process::Command::new("go").args(["run", path]).output() {
        Ok(out) if out.status.success() => print!("{}", String::from_utf8_lossy(&out.stdout)),
        Ok(out) => println!("go (failed: {})", String::from_utf8_lossy(&out.stderr).trim()),
        Err(_) => println!("go (not installed: skipped)"),
    }
}

criterion_group!(benches, ping_pong, mpmc, select, mutex_uncontended, mutex_contended, go_baseline);
criterion_main!(benches);
